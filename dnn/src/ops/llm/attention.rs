//! Causal grouped-query attention over a KV cache (`docs/spec/ops.md` §5.6): scores
//! `q.k / sqrt(head_dim)` exact in i128 and rounded once to the stream's format, the
//! integer softmax of [`softmax_row_q30`] over the visible positions, and the
//! probability-weighted sum of values exact in i128, rounded once. Each (query, head) pair
//! is independent, so any thread count gives the same bits.

use rayon::prelude::*;

use super::super::check::{bad, want, OpResult};
use super::blockdot::Isa;
use super::exp::{softmax_row_q30_on, EXP_FRAC};
use super::{prod, want_frac, want_len};
use crate::fixed::{isqrt_u128, round_shift_i128, round_shift_i64, sat_i32};
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

/// Per-task buffers of [`attention_on`], reused across the (query, head) pairs of a task.
#[derive(Default)]
struct Scratch {
    scores: Vec<i32>,
    p: Vec<i32>,
    acc: Vec<i64>,
    /// The softmax's arguments.
    diffs: Vec<i64>,
}

/// [`attention`] on a given instruction set (one the CPU has: see [`Isa::available`]).
///
/// The exact sums run in i64 where they provably fit, with the same integers as the i128
/// of the spec: a score's dot when `sum_c |q_c| < 2^32` (then every partial sum is below
/// `2^32 * 2^31`; otherwise it is summed in i128), and always the values' sum, because the
/// probabilities are non-negative with `sum_t p_t <= 2^30 + T/2` (each is rounded from
/// `2^30 e_t / S`), so `|sum_t p_t v_tc| < 2^31 (2^30 + T/2) < 2^63` for `T < 2^32`
/// positions.
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
    let scale = score_scale_q30(hd) as i128;
    let mut out = vec![0i32; d.seq * d.heads * hd];
    out.par_chunks_mut(hd).enumerate().for_each_init(Scratch::default, |sc, (i, o)| {
        let (s, h) = (i / d.heads, i % d.heads);
        let qh = &q[i * hd..(i + 1) * hd];
        let cache = |t: usize| (t * d.kv_heads + h / group) * hd;
        let visible = d.pos0 + s + 1;
        let narrow = qh.iter().map(|&x| x.unsigned_abs() as u64).sum::<u64>() < 1 << 32;
        sc.scores.clear();
        sc.scores.extend((0..visible).map(|t| {
            let kt = &k[cache(t)..cache(t) + hd];
            let dot = if narrow {
                lanes::dot(isa, qh, kt) as i128
            } else {
                qh.iter().zip(kt).map(|(&a, &b)| a as i128 * b as i128).sum()
            };
            sat_i32(round_shift_i128(dot * scale, frac + 30))
        }));
        sc.p.resize(visible, 0);
        softmax_row_q30_on(isa, &sc.scores, frac, &mut sc.p, &mut sc.diffs);
        sc.acc.clear();
        sc.acc.resize(hd, 0);
        for (t, &pt) in sc.p.iter().enumerate() {
            if pt != 0 {
                lanes::axpy(isa, &mut sc.acc, pt as i64, &v[cache(t)..cache(t) + hd]);
            }
        }
        for (ov, &a) in o.iter_mut().zip(&sc.acc) {
            *ov = sat_i32(round_shift_i64(a, EXP_FRAC) as i128);
        }
    });
    Ok(out)
}

/// The two i64 loops of the attention, compiled once per instruction set from one body
/// (the compiler vectorizes them with that set's 64-bit multiplies). Callers keep every
/// sum below 2^63 (see [`attention_on`]), so every version gives the same integers.
mod lanes {
    use super::Isa;

    /// `sum_c a_c b_c`.
    #[inline(always)]
    fn dot_body(a: &[i32], b: &[i32]) -> i64 {
        a.iter().zip(b).map(|(&x, &y)| x as i64 * y as i64).sum()
    }

    /// `acc_c += p v_c`.
    #[inline(always)]
    fn axpy_body(acc: &mut [i64], p: i64, v: &[i32]) {
        for (a, &x) in acc.iter_mut().zip(v) {
            *a += p * x as i64;
        }
    }

    #[cfg(target_arch = "x86_64")]
    mod x86 {
        #[target_feature(enable = "avx2")]
        pub(super) fn dot_avx2(a: &[i32], b: &[i32]) -> i64 {
            super::dot_body(a, b)
        }
        #[target_feature(enable = "avx2")]
        pub(super) fn axpy_avx2(acc: &mut [i64], p: i64, v: &[i32]) {
            super::axpy_body(acc, p, v)
        }
        #[target_feature(enable = "avx2,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
        pub(super) fn dot_avx512(a: &[i32], b: &[i32]) -> i64 {
            super::dot_body(a, b)
        }
        #[target_feature(enable = "avx2,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
        pub(super) fn axpy_avx512(acc: &mut [i64], p: i64, v: &[i32]) {
            super::axpy_body(acc, p, v)
        }
    }

    pub(super) fn dot(isa: Isa, a: &[i32], b: &[i32]) -> i64 {
        match isa {
            Isa::Scalar => dot_body(a, b),
            // SAFETY: `Isa::Avx2` and `Isa::Avx512` come from `Isa::detect` or
            // `Isa::available`, which check these features at run time.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { x86::dot_avx2(a, b) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { x86::dot_avx512(a, b) },
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 | Isa::Avx512 => dot_body(a, b),
        }
    }

    pub(super) fn axpy(isa: Isa, acc: &mut [i64], p: i64, v: &[i32]) {
        match isa {
            Isa::Scalar => axpy_body(acc, p, v),
            // SAFETY: as in `dot`.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { x86::axpy_avx2(acc, p, v) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { x86::axpy_avx512(acc, p, v) },
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 | Isa::Avx512 => axpy_body(acc, p, v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::llm::exp::softmax_row_q30;
    use crate::ops::llm::testutil::{pool, rel_err};
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
