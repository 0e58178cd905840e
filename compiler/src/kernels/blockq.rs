//! Block-quantized linears (`linear_q4_1`, `linear_q8_0`) and the Q8_0 embedding
//! (`embed_q8_0`), bit-exact with `opml_dnn::ops::llm::qlinear` (`docs/spec/ops.md` §5.2).
//!
//! **Linears.** First every activation block of 32 is quantized into a scratch record
//! (`S`, `A = sum a`, then the values as bytes), exactly as `quantize_act`: `S = ceil(max
//! |x| / MAX)` by `divu`, `a = q + (2r >= S)` from `|x| = qS + r`, signed. Then for each
//! activation row and each weight row the blocks run through one fused loop: the block dot
//! by `dot4` straight from the GGUF bytes (Q8_0 values are signed bytes; a Q4_1 word holds
//! four low nibbles, elements `j..j+4`, and four high ones, `j+16..j+20`, split by one mask
//! and one shift), then the block's term `P * S` with `P = D dot + M A` into a chunk
//! accumulator, and every [`CHUNK`] blocks the chunk into an exact 128-bit row sum. The row
//! sum becomes the output by [`round_sat`] (`sat32(rshift(sum, E))`).
//!
//! 16-bit activations do not fit `dot4`'s signed bytes, and two signed bytes `h`, `l` with
//! `256 h + l` cover `-32896..=32639`, not `-32767..=32767`. So a record holds
//! `a - 128 = 256 h + l` (within that range for every `|a| <= 32767`) and the block dot is
//! `256 dot(q, h) + dot(q, l) + 128 sum(q)`, `sum(q)` by one more `dot4` against
//! `0x01010101` per weight word.
//!
//! **Bounds of the chunk accumulator** (every `D`, `M` in i32, as the rule accepts): a
//! block's dot is below 2^27 (Q8_0: `32 * 128 * 32767`; Q4_1: `32 * 15 * 32767` < 2^24),
//! `|A| <= 32 * 32767 < 2^20`, so `|P| < 2^31 * 2^27 = 2^58` (Q4_1: below 2^56) is exact
//! in 64 bits (`mul` / `mulh`, then a 64-bit add); `S < 2^25` (`ceil(2^31 / 127)`). With
//! `P = Ph 2^32 + Pl` (`Pl` unsigned), `P S = Pl S + 2^32 Ph S`:
//! * `Pl S = hi 2^32 + lo` with `hi < S < 2^25`: `lo` adds into `C0` with its carry into
//!   `V`, and `hi` into `V`, so `V` grows by at most `2^25` per block: below 2^31 after
//!   [`CHUNK`] = 64 blocks;
//! * `|Ph| <= 2^26` and `|Ph S| < 2^51` add into the 64-bit `H`: below 2^57 after 64 blocks.
//!
//! The chunk is `C0 + 2^32 (V + H)`, exact, folded into the 128-bit row sum (at most 2^15
//! blocks of `|P S| < 2^83`: below 2^98).
//!
//! **Embedding.** Element `k` of id `i` is `sat32(D q 2^(F - E))`: `D q` in 64 bits, then
//! a left shift with a saturation check, or [`round_sat`] by `E - F`. An id outside the
//! table exits with code 1 (the native executor rejects that run as well).

use super::{arg, repeat};
use crate::asm::reg::{
    A1, A2, A3, A4, A5, A6, A7, RA, S0, S1, S10, S2, S3, S4, S5, S6, S7, S8, S9, T0, T1, T2, T3, T4, T5, T6, ZERO,
};
use crate::asm::{Asm, Label, Reg};

/// Elements per block.
pub const QK: usize = 32;

/// Blocks per chunk of the fused loop (see the module comment for why 64 is safe).
pub const CHUNK: i32 = 64;

arg_words! {
    /// Argument words of the block linears (`linear_q4_1`, `linear_q8_0`).
    pub mod linear_q_args {
        X, QS, D, M, OUT, ROWS, N, NB, EXP, WIDE, ACT, ROW_REC, QBLOCKS, TOTAL, COUNT;
        /// Bytes of an activation record: `S`, `A`, 32 bytes (8-bit activations).
        pub const REC_I8: usize = 8 + 32;
        /// Bytes of an activation record: `S`, `A`, 32 bytes `h`, 32 bytes `l` (16 bits).
        pub const REC_I16: usize = 8 + 64;
        /// Bytes of the row-sum slot.
        pub const TOTAL_BYTES: usize = 16;
    }
}

