//! Causal grouped-query attention over a KV cache (`docs/spec/ops.md` §5.6): scores
//! `q.k / sqrt(head_dim)` exact in i128 and rounded once to the stream's format, the
//! integer softmax of [`super::exp::softmax_row_q30`] over the visible positions, and the
//! probability-weighted sum of values exact in i128, rounded once. Each (query, head) pair
//! is independent, so any thread count gives the same bits.

use std::cell::RefCell;

use rayon::prelude::*;

use super::super::check::{bad, want, OpResult};
use super::blockdot::Isa;
use super::exp::EXP_FRAC;
use super::{prod, want_frac, want_len};
use crate::fixed::{isqrt_u128, round_shift_i128, sat_i32};
use crate::tensor::{DType, TensorSpec};

/// Sizes of one attention node. Queries `[seq, heads, head_dim]` at positions
/// `pos0..pos0 + seq`; keys and values `[ctx, kv_heads, head_dim]` (the cache, positions
/// `0..ctx`). Query head `h` reads cache head `h / (heads / kv_heads)`, and the query at
/// position `p` sees cache positions `0..=p`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnDims {
    /// Query positions in this node.
    pub seq: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (divides `heads`).
    pub kv_heads: usize,
    /// Channels per head.
    pub head_dim: usize,
    /// Cache length (at least `pos0 + seq`).
    pub ctx: usize,
    /// Position of the first query.
    pub pos0: usize,
}

/// Largest head dimension (keeps the i128 score sums exact with room to spare).
pub const MAX_HEAD_DIM: usize = 1 << 16;

/// The dims from the shapes of `q`, `k`, `v` and the first query's position.
pub fn attention_dims(q: &[usize], k: &[usize], v: &[usize], pos0: usize) -> OpResult<AttnDims> {
    let ([seq, heads, head_dim], [ctx, kv_heads, kd]) = (q, k) else {
        return Err(bad(format!("q {q:?} and k {k:?} must have rank 3")));
    };
    let d = AttnDims { seq: *seq, heads: *heads, kv_heads: *kv_heads, head_dim: *head_dim, ctx: *ctx, pos0 };
    if k != v || kd != head_dim {
        return Err(bad(format!("k {k:?} and v {v:?} must agree, with head dim {head_dim}")));
    }
    d.check()?;
    Ok(d)
}

impl AttnDims {
    /// The sizes fit together: `kv_heads` divides `heads`, the head dim is in range and
    /// every query position lies inside the cache.
    fn check(&self) -> OpResult<()> {
        let d = self;
        let pos0 = d.pos0;
        if d.kv_heads == 0 || !d.heads.is_multiple_of(d.kv_heads) || !(1..=MAX_HEAD_DIM).contains(&d.head_dim) {
            return Err(bad(format!("{} heads over {} kv heads of dim {}", d.heads, d.kv_heads, d.head_dim)));
        }
        if pos0.checked_add(d.seq).is_none_or(|end| end > d.ctx) {
            return Err(bad(format!("queries at {pos0}..+{} past the cache length {}", d.seq, d.ctx)));
        }
        Ok(())
    }
}

/// The rule: i32 `q`, `k`, `v` as in [`attention_dims`], `frac <= 31` -> i32 of `q`'s shape.
pub fn attention_rule(q: &TensorSpec, k: &TensorSpec, v: &TensorSpec, pos0: usize, frac: u32) -> OpResult<TensorSpec> {
    for (s, what) in [(q, "q"), (k, "k"), (v, "v")] {
        want(s, DType::I32, what)?;
    }
    attention_dims(&q.shape, &k.shape, &v.shape, pos0)?;
    if frac > 31 {
        return Err(bad("frac must be <= 31"));
    }
    Ok(q.clone())
}

/// `floor(2^30 / sqrt(head_dim))`: exactly `2^27` for 64 (the scale is then a shift by 3).
pub fn score_scale_q30(head_dim: usize) -> i64 {
    isqrt_u128((1u128 << 60) / head_dim as u128) as i64
}

/// Attention of every (query, head): `score_t = sat32(round(sum_c q_c k_tc * scale / 2^(frac+30)))`
/// for `t = 0..=pos0 + s`, `p = softmax_row_q30(score, frac)`, and
/// `out_c = sat32(round(sum_t p_t v_tc / 2^30))`. All of `q`, `k`, `v` and the output have
/// `frac` fraction bits. On the best instruction set of this CPU.
pub fn attention(q: &[i32], k: &[i32], v: &[i32], d: AttnDims, frac: u32) -> OpResult<Vec<i32>> {
    attention_on(Isa::detect(), q, k, v, d, frac)
}

/// Per-task buffers of [`attention_on`], reused across the tasks and calls of a thread.
#[derive(Default)]
struct Scratch {
    /// The score dots, `[heads of the task, visible]`.
    dots: Vec<i64>,
    /// The scores, then the probabilities, `[heads of the task, visible]`.
    p: Vec<i32>,
    /// The value sums, `[heads of the task, head_dim]`.
    acc: Vec<i64>,
    /// The softmax's arguments.
    diffs: Vec<i64>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// `f` on this thread's [`Scratch`], kept across calls (a decode step's attention would
/// otherwise allocate its buffers again in every task); a fresh one if it is in use.
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut sc) => f(&mut sc),
        Err(_) => f(&mut Scratch::default()),
    })
}

