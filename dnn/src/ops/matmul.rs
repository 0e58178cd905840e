//! int8 x int8 -> int32 products: linear (weights), matmul (two activations), and the
//! shared dot-product kernels. All sums wrap modulo 2^32 (see `docs/spec/ops.md`).

use rayon::prelude::*;

use super::check::{bad, i8_range, want, OpResult};
use super::dims::MatDims;
use crate::tensor::{DType, TensorSpec};

/// `sum_k a[k] * b[k]` with wrapping i32 accumulation. Written as a plain fold over
/// widened products so that LLVM vectorizes it; any order gives the same bits.
#[inline]
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    dot_i8_body(a, b)
}

#[inline(always)]
fn dot_i8_body(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = [0i32; 16];
    let mut ca = a.chunks_exact(32);
    let mut cb = b.chunks_exact(32);
    for (x, y) in (&mut ca).zip(&mut cb) {
        // Adjacent pairs summed first: the shape of `pmaddwd`.
        for l in 0..16 {
            let p0 = x[2 * l] as i16 as i32 * y[2 * l] as i16 as i32;
            let p1 = x[2 * l + 1] as i16 as i32 * y[2 * l + 1] as i16 as i32;
            acc[l] = acc[l].wrapping_add(p0 + p1);
        }
    }
    let mut s = acc.iter().fold(0i32, |s, &v| s.wrapping_add(v));
    for (&x, &y) in ca.remainder().iter().zip(cb.remainder()) {
        s = s.wrapping_add(x as i32 * y as i32);
    }
    s
}

/// Rows `r0..r0 + rows` of `a` against every row of `b` into `o` (`rows x n`).
#[inline(always)]
fn rows_block(a: &[i8], b: &[i8], o: &mut [i32], r0: usize, n: usize, k: usize) {
    let rows = o.len() / n;
    for j in 0..n {
        let bj = &b[j * k..(j + 1) * k];
        for r in 0..rows {
            o[r * n + j] = dot_i8_body(&a[(r0 + r) * k..(r0 + r + 1) * k], bj);
        }
    }
}

/// Row `ai` against rows `j0..j0 + o.len()` of `b`.
#[inline(always)]
fn cols_block(ai: &[i8], b: &[i8], o: &mut [i32], j0: usize, k: usize) {
    for (c, v) in o.iter_mut().enumerate() {
        let j = j0 + c;
        *v = dot_i8_body(ai, &b[j * k..(j + 1) * k]);
    }
}

