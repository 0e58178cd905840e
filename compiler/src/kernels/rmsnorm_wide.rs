//! `rmsnorm_wide` (`docs/spec/ops.md` §5.3): per row `Q = sum x_i^2`,
//! `v = floor(Q / n) + eps`, `INV = isqrt(floor(2^(2F+60) / v))` (0 when `v = 0`) and
//! `y_i = sat32(rshift(x_i * INV * gamma_i, shift))` with
//! `shift = F + 30 + G - F_out` (0..=123).
//!
//! `Q < 2^82` is summed in three registers; the row's two divisions and the square root
//! run on 128-bit slots (`wide`). Per element the magnitude `W = |x_i| |gamma_i| INV`
//! (below `2^124`: `INV <= 2^61`) is a 2 x 2 limb product in registers, stored to a slot
//! followed by three zero words so that `W >> shift` reads from a fixed word offset and
//! bit offset of the node. The rounding adds bit `shift - 1` of `W`
//! (`floor((W + 2^(s-1)) / 2^s) = floor(W / 2^s) + bit_(s-1)(W)`), and the sign is
//! applied last, so ties go away from zero as in the native i128 arithmetic.

use super::wide::{self, At, Wide, SLOT};
use super::{arg, repeat};
use crate::asm::reg::{
    A1, A2, A3, A4, A6, A7, GP, S0, S1, S2, S3, S4, S5, S6, S7, S9, T0, T1, T2, T3, T4, T5, T6, ZERO,
};
use crate::asm::Asm;

arg_words! {
    /// Argument words of the `rmsnorm_wide` kernel.
    pub mod rmsnorm_wide_args {
        X, GAMMA, OUT, ROWS,
        /// Row length `n` (1..=2^20).
        N,
        EPS_LO, EPS_HI,
        /// Input fraction bits `F` (0..=31).
        FRAC,
        /// The output shift `F + 30 + G - F_out` (0..=123).
        SHIFT,
        /// Scratch for the slots ([`SLOT_BYTES`]).
        SLOTS,
        COUNT;
        /// Scratch bytes for the slots.
        pub const SLOT_BYTES: usize = 14 * 16;
    }
}

// Slots (16 bytes each) from gp.
const S_Q: i32 = 0;
const S_N: i32 = 1;
const S_EPS: i32 = 2;
const S_V: i32 = 3;
const S_REM: i32 = 4;
const S_NUM: i32 = 5;
const S_Y: i32 = 6;
const S_INV: i32 = 7;
/// Four slots of `isqrt` temporaries.
const S_ISQ: i32 = 8;
/// `W` (four words), then three words that stay zero (slots 12 and 13).
const S_W: i32 = 12;

/// The address of slot `s`.
fn at(s: i32) -> At {
    (GP, SLOT * s)
}

/// The per-node constants: slots `n`, `eps` and `2^(2F + 60)`; s5 = the word of `W` where
/// `W >> shift` starts, s6 = `shift mod 32`; s7 = the word holding bit `shift - 1` of `W`
/// and s9 its bit (the first zero word above `W` and 0 when `shift = 0`).
fn constants(a: &mut Asm) {
    use rmsnorm_wide_args as w;
    wide::clear(a, &[at(S_N), at(S_EPS), at(S_NUM)]);
    arg(a, T0, w::N);
    a.sw(T0, GP, SLOT * S_N);
    arg(a, T0, w::EPS_LO);
    a.sw(T0, GP, SLOT * S_EPS);
    arg(a, T0, w::EPS_HI);
    a.sw(T0, GP, SLOT * S_EPS + 4);
    // 2^e, e = 2F + 60 (60..=122): bit e mod 32 of word e / 32.
    arg(a, T0, w::FRAC);
    a.slli(T0, T0, 1);
    a.addi(T0, T0, 60);
    a.srli(T1, T0, 5);
    a.slli(T1, T1, 2);
    a.add(T1, T1, GP);
    a.andi(T0, T0, 31);
    a.li(T2, 1);
    a.sll(T2, T2, T0);
    a.sw(T2, T1, SLOT * S_NUM);
    // The shift's word and bit.
    arg(a, T0, w::SHIFT);
    a.srli(T1, T0, 5);
    a.slli(T1, T1, 2);
    a.add(S5, GP, T1);
    a.addi(S5, S5, SLOT * S_W);
    a.andi(S6, T0, 31);
    let unrounded = a.label();
    let done = a.label();
    a.beq(T0, ZERO, unrounded);
    a.addi(T0, T0, -1);
    a.srli(T1, T0, 5);
    a.slli(T1, T1, 2);
    a.add(S7, GP, T1);
    a.addi(S7, S7, SLOT * S_W);
    a.andi(S9, T0, 31);
    a.j(done);
    a.bind(unrounded);
    a.addi(S7, GP, SLOT * S_W + 16);
    a.li(S9, 0);
    a.bind(done);
}

/// Slot Q = the sum of squares of the row at s0 (registers a1, a2, a3 hold it while
/// summing: each square is below 2^62, the sum below 2^82).
fn sum_of_squares(a: &mut Asm) {
    a.li(A1, 0);
    a.li(A2, 0);
    a.li(A3, 0);
    a.mv(A4, S0);
    arg(a, A6, rmsnorm_wide_args::N);
    repeat(a, A6, A6, |a| {
        a.lw(T0, A4, 0);
        a.mul(T1, T0, T0);
        a.mulh(T2, T0, T0);
        a.add(A1, A1, T1);
        a.sltu(T3, A1, T1);
        a.add(T2, T2, T3);
        a.add(A2, A2, T2);
        a.sltu(T3, A2, T2);
        a.add(A3, A3, T3);
        a.addi(A4, A4, 4);
    });
    a.sw(A1, GP, SLOT * S_Q);
    a.sw(A2, GP, SLOT * S_Q + 4);
    a.sw(A3, GP, SLOT * S_Q + 8);
    a.sw(ZERO, GP, SLOT * S_Q + 12);
}

