//! RV32IM + opml ML extension: opcodes, fault reasons and the decoder used by the
//! interpreter. The rules are `docs/spec/vm.md` §3-§6.

mod encode;
pub use encode::{encode, KINDS};

/// Major opcodes (bits 6..0 of the instruction word).
pub mod opcode {
    pub const LUI: u32 = 0b011_0111;
    pub const AUIPC: u32 = 0b001_0111;
    pub const JAL: u32 = 0b110_1111;
    pub const JALR: u32 = 0b110_0111;
    pub const BRANCH: u32 = 0b110_0011;
    pub const LOAD: u32 = 0b000_0011;
    pub const STORE: u32 = 0b010_0011;
    pub const OP_IMM: u32 = 0b001_0011;
    pub const OP: u32 = 0b011_0011;
    pub const MISC_MEM: u32 = 0b000_1111;
    pub const SYSTEM: u32 = 0b111_0011;
    /// custom-0: the opml ML extension.
    pub const CUSTOM_0: u32 = 0b000_1011;
}

/// The two SYSTEM words that are valid.
pub const ECALL: u32 = 0x0000_0073;
pub const EBREAK: u32 = 0x0010_0073;

/// Syscall numbers (in `a7`).
pub const SYS_EXIT: u32 = 93;
pub const SYS_WRITE: u32 = 64;

/// The file descriptors `write` accepts (in `a0`).
pub const FD_STDOUT: u32 = 1;
pub const FD_STDERR: u32 = 2;

/// Register indices of the ABI names the VM cares about.
pub const REG_A0: usize = 10;
pub const REG_A1: usize = 11;
pub const REG_A2: usize = 12;
pub const REG_A7: usize = 17;

/// Machine status (state byte 44).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u8)]
pub enum Status {
    Running = 0,
    Exited = 1,
    Faulted = 2,
}

impl Status {
    pub fn from_byte(b: u8) -> Option<Status> {
        match b {
            0 => Some(Status::Running),
            1 => Some(Status::Exited),
            2 => Some(Status::Faulted),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Exited => "exited",
            Status::Faulted => "faulted",
        }
    }
}

/// Why a machine faulted (stored as the exit code of a faulted state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Fault {
    InvalidInstruction = 1,
    MisalignedFetch = 2,
    MisalignedJump = 3,
    MisalignedLoad = 4,
    MisalignedStore = 5,
    UnsupportedSyscall = 6,
    BadWriteFd = 7,
    Ebreak = 8,
}

/// Highest fault reason code.
pub const MAX_FAULT: u32 = 8;

impl Fault {
    pub const ALL: [Fault; 8] = [
        Fault::InvalidInstruction,
        Fault::MisalignedFetch,
        Fault::MisalignedJump,
        Fault::MisalignedLoad,
        Fault::MisalignedStore,
        Fault::UnsupportedSyscall,
        Fault::BadWriteFd,
        Fault::Ebreak,
    ];

    pub fn code(self) -> u32 {
        self as u32
    }

    pub fn from_code(code: u32) -> Option<Fault> {
        Fault::ALL.iter().copied().find(|f| f.code() == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            Fault::InvalidInstruction => "INVALID_INSTRUCTION",
            Fault::MisalignedFetch => "MISALIGNED_FETCH",
            Fault::MisalignedJump => "MISALIGNED_JUMP",
            Fault::MisalignedLoad => "MISALIGNED_LOAD",
            Fault::MisalignedStore => "MISALIGNED_STORE",
            Fault::UnsupportedSyscall => "UNSUPPORTED_SYSCALL",
            Fault::BadWriteFd => "BAD_WRITE_FD",
            Fault::Ebreak => "EBREAK",
        }
    }
}

/// Every operation the interpreter distinguishes after decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Lui,
    Auipc,
    Jal,
    Jalr,
    Beq,
    Bne,
    Blt,
    Bge,
    Bltu,
    Bgeu,
    Lb,
    Lh,
    Lw,
    Lbu,
    Lhu,
    Sb,
    Sh,
    Sw,
    Addi,
    Slti,
    Sltiu,
    Xori,
    Ori,
    Andi,
    Slli,
    Srli,
    Srai,
    Add,
    Sub,
    Sll,
    Slt,
    Sltu,
    Xor,
    Srl,
    Sra,
    Or,
    And,
    Mul,
    Mulh,
    Mulhsu,
    Mulhu,
    Div,
    Divu,
    Rem,
    Remu,
    Fence,
    Ecall,
    Ebreak,
    Dot4,
    Invalid,
}