/// AVX2 blocks (selected at run time). `vpmaddwd` sums adjacent i16 products into i32
/// lanes exactly (|product| <= 2^14, so no saturation), and lane sums wrap, so the result
/// equals the portable kernel's bit for bit.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load16(p: &[i8], i: usize) -> __m256i {
        debug_assert!(i + 16 <= p.len());
        // SAFETY: the caller guarantees `i + 16 <= p.len()`; loadu has no alignment need.
        unsafe { _mm256_cvtepi8_epi16(_mm_loadu_si128(p.as_ptr().add(i) as *const __m128i)) }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn hsum(v: __m256i) -> i32 {
        let mut lanes = [0i32; 8];
        // SAFETY: `lanes` is 32 bytes; storeu has no alignment need.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, v) };
        lanes.iter().fold(0i32, |s, &x| s.wrapping_add(x))
    }

    fn tail(a: &[i8], b: &[i8], from: usize, k: usize) -> i32 {
        (from..k).fold(0i32, |s, t| s.wrapping_add(a[t] as i32 * b[t] as i32))
    }

    /// One dot product of two `k`-long rows.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn dot(a: &[i8], b: &[i8], k: usize) -> i32 {
        assert!(a.len() >= k && b.len() >= k);
        let mut acc = _mm256_setzero_si256();
        let mut i = 0;
        while i + 16 <= k {
            // SAFETY: i + 16 <= k <= len.
            let (va, vb) = unsafe { (load16(a, i), load16(b, i)) };
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(va, vb));
            i += 16;
        }
        // SAFETY: AVX2 is enabled for this function.
        unsafe { hsum(acc) }.wrapping_add(tail(a, b, i, k))
    }

    /// Four rows of `a` against one row `b` (the `b` loads are shared).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn dot4(a: [&[i8]; 4], b: &[i8], k: usize) -> [i32; 4] {
        assert!(a.iter().all(|r| r.len() >= k) && b.len() >= k);
        let mut acc = [_mm256_setzero_si256(); 4];
        let mut i = 0;
        while i + 16 <= k {
            // SAFETY: i + 16 <= k <= every length.
            let vb = unsafe { load16(b, i) };
            for r in 0..4 {
                let va = unsafe { load16(a[r], i) };
                acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(va, vb));
            }
            i += 16;
        }
        let mut out = [0i32; 4];
        for r in 0..4 {
            // SAFETY: AVX2 is enabled for this function.
            out[r] = unsafe { hsum(acc[r]) }.wrapping_add(tail(a[r], b, i, k));
        }
        out
    }

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn rows_block(a: &[i8], b: &[i8], o: &mut [i32], r0: usize, n: usize, k: usize) {
        let rows = o.len() / n;
        let row = |r: usize| &a[(r0 + r) * k..(r0 + r + 1) * k];
        for j in 0..n {
            let bj = &b[j * k..(j + 1) * k];
            let mut r = 0;
            while r + 4 <= rows {
                // SAFETY: AVX2 is enabled for this function; rows are k long.
                let d = unsafe { dot4([row(r), row(r + 1), row(r + 2), row(r + 3)], bj, k) };
                for (q, v) in d.into_iter().enumerate() {
                    o[(r + q) * n + j] = v;
                }
                r += 4;
            }
            while r < rows {
                // SAFETY: as above.
                o[r * n + j] = unsafe { dot(row(r), bj, k) };
                r += 1;
            }
        }
    }

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn cols_block(ai: &[i8], b: &[i8], o: &mut [i32], j0: usize, k: usize) {
        for (c, v) in o.iter_mut().enumerate() {
            let j = j0 + c;
            // SAFETY: AVX2 is enabled for this function; rows are k long.
            *v = unsafe { dot(ai, &b[j * k..(j + 1) * k], k) };
        }
    }
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn run_rows_block(fast: bool, a: &[i8], b: &[i8], o: &mut [i32], r0: usize, n: usize, k: usize) {
    #[cfg(target_arch = "x86_64")]
    if fast {
        // SAFETY: `fast` is true only when the CPU reports AVX2.
        unsafe { avx2::rows_block(a, b, o, r0, n, k) };
        return;
    }
    let _ = fast;
    rows_block(a, b, o, r0, n, k)
}

fn run_cols_block(fast: bool, ai: &[i8], b: &[i8], o: &mut [i32], j0: usize, k: usize) {
    #[cfg(target_arch = "x86_64")]
    if fast {
        // SAFETY: `fast` is true only when the CPU reports AVX2.
        unsafe { avx2::cols_block(ai, b, o, j0, k) };
        return;
    }
    let _ = fast;
    cols_block(ai, b, o, j0, k)
}

/// `sum_k a[k] * b[k]` over i16 with wrapping i32 accumulation.
#[inline]
pub fn dot_i16(a: &[i16], b: &[i16]) -> i32 {
    let mut acc = [0i32; 16];
    let mut ca = a.chunks_exact(16);
    let mut cb = b.chunks_exact(16);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..16 {
            acc[l] = acc[l].wrapping_add(x[l] as i32 * y[l] as i32);
        }
    }
    let mut s = acc.iter().fold(0i32, |s, &v| s.wrapping_add(v));
    for (&x, &y) in ca.remainder().iter().zip(cb.remainder()) {
        s = s.wrapping_add(x as i32 * y as i32);
    }
    s
}

/// Wrapping row sums of a `rows x k` i8 matrix.
pub fn row_sums(w: &[i8], rows: usize, k: usize) -> Vec<i32> {
    (0..rows).map(|r| w[r * k..(r + 1) * k].iter().fold(0i32, |s, &v| s.wrapping_add(v as i32))).collect()
}

/// Rows per parallel task of the `a` side.
const ROW_BLOCK: usize = 4;
/// Products below which a matrix product runs on the calling thread.
const SEQUENTIAL_MACS: usize = 1 << 16;
/// Columns per parallel task when `a` has few rows.
const COL_BLOCK: usize = 64;

/// `out[t, i, j] = dot(a[t, i, :], b[t, j, :])` for `a: batch x m x k`, `b: batch x n x k`
/// (both row-major i8; `b` holds its `k` axis last, hence "NT"), `out: batch x m x n`.
/// Parallel over rows of `a` (or over columns when `m` is small).
pub fn gemm_nt_i8(a: &[i8], b: &[i8], d: MatDims) -> Vec<i32> {
    let MatDims { batch, m, k, n } = d;
    if batch == 1 {
        return gemm_nt_one(a, b, m, n, k);
    }
    let mut out = Vec::with_capacity(batch * m * n);
    for t in 0..batch {
        out.extend(gemm_nt_one(&a[t * m * k..(t + 1) * m * k], &b[t * n * k..(t + 1) * n * k], m, n, k));
    }
    out
}

