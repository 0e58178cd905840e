//! Rust <-> EVM differential test over random single steps: every instruction kind, every
//! fault reason and halted states (`opml_vm::testgen::random_case`), plus random corruptions
//! of the same witnesses that both sides must accept or reject alike.

mod common;

use std::collections::BTreeSet;

use opml_vm::isa::{decode, KINDS};
use opml_vm::testgen::{random_case, CaseKind};
use opml_vm::{Fault, Status};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CASES: u64 = 10_000;

#[test]
fn random_single_steps_agree_with_the_rust_vm() {
    let mut v = common::verifier();
    let mut kinds = BTreeSet::new();
    let mut faults = BTreeSet::new();
    let mut halted = BTreeSet::new();
    for seed in 0..CASES {
        let (mut m, case) = random_case(seed);
        if m.status == Status::Running && m.pc & 3 == 0 {
            // Coverage by what is really executed: the decoded word at pc.
            kinds.insert(format!("{:?}", decode(m.memory().read_u32(m.pc)).kind));
        }
        let w = m.step_with_witness();
        // The Rust witness-only step agrees with full execution ...
        let rust = opml_vm::step::step(&w.state, &w.proof)
            .unwrap_or_else(|e| panic!("seed {seed} ({case:?}): Rust step rejected an honest witness: {e}"));
        assert_eq!(rust, w.post_state_hash, "seed {seed} ({case:?}): Rust step vs interpreter");
        // ... and the contract agrees with both.
        let got = common::assert_same(&mut v, &w.state, &w.proof, &format!("seed {seed} ({case:?})"));
        assert_eq!(got, Some(w.post_state_hash), "seed {seed} ({case:?}): contract rejected an honest witness");
        match case {
            CaseKind::Instruction(_) => {}
            CaseKind::Fault(f) => {
                assert_eq!(m.fault(), Some(f), "seed {seed}: generator promised fault {f:?}");
                faults.insert(f.code());
            }
            CaseKind::Halted(s) => {
                halted.insert(s as u8);
            }
        }
    }
    // Every kind with an encoding, plus invalid encodings.
    assert_eq!(kinds.len(), KINDS.len() + 1, "not every instruction kind was covered: {kinds:?}");
    assert!(kinds.contains("Invalid"));
    assert_eq!(faults.len(), Fault::ALL.len(), "not every fault was covered: {faults:?}");
    assert_eq!(halted, [Status::Exited as u8, Status::Faulted as u8].into_iter().collect());
}

/// Corrupt a witness in one random way.
fn corrupt(rng: &mut ChaCha8Rng, state: &mut Vec<u8>, proof: &mut Vec<u8>) {
    match rng.gen_range(0..9) {
        8 => {
            // a state of the wrong length
            if rng.gen_bool(0.5) {
                state.pop();
            } else {
                state.push(rng.gen());
            }
        }
        0 if !proof.is_empty() => {
            let i = rng.gen_range(0..proof.len());
            proof[i] ^= 1 << rng.gen_range(0..8);
        }
        1 if !proof.is_empty() => {
            let n = rng.gen_range(1..=proof.len().min(40));
            proof.truncate(proof.len() - n);
        }
        2 => {
            let n = rng.gen_range(1..40);
            proof.extend((0..n).map(|_| rng.gen::<u8>()));
        }
        3 => {
            // any state byte, including status and exit code
            let i = rng.gen_range(0..state.len());
            state[i] ^= 1 << rng.gen_range(0..8);
        }
        4 => state[44] = rng.gen_range(0..4),
        5 => {
            let i = rng.gen_range(45..49);
            state[i] = rng.gen();
        }
        6 if proof.len() >= 36 => {
            // a mask bit (fetch mask starts at byte 32)
            let i = 32 + rng.gen_range(0..4);
            proof[i] ^= 1 << rng.gen_range(0..8);
        }
        _ => {
            // a register (changes addresses and values)
            let r = rng.gen_range(1..32);
            let i = 49 + 4 * (r - 1) + rng.gen_range(0..4);
            state[i] = rng.gen();
        }
    }
}

#[test]
fn corrupted_witnesses_are_accepted_or_rejected_alike() {
    let mut v = common::verifier();
    let mut rng = ChaCha8Rng::seed_from_u64(0x0bad_5eed);
    let (mut accepted, mut rejected) = (0, 0);
    for seed in 0..3_000u64 {
        let (mut m, case) = random_case(1_000_000 + seed);
        let w = m.step_with_witness();
        let (mut state, mut proof) = (w.state.clone(), w.proof.clone());
        corrupt(&mut rng, &mut state, &mut proof);
        match common::assert_same(&mut v, &state, &proof, &format!("corrupted seed {seed} ({case:?})")) {
            Some(_) => accepted += 1,
            None => rejected += 1,
        }
    }
    // Both outcomes must occur, or the test exercises nothing.
    assert!(accepted > 100 && rejected > 100, "accepted {accepted}, rejected {rejected}");
}
