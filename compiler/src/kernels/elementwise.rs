//! Element-wise kernels: `requantize`, `relu`, `add`, `lut`, the word copy used by
//! `reshape`, and `argmax`.

use super::{arg, clamp, load_binary_stream, load_stream, repeat, store_out_byte, OutByte};
use crate::asm::reg::{
    A0, A1, A2, A3, A5, A6, A7, S0, S1, S2, S3, S4, S5, S6, S7, S8, T0, T1, T2, T3, T4, T5, T6, ZERO,
};
use crate::asm::{Asm, Reg};

arg_words! {
    /// Argument words of the `requantize` kernel: then per channel [`REQ_CHANNEL_WORDS`] words
    /// `multiplier, left shift, right shift, 2^right - 1, act_min - out_zp, act_max - out_zp`.
    pub mod requantize_args {
        X, OUT, OUTER, CHANNELS, INNER, ZP, CH0;
        pub const REQ_CHANNEL_WORDS: usize = 6;
    }
}

/// `requantize`: `clamp(MBQM(x, m, s) + zp, lo, hi)` computed as
/// `clamp(MBQM(x, m, s), lo - zp, hi - zp) + zp` (no overflow in 32 bits).
/// MBQM: `x << left`; SRDHM as the 64-bit `(x*m + 2^30) >> 31` (`mul`/`mulh`; valid
/// multipliers are >= 0 so the saturating case cannot occur); RDBPOT by `right`.
pub fn requantize(a: &mut Asm) {
    use requantize_args as w;
    load_stream(a, w::X, w::OUT, w::OUTER);
    arg(a, A5, w::ZP);
    a.lui(T6, 0x40000); // 2^30
    repeat(a, A6, A6, |a| {
        a.addi(A3, A0, 4 * w::CH0 as i32);
        arg(a, A7, w::CHANNELS);
        repeat(a, A7, A7, |a| {
            a.lw(S1, A3, 0);
            a.lw(S2, A3, 4);
            a.lw(S3, A3, 8);
            a.lw(S4, A3, 12);
            a.lw(S6, A3, 16);
            a.lw(S7, A3, 20);
            arg(a, S8, w::INNER);
            repeat(a, S8, S8, |a| {
                a.lw(T0, A1, 0);
                mbqm(a, T0, S1, S2, S3, S4);
                clamp(a, T0, S6, S7);
                a.add(T0, T0, A5);
                a.sb(T0, A2, 0);
                a.addi(A1, A1, 4);
                a.addi(A2, A2, 1);
            });
            a.addi(A3, A3, 4 * w::REQ_CHANNEL_WORDS as i32);
        });
    });
    a.exit(0);
}

/// `x = MBQM(x, m, 2^ls, 2^-rs)` in place: `x << ls`; SRDHM as the 64-bit
/// `(x*m + 2^30) >> 31` (`mul`/`mulh`; valid multipliers are >= 0, so the saturating case
/// cannot occur); then RDBPOT by `rs` with `mask = 2^rs - 1`:
/// `(x >> rs) + ((x & mask) > (mask >> 1) + (x < 0))`. Needs `t6 = 2^30`; clobbers t1-t5.
pub(crate) fn mbqm(a: &mut Asm, x: Reg, m: Reg, ls: Reg, rs: Reg, mask: Reg) {
    a.sll(x, x, ls);
    a.mul(T1, x, m);
    a.mulh(T2, x, m);
    a.add(T3, T1, T6);
    a.sltu(T4, T3, T1);
    a.add(T2, T2, T4);
    a.slli(T2, T2, 1);
    a.srli(T3, T3, 31);
    a.or(x, T2, T3);
    a.and(T1, x, mask);
    a.slt(T2, x, ZERO);
    a.srli(T5, mask, 1);
    a.add(T2, T2, T5);
    a.slt(T2, T2, T1);
    a.sra(x, x, rs);
    a.add(x, x, T2);
}

arg_words! {
    /// Argument words shared by the unary kernels `relu`, `lut`, `copy`.
    pub mod unary_args {
        X, OUT,
        /// Elements (`copy`: words).
        COUNT,
        /// `relu`: zero point. `lut`: first table word (256 bytes).
        P0,
        /// `relu`: 1 for i32, 0 for i8.
        WIDE,
    }
}

