//! Differential test against unicorn (RV32): 10,000 random straight-line and forward-jumping
//! instruction sequences over every RV32IM instruction with edge values; registers, pc,
//! touched memory and instruction counts must be equal. Behaviour unicorn models
//! differently by design (misaligned accesses, 2-aligned jump targets) is tested directly.

mod common;

use opml_vm::isa::{decode, encode, Kind, Op, KINDS};
use opml_vm::testgen::{edge_value, imm12};
use opml_vm::{Fault, Machine};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

const SEQUENCES: u64 = 10_000;
const CODE: u32 = 0x0001_0000;
/// Two data regions: one near the code, one high in the address space.
const DATA: [(u32, usize); 2] = [(0x0002_0000, 8192), (0x8000_0000, 4096)];

/// Kinds the random sequences draw from: everything but the system instructions (tested
/// through the C programs and directly) and dot4 (unicorn does not know custom-0).
fn seq_kinds() -> Vec<Kind> {
    KINDS.iter().copied().filter(|k| !matches!(k, Kind::Ecall | Kind::Ebreak | Kind::Dot4)).collect()
}

fn reg(rng: &mut ChaCha8Rng) -> u8 {
    rng.gen_range(0..32)
}

/// A random sequence: instruction words, initial registers and data.
struct Case {
    code: Vec<u32>,
    regs: [u32; 32],
    data: Vec<Vec<u8>>,
}

/// A run of instructions that jumps may target only at its start (so a jump never skips
/// the `lui`/`addi` that set up a load's base register). `jump` is the index of a jump
/// whose offset is resolved once every group's address is known.
struct Group {
    ops: Vec<Op>,
    jump: Option<usize>,
}

