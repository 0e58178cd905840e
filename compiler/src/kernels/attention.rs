//! `attention` (`docs/spec/ops.md` §5.6): causal grouped-query attention over a KV cache,
//! bit-exact with `opml_dnn::ops::llm::attention`. Per query row (query `s`, head `h`):
//!
//! 1. **scores**: `score_t = sat32(rshift(dot_t * scale, F + 30))` for `t < visible`, with
//!    `dot_t = sum_c q_c k_tc` exact: each product's low words are summed unsigned and its
//!    high words (offset by `2^31` to make them unsigned) in a second 64-bit sum that starts
//!    at `-head_dim * 2^31`, so that `dot = high * 2^32 + low` (at most 2^79 in magnitude,
//!    three words); the loop takes four channels per step, then the rest one by one.
//!    `|dot| * scale` (four words) is rounded and shifted in sign-magnitude form (ties away
//!    from zero) and saturated. The row maximum is kept on the way.
//! 2. **exp**: `e_t = exp_q30(score_t - max, F)` (§5.4, every rounding as spelled out there;
//!    all intermediates fit one or two words), summed into the 64-bit `S`.
//! 3. **probabilities**: `p_t = floor(N / D)` with `N = 2^31 e_t + S < 2^62` and
//!    `D = 2S >= 2^31`. One restoring division per row gives `R = floor(2^62 / D) <= 2^31`;
//!    then per element `q = floor(N R / 2^62)` is `p_t` or `p_t - 1` (the error of `R`
//!    moves `N R / 2^62` by less than `N / 2^62 < 1`), and one compare of the remainder
//!    `N - q D` with `D` fixes it.
//! 4. **values**: `out_c = sat32(rshift(sum_t p_t v_tc, 30))`, the sum in 64 bits: `p_t >= 0`
//!    and `sum_t p_t <= 2^30 + T / 2` (each `p_t <= 2^30 e_t / S + 1/2`), and a cache of
//!    `T < 2^26` positions fits its 256 MiB window, so `|sum| < 2^62`. Two channels share
//!    each load of `p_t`; an odd head dim ends with one channel alone.
//!
//! Registers for the whole kernel: a0 the blob, gp the constants (below), tp the row
//! buffer (scores, then `e_t`, then `p_t`), s0 / s1 the query / output row, s2 the query
//! index, s3 the head, s4 the visible length, s5 / s6 the key / value cache head, s7 the
//! cache row bytes, s8 `head_dim * 4`, s9 the row maximum, s10:s11 `S`. Each phase uses
//! t0-t6, a1-a7 and ra (no calls) for its own loop.

use super::arg;
use crate::asm::reg::{
    A1, A2, A3, A4, A5, A6, A7, GP, RA, S0, S1, S10, S11, S2, S3, S4, S5, S6, S7, S8, S9, T0, T1, T2, T3, T4, T5, T6,
    TP, ZERO,
};
use crate::asm::{Asm, Reg};
use opml_dnn::ops::llm::exp::{EXP_TAYLOR_Q30, LN2_Q30, LOG2E_Q30};

arg_words! {
    /// Argument words of `attention`.
    pub mod attention_args {
        /// The query `[seq, heads, head_dim]`.
        Q,
        /// The key cache `[ctx, kv_heads, head_dim]`.
        K,
        /// The value cache `[ctx, kv_heads, head_dim]`.
        V,
        OUT,
        SEQ,
        HEADS,
        /// `heads / kv_heads`: query head `h` reads cache head `h / GROUP`.
        GROUP,
        HEAD_DIM,
        POS0,
        FRAC,
        /// `score_scale_q30(head_dim)`.
        SCALE,
        /// `kv_heads * head_dim * 4`: bytes per cache position.
        ROW_BYTES,
        /// Scratch for the constants the kernel derives ([`CONST_BYTES`]).
        CONSTS,
        /// Scratch for one row of `pos0 + seq` words.
        ROW,
        COUNT;
        /// Scratch bytes of the derived constants.
        pub const CONST_BYTES: usize = 32;
    }
}

// The derived constants, at these byte offsets from gp (`s = F + 30`, the score shift).
/// `-head_dim * 2^31` mod 2^64 (low, high word): the start of the offset high-word sum.
const C_HIGH_LO: i32 = 0;
const C_HIGH_HI: i32 = 4;
/// `2^(s - 1)` as two words: the rounding half of the score shift.
const C_HALF_LO: i32 = 8;
const C_HALF_HI: i32 = 12;
/// `s & 31`, `31 - (s & 31)` and `s >> 5`: the score shift as a bit and a word shift.
const C_BITS: i32 = 16;
const C_BITS_REST: i32 = 20;
const C_WORDS: i32 = 24;

