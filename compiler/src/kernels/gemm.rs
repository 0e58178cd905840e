//! int8 products: `linear`, `matmul` and `conv2d` share one NT matrix-product subroutine
//! (`out[i][j] = rowfix[i] + colfix[j] + sum_k A[i][k] * B[j][k]`, wrapping) over operands
//! repacked into scratch with rows padded with zeros to a multiple of [`BLOCK`] bytes, so
//! the inner loop is word loads and `dot4`. Zero points are folded into the row / column
//! corrections (`docs/spec/ops.md`: equal modulo 2^32).

use super::{advance, arg, for_up, repeat, window_input_pos, Val, Window};
use crate::asm::reg::{
    A1, A2, A3, A4, A5, A6, A7, GP, RA, S0, S1, S10, S11, S2, S3, S4, S5, S6, S7, S8, S9, T0, T1, T2, T3, T4, T5, T6,
    TP, ZERO,
};
use crate::asm::{Asm, Label, Reg};

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

/// `rd = blocks per row` from a padded row length in bytes (a multiple of [`BLOCK`]).
fn load_blocks(a: &mut Asm, rd: Reg, row_bytes: Val) {
    row_bytes.load(a, rd);
    a.srli(rd, rd, BLOCK.trailing_zeros() as i32);
}

/// One call of the NT product subroutine: `out[i][j] = rowfix[i] + colfix[j]
/// + sum_k a[i][k] * b[j][k]` (wrapping i32) for `i < m`, `j < n`, over `a` and `b` repacked
/// into rows of `row_bytes` (a multiple of [`BLOCK`], zero-padded).
#[derive(Clone, Copy, Debug)]
struct Gemm {
    a: Val,
    b: Val,
    m: Val,
    n: Val,
    row_bytes: Val,
    out: Val,
    rowfix: Val,
    colfix: Val,
}

impl Gemm {
    /// Load the operands in `gemm_sub`'s registers (s0..s7, in field order) and call it.
    fn call(&self, a: &mut Asm, s: &Subs) {
        self.a.load(a, S0);
        self.b.load(a, S1);
        self.m.load(a, S2);
        self.n.load(a, S3);
        load_blocks(a, S4, self.row_bytes);
        self.out.load(a, S5);
        self.rowfix.load(a, S6);
        self.colfix.load(a, S7);
        a.jal(RA, s.gemm);
    }
}

/// The NT product subroutine ([`Gemm`]). In: s0 = a (m rows), s1 = b (n rows), s2 = m,
/// s3 = n, s4 = blocks per row, s5 = out (i32, m x n), s6 = rowfix (m), s7 = colfix (n).
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

/// One call of the row sums subroutine: `out[i] = sum_k rows[i][k]` (i32) for `i < count`,
/// over rows of `row_bytes` (a multiple of [`BLOCK`], zero-padded).
#[derive(Clone, Copy, Debug)]
struct RowSums {
    rows: Val,
    count: Val,
    row_bytes: Val,
    out: Val,
}

impl RowSums {
    /// Load the operands in `rowsum_sub`'s registers (s0, s2, s4, s5) and call it.
    fn call(&self, a: &mut Asm, s: &Subs) {
        self.rows.load(a, S0);
        self.count.load(a, S2);
        load_blocks(a, S4, self.row_bytes);
        self.out.load(a, S5);
        a.jal(RA, s.rowsum);
    }
}

/// The row sums subroutine ([`RowSums`]). In: s0 = rows (padded), s2 = row count,
/// s4 = blocks per row, s5 = out (i32 per row). Clobbers t0-t6, a3, a5, s0, s5, s8, s9.
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

/// One call of the strided byte gather subroutine:
/// `dst[r * dst_row + c] = src[r * src_row + c * src_col]` for `r < rows`, `c < cols`
/// (strides in bytes).
#[derive(Clone, Copy, Debug)]
struct Gather {
    dst: Val,
    src: Val,
    rows: Val,
    cols: Val,
    src_row: Val,
    src_col: Val,
    dst_row: Val,
}

impl Gather {
    /// Repack `rows` contiguous rows of `cols` bytes at `src` into rows of `row_bytes` at
    /// `dst` (the padding is left as it is: zero in fresh scratch).
    fn repack(dst: Val, src: Val, rows: Val, cols: Val, row_bytes: Val) -> Gather {
        // The source row stride is `cols`, already in its register when s4 is loaded.
        Gather { dst, src, rows, cols, src_row: Val::Reg(S3), src_col: Val::Imm(1), dst_row: row_bytes }
    }

