//! The witness-only step: the post-state hash computed from `(state, proof)` alone, with no
//! access to memory beyond the proofs. This is the Rust mirror of `contracts/src/Step.sol`:
//! the same function names (snake_case here, camelCase there) and the same order of checks
//! (docs/spec/vm.md §8), so the two can be read side by side.

use opml_merkle::{hash_pair, keccak256, zero_hash, Hash};

use crate::isa::{self, alu, opcode, Fault, Kind, Status, MAX_FAULT};
use crate::memory::TREE_DEPTH;
use crate::state::{State, StateError};

/// Why a witness was rejected (the Solidity step reverts in each case).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error("bad state: {0}")]
    State(#[from] StateError),
    #[error("proof ends early: needed {needed} more bytes at offset {offset}")]
    ProofTooShort { offset: usize, needed: usize },
    #[error("proof has {0} unused trailing bytes")]
    ProofTooLong(usize),
    #[error("proof mask {mask:#010x} has bits set at or above level {levels}")]
    MaskOutOfRange { mask: u32, levels: usize },
    #[error("fetch proof does not hash to the memory root")]
    BadFetchProof,
    #[error("data proof does not join the fetch proof")]
    BadDataProof,
}

/// Reads the proof bytes front to back.
struct ProofReader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> ProofReader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StepError> {
        if self.bytes.len() - self.offset < n {
            return Err(StepError::ProofTooShort { offset: self.offset, needed: n - (self.bytes.len() - self.offset) });
        }
        let s = &self.bytes[self.offset..self.offset + n];
        self.offset += n;
        Ok(s)
    }

    fn read_word(&mut self) -> Result<Hash, StepError> {
        Ok(self.take(32)?.try_into().expect("32 bytes"))
    }

    fn read_mask(&mut self, levels: usize) -> Result<u32, StepError> {
        let mask = u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes"));
        if levels < 32 && mask >> levels != 0 {
            return Err(StepError::MaskOutOfRange { mask, levels });
        }
        Ok(mask)
    }

    /// The siblings of levels `0..levels`: a mask, then the non-zero ones.
    fn read_siblings(&mut self, levels: usize) -> Result<[Hash; TREE_DEPTH], StepError> {
        let mask = self.read_mask(levels)?;
        let mut siblings = [[0u8; 32]; TREE_DEPTH];
        for (l, sib) in siblings.iter_mut().enumerate().take(levels) {
            *sib = if mask >> l & 1 == 1 { *zero_hash(l) } else { self.read_word()? };
        }
        Ok(siblings)
    }

    fn finish(&self) -> Result<(), StepError> {
        match self.bytes.len() - self.offset {
            0 => Ok(()),
            extra => Err(StepError::ProofTooLong(extra)),
        }
    }
}

/// The verified fetch path: the leaf at `pc >> 5`, its siblings and the path's nodes
/// (`nodes[0]` the leaf, `nodes[27]` the root).
struct Fetch {
    leaf: Hash,
    siblings: [Hash; TREE_DEPTH],
    nodes: [Hash; TREE_DEPTH + 1],
}

/// A verified data access: the leaf at `addr >> 5` and its own siblings below the level
/// where its path joins the fetch path.
struct Data {
    leaf: Hash,
    siblings: [Hash; TREE_DEPTH],
    join: usize,
}

/// One step of the machine from `(state, proof)`; returns the post-state hash.
pub fn step(state: &[u8], proof: &[u8]) -> Result<Hash, StepError> {
    let mut s = State::decode(state)?;
    let mut p = ProofReader { bytes: proof, offset: 0 };
    if s.status != Status::Running {
        p.finish()?;
        return Ok(keccak256(state));
    }
    if s.pc & 3 != 0 {
        p.finish()?;
        fault(&mut s, Fault::MisalignedFetch);
        return Ok(s.hash());
    }
    let fetch = read_fetch(&mut p, s.pc, &s.mem_root)?;
    let insn = word_at(&fetch.leaf, s.pc);
    execute(&mut s, &mut p, &fetch, insn)?;
    p.finish()?;
    Ok(s.hash())
}

