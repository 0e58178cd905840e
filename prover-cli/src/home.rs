//! The opml home directory: where commands keep their default files (the devnet's
//! record, state and log, and the deployment file every chain command falls back to).
//! `$OPML_HOME` if set, else `$HOME/.opml`.

use std::path::PathBuf;

use anyhow::{bail, Result};

/// Environment variable overriding the home directory.
pub const HOME_ENV: &str = "OPML_HOME";

/// `$OPML_HOME`, else `$HOME/.opml` (not created here).
pub fn home_dir() -> Result<PathBuf> {
    if let Some(h) = std::env::var_os(HOME_ENV).filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(h));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".opml")),
        None => bail!("no opml home directory: set {HOME_ENV} (or HOME, for $HOME/.opml)"),
    }
}

/// The devnet's directory: its record, anvil's state file and log.
pub fn devnet_dir() -> Result<PathBuf> {
    Ok(home_dir()?.join("devnet"))
}

/// The deployment file `opml devnet up` writes, the last fallback of every chain command.
pub fn default_deployment() -> Result<PathBuf> {
    Ok(devnet_dir()?.join("deployment.json"))
}
