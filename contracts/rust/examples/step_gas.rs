//! Gas of the on-chain step verifier per instruction class, measured on real program runs.
//!
//! ```text
//! bash fixtures/programs/build.sh /tmp/opml-programs
//! cargo run --release -p opml-contracts --example step_gas -- /tmp/opml-programs/*.elf
//! ```
//!
//! Every step of every given program is run through the contract (revm, Prague rules); the
//! table gives per class the mean and max execution gas, mean calldata bytes, and the mean
//! whole-transaction gas (21000 + calldata + execution, or the EIP-7623 floor if higher).
//! Each step is also checked against the Rust witness-only step.

use std::collections::BTreeMap;

use opml_contracts::{StepOutcome, StepVerifier};
use opml_vm::isa::{decode, Kind};
use opml_vm::{Machine, Status};

#[derive(Default)]
struct Stats {
    n: u64,
    exec_sum: u64,
    exec_max: u64,
    bytes_sum: u64,
    bytes_max: u64,
    tx_sum: u64,
}

fn class(m: &Machine) -> &'static str {
    if m.status != Status::Running {
        return "halted";
    }
    if m.pc & 3 != 0 {
        return "fault";
    }
    use Kind::*;
    match decode(m.memory().read_u32(m.pc)).kind {
        Lb | Lh | Lw | Lbu | Lhu => "load",
        Sb | Sh | Sw => "store",
        Beq | Bne | Blt | Bge | Bltu | Bgeu => "branch",
        Jal | Jalr => "jump",
        Mul | Mulh | Mulhsu | Mulhu | Div | Divu | Rem | Remu => "mul/div",
        Ecall => "ecall",
        Dot4 => "dot4",
        Ebreak | Invalid => "fault",
        _ => "alu",
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        return Err("usage: step_gas <program.elf>...".into());
    }
    let mut v = StepVerifier::load()?;
    let mut stats: BTreeMap<&'static str, Stats> = BTreeMap::new();
    for path in &paths {
        let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
        let mut m = Machine::from_elf(&bytes).map_err(|e| format!("{path}: {e}"))?;
        loop {
            let halted = m.status != Status::Running;
            let c = class(&m);
            let w = m.step_with_witness();
            let (out, gas) = v.step(&w.state, &w.proof)?;
            let rust = opml_vm::step::step(&w.state, &w.proof).map_err(|e| format!("{path} step {}: {e}", w.step))?;
            if out != StepOutcome::Accepted(rust) || rust != w.post_state_hash {
                return Err(format!("{path} step {}: contract and Rust VM disagree", w.step).into());
            }
            let s = stats.entry(c).or_default();
            s.n += 1;
            s.exec_sum += gas.execution;
            s.exec_max = s.exec_max.max(gas.execution);
            s.bytes_sum += gas.calldata_bytes as u64;
            s.bytes_max = s.bytes_max.max(gas.calldata_bytes as u64);
            s.tx_sum += gas.transaction;
            if halted {
                break;
            }
        }
    }
    println!("| class | steps | exec gas mean | exec gas max | calldata B mean | calldata B max | tx gas mean |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (c, s) in &stats {
        println!(
            "| {c} | {} | {} | {} | {} | {} | {} |",
            s.n,
            s.exec_sum / s.n,
            s.exec_max,
            s.bytes_sum / s.n,
            s.bytes_max,
            s.tx_sum / s.n
        );
    }
    Ok(())
}