fn read_fetch(p: &mut ProofReader<'_>, pc: u32, root: &Hash) -> Result<Fetch, StepError> {
    let leaf = p.read_word()?;
    let siblings = p.read_siblings(TREE_DEPTH)?;
    let index = pc >> 5;
    let mut nodes = [[0u8; 32]; TREE_DEPTH + 1];
    nodes[0] = leaf;
    for l in 0..TREE_DEPTH {
        nodes[l + 1] = parent(&nodes[l], &siblings[l], index >> l);
    }
    if nodes[TREE_DEPTH] != *root {
        return Err(StepError::BadFetchProof);
    }
    Ok(Fetch { leaf, siblings, nodes })
}

/// Hash a node with its sibling; `index` is the node's index at its level.
fn parent(node: &Hash, sibling: &Hash, index: u32) -> Hash {
    if index & 1 == 0 {
        hash_pair(node, sibling)
    } else {
        hash_pair(sibling, node)
    }
}

/// Level at which the data path joins the fetch path: bit length of `f xor d`.
fn join_level(pc: u32, addr: u32) -> usize {
    (32 - ((pc >> 5) ^ (addr >> 5)).leading_zeros()) as usize
}

fn read_data(p: &mut ProofReader<'_>, fetch: &Fetch, pc: u32, addr: u32) -> Result<Data, StepError> {
    let join = join_level(pc, addr);
    if join == 0 {
        return Ok(Data { leaf: fetch.leaf, siblings: fetch.siblings, join });
    }
    let leaf = p.read_word()?;
    let siblings = p.read_siblings(join - 1)?;
    let index = addr >> 5;
    let mut node = leaf;
    for (l, sib) in siblings.iter().enumerate().take(join - 1) {
        node = parent(&node, sib, index >> l);
    }
    if node != fetch.siblings[join - 1] {
        return Err(StepError::BadDataProof);
    }
    Ok(Data { leaf, siblings, join })
}

/// The memory root after replacing the data leaf with `leaf`.
fn write_data(fetch: &Fetch, data: &Data, addr: u32, leaf: &Hash) -> Hash {
    let index = addr >> 5;
    let mut node = *leaf;
    if data.join == 0 {
        for l in 0..TREE_DEPTH {
            node = parent(&node, &fetch.siblings[l], index >> l);
        }
        return node;
    }
    for l in 0..data.join - 1 {
        node = parent(&node, &data.siblings[l], index >> l);
    }
    node = parent(&node, &fetch.nodes[data.join - 1], index >> (data.join - 1));
    for l in data.join..TREE_DEPTH {
        node = parent(&node, &fetch.siblings[l], index >> l);
    }
    node
}

/// The little-endian word at `addr` (4-aligned) of a leaf.
fn word_at(leaf: &Hash, addr: u32) -> u32 {
    let o = (addr & 31) as usize;
    u32::from_le_bytes(leaf[o..o + 4].try_into().expect("4 bytes"))
}

fn fault(s: &mut State, f: Fault) {
    debug_assert!(f.code() <= MAX_FAULT);
    s.status = Status::Faulted;
    s.exit_code = f.code();
    s.step = s.step.wrapping_add(1);
}

/// Write `v` to `rd` (dropping writes to x0).
fn set_reg(s: &mut State, rd: usize, v: u32) {
    if rd != 0 {
        s.regs[rd] = v;
    }
}

/// Commit a completed instruction: advance the step counter and the pc.
fn advance(s: &mut State, next_pc: u32) {
    s.pc = next_pc;
    s.step = s.step.wrapping_add(1);
}

