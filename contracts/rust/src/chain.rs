//! A general in-process chain on [`revm`]: deploy forge artifacts (constructor arguments,
//! linked libraries), send calls from any address with value, control the block timestamp,
//! read and set balances, collect logs, and report the gas of every call as
//! [`CallGas`] (execution and transaction gas under the Prague rules).
//!
//! Calls commit their state changes; [`Chain::view`] runs a call and discards them. A revert
//! is not an error: it is a [`Receipt`] whose [`Receipt::reverted`] holds the revert data, so
//! tests can assert which call reverts and why.

use std::path::{Path, PathBuf};

use revm::context::result::{ExecutionResult, Output};
use revm::context::TxEnv;
use revm::database::{CacheDB, EmptyDB};
use revm::handler::{MainnetContext, MainnetEvm};
use revm::primitives::hardfork::SpecId;
use revm::primitives::{Address, Bytes, Log, TxKind, U256};
use revm::state::AccountInfo;
use revm::{Context, ExecuteCommitEvm, ExecuteEvm, MainBuilder, MainContext};

use crate::artifact::artifact_path;
use crate::evm::{calldata_gas, CallGas, TX_BASE_GAS};

/// Gas limit of each transaction (the Prague block gas limit is far above every call here).
pub const TX_GAS_LIMIT: u64 = 30_000_000;
/// Block timestamp of a new chain (seconds).
pub const GENESIS_TIMESTAMP: u64 = 1_700_000_000;

/// Why a call or a deployment could not be carried out (a revert is not an error).
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The EVM rejected the transaction itself (nonce, balance, gas limit ...).
    #[error("the EVM rejected the transaction from {from} to {to}: {msg}")]
    Transaction {
        /// Sender.
        from: Address,
        /// Callee, or "create".
        to: String,
        /// What revm reported.
        msg: String,
    },
    /// Execution halted without a revert (out of gas, invalid opcode, code too large ...).
    #[error("the call from {from} to {to} halted without a revert: {reason}")]
    Halt {
        /// Sender.
        from: Address,
        /// Callee, or "create".
        to: String,
        /// The halt reason.
        reason: String,
    },
    /// A deployment reverted.
    #[error("deploying {what} reverted with data 0x{data}")]
    DeployReverted {
        /// Artifact or "bytecode".
        what: String,
        /// Revert data, hex.
        data: String,
    },
    /// A forge artifact could not be read or linked.
    #[error("forge artifact {path}: {msg}")]
    Artifact {
        /// The artifact file.
        path: PathBuf,
        /// What is wrong (missing file, no creation bytecode, unlinked library ...).
        msg: String,
    },
    /// The database failed (cannot happen with the in-memory database).
    #[error("database: {0}")]
    Database(String),
}

/// What a call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Return data of a successful call (the runtime code for a deployment).
    pub output: Bytes,
    /// `Some(revert data)` when the call reverted (state unchanged).
    pub reverted: Option<Bytes>,
    /// Logs emitted (empty on revert).
    pub logs: Vec<Log>,
    /// Gas of the call.
    pub gas: CallGas,
    /// The created contract's address (deployments only).
    pub created: Option<Address>,
}

impl Receipt {
    /// Whether the call succeeded.
    pub fn ok(&self) -> bool {
        self.reverted.is_none()
    }

    /// The 4-byte selector of the revert data (custom error), if it reverted with one.
    pub fn revert_selector(&self) -> Option<[u8; 4]> {
        let data = self.reverted.as_ref()?;
        data.get(..4).map(|s| [s[0], s[1], s[2], s[3]])
    }
}

/// An in-memory chain: one account space, a block whose timestamp the caller sets.
pub struct Chain {
    evm: MainnetEvm<MainnetContext<CacheDB<EmptyDB>>>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain").field("timestamp", &self.timestamp()).finish_non_exhaustive()
    }
}

impl Default for Chain {
    fn default() -> Self {
        Chain::new()
    }
}

fn to_name(to: Option<Address>) -> String {
    to.map_or_else(|| "create".to_string(), |a| a.to_string())
}

impl Chain {
    /// A new chain (Prague rules, EIP-170 code size limit, gas price 0) at
    /// [`GENESIS_TIMESTAMP`], block 1.
    pub fn new() -> Chain {
        let evm = Context::mainnet()
            .modify_cfg_chained(|c| c.set_spec_and_mainnet_gas_params(SpecId::PRAGUE))
            .modify_block_chained(|b| {
                b.gas_limit = TX_GAS_LIMIT;
                b.timestamp = U256::from(GENESIS_TIMESTAMP);
                b.number = U256::from(1u64);
            })
            .with_db(CacheDB::<EmptyDB>::default())
            .build_mainnet();
        Chain { evm }
    }

