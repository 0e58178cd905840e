//! The interpreter: full execution of RV32IM + `dot4` over [`Memory`].
//!
//! Instructions of the program's code range are decoded once into a dense table; a store
//! into that range re-decodes the word it changed, so self-modifying code stays exact.

use opml_merkle::Hash;

use crate::isa::{
    self, alu, decode, Fault, Kind, Op, Status, FD_STDERR, FD_STDOUT, REG_A0, REG_A1, REG_A2, REG_A7, SYS_EXIT,
    SYS_WRITE,
};
use crate::memory::Memory;
use crate::state::State;

/// Receives the bytes a program writes: `(fd, bytes)` with fd 1 or 2.
pub type OutputSink = Box<dyn FnMut(u32, &[u8]) + Send>;

/// Largest code range that gets a pre-decoded table (64 MiB of instructions).
const MAX_CACHED_CODE: u32 = 64 << 20;

/// Index of the scratch register that absorbs writes to x0.
const SINK: u8 = 32;

/// Redirect a write to x0 to the sink slot (reads of `rs1`/`rs2` = x0 still see 0).
#[inline(always)]
fn sink_rd(mut op: Op) -> Op {
    if op.rd == 0 {
        op.rd = SINK;
    }
    op
}

#[derive(Debug, Default, Clone)]
struct CodeCache {
    base: u32,
    ops: Vec<Op>,
}

impl CodeCache {
    #[inline(always)]
    fn get(&self, pc: u32) -> Option<Op> {
        self.ops.get((pc.wrapping_sub(self.base) >> 2) as usize).copied()
    }

    /// Re-decode the word holding `addr` if it lies in the cached range.
    #[inline(always)]
    fn invalidate(&mut self, addr: u32, mem: &Memory) {
        let idx = (addr.wrapping_sub(self.base) >> 2) as usize;
        if idx < self.ops.len() {
            self.ops[idx] = sink_rd(decode(mem.read_u32(addr & !3)));
        }
    }
}

/// Why [`Machine::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// The machine exited or faulted.
    Halted,
    /// The step budget ran out first.
    StepLimit,
}

/// A RISC-V machine: registers, pc, counters, memory and the host's output sink.
pub struct Machine {
    pub regs: [u32; 32],
    pub pc: u32,
    pub step: u64,
    pub status: Status,
    pub exit_code: u32,
    mem: Memory,
    code: CodeCache,
    output: Option<OutputSink>,
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine")
            .field("pc", &format_args!("{:#010x}", self.pc))
            .field("step", &self.step)
            .field("status", &self.status)
            .field("exit_code", &self.exit_code)
            .finish_non_exhaustive()
    }
}

impl Clone for Machine {
    /// Clones everything but the output sink (the clone discards output).
    fn clone(&self) -> Self {
        Machine {
            regs: self.regs,
            pc: self.pc,
            step: self.step,
            status: self.status,
            exit_code: self.exit_code,
            mem: self.mem.clone(),
            code: self.code.clone(),
            output: None,
        }
    }
}

impl Default for Machine {
    fn default() -> Self {
        Machine::new()
    }
}

impl Machine {
    /// A running machine with zero registers, `pc = 0` and all-zero memory.
    pub fn new() -> Machine {
        Machine::with_memory(Memory::new())
    }

    /// A running machine at step 0 with zero registers over the given memory.
    pub fn with_memory(mem: Memory) -> Machine {
        Machine {
            regs: [0; 32],
            pc: 0,
            step: 0,
            status: Status::Running,
            exit_code: 0,
            mem,
            code: CodeCache::default(),
            output: None,
        }
    }

    pub fn memory(&self) -> &Memory {
        &self.mem
    }

    /// Mutable memory access. Writes made here into the decoded code range are not seen by
    /// the decode table; call [`Machine::cache_code`] again after patching code.
    pub fn memory_mut(&mut self) -> &mut Memory {
        &mut self.mem
    }

    /// Set register `i` (writes to x0 are ignored, as in the ISA).
    pub fn set_reg(&mut self, i: usize, v: u32) {
        if i != 0 {
            self.regs[i] = v;
        }
    }

    pub fn set_pc(&mut self, pc: u32) {
        self.pc = pc;
    }

    /// Send program output (write syscalls) to `sink` instead of discarding it.
    pub fn set_output(&mut self, sink: OutputSink) {
        self.output = Some(sink);
    }

    /// Pre-decode the instructions in `[base, base + len)` (rounded to whole words). Only a
    /// speed-up: code outside the range is decoded as it runs.
    pub fn cache_code(&mut self, base: u32, len: u32) {
        let base = base & !3;
        let len = len.min(MAX_CACHED_CODE).min(0u32.wrapping_sub(base));
        let words = len.div_ceil(4);
        self.code =
            CodeCache { base, ops: (0..words).map(|i| sink_rd(decode(self.mem.read_u32(base + 4 * i)))).collect() };
    }