/// `2^29`, the half of a shift by 30.
const HALF30: i32 = 1 << 29;

/// The attention kernel.
pub fn attention(a: &mut Asm) {
    use attention_args as w;
    arg(a, GP, w::CONSTS);
    arg(a, TP, w::ROW);
    constants(a);
    arg(a, S0, w::Q);
    arg(a, S1, w::OUT);
    arg(a, S7, w::ROW_BYTES);
    arg(a, S8, w::HEAD_DIM);
    a.slli(S8, S8, 2);
    for_arg(a, S2, w::SEQ, |a| {
        arg(a, S4, w::POS0);
        a.add(S4, S4, S2);
        a.addi(S4, S4, 1);
        for_arg(a, S3, w::HEADS, |a| {
            // s5, s6 = the cache head of query head h.
            arg(a, T0, w::GROUP);
            a.divu(T0, S3, T0);
            a.mul(T0, T0, S8);
            arg(a, S5, w::K);
            a.add(S5, S5, T0);
            arg(a, S6, w::V);
            a.add(S6, S6, T0);
            scores(a);
            exps(a);
            probabilities(a);
            values(a);
            a.add(S0, S0, S8);
            a.add(S1, S1, S8);
        });
    });
    a.exit(0);
}

/// `for idx in 0..(argument word) { body }`; the body may clobber t0.
fn for_arg(a: &mut Asm, idx: Reg, word: usize, body: impl FnOnce(&mut Asm)) {
    let top = a.label();
    let end = a.label();
    a.li(idx, 0);
    arg(a, T0, word);
    a.bge(idx, T0, end);
    a.bind(top);
    body(a);
    a.addi(idx, idx, 1);
    arg(a, T0, word);
    a.blt(idx, T0, top);
    a.bind(end);
}

/// Store the derived constants at gp.
fn constants(a: &mut Asm) {
    use attention_args as w;
    // -(head_dim * 2^31) = -((head_dim & 1) << 31 + (head_dim >> 1) << 32).
    arg(a, T0, w::HEAD_DIM);
    a.slli(T1, T0, 31);
    a.srli(T2, T0, 1);
    a.sltu(T4, ZERO, T1);
    a.sub(T1, ZERO, T1);
    a.sub(T2, ZERO, T2);
    a.sub(T2, T2, T4);
    a.sw(T1, GP, C_HIGH_LO);
    a.sw(T2, GP, C_HIGH_HI);
    // The score shift s = F + 30 in 30..=61.
    arg(a, T0, w::FRAC);
    a.addi(T1, T0, 30);
    a.andi(T2, T1, 31);
    a.sw(T2, GP, C_BITS);
    a.li(T3, 31);
    a.sub(T3, T3, T2);
    a.sw(T3, GP, C_BITS_REST);
    a.srli(T2, T1, 5);
    a.sw(T2, GP, C_WORDS);
    // 2^(s - 1) in the word (s - 1) >> 5.
    let low = a.label();
    let done = a.label();
    a.addi(T1, T0, 29);
    a.andi(T2, T1, 31);
    a.li(T3, 1);
    a.sll(T3, T3, T2);
    a.srli(T2, T1, 5);
    a.sw(ZERO, GP, C_HALF_LO);
    a.sw(ZERO, GP, C_HALF_HI);
    a.beq(T2, ZERO, low);
    a.sw(T3, GP, C_HALF_HI);
    a.j(done);
    a.bind(low);
    a.sw(T3, GP, C_HALF_LO);
    a.bind(done);
}

