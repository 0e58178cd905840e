//! The devnet's record (`devnet/devnet.json` in the opml home): which anvil `opml devnet
//! up` started, where, and its files; and whether that very process still runs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::process;

/// File names in the devnet directory.
pub const RECORD_FILE: &str = "devnet.json";
pub const STATE_FILE: &str = "state.json";
pub const LOG_FILE: &str = "anvil.log";

/// What `opml devnet up` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevnetRecord {
    pub pid: u32,
    pub port: u16,
    pub rpc: String,
    pub chain_id: u64,
    /// Unix time, seconds.
    pub started: u64,
    /// The process's start time (`/proc/PID/stat`, clock ticks after boot): with the pid,
    /// it tells our anvil from a later process that got the same pid.
    pub proc_start: u64,
    /// anvil's command line, program first.
    pub argv: Vec<String>,
    pub state_file: PathBuf,
    pub log_file: PathBuf,
    pub deployment: PathBuf,
}

/// Whether the recorded process runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// The recorded anvil runs.
    Running,
    /// No process has the pid any more.
    Gone,
    /// The pid is now another process (its command line or start time differ).
    Reused { cmdline: String },
}

impl DevnetRecord {
    /// Read the record; `None` if there is none.
    pub fn load(path: &Path) -> Result<Option<DevnetRecord>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading devnet record {}", path.display())),
        };
        let r = serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: not a devnet record (written by `opml devnet up`); delete it if anvil is not running",
                path.display()
            )
        })?;
        Ok(Some(r))
    }

    /// Write it, pretty-printed.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing devnet record {}", path.display()))
    }

    /// Whether the recorded anvil still runs.
    pub fn liveness(&self) -> Liveness {
        if !process::running(self.pid) {
            return Liveness::Gone;
        }
        let cmdline = process::cmdline(self.pid).unwrap_or_default();
        if cmdline == self.argv && process::start_ticks(self.pid) == Some(self.proc_start) {
            Liveness::Running
        } else {
            Liveness::Reused { cmdline: cmdline.join(" ") }
        }
    }
}

/// Remove `path`; absent already is fine.
pub fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}