    /// The code range currently pre-decoded, as `(base, len)`.
    pub fn cached_code(&self) -> (u32, u32) {
        (self.code.base, (self.code.ops.len() * 4) as u32)
    }

    pub fn is_halted(&self) -> bool {
        self.status != Status::Running
    }

    /// The fault reason if the machine faulted.
    pub fn fault(&self) -> Option<Fault> {
        if self.status == Status::Faulted {
            Fault::from_code(self.exit_code)
        } else {
            None
        }
    }

    /// The memory root (rehashes dirty pages).
    pub fn mem_root(&mut self) -> Hash {
        self.mem.root()
    }

    /// The full state, with the memory root.
    pub fn state(&mut self) -> State {
        State {
            regs: self.regs,
            pc: self.pc,
            mem_root: self.mem.root(),
            step: self.step,
            status: self.status,
            exit_code: self.exit_code,
        }
    }

    /// keccak256 of the packed state.
    pub fn state_hash(&mut self) -> Hash {
        self.state().hash()
    }

    /// Execute one step (spec §3).
    pub fn step(&mut self) {
        self.run(1);
    }

    fn set_fault(&mut self, fault: Fault) {
        self.status = Status::Faulted;
        self.exit_code = fault.code();
        self.step = self.step.wrapping_add(1);
    }

