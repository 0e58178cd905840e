//! TEMPORARY SHIM (lead): replaced by h2-cli's home.rs at merge.
use std::path::PathBuf;

use anyhow::{anyhow, Result};

pub fn home_dir() -> Result<PathBuf> {
    if let Some(h) = std::env::var_os("OPML_HOME") {
        return Ok(PathBuf::from(h));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".opml")).ok_or_else(|| anyhow!("no OPML_HOME or HOME"))
}
