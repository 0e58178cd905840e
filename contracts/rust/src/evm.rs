//! An in-memory EVM holding the step verifier.

use revm::context::result::{ExecutionResult, Output};
use revm::context::TxEnv;
use revm::database::{CacheDB, EmptyDB};
use revm::handler::{MainnetContext, MainnetEvm};
use revm::primitives::hardfork::SpecId;
use revm::primitives::{address, Address, Bytes, TxKind};
use revm::state::{AccountInfo, Bytecode};
use revm::{Context, ExecuteEvm, MainBuilder, MainContext};

use crate::abi::encode_step_call;
use crate::artifact::{artifact_path, load_deployed_bytecode, ArtifactError};

/// Base cost of every transaction.
pub const TX_BASE_GAS: u64 = 21_000;

/// Where the verifier's code is placed.
const STEP_ADDRESS: Address = address!("0x00000000000000000000000000000000000057e9");
/// The caller of every call.
const CALLER: Address = address!("0x0000000000000000000000000000000000c0ffee");
/// Gas limit of each call (far above what a step needs).
const CALL_GAS_LIMIT: u64 = 10_000_000;

/// The EVM could not run a call at all (not a revert: the transaction itself was invalid).
#[derive(Debug, thiserror::Error)]
pub enum EvmError {
    #[error("the EVM rejected the call transaction: {0}")]
    Transaction(String),
    #[error("the step call halted without a revert ({0}); the contract ran out of gas or hit an invalid opcode")]
    Halt(String),
    #[error("step returned {0} bytes, expected a 32-byte hash")]
    BadReturn(usize),
}

/// Gas figures of one call under the Prague rules (EIP-7623 calldata floor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallGas {
    /// Calldata length in bytes (selector and ABI encoding included).
    pub calldata_bytes: usize,
    /// Standard calldata cost: 4 gas per zero byte, 16 per non-zero byte.
    pub calldata_gas: u64,
    /// Gas spent executing the contract (total spent minus 21000 minus calldata gas).
    pub execution: u64,
    /// Gas the transaction is charged: `max(21000 + calldata + execution, EIP-7623 floor)`.
    pub transaction: u64,
}

/// What the contract answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// `step` returned this post-state hash.
    Accepted([u8; 32]),
    /// `step` reverted with this revert data.
    Reverted(Vec<u8>),
}

impl StepOutcome {
    pub fn hash(&self) -> Option<[u8; 32]> {
        match self {
            StepOutcome::Accepted(h) => Some(*h),
            StepOutcome::Reverted(_) => None,
        }
    }
}

/// Standard calldata gas: 4 per zero byte, 16 per non-zero byte.
pub fn calldata_gas(data: &[u8]) -> u64 {
    data.iter().map(|&b| if b == 0 { 4 } else { 16 }).sum()
}

/// The step verifier deployed on an in-memory EVM.
pub struct StepVerifier {
    evm: MainnetEvm<MainnetContext<CacheDB<EmptyDB>>>,
}

impl std::fmt::Debug for StepVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepVerifier").field("address", &STEP_ADDRESS).finish_non_exhaustive()
    }
}

impl StepVerifier {
    /// Load `Step` from forge's artifact (`contracts/out/Step.sol/Step.json`).
    pub fn load() -> Result<StepVerifier, ArtifactError> {
        let code = load_deployed_bytecode(&artifact_path("Step.sol", "Step"))?;
        Ok(StepVerifier::with_code(code))
    }

    /// A verifier running the given runtime bytecode.
    pub fn with_code(code: Vec<u8>) -> StepVerifier {
        let mut db = CacheDB::<EmptyDB>::default();
        db.insert_account_info(STEP_ADDRESS, AccountInfo::from_bytecode(Bytecode::new_raw(Bytes::from(code))));
        db.insert_account_info(CALLER, AccountInfo::default());
        let evm = Context::mainnet()
            .modify_cfg_chained(|c| c.set_spec_and_mainnet_gas_params(SpecId::PRAGUE))
            .modify_block_chained(|b| b.gas_limit = 30_000_000)
            .with_db(db)
            .build_mainnet();
        StepVerifier { evm }
    }

    /// Call `step(state, proof)`.
    pub fn step(&mut self, state: &[u8], proof: &[u8]) -> Result<(StepOutcome, CallGas), EvmError> {
        self.call(&encode_step_call(state, proof))
    }

    /// Call the verifier with raw calldata (for malformed-encoding tests).
    pub fn call(&mut self, calldata: &[u8]) -> Result<(StepOutcome, CallGas), EvmError> {
        let tx = TxEnv::builder()
            .caller(CALLER)
            .kind(TxKind::Call(STEP_ADDRESS))
            .gas_limit(CALL_GAS_LIMIT)
            .gas_price(0)
            .nonce(0)
            .data(Bytes::copy_from_slice(calldata))
            .build()
            .map_err(|e| EvmError::Transaction(format!("{e:?}")))?;
        let result = self.evm.transact(tx).map_err(|e| EvmError::Transaction(format!("{e:?}")))?.result;
        let calldata_gas = calldata_gas(calldata);
        let gas_of = |spent: u64, charged: u64| CallGas {
            calldata_bytes: calldata.len(),
            calldata_gas,
            execution: spent.saturating_sub(TX_BASE_GAS + calldata_gas),
            transaction: charged,
        };
        match result {
            ExecutionResult::Success { gas, output, .. } => {
                let out = match output {
                    Output::Call(b) => b,
                    Output::Create(b, _) => b,
                };
                let hash: [u8; 32] = out.as_ref().try_into().map_err(|_| EvmError::BadReturn(out.len()))?;
                Ok((StepOutcome::Accepted(hash), gas_of(gas.total_gas_spent(), gas.tx_gas_used())))
            }
            ExecutionResult::Revert { gas, output, .. } => {
                Ok((StepOutcome::Reverted(output.to_vec()), gas_of(gas.total_gas_spent(), gas.tx_gas_used())))
            }
            ExecutionResult::Halt { reason, .. } => Err(EvmError::Halt(format!("{reason:?}"))),
        }
    }
}