    /// Lift (or restore with `Some(24576)`) the deployed code size limit.
    pub fn set_code_size_limit(&mut self, limit: Option<usize>) {
        self.evm.ctx.cfg.limit_contract_code_size = Some(limit.unwrap_or(usize::MAX));
    }

    /// Current block timestamp.
    pub fn timestamp(&self) -> u64 {
        self.evm.ctx.block.timestamp.saturating_to()
    }

    /// Set the block timestamp (and move to the next block).
    pub fn set_timestamp(&mut self, t: u64) {
        self.evm.ctx.block.timestamp = U256::from(t);
        self.evm.ctx.block.number += U256::from(1u64);
    }

    /// Advance the block timestamp by `secs`.
    pub fn warp(&mut self, secs: u64) {
        let t = self.timestamp().saturating_add(secs);
        self.set_timestamp(t);
    }

    fn account(&mut self, a: Address) -> AccountInfo {
        match self.evm.ctx.journaled_state.database.load_account(a) {
            Ok(acc) => acc.info.clone(),
            Err(e) => match e {},
        }
    }

    /// Balance of `a` in wei.
    pub fn balance(&mut self, a: Address) -> U256 {
        self.account(a).balance
    }

    /// Set the balance of `a` (like forge's `deal`).
    pub fn set_balance(&mut self, a: Address, wei: U256) {
        let mut info = self.account(a);
        info.balance = wei;
        self.evm.ctx.journaled_state.database.insert_account_info(a, info);
    }

    /// Runtime code at `a` (empty if none).
    pub fn code(&mut self, a: Address) -> Bytes {
        self.account(a).code.map(|c| c.original_bytes()).unwrap_or_default()
    }

    fn transact(
        &mut self,
        from: Address,
        to: Option<Address>,
        value: U256,
        data: &[u8],
        commit: bool,
    ) -> Result<Receipt, ChainError> {
        let nonce = self.account(from).nonce;
        let tx = TxEnv::builder()
            .caller(from)
            .kind(to.map_or(TxKind::Create, TxKind::Call))
            .value(value)
            .gas_limit(TX_GAS_LIMIT)
            .gas_price(0)
            .nonce(nonce)
            .data(Bytes::copy_from_slice(data))
            .build()
            .map_err(|e| ChainError::Transaction { from, to: to_name(to), msg: format!("{e:?}") })?;
        let result = if commit { self.evm.transact_commit(tx) } else { self.evm.transact(tx).map(|r| r.result) }
            .map_err(|e| ChainError::Transaction { from, to: to_name(to), msg: format!("{e:?}") })?;
        let cd_gas = calldata_gas(data);
        let gas_of = |spent: u64, charged: u64| CallGas {
            calldata_bytes: data.len(),
            calldata_gas: cd_gas,
            execution: spent.saturating_sub(TX_BASE_GAS + cd_gas),
            transaction: charged,
        };
        match result {
            ExecutionResult::Success { gas, logs, output, .. } => {
                let (output, created) = match output {
                    Output::Call(b) => (b, None),
                    Output::Create(b, a) => (b, a),
                };
                Ok(Receipt {
                    output,
                    reverted: None,
                    logs,
                    gas: gas_of(gas.total_gas_spent(), gas.tx_gas_used()),
                    created,
                })
            }
            ExecutionResult::Revert { gas, output, .. } => Ok(Receipt {
                output: Bytes::new(),
                reverted: Some(output),
                logs: Vec::new(),
                gas: gas_of(gas.total_gas_spent(), gas.tx_gas_used()),
                created: None,
            }),
            ExecutionResult::Halt { reason, .. } => {
                Err(ChainError::Halt { from, to: to_name(to), reason: format!("{reason:?}") })
            }
        }
    }

    /// Send a transaction from `from` to `to` with `value` wei and `calldata`; state
    /// changes are committed unless it reverts.
    pub fn call(&mut self, from: Address, to: Address, value: U256, calldata: &[u8]) -> Result<Receipt, ChainError> {
        self.transact(from, Some(to), value, calldata, true)
    }

    /// Run a call from `from` and discard its state changes (an `eth_call`).
    pub fn view(&mut self, from: Address, to: Address, calldata: &[u8]) -> Result<Receipt, ChainError> {
        self.transact(from, Some(to), U256::ZERO, calldata, false)
    }

