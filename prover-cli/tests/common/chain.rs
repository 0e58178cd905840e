//! Shared by the tests that run `opml watch` processes against anvil: the watcher process,
//! views of the game contract, and waiting on the chain.
// Each test binary includes this file and uses part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use alloy::network::TransactionBuilder;
use alloy::primitives::Address;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy_sol_types::SolCall;
use serde_json::Value;

/// A watcher process, killed on drop; its stdout and stderr (JSON event lines under
/// `--json`) go to `log`.
pub struct Watcher {
    child: Child,
    log: PathBuf,
}

impl Watcher {
    /// Spawn `cmd` (an `opml watch ...` command), appending its output to `log`.
    pub fn spawn(mut cmd: Command, log: PathBuf) -> Watcher {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = cmd.stdout(out).stderr(err).spawn().unwrap();
        Watcher { child, log }
    }

    /// The JSON event lines so far.
    pub fn events(&self) -> Vec<Value> {
        self.text().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// How many events named `event` so far.
    pub fn count(&self, event: &str) -> usize {
        self.events().iter().filter(|v| v["event"] == event).count()
    }

    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Kill the process (SIGKILL) and reap it.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// The log's path.
    pub fn log(&self) -> PathBuf {
        self.log.clone()
    }

    /// The whole log so far.
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A provider for `url` (no signer: the tests read the chain; `opml` processes write it).
pub fn provider(url: &str) -> DynProvider {
    ProviderBuilder::default().connect_http(url.parse().unwrap()).erased()
}

/// `eth_call` of a view of `to`.
pub async fn view<C: SolCall>(p: &DynProvider, to: Address, call: &C) -> C::Return {
    let out = p.call(TransactionRequest::default().with_to(to).with_input(call.abi_encode())).await.unwrap();
    C::abi_decode_returns(&out).unwrap()
}

/// [`view`], or `None` when the call reverts (e.g. a game that does not exist yet).
pub async fn try_view<C: SolCall>(p: &DynProvider, to: Address, call: &C) -> Option<C::Return> {
    let out = p.call(TransactionRequest::default().with_to(to).with_input(call.abi_encode())).await.ok()?;
    C::abi_decode_returns(&out).ok()
}

/// Wait (polling every 250 ms) until `done` holds, or panic after `limit` with `why()`.
pub async fn wait_until<F, Fut>(limit: Duration, mut done: F, why: impl Fn() -> String)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < limit, "not done within {limit:?}: {}", why());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
