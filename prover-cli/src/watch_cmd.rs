//! `opml watch`: one long-running process per account that follows a deployment and acts
//! by itself — as a challenger (re-run every new claim of a known model from the chain's
//! input, challenge the false ones, play each game to its end), as a submitter (defend
//! this account's claims, finalize them, withdraw), or both.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use opml_cli::game::fault::Fault;
use tokio::sync::watch;

use crate::chain::report::{Reporter, Sink};
use crate::chain::{connect, Conn};
use crate::watch::models::ModelStore;
use crate::watch::service::{Roles, WatchConfig, Watcher};

/// Which roles the watcher plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WatchRole {
    /// Re-run new claims, challenge the false ones, play those games.
    Challenger,
    /// Defend this account's claims, finalize them, withdraw.
    Submitter,
    /// Both.
    Both,
}

impl WatchRole {
    fn roles(self) -> Roles {
        Roles {
            challenger: matches!(self, WatchRole::Challenger | WatchRole::Both),
            submitter: matches!(self, WatchRole::Submitter | WatchRole::Both),
        }
    }
}

/// `opml watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Which roles to play.
    #[arg(long, value_enum)]
    pub role: WatchRole,
    /// Folder of bundles (`*.opml`), found by their on-chain model id [default: OPML_HOME/models].
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// Where the watcher keeps its state and per-game caches
    /// [default: OPML_HOME/watch/CHAIN_ID-GAME_CONTRACT/ACCOUNT].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Most CPU jobs (model runs, VM runs) at once [default: the number of cores].
    #[arg(long)]
    pub max_concurrency: Option<usize>,
    /// Milliseconds between passes over the chain.
    #[arg(long, default_value_t = 500)]
    pub poll_ms: u64,
    /// FAULT INJECTION (tests and demos), repeatable: a submitter defends claims it posted
    /// with `--dishonest output|node:K|step:K:S`; `challenge-all` makes a challenger dispute
    /// claims it agrees with.
    #[arg(long, value_name = "SPEC")]
    pub dishonest: Vec<Fault>,
    #[command(flatten)]
    pub conn: Conn,
}

/// The default data directory of an account's watcher of a deployment.
pub fn default_data_dir(
    chain_id: u64,
    game: alloy::primitives::Address,
    me: alloy::primitives::Address,
) -> Result<PathBuf> {
    Ok(crate::home::home_dir()?.join("watch").join(format!("{chain_id}-{game}")).join(me.to_string()))
}

/// The default model store.
pub fn default_models() -> Result<PathBuf> {
    Ok(crate::home::home_dir()?.join("models"))
}

/// Check the faults against the roles.
fn check_faults(role: WatchRole, faults: &[Fault]) -> Result<()> {
    let roles = role.roles();
    for f in faults {
        if f.is_submitter_fault() && !roles.submitter {
            bail!("--dishonest {f} is a submitter's fault: use it with --role submitter or both");
        }
        if !f.is_submitter_fault() && !roles.challenger {
            bail!("--dishonest {f} is a challenger's fault: use it with --role challenger or both");
        }
    }
    Ok(())
}

/// Run the watcher until SIGINT / SIGTERM.
pub fn run(a: WatchArgs) -> Result<ExitCode> {
    check_faults(a.role, &a.dishonest)?;
    if a.max_concurrency == Some(0) {
        bail!("--max-concurrency must be at least 1");
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    rt.block_on(async move {
        let (c, d) = connect(&a.conn, true).await?;
        let me = c.from()?;
        let models_dir = match &a.models {
            Some(p) => p.clone(),
            None => default_models()?,
        };
        if a.models.is_some() && !models_dir.is_dir() {
            bail!("--models {}: not a folder", models_dir.display());
        }
        let models = ModelStore::load(&models_dir)?;
        let data_dir = match &a.data_dir {
            Some(p) => p.clone(),
            None => default_data_dir(d.chain_id, d.game, me)?,
        };
        let cfg = WatchConfig {
            roles: a.role.roles(),
            faults: a.dishonest.clone(),
            poll: Duration::from_millis(a.poll_ms.max(10)),
            max_concurrency: a
                .max_concurrency
                .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)),
            data_dir,
        };
        let report = Reporter::new(a.conn.json, Sink::Stdout);
        let w = Watcher::new(c, &d, cfg, models, report).await?;
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            stop_signal().await;
            let _ = tx.send(true);
        });
        w.run(rx).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// SIGINT or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