/// [`attention`] on a given instruction set (one the CPU has: see [`Isa::available`]).
///
/// A task is one query and up to four query heads of one cache head (the largest of
/// 4, 3, 2, 1 dividing the group, or one head per task when that leaves fewer than two
/// tasks per thread), so each cached key and value row is read once for all of them.
///
/// The exact sums run in i64 where they provably fit, with the same integers as the i128
/// of the spec: a score's dot when `sum_c |q_c| < 2^32` (then every partial sum is below
/// `2^32 * 2^31`; otherwise it is summed in i128), and always the values' sum, because the
/// probabilities are non-negative with `sum_t p_t <= 2^30 + T/2` (each is rounded from
/// `2^30 e_t / S`), so `|sum_t p_t v_tc| < 2^31 (2^30 + T/2) < 2^63` for `T < 2^32`
/// positions. No partial sum in any order exceeds these bounds, so the vector lanes and
/// the channel blocks of the kernels sum in any order. When the scale is a power of two
/// `2^s` (`head_dim` a power of 4, e.g. 64) the score is `rshift(dot, F + 30 - s)` in
/// i64, which equals `rshift(dot * 2^s, F + 30)`.
pub fn attention_on(isa: Isa, q: &[i32], k: &[i32], v: &[i32], d: AttnDims, frac: u32) -> OpResult<Vec<i32>> {
    d.check()?;
    want_frac(frac)?;
    want_len("q", q.len(), prod(&[d.seq, d.heads, d.head_dim])?)?;
    want_len("k", k.len(), prod(&[d.ctx, d.kv_heads, d.head_dim])?)?;
    want_len("v", v.len(), prod(&[d.ctx, d.kv_heads, d.head_dim])?)?;
    if d.ctx >= 1 << 32 {
        return Err(bad(format!("cache length {} of 2^32 or more", d.ctx)));
    }
    let (hd, group) = (d.head_dim, d.heads / d.kv_heads);
    let round = ScoreRound::new(hd, frac);
    let mut nt = [4, 3, 2, 1].into_iter().find(|n| group.is_multiple_of(*n)).unwrap_or(1);
    if d.seq * d.heads / nt < 2 * rayon::current_num_threads() {
        nt = 1;
    }
    let (per_row, stride) = (d.heads / nt, d.kv_heads * hd);
    let mut out = vec![0i32; d.seq * d.heads * hd];
    out.par_chunks_mut(nt * hd).enumerate().for_each(|(i, o)| {
        let (s, h0) = (i / per_row, i % per_row * nt);
        let q0 = (s * d.heads + h0) * hd;
        let g = h0 / group * hd;
        let task = Task { isa, q: &q[q0..q0 + nt * hd], k: &k[g..], v: &v[g..], stride, hd, visible: d.pos0 + s + 1 };
        with_scratch(|sc| match nt {
            4 => task.run::<4>(round, sc, o),
            3 => task.run::<3>(round, sc, o),
            2 => task.run::<2>(round, sc, o),
            _ => task.run::<1>(round, sc, o),
        })
    });
    Ok(out)
}

/// A score from its exact dot: `sat32(rshift(dot * scale, F + 30))`.
#[derive(Clone, Copy)]
struct ScoreRound {
    scale: i128,
    frac: u32,
    /// `F + 30 - s` when the scale is `2^s`.
    shift: Option<u32>,
}

impl ScoreRound {
    fn new(head_dim: usize, frac: u32) -> Self {
        let scale = score_scale_q30(head_dim);
        // `scale <= 2^30`, so `s <= 30 <= F + 30`.
        let shift = (scale.count_ones() == 1).then(|| frac + 30 - scale.trailing_zeros());
        ScoreRound { scale: scale as i128, frac, shift }
    }
}

/// `N` query heads of one query and one cache head: queries `[N, hd]`, and the cache
/// head's rows at `t * stride` in `k` and `v` for `t` in `0..visible`.
struct Task<'a> {
    isa: Isa,
    q: &'a [i32],
    k: &'a [i32],
    v: &'a [i32],
    stride: usize,
    hd: usize,
    visible: usize,
}

impl Task<'_> {
    fn run<const N: usize>(&self, round: ScoreRound, sc: &mut Scratch, out: &mut [i32]) {
        let (hd, vis) = (self.hd, self.visible);
        let narrow =
            |n: usize| self.q[n * hd..(n + 1) * hd].iter().map(|&x| x.unsigned_abs() as u64).sum::<u64>() < 1 << 32;
        sc.p.clear();
        sc.p.resize(N * vis, 0);
        if (0..N).all(narrow) {
            sc.dots.clear();
            sc.dots.resize(N * vis, 0);
            lanes::dots::<N>(self.isa, self.q, hd, self.k, self.stride, &mut sc.dots);
            match round.shift {
                Some(sh) => lanes::scores(self.isa, &sc.dots, sh, &mut sc.p),
                None => {
                    for (p, &dot) in sc.p.iter_mut().zip(&sc.dots) {
                        *p = sat_i32(round_shift_i128(dot as i128 * round.scale, round.frac + 30));
                    }
                }
            }
        } else {
            for (n, scores) in sc.p.chunks_mut(vis).enumerate() {
                let qn = &self.q[n * hd..(n + 1) * hd];
                for (t, score) in scores.iter_mut().enumerate() {
                    let kt = &self.k[t * self.stride..t * self.stride + hd];
                    let dot: i128 = qn.iter().zip(kt).map(|(&a, &b)| a as i128 * b as i128).sum();
                    *score = sat_i32(round_shift_i128(dot * round.scale, round.frac + 30));
                }
            }
        }
        for row in sc.p.chunks_mut(vis) {
            lanes::softmax(self.isa, row, round.frac, &mut sc.diffs);
        }
        sc.acc.clear();
        sc.acc.resize(N * hd, 0);
        lanes::sums::<N>(self.isa, &sc.p, self.v, self.stride, hd, &mut sc.acc);
        lanes::scores(self.isa, &sc.acc, EXP_FRAC, out);
    }
}

/// The attention's loops, compiled per instruction set: a portable body (which the
/// compiler vectorizes for AVX2), and AVX-512 kernels over blocks of 16 to 64 channels
/// whose partial products come from `vpmuldq` (i32 x i32 -> i64, on the even and, after
/// a 32-bit shift, the odd elements). Callers keep every partial sum below 2^63 (see
/// [`attention_on`]), so every version gives the same integers.
mod lanes {
    use super::super::exp::exp_q30_batch;
    use super::super::tables::ExpTable;
    use super::Isa;

    /// `dots[n][t] += sum_c q[n][c] k[t stride + c]` over channels `cols` (`q` is
    /// `[N, hd]`, `dots` `[N, visible]`).
    #[inline(always)]
    fn dots_body<const N: usize>(
        q: &[i32],
        hd: usize,
        k: &[i32],
        stride: usize,
        cols: std::ops::Range<usize>,
        dots: &mut [i64],
    ) {
        let visible = dots.len() / N;
        for t in 0..visible {
            let kt = &k[t * stride + cols.start..t * stride + cols.end];
            for n in 0..N {
                let qn = &q[n * hd + cols.start..n * hd + cols.end];
                dots[n * visible + t] += qn.iter().zip(kt).map(|(&a, &b)| a as i64 * b as i64).sum::<i64>();
            }
        }
    }

