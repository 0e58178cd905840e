//! `softmax` over the last axis with 64-bit sums and an exact 9-bit restoring division.

use super::{arg, load_stream, repeat};
use crate::asm::reg::{A0, A1, A2, A3, A6, A7, S0, S1, S11, S2, S3, S4, S5, S6, T0, T1, T2, T3, T4, T5};
use crate::asm::{Asm, Reg};

arg_words! {
    /// Argument words of `softmax`: then the 256 `exp_table` entries.
    pub mod softmax_args {
        X, OUT, ROWS, LEN, TABLE,
    }
}

/// Per row: `m = max`, `S = sum exp_table[m - x_i]` (64-bit), and per element
/// `q = floor((512 e + S) / (2 S))`, which lies in `0..=256` because `e <= S`, computed by
/// restoring division over 9 quotient bits on 64-bit register pairs; `out = min(q - 128, 127)`.
pub fn softmax(a: &mut Asm) {
    use softmax_args as w;
    load_stream(a, w::X, w::OUT, w::ROWS);
    a.addi(S11, A0, 4 * w::TABLE as i32);
    a.li(S6, 127);
    repeat(a, A6, A6, |a| {
        arg(a, A7, w::LEN);
        // s0 = max of the row.
        a.lb(S0, A1, 0);
        a.mv(A3, A1);
        repeat(a, S1, A7, |a| {
            let keep = a.label();
            a.lb(T0, A3, 0);
            a.bge(S0, T0, keep);
            a.mv(S0, T0);
            a.bind(keep);
            a.addi(A3, A3, 1);
        });
        // s2:s3 = S (lo:hi).
        a.li(S2, 0);
        a.li(S3, 0);
        a.mv(A3, A1);
        repeat(a, S1, A7, |a| {
            exp_entry(a, A3);
            a.add(S2, S2, T0);
            a.sltu(T1, S2, T0);
            a.add(S3, S3, T1);
            a.addi(A3, A3, 1);
        });
        // s4:s5 = 2S << 8 = S << 9.
        a.slli(S5, S3, 9);
        a.srli(T0, S2, 23);
        a.or(S5, S5, T0);
        a.slli(S4, S2, 9);
        repeat(a, S1, A7, |a| {
            exp_entry(a, A1);
            // t0:t1 = 512 e + S.
            a.srli(T1, T0, 23);
            a.slli(T0, T0, 9);
            a.add(T0, T0, S2);
            a.sltu(T2, T0, S2);
            a.add(T1, T1, T2);
            a.add(T1, T1, S3);
            a.mv(T3, S4);
            a.mv(T4, S5);
            a.li(T5, 0);
            for _ in 0..9 {
                let take = a.label();
                let skip = a.label();
                a.slli(T5, T5, 1);
                a.bltu(T1, T4, skip);
                a.bne(T1, T4, take);
                a.bltu(T0, T3, skip);
                a.bind(take);
                a.sltu(T2, T0, T3);
                a.sub(T0, T0, T3);
                a.sub(T1, T1, T4);
                a.sub(T1, T1, T2);
                a.ori(T5, T5, 1);
                a.bind(skip);
                a.srli(T3, T3, 1);
                a.slli(T2, T4, 31);
                a.or(T3, T3, T2);
                a.srli(T4, T4, 1);
            }
            let fits = a.label();
            a.addi(T5, T5, -128);
            a.bge(S6, T5, fits);
            a.mv(T5, S6);
            a.bind(fits);
            a.sb(T5, A2, 0);
            a.addi(A1, A1, 1);
            a.addi(A2, A2, 1);
        });
    });
    a.exit(0);
}

/// `t0 = exp_table[s0 - x]` for the byte `x` at `ptr` (table at s11). Clobbers t1.
fn exp_entry(a: &mut Asm, ptr: Reg) {
    a.lb(T1, ptr, 0);
    a.sub(T1, S0, T1);
    a.slli(T1, T1, 2);
    a.add(T1, T1, S11);
    a.lw(T0, T1, 0);
}
