//! Talking to a chain: the account's client, deployments (deploying and finding them),
//! playing one side of a game, the event reporter, keys and the CPU workers, shared by the
//! chain commands, the watcher, the devnet and the demo.

pub(crate) mod client;
pub(crate) mod deploy;
pub(crate) mod deployment;
pub(crate) mod play;
pub(crate) mod report;
pub(crate) mod signer;
pub(crate) mod workers;

use std::path::PathBuf;

use alloy::rpc::types::TransactionReceipt;
use alloy_sol_types::SolEvent;
use anyhow::{anyhow, bail, Result};
use clap::Args;

use client::Client;
use deployment::Deployment;
use signer::KeyArgs;

/// Where the chain and the contracts are, and who signs.
#[derive(Debug, Args)]
pub struct Conn {
    /// Deployment file written by `opml chain deploy` or `opml devnet up` (default:
    /// $OPML_DEPLOYMENT, else ./deployment.json if it exists, else the devnet's).
    #[arg(long)]
    pub deployment: Option<PathBuf>,
    /// JSON-RPC URL (default: the deployment file's).
    #[arg(long)]
    pub rpc: Option<String>,
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// Find and load the deployment and connect (signing when `signing`), checking the chain id.
pub async fn connect(c: &Conn, signing: bool) -> Result<(Client, Deployment)> {
    let file = deployment::resolve(c.deployment.as_deref())?;
    let d = Deployment::load(&file)?;
    let s = if signing { Some(c.keys.signer()?) } else { None };
    let rpc = c.rpc.clone().unwrap_or_else(|| d.rpc.clone());
    let client = Client::connect(&rpc, s)?;
    let id = client.chain_id().await?;
    if id != d.chain_id {
        bail!("{} is for chain {}, {rpc} is chain {id}", file.display(), d.chain_id);
    }
    Ok((client, d))
}

/// The first event `E` in a receipt.
pub fn event<E: SolEvent>(r: &TransactionReceipt, what: &str) -> Result<E> {
    r.inner
        .logs()
        .iter()
        .find_map(|l| E::decode_log_data(l.data()).ok())
        .ok_or_else(|| anyhow!("{what}: tx {} has no {} event", r.transaction_hash, E::SIGNATURE))
}
