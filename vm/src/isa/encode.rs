//! The encoder, the inverse of [`decode`](super::decode): one function from an [`Op`] to its
//! instruction word. It lives beside the decoder so that the compiler's assembler and the
//! VM's tests share one table without the assembler depending on test material.

use super::{Kind, Op, EBREAK, ECALL};

/// Every kind with an encoding (all but `Invalid`).
pub const KINDS: [Kind; 49] = [
    Kind::Lui,
    Kind::Auipc,
    Kind::Jal,
    Kind::Jalr,
    Kind::Beq,
    Kind::Bne,
    Kind::Blt,
    Kind::Bge,
    Kind::Bltu,
    Kind::Bgeu,
    Kind::Lb,
    Kind::Lh,
    Kind::Lw,
    Kind::Lbu,
    Kind::Lhu,
    Kind::Sb,
    Kind::Sh,
    Kind::Sw,
    Kind::Addi,
    Kind::Slti,
    Kind::Sltiu,
    Kind::Xori,
    Kind::Ori,
    Kind::Andi,
    Kind::Slli,
    Kind::Srli,
    Kind::Srai,
    Kind::Add,
    Kind::Sub,
    Kind::Sll,
    Kind::Slt,
    Kind::Sltu,
    Kind::Xor,
    Kind::Srl,
    Kind::Sra,
    Kind::Or,
    Kind::And,
    Kind::Mul,
    Kind::Mulh,
    Kind::Mulhsu,
    Kind::Mulhu,
    Kind::Div,
    Kind::Divu,
    Kind::Rem,
    Kind::Remu,
    Kind::Fence,
    Kind::Ecall,
    Kind::Ebreak,
    Kind::Dot4,
];

fn r_type(f7: u32, rs2: u8, rs1: u8, f3: u32, rd: u8, opc: u32) -> u32 {
    f7 << 25 | (rs2 as u32) << 20 | (rs1 as u32) << 15 | f3 << 12 | (rd as u32) << 7 | opc
}
fn i_type(imm: u32, rs1: u8, f3: u32, rd: u8, opc: u32) -> u32 {
    (imm & 0xfff) << 20 | (rs1 as u32) << 15 | f3 << 12 | (rd as u32) << 7 | opc
}
fn s_type(imm: u32, rs2: u8, rs1: u8, f3: u32, opc: u32) -> u32 {
    (imm >> 5 & 0x7f) << 25 | (rs2 as u32) << 20 | (rs1 as u32) << 15 | f3 << 12 | (imm & 0x1f) << 7 | opc
}
fn b_type(imm: u32, rs2: u8, rs1: u8, f3: u32) -> u32 {
    (imm >> 12 & 1) << 31
        | (imm >> 5 & 0x3f) << 25
        | (rs2 as u32) << 20
        | (rs1 as u32) << 15
        | f3 << 12
        | (imm >> 1 & 0xf) << 8
        | (imm >> 11 & 1) << 7
        | 0x63
}
fn j_type(imm: u32, rd: u8) -> u32 {
    (imm >> 20 & 1) << 31
        | (imm >> 1 & 0x3ff) << 21
        | (imm >> 11 & 1) << 20
        | (imm >> 12 & 0xff) << 12
        | (rd as u32) << 7
        | 0x6f
}

/// Encode an instruction. Immediates are taken modulo their field width (branch and jump
/// offsets must be even; shift amounts are masked to 5 bits).
pub fn encode(op: &Op) -> u32 {
    use Kind::*;
    let (rd, rs1, rs2, imm) = (op.rd, op.rs1, op.rs2, op.imm);
    match op.kind {
        Lui => imm & 0xffff_f000 | (rd as u32) << 7 | 0x37,
        Auipc => imm & 0xffff_f000 | (rd as u32) << 7 | 0x17,
        Jal => j_type(imm, rd),
        Jalr => i_type(imm, rs1, 0, rd, 0x67),
        Beq => b_type(imm, rs2, rs1, 0),
        Bne => b_type(imm, rs2, rs1, 1),
        Blt => b_type(imm, rs2, rs1, 4),
        Bge => b_type(imm, rs2, rs1, 5),
        Bltu => b_type(imm, rs2, rs1, 6),
        Bgeu => b_type(imm, rs2, rs1, 7),
        Lb => i_type(imm, rs1, 0, rd, 0x03),
        Lh => i_type(imm, rs1, 1, rd, 0x03),
        Lw => i_type(imm, rs1, 2, rd, 0x03),
        Lbu => i_type(imm, rs1, 4, rd, 0x03),
        Lhu => i_type(imm, rs1, 5, rd, 0x03),
        Sb => s_type(imm, rs2, rs1, 0, 0x23),
        Sh => s_type(imm, rs2, rs1, 1, 0x23),
        Sw => s_type(imm, rs2, rs1, 2, 0x23),
        Addi => i_type(imm, rs1, 0, rd, 0x13),
        Slti => i_type(imm, rs1, 2, rd, 0x13),
        Sltiu => i_type(imm, rs1, 3, rd, 0x13),
        Xori => i_type(imm, rs1, 4, rd, 0x13),
        Ori => i_type(imm, rs1, 6, rd, 0x13),
        Andi => i_type(imm, rs1, 7, rd, 0x13),
        Slli => i_type(imm & 31, rs1, 1, rd, 0x13),
        Srli => i_type(imm & 31, rs1, 5, rd, 0x13),
        Srai => i_type(0x400 | (imm & 31), rs1, 5, rd, 0x13),
        Add => r_type(0, rs2, rs1, 0, rd, 0x33),
        Sub => r_type(0x20, rs2, rs1, 0, rd, 0x33),
        Sll => r_type(0, rs2, rs1, 1, rd, 0x33),
        Slt => r_type(0, rs2, rs1, 2, rd, 0x33),
        Sltu => r_type(0, rs2, rs1, 3, rd, 0x33),
        Xor => r_type(0, rs2, rs1, 4, rd, 0x33),
        Srl => r_type(0, rs2, rs1, 5, rd, 0x33),
        Sra => r_type(0x20, rs2, rs1, 5, rd, 0x33),
        Or => r_type(0, rs2, rs1, 6, rd, 0x33),
        And => r_type(0, rs2, rs1, 7, rd, 0x33),
        Mul => r_type(1, rs2, rs1, 0, rd, 0x33),
        Mulh => r_type(1, rs2, rs1, 1, rd, 0x33),
        Mulhsu => r_type(1, rs2, rs1, 2, rd, 0x33),
        Mulhu => r_type(1, rs2, rs1, 3, rd, 0x33),
        Div => r_type(1, rs2, rs1, 4, rd, 0x33),
        Divu => r_type(1, rs2, rs1, 5, rd, 0x33),
        Rem => r_type(1, rs2, rs1, 6, rd, 0x33),
        Remu => r_type(1, rs2, rs1, 7, rd, 0x33),
        Fence => 0x0ff0_000f,
        Ecall => ECALL,
        Ebreak => EBREAK,
        Dot4 => r_type(0, rs2, rs1, 0, rd, 0x0b),
        Invalid => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isa::decode;

    #[test]
    fn every_kind_decodes_back_from_its_encoding() {
        for kind in KINDS {
            let op = Op { kind, rd: 5, rs1: 6, rs2: 7, imm: 8 };
            assert_eq!(decode(encode(&op)).kind, kind, "{kind:?}");
        }
    }
}