/// Decode and execute `insn`. The arms are in the order in which `Step.sol` tests the
/// opcodes: the most frequent first, since there every test costs about 25 gas to each
/// opcode tested after it.
fn execute(s: &mut State, p: &mut ProofReader<'_>, fetch: &Fetch, insn: u32) -> Result<(), StepError> {
    let op = isa::decode(insn);
    let rd = op.rd as usize;
    let a = s.regs[op.rs1 as usize];
    let b = s.regs[op.rs2 as usize];
    let pc = s.pc;
    let next = pc.wrapping_add(4);
    match insn & 0x7f {
        opcode::OP_IMM => exec_op_imm(s, op.kind, rd, a, op.imm),
        opcode::LOAD => exec_load(s, p, fetch, op.kind, rd, a.wrapping_add(op.imm))?,
        opcode::STORE => exec_store(s, p, fetch, op.kind, a.wrapping_add(op.imm), b)?,
        opcode::OP => exec_op(s, op.kind, rd, a, b),
        opcode::BRANCH => exec_branch(s, op.kind, a, b, op.imm),
        opcode::JAL => exec_jump(s, rd, next, pc.wrapping_add(op.imm)),
        opcode::JALR if op.kind == Kind::Jalr => exec_jump(s, rd, next, a.wrapping_add(op.imm) & !1),
        opcode::LUI => {
            set_reg(s, rd, op.imm);
            advance(s, next);
        }
        opcode::AUIPC => {
            set_reg(s, rd, pc.wrapping_add(op.imm));
            advance(s, next);
        }
        opcode::CUSTOM_0 if op.kind == Kind::Dot4 => {
            let acc = s.regs[rd];
            set_reg(s, rd, acc.wrapping_add(isa::dot4(a, b)));
            advance(s, next);
        }
        opcode::SYSTEM if op.kind == Kind::Ecall => exec_ecall(s, next),
        opcode::SYSTEM if op.kind == Kind::Ebreak => fault(s, Fault::Ebreak),
        // fence: a no-op
        opcode::MISC_MEM if op.kind == Kind::Fence => advance(s, next),
        _ => fault(s, Fault::InvalidInstruction),
    }
    Ok(())
}

/// lb lh lw lbu lhu at `addr` (rs1 + imm_i): a reserved funct3 faults, then a misaligned
/// address; then the data path is read and the value written to rd.
fn exec_load(
    s: &mut State,
    p: &mut ProofReader<'_>,
    fetch: &Fetch,
    kind: Kind,
    rd: usize,
    addr: u32,
) -> Result<(), StepError> {
    let Some(width) = isa::access_width(kind) else {
        fault(s, Fault::InvalidInstruction);
        return Ok(());
    };
    if addr & (width - 1) != 0 {
        fault(s, Fault::MisalignedLoad);
        return Ok(());
    }
    let data = read_data(p, fetch, s.pc, addr)?;
    let o = (addr & 31) as usize;
    let v = match kind {
        Kind::Lw => word_at(&data.leaf, addr),
        Kind::Lbu => data.leaf[o] as u32,
        Kind::Lb => data.leaf[o] as i8 as i32 as u32,
        Kind::Lhu => u16::from_le_bytes([data.leaf[o], data.leaf[o + 1]]) as u32,
        Kind::Lh => i16::from_le_bytes([data.leaf[o], data.leaf[o + 1]]) as i32 as u32,
        other => unreachable!("the LOAD opcode decodes to loads only, not {other:?}"),
    };
    set_reg(s, rd, v);
    let next = s.pc.wrapping_add(4);
    advance(s, next);
    Ok(())
}

/// sb sh sw of the low bytes of `value` (rs2) at `addr` (rs1 + imm_s): a reserved funct3
/// faults, then a misaligned address; then the data path is read and the new memory root
/// written.
fn exec_store(
    s: &mut State,
    p: &mut ProofReader<'_>,
    fetch: &Fetch,
    kind: Kind,
    addr: u32,
    value: u32,
) -> Result<(), StepError> {
    let Some(w) = isa::access_width(kind) else {
        fault(s, Fault::InvalidInstruction);
        return Ok(());
    };
    if addr & (w - 1) != 0 {
        fault(s, Fault::MisalignedStore);
        return Ok(());
    }
    let data = read_data(p, fetch, s.pc, addr)?;
    let mut leaf = data.leaf;
    let o = (addr & 31) as usize;
    leaf[o..o + w as usize].copy_from_slice(&value.to_le_bytes()[..w as usize]);
    s.mem_root = write_data(fetch, &data, addr, &leaf);
    let next = s.pc.wrapping_add(4);
    advance(s, next);
    Ok(())
}