/// s4:s3 = INV of the row (0 when `v = 0`).
fn inverse_rms(a: &mut Asm, w: &Wide) {
    w.divmod(a, at(S_V), at(S_REM), at(S_Q), at(S_N));
    w.add(a, at(S_V), at(S_V), at(S_EPS));
    let zero = a.label();
    a.li(S3, 0);
    a.li(S4, 0);
    a.li(T0, 0);
    for off in wide::LIMBS_UP {
        a.lw(T1, GP, SLOT * S_V + off);
        a.or(T0, T0, T1);
    }
    a.beq(T0, ZERO, zero);
    w.divmod(a, at(S_Y), at(S_REM), at(S_NUM), at(S_V));
    w.isqrt(a, at(S_INV), at(S_Y), at(S_ISQ));
    a.lw(S3, GP, SLOT * S_INV);
    a.lw(S4, GP, SLOT * S_INV + 4);
    a.bind(zero);
}

/// `(t3, t2, t1, t0) += t6 << (32 * word)` for `word` 1 or 2 (carries up to t3).
fn add_at(a: &mut Asm, word: usize) {
    let limbs = [T0, T1, T2, T3];
    let mut k = word;
    a.add(limbs[k], limbs[k], T6);
    while k < 3 {
        a.sltu(T6, limbs[k], T6);
        k += 1;
        a.add(limbs[k], limbs[k], T6);
    }
}

/// One element: x at a1, gamma at a2, the result to a3.
fn element(a: &mut Asm) {
    a.lw(T0, A1, 0);
    a.lw(T1, A2, 0);
    // a7 = all ones when the product is negative; t0, t1 = magnitudes.
    a.xor(A7, T0, T1);
    a.srai(A7, A7, 31);
    for r in [T0, T1] {
        a.srai(T2, r, 31);
        a.xor(r, r, T2);
        a.sub(r, r, T2);
    }
    // t5:t4 = |x| |gamma| (below 2^62).
    a.mul(T4, T0, T1);
    a.mulhu(T5, T0, T1);
    // (t3, t2, t1, t0) = W = t5:t4 * s4:s3.
    a.mul(T0, T4, S3);
    a.mulhu(T1, T4, S3);
    a.mul(T2, T5, S4);
    a.mulhu(T3, T5, S4);
    a.mul(T6, T4, S4);
    add_at(a, 1);
    a.mulhu(T6, T4, S4);
    add_at(a, 2);
    a.mul(T6, T5, S3);
    add_at(a, 1);
    a.mulhu(T6, T5, S3);
    add_at(a, 2);
    for (k, r) in [T0, T1, T2, T3].into_iter().enumerate() {
        a.sw(r, GP, SLOT * S_W + 4 * k as i32);
    }
    // t0 = the low word of W >> shift, t1 = its higher words or'ed, t2 = the rounding bit.
    a.lw(T0, S5, 0);
    a.lw(T1, S5, 4);
    a.srl(T0, T0, S6);
    a.slli(T2, T1, 1);
    a.xori(T3, S6, 31);
    a.sll(T2, T2, T3);
    a.or(T0, T0, T2);
    a.srl(T1, T1, S6);
    a.lw(T2, S5, 8);
    a.or(T1, T1, T2);
    a.lw(T2, S5, 12);
    a.or(T1, T1, T2);
    a.lw(T2, S7, 0);
    a.srl(T2, T2, S9);
    a.andi(T2, T2, 1);
    // A magnitude of 2^31 or more saturates (to i32::MIN for a negative value, which is
    // also the value of -2^31 itself).
    let sat = a.label();
    let store = a.label();
    a.bne(T1, ZERO, sat);
    a.blt(T0, ZERO, sat);
    a.add(T0, T0, T2);
    a.blt(T0, ZERO, sat);
    a.xor(T0, T0, A7);
    a.sub(T0, T0, A7);
    a.j(store);
    a.bind(sat);
    a.li(T0, i32::MAX);
    a.xor(T0, T0, A7);
    a.bind(store);
    a.sw(T0, A3, 0);
}

/// The `rmsnorm_wide` kernel: s0 walks the input rows, s1 the output rows, s2 counts them.
pub fn rmsnorm_wide(a: &mut Asm) {
    use rmsnorm_wide_args as w;
    let wd = Wide::labels(a);
    arg(a, GP, w::SLOTS);
    constants(a);
    arg(a, S0, w::X);
    arg(a, S1, w::OUT);
    arg(a, S2, w::ROWS);
    repeat(a, S2, S2, |a| {
        sum_of_squares(a);
        inverse_rms(a, &wd);
        a.mv(A1, S0);
        arg(a, A2, w::GAMMA);
        a.mv(A3, S1);
        arg(a, A6, w::N);
        repeat(a, A6, A6, |a| {
            element(a);
            a.addi(A1, A1, 4);
            a.addi(A2, A2, 4);
            a.addi(A3, A3, 4);
        });
        a.mv(S0, A1);
        a.mv(S1, A3);
    });
    a.exit(0);
    wide::emit(a, &wd);
}
