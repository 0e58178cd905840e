//! Rust <-> EVM differential test over every step of the C test programs
//! (`fixtures/programs`, built here with `fixtures/programs/build.sh`; `long` with a small
//! loop count), including the `dot4` program, up to and including the halted fixed point.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use opml_vm::{Machine, Status};

/// Loop count of the `long` program here (its default runs ~1.2e9 instructions).
const LONG_ITERS: &str = "200";
/// A program that has not halted after this many steps fails the test.
const MAX_STEPS: u64 = 2_000_000;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Build the test programs once per test binary into a fresh directory (shared by the
/// tests, which run in parallel); fails with the build script's output.
fn build_programs() -> &'static [PathBuf] {
    static ELVES: OnceLock<Vec<PathBuf>> = OnceLock::new();
    ELVES.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("opml-contracts-programs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let script = workspace_root().join("fixtures/programs/build.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(&dir)
            .env("LONG_ITERS", LONG_ITERS)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed (needs riscv64-unknown-elf-gcc, installed by scripts/setup.sh):\n{}{}",
            script.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut elves: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("read build dir")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "elf"))
            .collect();
        elves.sort();
        elves
    })
}

/// Which steps of a program run are checked against the contract.
#[derive(Clone, Copy)]
enum Coverage {
    /// Every step.
    All,
    /// Every step of small programs; in programs over `head` steps, the first `head` steps,
    /// every `stride`-th step after them, and the halting step and fixed point.
    Sampled { head: u64, stride: u64 },
}

/// Run every program to its end; check the chosen steps (and always the last step and the
/// halted fixed point) in both implementations. Returns the number of steps checked.
fn check_programs(coverage: Coverage, only: &str) -> u64 {
    let elves = build_programs();
    let names: Vec<String> =
        elves.iter().map(|p| p.file_stem().expect("stem").to_string_lossy().into_owned()).collect();
    for expected in ["dot4", "hello", "sort", "subword"] {
        assert!(names.iter().any(|n| n == expected), "program {expected} was not built: {names:?}");
    }
    let mut v = common::verifier();
    let mut total = 0u64;
    for (elf, name) in elves.iter().zip(&names).filter(|(_, n)| only.is_empty() || *n == only) {
        let bytes = std::fs::read(elf).expect("read elf");
        let mut m = Machine::from_elf(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (mut steps, mut checked) = (0u64, 0u64);
        loop {
            let halted = m.status != Status::Running;
            let check = halted
                || match coverage {
                    Coverage::All => true,
                    Coverage::Sampled { head, stride } => steps < head || steps % stride == 0 || is_ecall(&m),
                };
            if check {
                let w = m.step_with_witness();
                let what = format!("{name} step {}", w.step);
                let got = common::assert_same(&mut v, &w.state, &w.proof, &what);
                assert_eq!(got, Some(w.post_state_hash), "{what}: rejected or wrong post-state");
                checked += 1;
            } else {
                m.step();
            }
            steps += 1;
            if halted {
                break;
            }
            assert!(steps < MAX_STEPS, "{name} did not halt within {MAX_STEPS} steps");
        }
        assert_eq!(m.status, Status::Exited, "{name} ended {:?} with code {}", m.status, m.exit_code);
        eprintln!("{name}: {checked} of {steps} steps agree");
        total += checked;
    }
    total
}

/// Whether the next instruction is an `ecall` (always checked: exit and write).
fn is_ecall(m: &Machine) -> bool {
    m.pc & 3 == 0 && m.memory().read_u32(m.pc) == opml_vm::isa::ECALL
}

/// Every step of every program, one test per program so the harness runs them in
/// parallel (about 1.4 million steps in all).
macro_rules! every_step {
    ($($test:ident => $name:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            let checked = check_programs(Coverage::All, $name);
            assert!(checked > 300, "{}: only {checked} steps checked", $name);
        }
    )*};
}

every_step! {
    every_step_of_hello => "hello",
    every_step_of_sort => "sort",
    every_step_of_hash => "hash",
    every_step_of_bignum => "bignum",
    every_step_of_recursion => "recursion",
    every_step_of_subword => "subword",
    every_step_of_dot4 => "dot4",
    every_step_of_long => "long",
}

/// A cheap sampled pass over all programs together (the first 30,000 steps of each, every
/// 97th step after, every ecall and the end), kept for quick local runs with a filter.
#[test]
fn sampled_steps_of_all_programs_agree() {
    let checked = check_programs(Coverage::Sampled { head: 30_000, stride: 97 }, "");
    assert!(checked > 100_000, "only {checked} steps checked");
}