arg_words! {
    /// Argument words of the Q8_0 embedding.
    pub mod embed_q_args {
        IDS, QS, D, OUT, COUNT_IDS, V, K, NB, LEFT, RIGHT, COUNT,
    }
}

/// Which block linear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Q4_1: 16 bytes of nibbles per block, scales and mins.
    Q4_1,
    /// Q8_0: 32 signed bytes per block, scales.
    Q8_0,
}

impl Format {
    fn block_bytes(self) -> i32 {
        match self {
            Format::Q4_1 => 16,
            Format::Q8_0 => 32,
        }
    }
}

/// `acc += sum_i sext8(x[i]) * sext8(y[i])` over the four bytes: `dot4`, or (measurements
/// only) the same from shifts and `mul` in t5, t6.
fn dot4(a: &mut Asm, use_dot4: bool, acc: Reg, x: Reg, y: Reg) {
    if use_dot4 {
        a.dot4(acc, x, y);
        return;
    }
    for i in 0..4 {
        for (tmp, src) in [(T5, x), (T6, y)] {
            a.slli(tmp, src, 24 - 8 * i);
            a.srai(tmp, tmp, 24);
        }
        a.mul(T5, T5, T6);
        a.add(acc, acc, T5);
    }
}

/// The registers of the fused loop.
mod r {
    use crate::asm::reg::*;
    use crate::asm::Reg;
    /// Weight values, scales, mins, activation record (walking).
    pub const QP: Reg = S0;
    pub const DP: Reg = S1;
    pub const MP: Reg = S2;
    pub const AP: Reg = S3;
    /// Chunk accumulator: `C0`, `V`, `H` (low, high).
    pub const C0: Reg = S4;
    pub const V: Reg = S5;
    pub const HL: Reg = S6;
    pub const HH: Reg = S7;
    /// Blocks left in the row, blocks left in the chunk.
    pub const LEFT: Reg = S8;
    pub const IN_CHUNK: Reg = S9;
    /// Weight rows left, output pointer, the activation row's first record, rows left.
    pub const COLS: Reg = S10;
    pub const OUT: Reg = S11;
    pub const ROW: Reg = GP;
    pub const ROWS: Reg = TP;
    /// `0x0f0f0f0f` and `0x01010101`.
    pub const MASK: Reg = A6;
    pub const ONES: Reg = A7;
}

/// The block linear kernel of `fmt`: both activation widths, picked by the `WIDE` word.
pub fn linear(a: &mut Asm, fmt: Format, use_dot4: bool) {
    let round = a.label();
    let narrow = a.label();
    let wide = a.label();
    arg(a, T0, linear_q_args::WIDE);
    a.bne(T0, ZERO, wide);
    a.j(narrow);
    a.bind(wide);
    linear_width(a, fmt, true, use_dot4, round);
    a.bind(narrow);
    linear_width(a, fmt, false, use_dot4, round);
    round_sat(a, round);
}

/// One activation width of the block linear, ending in `exit(0)`.
fn linear_width(a: &mut Asm, fmt: Format, wide: bool, use_dot4: bool, round: Label) {
    use linear_q_args as w;
    quantize(a, wide);
    a.li(r::MASK, 0x0f0f_0f0f);
    a.li(r::ONES, 0x0101_0101);
    arg(a, r::ROW, w::ACT);
    arg(a, r::OUT, w::OUT);
    arg(a, r::ROWS, w::ROWS);
    repeat(a, r::ROWS, r::ROWS, |a| {
        arg(a, r::QP, w::QS);
        arg(a, r::DP, w::D);
        arg(a, r::MP, w::M);
        arg(a, r::COLS, w::N);
        repeat(a, r::COLS, r::COLS, |a| {
            arg(a, T0, w::TOTAL);
            for off in [0, 4, 8, 12] {
                a.sw(ZERO, T0, off);
            }
            a.mv(r::AP, r::ROW);
            arg(a, r::LEFT, w::NB);
            row_chunks(a, fmt, wide, use_dot4);
            arg(a, T0, w::TOTAL);
            for (i, reg) in [A1, A2, A3, A4].into_iter().enumerate() {
                a.lw(reg, T0, 4 * i as i32);
            }
            arg(a, A5, w::EXP);
            a.jal(RA, round);
            a.sw(A1, r::OUT, 0);
            a.addi(r::OUT, r::OUT, 4);
        });
        arg(a, T0, w::ROW_REC);
        a.add(r::ROW, r::ROW, T0);
    });
    a.exit(0);
}

