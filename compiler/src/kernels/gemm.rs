//! int8 products: `linear`, `matmul` and `conv2d` share one NT matrix-product subroutine
//! (`out[i][j] = rowfix[i] + colfix[j] + sum_k A[i][k] * B[j][k]`, wrapping) over operands
//! repacked into scratch with rows padded with zeros to a multiple of [`BLOCK`] bytes, so
//! the inner loop is word loads and `dot4`. Zero points are folded into the row / column
//! corrections (`docs/spec/ops.md`: equal modulo 2^32).

use super::{arg, for_up, repeat};
use crate::asm::{reg::*, Asm, Label, Reg};

/// Bytes of a row handled per inner-loop iteration; repacked rows are padded to it.
pub const BLOCK: usize = 32;

/// Emit `acc += sum_{b < BLOCK} pa[b] * pb[b]` (signed bytes), with `dot4` or without.
fn block_dot(a: &mut Asm, dot4: bool, acc: Reg, pa: Reg, pb: Reg) {
    if dot4 {
        for w in 0..(BLOCK / 4) as i32 {
            let (x, y) = if w % 2 == 0 { (T1, T2) } else { (T3, T4) };
            a.lw(x, pa, 4 * w);
            a.lw(y, pb, 4 * w);
            a.dot4(acc, x, y);
        }
    } else {
        for b in 0..BLOCK as i32 {
            a.lb(T1, pa, b);
            a.lb(T2, pb, b);
            a.mul(T1, T1, T2);
            a.add(acc, acc, T1);
        }
    }
}

/// The NT product subroutine. In: s0 = A (M rows), s1 = B (N rows), s2 = M, s3 = N,
/// s4 = blocks per row, s5 = out (i32, M x N), s6 = rowfix (M), s7 = colfix (N).
/// Clobbers t0-t4, a1-a5, s0, s5, s6, s8-s11.
fn gemm_sub(a: &mut Asm, dot4: bool, entry: Label) {
    a.bind(entry);
    a.slli(S8, S4, BLOCK.trailing_zeros() as i32); // row bytes
    repeat(a, S9, S2, |a| {
        a.lw(S10, S6, 0);
        a.mv(A1, S1);
        a.mv(A2, S7);
        repeat(a, S11, S3, |a| {
            a.lw(T0, A2, 0);
            a.add(T0, T0, S10);
            a.mv(A3, S0);
            a.mv(A4, A1);
            repeat(a, A5, S4, |a| {
                block_dot(a, dot4, T0, A3, A4);
                a.addi(A3, A3, BLOCK as i32);
                a.addi(A4, A4, BLOCK as i32);
            });
            a.sw(T0, S5, 0);
            a.addi(S5, S5, 4);
            a.add(A1, A1, S8);
            a.addi(A2, A2, 4);
        });
        a.add(S0, S0, S8);
        a.addi(S6, S6, 4);
    });
    a.ret();
}

/// Row sums subroutine. In: s0 = rows (padded), s2 = row count, s4 = blocks per row,
/// s5 = out (i32 per row). Clobbers t0-t6, a3, a5, s0, s5, s8, s9.
fn rowsum_sub(a: &mut Asm, dot4: bool, entry: Label) {
    a.bind(entry);
    a.slli(S8, S4, BLOCK.trailing_zeros() as i32);
    a.li(T6, 0x0101_0101);
    repeat(a, S9, S2, |a| {
        a.li(T0, 0);
        a.mv(A3, S0);
        repeat(a, A5, S4, |a| {
            for w in 0..(BLOCK / 4) as i32 {
                if dot4 {
                    a.lw(T1, A3, 4 * w);
                    a.dot4(T0, T1, T6);
                } else {
                    for b in 0..4 {
                        a.lb(T1, A3, 4 * w + b);
                        a.add(T0, T0, T1);
                    }
                }
            }
            a.addi(A3, A3, BLOCK as i32);
        });
        a.sw(T0, S5, 0);
        a.addi(S5, S5, 4);
        a.add(S0, S0, S8);
    });
    a.ret();
}

