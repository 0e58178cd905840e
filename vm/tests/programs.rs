//! The C test programs (built here with Debian's riscv64-unknown-elf-gcc) run in the VM
//! exactly as natively (host build) and under unicorn; every step's witness-only post-state
//! hash equals full execution; checkpoints rebuild any step.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};

use opml_vm::{step, Checkpoints, Machine, Status};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Run to the end, capturing stdout and stderr.
fn run_captured(elf: &[u8]) -> (Machine, Vec<u8>, Vec<u8>) {
    let mut m = Machine::from_elf(elf).expect("load");
    let out: Arc<Mutex<(Vec<u8>, Vec<u8>)>> = Arc::default();
    let o = out.clone();
    m.set_output(Box::new(move |fd, b| {
        let mut g = o.lock().unwrap();
        if fd == 1 {
            g.0.extend_from_slice(b)
        } else {
            g.1.extend_from_slice(b)
        }
    }));
    m.run(50_000_000);
    let g = out.lock().unwrap().clone();
    (m, g.0, g.1)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

const WITH_HOST: [&str; 7] = ["hello", "sort", "hash", "bignum", "recursion", "subword", "long"];

#[test]
fn programs_match_their_host_build() {
    for name in WITH_HOST {
        let (m, stdout, _) = run_captured(&common::program(name));
        assert_eq!(m.status, Status::Exited, "{name}: {m:?}");
        let host = Command::new(common::programs().join(format!("{name}.host"))).output().expect("run host build");
        assert_eq!(String::from_utf8_lossy(&stdout), String::from_utf8_lossy(&host.stdout), "{name}: stdout");
        assert_eq!(Some(m.exit_code as i32 & 0xff), host.status.code(), "{name}: exit code");
    }
}

#[test]
fn programs_match_unicorn_registers_output_and_step_count() {
    for name in WITH_HOST {
        let (m, stdout, stderr) = run_captured(&common::program(name));
        let path = common::programs().join(format!("{name}.elf"));
        let out = common::run_oracle(&["elf", path.to_str().unwrap()], b"");
        let j: serde_json::Value = serde_json::from_slice(&out).expect("oracle json");
        assert!(j["error"].is_null(), "{name}: unicorn error {}", j["error"]);
        assert_eq!(j["exit_code"].as_u64(), Some(m.exit_code as u64), "{name}: exit code");
        assert_eq!(j["stdout_hex"].as_str(), Some(hex(&stdout).as_str()), "{name}: stdout");
        assert_eq!(j["stderr_hex"].as_str(), Some(hex(&stderr).as_str()), "{name}: stderr");
        assert_eq!(j["insns"].as_u64(), Some(m.step), "{name}: step count");
        assert_eq!(j["pc"].as_u64(), Some(m.pc as u64), "{name}: final pc");
        let regs: Vec<u32> = j["regs"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(regs, m.regs.to_vec(), "{name}: registers");
    }
}

#[test]
fn dot4_program_checks_itself() {
    let (m, stdout, _) = run_captured(&common::program("dot4"));
    let text = String::from_utf8_lossy(&stdout);
    assert!(text.contains("errors=0") && !text.contains("FAILED"), "{text}");
    assert_eq!(m.status, Status::Exited);
    // 70 = 5 + 12 + 21 + 32, the dot product of lanes 1..4 and 5..8 the program checks last.
    assert_eq!(m.exit_code, 70);
}

/// Every step's witness gives the executed post-state; one random byte flip per step is
/// caught.
fn witness_every_step(name: &str) {
    let mut m = Machine::from_elf(&common::program(name)).expect("load");
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut steps = 0u64;
    while !m.is_halted() {
        let w = m.step_with_witness();
        let got = step(&w.state, &w.proof).unwrap_or_else(|e| panic!("{name} step {}: rejected: {e}", w.step));
        assert_eq!(got, w.post_state_hash, "{name} step {}", w.step);
        let (mut s, mut p) = (w.state.clone(), w.proof.clone());
        let pos = rng.gen_range(0..s.len() + p.len());
        // Flip a byte of the proof, or of the state outside the registers (register flips
        // may legitimately be overwritten by the step; tests/witness_step.rs covers them).
        if pos < s.len() {
            let pos = pos % opml_vm::state::offset::REGS;
            s[pos] ^= 0x5a;
        } else {
            p[pos - s.len()] ^= 0x5a;
        }
        if let Ok(h) = step(&s, &p) {
            assert_ne!(h, w.post_state_hash, "{name} step {}: tampered witness accepted", w.step);
        }
        steps += 1;
    }
    assert!(steps > 300, "{name} ran only {steps} steps");
}

#[test]
fn witness_every_step_hello() {
    witness_every_step("hello");
}
#[test]
fn witness_every_step_sort() {
    witness_every_step("sort");
}
#[test]
fn witness_every_step_hash() {
    witness_every_step("hash");
}
#[test]
fn witness_every_step_bignum() {
    witness_every_step("bignum");
}
#[test]
fn witness_every_step_recursion() {
    witness_every_step("recursion");
}
#[test]
fn witness_every_step_subword() {
    witness_every_step("subword");
}
#[test]
fn witness_every_step_dot4() {
    witness_every_step("dot4");
}

#[test]
fn checkpoints_rebuild_any_step_like_straight_line_execution() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for name in ["sort", "subword", "bignum"] {
        let elf = common::program(name);
        let every = rng.gen_range(1_000..50_000);
        let mut m = Machine::from_elf(&elf).unwrap();
        let cps = Checkpoints::record(&mut m, u64::MAX, every, |_| {}).unwrap();
        let total = m.step;
        let dir = tempfile::tempdir().unwrap();
        cps.save(dir.path(), &elf).unwrap();
        for _ in 0..6 {
            let s = rng.gen_range(0..total + 10);
            let mut straight = Machine::from_elf(&elf).unwrap();
            straight.run(s);
            let mut restored = cps.restore(s);
            assert_eq!(restored.state(), straight.state(), "{name}: step {s} (every {every})");
            let mut from_disk = Checkpoints::restore_from_dir(dir.path(), &elf, s).unwrap();
            assert_eq!(from_disk.state(), straight.state(), "{name}: step {s} from disk");
            // And the witness at that step is the same.
            assert_eq!(restored.step_with_witness(), straight.step_with_witness());
        }
        let other = common::program("hello");
        assert!(
            Checkpoints::restore_from_dir(dir.path(), &other, 5).is_err(),
            "checkpoints of another program must be refused"
        );
    }
}