/// The blocks of one (activation row, weight row) pair in chunks of [`CHUNK`], each folded
/// into the 128-bit slot `TOTAL`.
fn row_chunks(a: &mut Asm, fmt: Format, wide: bool, use_dot4: bool) {
    let top = a.label();
    let done = a.label();
    let whole = a.label();
    a.bind(top);
    a.beq(r::LEFT, ZERO, done);
    // IN_CHUNK = min(LEFT, CHUNK); LEFT -= IN_CHUNK.
    a.li(r::IN_CHUNK, CHUNK);
    a.bgeu(r::LEFT, r::IN_CHUNK, whole);
    a.mv(r::IN_CHUNK, r::LEFT);
    a.bind(whole);
    a.sub(r::LEFT, r::LEFT, r::IN_CHUNK);
    for reg in [r::C0, r::V, r::HL, r::HH] {
        a.li(reg, 0);
    }
    repeat(a, r::IN_CHUNK, r::IN_CHUNK, |a| {
        block_dot(a, fmt, wide, use_dot4);
        block_term(a, fmt, wide);
    });
    fold_chunk(a);
    a.j(top);
    a.bind(done);
}

/// `a1 = dot_b` of the block at QP (weights) and AP (activation record). Clobbers t0-t4,
/// a2, a3 (and t5, t6 without `dot4`).
fn block_dot(a: &mut Asm, fmt: Format, wide: bool, use_dot4: bool) {
    let d = |a: &mut Asm, acc, x, y| dot4(a, use_dot4, acc, x, y);
    // Activation bytes of element j: 8 + j (8 bits; 16 bits: h), 40 + j (16 bits: l).
    let (h, l) = (8, 40);
    a.li(A1, 0);
    if wide {
        a.li(A2, 0);
        a.li(A3, 0);
    }
    match fmt {
        Format::Q8_0 => {
            for wd in 0..8 {
                a.lw(T0, r::QP, 4 * wd);
                a.lw(T3, r::AP, h + 4 * wd);
                d(a, A1, T0, T3);
                if wide {
                    a.lw(T4, r::AP, l + 4 * wd);
                    d(a, A2, T0, T4);
                    d(a, A3, T0, r::ONES);
                }
            }
        }
        Format::Q4_1 => {
            for wd in 0..4 {
                a.lw(T0, r::QP, 4 * wd);
                a.and(T1, T0, r::MASK);
                a.srli(T2, T0, 4);
                a.and(T2, T2, r::MASK);
                for (nib, j) in [(T1, 4 * wd), (T2, 16 + 4 * wd)] {
                    a.lw(T3, r::AP, h + j);
                    d(a, A1, nib, T3);
                    if wide {
                        a.lw(T4, r::AP, l + j);
                        d(a, A2, nib, T4);
                    }
                }
                if wide {
                    a.add(T0, T1, T2);
                    d(a, A3, T0, r::ONES);
                }
            }
        }
    }
    if wide {
        // dot = 256 dot(q, h) + dot(q, l) + 128 sum(q).
        a.slli(A1, A1, 8);
        a.add(A1, A1, A2);
        a.slli(A3, A3, 7);
        a.add(A1, A1, A3);
    }
}

/// Add the block's `P S` to the chunk accumulator and step to the next block. In: a1 = dot.
/// Clobbers t0-t2, a2-a5.
fn block_term(a: &mut Asm, fmt: Format, wide: bool) {
    // P = D dot (+ M A) in a3:a2.
    a.lw(A4, r::DP, 0);
    a.mul(A2, A4, A1);
    a.mulh(A3, A4, A1);
    if fmt == Format::Q4_1 {
        a.lw(A4, r::MP, 0);
        a.lw(T0, r::AP, 4);
        a.mul(T1, A4, T0);
        a.mulh(T2, A4, T0);
        a.add(A2, A2, T1);
        a.sltu(T1, A2, T1);
        a.add(A3, A3, T2);
        a.add(A3, A3, T1);
    }
    a.lw(A5, r::AP, 0);
    // Pl S: low word into C0, its carry and high word into V.
    a.mul(T0, A2, A5);
    a.mulhu(T1, A2, A5);
    a.add(r::C0, r::C0, T0);
    a.sltu(T0, r::C0, T0);
    a.add(T1, T1, T0);
    a.add(r::V, r::V, T1);
    // Ph S into H.
    a.mul(T0, A3, A5);
    a.mulh(T1, A3, A5);
    a.add(r::HL, r::HL, T0);
    a.sltu(T0, r::HL, T0);
    a.add(r::HH, r::HH, T1);
    a.add(r::HH, r::HH, T0);
    a.addi(r::QP, r::QP, fmt.block_bytes());
    a.addi(r::DP, r::DP, 4);
    if fmt == Format::Q4_1 {
        a.addi(r::MP, r::MP, 4);
    }
    let rec = if wide { linear_q_args::REC_I16 } else { linear_q_args::REC_I8 };
    a.addi(r::AP, r::AP, rec as i32);
}