    /// `acc[n][c] += sum_t p[n][t] v[t stride + c]` over channels `cols` (`p` is
    /// `[N, visible]`, `acc` `[N, hd]`).
    #[inline(always)]
    fn sums_body<const N: usize>(
        p: &[i32],
        v: &[i32],
        stride: usize,
        hd: usize,
        cols: std::ops::Range<usize>,
        acc: &mut [i64],
    ) {
        let visible = p.len() / N;
        for t in 0..visible {
            let vt = &v[t * stride + cols.start..t * stride + cols.end];
            for n in 0..N {
                let pt = p[n * visible + t] as i64;
                if pt != 0 {
                    for (a, &x) in acc[n * hd + cols.start..n * hd + cols.end].iter_mut().zip(vt) {
                        *a += pt * x as i64;
                    }
                }
            }
        }
    }

    /// `out_t = sat32(rshift(dots_t, sh))` for `|dots_t| < 2^63` and `sh <= 63`, without
    /// branches (the sign applied as `(q ^ m) - m` with `m` all ones for a negative dot).
    #[inline(always)]
    fn scores_body(dots: &[i64], sh: u32, out: &mut [i32]) {
        let half = (1u64 << sh) >> 1;
        for (o, &d) in out.iter_mut().zip(dots) {
            let m = d >> 63;
            let q = ((d.unsigned_abs() + half) >> sh) as i64;
            *o = ((q ^ m) - m).clamp(i32::MIN as i64, i32::MAX as i64) as i32;
        }
    }

    /// The softmax of §5.4 over one row of scores, in place: `e_t = exp_q30(x_t - max)`
    /// (from the cached [`ExpTable`] where there is one),
    /// `S = sum_t e_t`, `p_t = floor((2^31 e_t + S) / (2 S))` (the quotients by a
    /// reciprocal, see [`normalize_body`]).
    #[inline(always)]
    fn softmax_body(isa: Isa, x: &mut [i32], frac: u32, diffs: &mut Vec<i64>) {
        if let Some(s) = exps_body(isa, x, frac, diffs) {
            normalize_body(x, s);
        }
    }

    /// The first half of [`softmax_body`]: `x_t <- e_t` and `S` (`None` for an empty row).
    #[inline(always)]
    fn exps_body(isa: Isa, x: &mut [i32], frac: u32, diffs: &mut Vec<i64>) -> Option<i64> {
        // A fold, not `max()`, which the compiler leaves a scalar loop with branches.
        let m = x.iter().copied().reduce(i32::max)?;
        match ExpTable::cached(frac) {
            Some(t) => t.exp_below_into(isa, x, m),
            None => {
                diffs.clear();
                diffs.extend(x.iter().map(|&v| v as i64 - m as i64));
                exp_q30_batch(isa, diffs, frac, x);
            }
        }
        // At least one `e_t` is `2^30` (at the maximum), each is at most that, and there
        // are fewer than 2^32: `2^30 <= S < 2^62`.
        Some(x.iter().map(|&e| e as i64).sum())
    }

    /// `e_t <- floor((2^31 e_t + s) / (2 s))` for `0 <= e_t <= 2^30` and `2^30 <= s < 2^62`,
    /// in integers only: one division per row for the reciprocal
    /// `m = floor((2^(64 + z) - 1) / d)` of `d = 2s` (`2^z <= d < 2^(z + 1)`, so `m < 2^64`),
    /// then per element the estimate `floor(n m / 2^(64 + z))` of `n / d`
    /// (`n = 2^31 e_t + s < 2^63`). `m > 2^(64 + z) / d - 2` puts the estimate within
    /// `2 n / 2^(64 + z) < 2^-31` below `n / d` and never above it: the quotient or one
    /// less, which the remainder `n - q d` (in `0..2d`, exact in i64) corrects.
    #[inline(always)]
    pub(super) fn normalize_body(e: &mut [i32], s: i64) {
        let d = 2 * s;
        let z = 63 - d.leading_zeros();
        let m = (((1u128 << (64 + z)) - 1) / d as u128) as u64;
        for o in e.iter_mut() {
            let n = ((*o as i64) << 31) + s;
            let q = ((n as u128 * m as u128) >> (64 + z)) as i64;
            let r = n - q * d;
            *o = (q + (r >= d) as i64) as i32;
        }
    }

    #[cfg(target_arch = "x86_64")]
    pub(super) mod x86 {
        use super::Isa;
        use std::arch::x86_64::*;

        #[target_feature(enable = "avx2")]
        pub(super) fn dots_avx2<const N: usize>(q: &[i32], hd: usize, k: &[i32], stride: usize, dots: &mut [i64]) {
            super::dots_body::<N>(q, hd, k, stride, 0..hd, dots)
        }
        #[target_feature(enable = "avx2")]
        pub(super) fn sums_avx2<const N: usize>(p: &[i32], v: &[i32], stride: usize, hd: usize, acc: &mut [i64]) {
            super::sums_body::<N>(p, v, stride, hd, 0..hd, acc)
        }
        #[target_feature(enable = "avx2")]
        pub(super) fn scores_avx2(dots: &[i64], sh: u32, out: &mut [i32]) {
            super::scores_body(dots, sh, out)
        }
        #[target_feature(enable = "avx2,avx512f,avx512bw,avx512dq,avx512vl")]
        pub(super) fn scores_avx512(dots: &[i64], sh: u32, out: &mut [i32]) {
            super::scores_body(dots, sh, out)
        }
        #[target_feature(enable = "avx2")]
        pub(super) fn softmax_avx2(x: &mut [i32], frac: u32, diffs: &mut Vec<i64>) {
            super::softmax_body(Isa::Avx2, x, frac, diffs)
        }
        #[target_feature(enable = "avx2,avx512f,avx512bw,avx512dq,avx512vl")]
        pub(super) fn softmax_avx512(x: &mut [i32], frac: u32, diffs: &mut Vec<i64>) {
            if let Some(s) = super::exps_body(Isa::Avx512, x, frac, diffs) {
                normalize_avx512(x, s);
            }
        }

