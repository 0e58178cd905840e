//! `swiglu` on the wide stream (`docs/spec/ops.md` §5.5): per element
//! `sat32(rshift(silu(g) * u, F))` with `silu(g) = rshift(g * sigmoid_q30(g, F), 30)`, the
//! sigmoid from the shared routine of `fixexp`.

use super::fixexp::{self, round_shift64, sat32, FixExp, Shift};
use super::{arg, load_binary_stream, repeat};
use crate::asm::reg::{A1, A2, A3, A6, RA, S2, S3, S4, T0, T1, T2, T3, T4, T5, ZERO};
use crate::asm::Asm;

arg_words! {
    /// Argument words of the `swiglu` kernel.
    pub mod swiglu_args {
        GATE, UP, OUT,
        /// Elements.
        COUNT,
        /// Fraction bits `F` of the operands and the result (0..=31).
        FRAC,
    }
}

/// The `swiglu` kernel.
pub fn swiglu(a: &mut Asm) {
    use swiglu_args as w;
    let f = FixExp::labels(a);
    load_binary_stream(a, w::GATE, w::UP, w::OUT, w::COUNT);
    // s2 = F, s3 = 2^(F-1) (unused when F = 0).
    arg(a, S2, w::FRAC);
    let no_half = a.label();
    a.li(S3, 0);
    a.beq(S2, ZERO, no_half);
    a.addi(T0, S2, -1);
    a.li(S3, 1);
    a.sll(S3, S3, T0);
    a.bind(no_half);
    repeat(a, A6, A6, |a| {
        a.lw(S4, A1, 0);
        a.mv(T0, S4);
        a.mv(T1, S2);
        a.jal(RA, f.sigmoid);
        // t2 = silu(g) = rshift(g * s, 30) (|silu(g)| <= |g|).
        a.mul(T2, S4, T0);
        a.mulh(T3, S4, T0);
        round_shift64(a, T2, T3, Shift::Const(30), [T4, T5]);
        // out = sat32(rshift(silu(g) * u, F)) (|silu(g) * u| <= 2^62).
        a.lw(T0, A2, 0);
        a.mul(T4, T2, T0);
        a.mulh(T5, T2, T0);
        round_shift64(a, T4, T5, Shift::Reg { f: S2, half: S3 }, [T0, T1]);
        sat32(a, T4, T5, T0);
        a.sw(T4, A3, 0);
        a.addi(A1, A1, 4);
        a.addi(A2, A2, 4);
        a.addi(A3, A3, 4);
    });
    a.exit(0);
    fixexp::emit(a, &f);
}