/// Strided byte gather subroutine: `dst[r * s6 + c] = src[r * s4 + c * s5]` for `r < s2`,
/// `c < s3`; s0 = dst, s1 = src. Clobbers t1, a3-a5, s0, s1, s9.
fn gather_sub(a: &mut Asm, entry: Label) {
    a.bind(entry);
    repeat(a, S9, S2, |a| {
        a.mv(A3, S0);
        a.mv(A4, S1);
        repeat(a, A5, S3, |a| {
            a.lb(T1, A4, 0);
            a.sb(T1, A3, 0);
            a.addi(A3, A3, 1);
            a.add(A4, A4, S5);
        });
        a.add(S0, S0, S6);
        a.add(S1, S1, S4);
    });
    a.ret();
}

struct Subs {
    gemm: Label,
    rowsum: Label,
    gather: Label,
}

fn subs_labels(a: &mut Asm) -> Subs {
    Subs { gemm: a.label(), rowsum: a.label(), gather: a.label() }
}

/// Emit the subroutines after the main code and bind the labels used to call them.
fn emit_subs(a: &mut Asm, dot4: bool, s: &Subs) {
    gemm_sub(a, dot4, s.gemm);
    rowsum_sub(a, dot4, s.rowsum);
    gather_sub(a, s.gather);
}

/// `fix[n] = (bias ? bias[n] : 0) - zp * sums[n]` for `n < count`.
/// Registers in: a1 = sums, a2 = fix, a3 = bias pointer or 0, a4 = zp, t5 = count.
fn bias_fix(a: &mut Asm) {
    repeat(a, T5, T5, |a| {
        let nob = a.label();
        a.lw(T0, A1, 0);
        a.mul(T0, T0, A4);
        a.sub(T0, ZERO, T0);
        a.beq(A3, ZERO, nob);
        a.lw(T1, A3, 0);
        a.add(T0, T0, T1);
        a.addi(A3, A3, 4);
        a.bind(nob);
        a.sw(T0, A2, 0);
        a.addi(A1, A1, 4);
        a.addi(A2, A2, 4);
    });
}

/// Argument words of the `linear` kernel.
pub mod linear_args {
    #![allow(missing_docs)]
    pub const X: usize = 0;
    pub const W: usize = 1;
    pub const BIAS: usize = 2;
    pub const OUT: usize = 3;
    pub const M: usize = 4;
    pub const K: usize = 5;
    pub const N: usize = 6;
    pub const KP: usize = 7;
    pub const ZP: usize = 8;
    pub const XA: usize = 9;
    pub const WB: usize = 10;
    pub const ROWFIX: usize = 11;
    pub const COLFIX: usize = 12;
    pub const WSUM: usize = 13;
    pub const COUNT: usize = 14;
}

/// `linear`: `out[r][n] = bias[n] - zp * sum_k W[n][k] + sum_k x[r][k] * W[n][k]`.
pub fn linear(a: &mut Asm, dot4: bool) {
    use linear_args::*;
    let s = subs_labels(a);
    // Repack x (M x K) and W (N x K) into rows of KP bytes.
    for (dst, src, rows) in [(XA, X, M), (WB, W, N)] {
        arg(a, S0, dst);
        arg(a, S1, src);
        arg(a, S2, rows);
        arg(a, S3, K);
        a.mv(S4, S3);
        a.li(S5, 1);
        arg(a, S6, KP);
        a.jal(RA, s.gather);
    }
    arg(a, S0, WB);
    arg(a, S2, N);
    arg(a, S4, KP);
    a.srli(S4, S4, BLOCK.trailing_zeros() as i32);
    arg(a, S5, WSUM);
    a.jal(RA, s.rowsum);
    arg(a, A1, WSUM);
    arg(a, A2, COLFIX);
    arg(a, A3, BIAS);
    arg(a, A4, ZP);
    arg(a, T5, N);
    bias_fix(a);
    arg(a, S0, XA);
    arg(a, S1, WB);
    arg(a, S2, M);
    arg(a, S3, N);
    arg(a, S4, KP);
    a.srli(S4, S4, BLOCK.trailing_zeros() as i32);
    arg(a, S5, OUT);
    arg(a, S6, ROWFIX);
    arg(a, S7, COLFIX);
    a.jal(RA, s.gemm);
    a.exit(0);
    emit_subs(a, dot4, &s);
}