fn random_sequence(seed: u64, kinds: &[Kind]) -> Case {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let len = rng.gen_range(4..28);
    let mut groups: Vec<Group> = Vec::with_capacity(len);
    for _ in 0..len {
        let kind = kinds[rng.gen_range(0..kinds.len())];
        let mut op = Op { kind, rd: reg(&mut rng), rs1: reg(&mut rng), rs2: reg(&mut rng), imm: imm12(&mut rng) };
        let group = match kind {
            Kind::Lb | Kind::Lh | Kind::Lw | Kind::Lbu | Kind::Lhu | Kind::Sb | Kind::Sh | Kind::Sw => {
                // Set a base register with lui + addi, then access an aligned address in a
                // data region.
                let (base, size) = DATA[rng.gen_range(0..DATA.len())];
                let width = match kind {
                    Kind::Lb | Kind::Lbu | Kind::Sb => 1,
                    Kind::Lh | Kind::Lhu | Kind::Sh => 2,
                    _ => 4,
                };
                let addr = (base + rng.gen_range(0..size as u32)) & !(width - 1);
                let rs1 = rng.gen_range(1..32);
                let target = addr.wrapping_sub(op.imm);
                let hi = target.wrapping_add(0x800) & 0xffff_f000;
                let lo = target.wrapping_sub(hi);
                op.rs1 = rs1;
                let lui = Op { kind: Kind::Lui, rd: rs1, rs1: 0, rs2: 0, imm: hi };
                let addi = Op { kind: Kind::Addi, rd: rs1, rs1, rs2: 0, imm: lo };
                Group { ops: vec![lui, addi, op], jump: None }
            }
            Kind::Jal => Group { ops: vec![op], jump: Some(0) },
            Kind::Beq | Kind::Bne | Kind::Blt | Kind::Bge | Kind::Bltu | Kind::Bgeu => {
                if rng.gen_bool(0.3) {
                    op.rs2 = op.rs1; // equal operands: exercises the taken/not-taken edge
                }
                Group { ops: vec![op], jump: Some(0) }
            }
            Kind::Jalr => {
                // auipc t, 0 ; jalr rd, t, offset (+1 sometimes: bit 0 is cleared by jalr)
                let t = rng.gen_range(1..32);
                op.rs1 = t;
                let auipc = Op { kind: Kind::Auipc, rd: t, rs1: 0, rs2: 0, imm: 0 };
                Group { ops: vec![auipc, op], jump: Some(1) }
            }
            Kind::Slli | Kind::Srli | Kind::Srai => {
                op.imm = [0, 1, 31, rng.gen_range(0..32)][rng.gen_range(0..4)];
                Group { ops: vec![op], jump: None }
            }
            Kind::Lui | Kind::Auipc => {
                op.imm = rng.gen::<u32>() & 0xffff_f000;
                Group { ops: vec![op], jump: None }
            }
            _ => Group { ops: vec![op], jump: None },
        };
        groups.push(group);
    }
    // Resolve jumps: each goes to the start of a later group or to the end.
    let mut starts = Vec::with_capacity(groups.len() + 1);
    let mut at = 0u32;
    for g in &groups {
        starts.push(at);
        at += 4 * g.ops.len() as u32;
    }
    starts.push(at);
    let n = groups.len();
    for gi in 0..n {
        if let Some(j) = groups[gi].jump {
            let target = starts[rng.gen_range(gi + 1..=n)];
            let op = &mut groups[gi].ops[j];
            op.imm = if op.kind == Kind::Jalr {
                // relative to the auipc just before it
                target - (starts[gi] + 4 * (j as u32 - 1)) + rng.gen_range(0..2)
            } else {
                target - (starts[gi] + 4 * j as u32)
            };
        }
    }
    let code = groups.iter().flat_map(|g| g.ops.iter().map(encode)).collect();
    let mut regs = [0u32; 32];
    for r in regs.iter_mut().skip(1) {
        *r = edge_value(&mut rng);
    }
    let data = DATA.iter().map(|&(_, size)| (0..size).map(|_| rng.gen()).collect()).collect();
    Case { code, regs, data }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Run a case in our VM until the pc reaches the end of the code, checking at every step
/// that the witness-only step gives the executed post-state.
fn run_ours(c: &Case) -> Machine {
    let mut m = Machine::new();
    let bytes: Vec<u8> = c.code.iter().flat_map(|w| w.to_le_bytes()).collect();
    m.memory_mut().write_bytes(CODE, &bytes);
    for (&(base, _), d) in DATA.iter().zip(&c.data) {
        m.memory_mut().write_bytes(base, d);
    }
    m.regs = c.regs;
    m.regs[0] = 0;
    m.set_pc(CODE);
    let end = CODE + 4 * c.code.len() as u32;
    let mut guard = 0;
    while m.pc != end && !m.is_halted() {
        let w = m.step_with_witness();
        assert_eq!(opml_vm::step(&w.state, &w.proof), Ok(w.post_state_hash), "witness-only step at step {}", w.step);
        guard += 1;
        assert!(guard <= c.code.len(), "sequences only jump forward");
    }
    m
}

#[test]
fn random_sequences_match_unicorn() {
    let kinds = seq_kinds();
    let cases: Vec<Case> = (0..SEQUENCES).map(|s| random_sequence(s, &kinds)).collect();
    let mut input = String::new();
    for (id, c) in cases.iter().enumerate() {
        let code: Vec<u8> = c.code.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mem: Vec<Value> =
            DATA.iter().zip(&c.data).map(|(&(base, _), d)| json!({"base": base, "hex": hex(d)})).collect();
        let line = json!({"id": id, "code_base": CODE, "code": hex(&code), "mem": mem, "regs": c.regs.to_vec(), "max_insns": c.code.len() + 1});
        input.push_str(&line.to_string());
        input.push('\n');
    }
    let out = common::run_oracle(&["seq"], input.as_bytes());
    let results: Vec<Value> =
        String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).expect("oracle line")).collect();
    assert_eq!(results.len(), cases.len(), "one oracle result per case");

    let mut seen = std::collections::HashSet::new();
    for (id, (c, r)) in cases.iter().zip(&results).enumerate() {
        assert_eq!(r["id"].as_u64(), Some(id as u64));
        assert!(r["error"].is_null(), "case {id}: unicorn error {}", r["error"]);
        let mut m = run_ours(c);
        assert!(!m.is_halted(), "case {id}: our VM halted: {:?} {:?}", m.fault(), m);
        let regs: Vec<u32> = r["regs"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let words: Vec<String> = c.code.iter().map(|w| format!("{w:08x}")).collect();
        assert_eq!(regs, m.regs.to_vec(), "case {id}: registers differ; code {words:?}");
        assert_eq!(r["pc"].as_u64(), Some(m.pc as u64), "case {id}: pc");
        assert_eq!(r["insns"].as_u64(), Some(m.step), "case {id}: instruction count");
        for (k, &(base, size)) in DATA.iter().enumerate() {
            let theirs = unhex(r["mem"][k]["hex"].as_str().unwrap());
            assert_eq!(theirs, m.memory_mut().read_bytes(base, size), "case {id}: memory at {base:#x}");
        }
        for w in &c.code {
            seen.insert(format!("{:?}", decode(*w).kind));
        }
    }
    assert_eq!(seen.len(), kinds.len(), "every instruction kind appears: {seen:?}");
}

