//! Writes the fixed step-vector set `fixtures/step-vectors/vectors.json` from the Rust VM.
//!
//! ```text
//! cargo run -p opml-contracts --example gen_step_vectors -- fixtures/step-vectors/vectors.json
//! ```
//!
//! Two cases of every instruction kind (from `opml_vm::testgen::random_case`, each named by
//! the kind of the instruction word it executes: the generator may turn a branch into its
//! opposite to make it taken), two of every fault reason, two halted states, and hand-made
//! sign-sensitive cases (`instruction:<Kind>:<what>`: `srai` of a negative value, `blt` with
//! mixed signs, `bgeu` with equal operands, division by zero, `lb` / `lh` of a negative byte). Each vector's post-state hash comes from full
//! execution in the interpreter; `contracts/rust/tests/step_vectors.rs` re-derives every one
//! independently (unicorn for the instructions it models, the spec's rules for faults,
//! halted states, ecall and dot4), and `contracts/test/StepVectors.t.sol` runs them all
//! through the contract.

use std::collections::BTreeMap;

use opml_vm::isa::{decode, encode, Kind, Op};
use opml_vm::testgen::{random_case, CaseKind};
use opml_vm::{Machine, Status};
use serde_json::{json, Value};

const PER_CASE: usize = 2;

fn case_name(case: CaseKind) -> String {
    match case {
        CaseKind::Instruction(k) => format!("instruction:{k:?}"),
        CaseKind::Fault(f) => format!("fault:{}", f.code()),
        CaseKind::Halted(s) => format!("halted:{}", s as u8),
    }
}

/// The sign-sensitive cases: (what, kind, x5, x6, imm, data word at 0x2000). The instruction
/// at 0x10000 is `kind x7, x5, x6 / imm`; a load reads from x5 + imm.
#[allow(clippy::type_complexity)]
const EDGES: &[(&str, Kind, u32, u32, u32, u32)] = &[
    ("negative", Kind::Srai, 0x8000_0f00, 0, 4, 0),
    ("negative-by-31", Kind::Srai, 0x8000_0001, 0, 31, 0),
    ("mixed-signs-taken", Kind::Blt, 0xffff_ffff, 1, 16, 0),
    ("mixed-signs-not-taken", Kind::Blt, 1, 0xffff_ffff, 16, 0),
    ("mixed-signs-taken", Kind::Bltu, 1, 0xffff_ffff, 16, 0),
    ("mixed-signs-taken", Kind::Bge, 1, 0xffff_ffff, 16, 0),
    ("equal", Kind::Bgeu, 0x8000_0000, 0x8000_0000, 16, 0),
    ("equal", Kind::Bge, 0xffff_fff0, 0xffff_fff0, 16, 0),
    ("by-zero", Kind::Div, 0xffff_fff9, 0, 0, 0),
    ("by-zero", Kind::Divu, 7, 0, 0, 0),
    ("by-zero", Kind::Rem, 0xffff_fff9, 0, 0, 0),
    ("by-zero", Kind::Remu, 7, 0, 0, 0),
    ("overflow", Kind::Div, 0x8000_0000, 0xffff_ffff, 0, 0),
    ("overflow", Kind::Rem, 0x8000_0000, 0xffff_ffff, 0, 0),
    ("negative-byte", Kind::Lb, 0x2000, 0, 1, 0x1234_80f0),
    ("negative-byte", Kind::Lbu, 0x2000, 0, 1, 0x1234_80f0),
    ("negative-half", Kind::Lh, 0x2000, 0, 0, 0x1234_80f0),
    ("negative-half", Kind::Lhu, 0x2000, 0, 0, 0x1234_80f0),
];

/// The machine of one sign-sensitive case.
fn edge_machine(kind: Kind, x5: u32, x6: u32, imm: u32, data: u32) -> Machine {
    let mut m = Machine::new();
    m.pc = 0x0001_0000;
    m.step = 7;
    m.regs[5] = x5;
    m.regs[6] = x6;
    m.regs[7] = 0x5555_5555;
    m.memory_mut().write_u32(0x2000, data);
    m.memory_mut().write_u32(0x2004, 0x0bad_f00d);
    let word = encode(&Op { kind, rd: 7, rs1: 5, rs2: 6, imm });
    let pc = m.pc;
    m.memory_mut().write_u32(pc, word);
    m
}

/// The data address of a load or store about to run (which leaf to give unicorn).
fn data_addr(m: &Machine) -> Value {
    if m.status == Status::Running && m.pc & 3 == 0 {
        let op = decode(m.memory().read_u32(m.pc));
        use Kind::*;
        if matches!(op.kind, Lb | Lh | Lw | Lbu | Lhu | Sb | Sh | Sw) {
            return json!(m.regs[op.rs1 as usize].wrapping_add(op.imm));
        }
    }
    Value::Null
}

/// One vector: runs the step with its witness and checks the witness-only step agrees.
fn vector(name: String, case: String, seed: Value, mut m: Machine) -> Result<Value, String> {
    let mem_addr = data_addr(&m);
    let w = m.step_with_witness();
    let rust = opml_vm::step::step(&w.state, &w.proof).map_err(|e| format!("{name}: {e}"))?;
    if rust != w.post_state_hash {
        return Err(format!("{name}: witness-only step disagrees with the interpreter"));
    }
    Ok(json!({
        "name": name,
        "case": case,
        "seed": seed,
        "mem_addr": mem_addr,
        "state": format!("0x{}", hex::encode(&w.state)),
        "proof": format!("0x{}", hex::encode(&w.proof)),
        "post_state_hash": format!("0x{}", hex::encode(w.post_state_hash)),
    }))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args().nth(1).ok_or("usage: gen_step_vectors <out.json>")?;
    let mut taken: BTreeMap<String, usize> = BTreeMap::new();
    let mut vectors = Vec::new();
    for seed in 0..200_000u64 {
        let (m, mut case) = random_case(seed);
        if let CaseKind::Instruction(_) = case {
            // the kind actually executed (a branch may have been flipped to be taken)
            case = CaseKind::Instruction(decode(m.memory().read_u32(m.pc)).kind);
        }
        let name = case_name(case);
        let n = taken.entry(name.clone()).or_default();
        if *n >= PER_CASE {
            continue;
        }
        *n += 1;
        vectors.push(vector(format!("{name}#{}", *n - 1), name, json!(seed), m)?);
    }
    for &(what, kind, x5, x6, imm, data) in EDGES {
        let m = edge_machine(kind, x5, x6, imm, data);
        let case = case_name(CaseKind::Instruction(kind));
        vectors.push(vector(format!("{case}:{what}"), case, Value::Null, m)?);
    }
    vectors.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let doc = json!({
        "description": "opml VM single-step vectors: (state, proof) -> post_state_hash (docs/spec/vm.md §7-§8)",
        "generator": "cargo run -p opml-contracts --example gen_step_vectors -- fixtures/step-vectors/vectors.json",
        "count": vectors.len(),
        "vectors": vectors,
    });
    std::fs::write(&out, serde_json::to_string_pretty(&doc)? + "\n").map_err(|e| format!("{out}: {e}"))?;
    eprintln!("wrote {} vectors to {out}", doc["count"]);
    Ok(())
}