/// Argument words of the `matmul` kernel.
pub mod matmul_args {
    #![allow(missing_docs)]
    pub const A: usize = 0;
    pub const B: usize = 1;
    pub const OUT: usize = 2;
    pub const T: usize = 3;
    pub const M: usize = 4;
    pub const K: usize = 5;
    pub const N: usize = 6;
    pub const KP: usize = 7;
    pub const A_ZP: usize = 8;
    pub const B_ZP: usize = 9;
    pub const AA: usize = 10;
    pub const BB: usize = 11;
    pub const ROWFIX: usize = 12;
    pub const COLFIX: usize = 13;
    pub const SUMA: usize = 14;
    pub const SUMB: usize = 15;
    pub const A_STRIDE: usize = 16;
    pub const B_STRIDE: usize = 17;
    pub const OUT_STRIDE: usize = 18;
    pub const COUNT: usize = 19;
}

/// `matmul`: per batch, `out[i][j] = K*az*bz - bz*sum_k A[i][k] - az*sum_k B[k][j]
/// + sum_k A[i][k] * B[k][j]`.
pub fn matmul(a: &mut Asm, dot4: bool) {
    use matmul_args::*;
    let s = subs_labels(a);
    arg(a, A6, T);
    arg(a, A7, A);
    arg(a, 3, B); // gp: current B
    arg(a, 4, OUT); // tp: current out
    repeat(a, A6, A6, |a| {
        // AA <- A_t (rows of K), BB <- B_t transposed (row j = column j of B_t).
        arg(a, S0, AA);
        a.mv(S1, A7);
        arg(a, S2, M);
        arg(a, S3, K);
        a.mv(S4, S3);
        a.li(S5, 1);
        arg(a, S6, KP);
        a.jal(RA, s.gather);
        arg(a, S0, BB);
        a.mv(S1, 3);
        arg(a, S2, N);
        arg(a, S3, K);
        a.li(S4, 1);
        arg(a, S5, N);
        arg(a, S6, KP);
        a.jal(RA, s.gather);
        for (src, rows, dst) in [(AA, M, SUMA), (BB, N, SUMB)] {
            arg(a, S0, src);
            arg(a, S2, rows);
            arg(a, S4, KP);
            a.srli(S4, S4, BLOCK.trailing_zeros() as i32);
            arg(a, S5, dst);
            a.jal(RA, s.rowsum);
        }
        arg(a, T3, K);
        arg(a, T4, A_ZP);
        arg(a, T5, B_ZP);
        a.mul(T3, T3, T4);
        a.mul(T3, T3, T5);
        arg(a, A1, SUMA);
        arg(a, A2, ROWFIX);
        arg(a, T6, M);
        repeat(a, T6, T6, |a| {
            a.lw(T0, A1, 0);
            a.mul(T0, T0, T5);
            a.sub(T0, T3, T0);
            a.sw(T0, A2, 0);
            a.addi(A1, A1, 4);
            a.addi(A2, A2, 4);
        });
        arg(a, A1, SUMB);
        arg(a, A2, COLFIX);
        arg(a, T6, N);
        repeat(a, T6, T6, |a| {
            a.lw(T0, A1, 0);
            a.mul(T0, T0, T4);
            a.sub(T0, ZERO, T0);
            a.sw(T0, A2, 0);
            a.addi(A1, A1, 4);
            a.addi(A2, A2, 4);
        });
        arg(a, S0, AA);
        arg(a, S1, BB);
        arg(a, S2, M);
        arg(a, S3, N);
        arg(a, S4, KP);
        a.srli(S4, S4, BLOCK.trailing_zeros() as i32);
        a.mv(S5, 4);
        arg(a, S6, ROWFIX);
        arg(a, S7, COLFIX);
        a.jal(RA, s.gemm);
        for (r, stride) in [(A7, A_STRIDE), (3, B_STRIDE), (4, OUT_STRIDE)] {
            arg(a, T0, stride);
            a.add(r, r, T0);
        }
    });
    a.exit(0);
    emit_subs(a, dot4, &s);
}

