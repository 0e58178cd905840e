//! Shared by the tests that run `opml` on SmolLM2-135M-Instruct Q4_1: the cached model
//! (`scripts/fetch_models.sh`; absent, each test prints why and passes) and the binary.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

/// The cached GGUF, or `None` (with a message) when it is absent.
pub fn model() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("skipping: {} is absent (run scripts/fetch_models.sh)", p.display());
        None
    }
}

/// Run `opml` with `args`.
pub fn opml(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_opml")).args(args).output().expect("run opml")
}

/// Run `opml` with `args`, require success, parse its stdout as JSON.
pub fn json_ok(args: &[&str]) -> Value {
    let out = opml(args);
    assert!(out.status.success(), "opml {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}