/// OP-IMM: `rd = a op imm_i` (slli, srli, srai: `rd = a op shamt`). The funct7 of a
/// shift must be 0 (or 0100000 for srai), else the instruction faults; for the others it is
/// part of the immediate. (`isa::decode` gives a reserved funct7 `Kind::Invalid`.)
fn exec_op_imm(s: &mut State, kind: Kind, rd: usize, a: u32, imm: u32) {
    if kind == Kind::Invalid {
        return fault(s, Fault::InvalidInstruction);
    }
    set_reg(s, rd, alu(kind, a, imm));
    let next = s.pc.wrapping_add(4);
    advance(s, next);
}

/// OP: `rd = a op b` with funct7 0, 0100000 (sub, sra only) or 0000001 (the M extension);
/// any other funct7 faults. (`isa::decode` gives it `Kind::Invalid`.)
fn exec_op(s: &mut State, kind: Kind, rd: usize, a: u32, b: u32) {
    if kind == Kind::Invalid {
        return fault(s, Fault::InvalidInstruction);
    }
    set_reg(s, rd, alu(kind, a, b));
    let next = s.pc.wrapping_add(4);
    advance(s, next);
}

/// beq bne blt bge bltu bgeu (funct3 2 and 3 are reserved). A taken branch to a misaligned
/// target faults.
fn exec_branch(s: &mut State, kind: Kind, a: u32, b: u32, imm: u32) {
    let taken = match kind {
        Kind::Beq => a == b,
        Kind::Bne => a != b,
        Kind::Blt => (a as i32) < (b as i32),
        Kind::Bge => (a as i32) >= (b as i32),
        Kind::Bltu => a < b,
        Kind::Bgeu => a >= b,
        Kind::Invalid => return fault(s, Fault::InvalidInstruction),
        other => unreachable!("the BRANCH opcode decodes to branches only, not {other:?}"),
    };
    if !taken {
        let next = s.pc.wrapping_add(4);
        return advance(s, next);
    }
    let target = s.pc.wrapping_add(imm);
    if target & 3 != 0 {
        return fault(s, Fault::MisalignedJump);
    }
    advance(s, target);
}

/// jal, jalr: a misaligned target faults before rd is written; otherwise rd = `link`
/// (pc + 4) and the pc jumps.
fn exec_jump(s: &mut State, rd: usize, link: u32, target: u32) {
    if target & 3 != 0 {
        return fault(s, Fault::MisalignedJump);
    }
    set_reg(s, rd, link);
    advance(s, target);
}

/// ecall: exit (a7 = 93) with code a0, or write (a7 = 64) to fd a0 = 1 or 2, returning the
/// byte count a2 in a0 (the bytes themselves go to the host only off-chain).
fn exec_ecall(s: &mut State, next: u32) {
    match s.regs[isa::REG_A7] {
        isa::SYS_EXIT => {
            s.status = Status::Exited;
            s.exit_code = s.regs[isa::REG_A0];
            advance(s, next);
        }
        isa::SYS_WRITE => {
            let fd = s.regs[isa::REG_A0];
            if fd != isa::FD_STDOUT && fd != isa::FD_STDERR {
                return fault(s, Fault::BadWriteFd);
            }
            let len = s.regs[isa::REG_A2];
            set_reg(s, isa::REG_A0, len);
            advance(s, next);
        }
        _ => fault(s, Fault::UnsupportedSyscall),
    }
}