/// Phase 1: the row's scores into the row buffer, their maximum into s9.
fn scores(a: &mut Asm) {
    use attention_args as w;
    a.lui(S9, 0x80000); // i32::MIN
    a.mv(A1, S5);
    a.mv(A7, TP);
    a.slli(S10, S4, 2);
    a.add(S10, S10, TP);
    a.add(A4, S0, S8);
    // ra = the end of the query's whole groups of four channels.
    a.andi(RA, S8, -16);
    a.add(RA, RA, S0);
    a.lui(A5, 0x80000); // the offset of the high words
    arg(a, A6, w::SCALE);
    let top = a.label();
    a.bind(top);
    // t1:t0 = sum of the products' low words, t3:t2 = sum of their high words + 2^31.
    a.li(T0, 0);
    a.li(T1, 0);
    a.lw(T2, GP, C_HIGH_LO);
    a.lw(T3, GP, C_HIGH_HI);
    a.mv(A2, S0);
    a.mv(A3, A1);
    let quad = a.label();
    let tail = a.label();
    let one = a.label();
    let summed = a.label();
    a.beq(A2, RA, tail);
    a.bind(quad);
    for j in 0..4 {
        product_into_sums(a, 4 * j);
    }
    a.addi(A2, A2, 16);
    a.addi(A3, A3, 16);
    a.bne(A2, RA, quad);
    a.bind(tail);
    a.beq(A2, A4, summed);
    a.bind(one);
    product_into_sums(a, 0);
    a.addi(A2, A2, 4);
    a.addi(A3, A3, 4);
    a.bne(A2, A4, one);
    a.bind(summed);
    score_of_dot(a);
    a.sw(T2, A7, 0);
    let keep = a.label();
    a.bge(S9, T2, keep);
    a.mv(S9, T2);
    a.bind(keep);
    a.addi(A7, A7, 4);
    a.add(A1, A1, S7);
    a.bne(A7, S10, top);
}

/// Add `q_c k_tc` (the words at `off` from a2 and a3) into the sums t1:t0 (low words) and
/// t3:t2 (high words + 2^31, a5 = 2^31). Clobbers t4-t6.
fn product_into_sums(a: &mut Asm, off: i32) {
    a.lw(T4, A2, off);
    a.lw(T5, A3, off);
    a.mul(T6, T4, T5);
    a.mulh(T4, T4, T5);
    a.add(T0, T0, T6);
    a.sltu(T6, T0, T6);
    a.add(T1, T1, T6);
    a.xor(T4, T4, A5);
    a.add(T2, T2, T4);
    a.sltu(T6, T2, T4);
    a.add(T3, T3, T6);
}

/// `t2 = sat32(rshift(dot * scale, s))` for `dot = (t3:t2) * 2^32 + (t1:t0)` and the scale
/// in a6. Clobbers t0-t6, s11.
fn score_of_dot(a: &mut Asm) {
    // t2:t1:t0 = dot (96-bit two's complement), s11 = its sign.
    a.add(T1, T1, T2);
    a.sltu(T4, T1, T2);
    a.add(T2, T3, T4);
    a.srli(S11, T2, 31);
    let positive = a.label();
    a.beq(S11, ZERO, positive);
    a.xori(T0, T0, -1);
    a.xori(T1, T1, -1);
    a.xori(T2, T2, -1);
    a.addi(T0, T0, 1);
    a.sltiu(T4, T0, 1);
    a.add(T1, T1, T4);
    a.sltiu(T5, T1, 1);
    a.and(T4, T4, T5);
    a.add(T2, T2, T4);
    a.bind(positive);
    // t6:t5:t4:t3 = |dot| * scale.
    a.mul(T3, T0, A6);
    a.mulhu(T4, T0, A6);
    a.mul(T5, T1, A6);
    a.add(T4, T4, T5);
    a.sltu(T5, T4, T5);
    a.mulhu(T6, T1, A6);
    a.add(T5, T5, T6);
    a.mul(T6, T2, A6);
    a.add(T5, T5, T6);
    a.sltu(T6, T5, T6);
    a.mulhu(T0, T2, A6);
    a.add(T6, T6, T0);
    // + 2^(s-1), carried through.
    a.lw(T0, GP, C_HALF_LO);
    a.add(T3, T3, T0);
    a.sltu(T0, T3, T0);
    a.add(T4, T4, T0);
    a.sltu(T1, T4, T0);
    a.lw(T0, GP, C_HALF_HI);
    a.add(T4, T4, T0);
    a.sltu(T0, T4, T0);
    a.add(T0, T0, T1);
    a.add(T5, T5, T0);
    a.sltu(T0, T5, T0);
    a.add(T6, T6, T0);
    // Drop s >> 5 words: x3:x2:x1:x0 in t6:t5:t4:t3.
    let shifted = a.label();
    a.lw(T0, GP, C_WORDS);
    a.beq(T0, ZERO, shifted);
    a.mv(T3, T4);
    a.mv(T4, T5);
    a.mv(T5, T6);
    a.li(T6, 0);
    a.bind(shifted);
    // t2 = the low word of x >> b; t4 != 0 when x >> b needs more than 31 bits.
    a.lw(T0, GP, C_BITS);
    a.lw(T1, GP, C_BITS_REST);
    a.srl(T2, T3, T0);
    a.slli(T3, T4, 1);
    a.sll(T3, T3, T1);
    a.or(T2, T2, T3);
    a.srl(T4, T4, T0);
    a.or(T4, T4, T5);
    a.or(T4, T4, T6);
    a.srli(T3, T2, 31);
    a.or(T4, T4, T3);
    // Saturate (i32::MAX + 1 = i32::MIN for a negative dot), else apply the sign.
    let fits = a.label();
    let done = a.label();
    a.beq(T4, ZERO, fits);
    a.li(T2, i32::MAX);
    a.add(T2, T2, S11);
    a.j(done);
    a.bind(fits);
    a.beq(S11, ZERO, done);
    a.sub(T2, ZERO, T2);
    a.bind(done);
}

