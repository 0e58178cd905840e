//! Random test material: edge values and single-step machines that cover every
//! instruction and fault kind. Used by the VM's own tests and by the Rust <-> EVM
//! differential tests; built only with the `testgen` feature, so that `rand` stays out of
//! the VM that the prover ships.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::interp::Machine;
use crate::isa::{encode, Fault, Kind, Op, Status, EBREAK, ECALL, KINDS, REG_A0, REG_A7, SYS_EXIT, SYS_WRITE};

/// Register values that exercise edge cases.
pub const EDGE_VALUES: [u32; 12] =
    [0, 1, 0xffff_ffff, 0x8000_0000, 0x7fff_ffff, 31, 32, 33, 0xffff_ff80, 0x7f, 0x80, 0xffff_0000];

/// An edge value, a small value or a uniformly random one.
pub fn edge_value(rng: &mut impl Rng) -> u32 {
    match rng.gen_range(0..4) {
        0 | 1 => EDGE_VALUES[rng.gen_range(0..EDGE_VALUES.len())],
        2 => rng.gen_range(0..64u32).wrapping_sub(32),
        _ => rng.gen(),
    }
}

/// A 12-bit signed immediate biased to its edges.
pub fn imm12(rng: &mut impl Rng) -> u32 {
    match rng.gen_range(0..4) {
        0 => [0u32, 1, 0x7ff, (-2048i32) as u32, u32::MAX, 31, 32][rng.gen_range(0..7)],
        1 => rng.gen_range(0..64u32).wrapping_sub(32),
        _ => (rng.gen_range(-2048i32..2048)) as u32,
    }
}

/// What a random case tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseKind {
    /// A valid instruction of the given kind.
    Instruction(Kind),
    /// A step that faults for the given reason.
    Fault(Fault),
    /// A halted machine (fixed point).
    Halted(Status),
}

/// Where a data access lands relative to the instruction.
fn data_target(rng: &mut impl Rng, pc: u32) -> u32 {
    match rng.gen_range(0..6) {
        0 => (pc & !31) | rng.gen_range(0..32),             // same leaf as the fetch
        1 => (pc & !0xfff) | rng.gen_range(0..4096),        // same page
        2 => pc.wrapping_add(rng.gen_range(4096..1 << 20)), // a nearby page
        3 => 0xffff_ffe0 | rng.gen_range(0..32),            // top of memory
        4 => rng.gen_range(0..256),                         // bottom of memory
        _ => rng.gen(),                                     // anywhere
    }
}

/// A machine about to execute one random step, and what the step tests. Covers every
/// instruction kind, every fault reason and halted states.
pub fn random_case(seed: u64) -> (Machine, CaseKind) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut m = Machine::new();
    for i in 1..32 {
        m.regs[i] = edge_value(&mut rng);
    }
    let pc = match rng.gen_range(0..4) {
        0 => 0x0001_0000 + 4 * rng.gen_range(0..1024),
        1 => rng.gen::<u32>() & !3,
        2 => 0xffff_fffc - 4 * rng.gen_range(0..8),
        _ => 4 * rng.gen_range(0..64),
    };
    m.pc = pc;
    m.step = if rng.gen_bool(0.1) { u64::MAX - rng.gen_range(0..2) } else { rng.gen_range(0..1 << 40) };
    // Scatter non-zero data so that proofs carry real siblings.
    for _ in 0..rng.gen_range(0..12) {
        let a = match rng.gen_range(0..3) {
            0 => pc.wrapping_add(rng.gen_range(0..8192)).wrapping_sub(4096),
            1 => rng.gen(),
            _ => rng.gen_range(0..1 << 16),
        } & !3;
        m.memory_mut().write_u32(a, rng.gen());
    }

    let case = match rng.gen_range(0..20) {
        0 => CaseKind::Fault(Fault::ALL[rng.gen_range(0..Fault::ALL.len())]),
        1 => CaseKind::Halted(if rng.gen_bool(0.5) { Status::Exited } else { Status::Faulted }),
        _ => match KINDS[rng.gen_range(0..KINDS.len())] {
            // `ebreak` is a valid encoding whose meaning is a fault.
            Kind::Ebreak => CaseKind::Fault(Fault::Ebreak),
            k => CaseKind::Instruction(k),
        },
    };
    let mut op = Op {
        kind: Kind::Addi,
        rd: rng.gen_range(0..32),
        rs1: rng.gen_range(0..32),
        rs2: rng.gen_range(0..32),
        imm: imm12(&mut rng),
    };
    let word = match case {
        CaseKind::Halted(status) => {
            m.status = status;
            m.exit_code = if status == Status::Faulted { rng.gen_range(1..=8) } else { rng.gen() };
            rng.gen()
        }
        CaseKind::Instruction(kind) => {
            op.kind = kind;
            setup_instruction(&mut rng, &mut m, &mut op, false);
            encode(&op)
        }
        CaseKind::Fault(f) => fault_word(&mut rng, &mut m, &mut op, f),
    };
    let at = m.pc & !3;
    m.memory_mut().write_u32(at, word);
    (m, case)
}

