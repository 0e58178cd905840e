//! Writes the fixed step-vector set `fixtures/step-vectors/vectors.json` from the Rust VM.
//!
//! ```text
//! cargo run -p opml-contracts --example gen_step_vectors -- fixtures/step-vectors/vectors.json
//! ```
//!
//! Two cases of every instruction kind (from `opml_vm::testgen::random_case`), two of every
//! fault reason and two halted states. Each vector's post-state hash comes from full
//! execution in the interpreter; `contracts/rust/tests/step_vectors.rs` re-derives every one
//! independently (unicorn for the instructions it models, the spec's rules for faults,
//! halted states, ecall and dot4), and `contracts/test/StepVectors.t.sol` runs them all
//! through the contract.

use std::collections::BTreeMap;

use opml_vm::isa::{decode, Kind};
use opml_vm::testgen::{random_case, CaseKind};
use opml_vm::Status;
use serde_json::{json, Value};

const PER_CASE: usize = 2;

fn case_name(case: CaseKind) -> String {
    match case {
        CaseKind::Instruction(k) => format!("instruction:{k:?}"),
        CaseKind::Fault(f) => format!("fault:{}", f.code()),
        CaseKind::Halted(s) => format!("halted:{}", s as u8),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args().nth(1).ok_or("usage: gen_step_vectors <out.json>")?;
    let mut taken: BTreeMap<String, usize> = BTreeMap::new();
    let mut vectors = Vec::new();
    for seed in 0..200_000u64 {
        let (mut m, case) = random_case(seed);
        let name = case_name(case);
        let n = taken.entry(name.clone()).or_default();
        if *n >= PER_CASE {
            continue;
        }
        *n += 1;
        // The data address of a load or store (oracle input: which leaf to give unicorn).
        let mut mem_addr = Value::Null;
        if m.status == Status::Running && m.pc & 3 == 0 {
            let op = decode(m.memory().read_u32(m.pc));
            use Kind::*;
            if matches!(op.kind, Lb | Lh | Lw | Lbu | Lhu | Sb | Sh | Sw) {
                mem_addr = json!(m.regs[op.rs1 as usize].wrapping_add(op.imm));
            }
        }
        let w = m.step_with_witness();
        let rust = opml_vm::step::step(&w.state, &w.proof).map_err(|e| format!("seed {seed}: {e}"))?;
        if rust != w.post_state_hash {
            return Err(format!("seed {seed}: witness-only step disagrees with the interpreter").into());
        }
        vectors.push(json!({
            "name": format!("{name}#{}", *n - 1),
            "case": name,
            "seed": seed,
            "mem_addr": mem_addr,
            "state": format!("0x{}", hex::encode(&w.state)),
            "proof": format!("0x{}", hex::encode(&w.proof)),
            "post_state_hash": format!("0x{}", hex::encode(w.post_state_hash)),
        }));
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
