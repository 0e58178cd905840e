//! `opml devnet up | status | down`: a local chain for trying opml. `up` starts anvil on
//! 127.0.0.1 in the background (its own session: it outlives the command and the
//! terminal), deploys the contracts with demo parameters, and writes the deployment file
//! every chain command falls back to; `down` stops exactly that anvil. Everything lives in
//! the opml home's `devnet/` (`$OPML_HOME`, else `~/.opml`): `devnet.json` (the record),
//! `deployment.json`, `state.json` (anvil's chain) and `anvil.log`.
//!
//! `up` resumes by default: anvil loads the chain `down` saved in `state.json`, and the
//! recorded deployment is kept when its contracts are on that chain with the requested
//! configuration (else new contracts are deployed). `up --fresh` starts a new chain.

#[path = "devnet/accounts.rs"]
pub(crate) mod accounts;
#[path = "devnet/process.rs"]
mod process;
#[path = "devnet/record.rs"]
mod record;

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use opml_cli::anvil::{Anvil, AnvilError};
use opml_cli::game::abi::IOptimisticML;
use serde_json::{json, Value};

use crate::chain::client::Client;
use crate::chain::deploy::{deploy_contracts, ConfigArgs, DEVNET_DEFAULTS};
use crate::chain::deployment::{ConfigJson, Deployment};
use crate::home::{default_deployment, devnet_dir};
use crate::output::output;
use accounts::{dev_accounts, dev_signer, WARNING};
use record::{remove_file, DevnetRecord, Liveness, LOG_FILE, RECORD_FILE, STATE_FILE};

/// anvil's usual port.
const DEFAULT_PORT: u16 = 8545;
/// How long `down` waits for anvil to save its state and exit before killing it.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The dev account that deploys the contracts.
const DEPLOYER: usize = 0;