/// Choose operands for `op.kind` so the step is interesting and (unless `misalign`) does
/// not fault.
fn setup_instruction(rng: &mut ChaCha8Rng, m: &mut Machine, op: &mut Op, misalign: bool) {
    use Kind::*;
    let pc = m.pc;
    match op.kind {
        Lui | Auipc => op.imm = rng.gen::<u32>() & 0xffff_f000,
        Jal => {
            let off = if misalign { 2 } else { rng.gen_range(-(1i32 << 18)..(1 << 18)) * 4 };
            op.imm = (off as u32) & 0x1f_fffe;
            op.imm = ((op.imm << 11) as i32 >> 11) as u32;
        }
        Jalr => {
            if op.rs1 == 0 {
                op.rs1 = rng.gen_range(1..32);
            }
            let t = if misalign { rng.gen::<u32>() | 2 } else { rng.gen::<u32>() & !3 };
            let low = if misalign { 0 } else { rng.gen_range(0..2) }; // bit 0 is cleared by jalr
            m.regs[op.rs1 as usize] = (t | low).wrapping_sub(op.imm);
        }
        Beq | Bne | Blt | Bge | Bltu | Bgeu => {
            let off = if misalign { 2 + 4 * rng.gen_range(-100i32..100) } else { 4 * rng.gen_range(-1024i32..1024) };
            op.imm = off as u32;
            if misalign || rng.gen_bool(0.5) {
                // Make the branch taken.
                let (a, b) = (m.regs[op.rs1 as usize], m.regs[op.rs2 as usize]);
                let taken = match op.kind {
                    Beq => a == b,
                    Bne => a != b,
                    Blt => (a as i32) < (b as i32),
                    Bge => (a as i32) >= (b as i32),
                    Bltu => a < b,
                    _ => a >= b,
                };
                if !taken {
                    op.kind = match op.kind {
                        Beq => Bne,
                        Bne => Beq,
                        Blt => Bge,
                        Bge => Blt,
                        Bltu => Bgeu,
                        _ => Bltu,
                    };
                }
            }
        }
        Lb | Lh | Lw | Lbu | Lhu | Sb | Sh | Sw => {
            if op.rs1 == 0 {
                op.rs1 = rng.gen_range(1..32);
            }
            let width = match op.kind {
                Lb | Lbu | Sb => 1,
                Lh | Lhu | Sh => 2,
                _ => 4,
            };
            let mut a = data_target(rng, pc) & !(width - 1);
            if misalign {
                a |= 1;
            }
            m.regs[op.rs1 as usize] = a.wrapping_sub(op.imm);
            if matches!(op.kind, Sb | Sh | Sw) && op.rs2 == op.rs1 {
                op.rs2 = (op.rs1 % 31) + 1;
            }
            let _ = pc;
        }
        Slli | Srli | Srai => op.imm = [0u32, 1, 31, rng.gen_range(0..32)][rng.gen_range(0..4)],
        Ecall => {
            m.regs[REG_A7] = if rng.gen_bool(0.5) { SYS_EXIT } else { SYS_WRITE };
            if m.regs[REG_A7] == SYS_WRITE {
                m.regs[REG_A0] = rng.gen_range(1..3);
                m.regs[crate::isa::REG_A2] = rng.gen_range(0..64);
            }
        }
        _ => {}
    }
}

/// An instruction word (and operands) that faults with `f`.
fn fault_word(rng: &mut ChaCha8Rng, m: &mut Machine, op: &mut Op, f: Fault) -> u32 {
    use Kind::*;
    match f {
        Fault::InvalidInstruction => {
            let invalid = [
                0u32,
                0x0000_100f,
                0x3000_2073,
                0x0200_1093,
                0x4000_1093,
                0x0000_3003,
                0x0000_3023,
                0x0000_2063,
                0x0000_1067,
                0x0000_100b,
                0x0200_000b,
                0x0020_0073,
                0x8000_0033,
                0xffff_ffff,
            ];
            loop {
                let w = if rng.gen_bool(0.5) { invalid[rng.gen_range(0..invalid.len())] } else { rng.gen() };
                if crate::isa::decode(w).kind == Invalid {
                    return w;
                }
            }
        }
        Fault::MisalignedFetch => {
            m.pc |= rng.gen_range(1..4);
            rng.gen()
        }
        Fault::MisalignedJump => {
            op.kind = [Jal, Jalr, Beq, Bne, Blt, Bge, Bltu, Bgeu][rng.gen_range(0..8)];
            setup_instruction(rng, m, op, true);
            encode(op)
        }
        Fault::MisalignedLoad => {
            op.kind = [Lh, Lw, Lhu][rng.gen_range(0..3)];
            setup_instruction(rng, m, op, true);
            encode(op)
        }
        Fault::MisalignedStore => {
            op.kind = [Sh, Sw][rng.gen_range(0..2)];
            setup_instruction(rng, m, op, true);
            encode(op)
        }
        Fault::UnsupportedSyscall => {
            m.regs[REG_A7] = loop {
                let v = edge_value(rng);
                if v != SYS_EXIT && v != SYS_WRITE {
                    break v;
                }
            };
            ECALL
        }
        Fault::BadWriteFd => {
            m.regs[REG_A7] = SYS_WRITE;
            m.regs[REG_A0] = loop {
                let v = edge_value(rng);
                if v != 1 && v != 2 {
                    break v;
                }
            };
            ECALL
        }
        Fault::Ebreak => EBREAK,
    }
}