    /// Deploy `creation` code followed by the ABI-encoded constructor arguments; returns
    /// the new contract's address and the deployment's receipt.
    pub fn deploy(
        &mut self,
        from: Address,
        creation: &[u8],
        ctor_args: &[u8],
        value: U256,
    ) -> Result<(Address, Receipt), ChainError> {
        let mut data = creation.to_vec();
        data.extend_from_slice(ctor_args);
        let r = self.transact(from, None, value, &data, true)?;
        if let Some(d) = &r.reverted {
            return Err(ChainError::DeployReverted { what: "bytecode".into(), data: hex::encode(d) });
        }
        let addr = r.created.ok_or_else(|| ChainError::Halt {
            from,
            to: "create".into(),
            reason: "no contract address returned".into(),
        })?;
        Ok((addr, r))
    }

    /// Deploy `contract` of forge source file `source` (e.g. `"OptimisticML.sol"`,
    /// `"OptimisticML"`) from its artifact, linking the named libraries.
    pub fn deploy_artifact(
        &mut self,
        from: Address,
        source: &str,
        contract: &str,
        ctor_args: &[u8],
        libraries: &[(&str, Address)],
    ) -> Result<(Address, Receipt), ChainError> {
        let path = artifact_path(source, contract);
        let code = load_creation_bytecode(&path, libraries)?;
        self.deploy(from, &code, ctor_args, U256::ZERO).map_err(|e| match e {
            ChainError::DeployReverted { data, .. } => ChainError::DeployReverted { what: contract.to_string(), data },
            e => e,
        })
    }
}