/// A decoded instruction: kind, register numbers and the sign-extended immediate
/// (or shift amount).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    pub kind: Kind,
    pub rd: u8,
    pub rs1: u8,
    pub rs2: u8,
    pub imm: u32,
}

#[inline]
pub fn rd(w: u32) -> usize {
    ((w >> 7) & 31) as usize
}
#[inline]
pub fn rs1(w: u32) -> usize {
    ((w >> 15) & 31) as usize
}
#[inline]
pub fn rs2(w: u32) -> usize {
    ((w >> 20) & 31) as usize
}
#[inline]
pub fn funct3(w: u32) -> u32 {
    (w >> 12) & 7
}
#[inline]
pub fn funct7(w: u32) -> u32 {
    w >> 25
}
#[inline]
pub fn imm_i(w: u32) -> u32 {
    ((w as i32) >> 20) as u32
}
#[inline]
pub fn imm_s(w: u32) -> u32 {
    ((((w as i32) >> 25) << 5) as u32) | ((w >> 7) & 0x1f)
}
#[inline]
pub fn imm_b(w: u32) -> u32 {
    let sign = (((w as i32) >> 31) as u32) << 12;
    sign | ((w & 0x80) << 4) | ((w >> 20) & 0x7e0) | ((w >> 7) & 0x1e)
}
#[inline]
pub fn imm_u(w: u32) -> u32 {
    w & 0xffff_f000
}
#[inline]
pub fn imm_j(w: u32) -> u32 {
    let sign = (((w as i32) >> 31) as u32) << 20;
    sign | (w & 0x000f_f000) | ((w >> 9) & 0x800) | ((w >> 20) & 0x7fe)
}

/// Access width in bytes of a load or store; `None` for every other kind.
#[inline]
pub fn access_width(kind: Kind) -> Option<u32> {
    match kind {
        Kind::Lb | Kind::Lbu | Kind::Sb => Some(1),
        Kind::Lh | Kind::Lhu | Kind::Sh => Some(2),
        Kind::Lw | Kind::Sw => Some(4),
        Kind::Lui
        | Kind::Auipc
        | Kind::Jal
        | Kind::Jalr
        | Kind::Beq
        | Kind::Bne
        | Kind::Blt
        | Kind::Bge
        | Kind::Bltu
        | Kind::Bgeu
        | Kind::Addi
        | Kind::Slti
        | Kind::Sltiu
        | Kind::Xori
        | Kind::Ori
        | Kind::Andi
        | Kind::Slli
        | Kind::Srli
        | Kind::Srai
        | Kind::Add
        | Kind::Sub
        | Kind::Sll
        | Kind::Slt
        | Kind::Sltu
        | Kind::Xor
        | Kind::Srl
        | Kind::Sra
        | Kind::Or
        | Kind::And
        | Kind::Mul
        | Kind::Mulh
        | Kind::Mulhsu
        | Kind::Mulhu
        | Kind::Div
        | Kind::Divu
        | Kind::Rem
        | Kind::Remu
        | Kind::Fence
        | Kind::Ecall
        | Kind::Ebreak
        | Kind::Dot4
        | Kind::Invalid => None,
    }
}

/// `dot4`: the sum of the four signed byte-lane products of `a` and `b` (spec §6).
#[inline]
pub fn dot4(a: u32, b: u32) -> u32 {
    let mut sum: i32 = 0;
    for i in 0..4 {
        let x = (a >> (8 * i)) as u8 as i8 as i32;
        let y = (b >> (8 * i)) as u8 as i8 as i32;
        sum += x * y;
    }
    sum as u32
}