/// `(hi:lo) = rshift((hi:lo), 30)` for a signed 64-bit value whose result fits one word,
/// into `lo`: `(v + 2^29 - [v < 0]) >> 30` (ties away from zero). Needs a6 = 2^29;
/// clobbers t6 and `hi`.
fn rshift30(a: &mut Asm, lo: Reg, hi: Reg) {
    a.srai(T6, hi, 31);
    a.add(T6, T6, A6);
    a.add(lo, lo, T6);
    a.sltu(T6, lo, T6);
    a.add(hi, hi, T6);
    a.srli(lo, lo, 30);
    a.slli(hi, hi, 2);
    a.or(lo, lo, hi);
}

/// Phase 2: `e_t = exp_q30(score_t - max, F)` in place, `S = sum e_t` into s10:s11.
fn exps(a: &mut Asm) {
    arg(a, A3, attention_args::FRAC);
    exp_constants(a);
    a.li(S10, 0);
    a.li(S11, 0);
    a.mv(A1, TP);
    a.slli(RA, S4, 2);
    a.add(RA, RA, TP);
    let top = a.label();
    a.bind(top);
    a.lw(T0, A1, 0);
    a.sub(T0, S9, T0);
    exp_q30(a);
    a.sw(T1, A1, 0);
    a.add(S10, S10, T1);
    a.sltu(T6, S10, T1);
    a.add(S11, S11, T6);
    a.addi(A1, A1, 4);
    a.bne(A1, RA, top);
}

/// The registers [`exp_q30`] reads, for `F` in a3: a2 = `2^F >> 1`, a4 = `31 - F`,
/// a5 = `LOG2E`, a6 = 2^29, a7 = `LN2`. Clobbers t0.
fn exp_constants(a: &mut Asm) {
    a.li(T0, 1);
    a.sll(A2, T0, A3);
    a.srli(A2, A2, 1);
    a.li(A4, 31);
    a.sub(A4, A4, A3);
    a.li(A5, LOG2E_Q30 as i32);
    a.li(A6, HALF30);
    a.li(A7, LN2_Q30 as i32);
}

/// `t1 = exp_q30(-t0, F)` for `t0` in `0..2^32` (unsigned), following §5.4 step by step;
/// the constants as [`exp_constants`] leaves them. Clobbers t0-t6.
pub(crate) fn exp_q30(a: &mut Asm) {
    let zero = a.label();
    let done = a.label();
    // t2:t1 = u = rshift(t0 * LOG2E, F), a non-negative 64-bit value.
    a.mul(T1, T0, A5);
    a.mulhu(T2, T0, A5);
    a.add(T1, T1, A2);
    a.sltu(T3, T1, A2);
    a.add(T2, T2, T3);
    a.srl(T1, T1, A3);
    a.slli(T3, T2, 1);
    a.sll(T3, T3, A4);
    a.or(T1, T1, T3);
    a.srl(T2, T2, A3);
    // t4 = n = (u + 2^29) >> 30; e = 0 from n = 32 on.
    a.add(T3, T1, A6);
    a.sltu(T4, T3, A6);
    a.add(T4, T2, T4);
    a.li(T5, 8);
    a.bgeu(T4, T5, zero);
    a.slli(T4, T4, 2);
    a.srli(T5, T3, 30);
    a.or(T4, T4, T5);
    // t1 = r = u - n 2^30 (one word), t2 = y = -rshift(r * LN2, 30).
    a.slli(T5, T4, 30);
    a.sub(T1, T1, T5);
    a.mul(T2, T1, A7);
    a.mulh(T3, T1, A7);
    rshift30(a, T2, T3);
    a.sub(T2, ZERO, T2);
    // Horner: t1 = c8, then t1 = c_k + rshift(y * t1, 30) for k = 7..=0.
    a.li(T1, EXP_TAYLOR_Q30[8] as i32);
    for &c in EXP_TAYLOR_Q30[..8].iter().rev() {
        a.mul(T3, T2, T1);
        a.mulh(T5, T2, T1);
        rshift30(a, T3, T5);
        a.li(T1, c as i32);
        a.add(T1, T1, T3);
    }
    // e = rshift(p, n) = (p + (2^n >> 1)) >> n (p + half < 2^32).
    a.li(T5, 1);
    a.sll(T5, T5, T4);
    a.srli(T5, T5, 1);
    a.add(T1, T1, T5);
    a.srl(T1, T1, T4);
    a.j(done);
    a.bind(zero);
    a.li(T1, 0);
    a.bind(done);
}