/// The creation bytecode (`bytecode.object`) of a forge artifact with every library
/// placeholder replaced by the address given for that library name.
pub fn load_creation_bytecode(path: &Path, libraries: &[(&str, Address)]) -> Result<Vec<u8>, ChainError> {
    let err = |msg: String| ChainError::Artifact { path: path.to_path_buf(), msg };
    let text = std::fs::read_to_string(path).map_err(|e| {
        err(if e.kind() == std::io::ErrorKind::NotFound {
            "not found: build the contracts first with `contracts/scripts/setup.sh` (npm ci + forge build), \
             or point OPML_CONTRACTS_OUT at forge's out/ directory"
                .to_string()
        } else {
            e.to_string()
        })
    })?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| err(format!("not JSON: {e}")))?;
    let bytecode = json.get("bytecode").ok_or_else(|| err("no field bytecode".into()))?;
    let object =
        bytecode.get("object").and_then(|o| o.as_str()).ok_or_else(|| err("no string field bytecode.object".into()))?;
    let mut hex_code = object.trim_start_matches("0x").to_string();
    if let Some(refs) = bytecode.get("linkReferences").and_then(|r| r.as_object()) {
        for (file, libs) in refs {
            for (name, places) in libs.as_object().into_iter().flatten() {
                let addr = libraries
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, a)| *a)
                    .ok_or_else(|| err(format!("library {file}:{name} is not linked: pass its address")))?;
                let addr_hex = hex::encode(addr.as_slice());
                for p in places.as_array().into_iter().flatten() {
                    let start =
                        p.get("start").and_then(|v| v.as_u64()).ok_or_else(|| err("bad linkReferences".into()))?
                            as usize;
                    let (a, b) = (2 * start, 2 * start + 40);
                    if b > hex_code.len() {
                        return Err(err(format!("link reference of {name} at byte {start} is past the code")));
                    }
                    hex_code.replace_range(a..b, &addr_hex);
                }
            }
        }
    }
    let code =
        hex::decode(&hex_code).map_err(|e| err(format!("bytecode.object is not hex (unlinked library?): {e}")))?;
    if code.is_empty() {
        return Err(err("bytecode.object is empty (abstract contract or interface?)".into()));
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use revm::primitives::address;

    /// Creation code that stores CALLVALUE and the block TIMESTAMP, emits LOG1(topic 7) of
    /// the timestamp and returns a runtime that returns TIMESTAMP as one word.
    fn sample_creation() -> Vec<u8> {
        // runtime: TIMESTAMP PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN
        let runtime = [0x42, 0x60, 0x00, 0x52, 0x60, 0x20, 0x60, 0x00, 0xf3];
        let mut c = vec![
            0x42, 0x60, 0x00, 0x52, // mstore(0, timestamp)
            0x60, 0x07, 0x60, 0x20, 0x60, 0x00, 0xa1, // log1(0, 32, 7)
        ];
        // codecopy(0, offset, len); return(0, len)
        let len = runtime.len() as u8;
        let body_len = 11 + 12;
        c.extend_from_slice(&[0x60, len, 0x60, body_len, 0x60, 0x00, 0x39, 0x60, len, 0x60, 0x00, 0xf3]);
        assert_eq!(c.len(), body_len as usize);
        c.extend_from_slice(&runtime);
        c
    }

    #[test]
    fn deploy_call_timestamp_balance_and_logs() {
        let mut chain = Chain::new();
        let alice = address!("0x00000000000000000000000000000000000a11ce");
        let (addr, r) = chain.deploy(alice, &sample_creation(), &[], U256::ZERO).unwrap();
        assert_eq!(r.logs.len(), 1);
        assert_eq!(r.logs[0].address, addr);
        assert_eq!(r.logs[0].topics()[0], revm::primitives::B256::from(U256::from(7u64)));
        assert_eq!(U256::from_be_slice(&r.logs[0].data.data), U256::from(GENESIS_TIMESTAMP));
        assert_eq!(chain.code(addr).len(), 9);
        chain.warp(100);
        let r = chain.call(alice, addr, U256::ZERO, &[]).unwrap();
        assert!(r.ok());
        assert_eq!(U256::from_be_slice(&r.output), U256::from(GENESIS_TIMESTAMP + 100));
        assert_eq!(r.gas.calldata_bytes, 0);
        assert!(r.gas.transaction >= TX_BASE_GAS);
        // A second deployment from the same sender gets a new address (nonce advanced).
        let (addr2, _) = chain.deploy(alice, &sample_creation(), &[], U256::ZERO).unwrap();
        assert_ne!(addr, addr2);
        // Value transfer to a code-less account and balance bookkeeping.
        let bob = address!("0x0000000000000000000000000000000000000b0b");
        chain.set_balance(alice, U256::from(1000u64));
        let r = chain.call(alice, bob, U256::from(400u64), &[]).unwrap();
        assert!(r.ok());
        assert_eq!(chain.balance(alice), U256::from(600u64));
        assert_eq!(chain.balance(bob), U256::from(400u64));
        // Too much value: the transaction itself is rejected.
        assert!(matches!(chain.call(alice, bob, U256::from(601u64), &[]), Err(ChainError::Transaction { .. })));
        // view() does not commit.
        let r = chain.view(alice, addr, &[]).unwrap();
        assert!(r.ok());
    }

    #[test]
    fn reverts_are_receipts() {
        let mut chain = Chain::new();
        let a = address!("0x00000000000000000000000000000000000a11ce");
        // runtime: PUSH4 0xdeadbeef PUSH1 0xe0 SHL PUSH1 0 MSTORE PUSH1 4 PUSH1 0 REVERT
        let runtime = [0x63, 0xde, 0xad, 0xbe, 0xef, 0x60, 0xe0, 0x1b, 0x60, 0x00, 0x52, 0x60, 0x04, 0x60, 0x00, 0xfd];
        let mut creation = vec![0x60, runtime.len() as u8, 0x60, 12, 0x60, 0x00, 0x39, 0x60, runtime.len() as u8];
        creation.extend_from_slice(&[0x60, 0x00, 0xf3]);
        creation.extend_from_slice(&runtime);
        let (addr, _) = chain.deploy(a, &creation, &[], U256::ZERO).unwrap();
        let r = chain.call(a, addr, U256::ZERO, &[1, 2, 3]).unwrap();
        assert!(!r.ok());
        assert_eq!(r.revert_selector(), Some([0xde, 0xad, 0xbe, 0xef]));
        assert_eq!(r.gas.calldata_bytes, 3);
    }

    #[test]
    fn link_references_are_filled() {
        let dir = std::env::temp_dir().join(format!("opml-chain-link-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("A.json");
        let placeholder = "__$0123456789abcdef0123456789abcdef01$__";
        let json = format!(
            r#"{{"bytecode":{{"object":"0x60{placeholder}00","linkReferences":{{"src/L.sol":{{"L":[{{"start":1,"length":20}}]}}}}}}}}"#
        );
        std::fs::write(&path, json).unwrap();
        let lib = address!("0x1111111111111111111111111111111111111111");
        let code = load_creation_bytecode(&path, &[("L", lib)]).unwrap();
        assert_eq!(code.len(), 22);
        assert_eq!(&code[1..21], lib.as_slice());
        let err = load_creation_bytecode(&path, &[]).unwrap_err().to_string();
        assert!(err.contains("library src/L.sol:L is not linked"), "{err}");
        let err = load_creation_bytecode(&dir.join("missing.json"), &[]).unwrap_err().to_string();
        assert!(err.contains("setup.sh"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
