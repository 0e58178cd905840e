//! A small assembler for RV32IM + `dot4`: one method per instruction, labels, and
//! branch / jump fixups resolved by [`Asm::finish`]. Encodings come from
//! `opml_vm::isa::encode`, so the assembler and the VM decoder share one table.

use opml_vm::isa::{encode, Kind, Op};

use crate::error::CompileError;

/// A register number `x0..x31`.
pub type Reg = u8;

/// ABI register names.
#[allow(missing_docs)]
pub mod reg {
    use super::Reg;
    pub const ZERO: Reg = 0;
    pub const RA: Reg = 1;
    pub const SP: Reg = 2;
    /// The kernels have no globals or threads, so `gp` and `tp` are two more registers that
    /// no call clobbers: the loop-carried pointers of the product kernels, the slot base and
    /// sign flag of the norm kernel.
    pub const GP: Reg = 3;
    pub const TP: Reg = 4;
    pub const T0: Reg = 5;
    pub const T1: Reg = 6;
    pub const T2: Reg = 7;
    pub const S0: Reg = 8;
    pub const S1: Reg = 9;
    pub const A0: Reg = 10;
    pub const A1: Reg = 11;
    pub const A2: Reg = 12;
    pub const A3: Reg = 13;
    pub const A4: Reg = 14;
    pub const A5: Reg = 15;
    pub const A6: Reg = 16;
    pub const A7: Reg = 17;
    pub const S2: Reg = 18;
    pub const S3: Reg = 19;
    pub const S4: Reg = 20;
    pub const S5: Reg = 21;
    pub const S6: Reg = 22;
    pub const S7: Reg = 23;
    pub const S8: Reg = 24;
    pub const S9: Reg = 25;
    pub const S10: Reg = 26;
    pub const S11: Reg = 27;
    pub const T3: Reg = 28;
    pub const T4: Reg = 29;
    pub const T5: Reg = 30;
    pub const T6: Reg = 31;
}

/// A code position, bound once with [`Asm::bind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label(usize);

#[derive(Clone, Copy, Debug)]
struct Fixup {
    at: usize,
    label: Label,
}

/// Assembler state: emitted words, label positions, pending fixups.
#[derive(Debug, Default)]
pub struct Asm {
    ops: Vec<Op>,
    labels: Vec<Option<usize>>,
    fixups: Vec<Fixup>,
}

macro_rules! r_ops {
    ($($name:ident => $kind:ident),* $(,)?) => {
        $(
            #[doc = concat!("`", stringify!($name), " rd, rs1, rs2`")]
            pub fn $name(&mut self, rd: Reg, rs1: Reg, rs2: Reg) {
                self.push(Kind::$kind, rd, rs1, rs2, 0);
            }
        )*
    };
}

macro_rules! i_ops {
    ($($name:ident => $kind:ident),* $(,)?) => {
        $(
            #[doc = concat!("`", stringify!($name), " rd, rs1, imm` (imm must fit its field)")]
            pub fn $name(&mut self, rd: Reg, rs1: Reg, imm: i32) {
                self.push_imm(Kind::$kind, rd, rs1, 0, imm);
            }
        )*
    };
}

macro_rules! s_ops {
    ($($name:ident => $kind:ident),* $(,)?) => {
        $(
            #[doc = concat!("`", stringify!($name), " rs2, imm(rs1)`")]
            pub fn $name(&mut self, rs2: Reg, rs1: Reg, imm: i32) {
                self.push_imm(Kind::$kind, 0, rs1, rs2, imm);
            }
        )*
    };
}

macro_rules! b_ops {
    ($($name:ident => $kind:ident),* $(,)?) => {
        $(
            #[doc = concat!("`", stringify!($name), " rs1, rs2, label`")]
            pub fn $name(&mut self, rs1: Reg, rs2: Reg, target: Label) {
                self.fixups.push(Fixup { at: self.ops.len(), label: target });
                self.push(Kind::$kind, 0, rs1, rs2, 0);
            }
        )*
    };
}