/// `TOTAL += C0 + 2^32 (V + H)` (128-bit). Clobbers t0-t4.
fn fold_chunk(a: &mut Asm) {
    // W = H + V (V < 2^31 as unsigned).
    a.add(r::HL, r::HL, r::V);
    a.sltu(T0, r::HL, r::V);
    a.add(r::HH, r::HH, T0);
    arg(a, T4, linear_q_args::TOTAL);
    // Limb 0 += C0, carry in t3.
    a.lw(T0, T4, 0);
    a.add(T0, T0, r::C0);
    a.sltu(T3, T0, r::C0);
    a.sw(T0, T4, 0);
    // Limbs 1, 2 += W's words and the carry.
    for (off, w) in [(4, r::HL), (8, r::HH)] {
        a.lw(T0, T4, off);
        a.add(T0, T0, w);
        a.sltu(T1, T0, w);
        a.add(T0, T0, T3);
        a.sltu(T2, T0, T3);
        a.or(T3, T1, T2);
        a.sw(T0, T4, off);
    }
    // Limb 3 += sign extension of W and the carry.
    a.lw(T0, T4, 12);
    a.srai(T1, r::HH, 31);
    a.add(T0, T0, T1);
    a.add(T0, T0, T3);
    a.sw(T0, T4, 12);
}

/// Quantize every activation block into its record (`docs`: the module comment). Uses
/// a1-a7, t0-t6.
fn quantize(a: &mut Asm, wide: bool) {
    use linear_q_args as w;
    let max: i32 = if wide { 32767 } else { 127 };
    let rec = if wide { w::REC_I16 } else { w::REC_I8 } as i32;
    arg(a, A1, w::X);
    arg(a, A2, w::ACT);
    arg(a, A3, w::QBLOCKS);
    repeat(a, A3, A3, |a| {
        let next = a.label();
        // t0 = max |x| (unsigned: |i32::MIN| = 2^31).
        a.li(T0, 0);
        a.mv(A4, A1);
        a.li(A5, QK as i32);
        repeat(a, A5, A5, |a| {
            let keep = a.label();
            a.lw(T1, A4, 0);
            abs(a, T1, T2);
            a.bgeu(T0, T1, keep);
            a.mv(T0, T1);
            a.bind(keep);
            a.addi(A4, A4, 4);
        });
        // S = ceil(max / MAX) in a6 (max + MAX - 1 < 2^32).
        a.li(T1, max - 1);
        a.add(T0, T0, T1);
        a.li(T1, max);
        a.divu(A6, T0, T1);
        a.sw(A6, A2, 0);
        a.beq(A6, ZERO, next);
        a.li(A7, 0);
        a.mv(A4, A1);
        a.addi(T3, A2, 8);
        a.li(A5, QK as i32);
        repeat(a, A5, A5, |a| {
            a.lw(T0, A4, 0);
            abs(a, T0, T1);
            // |x| = q S + r; |a| = q + (2r >= S).
            a.divu(T2, T0, A6);
            a.remu(T4, T0, A6);
            a.slli(T4, T4, 1);
            a.sltu(T4, T4, A6);
            a.sub(T2, T2, T4);
            a.addi(T2, T2, 1);
            // Restore the sign (t1 = 0 or -1) and add to A.
            a.xor(T2, T2, T1);
            a.sub(T2, T2, T1);
            a.add(A7, A7, T2);
            if wide {
                // a - 128 = 256 h + l, l = sext8(a - 128).
                a.addi(T2, T2, -128);
                a.slli(T4, T2, 24);
                a.srai(T4, T4, 24);
                a.sub(T2, T2, T4);
                a.srai(T2, T2, 8);
                a.sb(T4, T3, 32);
            }
            a.sb(T2, T3, 0);
            a.addi(A4, A4, 4);
            a.addi(T3, T3, 1);
        });
        a.sw(A7, A2, 4);
        a.bind(next);
        a.addi(A1, A1, 4 * QK as i32);
        a.addi(A2, A2, rec);
    });
}