        /// [`super::normalize_body`] eight lanes a step, for `s < 2^61` (fewer than 2^31
        /// positions; the scalar steps otherwise and for the last `len % 8`), in integers.
        /// With `k` the bit length of `s` (31..=61), `M = floor(2^(30 + k) / s)` lies in
        /// `(2^30, 2^31]`, so `e_t M < 2^61` is one `vpmuludq`, and the estimate
        /// `floor((e_t M + 2^(k-1)) / 2^k)` of `floor(e_t 2^30 / s + 1/2)` (the quotient)
        /// is at most `e_t / 2^k < 1/2` below it before the floor: the quotient or one
        /// less. The exact remainder `n - est d` (`n = 2^31 e_t + s`, `d = 2 s`; `est d <= n
        /// < 2^63`, one `vpmullq`) adds the one where it is `>= d`.
        #[target_feature(enable = "avx2,avx512f,avx512bw,avx512dq,avx512vl")]
        pub(in crate::ops::llm) fn normalize_avx512(e: &mut [i32], s: i64) {
            if !(1 << 30..1 << 61).contains(&s) {
                return super::normalize_body(e, s);
            }
            let k = 64 - s.leading_zeros();
            let m = ((1u128 << (30 + k)) / s as u128) as i64;
            let whole = e.len() - e.len() % 8;
            let (mv, sv, dv) = (_mm512_set1_epi64(m), _mm512_set1_epi64(s), _mm512_set1_epi64(2 * s));
            let (half, one, sh) = (_mm512_set1_epi64(1 << (k - 1)), _mm512_set1_epi64(1), _mm_cvtsi32_si128(k as i32));
            for i in (0..whole).step_by(8) {
                // SAFETY: `i + 8 <= whole <= e.len()`; loadu / storeu need no alignment.
                unsafe {
                    let ev = _mm512_cvtepi32_epi64(_mm256_loadu_si256(e.as_ptr().add(i).cast()));
                    let est = _mm512_srl_epi64(_mm512_add_epi64(_mm512_mul_epu32(ev, mv), half), sh);
                    let n = _mm512_add_epi64(_mm512_slli_epi64::<31>(ev), sv);
                    let r = _mm512_sub_epi64(n, _mm512_mullo_epi64(est, dv));
                    let q = _mm512_mask_add_epi64(est, _mm512_cmpge_epi64_mask(r, dv), est, one);
                    _mm256_storeu_si256(e.as_mut_ptr().add(i).cast(), _mm512_cvtepi64_epi32(q));
                }
            }
            super::normalize_body(&mut e[whole..], s);
        }

        /// [`super::dots_body`] on AVX-512: blocks of 64 channels (and one of the
        /// remaining multiple of 16) with the block's queries held in registers across
        /// the positions, and the last `hd % 16` channels portable.
        #[target_feature(enable = "avx2,avx512f,avx512bw,avx512dq,avx512vl")]
        pub(super) fn dots_avx512<const N: usize>(q: &[i32], hd: usize, k: &[i32], stride: usize, dots: &mut [i64]) {
            let mut c0 = 0;
            while c0 + 16 <= hd {
                let ch = ((hd - c0) / 16).min(4);
                // SAFETY: `c0 + 16 ch <= hd`, and `dots_block` checks its slices.
                match ch {
                    4 => unsafe { dots_block::<N, 4>(q, hd, k, stride, c0, dots) },
                    3 => unsafe { dots_block::<N, 3>(q, hd, k, stride, c0, dots) },
                    2 => unsafe { dots_block::<N, 2>(q, hd, k, stride, c0, dots) },
                    _ => unsafe { dots_block::<N, 1>(q, hd, k, stride, c0, dots) },
                }
                c0 += 16 * ch;
            }
            if c0 < hd {
                super::dots_body::<N>(q, hd, k, stride, c0..hd, dots);
            }
        }

        /// Channels `c0..c0 + 16 CH` of [`dots_avx512`].
        ///
        /// # Safety
        /// The CPU has AVX-512 F and `c0 + 16 CH <= hd` (the slices are checked here).
        #[target_feature(enable = "avx2,avx512f,avx512bw,avx512dq,avx512vl")]
        unsafe fn dots_block<const N: usize, const CH: usize>(
            q: &[i32],
            hd: usize,
            k: &[i32],
            stride: usize,
            c0: usize,
            dots: &mut [i64],
        ) {
            let visible = dots.len() / N;
            assert!(c0 + 16 * CH <= hd && q.len() >= N * hd);
            assert!(visible == 0 || k.len() >= (visible - 1) * stride + c0 + 16 * CH);
            let (mut qe, mut qo) = ([[_mm512_setzero_si512(); CH]; N], [[_mm512_setzero_si512(); CH]; N]);
            for n in 0..N {
                for j in 0..CH {
                    // SAFETY: inside `q` (asserted above).
                    let x = unsafe { _mm512_loadu_si512(q.as_ptr().add(n * hd + c0 + 16 * j).cast()) };
                    qe[n][j] = x;
                    qo[n][j] = _mm512_srli_epi64::<32>(x);
                }
            }
            for t in 0..visible {
                let kt = k[t * stride + c0..].as_ptr();
                let mut acc = [_mm512_setzero_si512(); N];
                for j in 0..CH {
                    // SAFETY: inside `k` (asserted above).
                    let x = unsafe { _mm512_loadu_si512(kt.add(16 * j).cast()) };
                    let xo = _mm512_srli_epi64::<32>(x);
                    for n in 0..N {
                        acc[n] = _mm512_add_epi64(acc[n], _mm512_mul_epi32(qe[n][j], x));
                        acc[n] = _mm512_add_epi64(acc[n], _mm512_mul_epi32(qo[n][j], xo));
                    }
                }
                for n in 0..N {
                    dots[n * visible + t] += _mm512_reduce_add_epi64(acc[n]);
                }
            }
        }

        /// [`super::sums_body`] on AVX-512, blocked as [`dots_avx512`], the block's sums
        /// held in registers across the positions.
        #[target_feature(enable = "avx2,avx512f,avx512bw,avx512dq,avx512vl")]
        pub(super) fn sums_avx512<const N: usize>(p: &[i32], v: &[i32], stride: usize, hd: usize, acc: &mut [i64]) {
            let mut c0 = 0;
            while c0 + 16 <= hd {
                let ch = ((hd - c0) / 16).min(4);
                // SAFETY: as in `dots_avx512`.
                match ch {
                    4 => unsafe { sums_block::<N, 4>(p, v, stride, hd, c0, acc) },
                    3 => unsafe { sums_block::<N, 3>(p, v, stride, hd, c0, acc) },
                    2 => unsafe { sums_block::<N, 2>(p, v, stride, hd, c0, acc) },
                    _ => unsafe { sums_block::<N, 1>(p, v, stride, hd, c0, acc) },
                }
                c0 += 16 * ch;
            }
            if c0 < hd {
                super::sums_body::<N>(p, v, stride, hd, c0..hd, acc);
            }
        }