fn single(word: u32, setup: impl FnOnce(&mut Machine)) -> Machine {
    let mut m = Machine::new();
    m.memory_mut().write_u32(CODE, word);
    m.set_pc(CODE);
    setup(&mut m);
    m.step();
    m
}

#[test]
fn misaligned_accesses_fault_instead_of_being_emulated() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for _ in 0..2000 {
        let kind = [Kind::Lh, Kind::Lhu, Kind::Lw, Kind::Sh, Kind::Sw][rng.gen_range(0..5)];
        let width = if matches!(kind, Kind::Lw | Kind::Sw) { 4 } else { 2 };
        let addr = loop {
            let a: u32 = rng.gen();
            if !a.is_multiple_of(width) {
                break a;
            }
        };
        let imm = imm12(&mut rng);
        let op = Op { kind, rd: 5, rs1: 6, rs2: 7, imm };
        let m = single(encode(&op), |m| {
            m.regs[6] = addr.wrapping_sub(imm);
            m.regs[7] = 0xdead_beef;
            m.regs[5] = 0x1234;
        });
        let expect = if matches!(kind, Kind::Sh | Kind::Sw) { Fault::MisalignedStore } else { Fault::MisalignedLoad };
        assert_eq!(m.fault(), Some(expect), "{kind:?} at {addr:#x}");
        assert_eq!(m.regs[5], 0x1234, "a faulting load writes nothing");
        assert_eq!(m.pc, CODE, "a fault keeps the pc");
        assert_eq!(m.step, 1);
        assert_eq!(m.memory().read_u32(addr & !3), 0, "a faulting store writes nothing");
    }
    // Byte accesses are never misaligned.
    let m = single(encode(&Op { kind: Kind::Lb, rd: 5, rs1: 6, rs2: 0, imm: 0 }), |m| m.regs[6] = 0x2_0001);
    assert_eq!(m.fault(), None);
}

#[test]
fn jumps_to_two_aligned_targets_fault() {
    // jal +6 is not encodable (imm bit 0 is implicit 0) but +2 is.
    let m = single(encode(&Op { kind: Kind::Jal, rd: 1, rs1: 0, rs2: 0, imm: 2 }), |_| {});
    assert_eq!(m.fault(), Some(Fault::MisalignedJump));
    assert_eq!(m.regs[1], 0, "a faulting jal writes no link");
    // jalr: target (x6 + 0) & !1 = ...2
    let m = single(encode(&Op { kind: Kind::Jalr, rd: 1, rs1: 6, rs2: 0, imm: 0 }), |m| m.regs[6] = 0x2_0003);
    assert_eq!(m.fault(), Some(Fault::MisalignedJump));
    // jalr with an odd target that becomes aligned after clearing bit 0 is fine.
    let m = single(encode(&Op { kind: Kind::Jalr, rd: 1, rs1: 6, rs2: 0, imm: 1 }), |m| m.regs[6] = 0x2_0000);
    assert_eq!((m.fault(), m.pc, m.regs[1]), (None, 0x2_0000, CODE + 4));
    // A taken branch to a 2-aligned target faults; the same branch not taken does not.
    let beq = encode(&Op { kind: Kind::Beq, rd: 0, rs1: 1, rs2: 2, imm: 6 });
    assert_eq!(single(beq, |_| {}).fault(), Some(Fault::MisalignedJump));
    let m = single(beq, |m| m.regs[1] = 1);
    assert_eq!((m.fault(), m.pc), (None, CODE + 4));
}