/// `v = |v|` as unsigned (`|i32::MIN| = 2^31`), leaving the sign mask `v >> 31` in `sign`.
fn abs(a: &mut Asm, v: Reg, sign: Reg) {
    a.srai(sign, v, 31);
    a.xor(v, v, sign);
    a.sub(v, v, sign);
}

/// The subroutine `a1 = sat32(rshift(v, a5))` for the i128 `v` in a1..a4 (least
/// significant limb first) and `0 <= a5 <= 62`: magnitude, plus `2^(a5-1)`, shifted right
/// by `a5` (ties away from zero, as `round_shift_i128`), then signed and saturated.
/// Called with `jal ra`; clobbers t0-t6, a2-a5.
fn round_sat(a: &mut Asm, entry: Label) {
    let limbs = [A1, A2, A3, A4];
    a.bind(entry);
    // t6 = sign mask; magnitude = (v ^ t6) - t6, the +1 carried up the limbs.
    a.srai(T6, A4, 31);
    a.andi(T0, T6, 1);
    for &l in &limbs {
        a.xor(l, l, T6);
        a.add(l, l, T0);
        a.sltu(T0, l, T0);
    }
    let shifted = a.label();
    a.beq(A5, ZERO, shifted);
    // Half = 2^(a5 - 1) in limb 0 or limb 1: t1 = 1 << (bit & 31), t2 = limb-1 part.
    a.addi(T0, A5, -1);
    a.li(T1, 1);
    a.sll(T1, T1, T0);
    a.srli(T0, T0, 5);
    a.sub(T0, ZERO, T0);
    a.and(T2, T1, T0);
    a.sub(T1, T1, T2);
    // Add [t1, t2, 0, 0] with carries.
    a.add(A1, A1, T1);
    a.sltu(T0, A1, T1);
    a.add(A2, A2, T2);
    a.sltu(T3, A2, T2);
    a.add(A2, A2, T0);
    a.sltu(T4, A2, T0);
    a.or(T0, T3, T4);
    a.add(A3, A3, T0);
    a.sltu(T0, A3, T0);
    a.add(A4, A4, T0);
    // Shift right by 32 when a5 >= 32 (a5 <= 62: at most once), then by a5 & 31.
    let small = a.label();
    a.srli(T0, A5, 5);
    a.beq(T0, ZERO, small);
    a.mv(A1, A2);
    a.mv(A2, A3);
    a.mv(A3, A4);
    a.li(A4, 0);
    a.bind(small);
    a.andi(T0, A5, 31);
    a.beq(T0, ZERO, shifted);
    a.li(T1, 32);
    a.sub(T1, T1, T0);
    for i in 0..3 {
        a.srl(limbs[i], limbs[i], T0);
        a.sll(T2, limbs[i + 1], T1);
        a.or(limbs[i], limbs[i], T2);
    }
    a.srl(A4, A4, T0);
    a.bind(shifted);
    // Saturate: magnitude >= 2^31 gives i32::MAX or i32::MIN by the sign.
    let fits = a.label();
    a.or(T0, A2, A3);
    a.or(T0, T0, A4);
    a.srli(T1, A1, 31);
    a.or(T0, T0, T1);
    a.beq(T0, ZERO, fits);
    a.li(A1, i32::MAX);
    a.xor(A1, A1, T6);
    a.ret();
    a.bind(fits);
    a.xor(A1, A1, T6);
    a.sub(A1, A1, T6);
    a.ret();
}