        /// Channels `c0..c0 + 16 CH` of [`sums_avx512`]: lane `i` of the even sums of
        /// chunk `j` is channel `c0 + 16 j + 2 i`, of the odd sums the next channel. The
        /// probabilities are in `0..=2^30`, so `vpmuldq`'s sign extension of the low half
        /// of a broadcast i64 gives them back.
        ///
        /// # Safety
        /// As [`dots_block`].
        #[target_feature(enable = "avx2,avx512f,avx512bw,avx512dq,avx512vl")]
        unsafe fn sums_block<const N: usize, const CH: usize>(
            p: &[i32],
            v: &[i32],
            stride: usize,
            hd: usize,
            c0: usize,
            acc: &mut [i64],
        ) {
            let visible = p.len() / N;
            assert!(c0 + 16 * CH <= hd && acc.len() >= N * hd);
            assert!(visible == 0 || v.len() >= (visible - 1) * stride + c0 + 16 * CH);
            let (mut ae, mut ao) = ([[_mm512_setzero_si512(); CH]; N], [[_mm512_setzero_si512(); CH]; N]);
            for t in 0..visible {
                let pt: [i32; N] = std::array::from_fn(|n| p[n * visible + t]);
                if pt.iter().all(|&x| x == 0) {
                    continue;
                }
                let pv = pt.map(|x| _mm512_set1_epi64(x as i64));
                let vt = v[t * stride + c0..].as_ptr();
                for j in 0..CH {
                    // SAFETY: inside `v` (asserted above).
                    let x = unsafe { _mm512_loadu_si512(vt.add(16 * j).cast()) };
                    let xo = _mm512_srli_epi64::<32>(x);
                    for n in 0..N {
                        ae[n][j] = _mm512_add_epi64(ae[n][j], _mm512_mul_epi32(pv[n], x));
                        ao[n][j] = _mm512_add_epi64(ao[n][j], _mm512_mul_epi32(pv[n], xo));
                    }
                }
            }
            for n in 0..N {
                for j in 0..CH {
                    let (mut e, mut o) = ([0i64; 8], [0i64; 8]);
                    // SAFETY: eight i64 into each array.
                    unsafe {
                        _mm512_storeu_si512(e.as_mut_ptr().cast(), ae[n][j]);
                        _mm512_storeu_si512(o.as_mut_ptr().cast(), ao[n][j]);
                    }
                    let a = &mut acc[n * hd + c0 + 16 * j..n * hd + c0 + 16 * (j + 1)];
                    for i in 0..8 {
                        a[2 * i] += e[i];
                        a[2 * i + 1] += o[i];
                    }
                }
            }
        }
    }

    pub(super) fn dots<const N: usize>(isa: Isa, q: &[i32], hd: usize, k: &[i32], stride: usize, dots: &mut [i64]) {
        match isa {
            Isa::Scalar => dots_body::<N>(q, hd, k, stride, 0..hd, dots),
            // SAFETY: `Isa::Avx2` and `Isa::Avx512` come from `Isa::detect` or
            // `Isa::available`, which check these features at run time.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { x86::dots_avx2::<N>(q, hd, k, stride, dots) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { x86::dots_avx512::<N>(q, hd, k, stride, dots) },
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 | Isa::Avx512 => dots_body::<N>(q, hd, k, stride, 0..hd, dots),
        }
    }

    pub(super) fn sums<const N: usize>(isa: Isa, p: &[i32], v: &[i32], stride: usize, hd: usize, acc: &mut [i64]) {
        match isa {
            Isa::Scalar => sums_body::<N>(p, v, stride, hd, 0..hd, acc),
            // SAFETY: as in `dots`.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { x86::sums_avx2::<N>(p, v, stride, hd, acc) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { x86::sums_avx512::<N>(p, v, stride, hd, acc) },
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 | Isa::Avx512 => sums_body::<N>(p, v, stride, hd, 0..hd, acc),
        }
    }

    pub(super) fn scores(isa: Isa, dots: &[i64], sh: u32, out: &mut [i32]) {
        match isa {
            Isa::Scalar => scores_body(dots, sh, out),
            // SAFETY: as in `dots`.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { x86::scores_avx2(dots, sh, out) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { x86::scores_avx512(dots, sh, out) },
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 | Isa::Avx512 => scores_body(dots, sh, out),
        }
    }