    /// Run until the machine halts or `max_steps` steps were taken. Never hashes.
    pub fn run(&mut self, max_steps: u64) -> RunEnd {
        if self.status != Status::Running {
            return RunEnd::Halted;
        }
        if max_steps == 0 {
            return RunEnd::StepLimit;
        }
        if self.pc & 3 != 0 {
            self.set_fault(Fault::MisalignedFetch);
            return RunEnd::Halted;
        }
        let Machine { regs, mem, code, output, .. } = self;
        let mut pc = self.pc;
        let mut n: u64 = 0;
        let mut fault: Option<Fault> = None;
        let mut exited: Option<u32> = None;
        // Register writes go to `regs[rd]`; the decoder maps rd = x0 to the sink slot 32,
        // so x0 itself is never written and reads as 0 without a reset per step.
        let mut r = [0u32; 64];
        r[..32].copy_from_slice(regs);
        while n < max_steps {
            let op = match code.get(pc) {
                Some(op) => op,
                None => sink_rd(decode(mem.read_u32(pc))),
            };
            // Masks let the compiler drop bounds checks (rd <= 32, rs1/rs2 <= 31).
            let rd = (op.rd & 63) as usize;
            let a = r[(op.rs1 & 31) as usize];
            let b = r[(op.rs2 & 31) as usize];
            let mut next = pc.wrapping_add(4);
            // A check that faults this step: the run stops with pc on the instruction.
            macro_rules! fault_if {
                ($cond:expr, $fault:expr) => {
                    if $cond {
                        fault = Some($fault);
                        break;
                    }
                };
            }
            macro_rules! branch {
                ($cond:expr) => {
                    if $cond {
                        let t = pc.wrapping_add(op.imm);
                        fault_if!(t & 3 != 0, Fault::MisalignedJump);
                        next = t;
                    }
                };
            }
            // The base ALU and `mul` are spelled out here next to `isa::alu` (which `step.rs`
            // and so the on-chain twin use) for speed: this `match` is then the only dispatch
            // per instruction. Sending the ALU kinds through `isa::alu(op.kind, ..)` instead
            // ran `long.elf` (an add/mul/xor/shift loop) at 137 M steps/s against 380-394 M
            // steps/s this way (release build, 2-core AMD EPYC, 2026-11-30). The immediate
            // shifts skip `& 31` (the decoder gives shamt < 32). The rarer M operations go
            // through `isa::alu`. `tests/witness_step.rs` checks the two step for step.
            match op.kind {
                Kind::Lui => r[rd] = op.imm,
                Kind::Auipc => r[rd] = pc.wrapping_add(op.imm),
                Kind::Jal => {
                    let t = pc.wrapping_add(op.imm);
                    fault_if!(t & 3 != 0, Fault::MisalignedJump);
                    r[rd] = next;
                    next = t;
                }
                Kind::Jalr => {
                    let t = a.wrapping_add(op.imm) & !1;
                    fault_if!(t & 3 != 0, Fault::MisalignedJump);
                    r[rd] = next;
                    next = t;
                }
                Kind::Beq => branch!(a == b),
                Kind::Bne => branch!(a != b),
                Kind::Blt => branch!((a as i32) < (b as i32)),
                Kind::Bge => branch!((a as i32) >= (b as i32)),
                Kind::Bltu => branch!(a < b),
                Kind::Bgeu => branch!(a >= b),
                Kind::Lb => r[rd] = mem.read_u8(a.wrapping_add(op.imm)) as i8 as i32 as u32,
                Kind::Lbu => r[rd] = mem.read_u8(a.wrapping_add(op.imm)) as u32,
                Kind::Lh => {
                    let addr = a.wrapping_add(op.imm);
                    fault_if!(addr & 1 != 0, Fault::MisalignedLoad);
                    r[rd] = mem.read_u16(addr) as i16 as i32 as u32;
                }
                Kind::Lhu => {
                    let addr = a.wrapping_add(op.imm);
                    fault_if!(addr & 1 != 0, Fault::MisalignedLoad);
                    r[rd] = mem.read_u16(addr) as u32;
                }
                Kind::Lw => {
                    let addr = a.wrapping_add(op.imm);
                    fault_if!(addr & 3 != 0, Fault::MisalignedLoad);
                    r[rd] = mem.read_u32(addr);
                }
                Kind::Sb => {
                    let addr = a.wrapping_add(op.imm);
                    mem.write_u8(addr, b as u8);
                    code.invalidate(addr, mem);
                }
                Kind::Sh => {
                    let addr = a.wrapping_add(op.imm);
                    fault_if!(addr & 1 != 0, Fault::MisalignedStore);
                    mem.write_u16(addr, b as u16);
                    code.invalidate(addr, mem);
                }
                Kind::Sw => {
                    let addr = a.wrapping_add(op.imm);
                    fault_if!(addr & 3 != 0, Fault::MisalignedStore);
                    mem.write_u32(addr, b);
                    code.invalidate(addr, mem);
                }
                Kind::Addi => r[rd] = a.wrapping_add(op.imm),
                Kind::Andi => r[rd] = a & op.imm,
                Kind::Ori => r[rd] = a | op.imm,
                Kind::Xori => r[rd] = a ^ op.imm,
                Kind::Slti => r[rd] = ((a as i32) < (op.imm as i32)) as u32,
                Kind::Sltiu => r[rd] = (a < op.imm) as u32,
                Kind::Slli => r[rd] = a << op.imm,
                Kind::Srli => r[rd] = a >> op.imm,
                Kind::Srai => r[rd] = ((a as i32) >> op.imm) as u32,
                Kind::Add => r[rd] = a.wrapping_add(b),
                Kind::Sub => r[rd] = a.wrapping_sub(b),
                Kind::And => r[rd] = a & b,
                Kind::Or => r[rd] = a | b,
                Kind::Xor => r[rd] = a ^ b,
                Kind::Sll => r[rd] = a << (b & 31),
                Kind::Srl => r[rd] = a >> (b & 31),
                Kind::Sra => r[rd] = ((a as i32) >> (b & 31)) as u32,
                Kind::Slt => r[rd] = ((a as i32) < (b as i32)) as u32,
                Kind::Sltu => r[rd] = (a < b) as u32,
                Kind::Mul => r[rd] = a.wrapping_mul(b),
                Kind::Mulh | Kind::Mulhsu | Kind::Mulhu | Kind::Div | Kind::Divu | Kind::Rem | Kind::Remu => {
                    r[rd] = alu(op.kind, a, b)
                }
                Kind::Dot4 => r[rd] = r[rd].wrapping_add(isa::dot4(a, b)),
                Kind::Fence => {}
                Kind::Ecall => match r[REG_A7] {
                    SYS_EXIT => {
                        exited = Some(r[REG_A0]);
                        pc = next;
                        n += 1;
                        break;
                    }
                    SYS_WRITE => {
                        let fd = r[REG_A0];
                        fault_if!(fd != FD_STDOUT && fd != FD_STDERR, Fault::BadWriteFd);
                        let (buf, len) = (r[REG_A1], r[REG_A2]);
                        if let Some(sink) = output.as_mut() {
                            let mut done: u64 = 0;
                            while done < len as u64 {
                                let chunk = (len as u64 - done).min(1 << 16) as usize;
                                let bytes = mem.read_bytes(buf.wrapping_add(done as u32), chunk);
                                sink(fd, &bytes);
                                done += chunk as u64;
                            }
                        }
                        r[REG_A0] = len;
                    }
                    _ => {
                        fault = Some(Fault::UnsupportedSyscall);
                        break;
                    }
                },
                Kind::Ebreak => {
                    fault = Some(Fault::Ebreak);
                    break;
                }
                Kind::Invalid => {
                    fault = Some(Fault::InvalidInstruction);
                    break;
                }
            }
            pc = next;
            n += 1;
        }
        regs.copy_from_slice(&r[..32]);
        self.pc = pc;
        self.step = self.step.wrapping_add(n);
        if let Some(f) = fault {
            self.set_fault(f);
            return RunEnd::Halted;
        }
        if let Some(code) = exited {
            self.status = Status::Exited;
            self.exit_code = code;
            return RunEnd::Halted;
        }
        RunEnd::StepLimit
    }
}
