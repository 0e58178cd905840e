//! One account on one chain: an alloy HTTP provider (with a local signer when a key is
//! given), and the few calls the commands need: send a transaction and wait for its
//! receipt, call a view, read logs, read the chain's time. Every failure names what was
//! sent, the transaction hash when there is one, and the decoded revert.

use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, Bytes, B256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{BlockNumberOrTag, Filter, Log, TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::TransportError;
use alloy_sol_types::SolCall;
use anyhow::{anyhow, Context, Result};
use opml_cli::game::abi::Revert;
use opml_cli::gas::gas_with_margin;

use super::signer::KEY_ENV;

/// Most blocks one `eth_getLogs` query asks for.
pub const LOG_RANGE: u64 = 10_000;

/// How long a sent transaction is waited for before the wait is an error (the move is
/// then retried from the chain's state).
pub const RECEIPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A call or transaction reverted with this decoded error: carried in the error chain, so
/// callers match the error itself, not its text.
#[derive(Debug, thiserror::Error)]
#[error("reverted {0}")]
pub struct Reverted(pub Revert);

/// Whether `e`'s chain holds a revert for which `test` holds.
pub fn reverted_with(e: &anyhow::Error, test: impl Fn(&Revert) -> bool) -> bool {
    e.chain().any(|c| c.downcast_ref::<Reverted>().is_some_and(|r| test(&r.0)))
}

/// The revert data of an RPC error, when the node returned some.
fn revert_data(e: &TransportError) -> Option<Bytes> {
    e.as_error_resp().and_then(|p| p.as_revert_data()).filter(|d| !d.is_empty())
}

/// An RPC error as an error: the decoded revert when there is one, else the error itself.
fn explain(e: TransportError) -> anyhow::Error {
    match revert_data(&e) {
        Some(d) => Reverted(Revert::decode(&d)).into(),
        None => e.into(),
    }
}

/// A provider, the address it signs for (if any), and its URL (for errors).
#[derive(Debug, Clone)]
pub struct Client {
    provider: DynProvider,
    from: Option<Address>,
    rpc: String,
}

impl Client {
    /// Connect to `rpc`; with a signer, transactions are signed locally.
    pub fn connect(rpc: &str, signer: Option<PrivateKeySigner>) -> Result<Client> {
        let url = rpc.parse().with_context(|| format!("--rpc `{rpc}` is not a URL"))?;
        let from = signer.as_ref().map(|s| s.address());
        // Nonces are read from the node for every transaction (one process per key, one
        // transaction at a time): a transaction refused at gas estimation cannot leave a
        // locally cached nonce ahead of the chain, which would park every later one.
        let builder = ProviderBuilder::default().with_gas_estimation().with_simple_nonce_management().fetch_chain_id();
        let provider = match signer {
            Some(s) => builder.wallet(EthereumWallet::from(s)).connect_http(url).erased(),
            None => builder.connect_http(url).erased(),
        };
        Ok(Client { provider, from, rpc: rpc.to_string() })
    }

    /// The signing account.
    pub fn from(&self) -> Result<Address> {
        self.from.ok_or_else(|| {
            anyhow!("this command sends transactions: pass --keystore FILE or --key HEX, or set {KEY_ENV}")
        })
    }

    /// The chain id.
    pub async fn chain_id(&self) -> Result<u64> {
        self.provider.get_chain_id().await.with_context(|| format!("eth_chainId at {}", self.rpc))
    }

    /// The latest block's number.
    pub async fn block_number(&self) -> Result<u64> {
        self.provider.get_block_number().await.with_context(|| format!("eth_blockNumber at {}", self.rpc))
    }

    /// Whether `address` holds code (a deployed contract) at the latest block.
    pub async fn has_code(&self, address: Address) -> Result<bool> {
        let code = self
            .provider
            .get_code_at(address)
            .await
            .with_context(|| format!("eth_getCode({address}) at {}", self.rpc))?;
        Ok(!code.is_empty())
    }

    /// The time the next block will have at the earliest: the latest block's timestamp, or
    /// the wall clock if later (a chain that mines only on demand, like a dev node, keeps an
    /// old latest block while time passes).
    pub async fn now(&self) -> Result<u64> {
        let b = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .context("eth_getBlockByNumber(latest)")?
            .ok_or_else(|| anyhow!("the node returned no latest block"))?;
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        Ok(b.header.timestamp.max(wall))
    }

    /// Send `data` to `to` (a contract creation when `to` is `None`) with `value` wei and
    /// wait for the receipt. `what` names the call in errors.
    pub async fn send(
        &self,
        to: Option<Address>,
        data: Vec<u8>,
        value: U256,
        what: &str,
    ) -> Result<TransactionReceipt> {
        let from = self.from()?;
        let mut tx = TransactionRequest::default().with_from(from).with_value(value);
        tx = match to {
            Some(a) => tx.with_to(a).with_input(data),
            None => tx.with_deploy_code(data),
        };
        // Estimate here and send with a margin (see `opml_cli::gas`).
        let estimate = match self.provider.estimate_gas(tx.clone()).await {
            Ok(g) => g,
            Err(e) => return Err(explain(e).context(format!("{what} from {from}: not sent"))),
        };
        let tx = tx.with_gas_limit(gas_with_margin(estimate));
        let pending = match self.provider.send_transaction(tx.clone()).await {
            Ok(p) => p,
            Err(e) => return Err(explain(e).context(format!("{what} from {from}: not sent"))),
        };
        let hash = *pending.tx_hash();
        let r = pending
            .with_timeout(Some(RECEIPT_TIMEOUT))
            .get_receipt()
            .await
            .with_context(|| format!("{what}: waiting for the receipt of tx {hash}"))?;
        if !r.status() {
            // Replay the call at its block for the revert data.
            let block = r.block_number.unwrap_or_default();
            let limit = match self.provider.get_transaction_by_hash(hash).await {
                Ok(Some(t)) => alloy::consensus::Transaction::gas_limit(&t).to_string(),
                _ => "?".to_string(),
            };
            let here = format!("{what}: tx {hash} failed in block {block} (gas used {} of limit {limit})", r.gas_used);
            return Err(match self.provider.call(tx).block(block.into()).await {
                Err(e) => explain(e).context(here),
                Ok(_) => anyhow!("{here}: reverted (the replay succeeded: out of gas?)"),
            });
        }
        Ok(r)
    }

    /// Send an ABI call to a contract.
    pub async fn send_call<C: SolCall>(
        &self,
        to: Address,
        call: &C,
        value: U256,
        what: &str,
    ) -> Result<TransactionReceipt> {
        self.send(Some(to), call.abi_encode(), value, what).await
    }

    /// `eth_call` of a view; a revert is an error carrying the decoded reason.
    pub async fn view<C: SolCall>(&self, to: Address, call: &C) -> Result<C::Return> {
        let tx = TransactionRequest::default().with_to(to).with_input(call.abi_encode());
        let out = self.provider.call(tx).await.map_err(|e| explain(e).context(format!("{} on {to}", C::SIGNATURE)))?;
        C::abi_decode_returns(&out).with_context(|| format!("{} on {to}: cannot decode the return data", C::SIGNATURE))
    }

    /// Like [`Client::view`], but a revert is returned as its decoded error.
    pub async fn try_view<C: SolCall>(&self, to: Address, call: &C) -> Result<Result<C::Return, Revert>> {
        let tx = TransactionRequest::default().with_to(to).with_input(call.abi_encode());
        match self.provider.call(tx).await {
            Ok(out) => Ok(Ok(C::abi_decode_returns(&out)
                .with_context(|| format!("{} on {to}: cannot decode the return data", C::SIGNATURE))?)),
            Err(e) => match revert_data(&e) {
                Some(d) => Ok(Err(Revert::decode(&d))),
                None => Err(anyhow!("{} on {to}: {e}", C::SIGNATURE)),
            },
        }
    }

    /// The hash of block `n`.
    pub async fn block_hash(&self, n: u64) -> Result<B256> {
        let b = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(n))
            .await
            .with_context(|| format!("eth_getBlockByNumber({n}) at {}", self.rpc))?
            .ok_or_else(|| anyhow!("{} has no block {n}", self.rpc))?;
        Ok(b.header.hash)
    }

    /// The balance of `a`, wei.
    pub async fn balance(&self, a: Address) -> Result<U256> {
        self.provider.get_balance(a).await.with_context(|| format!("eth_getBalance({a}) at {}", self.rpc))
    }

    /// The receipt of a mined transaction.
    pub async fn receipt(&self, hash: B256) -> Result<TransactionReceipt> {
        self.provider
            .get_transaction_receipt(hash)
            .await
            .with_context(|| format!("eth_getTransactionReceipt({hash}) at {}", self.rpc))?
            .ok_or_else(|| anyhow!("no receipt for tx {hash} at {}", self.rpc))
    }

    /// The RPC URL.
    pub fn rpc(&self) -> &str {
        &self.rpc
    }

    /// Logs of `address` in blocks `from..=to` with topic 0 among `signatures`, read in
    /// ranges of at most [`LOG_RANGE`] blocks (nodes cap the range of one query).
    pub async fn logs_between(&self, address: Address, signatures: &[B256], from: u64, to: u64) -> Result<Vec<Log>> {
        let mut out = Vec::new();
        let mut lo = from;
        while lo <= to {
            let hi = to.min(lo.saturating_add(LOG_RANGE - 1));
            let f = Filter::new().address(address).event_signature(signatures.to_vec()).from_block(lo).to_block(hi);
            let logs = self
                .provider
                .get_logs(&f)
                .await
                .with_context(|| format!("eth_getLogs on {address}, blocks {lo}..={hi}, at {}", self.rpc))?;
            out.extend(logs);
            lo = hi + 1;
        }
        Ok(out)
    }

    /// Logs of `address` from block `from`, with topic 1 (the first indexed id) `id` when
    /// given and topic 0 among `signatures`.
    pub async fn logs(&self, address: Address, signatures: Vec<B256>, id: Option<U256>, from: u64) -> Result<Vec<Log>> {
        let mut f = Filter::new().address(address).event_signature(signatures).from_block(from);
        if let Some(id) = id {
            f = f.topic1(B256::from(id));
        }
        self.provider.get_logs(&f).await.with_context(|| format!("eth_getLogs on {address} from block {from}"))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use alloy::primitives::hex;
    use opml_cli::anvil::{Anvil, ANY_PORT};
    use serde_json::Value;

    use super::*;

    /// anvil's first dev account (a public test key).
    const DEV_KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    /// A call estimated in the second of the last write and mined one second later: its
    /// `SSTORE(0, TIMESTAMP)` finds the slot unchanged at estimation (100 gas) and changed at
    /// inclusion (2,900 gas), as a game move charging the mover's clock does. The transaction
    /// must not run out of gas.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_move_mined_a_second_after_its_estimate_has_the_gas_it_needs() {
        let dir = tempfile::tempdir().unwrap();
        let anvil = Anvil::spawn(ANY_PORT, None, &dir.path().join("anvil.log")).unwrap();
        let signer: PrivateKeySigner = DEV_KEY.parse().unwrap();
        let c = Client::connect(&anvil.url(), Some(signer)).unwrap();
        let raw = ProviderBuilder::new().connect_http(anvil.url().parse().unwrap());
        // Init code returning the runtime TIMESTAMP PUSH0 SSTORE STOP (0x425f5500).
        let r = c.send(None, hex!("63425f55005f526004601cf3").to_vec(), U256::ZERO, "deploy").await.unwrap();
        let to = r.contract_address.unwrap();
        let t = c.now().await.unwrap() + 100;
        let _: Value = raw.raw_request("evm_setNextBlockTimestamp".into(), (t,)).await.unwrap();
        c.send(Some(to), Vec::new(), U256::ZERO, "first write").await.unwrap();
        // The next call is estimated with the block time of the last write, then mined at t + 1.
        let _: Value = raw.raw_request("evm_setAutomine".into(), (false,)).await.unwrap();
        let _: Value = raw.raw_request("evm_setNextBlockTimestamp".into(), (t,)).await.unwrap();
        let sender = c.clone();
        let pending = tokio::spawn(async move { sender.send(Some(to), Vec::new(), U256::ZERO, "second write").await });
        let mut waited = 0;
        loop {
            let pool: Value = raw.raw_request("txpool_status".into(), ()).await.unwrap();
            if pool["pending"].as_str().is_some_and(|n| n != "0x0") || pool["pending"].as_u64().is_some_and(|n| n > 0) {
                break;
            }
            waited += 1;
            assert!(waited < 200, "the transaction never reached the pool: {pool}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let _: Value = raw.raw_request("evm_setNextBlockTimestamp".into(), (t + 1,)).await.unwrap();
        let _: Value = raw.raw_request("evm_mine".into(), ()).await.unwrap();
        let receipt = pending.await.unwrap().unwrap();
        assert!(
            receipt.gas_used > 21_000 + 2_100 + 2_900 - 1,
            "the write was charged as a change: {}",
            receipt.gas_used
        );
    }
}
