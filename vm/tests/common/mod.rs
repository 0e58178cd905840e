//! Shared helpers of the VM integration tests: the repo layout, the C test programs and the
//! unicorn oracle.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf()
}

/// The project venv's Python (installed by scripts/setup.sh).
pub fn python() -> PathBuf {
    let p = std::env::var_os("OPML_PYTHON").map(PathBuf::from).unwrap_or_else(|| repo().join(".venv/bin/python"));
    assert!(p.exists(), "{} missing: run `bash scripts/setup.sh` first (it installs unicorn)", p.display());
    p
}

pub fn oracle() -> PathBuf {
    repo().join("vm/tests/oracle/unicorn_oracle.py")
}

/// Build every C test program once per test binary, with the Debian RISC-V toolchain, into
/// a fresh directory (a short `long`). Returns that directory.
pub fn programs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("opml-programs-{}", std::process::id()));
        let status = Command::new("bash")
            .arg(repo().join("fixtures/programs/build.sh"))
            .arg(&dir)
            .env("LONG_ITERS", "3000")
            .status()
            .expect("run fixtures/programs/build.sh");
        assert!(
            status.success(),
            "building the C test programs failed (is gcc-riscv64-unknown-elf installed? run scripts/setup.sh)"
        );
        dir
    })
}

pub fn program(name: &str) -> Vec<u8> {
    let p = programs().join(format!("{name}.elf"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Run the unicorn oracle with `args`, feeding `stdin`; returns stdout.
pub fn run_oracle(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new(python())
        .arg(oracle())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the unicorn oracle");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        input.write_all(&data).expect("write to oracle");
    });
    let out = child.wait_with_output().expect("oracle output");
    writer.join().expect("writer thread");
    assert!(out.status.success(), "unicorn oracle failed: {:?}", out.status);
    out.stdout
}