#[test]
fn system_instructions_follow_the_spec() {
    // exit: status exited, exit code a0, pc advances.
    let m = single(0x73, |m| {
        m.regs[17] = 93;
        m.regs[10] = 0xffff_fffe;
    });
    assert_eq!((m.status, m.exit_code, m.pc, m.step), (opml_vm::Status::Exited, 0xffff_fffe, CODE + 4, 1));
    // write to fd 2 returns the length and passes bytes to the host.
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let g = got.clone();
    let mut m = Machine::new();
    m.memory_mut().write_u32(CODE, 0x73);
    m.memory_mut().write_bytes(0x3_0000, b"hi!");
    m.set_pc(CODE);
    m.regs[17] = 64;
    m.regs[10] = 2;
    m.regs[11] = 0x3_0000;
    m.regs[12] = 3;
    m.set_output(Box::new(move |fd, b| g.lock().unwrap().push((fd, b.to_vec()))));
    m.step();
    assert_eq!((m.regs[10], m.pc, m.fault()), (3, CODE + 4, None));
    assert_eq!(got.lock().unwrap().as_slice(), &[(2, b"hi!".to_vec())]);
    // write to fd 0 and an unknown syscall fault; ebreak faults.
    assert_eq!(
        single(0x73, |m| {
            m.regs[17] = 64;
            m.regs[10] = 0
        })
        .fault(),
        Some(Fault::BadWriteFd)
    );
    assert_eq!(single(0x73, |m| m.regs[17] = 57).fault(), Some(Fault::UnsupportedSyscall));
    assert_eq!(single(0x0010_0073, |_| {}).fault(), Some(Fault::Ebreak));
    // fence is a no-op; fence.i and CSR instructions are invalid.
    assert_eq!(single(0x0ff0_000f, |_| {}).fault(), None);
    assert_eq!(single(0x0000_100f, |_| {}).fault(), Some(Fault::InvalidInstruction));
    assert_eq!(single(0xc000_2573, |_| {}).fault(), Some(Fault::InvalidInstruction)); // rdcycle a0
                                                                                      // misaligned fetch from an initial state.
    let mut m = Machine::new();
    m.set_pc(CODE + 2);
    m.step();
    assert_eq!(m.fault(), Some(Fault::MisalignedFetch));
}

#[test]
fn dot4_matches_a_hand_computed_reference() {
    // (-128)(-128) + (127)(-128) + (1)(1) + (-1)(2) = 16384 - 16256 + 1 - 2 = 127; rd starts at 1000.
    let word = encode(&Op { kind: Kind::Dot4, rd: 5, rs1: 6, rs2: 7, imm: 0 });
    assert_eq!(word, 0x0073_028b);
    let m = single(word, |m| {
        m.regs[5] = 1000;
        m.regs[6] = u32::from_le_bytes([0x80, 0x7f, 0x01, 0xff]);
        m.regs[7] = u32::from_le_bytes([0x80, 0x80, 0x01, 0x02]);
    });
    assert_eq!(m.regs[5], 1127);
    // Wrapping accumulate.
    let m = single(word, |m| {
        m.regs[5] = 0x7fff_ffff;
        m.regs[6] = 0x0000_0001;
        m.regs[7] = 0x0000_0001;
    });
    assert_eq!(m.regs[5], 0x8000_0000);
    // rd = x0 discards.
    let m = single(encode(&Op { kind: Kind::Dot4, rd: 0, rs1: 6, rs2: 7, imm: 0 }), |m| {
        m.regs[6] = 0x0101_0101;
        m.regs[7] = 0x0101_0101;
    });
    assert_eq!(m.regs[0], 0);
}