/// The M extension and base ALU on register values (no side effects). Only for the kinds of
/// OP and OP-IMM: any other kind panics.
#[inline]
pub fn alu(kind: Kind, a: u32, b: u32) -> u32 {
    match kind {
        Kind::Add | Kind::Addi => a.wrapping_add(b),
        Kind::Sub => a.wrapping_sub(b),
        Kind::Sll | Kind::Slli => a << (b & 31),
        Kind::Slt | Kind::Slti => ((a as i32) < (b as i32)) as u32,
        Kind::Sltu | Kind::Sltiu => (a < b) as u32,
        Kind::Xor | Kind::Xori => a ^ b,
        Kind::Srl | Kind::Srli => a >> (b & 31),
        Kind::Sra | Kind::Srai => ((a as i32) >> (b & 31)) as u32,
        Kind::Or | Kind::Ori => a | b,
        Kind::And | Kind::Andi => a & b,
        Kind::Mul => a.wrapping_mul(b),
        Kind::Mulh => (((a as i32 as i64) * (b as i32 as i64)) >> 32) as u32,
        Kind::Mulhsu => (((a as i32 as i64).wrapping_mul(b as i64)) >> 32) as u32,
        Kind::Mulhu => (((a as u64) * (b as u64)) >> 32) as u32,
        Kind::Div => {
            if b == 0 {
                u32::MAX
            } else {
                (a as i32).wrapping_div(b as i32) as u32
            }
        }
        Kind::Divu => a.checked_div(b).unwrap_or(u32::MAX),
        Kind::Rem => {
            if b == 0 {
                a
            } else {
                (a as i32).wrapping_rem(b as i32) as u32
            }
        }
        Kind::Remu => a.checked_rem(b).unwrap_or(a),
        Kind::Lui
        | Kind::Auipc
        | Kind::Jal
        | Kind::Jalr
        | Kind::Beq
        | Kind::Bne
        | Kind::Blt
        | Kind::Bge
        | Kind::Bltu
        | Kind::Bgeu
        | Kind::Lb
        | Kind::Lh
        | Kind::Lw
        | Kind::Lbu
        | Kind::Lhu
        | Kind::Sb
        | Kind::Sh
        | Kind::Sw
        | Kind::Fence
        | Kind::Ecall
        | Kind::Ebreak
        | Kind::Dot4
        | Kind::Invalid => unreachable!("{kind:?} is not an OP or OP-IMM kind"),
    }
}