    pub(super) fn softmax(isa: Isa, x: &mut [i32], frac: u32, diffs: &mut Vec<i64>) {
        match isa {
            Isa::Scalar => softmax_body(isa, x, frac, diffs),
            // SAFETY: as in `dots`.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { x86::softmax_avx2(x, frac, diffs) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { x86::softmax_avx512(x, frac, diffs) },
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 | Isa::Avx512 => softmax_body(isa, x, frac, diffs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::llm::exp::softmax_row_q30;
    use crate::ops::llm::testutil::{cpu_seconds_per_call, pool, rel_err};
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Float attention on the real values of the same integers.
    fn f64_attention(q: &[i32], k: &[i32], v: &[i32], d: AttnDims, frac: u32) -> Vec<f64> {
        let f = 2f64.powi(frac as i32);
        let (hd, group) = (d.head_dim, d.heads / d.kv_heads);
        let mut out = vec![0.0; q.len()];
        for s in 0..d.seq {
            for h in 0..d.heads {
                let i = s * d.heads + h;
                let cache = |t: usize| (t * d.kv_heads + h / group) * hd;
                let visible = d.pos0 + s + 1;
                let sc: Vec<f64> = (0..visible)
                    .map(|t| {
                        (0..hd).map(|c| q[i * hd + c] as f64 / f * k[cache(t) + c] as f64 / f).sum::<f64>()
                            / (hd as f64).sqrt()
                    })
                    .collect();
                let m = sc.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = sc.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for c in 0..hd {
                    out[i * hd + c] = (0..visible).map(|t| e[t] / z * v[cache(t) + c] as f64).sum();
                }
            }
        }
        out
    }

    fn rand_vec(rng: &mut ChaCha8Rng, n: usize, mag: i32) -> Vec<i32> {
        (0..n).map(|_| rng.gen_range(-mag..=mag)).collect()
    }

    /// The spec transcribed with i128 sums (the reference of every instruction set).
    fn spec_attention(q: &[i32], k: &[i32], v: &[i32], d: AttnDims, frac: u32) -> Vec<i32> {
        let (hd, group) = (d.head_dim, d.heads / d.kv_heads);
        let scale = score_scale_q30(hd) as i128;
        let mut out = vec![0i32; q.len()];
        for (i, o) in out.chunks_mut(hd).enumerate() {
            let (s, h) = (i / d.heads, i % d.heads);
            let cache = |t: usize| (t * d.kv_heads + h / group) * hd;
            let visible = d.pos0 + s + 1;
            let scores: Vec<i32> = (0..visible)
                .map(|t| {
                    let dot: i128 = (0..hd).map(|c| q[i * hd + c] as i128 * k[cache(t) + c] as i128).sum();
                    sat_i32(round_shift_i128(dot * scale, frac + 30))
                })
                .collect();
            let mut p = vec![0i32; visible];
            softmax_row_q30(&scores, frac, &mut p);
            for (c, ov) in o.iter_mut().enumerate() {
                let acc: i128 = (0..visible).map(|t| p[t] as i128 * v[cache(t) + c] as i128).sum();
                *ov = sat_i32(round_shift_i128(acc, EXP_FRAC));
            }
        }
        out
    }

    /// Every instruction set gives the i128 transcription's integers, on random values of
    /// every magnitude and on the ends of i32 (queries past the i64 bound of the score sum,
    /// values at -2^31 under one-hot and spread probabilities).
    #[test]
    fn every_isa_equals_the_i128_transcription() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let d = AttnDims { seq: 3, heads: 4, kv_heads: 2, head_dim: 64, ctx: 37, pos0: 34 };
        let (nq, nk) = (d.seq * d.heads * 64, d.ctx * d.kv_heads * 64);
        let mut cases = Vec::new();
        for mag in [1, 1 << 10, 1 << 20, 1 << 26, i32::MAX] {
            cases.push((rand_vec(&mut rng, nq, mag), rand_vec(&mut rng, nk, mag), rand_vec(&mut rng, nk, mag)));
        }
        cases.push((vec![i32::MIN; nq], vec![i32::MIN; nk], vec![i32::MIN; nk]));
        cases.push((vec![i32::MAX; nq], vec![i32::MIN; nk], vec![i32::MAX; nk]));
        cases.push((vec![0; nq], vec![0; nk], vec![i32::MIN; nk]));
        let small: Vec<i32> = (0..nq).map(|i| if i % 64 == 0 { 1 << 20 } else { 0 }).collect();
        cases.push((small, rand_vec(&mut rng, nk, i32::MAX), vec![i32::MIN; nk]));
        // `sum_c |q_c|` just below 2^32 (the i64 dot, at `-(2^32 - 64) 2^31`) and exactly
        // 2^32 (the i128 one), against keys of -2^31; and one head of each pair past the
        // bound while the other is not.
        let below: Vec<i32> = (0..nq).map(|i| if i % 2 == 0 { 67_108_863 } else { -67_108_863 }).collect();
        let mut at = vec![1 << 26; nq];
        cases.push((below.clone(), vec![i32::MIN; nk], rand_vec(&mut rng, nk, i32::MAX)));
        cases.push((vec![67_108_863; nq], vec![i32::MIN; nk], rand_vec(&mut rng, nk, i32::MAX)));
        cases.push((at.clone(), vec![i32::MIN; nk], rand_vec(&mut rng, nk, i32::MAX)));
        at.chunks_mut(128).for_each(|c| c[64..].copy_from_slice(&below[..64]));
        cases.push((at, rand_vec(&mut rng, nk, i32::MAX), rand_vec(&mut rng, nk, i32::MAX)));
        for (q, k, v) in &cases {
            for frac in [0, 14, 16, 31] {
                let want = spec_attention(q, k, v, d, frac);
                for isa in Isa::available_noting_skips() {
                    assert_eq!(attention_on(isa, q, k, v, d, frac).unwrap(), want, "{isa:?}, frac {frac}");
                }
            }
        }
    }

    #[test]
    fn hand_derived_cases() {
        assert_eq!(score_scale_q30(64), 1 << 27);
        assert_eq!(score_scale_q30(16), 1 << 28);
        // One visible position: the output is that value exactly.
        let d = attention_dims(&[1, 1, 4], &[2, 1, 4], &[2, 1, 4], 0).unwrap();
        let (q, k) = ([1 << 16; 4], [1 << 16; 8]);
        let v = [1, -2, 3, -4, 100, 100, 100, 100];
        assert_eq!(attention(&q, &k, &v, d, 16).unwrap(), vec![1, -2, 3, -4]);
        // Equal scores at position 1: the average of the two values.
        let d1 = AttnDims { pos0: 1, ..d };
        assert_eq!(attention(&q, &k, &v, d1, 16).unwrap(), vec![51, 49, 52, 48]);
    }

    #[test]
    fn shapes_are_checked() {
        assert_eq!(
            attention_dims(&[2, 9, 64], &[10, 3, 64], &[10, 3, 64], 8).unwrap(),
            AttnDims { seq: 2, heads: 9, kv_heads: 3, head_dim: 64, ctx: 10, pos0: 8 }
        );
        assert!(attention_dims(&[2, 9, 64], &[10, 3, 64], &[10, 3, 64], 9).is_err());
        assert!(attention_dims(&[2, 9, 64], &[10, 2, 64], &[10, 2, 64], 0).is_err());
        assert!(attention_dims(&[2, 9, 64], &[10, 3, 32], &[10, 3, 32], 0).is_err());
        assert!(attention_dims(&[2, 9, 64], &[10, 3, 64], &[11, 3, 64], 0).is_err());
        assert!(attention_dims(&[9, 64], &[10, 3, 64], &[10, 3, 64], 0).is_err());
        let s = |shape: &[usize]| TensorSpec::new(DType::I32, shape.to_vec());
        assert!(attention_rule(&s(&[1, 9, 64]), &s(&[4, 3, 64]), &s(&[4, 3, 64]), 3, 16).is_ok());
        assert!(attention_rule(&s(&[1, 9, 64]), &s(&[4, 3, 64]), &s(&[4, 3, 64]), 3, 32).is_err());
        // The kernel checks its operands against the dims instead of panicking.
        let d = AttnDims { seq: 1, heads: 2, kv_heads: 1, head_dim: 4, ctx: 2, pos0: 1 };
        assert!(attention(&[0; 8], &[0; 8], &[0; 8], d, 16).is_ok());
        assert!(attention(&[0; 8], &[0; 7], &[0; 8], d, 16).is_err());
        assert!(attention(&[0; 8], &[0; 8], &[0; 8], AttnDims { pos0: 2, ..d }, 16).is_err());
        assert!(attention(&[0; 8], &[0; 8], &[0; 8], d, 32).is_err());
    }

    #[test]
    fn smollm_sizes_are_bit_exact_for_any_thread_count_and_close_to_f64() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let d = AttnDims { seq: 4, heads: 9, kv_heads: 3, head_dim: 64, ctx: 40, pos0: 36 };
        let q = rand_vec(&mut rng, d.seq * d.heads * 64, 3 << 16);
        let k = rand_vec(&mut rng, d.ctx * d.kv_heads * 64, 3 << 16);
        let v = rand_vec(&mut rng, d.ctx * d.kv_heads * 64, 2 << 16);
        let one = pool(1).install(|| attention(&q, &k, &v, d, 16).unwrap());
        assert_eq!(one, pool(4).install(|| attention(&q, &k, &v, d, 16).unwrap()));
        let e = rel_err(&one, &f64_attention(&q, &k, &v, d, 16));
        eprintln!("attention relative error {e:.2e}");
        assert!(e < 1e-3);
    }

    #[test]
    fn a_query_never_reads_a_later_position() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let d = AttnDims { seq: 3, heads: 2, kv_heads: 1, head_dim: 8, ctx: 6, pos0: 2 };
        let q = rand_vec(&mut rng, 3 * 2 * 8, 1 << 16);
        let (mut k, mut v) = (rand_vec(&mut rng, 6 * 8, 1 << 16), rand_vec(&mut rng, 6 * 8, 1 << 16));
        let before = attention(&q, &k, &v, d, 16).unwrap();
        // Position 5 is past every query (the last sees 0..=4).
        k[5 * 8..].fill(i32::MAX);
        v[5 * 8..].fill(i32::MIN);
        assert_eq!(attention(&q, &k, &v, d, 16).unwrap(), before);
    }