/// Phase 3: `p_t = floor((2^31 e_t + S) / 2S)` in place.
fn probabilities(a: &mut Asm) {
    // a4:a3 = D = 2S.
    a.slli(A4, S11, 1);
    a.srli(T0, S10, 31);
    a.or(A4, A4, T0);
    a.slli(A3, S10, 1);
    // a2 = R = floor(2^62 / D): long division from bit 62 (D > 1, so the first quotient
    // bit is 0 and the remainder 1), 62 more bits; the remainder t1:t0 stays below D.
    a.li(T0, 1);
    a.li(T1, 0);
    a.li(A2, 0);
    a.li(T2, 62);
    let bit = a.label();
    let take = a.label();
    let skip = a.label();
    a.bind(bit);
    a.slli(T1, T1, 1);
    a.srli(T3, T0, 31);
    a.or(T1, T1, T3);
    a.slli(T0, T0, 1);
    a.slli(A2, A2, 1);
    a.bltu(T1, A4, skip);
    a.bne(T1, A4, take);
    a.bltu(T0, A3, skip);
    a.bind(take);
    a.sltu(T3, T0, A3);
    a.sub(T0, T0, A3);
    a.sub(T1, T1, A4);
    a.sub(T1, T1, T3);
    a.ori(A2, A2, 1);
    a.bind(skip);
    a.addi(T2, T2, -1);
    a.bne(T2, ZERO, bit);
    // Per element.
    a.mv(A1, TP);
    a.slli(RA, S4, 2);
    a.add(RA, RA, TP);
    let top = a.label();
    let store = a.label();
    let inc = a.label();
    a.bind(top);
    a.lw(T4, A1, 0);
    a.beq(T4, ZERO, store);
    // t2:t1 = N = 2^31 e + S.
    a.srli(T2, T4, 1);
    a.slli(T1, T4, 31);
    a.add(T1, T1, S10);
    a.sltu(T3, T1, S10);
    a.add(T2, T2, T3);
    a.add(T2, T2, S11);
    // t4 = q = floor(N R / 2^62): the low word of the low product never reaches bit 62.
    a.mulhu(T3, T1, A2);
    a.mul(T4, T2, A2);
    a.mulhu(T5, T2, A2);
    a.add(T4, T4, T3);
    a.sltu(T6, T4, T3);
    a.add(T5, T5, T6);
    a.srli(T4, T4, 30);
    a.slli(T5, T5, 2);
    a.or(T4, T4, T5);
    // t2:t1 = N - q D (mod 2^64; the true value is in 0..2D); one more when >= D.
    a.mul(T5, T4, A3);
    a.mulhu(T6, T4, A3);
    a.mul(T3, T4, A4);
    a.add(T6, T6, T3);
    a.sltu(T3, T1, T5);
    a.sub(T1, T1, T5);
    a.sub(T2, T2, T6);
    a.sub(T2, T2, T3);
    a.bltu(T2, A4, store);
    a.bne(T2, A4, inc);
    a.bltu(T1, A3, store);
    a.bind(inc);
    a.addi(T4, T4, 1);
    a.bind(store);
    a.sw(T4, A1, 0);
    a.addi(A1, A1, 4);
    a.bne(A1, RA, top);
}

