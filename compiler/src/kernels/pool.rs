//! Pooling kernels over NCHW int8 planes.

use super::{arg, for_up, repeat};
use crate::asm::{reg::*, Asm};

/// Argument words of `maxpool2d` and `avgpool2d` (average pooling has no padding).
pub mod pool_args {
    #![allow(missing_docs)]
    pub const X: usize = 0;
    pub const OUT: usize = 1;
    pub const PLANES: usize = 2;
    pub const H: usize = 3;
    pub const W: usize = 4;
    pub const KH: usize = 5;
    pub const KW: usize = 6;
    pub const SH: usize = 7;
    pub const SW: usize = 8;
    pub const PT: usize = 9;
    pub const PL: usize = 10;
    pub const OH: usize = 11;
    pub const OW: usize = 12;
    pub const PLANE_BYTES: usize = 13;
    pub const COUNT: usize = 14;
}

/// Loop over planes and output positions; `window` emits the per-window code with
/// iy in t0, ix in t1 for each in-bounds element's byte in t3 (via `element`), then `store`.
fn pool(a: &mut Asm, init: impl Fn(&mut Asm), element: impl Fn(&mut Asm), store: impl Fn(&mut Asm)) {
    use pool_args::*;
    arg(a, A1, X);
    arg(a, A2, OUT);
    arg(a, A6, PLANES);
    arg(a, S5, OH);
    arg(a, S6, OW);
    arg(a, S8, KH);
    arg(a, S9, KW);
    arg(a, S10, H);
    arg(a, S11, W);
    repeat(a, A6, A6, |a| {
        for_up(a, S0, S5, |a| {
            for_up(a, S1, S6, |a| {
                init(a);
                for_up(a, S3, S8, |a| {
                    for_up(a, S4, S9, |a| {
                        let skip = a.label();
                        arg(a, T0, SH);
                        a.mul(T0, S0, T0);
                        a.add(T0, T0, S3);
                        arg(a, T1, PT);
                        a.sub(T0, T0, T1);
                        arg(a, T1, SW);
                        a.mul(T1, S1, T1);
                        a.add(T1, T1, S4);
                        arg(a, T2, PL);
                        a.sub(T1, T1, T2);
                        a.bgeu(T0, S10, skip);
                        a.bgeu(T1, S11, skip);
                        a.mul(T2, T0, S11);
                        a.add(T2, T2, T1);
                        a.add(T2, T2, A1);
                        a.lb(T3, T2, 0);
                        element(a);
                        a.bind(skip);
                    });
                });
                store(a);
                a.addi(A2, A2, 1);
            });
        });
        arg(a, T0, PLANE_BYTES);
        a.add(A1, A1, T0);
    });
    a.exit(0);
}

/// `maxpool2d`: the maximum of the in-bounds window elements (t5 starts at -128, which
/// never exceeds an element, and every window holds one).
pub fn maxpool2d(a: &mut Asm) {
    pool(
        a,
        |a| a.li(T5, -128),
        |a| {
            let keep = a.label();
            a.bge(T5, T3, keep);
            a.mv(T5, T3);
            a.bind(keep);
        },
        |a| a.sb(T5, A2, 0),
    );
}

/// `avgpool2d`: `round(sum / (KH*KW))`, ties away from zero:
/// `sign(s) * ((2|s| + c) / (2c))`.
pub fn avgpool2d(a: &mut Asm) {
    pool(
        a,
        |a| a.li(T5, 0),
        |a| a.add(T5, T5, T3),
        |a| {
            let pos = a.label();
            let done = a.label();
            a.mul(T4, S8, S9); // c
            a.slli(T6, T4, 1); // 2c
            a.slt(T2, T5, ZERO);
            a.bge(T5, ZERO, pos);
            a.sub(T5, ZERO, T5);
            a.bind(pos);
            a.slli(T5, T5, 1);
            a.add(T5, T5, T4);
            a.divu(T5, T5, T6);
            a.beq(T2, ZERO, done);
            a.sub(T5, ZERO, T5);
            a.bind(done);
            a.sb(T5, A2, 0);
        },
    );
}