/// One product of [`gemm_nt_i8`].
fn gemm_nt_one(a: &[i8], b: &[i8], m: usize, n: usize, k: usize) -> Vec<i32> {
    let mut out = vec![0i32; m * n];
    if m == 0 || n == 0 {
        return out;
    }
    if k == 0 {
        return out;
    }
    let fast = has_avx2();
    if m.saturating_mul(n).saturating_mul(k) < SEQUENTIAL_MACS {
        // Too small to be worth waking other threads.
        run_rows_block(fast, a, b, &mut out, 0, n, k);
    } else if m >= 2 * ROW_BLOCK {
        out.par_chunks_mut(n * ROW_BLOCK)
            .enumerate()
            .for_each(|(blk, o)| run_rows_block(fast, a, b, o, blk * ROW_BLOCK, n, k));
    } else {
        for i in 0..m {
            let ai = &a[i * k..(i + 1) * k];
            out[i * n..(i + 1) * n]
                .par_chunks_mut(COL_BLOCK)
                .enumerate()
                .for_each(|(blk, o)| run_cols_block(fast, ai, b, o, blk * COL_BLOCK, k));
        }
    }
    out
}

/// Linear layer: `x: m x k` i8, `w: n x k` i8, optional `bias: n` i32;
/// `out[i, j] = bias[j] + sum_k (x[i,k] - input_zp) * w[j,k]`, wrapping (`d.batch` is 1).
pub fn linear(x: &[i8], w: &[i8], bias: Option<&[i32]>, d: MatDims, input_zp: i32) -> Vec<i32> {
    let MatDims { m, k, n, .. } = d;
    let mut out = gemm_nt_i8(x, w, MatDims { batch: 1, m, k, n });
    let wsum = row_sums(w, n, k);
    let fix = |j: usize| -> i32 {
        let b = bias.map_or(0, |b| b[j]);
        b.wrapping_sub(input_zp.wrapping_mul(wsum[j]))
    };
    let fixes: Vec<i32> = (0..n).map(fix).collect();
    if n > 0 {
        out.par_chunks_mut(n).for_each(|row| {
            for (v, f) in row.iter_mut().zip(&fixes) {
                *v = v.wrapping_add(*f);
            }
        });
    }
    out
}

/// Batched matmul of two activations: `a: batch x m x k`, `b: batch x k x n` (i8);
/// `out[t, i, j] = sum_k (a[t,i,k] - a_zp) * (b[t,k,j] - b_zp)`, wrapping.
pub fn matmul(a: &[i8], b: &[i8], d: MatDims, a_zp: i32, b_zp: i32) -> Vec<i32> {
    let MatDims { batch, m, k, n } = d;
    let mut out = vec![0i32; batch * m * n];
    if m * n == 0 {
        return out;
    }
    out.par_chunks_mut(m * n).enumerate().for_each(|(t, o)| {
        let at: Vec<i16> = a[t * m * k..(t + 1) * m * k].iter().map(|&v| (v as i32 - a_zp) as i16).collect();
        // Transpose b to n x k so that both operands are contiguous along k.
        let bt_src = &b[t * k * n..(t + 1) * k * n];
        let mut bt = vec![0i16; n * k];
        for kk in 0..k {
            for j in 0..n {
                bt[j * k + kk] = (bt_src[kk * n + j] as i32 - b_zp) as i16;
            }
        }
        for i in 0..m {
            for j in 0..n {
                o[i * n + j] = dot_i16(&at[i * k..(i + 1) * k], &bt[j * k..(j + 1) * k]);
            }
        }
    });
    out
}

/// `linear`'s dims: every leading axis of `x` is a row, the weight is `[n, k]` with `k` the
/// last input axis.
pub fn linear_dims(x: &[usize], w: &[usize]) -> OpResult<MatDims> {
    match (x.split_last(), w) {
        (Some((&k, lead)), &[n, wk]) if k == wk => Ok(MatDims { batch: 1, m: lead.iter().product(), k, n }),
        _ => Err(bad(format!(
            "weight shape {w:?} does not fit input shape {x:?} (want [N, K] with K the last input dim)"
        ))),
    }
}