/// Decode an instruction word. Every word decodes; reserved and unknown encodings give
/// [`Kind::Invalid`].
pub fn decode(w: u32) -> Op {
    let mut op = Op { kind: Kind::Invalid, rd: rd(w) as u8, rs1: rs1(w) as u8, rs2: rs2(w) as u8, imm: 0 };
    let f3 = funct3(w);
    let f7 = funct7(w);
    op.kind = match w & 0x7f {
        opcode::LUI => {
            op.imm = imm_u(w);
            Kind::Lui
        }
        opcode::AUIPC => {
            op.imm = imm_u(w);
            Kind::Auipc
        }
        opcode::JAL => {
            op.imm = imm_j(w);
            Kind::Jal
        }
        opcode::JALR if f3 == 0 => {
            op.imm = imm_i(w);
            Kind::Jalr
        }
        opcode::BRANCH => {
            op.imm = imm_b(w);
            match f3 {
                0 => Kind::Beq,
                1 => Kind::Bne,
                4 => Kind::Blt,
                5 => Kind::Bge,
                6 => Kind::Bltu,
                7 => Kind::Bgeu,
                _ => Kind::Invalid,
            }
        }
        opcode::LOAD => {
            op.imm = imm_i(w);
            match f3 {
                0 => Kind::Lb,
                1 => Kind::Lh,
                2 => Kind::Lw,
                4 => Kind::Lbu,
                5 => Kind::Lhu,
                _ => Kind::Invalid,
            }
        }
        opcode::STORE => {
            op.imm = imm_s(w);
            match f3 {
                0 => Kind::Sb,
                1 => Kind::Sh,
                2 => Kind::Sw,
                _ => Kind::Invalid,
            }
        }
        opcode::OP_IMM => {
            op.imm = imm_i(w);
            match (f3, f7) {
                (0, _) => Kind::Addi,
                (2, _) => Kind::Slti,
                (3, _) => Kind::Sltiu,
                (4, _) => Kind::Xori,
                (6, _) => Kind::Ori,
                (7, _) => Kind::Andi,
                (1, 0) => {
                    op.imm = rs2(w) as u32;
                    Kind::Slli
                }
                (5, 0) => {
                    op.imm = rs2(w) as u32;
                    Kind::Srli
                }
                (5, 0x20) => {
                    op.imm = rs2(w) as u32;
                    Kind::Srai
                }
                _ => Kind::Invalid,
            }
        }
        opcode::OP => match (f7, f3) {
            (0, 0) => Kind::Add,
            (0, 1) => Kind::Sll,
            (0, 2) => Kind::Slt,
            (0, 3) => Kind::Sltu,
            (0, 4) => Kind::Xor,
            (0, 5) => Kind::Srl,
            (0, 6) => Kind::Or,
            (0, 7) => Kind::And,
            (0x20, 0) => Kind::Sub,
            (0x20, 5) => Kind::Sra,
            (1, 0) => Kind::Mul,
            (1, 1) => Kind::Mulh,
            (1, 2) => Kind::Mulhsu,
            (1, 3) => Kind::Mulhu,
            (1, 4) => Kind::Div,
            (1, 5) => Kind::Divu,
            (1, 6) => Kind::Rem,
            (1, 7) => Kind::Remu,
            _ => Kind::Invalid,
        },
        opcode::MISC_MEM if f3 == 0 => Kind::Fence,
        opcode::SYSTEM if w == ECALL => Kind::Ecall,
        opcode::SYSTEM if w == EBREAK => Kind::Ebreak,
        opcode::CUSTOM_0 if f3 == 0 && f7 == 0 => Kind::Dot4,
        _ => Kind::Invalid,
    };
    op
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immediates_match_hand_assembled_words() {
        // addi x1, x0, -1  = 0xfff00093
        assert_eq!(imm_i(0xfff0_0093), u32::MAX);
        // sw x2, -4(x1) = imm -4: 0xfe20ae23
        assert_eq!(imm_s(0xfe20_ae23), (-4i32) as u32);
        // beq x0, x0, -8 = 0xfe000ce3
        assert_eq!(imm_b(0xfe00_0ce3), (-8i32) as u32);
        // jal x0, 2048 = 0x0010006f ... (imm[11]=1): encoding 0x0010006f has imm 0x800
        assert_eq!(imm_j(0x0010_006f), 0x800);
        // jal x1, -4 = 0xffdff0ef
        assert_eq!(imm_j(0xffdf_f0ef), (-4i32) as u32);
    }

    #[test]
    fn dot4_of_extreme_lanes() {
        // (-128*-128)*4 = 65536
        assert_eq!(dot4(0x8080_8080, 0x8080_8080), 65536);
        // 127 * -128 * 4 = -65024
        assert_eq!(dot4(0x7f7f_7f7f, 0x8080_8080) as i32, -65024);
        // lanes 1,2,3,4 . 5,6,7,8 = 5+12+21+32 = 70
        assert_eq!(dot4(0x0403_0201, 0x0807_0605), 70);
    }

    #[test]
    fn reserved_encodings_are_invalid() {
        assert_eq!(decode(0).kind, Kind::Invalid); // low bits 00
        assert_eq!(decode(0x0000_100f).kind, Kind::Invalid); // fence.i
        assert_eq!(decode(0x3000_2073).kind, Kind::Invalid); // csrrs
        assert_eq!(decode(0x0200_1093).kind, Kind::Invalid); // slli shamt[5]=1
        assert_eq!(decode(0x4000_1093).kind, Kind::Invalid); // slli funct7=0x20
        assert_eq!(decode(0x0000_3003).kind, Kind::Invalid); // ld (funct3 3)
        assert_eq!(decode(0x0000_3023).kind, Kind::Invalid); // sd
        assert_eq!(decode(0x0000_2063).kind, Kind::Invalid); // branch funct3 2
        assert_eq!(decode(0x0000_1067).kind, Kind::Invalid); // jalr funct3 1
        assert_eq!(decode(0x0000_100b).kind, Kind::Invalid); // custom-0 funct3 1
        assert_eq!(decode(0x0200_000b).kind, Kind::Invalid); // custom-0 funct7 1
        assert_eq!(decode(0x0000_000b).kind, Kind::Dot4);
        assert_eq!(decode(ECALL).kind, Kind::Ecall);
        assert_eq!(decode(EBREAK).kind, Kind::Ebreak);
        assert_eq!(decode(0x0020_0073).kind, Kind::Invalid); // uret-like
    }
}
