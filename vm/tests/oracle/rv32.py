"""A small RV32IM instruction encoder for the oracle's self-test and benchmark.

Encodings follow the RISC-V unprivileged spec (R/I/S/B/U/J formats); the
self-test checks a few of them against the GNU assembler when it is
installed.
"""

MASK32 = 0xFFFFFFFF

R_OPS = {
    # name: (funct7, funct3)
    "add": (0x00, 0), "sub": (0x20, 0), "sll": (0x00, 1), "slt": (0x00, 2),
    "sltu": (0x00, 3), "xor": (0x00, 4), "srl": (0x00, 5), "sra": (0x20, 5),
    "or": (0x00, 6), "and": (0x00, 7),
    "mul": (0x01, 0), "mulh": (0x01, 1), "mulhsu": (0x01, 2), "mulhu": (0x01, 3),
    "div": (0x01, 4), "divu": (0x01, 5), "rem": (0x01, 6), "remu": (0x01, 7),
}
I_OPS = {"addi": 0, "slti": 2, "sltiu": 3, "xori": 4, "ori": 6, "andi": 7}
SHIFT_I_OPS = {"slli": (0x00, 1), "srli": (0x00, 5), "srai": (0x20, 5)}
LOAD_OPS = {"lb": 0, "lh": 1, "lw": 2, "lbu": 4, "lhu": 5}
STORE_OPS = {"sb": 0, "sh": 1, "sw": 2}
BRANCH_OPS = {"beq": 0, "bne": 1, "blt": 4, "bge": 5, "bltu": 6, "bgeu": 7}


def _check_imm(imm, bits, name):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if not lo <= imm <= hi:
        raise ValueError(f"{name}: immediate {imm} does not fit in {bits} signed bits")


def r_type(op, rd, rs1, rs2):
    funct7, funct3 = R_OPS[op]
    return (funct7 << 25) | (rs2 << 20) | (rs1 << 15) | (funct3 << 12) | (rd << 7) | 0x33


def i_type(op, rd, rs1, imm):
    _check_imm(imm, 12, op)
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (I_OPS[op] << 12) | (rd << 7) | 0x13


def shift_i(op, rd, rs1, shamt):
    funct7, funct3 = SHIFT_I_OPS[op]
    if not 0 <= shamt <= 31:
        raise ValueError(f"{op}: shift amount {shamt} out of 0..31")
    return (funct7 << 25) | (shamt << 20) | (rs1 << 15) | (funct3 << 12) | (rd << 7) | 0x13


def load(op, rd, rs1, imm):
    _check_imm(imm, 12, op)
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (LOAD_OPS[op] << 12) | (rd << 7) | 0x03


def store(op, rs2, rs1, imm):
    _check_imm(imm, 12, op)
    imm &= 0xFFF
    return ((imm >> 5) << 25) | (rs2 << 20) | (rs1 << 15) | (STORE_OPS[op] << 12) | ((imm & 0x1F) << 7) | 0x23


def branch(op, rs1, rs2, offset):
    _check_imm(offset, 13, op)
    if offset % 2:
        raise ValueError(f"{op}: odd offset {offset}")
    o = offset & 0x1FFF
    return (
        (((o >> 12) & 1) << 31) | (((o >> 5) & 0x3F) << 25) | (rs2 << 20) | (rs1 << 15)
        | (BRANCH_OPS[op] << 12) | (((o >> 1) & 0xF) << 8) | (((o >> 11) & 1) << 7) | 0x63
    )


def lui(rd, imm20):
    return ((imm20 & 0xFFFFF) << 12) | (rd << 7) | 0x37


def auipc(rd, imm20):
    return ((imm20 & 0xFFFFF) << 12) | (rd << 7) | 0x17


def jal(rd, offset):
    _check_imm(offset, 21, "jal")
    o = offset & 0x1FFFFF
    return (
        (((o >> 20) & 1) << 31) | (((o >> 1) & 0x3FF) << 21) | (((o >> 11) & 1) << 20)
        | (((o >> 12) & 0xFF) << 12) | (rd << 7) | 0x6F
    )


def jalr(rd, rs1, imm):
    _check_imm(imm, 12, "jalr")
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (rd << 7) | 0x67


ECALL = 0x00000073
EBREAK = 0x00100073


def code_hex(words):
    return b"".join((w & MASK32).to_bytes(4, "little") for w in words).hex()