    /// CPU time of one call at SmolLM2's decode (1 query, 256 cached positions) and prompt
    /// (193 queries) sizes, per instruction set on one thread, and the wall time on two
    /// threads (`cargo test -p opml-dnn --release --lib throughput -- --ignored --nocapture`):
    /// a measurement, not a check.
    #[test]
    #[ignore]
    fn throughput() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for (seq, ctx, reps) in [(1, 100, 8000), (1, 256, 4000), (193, 193, 40)] {
            let d = AttnDims { seq, heads: 9, kv_heads: 3, head_dim: 64, ctx, pos0: ctx - seq };
            let q = rand_vec(&mut rng, seq * 9 * 64, 3 << 14);
            let k = rand_vec(&mut rng, ctx * 3 * 64, 3 << 14);
            let v = rand_vec(&mut rng, ctx * 3 * 64, 3 << 14);
            // `OPML_BENCH_ISA=Avx512` (say) measures one instruction set only (for perf).
            let only = std::env::var("OPML_BENCH_ISA").ok();
            for isa in Isa::available().into_iter().filter(|i| only.as_ref().is_none_or(|o| *o == format!("{i:?}"))) {
                let step = || drop(std::hint::black_box(attention_on(isa, &q, &k, &v, d, 14).unwrap()));
                let s = cpu_seconds_per_call(reps, step);
                let wall2 = pool(2).install(|| {
                    let t = std::time::Instant::now();
                    (0..reps).for_each(|_| step());
                    t.elapsed().as_secs_f64()
                }) / reps as f64;
                eprintln!(
                    "attention seq {seq} ctx {ctx} {isa:?}: {:.1} us CPU on 1 thread, {:.1} us wall on 2",
                    s * 1e6,
                    wall2 * 1e6
                );
            }
        }
    }

    /// The reciprocal division equals `div_euclid` at the ends of its range: `e` in
    /// `0..=2^30`, `s` from 2^30 (where `e = 2^30` gives the tie `2^30 + 1/2`) to
    /// `2^62 - 1`, and random values between.
    #[test]
    fn normalization_equals_the_division() {
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        let mut sums =
            vec![1 << 30, (1 << 30) + 1, 3 << 29, (1 << 31) - 1, 1 << 31, (1 << 60) - 1, 1 << 60, (1 << 62) - 1];
        sums.extend(
            (0..200).map(|_| rng.gen_range(1i64 << 30..1 << 62) >> rng.gen_range(0..32)).filter(|&s| s >= 1 << 30),
        );
        let mut es = vec![0, 1, 2, (1 << 29) - 1, 1 << 29, (1 << 30) - 1, 1 << 30];
        es.extend((0..57).map(|_| rng.gen_range(0..=1 << 30)));
        let mut cases: Vec<(i64, Vec<i32>)> = sums.iter().map(|&s| (s, es.clone())).collect();
        // Exact quotients (`r = 0`), where the estimate comes out one low and the
        // correction is needed, and quotients a hair above or below an integer (`r` small):
        // `2^31 e = (2q - 1) s + r` with `s` solving that modulo 2^31 (`2q - 1` odd has an
        // inverse there).
        let (mut low, mut exact) = (0, 0);
        for _ in 0..20000 {
            let bits = rng.gen_range(1..31);
            let q = rng.gen_range(1i64..1 << bits);
            let m = 2 * q - 1;
            let r = [0, 0, 0, 1, 2, 100, -1, -2, -100][rng.gen_range(0..9)];
            let inv = (0..5).fold(m as u32, |x, _| x.wrapping_mul(2u32.wrapping_sub((m as u32).wrapping_mul(x))));
            let s0 = ((-r as u32).wrapping_mul(inv) & 0x7fff_ffff) as i64;
            let s_max = ((1i64 << 61) / m).min((1 << 62) - 1);
            let (k_min, k_max) = (((1 << 30) - s0 + (1 << 31) - 1).max(0) >> 31, (s_max - s0) >> 31);
            if k_max < k_min.max(1) {
                continue;
            }
            let s = (rng.gen_range(k_min..=k_max) << 31) + s0;
            let e = ((m as i128 * s as i128 + r as i128) >> 31) as i64;
            assert_eq!((m as i128 * s as i128 + r as i128) & 0x7fff_ffff, 0);
            if !(0..=1 << 30).contains(&e) || !(1 << 30..1 << 62).contains(&s) {
                continue;
            }
            let (n, d) = ((e << 31) + s, 2 * s);
            let z = 63 - d.leading_zeros();
            let recip = ((1u128 << (64 + z)) - 1) / d as u128;
            let estimate = ((n as u128 * recip) >> (64 + z)) as i64;
            assert!(estimate == n / d || estimate == n / d - 1, "estimate {estimate} of {n} / {d}");
            low += (estimate < n / d) as usize;
            exact += (estimate == n / d) as usize;
            cases.push((s, vec![e as i32]));
        }
        assert!(low > 100 && exact > 100, "the estimate is one low in {low} and exact in {exact} cases only");
        let avx512 = Isa::available().contains(&Isa::Avx512);
        for (s, es) in cases {
            let mut got = es.clone();
            lanes::normalize_body(&mut got, s);
            let want: Vec<i32> = es.iter().map(|&e| (((e as i64) << 31) + s).div_euclid(2 * s) as i32).collect();
            assert_eq!(got, want, "s = {s}");
            #[cfg(target_arch = "x86_64")]
            if avx512 {
                // Each value in every lane, and a ragged end.
                let es: Vec<i32> = es.iter().flat_map(|&e| [e; 9]).collect();
                let mut got = es.clone();
                // SAFETY: this CPU has AVX-512 (`Isa::available`).
                unsafe { lanes::x86::normalize_avx512(&mut got, s) };
                let want: Vec<i32> = es.iter().map(|&e| (((e as i64) << 31) + s).div_euclid(2 * s) as i32).collect();
                assert_eq!(got, want, "AVX-512, s = {s}");
            }
        }
        let _ = avx512;
    }

    /// Each instruction set's softmax equals the exp module's (`softmax_row_q30`, the
    /// division) on rows of every length up to past a vector's and of every spread.
    #[test]
    fn softmax_equals_the_exp_modules() {
        let mut rng = ChaCha8Rng::seed_from_u64(23);
        for len in [1, 2, 7, 8, 9, 16, 17, 63, 300, 4099] {
            for mag in [0, 1, 1 << 12, 1 << 20, i32::MAX] {
                let mut x = rand_vec(&mut rng, len, mag);
                if mag == i32::MAX {
                    x[0] = i32::MIN;
                }
                for frac in [0, 14, 31] {
                    let mut want = vec![0; len];
                    softmax_row_q30(&x, frac, &mut want);
                    for isa in Isa::available() {
                        let mut got = x.clone();
                        lanes::softmax(isa, &mut got, frac, &mut Vec::new());
                        assert_eq!(got, want, "{isa:?}, len {len}, mag {mag}, frac {frac}");
                    }
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Every instruction set on 1, 2 and 4 threads gives the i128 transcription's
        /// integers for head dims with and without AVX-512 blocks (multiples of 16 up to
        /// past one block of 64) and a remainder, with scales that are powers of two (4,
        /// 16, 64) and not, for group sizes that make tasks of 1 to 4 heads.
        #[test]
        fn kernels_equal_the_i128_transcription(
            seed in any::<u64>(), seq in 1usize..5, kv in 1usize..4, group in 1usize..10,
            hd in prop::sample::select(vec![1usize, 4, 8, 16, 20, 32, 48, 64, 72, 80, 128, 144]),
            extra in 0usize..40, frac in 0u32..=31,
            mag in prop::sample::select(vec![1, 1 << 10, 1 << 20, 1 << 26, i32::MAX]),
            threads in prop::sample::select(vec![1usize, 2, 4]),
        ) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let d = AttnDims { seq, heads: kv * group, kv_heads: kv, head_dim: hd, ctx: seq + extra, pos0: extra };
            let q = rand_vec(&mut rng, seq * d.heads * hd, mag);
            let k = rand_vec(&mut rng, d.ctx * kv * hd, mag);
            let v = rand_vec(&mut rng, d.ctx * kv * hd, i32::MAX);
            let want = spec_attention(&q, &k, &v, d, frac);
            for isa in Isa::available() {
                let got = pool(threads).install(|| attention_on(isa, &q, &k, &v, d, frac).unwrap());
                prop_assert_eq!(&got, &want, "{:?}", isa);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Every output is within `1 + max|v| (2^-frac + 4 T 2^-30)` of the f64 value: the
        /// score rounding (half a unit of 2^-frac, moving each probability by at most that
        /// relative), the softmax's absolute error per probability, and the final rounding.
        #[test]
        fn close_to_f64(
            seed in any::<u64>(), seq in 1usize..4, kv in 1usize..3, group in 1usize..4,
            hd in prop::sample::select(vec![4usize, 16, 64]), extra in 0usize..5, frac in 12u32..=18,
        ) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let d = AttnDims { seq, heads: kv * group, kv_heads: kv, head_dim: hd, ctx: seq + extra, pos0: extra };
            let mag = 4 << frac;
            let q = rand_vec(&mut rng, seq * d.heads * hd, mag);
            let k = rand_vec(&mut rng, d.ctx * kv * hd, mag);
            let v = rand_vec(&mut rng, d.ctx * kv * hd, mag);
            let got = attention(&q, &k, &v, d, frac).unwrap();
            let want = f64_attention(&q, &k, &v, d, frac);
            let bound = 1.0 + mag as f64 * (2f64.powi(-(frac as i32)) + 4.0 * d.ctx as f64 * 2f64.powi(-30));
            for (&g, &w) in got.iter().zip(&want) {
                prop_assert!((g as f64 - w).abs() <= bound, "{} vs {} (bound {})", g, w, bound);
            }
        }
    }
}