/// Load a unary kernel's pointers and count: a1 = x, a2 = out, a6 = count.
fn load_unary(a: &mut Asm) {
    use unary_args as w;
    load_stream(a, w::X, w::OUT, w::COUNT);
}

/// Run `body` for each of the a6 elements, then step x (a1) by `x_step` and out (a2) by
/// `out_step` bytes.
fn unary_loop(a: &mut Asm, x_step: i32, out_step: i32, body: impl FnOnce(&mut Asm)) {
    repeat(a, A6, A6, |a| {
        body(a);
        a.addi(A1, A1, x_step);
        a.addi(A2, A2, out_step);
    });
}

/// `relu`: `max(x, zp)` on i8 or i32.
pub fn relu(a: &mut Asm) {
    use unary_args as w;
    load_unary(a);
    arg(a, T5, w::P0);
    arg(a, T6, w::WIDE);
    let narrow = a.label();
    let done = a.label();
    a.beq(T6, ZERO, narrow);
    for wide in [true, false] {
        if !wide {
            a.bind(narrow);
        }
        let step = if wide { 4 } else { 1 };
        unary_loop(a, step, step, |a| {
            let keep = a.label();
            if wide {
                a.lw(T0, A1, 0);
            } else {
                a.lb(T0, A1, 0);
            }
            a.bge(T0, T5, keep);
            a.mv(T0, T5);
            a.bind(keep);
            if wide {
                a.sw(T0, A2, 0);
            } else {
                a.sb(T0, A2, 0);
            }
        });
        if wide {
            a.j(done);
        }
    }
    a.bind(done);
    a.exit(0);
}

/// `lut`: `out = table[x + 128]`, the table being the 256 bytes at argument word 3.
pub fn lut(a: &mut Asm) {
    load_unary(a);
    a.addi(T5, A0, 4 * unary_args::P0 as i32 + 128);
    unary_loop(a, 1, 1, |a| {
        a.lb(T0, A1, 0);
        a.add(T0, T0, T5);
        a.lb(T0, T0, 0);
        a.sb(T0, A2, 0);
    });
    a.exit(0);
}

/// Word copy of `COUNT` words (`reshape`: same bytes, new shape).
pub fn copy(a: &mut Asm) {
    load_unary(a);
    unary_loop(a, 4, 4, |a| {
        a.lw(T0, A1, 0);
        a.sw(T0, A2, 0);
    });
    a.exit(0);
}

arg_words! {
    /// Argument words of `add`.
    pub mod add_args {
        A, B, OUT, LEN, COUNT,
    }
}

/// `add`: wrapping i32 addition.
pub fn add(a: &mut Asm) {
    use add_args as w;
    load_binary_stream(a, w::A, w::B, w::OUT, w::LEN);
    repeat(a, A6, A6, |a| {
        a.lw(T0, A1, 0);
        a.lw(T1, A2, 0);
        a.add(T0, T0, T1);
        a.sw(T0, A3, 0);
        a.addi(A1, A1, 4);
        a.addi(A2, A2, 4);
        a.addi(A3, A3, 4);
    });
    a.exit(0);
}

arg_words! {
    /// Argument words of `argmax`.
    pub mod argmax_args {
        X, OUT, ROWS, LEN, WIDE,
    }
}

/// `argmax` over the last axis: the first index of the maximum.
pub fn argmax(a: &mut Asm) {
    use argmax_args as w;
    load_stream(a, w::X, w::OUT, w::ROWS);
    arg(a, T6, w::WIDE);
    let narrow = a.label();
    let done = a.label();
    a.beq(T6, ZERO, narrow);
    for wide in [true, false] {
        if !wide {
            a.bind(narrow);
        }
        let w = if wide { 4 } else { 1 };
        repeat(a, A6, A6, |a| {
            arg(a, A7, w::LEN);
            a.li(T3, 0); // index
            a.li(T4, 0); // best index
            if wide {
                a.lw(T5, A1, 0);
            } else {
                a.lb(T5, A1, 0);
            }
            repeat(a, A7, A7, |a| {
                let skip = a.label();
                if wide {
                    a.lw(T0, A1, 0);
                } else {
                    a.lb(T0, A1, 0);
                }
                a.bge(T5, T0, skip);
                a.mv(T5, T0);
                a.mv(T4, T3);
                a.bind(skip);
                a.addi(T3, T3, 1);
                a.addi(A1, A1, w);
            });
            a.sw(T4, A2, 0);
            a.addi(A2, A2, 4);
        });
        if wide {
            a.j(done);
        }
    }
    a.bind(done);
    a.exit(0);
}