    /// Load the operands in `gather_sub`'s registers (s0..s6, in field order) and call it.
    fn call(&self, a: &mut Asm, s: &Subs) {
        self.dst.load(a, S0);
        self.src.load(a, S1);
        self.rows.load(a, S2);
        self.cols.load(a, S3);
        self.src_row.load(a, S4);
        self.src_col.load(a, S5);
        self.dst_row.load(a, S6);
        a.jal(RA, s.gather);
    }
}

/// The strided byte gather subroutine ([`Gather`]). In: s0 = dst, s1 = src, s2 = rows,
/// s3 = cols, s4 = source row stride, s5 = source column stride, s6 = destination row
/// stride. Clobbers t1, a3-a5, s0, s1, s9.
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

/// Entry points of the subroutines, emitted after a kernel's main code by [`emit_subs`].
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

/// Argument words of a bias correction: `fix[n] = (bias ? bias[n] : 0) - zp * sums[n]` for
/// `n < count` (`bias` 0: no bias).
#[derive(Clone, Copy, Debug)]
struct BiasFix {
    sums: usize,
    fix: usize,
    bias: usize,
    zp: usize,
    count: usize,
}

impl BiasFix {
    /// Emit the loop (inline; it runs once per kernel). Clobbers t0, t1, t5, a1-a4.
    fn emit(&self, a: &mut Asm) {
        arg(a, A1, self.sums);
        arg(a, A2, self.fix);
        arg(a, A3, self.bias);
        arg(a, A4, self.zp);
        arg(a, T5, self.count);
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
}

/// `fix[n] = base - zp * sums[n]` for `n < count` (argument words `sums`, `fix`, `count`;
/// `base` and `zp` registers). Clobbers t0, t6, a1, a2.
fn zp_fix(a: &mut Asm, sums: usize, fix: usize, count: usize, base: Reg, zp: Reg) {
    arg(a, A1, sums);
    arg(a, A2, fix);
    arg(a, T6, count);
    repeat(a, T6, T6, |a| {
        a.lw(T0, A1, 0);
        a.mul(T0, T0, zp);
        a.sub(T0, base, T0);
        a.sw(T0, A2, 0);
        a.addi(A1, A1, 4);
        a.addi(A2, A2, 4);
    });
}

arg_words! {
    /// Argument words of the `linear` kernel.
    pub mod linear_args {
        X, W, BIAS, OUT, M, K, N, KP, ZP, XA, WB, ROWFIX, COLFIX, WSUM, COUNT,
    }
}

/// `linear`: `out[r][n] = bias[n] - zp * sum_k W[n][k] + sum_k x[r][k] * W[n][k]`.
pub fn linear(a: &mut Asm, dot4: bool) {
    use linear_args as w;
    use Val::Arg;
    let s = subs_labels(a);
    // Repack x (M x K) and W (N x K) into rows of KP bytes.
    for (dst, src, rows) in [(w::XA, w::X, w::M), (w::WB, w::W, w::N)] {
        Gather::repack(Arg(dst), Arg(src), Arg(rows), Arg(w::K), Arg(w::KP)).call(a, &s);
    }
    RowSums { rows: Arg(w::WB), count: Arg(w::N), row_bytes: Arg(w::KP), out: Arg(w::WSUM) }.call(a, &s);
    BiasFix { sums: w::WSUM, fix: w::COLFIX, bias: w::BIAS, zp: w::ZP, count: w::N }.emit(a);
    Gemm {
        a: Arg(w::XA),
        b: Arg(w::WB),
        m: Arg(w::M),
        n: Arg(w::N),
        row_bytes: Arg(w::KP),
        out: Arg(w::OUT),
        rowfix: Arg(w::ROWFIX),
        colfix: Arg(w::COLFIX),
    }
    .call(a, &s);
    a.exit(0);
    emit_subs(a, dot4, &s);
}

arg_words! {
    /// Argument words of the `matmul` kernel.
    pub mod matmul_args {
        A, B, OUT, T, M, K, N, KP, A_ZP, B_ZP, AA, BB, ROWFIX, COLFIX, SUMA, SUMB, A_STRIDE,
        B_STRIDE, OUT_STRIDE, COUNT,
    }
}

/// `matmul`: per batch, `out[i][j] = K*az*bz - bz*sum_k A[i][k] - az*sum_k B[k][j]
/// + sum_k A[i][k] * B[k][j]`.
pub fn matmul(a: &mut Asm, dot4: bool) {
    use matmul_args as w;
    use Val::{Arg, Imm, Reg};
    let s = subs_labels(a);
    // The batch's operands: a7 = A_t, gp = B_t, tp = out_t.
    arg(a, A6, w::T);
    arg(a, A7, w::A);
    arg(a, GP, w::B);
    arg(a, TP, w::OUT);
    repeat(a, A6, A6, |a| {
        // AA <- A_t (rows of K), BB <- B_t transposed (row j = column j of B_t).
        Gather::repack(Arg(w::AA), Reg(A7), Arg(w::M), Arg(w::K), Arg(w::KP)).call(a, &s);
        Gather {
            dst: Arg(w::BB),
            src: Reg(GP),
            rows: Arg(w::N),
            cols: Arg(w::K),
            src_row: Imm(1),
            src_col: Arg(w::N),
            dst_row: Arg(w::KP),
        }
        .call(a, &s);
        for (rows, count, out) in [(w::AA, w::M, w::SUMA), (w::BB, w::N, w::SUMB)] {
            RowSums { rows: Arg(rows), count: Arg(count), row_bytes: Arg(w::KP), out: Arg(out) }.call(a, &s);
        }
        // t3 = K*az*bz, t4 = az, t5 = bz.
        arg(a, T3, w::K);
        arg(a, T4, w::A_ZP);
        arg(a, T5, w::B_ZP);
        a.mul(T3, T3, T4);
        a.mul(T3, T3, T5);
        zp_fix(a, w::SUMA, w::ROWFIX, w::M, T3, T5);
        zp_fix(a, w::SUMB, w::COLFIX, w::N, ZERO, T4);
        Gemm {
            a: Arg(w::AA),
            b: Arg(w::BB),
            m: Arg(w::M),
            n: Arg(w::N),
            row_bytes: Arg(w::KP),
            out: Reg(TP),
            rowfix: Arg(w::ROWFIX),
            colfix: Arg(w::COLFIX),
        }
        .call(a, &s);
        for (ptr, stride) in [(A7, w::A_STRIDE), (GP, w::B_STRIDE), (TP, w::OUT_STRIDE)] {
            advance(a, ptr, stride);
        }
    });
    a.exit(0);
    emit_subs(a, dot4, &s);
}

arg_words! {
    /// Argument words of the `conv2d` kernel.
    pub mod conv_args {
        X, W, BIAS, OUT, NB, C, H, WD, O, KH, KW, SH, SW, PT, PL, OH, OW, ZP, KK, KP, WB, COLS,
        ROWFIX, COLFIX, WSUM, X_STRIDE, OUT_STRIDE, P, COUNT,
    }
}

/// `conv2d`: im2col per image (padding holds the zero point), then
/// `out[o][p] = bias[o] - zp * sum W[o] + sum_k W[o][k] * cols[p][k]`.
pub fn conv2d(a: &mut Asm, dot4: bool) {
    use conv_args as w;
    use Val::{Arg, Reg};
    let s = subs_labels(a);
    Gather::repack(Arg(w::WB), Arg(w::W), Arg(w::O), Arg(w::KK), Arg(w::KP)).call(a, &s);
    RowSums { rows: Arg(w::WB), count: Arg(w::O), row_bytes: Arg(w::KP), out: Arg(w::WSUM) }.call(a, &s);
    BiasFix { sums: w::WSUM, fix: w::ROWFIX, bias: w::BIAS, zp: w::ZP, count: w::O }.emit(a);
    // The image's operands: a7 = x_n, gp = out_n.
    arg(a, A6, w::NB);
    arg(a, A7, w::X);
    arg(a, GP, w::OUT);
    repeat(a, A6, A6, |a| {
        im2col(a);
        Gemm {
            a: Arg(w::WB),
            b: Arg(w::COLS),
            m: Arg(w::O),
            n: Arg(w::P),
            row_bytes: Arg(w::KP),
            out: Reg(GP),
            rowfix: Arg(w::ROWFIX),
            colfix: Arg(w::COLFIX),
        }
        .call(a, &s);
        advance(a, A7, w::X_STRIDE);
        advance(a, GP, w::OUT_STRIDE);
    });
    a.exit(0);
    emit_subs(a, dot4, &s);
}

/// im2col of the image at a7 into COLS: row `oy*OW + ox`, column `(c*KH + i)*KW + j`.
fn im2col(a: &mut Asm) {
    use conv_args as w;
    let window = Window { sh: w::SH, sw: w::SW, pt: w::PT, pl: w::PL };
    arg(a, S5, w::OH);
    arg(a, S6, w::OW);
    arg(a, S7, w::C);
    arg(a, S8, w::KH);
    arg(a, S9, w::KW);
    arg(a, S10, w::H);
    arg(a, S11, w::WD);
    arg(a, T5, w::ZP);
    arg(a, A1, w::COLS);
    for_up(a, S0, S5, |a| {
        for_up(a, S1, S6, |a| {
            a.mv(A2, A1);
            for_up(a, S2, S7, |a| {
                for_up(a, S3, S8, |a| {
                    for_up(a, S4, S9, |a| {
                        let store = a.label();
                        window_input_pos(a, &window);
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
            advance(a, A1, w::KP);
        });
    });
}
