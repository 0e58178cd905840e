//! The opml fraud-proof VM: RV32IM plus the `dot4` ML instruction, Merkleized memory, a
//! packed state with a keccak256 hash, step witnesses and the witness-only step function
//! that the Solidity verifier mirrors. Normative rules: `docs/spec/vm.md`.
//!
//! * [`isa`] — opcodes, decoding, fault reasons;
//! * [`memory`] — 4 GiB memory with lazy page hashing and proofs;
//! * [`state`] — the 173-byte state encoding and its hash;
//! * [`interp`] — the interpreter ([`Machine`]);
//! * [`witness`] — step witnesses from a machine;
//! * [`step`] — the post-state hash from a witness alone;
//! * [`elf`] — the program loader;
//! * [`checkpoint`] — checkpoints for fast access to any step of a long run;
//! * `testgen` (feature `testgen`) — random single-step cases for differential tests.

pub mod checkpoint;
pub mod elf;
pub mod interp;
pub mod isa;
pub mod memory;
pub mod state;
pub mod step;
#[cfg(feature = "testgen")]
pub mod testgen;
pub mod witness;

pub use checkpoint::{Checkpoint, CheckpointError, Checkpoints};
pub use elf::LoadError;
pub use interp::{Machine, RunEnd};
pub use isa::{Fault, Status};
pub use memory::Memory;
pub use state::{State, StateError, STATE_LEN};
pub use step::{step, StepError};
pub use witness::Witness;