/// Argument words of the `conv2d` kernel.
pub mod conv_args {
    #![allow(missing_docs)]
    pub const X: usize = 0;
    pub const W: usize = 1;
    pub const BIAS: usize = 2;
    pub const OUT: usize = 3;
    pub const NB: usize = 4;
    pub const C: usize = 5;
    pub const H: usize = 6;
    pub const WD: usize = 7;
    pub const O: usize = 8;
    pub const KH: usize = 9;
    pub const KW: usize = 10;
    pub const SH: usize = 11;
    pub const SW: usize = 12;
    pub const PT: usize = 13;
    pub const PL: usize = 14;
    pub const OH: usize = 15;
    pub const OW: usize = 16;
    pub const ZP: usize = 17;
    pub const KK: usize = 18;
    pub const KP: usize = 19;
    pub const WB: usize = 20;
    pub const COLS: usize = 21;
    pub const ROWFIX: usize = 22;
    pub const COLFIX: usize = 23;
    pub const WSUM: usize = 24;
    pub const X_STRIDE: usize = 25;
    pub const OUT_STRIDE: usize = 26;
    pub const P: usize = 27;
    pub const COUNT: usize = 28;
}

/// `conv2d`: im2col per image (padding holds the zero point), then
/// `out[o][p] = bias[o] - zp * sum W[o] + sum_k W[o][k] * cols[p][k]`.
pub fn conv2d(a: &mut Asm, dot4: bool) {
    use conv_args::*;
    let s = subs_labels(a);
    arg(a, S0, WB);
    arg(a, S1, W);
    arg(a, S2, O);
    arg(a, S3, KK);
    a.mv(S4, S3);
    a.li(S5, 1);
    arg(a, S6, KP);
    a.jal(RA, s.gather);
    arg(a, S0, WB);
    arg(a, S2, O);
    arg(a, S4, KP);
    a.srli(S4, S4, BLOCK.trailing_zeros() as i32);
    arg(a, S5, WSUM);
    a.jal(RA, s.rowsum);
    arg(a, A1, WSUM);
    arg(a, A2, ROWFIX);
    arg(a, A3, BIAS);
    arg(a, A4, ZP);
    arg(a, T5, O);
    bias_fix(a);
    arg(a, A6, NB);
    arg(a, A7, X);
    arg(a, 3, OUT);
    repeat(a, A6, A6, |a| {
        im2col(a);
        arg(a, S0, WB);
        arg(a, S1, COLS);
        arg(a, S2, O);
        arg(a, S3, P);
        arg(a, S4, KP);
        a.srli(S4, S4, BLOCK.trailing_zeros() as i32);
        a.mv(S5, 3);
        arg(a, S6, ROWFIX);
        arg(a, S7, COLFIX);
        a.jal(RA, s.gemm);
        arg(a, T0, X_STRIDE);
        a.add(A7, A7, T0);
        arg(a, T0, OUT_STRIDE);
        a.add(3, 3, T0);
    });
    a.exit(0);
    emit_subs(a, dot4, &s);
}

/// im2col of the image at a7 into COLS: row `oy*OW + ox`, column `(c*KH + i)*KW + j`.
fn im2col(a: &mut Asm) {
    use conv_args::*;
    arg(a, S5, OH);
    arg(a, S6, OW);
    arg(a, S7, C);
    arg(a, S8, KH);
    arg(a, S9, KW);
    arg(a, S10, H);
    arg(a, S11, WD);
    arg(a, T5, ZP);
    arg(a, A1, COLS);
    for_up(a, S0, S5, |a| {
        for_up(a, S1, S6, |a| {
            a.mv(A2, A1);
            for_up(a, S2, S7, |a| {
                for_up(a, S3, S8, |a| {
                    for_up(a, S4, S9, |a| {
                        let store = a.label();
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
                        a.mv(T3, T5);
                        a.bgeu(T0, S10, store);
                        a.bgeu(T1, S11, store);
                        a.mul(T2, S2, S10);
                        a.add(T2, T2, T0);
                        a.mul(T2, T2, S11);
                        a.add(T2, T2, T1);
                        a.add(T2, T2, A7);
                        a.lb(T3, T2, 0);
                        a.bind(store);
                        a.sb(T3, A2, 0);
                        a.addi(A2, A2, 1);
                    });
                });
            });
            arg(a, T0, KP);
            a.add(A1, A1, T0);
        });
    });
}
