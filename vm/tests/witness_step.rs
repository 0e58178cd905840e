//! The witness-only step equals full execution, and tampered witnesses never pass as the
//! honest post-state.

use std::collections::HashSet;

use opml_merkle::keccak256;
use opml_vm::isa::{Kind, KINDS};
use opml_vm::testgen::{random_case, CaseKind};
use opml_vm::{step, Fault, Machine, Status, Witness};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CASES: u64 = 20_000;

/// Register overwritten by the step's instruction, if any. Flipping that register in the
/// pre-state is a different pre-state (its hash differs, which is what the dispute game
/// binds) with the same successor, so it is the one state change that may keep the
/// post-state hash.
fn overwritten_reg(w: &Witness, insn: u32) -> Option<std::ops::Range<usize>> {
    let op = opml_vm::isa::decode(insn);
    let writes_rd = !matches!(
        op.kind,
        Kind::Beq
            | Kind::Bne
            | Kind::Blt
            | Kind::Bge
            | Kind::Bltu
            | Kind::Bgeu
            | Kind::Sb
            | Kind::Sh
            | Kind::Sw
            | Kind::Fence
            | Kind::Ebreak
            | Kind::Invalid
            | Kind::Dot4
    );
    let rd = if op.kind == Kind::Ecall { 10 } else { op.rd as usize };
    (writes_rd && rd != 0 && !w.proof.is_empty()).then(|| {
        let o = opml_vm::state::offset::REGS + 4 * (rd - 1);
        o..o + 4
    })
}

/// Flip one byte of the witness; the step must reject it or give another hash (except a
/// flip of the register the step overwrites, see [`overwritten_reg`]).
fn flip_detected(w: &Witness, pos: usize, flip: u8, insn: u32) -> bool {
    let (mut state, mut proof) = (w.state.clone(), w.proof.clone());
    if pos < state.len() {
        state[pos] ^= flip;
    } else {
        proof[pos - state.len()] ^= flip;
    }
    match step(&state, &proof) {
        Err(_) => true,
        Ok(h) if h != w.post_state_hash => true,
        Ok(_) => overwritten_reg(w, insn).is_some_and(|r| r.contains(&pos)) && keccak256(&state) != keccak256(&w.state),
    }
}

/// The instruction word the witness fetched (0 when the proof is empty).
fn fetched(w: &Witness) -> u32 {
    if w.proof.len() < 32 {
        return 0;
    }
    let pc = u32::from_be_bytes(w.state[32..36].try_into().unwrap());
    let o = (pc & 31) as usize;
    u32::from_le_bytes(w.proof[o..o + 4].try_into().unwrap())
}

fn assert_tamper_detected(w: &Witness, rng: &mut impl Rng, what: &str) {
    let total = w.state.len() + w.proof.len();
    let pos = rng.gen_range(0..total);
    let flip: u8 = rng.gen_range(1..=255);
    assert!(
        flip_detected(w, pos, flip, fetched(w)),
        "{what}: byte {pos} ^ {flip:#x} still gives the honest post-state"
    );
}

#[test]
fn witness_step_equals_full_execution_on_random_single_steps() {
    let mut kinds = HashSet::new();
    let mut faults = HashSet::new();
    let mut halted = HashSet::new();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for seed in 0..CASES {
        let (mut m, case) = random_case(seed);
        let w = m.step_with_witness();
        match case {
            CaseKind::Instruction(k) => {
                assert_eq!(m.fault(), None, "seed {seed}: {k:?} should not fault ({m:?})");
                kinds.insert(format!("{k:?}"));
            }
            CaseKind::Fault(f) => {
                assert_eq!(m.fault(), Some(f), "seed {seed}: expected fault {f:?}");
                faults.insert(f);
            }
            CaseKind::Halted(s) => {
                assert_eq!(w.state, m.state().encode().to_vec(), "seed {seed}: halted machine must not change");
                halted.insert(s);
            }
        }
        let got = step(&w.state, &w.proof).unwrap_or_else(|e| panic!("seed {seed} {case:?}: witness rejected: {e}"));
        assert_eq!(got, w.post_state_hash, "seed {seed} {case:?}: witness-only step differs from execution");
        assert_tamper_detected(&w, &mut rng, &format!("seed {seed} {case:?}"));
    }
    // `ebreak` is covered as the EBREAK fault.
    assert_eq!(kinds.len(), KINDS.len() - 1, "every instruction kind is covered: {kinds:?}");
    assert_eq!(faults.len(), Fault::ALL.len(), "every fault is covered");
    assert_eq!(halted.len(), 2);
}

#[test]
fn every_byte_flip_of_some_witnesses_is_detected() {
    let mut checked = 0;
    for seed in 0..400 {
        let (mut m, case) = random_case(seed);
        let w = m.step_with_witness();
        if seed % 40 != 0 && !matches!(case, CaseKind::Instruction(opml_vm::isa::Kind::Sw | opml_vm::isa::Kind::Lb)) {
            continue;
        }
        for pos in 0..w.state.len() + w.proof.len() {
            for flip in [1u8, 0x80, 0xff] {
                assert!(flip_detected(&w, pos, flip, fetched(&w)), "seed {seed}: byte {pos} ^ {flip:#x} undetected");
                checked += 1;
            }
        }
    }
    assert!(checked > 10_000);
}

#[test]
fn truncated_and_padded_proofs_are_rejected() {
    for seed in 0..300 {
        let (mut m, _) = random_case(seed);
        let w = m.step_with_witness();
        let mut long = w.proof.clone();
        long.push(0);
        assert!(step(&w.state, &long).is_err(), "seed {seed}: padded proof accepted");
        if !w.proof.is_empty() {
            assert!(step(&w.state, &w.proof[..w.proof.len() - 1]).is_err(), "seed {seed}: truncated proof accepted");
        }
        assert!(step(&w.state[..172], &w.proof).is_err());
    }
}

#[test]
fn halted_machine_is_a_fixed_point() {
    let mut m = Machine::new();
    m.memory_mut().write_u32(0, 0x0000_0073); // ecall with a7 = 0: unsupported
    m.step();
    assert_eq!(m.fault(), Some(Fault::UnsupportedSyscall));
    assert_eq!(m.step, 1);
    assert_eq!(m.pc, 0, "a fault keeps the pc");
    let before = m.state_hash();
    for _ in 0..3 {
        let w = m.step_with_witness();
        assert!(w.proof.is_empty());
        assert_eq!(w.post_state_hash, before);
        assert_eq!(step(&w.state, &w.proof).unwrap(), before);
    }
    assert_eq!(m.status, Status::Faulted);
}
