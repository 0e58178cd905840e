//! `rope` on the wide stream (`docs/spec/ops.md` §5.7): each adjacent pair
//! `(x0, x1)` of a head at position `p` becomes
//! `(sat32(rshift(x0 c - x1 s, 30)), sat32(rshift(x0 s + x1 c, 30)))` with the Q30 table
//! entries `c, s` of position `p` and the pair's index.
//!
//! The products are exact in register pairs. Their difference lies in
//! `(-2^63, 2^63)`, and so does their sum except for one input: `2^63` exactly, when all
//! four operands are `-2^31`; that sum is detected by its sign and saturates to `i32::MAX`
//! as the native i128 arithmetic does.

use super::fixexp::{round_shift64, sat32, Shift};
use super::{arg, repeat};
use crate::asm::reg::{A1, A2, A3, A4, A5, A6, A7, S2, S3, S4, S5, S6, S7, S8, T0, T1, T2, T3, T4, T5, T6, ZERO};
use crate::asm::{Asm, Reg};

arg_words! {
    /// Argument words of the `rope` kernel.
    pub mod rope_args {
        X, COS, SIN, OUT,
        /// Positions in `x` (its first axis).
        SEQ,
        /// Heads (the second axis).
        HEADS,
        /// Pairs per head (`head_dim / 2`, the tables' row length).
        HALF,
        /// Byte offset of position `pos0`'s row in the tables (`pos0 * HALF * 4`).
        ROW0,
    }
}

/// The fraction bits of the tables.
const TABLE_FRAC: u32 = 30;

/// `y = sat32(rshift(hi:lo, 30))` stored at `off(a2)`. Clobbers t2, t3.
fn store_rotated(a: &mut Asm, lo: Reg, hi: Reg, off: i32) {
    round_shift64(a, lo, hi, Shift::Const(TABLE_FRAC), [T2, T3]);
    sat32(a, lo, hi, T2);
    a.sw(lo, A2, off);
}

/// The `rope` kernel: for each position (s3, s4 walk the table rows), each head, each
/// pair (s5, s6 walk the row).
pub fn rope(a: &mut Asm) {
    use rope_args as w;
    arg(a, A1, w::X);
    arg(a, A2, w::OUT);
    arg(a, S7, w::HALF);
    a.slli(S8, S7, 2);
    arg(a, T0, w::ROW0);
    arg(a, S3, w::COS);
    a.add(S3, S3, T0);
    arg(a, S4, w::SIN);
    a.add(S4, S4, T0);
    arg(a, A6, w::SEQ);
    repeat(a, A6, A6, |a| {
        arg(a, A7, w::HEADS);
        repeat(a, A7, A7, |a| {
            a.mv(S5, S3);
            a.mv(S6, S4);
            repeat(a, S2, S7, |a| {
                a.lw(A3, A1, 0);
                a.lw(A4, A1, 4);
                a.lw(A5, S5, 0);
                a.lw(T6, S6, 0);
                // y0 from x0 c - x1 s.
                a.mul(T0, A3, A5);
                a.mulh(T1, A3, A5);
                a.mul(T2, A4, T6);
                a.mulh(T3, A4, T6);
                a.sltu(T4, T0, T2);
                a.sub(T0, T0, T2);
                a.sub(T1, T1, T3);
                a.sub(T1, T1, T4);
                store_rotated(a, T0, T1, 0);
                // y1 from x0 s + x1 c; the one overflowing sum (two non-negative high
                // words giving a negative one) saturates.
                a.mul(T0, A3, T6);
                a.mulh(T1, A3, T6);
                a.mul(T2, A4, A5);
                a.mulh(T3, A4, A5);
                a.add(T0, T0, T2);
                a.sltu(T4, T0, T2);
                a.add(T5, T1, T3);
                a.add(T5, T5, T4);
                let overflow = a.label();
                let done = a.label();
                a.or(T4, T1, T3);
                a.xori(T4, T4, -1);
                a.and(T4, T4, T5);
                a.blt(T4, ZERO, overflow);
                store_rotated(a, T0, T5, 4);
                a.j(done);
                a.bind(overflow);
                a.li(T0, i32::MAX);
                a.sw(T0, A2, 4);
                a.bind(done);
                a.addi(A1, A1, 8);
                a.addi(A2, A2, 8);
                a.addi(S5, S5, 4);
                a.addi(S6, S6, 4);
            });
        });
        a.add(S3, S3, S8);
        a.add(S4, S4, S8);
    });
    a.exit(0);
}
