//! `opml vm run | state | witness` end to end, against the library and the host builds of
//! the C test programs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use opml_vm::elf::{write_elf32, SegmentSpec};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn programs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("opml-cli-programs-{}", std::process::id()));
        let ok = Command::new("bash")
            .arg(repo().join("fixtures/programs/build.sh"))
            .arg(&dir)
            .env("LONG_ITERS", "3000")
            .status()
            .unwrap()
            .success();
        assert!(ok, "building the C programs failed: run scripts/setup.sh");
        dir
    })
}

fn elf(name: &str) -> PathBuf {
    programs().join(format!("{name}.elf"))
}

fn opml(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_opml")).args(args).output().expect("run opml")
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn unhex(s: &str) -> Vec<u8> {
    let s = s.trim_start_matches("0x");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn run_passes_output_through_and_exits_with_the_program_code() {
    for name in ["hello", "sort", "bignum"] {
        let out = opml(&["vm", "run", elf(name).to_str().unwrap()]);
        let host = Command::new(programs().join(format!("{name}.host"))).output().unwrap();
        assert_eq!(out.stdout, host.stdout, "{name}: program output passes through to stdout");
        assert_eq!(out.status.code(), host.status.code(), "{name}: exit status is the exit code");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("exited with code") && err.contains("state hash 0x"), "{err}");
    }
}

#[test]
fn run_json_reports_steps_status_exit_code_and_state_hash() {
    let path = elf("recursion");
    let out = opml(&["vm", "run", path.to_str().unwrap(), "--json"]);
    let j = json(&out);
    let mut m = opml_vm::Machine::from_elf(&std::fs::read(&path).unwrap()).unwrap();
    m.run(u64::MAX);
    assert_eq!(j["steps"].as_u64(), Some(m.step));
    assert_eq!(j["status"], "exited");
    assert_eq!(j["exit_code"].as_u64(), Some(m.exit_code as u64));
    assert_eq!(unhex(j["state_hash"].as_str().unwrap()), m.state_hash().to_vec());
    assert!(!j["stdout"].as_str().unwrap().is_empty(), "program output is captured in JSON: {j}");
}

#[test]
fn a_faulting_program_says_where_and_why() {
    // addi x1, x0, 1 ; <invalid word 0xffffffff>
    let code: Vec<u8> = [0x0010_0093u32, 0xffff_ffff].iter().flat_map(|w| w.to_le_bytes()).collect();
    let bytes = write_elf32(0x1_0000, &[SegmentSpec { vaddr: 0x1_0000, data: &code, memsz: 8, executable: true }]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.elf");
    std::fs::write(&path, bytes).unwrap();
    let out = opml(&["vm", "run", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("FAULTED")
            && err.contains("INVALID_INSTRUCTION")
            && err.contains("0x00010004")
            && err.contains("0xffffffff"),
        "{err}"
    );
    let j = json(&opml(&["vm", "run", path.to_str().unwrap(), "--json"]));
    assert_eq!(j["status"], "faulted");
    assert_eq!(j["fault"]["reason"], "INVALID_INSTRUCTION");
    assert_eq!(j["steps"], 2);
}

#[test]
fn step_limit_stops_the_run() {
    let out = opml(&["vm", "run", elf("sort").to_str().unwrap(), "--max-steps", "1000", "--json"]);
    assert_eq!(out.status.code(), Some(124));
    let j = json(&out);
    assert_eq!((j["steps"].as_u64(), j["status"].as_str()), (Some(1000), Some("running")));
}

#[test]
fn state_and_witness_agree_with_each_other_and_the_step_function() {
    let p = elf("hash");
    let p = p.to_str().unwrap();
    for n in ["0", "1", "777", "123456"] {
        let s = json(&opml(&["vm", "state", p, "--step", n, "--json"]));
        let w = json(&opml(&["vm", "witness", p, "--step", n, "--json"]));
        let n1 = (n.parse::<u64>().unwrap() + 1).to_string();
        let next = json(&opml(&["vm", "state", p, "--step", &n1, "--json"]));
        let state = unhex(w["state"].as_str().unwrap());
        let proof = unhex(w["proof"].as_str().unwrap());
        assert_eq!(
            opml_merkle::keccak256(&state).to_vec(),
            unhex(s["state_hash"].as_str().unwrap()),
            "step {n}: witness state is the state"
        );
        assert_eq!(unhex(s["encoded"].as_str().unwrap()), state);
        assert_eq!(w["post_state_hash"], next["state_hash"], "step {n}: post-state is the next state");
        assert_eq!(opml_vm::step(&state, &proof).unwrap().to_vec(), unhex(next["state_hash"].as_str().unwrap()));
        assert_eq!(s["step"].as_u64(), Some(n.parse().unwrap()));
        assert_eq!(s["regs"].as_array().unwrap().len(), 32);
    }
}

#[test]
fn checkpoints_give_the_same_states_and_witnesses() {
    let p = elf("subword");
    let p = p.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let out = opml(&["vm", "run", p, "--checkpoint-dir", d, "--checkpoint-every", "10000"]);
    assert!(out.status.code().is_some());
    assert!(dir.path().join("index.json").exists());
    for n in ["5", "10000", "123457", "264224", "999999"] {
        let plain = json(&opml(&["vm", "witness", p, "--step", n, "--json"]));
        let fast = json(&opml(&["vm", "witness", p, "--step", n, "--json", "--checkpoint-dir", d]));
        assert_eq!(plain, fast, "step {n}");
    }
    // Checkpoints of another program are refused.
    let out = opml(&["vm", "state", elf("hello").to_str().unwrap(), "--step", "5", "--checkpoint-dir", d]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not this one"));
}

#[test]
fn bad_input_gets_a_clear_error() {
    let out = opml(&["vm", "run", "/nonexistent/prog.elf"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/prog.elf"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("text.elf");
    std::fs::write(&path, "not an elf").unwrap();
    let out = opml(&["vm", "run", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot load") && err.contains("text.elf"), "{err}");
}