/// Phase 4: `out_c = sat32(rshift(sum_t p_t v_tc, 30))`, two channels at a time (sums in
/// t1:t0 and s11:s10), then the last one of an odd head dim.
fn values(a: &mut Asm) {
    a.li(A6, HALF30);
    a.mv(A3, S6);
    a.mv(A4, S1);
    a.add(A7, S1, S8);
    a.andi(RA, S8, -8);
    a.add(RA, RA, S1);
    a.slli(A5, S4, 2);
    a.add(A5, A5, TP);
    let pair = a.label();
    let single = a.label();
    let done = a.label();
    a.beq(A4, RA, single);
    a.bind(pair);
    a.li(T0, 0);
    a.li(T1, 0);
    a.li(S10, 0);
    a.li(S11, 0);
    a.mv(A1, TP);
    a.mv(A2, A3);
    let top = a.label();
    a.bind(top);
    a.lw(T4, A1, 0);
    weighted_into_sum(a, 0, (T0, T1));
    weighted_into_sum(a, 4, (S10, S11));
    a.addi(A1, A1, 4);
    a.add(A2, A2, S7);
    a.bne(A1, A5, top);
    store_rounded(a, 0);
    a.mv(T0, S10);
    a.mv(T1, S11);
    store_rounded(a, 4);
    a.addi(A3, A3, 8);
    a.addi(A4, A4, 8);
    a.bne(A4, RA, pair);
    a.bind(single);
    a.beq(A4, A7, done);
    a.li(T0, 0);
    a.li(T1, 0);
    a.mv(A1, TP);
    a.mv(A2, A3);
    let top = a.label();
    a.bind(top);
    a.lw(T4, A1, 0);
    weighted_into_sum(a, 0, (T0, T1));
    a.addi(A1, A1, 4);
    a.add(A2, A2, S7);
    a.bne(A1, A5, top);
    store_rounded(a, 0);
    a.bind(done);
}

/// `hi:lo += t4 * (the word at off from a2)` (64-bit). Clobbers t5, t6.
fn weighted_into_sum(a: &mut Asm, off: i32, (lo, hi): (Reg, Reg)) {
    a.lw(T5, A2, off);
    a.mul(T6, T4, T5);
    a.mulh(T5, T4, T5);
    a.add(lo, lo, T6);
    a.sltu(T6, lo, T6);
    a.add(hi, hi, T5);
    a.add(hi, hi, T6);
}

/// Store `sat32(rshift(t1:t0, 30))` at `off` from a4: the shifted value's high word t2
/// must be the low word's sign. Clobbers t0-t3, t6.
fn store_rounded(a: &mut Asm, off: i32) {
    rshift30_wide(a);
    let fits = a.label();
    a.srai(T3, T0, 31);
    a.beq(T2, T3, fits);
    a.li(T0, i32::MAX);
    a.bge(T2, ZERO, fits);
    a.lui(T0, 0x80000);
    a.bind(fits);
    a.sw(T0, A4, off);
}