/// The Q8_0 embedding kernel.
pub fn embed(a: &mut Asm) {
    use embed_q_args as w;
    let bad = a.label();
    let round = a.label();
    arg(a, S0, w::IDS);
    arg(a, S1, w::OUT);
    arg(a, S2, w::COUNT_IDS);
    arg(a, S3, w::V);
    arg(a, S4, w::LEFT);
    arg(a, S5, w::RIGHT);
    repeat(a, S2, S2, |a| {
        a.lw(T0, S0, 0);
        a.bgeu(T0, S3, bad);
        // s6 = row values, s7 = row scales.
        arg(a, T1, w::K);
        a.mul(T2, T0, T1);
        arg(a, S6, w::QS);
        a.add(S6, S6, T2);
        arg(a, T1, w::NB);
        a.mul(T2, T0, T1);
        a.slli(T2, T2, 2);
        arg(a, S7, w::D);
        a.add(S7, S7, T2);
        arg(a, S8, w::NB);
        repeat(a, S8, S8, |a| {
            a.lw(S9, S7, 0);
            a.li(S10, QK as i32);
            repeat(a, S10, S10, |a| {
                a.lb(T0, S6, 0);
                a.mul(A1, S9, T0);
                a.mulh(A2, S9, T0);
                embed_element(a, round);
                a.sw(A1, S1, 0);
                a.addi(S1, S1, 4);
                a.addi(S6, S6, 1);
            });
            a.addi(S7, S7, 4);
        });
        a.addi(S0, S0, 4);
    });
    a.exit(0);
    a.bind(bad);
    a.exit(1);
    round_sat(a, round);
}