/// Argument words of `qadd` and `qmul`. A multiplier takes four words
/// (`multiplier, max(shift,0), max(-shift,0), 2^max(-shift,0) - 1`).
pub mod qbin_args {
    #![allow(missing_docs)]
    pub const A: usize = 0;
    pub const B: usize = 1;
    pub const OUT: usize = 2;
    pub const LEN: usize = 3;
    pub const A_ZP: usize = 4;
    pub const B_ZP: usize = 5;
    pub const LO: usize = 6;
    pub const HI: usize = 7;
    pub const OUT_ZP: usize = 8;
    /// qmul: the multiplier; qadd: the output multiplier.
    pub const MULT: usize = 9;
    /// qadd only.
    pub const A_MULT: usize = 13;
    pub const B_MULT: usize = 17;
    pub const LEFT: usize = 21;
    pub const QMUL_COUNT: usize = 13;
    pub const QADD_COUNT: usize = 22;
}

/// Load the four multiplier words at argument `first` into s1-s4.
fn load_mult(a: &mut Asm, first: usize) {
    for (i, r) in [S1, S2, S3, S4].into_iter().enumerate() {
        arg(a, r, first + i);
    }
}

/// The loop of `qadd` and `qmul`: `element` leaves the unclamped result in t0 for the
/// bytes at a1, a2; the output byte goes to a3.
fn q_binary(a: &mut Asm, element: impl Fn(&mut Asm)) {
    use qbin_args as w;
    let out = OutByte { lo: w::LO, hi: w::HI, zp: w::OUT_ZP };
    load_binary_stream(a, w::A, w::B, w::OUT, w::LEN);
    a.lui(T6, 0x40000); // 2^30
    repeat(a, A6, A6, |a| {
        element(a);
        store_out_byte(a, T0, A3, &out, [S6, S7, S8]);
        a.addi(A1, A1, 1);
        a.addi(A2, A2, 1);
        a.addi(A3, A3, 1);
    });
    a.exit(0);
}

/// `qmul`: `clamp(MBQM((a - a_zp) * (b - b_zp), m, s) + out_zp, act_min, act_max)`.
pub fn qmul(a: &mut Asm) {
    use qbin_args as w;
    q_binary(a, |a| {
        a.lb(T0, A1, 0);
        arg(a, S0, w::A_ZP);
        a.sub(T0, T0, S0);
        a.lb(S5, A2, 0);
        arg(a, S0, w::B_ZP);
        a.sub(S5, S5, S0);
        a.mul(T0, T0, S5);
        load_mult(a, w::MULT);
        mbqm(a, T0, S1, S2, S3, S4);
    });
}

/// `qadd`: `a' = (a - a_zp) << left`, `b'` likewise,
/// `s = MBQM(a', a_mult) + MBQM(b', b_mult)` (wrapping), then
/// `clamp(MBQM(s, out_mult) + out_zp, act_min, act_max)`.
pub fn qadd(a: &mut Asm) {
    use qbin_args as w;
    q_binary(a, |a| {
        for (ptr, zp, mult) in [(A1, w::A_ZP, w::A_MULT), (A2, w::B_ZP, w::B_MULT)] {
            a.lb(T0, ptr, 0);
            arg(a, S0, zp);
            a.sub(T0, T0, S0);
            arg(a, S0, w::LEFT);
            a.sll(T0, T0, S0);
            load_mult(a, mult);
            mbqm(a, T0, S1, S2, S3, S4);
            if ptr == A1 {
                a.mv(S5, T0);
            }
        }
        a.add(T0, T0, S5);
        load_mult(a, w::MULT);
        mbqm(a, T0, S1, S2, S3, S4);
    });
}