impl Asm {
    /// An empty program.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, kind: Kind, rd: Reg, rs1: Reg, rs2: Reg, imm: u32) {
        debug_assert!(rd < 32 && rs1 < 32 && rs2 < 32, "register out of range");
        self.ops.push(Op { kind, rd, rs1, rs2, imm });
    }

    /// Immediates are checked against 12 bits at [`Asm::finish`] (shifts against 5).
    fn push_imm(&mut self, kind: Kind, rd: Reg, rs1: Reg, rs2: Reg, imm: i32) {
        self.push(kind, rd, rs1, rs2, imm as u32);
    }

    /// Number of instructions so far.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether nothing was emitted.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// A new, unbound label.
    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Bind `l` to the next instruction.
    pub fn bind(&mut self, l: Label) {
        debug_assert!(self.labels[l.0].is_none(), "label bound twice");
        self.labels[l.0] = Some(self.ops.len());
    }

    r_ops! {
        add => Add, sub => Sub, sll => Sll, slt => Slt, sltu => Sltu, xor => Xor, srl => Srl,
        sra => Sra, or => Or, and => And, mul => Mul, mulh => Mulh, mulhsu => Mulhsu,
        mulhu => Mulhu, div => Div, divu => Divu, rem => Rem, remu => Remu, dot4 => Dot4,
    }

    i_ops! {
        addi => Addi, slti => Slti, sltiu => Sltiu, xori => Xori, ori => Ori, andi => Andi,
        slli => Slli, srli => Srli, srai => Srai, lb => Lb, lh => Lh, lw => Lw, lbu => Lbu,
        lhu => Lhu, jalr => Jalr,
    }

    s_ops! { sb => Sb, sh => Sh, sw => Sw }

    b_ops! { beq => Beq, bne => Bne, blt => Blt, bge => Bge, bltu => Bltu, bgeu => Bgeu }

    /// `lui rd, imm20` (`imm20` is the upper 20 bits).
    pub fn lui(&mut self, rd: Reg, imm20: u32) {
        self.push(Kind::Lui, rd, 0, 0, imm20 << 12);
    }

    /// `jal rd, label`.
    pub fn jal(&mut self, rd: Reg, target: Label) {
        self.fixups.push(Fixup { at: self.ops.len(), label: target });
        self.push(Kind::Jal, rd, 0, 0, 0);
    }

    /// `j label` (`jal x0, label`).
    pub fn j(&mut self, target: Label) {
        self.jal(reg::ZERO, target);
    }

    /// `ret` (`jalr x0, 0(ra)`).
    pub fn ret(&mut self) {
        self.jalr(reg::ZERO, reg::RA, 0);
    }

    /// `mv rd, rs`.
    pub fn mv(&mut self, rd: Reg, rs: Reg) {
        self.addi(rd, rs, 0);
    }

    /// `ecall`.
    pub fn ecall(&mut self) {
        self.push(Kind::Ecall, 0, 0, 0, 0);
    }

    /// Load any 32-bit constant (`lui` + `addi`, or one `addi`).
    pub fn li(&mut self, rd: Reg, v: i32) {
        if (-2048..2048).contains(&v) {
            self.addi(rd, reg::ZERO, v);
            return;
        }
        let lo = (v << 20) >> 20; // sign-extended low 12 bits
        let hi = (v.wrapping_sub(lo) as u32) >> 12;
        self.lui(rd, hi);
        if lo != 0 {
            self.addi(rd, rd, lo);
        }
    }

    /// `exit(code)` via `ecall` 93 (clobbers a0, a7).
    pub fn exit(&mut self, code: i32) {
        self.li(reg::A0, code);
        self.li(reg::A7, opml_vm::isa::SYS_EXIT as i32);
        self.ecall();
    }

    /// Resolve labels and encode. Errors name the first bad instruction.
    pub fn finish(mut self) -> Result<Vec<u8>, CompileError> {
        for f in std::mem::take(&mut self.fixups) {
            let target = self.labels[f.label.0].ok_or_else(|| {
                CompileError::Asm(format!("label {} used at instruction {} is never bound", f.label.0, f.at))
            })?;
            let off = (target as i64 - f.at as i64) * 4;
            let op = &mut self.ops[f.at];
            let range = if op.kind == Kind::Jal { 1i64 << 20 } else { 1i64 << 12 };
            if !(-range..range).contains(&off) {
                return Err(CompileError::Asm(format!(
                    "jump at instruction {} to {target}: offset {off} out of range",
                    f.at
                )));
            }
            op.imm = off as i32 as u32;
        }
        let mut out = Vec::with_capacity(self.ops.len() * 4);
        for (i, op) in self.ops.iter().enumerate() {
            let ok = match op.kind {
                Kind::Slli | Kind::Srli | Kind::Srai => op.imm < 32,
                Kind::Addi
                | Kind::Slti
                | Kind::Sltiu
                | Kind::Xori
                | Kind::Ori
                | Kind::Andi
                | Kind::Lb
                | Kind::Lh
                | Kind::Lw
                | Kind::Lbu
                | Kind::Lhu
                | Kind::Jalr
                | Kind::Sb
                | Kind::Sh
                | Kind::Sw => (-2048..2048).contains(&(op.imm as i32)),
                _ => true,
            };
            if !ok {
                return Err(CompileError::Asm(format!(
                    "instruction {i} ({:?}): immediate {} out of range",
                    op.kind, op.imm as i32
                )));
            }
            out.extend_from_slice(&encode(op).to_le_bytes());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opml_vm::isa::decode;
    use proptest::prelude::*;

    fn words(b: &[u8]) -> Vec<u32> {
        b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    }

    proptest! {
        /// Every R/I/S-type method decodes back to the same kind, registers and immediate.
        #[test]
        fn round_trips_through_the_vm_decoder(rd in 1u8..32, rs1 in 0u8..32, rs2 in 0u8..32, imm in -2048i32..2048, sh in 0i32..32) {
            let mut a = Asm::new();
            a.add(rd, rs1, rs2);
            a.mulh(rd, rs1, rs2);
            a.dot4(rd, rs1, rs2);
            a.addi(rd, rs1, imm);
            a.lw(rd, rs1, imm);
            a.sb(rs2, rs1, imm);
            a.srai(rd, rs1, sh);
            let w = words(&a.finish().unwrap());
            let want = [
                (Kind::Add, rd, rs1, rs2, 0u32),
                (Kind::Mulh, rd, rs1, rs2, 0),
                (Kind::Dot4, rd, rs1, rs2, 0),
                (Kind::Addi, rd, rs1, 0, imm as u32),
                (Kind::Lw, rd, rs1, 0, imm as u32),
                (Kind::Sb, 0, rs1, rs2, imm as u32),
                (Kind::Srai, rd, rs1, 0, sh as u32),
            ];
            for (word, (k, d, s1, s2, im)) in w.iter().zip(want) {
                let op = decode(*word);
                prop_assert_eq!(op.kind, k);
                prop_assert_eq!(op.rs1, s1);
                if !matches!(k, Kind::Sb) { prop_assert_eq!(op.rd, d); }
                if matches!(k, Kind::Add | Kind::Mulh | Kind::Dot4 | Kind::Sb) { prop_assert_eq!(op.rs2, s2); }
                if !matches!(k, Kind::Add | Kind::Mulh | Kind::Dot4) {
                    prop_assert_eq!(op.imm & if k == Kind::Srai { 31 } else { u32::MAX }, im);
                }
            }
        }

        /// `li` materialises any constant (checked by running it in the VM).
        #[test]
        fn li_loads_any_constant(v in any::<i32>()) {
            let mut a = Asm::new();
            a.li(reg::T0, v);
            a.exit(0);
            let code = a.finish().unwrap();
            let mut m = opml_vm::Machine::new();
            m.memory_mut().write_bytes(0, &code);
            m.run(100);
            prop_assert_eq!(m.regs[reg::T0 as usize], v as u32);
        }

        /// Forward and backward branch / jump targets decode to the label positions.
        #[test]
        fn fixups_hit_their_labels(before in 0usize..300, after in 0usize..300) {
            let mut a = Asm::new();
            let back = a.label();
            let fwd = a.label();
            a.bind(back);
            for _ in 0..before { a.addi(1, 1, 1); }
            let b_at = a.len();
            a.bne(1, 2, fwd);
            let j_at = a.len();
            a.j(back);
            for _ in 0..after { a.addi(1, 1, 1); }
            a.bind(fwd);
            let target = a.len();
            a.ecall();
            let w = words(&a.finish().unwrap());
            let b = decode(w[b_at]);
            prop_assert_eq!(b.kind, Kind::Bne);
            prop_assert_eq!((b_at as i64 * 4 + b.imm as i32 as i64) as usize, target * 4);
            let j = decode(w[j_at]);
            prop_assert_eq!(j.kind, Kind::Jal);
            prop_assert_eq!(j_at as i64 * 4 + j.imm as i32 as i64, 0);
        }
    }

    #[test]
    fn rejects_bad_immediates_and_unbound_labels() {
        let mut a = Asm::new();
        a.addi(1, 1, 4096);
        assert!(a.finish().is_err());
        let mut a = Asm::new();
        let l = a.label();
        a.j(l);
        assert!(a.finish().is_err());
        let mut a = Asm::new();
        let l = a.label();
        a.beq(0, 0, l);
        for _ in 0..1100 {
            a.addi(1, 1, 1);
        }
        a.bind(l);
        assert!(a.finish().is_err(), "branch beyond +-4 KiB must be rejected");
    }
}