/// `a1 = sat32(v * 2^s4)` (s4 = left shift, at most 31) or `sat32(rshift(v, s5))`, for the
/// i64 `v` in a2:a1. Clobbers t0-t6, a2-a5.
fn embed_element(a: &mut Asm, round: Label) {
    let right = a.label();
    let done = a.label();
    a.beq(S4, ZERO, right);
    // Left: magnitude m (a2:a1); saturated unless a2 = 0 and m >> (31 - s4) = 0.
    let fits = a.label();
    let sat = a.label();
    a.srai(T6, A2, 31);
    a.xor(A1, A1, T6);
    a.xor(A2, A2, T6);
    a.andi(T0, T6, 1);
    a.add(A1, A1, T0);
    a.sltu(T0, A1, T0);
    a.add(A2, A2, T0);
    a.bne(A2, ZERO, sat);
    a.li(T1, 31);
    a.sub(T1, T1, S4);
    a.srl(T1, A1, T1);
    a.beq(T1, ZERO, fits);
    a.bind(sat);
    a.li(A1, i32::MAX);
    a.xor(A1, A1, T6);
    a.j(done);
    a.bind(fits);
    a.sll(A1, A1, S4);
    a.xor(A1, A1, T6);
    a.sub(A1, A1, T6);
    a.j(done);
    a.bind(right);
    a.srai(A3, A2, 31);
    a.mv(A4, A3);
    a.mv(A5, S5);
    a.jal(RA, round);
    a.bind(done);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{initial_regs, input_addr, weight_addr, CODE_BASE, OUTPUT_BASE, PARAM_BASE, SCRATCH_BASE};
    use opml_dnn::ops::llm::blockq::{Q4_1, Q8_0};
    use opml_dnn::ops::llm::qlinear::{embed_q8_0, linear_q4_1, linear_q8_0, ActBits, BlockDims};
    use opml_vm::{Machine, Status};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn run(code: Vec<u8>, args: &[u32], regions: &[(u32, Vec<u8>)], out_words: usize) -> Result<Vec<i32>, u32> {
        let mut m = Machine::new();
        let mem = m.memory_mut();
        mem.write_bytes(CODE_BASE, &code);
        let blob: Vec<u8> = args.iter().flat_map(|w| w.to_le_bytes()).collect();
        mem.write_bytes(PARAM_BASE, &blob);
        for (at, b) in regions {
            mem.write_bytes(*at, b);
        }
        for (i, v) in initial_regs().iter().enumerate() {
            m.set_reg(i, *v);
        }
        m.set_pc(CODE_BASE);
        m.run(1 << 32);
        assert_eq!(m.status, Status::Exited);
        if m.exit_code != 0 {
            return Err(m.exit_code);
        }
        let b = m.memory().read_bytes(OUTPUT_BASE, 4 * out_words);
        Ok(b.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    fn le32(v: &[i32]) -> Vec<u8> {
        v.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    /// A block linear's operands.
    struct Case {
        x: Vec<i32>,
        q4: Vec<u8>,
        q8: Vec<u8>,
        d: Vec<i32>,
        m: Vec<i32>,
        exp: u32,
        dims: BlockDims,
    }

    /// Both formats and both widths, with and without `dot4`, against the native op.
    fn check_case(c: &Case, dot4_too: bool) {
        for wide in [false, true] {
            let bits = if wide { ActBits::I16 } else { ActBits::I8 };
            let want4 = linear_q4_1(&c.x, Q4_1 { qs: &c.q4, d: &c.d, m: &c.m, exp: c.exp }, c.dims, bits).unwrap();
            let q8s: Vec<i8> = c.q8.iter().map(|&b| b as i8).collect();
            let want8 = linear_q8_0(&c.x, Q8_0 { qs: &q8s, d: &c.d, exp: c.exp }, c.dims, bits).unwrap();
            for use_dot4 in [true, false] {
                if !use_dot4 && !dot4_too {
                    continue;
                }
                let got4 = vm_linear(Format::Q4_1, c, &c.q4, wide, use_dot4);
                assert_eq!(got4, want4, "q4_1 {:?} exp {} wide {wide} dot4 {use_dot4}", c.dims, c.exp);
                let got8 = vm_linear(Format::Q8_0, c, &c.q8, wide, use_dot4);
                assert_eq!(got8, want8, "q8_0 {:?} exp {} wide {wide} dot4 {use_dot4}", c.dims, c.exp);
            }
        }
    }

    fn vm_linear(fmt: Format, c: &Case, qs: &[u8], wide: bool, use_dot4: bool) -> Vec<i32> {
        let Case { x, d, m, exp, dims, .. } = c;
        let (exp, dims) = (*exp, *dims);
        use linear_q_args as w;
        let nb = dims.k / QK;
        let rec = if wide { w::REC_I16 } else { w::REC_I8 };
        let mut args = vec![0u32; w::COUNT];
        args[w::X] = input_addr(0);
        args[w::QS] = weight_addr(0);
        args[w::D] = weight_addr(1);
        args[w::M] = if fmt == Format::Q4_1 { weight_addr(2) } else { 0 };
        args[w::OUT] = OUTPUT_BASE;
        args[w::ROWS] = dims.rows as u32;
        args[w::N] = dims.n as u32;
        args[w::NB] = nb as u32;
        args[w::EXP] = exp;
        args[w::WIDE] = wide as u32;
        args[w::TOTAL] = SCRATCH_BASE;
        args[w::ACT] = SCRATCH_BASE + 32;
        args[w::ROW_REC] = (nb * rec) as u32;
        args[w::QBLOCKS] = (dims.rows * nb) as u32;
        let mut a = Asm::new();
        linear(&mut a, fmt, use_dot4);
        let code = a.finish().unwrap();
        let regions = vec![
            (input_addr(0), le32(x)),
            (weight_addr(0), qs.to_vec()),
            (weight_addr(1), le32(d)),
            (weight_addr(2), le32(if fmt == Format::Q4_1 { m } else { &[] })),
        ];
        run(code, &args, &regions, dims.rows * dims.n).unwrap()
    }

    #[test]
    fn random_blocks_match_native() {
        for seed in 0..24u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let dims = BlockDims { rows: rng.gen_range(1..3), k: 32 * rng.gen_range(1..5), n: rng.gen_range(1..5) };
            let nb = dims.k / QK;
            let big = seed % 3 == 0;
            let x =
                (0..dims.rows * dims.k).map(|_| if big { rng.gen() } else { rng.gen_range(-70000..70000) }).collect();
            let d = (0..dims.n * nb).map(|_| if big { rng.gen() } else { rng.gen_range(-1 << 20..1 << 20) }).collect();
            let c = Case {
                x,
                q4: (0..dims.n * dims.k / 2).map(|_| rng.gen()).collect(),
                q8: (0..dims.n * dims.k).map(|_| rng.gen()).collect(),
                d,
                m: (0..dims.n * nb).map(|_| rng.gen()).collect(),
                exp: rng.gen_range(0..=62),
                dims,
            };
            check_case(&c, seed < 4);
        }
    }

    /// The extremes of every bound: activations at the i32 limits and at the 8- and
    /// 16-bit rounding edges, all-zero blocks, 15-nibbles and -128 values, `D` and `M` at
    /// the i32 limits, exponents 0..=62 and rows of more than one chunk.
    #[test]
    fn extreme_blocks_match_native() {
        let specials = [i32::MIN, i32::MIN + 1, i32::MAX, 0, 1, -1, 127, 254, -255, 32767, 32768, 65534, -65535, 98302];
        let mut rng = ChaCha8Rng::seed_from_u64(99);
        for (i, exp) in [0u32, 1, 2, 31, 32, 33, 47, 61, 62].into_iter().enumerate() {
            let nb = if i % 3 == 0 { 2 * CHUNK as usize + 3 } else { 3 };
            let dims = BlockDims { rows: 2, k: nb * QK, n: 2 };
            let x: Vec<i32> = (0..dims.rows * dims.k)
                .map(|j| match (j / QK) % 4 {
                    0 => 0,
                    1 => specials[rng.gen_range(0..specials.len())],
                    2 => {
                        if j % 2 == 0 {
                            i32::MAX
                        } else {
                            i32::MIN
                        }
                    }
                    _ => rng.gen(),
                })
                .collect();
            let pick = |rng: &mut ChaCha8Rng| [i32::MIN, i32::MAX, 0, -1, 1 << 30][rng.gen_range(0..5)];
            let c = Case {
                x,
                q4: (0..dims.n * dims.k / 2).map(|_| if rng.gen_bool(0.7) { 0xff } else { rng.gen() }).collect(),
                q8: (0..dims.n * dims.k).map(|_| if rng.gen_bool(0.7) { 0x80 } else { rng.gen() }).collect(),
                d: (0..dims.n * nb).map(|_| pick(&mut rng)).collect(),
                m: (0..dims.n * nb).map(|_| pick(&mut rng)).collect(),
                exp,
                dims,
            };
            check_case(&c, false);
        }
    }

    fn vm_embed(ids: &[i32], q8: &[u8], d: &[i32], v: usize, k: usize, exp: u32, frac: u32) -> Result<Vec<i32>, u32> {
        use embed_q_args as w;
        let mut args = vec![0u32; w::COUNT];
        args[w::IDS] = input_addr(0);
        args[w::QS] = weight_addr(0);
        args[w::D] = weight_addr(1);
        args[w::OUT] = OUTPUT_BASE;
        args[w::COUNT_IDS] = ids.len() as u32;
        args[w::V] = v as u32;
        args[w::K] = k as u32;
        args[w::NB] = (k / QK) as u32;
        args[w::LEFT] = frac.saturating_sub(exp);
        args[w::RIGHT] = exp.saturating_sub(frac);
        let mut a = Asm::new();
        embed(&mut a);
        let regions = vec![(input_addr(0), le32(ids)), (weight_addr(0), q8.to_vec()), (weight_addr(1), le32(d))];
        run(a.finish().unwrap(), &args, &regions, ids.len() * k)
    }

    /// Random tables (scales over the whole i32 range and at its limits), every exponent
    /// and fraction-bit pair class (left shifts, right shifts up to 62, none), and ids
    /// outside the table (exit code 1, as the native op fails).
    #[test]
    fn embedding_matches_native() {
        for seed in 0..40u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let (v, k) = (rng.gen_range(1..5usize), 32 * rng.gen_range(1..4usize));
            let q8: Vec<u8> = (0..v * k).map(|_| rng.gen()).collect();
            let d: Vec<i32> = (0..v * k / QK)
                .map(|_| if rng.gen_bool(0.3) { [i32::MIN, i32::MAX, 0][rng.gen_range(0..3)] } else { rng.gen() })
                .collect();
            let (exp, frac) = match seed % 4 {
                0 => (rng.gen_range(0..=62u32), rng.gen_range(0..=31u32)),
                1 => (62, rng.gen_range(0..=31)),
                2 => (0, rng.gen_range(0..=31)),
                _ => (24, 24),
            };
            let q8s: Vec<i8> = q8.iter().map(|&b| b as i8).collect();
            let table = Q8_0 { qs: &q8s, d: &d, exp };
            let ids: Vec<i32> = (0..3).map(|_| rng.gen_range(0..v as i32)).collect();
            let want = embed_q8_0(&ids, table, k, frac).unwrap();
            assert_eq!(vm_embed(&ids, &q8, &d, v, k, exp, frac), Ok(want), "seed {seed} exp {exp} frac {frac}");
            for bad in [v as i32, -1, i32::MIN] {
                let ids = [0, bad];
                assert!(embed_q8_0(&ids, table, k, frac).is_err());
                assert_eq!(vm_embed(&ids, &q8, &d, v, k, exp, frac), Err(1));
            }
        }
    }
}