/// `linear`'s rule: i8 `[.., K]` x weight i8 `[N, K]` (+ bias i32 `[N]`) -> i32 `[.., N]`.
pub(crate) fn linear_rule(
    x: &TensorSpec,
    w: &TensorSpec,
    bias: Option<&TensorSpec>,
    input_zp: i32,
) -> OpResult<TensorSpec> {
    want(x, DType::I8, "input")?;
    want(w, DType::I8, "weight")?;
    if !i8_range(input_zp) {
        return Err(bad(format!("input_zp {input_zp} outside -128..=127")));
    }
    let d = linear_dims(&x.shape, &w.shape)?;
    if let Some(b) = bias {
        bias_rule(b, d.n)?;
    }
    let mut shape = x.shape.clone();
    *shape.last_mut().expect("linear_dims checked rank >= 1") = d.n;
    Ok(TensorSpec::new(DType::I32, shape))
}

/// A bias of a product with `n` output channels: i32 `[n]`.
pub(crate) fn bias_rule(b: &TensorSpec, n: usize) -> OpResult<()> {
    want(b, DType::I32, "bias")?;
    if b.shape != [n] {
        return Err(bad(format!("bias shape {:?}, want [{n}]", b.shape)));
    }
    Ok(())
}

/// `matmul`'s dims: `[B?, M, K] x [B?, K, N]`, both rank 2 or both rank 3 with one batch.
pub fn matmul_dims(a: &[usize], b: &[usize]) -> OpResult<MatDims> {
    let r = a.len();
    let ok = (r == 2 || r == 3) && b.len() == r && a[r - 1] == b[r - 2] && (r == 2 || a[0] == b[0]);
    if !ok {
        return Err(bad(format!("shapes {a:?} x {b:?} do not multiply")));
    }
    let batch = if r == 3 { a[0] } else { 1 };
    Ok(MatDims { batch, m: a[r - 2], k: a[r - 1], n: b[r - 1] })
}

/// `matmul`'s rule: i8 `[B?, M, K]` x i8 `[B?, K, N]` -> i32 `[B?, M, N]`.
pub(crate) fn matmul_rule(a: &TensorSpec, b: &TensorSpec, a_zp: i32, b_zp: i32) -> OpResult<TensorSpec> {
    want(a, DType::I8, "left input")?;
    want(b, DType::I8, "right input")?;
    if !i8_range(a_zp) || !i8_range(b_zp) {
        return Err(bad("zero points must be in -128..=127"));
    }
    let d = matmul_dims(&a.shape, &b.shape)?;
    let mut shape = a.shape.clone();
    *shape.last_mut().expect("matmul_dims checked rank >= 2") = d.n;
    Ok(TensorSpec::new(DType::I32, shape))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The run-time dispatched kernel (AVX2 where available) equals the portable one
        /// and a plain widening loop, for both blockings.
        #[test]
        fn dispatched_kernel_matches_portable(
            m in 1usize..12, n in 1usize..70, k in 0usize..100, seed in any::<u64>()
        ) {
            let mut state = seed;
            let mut next = || { state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); (state >> 33) as i8 };
            let a: Vec<i8> = (0..m * k).map(|_| next()).collect();
            let b: Vec<i8> = (0..n * k).map(|_| next()).collect();
            let got = gemm_nt_i8(&a, &b, MatDims { batch: 1, m, k, n });
            let mut portable = vec![0i32; m * n];
            rows_block(&a, &b, &mut portable, 0, n, k);
            prop_assert_eq!(&got, &portable);
            for i in 0..m {
                for j in 0..n {
                    let want = (0..k).fold(0i32, |s, t| s.wrapping_add(a[i * k + t] as i32 * b[j * k + t] as i32));
                    prop_assert_eq!(got[i * n + j], want);
                }
            }
        }

        /// A batched product is the batch's products one after the other.
        #[test]
        fn batched_product_is_each_batch_item_in_turn(
            batch in 2usize..4, m in 1usize..5, n in 1usize..9, k in 0usize..40, seed in any::<u64>()
        ) {
            let mut state = seed;
            let mut next = || { state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); (state >> 33) as i8 };
            let a: Vec<i8> = (0..batch * m * k).map(|_| next()).collect();
            let b: Vec<i8> = (0..batch * n * k).map(|_| next()).collect();
            let got = gemm_nt_i8(&a, &b, MatDims { batch, m, k, n });
            let one = MatDims { batch: 1, m, k, n };
            let want: Vec<i32> = (0..batch)
                .flat_map(|t| gemm_nt_i8(&a[t * m * k..(t + 1) * m * k], &b[t * n * k..(t + 1) * n * k], one))
                .collect();
            prop_assert_eq!(got, want);
        }
    }
}
