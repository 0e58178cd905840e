//! The deployment file (`opml chain deploy --out F`): the chain, the three contract
//! addresses, the block it starts at and the game configuration; where a command finds it
//! when `--deployment` is not given; and the forge artifacts the deployment is made from.

use std::path::{Path, PathBuf};

use alloy::primitives::Address;
use anyhow::{anyhow, bail, Context, Result};
use opml_cli::game::abi::IOptimisticML;
use serde::{Deserialize, Serialize};

/// Environment variable naming the deployment file when `--deployment` is not given.
pub const DEPLOYMENT_ENV: &str = "OPML_DEPLOYMENT";

/// The deployment file in the working directory (where `opml chain deploy` writes by default).
pub const LOCAL_DEPLOYMENT: &str = "deployment.json";

/// The deployment file a chain command uses: `explicit` (`--deployment`), else
/// `$OPML_DEPLOYMENT`, else `./deployment.json` if it exists, else the devnet's
/// (`opml devnet up`) if it exists. A file named explicitly need not exist here: loading it
/// says so.
pub fn resolve(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(DEPLOYMENT_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let local = PathBuf::from(LOCAL_DEPLOYMENT);
    if local.is_file() {
        return Ok(local);
    }
    let devnet = crate::home::default_deployment();
    match &devnet {
        Ok(d) if d.is_file() => Ok(d.clone()),
        _ => {
            let devnet = match devnet {
                Ok(d) => format!("{} (none)", d.display()),
                Err(e) => format!("the devnet's ({e:#})"),
            };
            bail!(
                "no deployment file: tried --deployment (not given), ${DEPLOYMENT_ENV} (not set), \
                 ./{LOCAL_DEPLOYMENT} (none), {devnet}; start a local chain with `opml devnet up` \
                 or pass --deployment FILE"
            )
        }
    }
}

/// Environment variable naming forge's `out/` directory (as `contracts/rust`'s artifacts).
pub const OUT_DIR_ENV: &str = "OPML_CONTRACTS_OUT";

/// forge's `out/` directory: `$OPML_CONTRACTS_OUT`, else `contracts/out` of this source tree.
pub fn out_dir() -> PathBuf {
    std::env::var_os(OUT_DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts/out"))
}

/// The creation bytecode (`bytecode.object`) of `contract` from `source` (e.g.
/// `Step.sol`, `Step`).
pub fn creation_code(source: &str, contract: &str) -> Result<Vec<u8>> {
    let path = out_dir().join(source).join(format!("{contract}.json"));
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading forge artifact {}: build the contracts first with `contracts/scripts/setup.sh`, \
             or point {OUT_DIR_ENV} at forge's out/ directory",
            path.display()
        )
    })?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("forge artifact {} is not JSON", path.display()))?;
    let object = json
        .pointer("/bytecode/object")
        .and_then(|o| o.as_str())
        .ok_or_else(|| anyhow!("forge artifact {} has no string field bytecode.object", path.display()))?;
    let code = hex::decode(object.trim_start_matches("0x"))
        .with_context(|| format!("forge artifact {}: bytecode.object is not hex", path.display()))?;
    if code.is_empty() {
        bail!("forge artifact {}: bytecode.object is empty", path.display());
    }
    Ok(code)
}

/// The game configuration as written in the deployment file (bonds in wei, decimal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigJson {
    pub arity: u64,
    pub vm_depth: u64,
    pub challenge_window: u64,
    pub clock: u64,
    pub request_timeout: u64,
    pub callback_gas: u64,
    pub submitter_bond: String,
    pub challenger_bond: String,
    pub burn_bps: u16,
}

impl From<&IOptimisticML::Config> for ConfigJson {
    fn from(c: &IOptimisticML::Config) -> Self {
        ConfigJson {
            arity: c.arity,
            vm_depth: c.vmDepth,
            challenge_window: c.challengeWindow,
            clock: c.clock,
            request_timeout: c.requestTimeout,
            callback_gas: c.callbackGas,
            submitter_bond: c.submitterBond.to_string(),
            challenger_bond: c.challengerBond.to_string(),
            burn_bps: c.burnBps,
        }
    }
}

/// What `opml chain deploy` writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// The RPC URL used to deploy (the default of later commands).
    pub rpc: String,
    pub chain_id: u64,
    pub deployer: Address,
    /// Block of the game contract's deployment: logs are read from there.
    pub block: u64,
    pub step: Address,
    pub registry: Address,
    pub game: Address,
    pub handover_verifier: Address,
    pub config: ConfigJson,
}

impl Deployment {
    /// Read a deployment file.
    pub fn load(path: &Path) -> Result<Deployment> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading deployment file {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not a deployment file (written by `opml chain deploy`)", path.display()))
    }

    /// Write it, pretty-printed.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing deployment file {}", path.display()))
    }
}
