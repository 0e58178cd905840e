//! Pooling kernels over NCHW int8 planes.

use super::{advance, arg, for_up, load_stream, repeat, window_input_pos, Window};
use crate::asm::reg::{A1, A2, A6, S0, S1, S10, S11, S3, S4, S5, S6, S8, S9, T0, T1, T2, T3, T4, T5, T6, ZERO};
use crate::asm::Asm;

arg_words! {
    /// Argument words of `maxpool2d` and `avgpool2d` (average pooling has no padding).
    pub mod pool_args {
        X, OUT, PLANES, H, W, KH, KW, SH, SW, PT, PL, OH, OW, PLANE_BYTES, COUNT,
    }
}

/// Loop over planes and output positions: `init` starts a window, `element` takes each
/// in-bounds element's byte in t3 (iy in t0, ix in t1), `store` writes the output byte at a2.
fn pool(a: &mut Asm, init: impl Fn(&mut Asm), element: impl Fn(&mut Asm), store: impl Fn(&mut Asm)) {
    use pool_args as w;
    let window = Window { sh: w::SH, sw: w::SW, pt: w::PT, pl: w::PL };
    load_stream(a, w::X, w::OUT, w::PLANES);
    arg(a, S5, w::OH);
    arg(a, S6, w::OW);
    arg(a, S8, w::KH);
    arg(a, S9, w::KW);
    arg(a, S10, w::H);
    arg(a, S11, w::W);
    repeat(a, A6, A6, |a| {
        for_up(a, S0, S5, |a| {
            for_up(a, S1, S6, |a| {
                init(a);
                for_up(a, S3, S8, |a| {
                    for_up(a, S4, S9, |a| {
                        let skip = a.label();
                        window_input_pos(a, &window);
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
        advance(a, A1, w::PLANE_BYTES);
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
