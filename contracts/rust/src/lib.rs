//! Runs the forge-built opml contracts in-process with [`revm`].
//!
//! The Solidity step verifier (`contracts/src/Step.sol`) must agree with the Rust
//! witness-only step (`opml_vm::step::step`) on every witness. This crate loads the runtime
//! bytecode forge wrote to `contracts/out/Step.sol/Step.json`, calls
//! `step(bytes state, bytes proof)` on an in-memory EVM and reports the returned post-state
//! hash (or the revert) together with the gas the call used, so tests can compare the two
//! implementations and benchmarks can report gas.
//!
//! Build the contracts first with `contracts/scripts/setup.sh` (or `forge build` inside
//! `contracts/`).

mod abi;
mod artifact;
pub mod chain;
mod evm;

pub use abi::{encode_step_call, selector, STEP_SIGNATURE};
pub use artifact::{artifact_path, load_deployed_bytecode, ArtifactError, OUT_DIR_ENV};
pub use evm::{calldata_gas, CallGas, EvmError, StepOutcome, StepVerifier, TX_BASE_GAS};