/// `t2:t0 = rshift(t1:t0, 30)` as a 64-bit signed value (`t2` its high word) for any
/// signed 64-bit `t1:t0` below 2^62 in magnitude. Needs a6 = 2^29; clobbers t1, t6.
fn rshift30_wide(a: &mut Asm) {
    a.srai(T6, T1, 31);
    a.add(T6, T6, A6);
    a.add(T0, T0, T6);
    a.sltu(T6, T0, T6);
    a.add(T1, T1, T6);
    a.srai(T2, T1, 30);
    a.srli(T0, T0, 30);
    a.slli(T1, T1, 2);
    a.or(T0, T0, T1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::repeat;
    use opml_dnn::ops::llm::exp::exp_q30 as native_exp;
    use opml_vm::{Machine, Status};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const IN: u32 = 0x1000_0000;
    const OUT: u32 = 0x2000_0000;

    /// The kernel's exp routine run in the VM on each `m`: `exp_q30(-m, frac)`.
    fn vm_exp(ms: &[u32], frac: u32) -> Vec<i32> {
        let mut a = Asm::new();
        a.li(A3, frac as i32);
        exp_constants(&mut a);
        a.li(A1, IN as i32);
        a.li(S0, OUT as i32);
        a.li(S1, ms.len() as i32);
        repeat(&mut a, S2, S1, |a| {
            a.lw(T0, A1, 0);
            exp_q30(a);
            a.sw(T1, S0, 0);
            a.addi(A1, A1, 4);
            a.addi(S0, S0, 4);
        });
        a.exit(0);
        let mut m = Machine::new();
        m.memory_mut().write_bytes(0, &a.finish().unwrap());
        m.memory_mut().write_bytes(IN, &ms.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
        m.run(200 * ms.len() as u64 + 100);
        assert_eq!((m.status, m.exit_code), (Status::Exited, 0));
        m.memory()
            .read_bytes(OUT, 4 * ms.len())
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    /// `rshift(v, s)` of the spec (ties away from zero), to find inputs with ties.
    fn rshift(v: i128, s: u32) -> i128 {
        let q = ((v.unsigned_abs() + (1u128 << s >> 1)) >> s) as i128;
        if v < 0 {
            -q
        } else {
            q
        }
    }

    /// Whether `exp_q30(-m, frac)` rounds an exact half of a negative product (`r * LN2` or
    /// a Horner step `y * p`): the inputs where rounding toward +infinity would differ.
    fn negative_tie(m: u64, frac: u32) -> bool {
        let half = 1i128 << 29;
        let is_tie = |v: i128| v < 0 && v.rem_euclid(2 * half) == half;
        let u = rshift(m as i128 * LOG2E_Q30 as i128, frac);
        let n = (u + half) >> 30;
        if n >= 32 {
            return false;
        }
        let v = (u - (n << 30)) * LN2_Q30 as i128;
        let y = -rshift(v, 30);
        let mut p = EXP_TAYLOR_Q30[8] as i128;
        let mut tie = is_tie(v);
        for &c in EXP_TAYLOR_Q30[..8].iter().rev() {
            tie |= is_tie(y * p);
            p = c as i128 + rshift(y * p, 30);
        }
        tie
    }

    /// Inputs whose `u` has the residue `r` (mod 2^30) for some `n < 4`.
    fn inputs_with_residue(r: i128, frac: u32, out: &mut Vec<u32>) {
        for n in 0..4i128 {
            let u = (n << 30) + r;
            let m = (u << frac) / LOG2E_Q30 as i128;
            for m in (m - 2).max(0)..=m + 2 {
                if let Ok(m) = u32::try_from(m) {
                    if rshift(m as i128 * LOG2E_Q30 as i128, frac) == u {
                        out.push(m);
                    }
                }
            }
        }
    }

    /// Candidates for ties: `r = -2^28` (then `r * LN2` is an odd multiple of 2^29), and
    /// `y = ±odd * 2^k` for large `k` (a Horner product `y p` is an odd multiple of 2^29
    /// when `p` has exactly `29 - k` trailing zeros).
    fn tie_candidates(frac: u32) -> Vec<u32> {
        let mut out = Vec::new();
        inputs_with_residue(-(1 << 28), frac, &mut out);
        for k in 20..=28 {
            for odd in (1i128..1 << (29 - k)).step_by(2) {
                for y in [odd << k, -(odd << k)] {
                    // rshift(r LN2, 30) = -y.
                    let r0 = (-y << 30) / LN2_Q30 as i128;
                    for r in r0 - 2..=r0 + 2 {
                        if (-(1 << 29)..1 << 29).contains(&r) && -rshift(r * LN2_Q30 as i128, 30) == y {
                            inputs_with_residue(r, frac, &mut out);
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn exp_routine_is_bit_exact_with_native_including_ties_and_underflow() {
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        let mut ties = 0;
        for frac in [0, 1, 2, 15, 16, 29, 30, 31] {
            let mut ms: Vec<u32> = (0..4096).chain([u32::MAX, u32::MAX - 1, 1 << 31, (1 << 31) - 1]).collect();
            ms.extend((0..8192u32).map(|i| i.wrapping_mul(524_309)));
            ms.extend((0..8192).map(|_| rng.gen::<u32>() >> rng.gen_range(0..32)));
            let cand = tie_candidates(frac);
            ties += cand.iter().filter(|&&m| negative_tie(m as u64, frac)).count();
            ms.extend(cand);
            let want: Vec<i32> = ms.iter().map(|&m| native_exp(-(m as i64), frac)).collect();
            let got = vm_exp(&ms, frac);
            for ((m, g), w) in ms.iter().zip(&got).zip(&want) {
                assert_eq!(g, w, "exp_q30(-{m}, {frac})");
            }
        }
        eprintln!("{ties} inputs round an exact negative half");
        assert!(ties >= 8, "only {ties} tie inputs found");
    }
}