/// Devnet subcommands.
#[derive(Debug, Subcommand)]
pub enum DevnetCommand {
    /// Start anvil in the background, deploy the contracts, write the default deployment file.
    Up(UpArgs),
    /// Whether the devnet runs: pid, URL, chain id, block number, contract addresses.
    Status(JsonArg),
    /// Stop the devnet's anvil (it saves its chain for the next `up`).
    Down(JsonArg),
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Port on 127.0.0.1 (0: any free port; the one anvil takes is printed and recorded).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Start a new chain instead of resuming the one the last `down` saved.
    #[arg(long)]
    pub fresh: bool,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct JsonArg {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: DevnetCommand) -> Result<ExitCode> {
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
    rt.block_on(async move {
        match cmd {
            DevnetCommand::Up(a) => up(a).await,
            DevnetCommand::Status(a) => status(a.json).await,
            DevnetCommand::Down(a) => down(a.json),
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

async fn up(a: UpArgs) -> Result<()> {
    let dir = devnet_dir()?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let record_file = dir.join(RECORD_FILE);
    if let Some(r) = DevnetRecord::load(&record_file)? {
        if r.liveness() == Liveness::Running {
            bail!(
                "a devnet is already running: anvil pid {} on {}; stop it with `opml devnet down` \
                 (or use another opml home: {})",
                r.pid,
                r.rpc,
                crate::home::HOME_ENV
            );
        }
        // A stale record (anvil gone, or its pid now another process): replaced below.
        remove_file(&record_file)?;
    }
    let (state, log, deployment_file) = (dir.join(STATE_FILE), dir.join(LOG_FILE), default_deployment()?);
    if a.fresh {
        remove_file(&state)?;
        remove_file(&deployment_file)?;
    }
    let resumed = state.is_file();
    let anvil = match Anvil::spawn_background(a.port, Some(&state), &log) {
        Err(AnvilError::PortInUse { port, source }) => {
            bail!("port {port} on 127.0.0.1 is taken ({source}): pass another --port (0: any free one)")
        }
        started => started?,
    };
    let url = anvil.url();
    let client = Client::connect(&url, Some(dev_signer(DEPLOYER)?))?;
    let chain_id = client.chain_id().await?;
    let cfg = a.config.config(&DEVNET_DEFAULTS);
    let kept = if resumed { reusable_deployment(&client, &deployment_file, chain_id, &cfg).await } else { None };
    let redeployed = kept.is_none();
    let mut d = match kept {
        Some(d) => d,
        None => deploy_contracts(&client, &url, cfg).await?,
    };
    d.rpc = url.clone();
    d.save(&deployment_file)?;
    let pid = anvil.pid();
    let proc_start = process::start_ticks(pid).with_context(|| format!("anvil (pid {pid}) exited after starting"))?;
    let r = DevnetRecord {
        pid,
        port: anvil.port(),
        rpc: url,
        chain_id,
        started: unix_now(),
        proc_start,
        argv: anvil.argv().to_vec(),
        state_file: state,
        log_file: log,
        deployment: deployment_file,
    };
    r.save(&record_file)?;
    anvil.detach();
    print_up(&r, &d, resumed, !redeployed, a.json)
}

/// The recorded deployment if it can serve the resumed chain: same chain, its contracts
/// there, the requested configuration.
async fn reusable_deployment(
    c: &Client,
    file: &Path,
    chain_id: u64,
    cfg: &IOptimisticML::Config,
) -> Option<Deployment> {
    let d = Deployment::load(file).ok()?;
    if d.chain_id != chain_id || d.config != ConfigJson::from(cfg) {
        return None;
    }
    for a in [d.step, d.registry, d.game] {
        if !c.has_code(a).await.ok()? {
            return None;
        }
    }
    Some(d)
}

fn accounts_json() -> Result<Value> {
    let list: Vec<Value> = dev_accounts()?
        .iter()
        .enumerate()
        .map(|(i, (addr, key))| json!({ "index": i, "address": addr.to_string(), "private_key": key }))
        .collect();
    Ok(Value::Array(list))
}

fn print_up(r: &DevnetRecord, d: &Deployment, resumed: bool, kept: bool, json_out: bool) -> Result<()> {
    let c = &d.config;
    let v = json!({
        "rpc": r.rpc,
        "port": r.port,
        "pid": r.pid,
        "chain_id": r.chain_id,
        "resumed": resumed,
        "deployment_kept": kept,
        "deployment_file": r.deployment.display().to_string(),
        "deployment": serde_json::to_value(d)?,
        "state_file": r.state_file.display().to_string(),
        "log_file": r.log_file.display().to_string(),
        "accounts": accounts_json()?,
        "accounts_warning": WARNING,
    });
    let chain = if resumed { "resumed its saved chain" } else { "new chain" };
    let contracts = if kept { "kept the deployment" } else { "deployed" };
    let mut human = format!(
        "devnet up: anvil pid {} on {} (chain {}, {chain}), log {}\n\
         {contracts}: OptimisticML {}, ModelRegistry {}, Step {}\n\
         game: arity {}, VM depth {}, challenge window {} s, clock {} s per side, bonds {} / {} wei\n\
         deployment file {} (chain commands use it when no --deployment is given)\n\
         dev accounts, funded by anvil with 10000 ETH each at genesis ({WARNING}):\n",
        r.pid,
        r.rpc,
        r.chain_id,
        r.log_file.display(),
        d.game,
        d.registry,
        d.step,
        c.arity,
        c.vm_depth,
        c.challenge_window,
        c.clock,
        c.submitter_bond,
        c.challenger_bond,
        r.deployment.display(),
    );
    for (i, (addr, key)) in dev_accounts()?.iter().enumerate() {
        human += &format!("  ({i}) {addr}  key {key}\n");
    }
    human += "stop it with `opml devnet down`";
    output(json_out, v, human);
    Ok(())
}

async fn status(json_out: bool) -> Result<()> {
    let record_file = devnet_dir()?.join(RECORD_FILE);
    let r = match DevnetRecord::load(&record_file)? {
        Some(r) => r,
        None => {
            let v = json!({ "running": false });
            output(json_out, v, "no devnet: start one with `opml devnet up`".into());
            return Ok(());
        }
    };
    if let Some(why) = not_running(&r) {
        let v = json!({ "running": false, "pid": r.pid, "rpc": r.rpc, "reason": why });
        output(json_out, v, format!("devnet not running: {why}; `opml devnet up` starts it again"));
        return Ok(());
    }
    let c = Client::connect(&r.rpc, None)?;
    let (chain_id, block) = (c.chain_id().await?, c.block_number().await?);
    let d = Deployment::load(&r.deployment)?;
    let v = json!({
        "running": true,
        "pid": r.pid,
        "rpc": r.rpc,
        "port": r.port,
        "chain_id": chain_id,
        "block": block,
        "started": r.started,
        "state_file": r.state_file.display().to_string(),
        "log_file": r.log_file.display().to_string(),
        "deployment_file": r.deployment.display().to_string(),
        "deployment": serde_json::to_value(&d)?,
    });
    let human = format!(
        "devnet running: anvil pid {} on {} (chain {chain_id}, block {block}), up {} s\n\
         OptimisticML {}, ModelRegistry {}, Step {} (deployment file {})",
        r.pid,
        r.rpc,
        unix_now().saturating_sub(r.started),
        d.game,
        d.registry,
        d.step,
        r.deployment.display()
    );
    output(json_out, v, human);
    Ok(())
}

/// Why the recorded anvil is not running, or `None` if it is.
fn not_running(r: &DevnetRecord) -> Option<String> {
    match r.liveness() {
        Liveness::Running => None,
        Liveness::Gone => Some(format!("anvil pid {} has exited", r.pid)),
        Liveness::Reused { cmdline } => Some(format!("pid {} is now another process (`{cmdline}`)", r.pid)),
    }
}

fn down(json_out: bool) -> Result<()> {
    let record_file = devnet_dir()?.join(RECORD_FILE);
    let Some(r) = DevnetRecord::load(&record_file)? else {
        output(json_out, json!({ "stopped": false }), "no devnet is running (nothing recorded)".into());
        return Ok(());
    };
    if let Some(why) = not_running(&r) {
        remove_file(&record_file)?;
        let v = json!({ "stopped": false, "pid": r.pid, "reason": why });
        output(json_out, v, format!("no devnet is running: {why}; removed its record (nothing signalled)"));
        return Ok(());
    }
    // SIGTERM: anvil writes its state file, then exits.
    process::signal(r.pid, libc::SIGTERM).with_context(|| format!("stopping anvil pid {}", r.pid))?;
    let mut killed = false;
    if !process::wait_gone(r.pid, STOP_TIMEOUT) {
        // Still ours? It was a moment ago; check again before the hard stop.
        if r.liveness() == Liveness::Running {
            process::signal(r.pid, libc::SIGKILL).with_context(|| format!("killing anvil pid {}", r.pid))?;
            killed = true;
        }
        if !process::wait_gone(r.pid, STOP_TIMEOUT) {
            bail!("anvil pid {} did not exit after SIGTERM and SIGKILL", r.pid);
        }
    }
    remove_file(&record_file)?;
    let saved = if killed {
        format!("killed after {} s without exiting: its chain was not saved", STOP_TIMEOUT.as_secs())
    } else {
        format!("its chain is saved in {} (`opml devnet up` resumes it, `--fresh` starts over)", r.state_file.display())
    };
    let v =
        json!({ "stopped": true, "pid": r.pid, "killed": killed, "state_file": r.state_file.display().to_string() });
    output(json_out, v, format!("stopped anvil pid {} ({}); {saved}", r.pid, r.rpc));
    Ok(())
}
