//! Fixed-point `exp` of non-positive arguments and the integer softmax built on it
//! (`docs/spec/ops.md` §5.4). `e^d = 2^(d log2 e)`: the power of two splits into an integer
//! shift and `2^-r` for `|r| <= 1/2`, which is `e^(-r ln 2)` by a degree-8 Taylor
//! polynomial in Horner form (truncation below `3e-10`), every step rounded as spelled out.
//! No tables in the definition, so the VM kernel needs only a few multiplies per element
//! (the native executor caches its values: [`super::tables`]).

use rayon::prelude::*;

use super::super::check::{bad, want, OpResult};
use super::super::dims::RowDims;
use super::blockdot::Isa;
use super::{prod, want_frac, want_len};
use crate::fixed::{round_shift_i128, round_shift_i64};
use crate::tensor::{DType, TensorSpec};

/// Fraction bits of `exp`'s result and of probabilities.
pub const EXP_FRAC: u32 = 30;

/// `round(log2(e) * 2^30)`.
pub const LOG2E_Q30: i64 = 1_549_082_005;

/// `round(ln(2) * 2^30)`.
pub const LN2_Q30: i64 = 744_261_118;

/// `round(2^30 / k!)` for `k = 0..=8`: the Taylor coefficients of `e^y`.
pub const EXP_TAYLOR_Q30: [i64; 9] =
    [1_073_741_824, 1_073_741_824, 536_870_912, 178_956_971, 44_739_243, 8_947_849, 1_491_308, 213_044, 26_631];

/// Beyond this many halvings the result rounds to zero (`2^30.5 / 2^32 < 1/2`).
const EXP_ZERO_SHIFT: i128 = 32;

/// `e^(d / 2^frac)` in Q30 for `d <= 0` (a positive `d` is treated as 0): with
/// `u = round(-d * LOG2E / 2^frac)` (Q30, the base-2 exponent), `n = floor((u + 2^29) / 2^30)`,
/// `r = u - n 2^30` in `[-2^29, 2^29)`, `y = -round(r * LN2 / 2^30)`,
/// `p = c0 + y(c1 + y(c2 + ... y c8))` with each product rounded by `round(y * acc / 2^30)`,
/// and the result `round(p / 2^n)` (0 for `n >= 32`). Rounding: ties away from zero.
/// The result lies in `0..=2^30` (`2^30` exactly at `d = 0`).
pub fn exp_q30(d: i64, frac: u32) -> i32 {
    let minus_d = d.min(0).unsigned_abs();
    if minus_d > EXP_I64_MAX_ARG || frac > 63 {
        return exp_q30_i128(d, frac);
    }
    // Every intermediate fits i64 (see `EXP_I64_MAX_ARG`): the same integers as the i128
    // transcription, several times faster.
    let u = round_shift_i64(minus_d as i64 * LOG2E_Q30, frac);
    let n = (u as u64 + (1 << 29)) >> 30;
    if n >= EXP_ZERO_SHIFT as u64 {
        return 0;
    }
    // Now `u < 2^35`: `|r| <= 2^29`, `|y| < 2^29`, and the Horner values stay below 2^31, so
    // every product is below 2^60.
    let r = u - ((n as i64) << 30);
    let y = -round_shift_i64(r * LN2_Q30, 30);
    let mut p = EXP_TAYLOR_Q30[8];
    for &c in EXP_TAYLOR_Q30[..8].iter().rev() {
        p = c + round_shift_i64(y * p, 30);
    }
    round_shift_i64(p, n as u32) as i32
}

/// The smallest `a >= 0` from which `exp_q30(-a', frac)` is 0 by the `n >= 32` rule for
/// every `a' >= a` (`u`, and so `n`, never decrease as `a` grows): the length of a table
/// of `exp_q30(-a, frac)` that needs nothing beyond it. `frac <= 58`.
pub fn exp_zero_from(frac: u32) -> u64 {
    assert!(frac <= 58, "exp_zero_from: frac {frac} above 58");
    // `n(a) >= 32` is `u(a) + 2^29 >= 2^35`.
    let zero = |a: u64| round_shift_i128(a as i128 * LOG2E_Q30 as i128, frac) + (1 << 29) >= EXP_ZERO_SHIFT << 30;
    // `u(2^(frac + 5)) > 2^35`: the answer lies below it.
    let (mut lo, mut hi) = (0u64, 1u64 << (frac + 5));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if zero(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

/// Largest `-d` whose `-d * LOG2E_Q30` fits i64 (about 2^32.5; every difference of two
/// i32 values is within it).
const EXP_I64_MAX_ARG: u64 = (i64::MAX / LOG2E_Q30) as u64;

/// [`exp_q30`] transcribed in i128, for arguments beyond [`EXP_I64_MAX_ARG`].
fn exp_q30_i128(d: i64, frac: u32) -> i32 {
    let u = round_shift_i128(-(d.min(0) as i128) * LOG2E_Q30 as i128, frac);
    let n = (u + (1 << 29)) >> 30;
    if n >= EXP_ZERO_SHIFT {
        return 0;
    }
    let r = u - (n << 30);
    let y = -round_shift_i128(r * LN2_Q30 as i128, 30);
    let mut p = EXP_TAYLOR_Q30[8] as i128;
    for &c in EXP_TAYLOR_Q30[..8].iter().rev() {
        p = c as i128 + round_shift_i128(y * p, 30);
    }
    round_shift_i128(p, n as u32) as i32
}

/// `out[i] = exp_q30(d[i], frac)` for every `i`, on `isa`: AVX-512 runs eight lanes a step
/// through the same integer steps (`x86::exp8`), the other sets the scalar function.
pub fn exp_q30_batch(isa: Isa, d: &[i64], frac: u32, out: &mut [i32]) {
    assert_eq!(d.len(), out.len(), "one output per argument");
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 && frac <= 63 {
        // SAFETY: `Isa::Avx512` only comes from `Isa::detect` / `Isa::available` on a CPU
        // with AVX-512 F and DQ.
        done = unsafe { x86::exp_q30_lanes(d, frac, out) };
    }
    let _ = isa;
    for (o, &v) in out[done..].iter_mut().zip(&d[done..]) {
        *o = exp_q30(v, frac);
    }
}

/// The AVX-512 `exp_q30` (its lane helpers are shared with SwiGLU, RMSNorm and RoPE).
#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    use super::{exp_q30, EXP_I64_MAX_ARG, EXP_TAYLOR_Q30, EXP_ZERO_SHIFT, LN2_Q30, LOG2E_Q30};
    use std::arch::x86_64::*;

    /// `round_shift_i64` of eight lanes by the same `s` in `1..=63`: `|v|` (no lane is
    /// `i64::MIN`), plus `2^(s-1)` and shifted as u64 (no carry out: `|v| <= 2^63`), then the
    /// sign put back.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(in crate::ops::llm) fn round_shift(v: __m512i, s: u32) -> __m512i {
        let half = _mm512_set1_epi64(1i64 << (s - 1));
        let q = _mm512_srl_epi64(_mm512_add_epi64(_mm512_abs_epi64(v), half), _mm_cvtsi32_si128(s as i32));
        let neg = _mm512_cmplt_epi64_mask(v, _mm512_setzero_si512());
        _mm512_mask_sub_epi64(q, neg, _mm512_setzero_si512(), q)
    }

    /// [`round_shift`] of eight lanes with `|v| + 2^(s-1) < 2^63`, in four steps: ties away
    /// from zero is `floor((v + 2^(s-1)) / 2^s)` for `v >= 0` and
    /// `ceil((v - 2^(s-1)) / 2^s) = floor((v + 2^(s-1) - 1) / 2^s)` for `v < 0`, so the
    /// sign (`v >> 63`, 0 or -1) is added before an arithmetic shift.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(in crate::ops::llm) fn round_shift_small(v: __m512i, s: u32) -> __m512i {
        let biased =
            _mm512_add_epi64(_mm512_add_epi64(v, _mm512_set1_epi64(1i64 << (s - 1))), _mm512_srai_epi64(v, 63));
        _mm512_sra_epi64(biased, _mm_cvtsi32_si128(s as i32))
    }

    /// `round_shift_i64` of eight lanes `0 <= v < 2^62` by per-lane `n` in `0..=63`
    /// (`2^(n-1)` is `(1 << n) >> 1`, 0 for `n = 0`): adding half and a logical shift.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn round_shift_by(v: __m512i, n: __m512i) -> __m512i {
        let half = _mm512_srli_epi64(_mm512_sllv_epi64(_mm512_set1_epi64(1), n), 1);
        _mm512_srlv_epi64(_mm512_add_epi64(v, half), n)
    }

    /// `exp_q30` of eight arguments, each with `-d <= EXP_I64_MAX_ARG`, `frac <= 63`: the
    /// i64 steps of the scalar function lane by lane (`vpmullq` gives the exact products,
    /// all below 2^63 as argued there; `vpmuldq`, i32 by i32, those of `r` and the Horner
    /// steps, whose factors `|r| <= 2^29`, `|y| < 2^29` and `0 < p < 2^31` fit i32 in every
    /// lane, products below 2^61 rounded by [`round_shift_small`]). The last `p` is
    /// positive (`2^30 e^y` for `|y| <= ln2 / 2`, to a few units), so its shift by `n`
    /// needs no sign. Lanes with `n >= 32` compute garbage (`r`, `y` and `p` stay in those
    /// bounds in every lane) that is replaced by 0, as the scalar function returns early.
    /// The results as i64 lanes.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(in crate::ops::llm) fn exp8_i64(d: __m512i, frac: u32) -> __m512i {
        let zero = _mm512_setzero_si512();
        let minus_d = _mm512_max_epi64(_mm512_sub_epi64(zero, d), zero);
        let prod = _mm512_mullo_epi64(minus_d, _mm512_set1_epi64(LOG2E_Q30));
        // `prod >= 0`: rounding it is adding half and a logical shift.
        exp8_of_product(prod, frac)
    }

    /// [`exp8_i64`] from `prod = -d * LOG2E_Q30` (`0 <= prod <= i64::MAX`): rounding it
    /// to `u` is adding half and a logical shift.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(in crate::ops::llm) fn exp8_of_product(prod: __m512i, frac: u32) -> __m512i {
        let zero = _mm512_setzero_si512();
        let u = if frac == 0 {
            prod
        } else {
            let half = _mm512_set1_epi64(1i64 << (frac - 1));
            _mm512_srl_epi64(_mm512_add_epi64(prod, half), _mm_cvtsi32_si128(frac as i32))
        };
        let n = _mm512_srli_epi64(_mm512_add_epi64(u, _mm512_set1_epi64(1 << 29)), 30);
        let is_zero = _mm512_cmpge_epu64_mask(n, _mm512_set1_epi64(EXP_ZERO_SHIFT as i64));
        let r = _mm512_sub_epi64(u, _mm512_slli_epi64(n, 30));
        let y = _mm512_sub_epi64(zero, round_shift_small(_mm512_mul_epi32(r, _mm512_set1_epi64(LN2_Q30)), 30));
        let mut p = _mm512_set1_epi64(EXP_TAYLOR_Q30[8]);
        for &c in EXP_TAYLOR_Q30[..8].iter().rev() {
            p = _mm512_add_epi64(_mm512_set1_epi64(c), round_shift_small(_mm512_mul_epi32(y, p), 30));
        }
        _mm512_mask_mov_epi64(round_shift_by(p, n), is_zero, zero)
    }

    /// [`exp8_i64`] narrowed to i32 (every result is in `0..=2^30`).
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn exp8(d: __m512i, frac: u32) -> __m256i {
        _mm512_cvtepi64_epi32(exp8_i64(d, frac))
    }

    /// [`exp8`] over the whole eights of `d` into `out`; a lane beyond `EXP_I64_MAX_ARG` (the
    /// scalar function's i128 path) is redone by the scalar function. Returns how many
    /// elements were written.
    ///
    /// # Safety
    /// AVX-512 F and DQ are available; `out.len() == d.len()`, `frac <= 63`.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) unsafe fn exp_q30_lanes(d: &[i64], frac: u32, out: &mut [i32]) -> usize {
        let whole = d.len() - d.len() % 8;
        let limit = _mm512_set1_epi64(-(EXP_I64_MAX_ARG as i64));
        for i in (0..whole).step_by(8) {
            // SAFETY: `i + 8 <= whole <= d.len() == out.len()`; loadu / storeu need no
            // alignment.
            unsafe {
                let v = _mm512_loadu_si512(d.as_ptr().add(i) as *const __m512i);
                _mm256_storeu_si256(out.as_mut_ptr().add(i) as *mut __m256i, exp8(v, frac));
                if _mm512_cmplt_epi64_mask(v, limit) != 0 {
                    for j in i..i + 8 {
                        out[j] = exp_q30(d[j], frac);
                    }
                }
            }
        }
        whole
    }
}

/// Softmax of one row of i32 values with `frac` fraction bits into Q30 probabilities:
/// `m = max`, `e_i = exp_q30(x_i - m)`, `S = sum e_i` (`>= 2^30`: the maximum's term),
/// `p_i = floor((2^31 e_i + S) / (2 S))` (round half up).
pub fn softmax_row_q30(x: &[i32], frac: u32, out: &mut [i32]) {
    softmax_row_q30_on(Isa::detect(), x, frac, out, &mut Vec::new());
}

/// [`softmax_row_q30`] on `isa` ([`exp_q30_batch`]), with `diffs` a scratch buffer.
pub fn softmax_row_q30_on(isa: Isa, x: &[i32], frac: u32, out: &mut [i32], diffs: &mut Vec<i64>) {
    let Some(&m) = x.iter().max() else { return };
    let n = x.len().min(out.len());
    diffs.clear();
    diffs.extend(x[..n].iter().map(|&v| v as i64 - m as i64));
    exp_q30_batch(isa, diffs, frac, &mut out[..n]);
    let s: i64 = out.iter().map(|&e| e as i64).sum();
    for o in out.iter_mut() {
        *o = (((*o as i64) << 31) + s).div_euclid(2 * s) as i32;
    }
}

/// The rule of the wide softmax: i32 `[.., n]` (rank >= 1) -> i32 Q30 of the same shape;
/// `frac <= 31`.
pub fn softmax_wide_rule(x: &TensorSpec, frac: u32) -> OpResult<TensorSpec> {
    want(x, DType::I32, "input")?;
    if x.shape.is_empty() || frac > 31 {
        return Err(bad("input must have rank >= 1 and frac <= 31"));
    }
    Ok(x.clone())
}

/// Softmax over the last axis of i32 fixed-point values (`frac` fraction bits) into Q30
/// probabilities, rows in parallel.
pub fn softmax_wide(x: &[i32], rows: RowDims, frac: u32) -> OpResult<Vec<i32>> {
    want_frac(frac)?;
    want_len("input", x.len(), prod(&[rows.rows, rows.len])?)?;
    let mut out = vec![0i32; x.len()];
    if rows.len == 0 {
        return Ok(out);
    }
    let isa = Isa::detect();
    out.par_chunks_mut(rows.len)
        .zip(x.par_chunks(rows.len))
        .for_each_init(Vec::new, |diffs, (o, r)| softmax_row_q30_on(isa, r, frac, o, diffs));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::llm::testutil::pool;
    use proptest::prelude::*;

    #[test]
    fn constants_are_their_definitions() {
        let q30 = |v: f64| (v * 2f64.powi(30)).round() as i64;
        assert_eq!(LOG2E_Q30, q30(std::f64::consts::LOG2_E));
        assert_eq!(LN2_Q30, q30(std::f64::consts::LN_2));
        let mut fact = 1.0;
        for (k, &c) in EXP_TAYLOR_Q30.iter().enumerate() {
            fact *= k.max(1) as f64;
            assert_eq!(c, q30(1.0 / fact), "k = {k}");
        }
    }

    /// The batch of every ISA equals the scalar function, on arguments at every branch and
    /// bound: positive, zero, the last nonzero shifts, `EXP_I64_MAX_ARG` and past it.
    fn check_batch(d: &[i64], frac: u32) {
        let want: Vec<i32> = d.iter().map(|&v| exp_q30(v, frac)).collect();
        for isa in Isa::available_noting_skips() {
            let mut got = vec![-1; d.len()];
            exp_q30_batch(isa, d, frac, &mut got);
            assert_eq!(got, want, "{isa:?}, frac {frac}");
        }
    }

    #[test]
    fn batch_equals_the_scalar_exp_at_the_edges() {
        let m = EXP_I64_MAX_ARG as i64;
        let mut d = vec![0, 1, -1, 5, i64::MAX, i64::MIN, -m, -m - 1, -m + 1, -(1 << 31), -(1 << 32)];
        for frac in [0u32, 1, 14, 16, 30, 31, 40, 63, 64, 70] {
            // Around the shifts where the result reaches 0 (n = 31, 32).
            for n in [30i64, 31, 32, 33] {
                let at = ((n << 30) as i128 * (1i128 << frac.min(63)) / LOG2E_Q30 as i128).min(m as i128) as i64;
                d.extend([-at, -at - 1, -at + 1]);
            }
        }
        for frac in [0u32, 1, 14, 16, 30, 31, 40, 63, 64, 70] {
            for len in [0, 3, 8, 19, d.len()] {
                check_batch(&d[..len.min(d.len())], frac);
            }
        }
    }

    #[test]
    fn hand_values() {
        assert_eq!(exp_q30(0, 16), 1 << 30);
        assert_eq!(exp_q30(5, 16), 1 << 30);
        // e^-ln2 = 1/2: d = -ln2 in Q30 gives u = round(LN2 * LOG2E / 2^30) = 2^30 (n = 1,
        // r = 0, p = 2^30) -> 2^29.
        assert_eq!(exp_q30(-LN2_Q30, 30), 1 << 29);
        assert_eq!(exp_q30(-(40 << 16), 16), 0);
        assert_eq!(exp_q30(i64::MIN / 4, 16), 0);
        // Two equal values share the probability; the order of a row does not matter.
        let mut o = [0; 3];
        softmax_row_q30(&[7, 7, i32::MIN], 16, &mut o);
        assert_eq!(o, [1 << 29, 1 << 29, 0]);
    }

    /// The i64 fast path gives the i128 transcription's integers: at the edges of its
    /// domain, around every power of two and on random arguments of every magnitude.
    #[test]
    fn the_i64_path_equals_the_i128_transcription() {
        let edge = EXP_I64_MAX_ARG as i64;
        let mut ds = vec![0, -1, -edge, -edge + 1, -edge - 1, i64::MIN, i64::MIN + 1, -(1 << 32) + 1];
        for b in 0..63 {
            ds.extend([-(1i64 << b), -(1i64 << b) + 1, -(1i64 << b) - 1]);
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ds.push(-((x >> (x % 63)) as i64 & i64::MAX));
        }
        for frac in [0, 1, 8, 14, 16, 20, 30, 31, 40, 62, 63, 64, 100] {
            for &d in &ds {
                assert_eq!(exp_q30(d, frac), exp_q30_i128(d, frac), "d {d}, frac {frac}");
            }
        }
    }

    #[test]
    fn exp_error_is_below_two_units_everywhere_on_a_fine_grid() {
        let mut worst: f64 = 0.0;
        for d in (0..(24 << 16)).step_by(7) {
            let got = exp_q30(-d, 16) as f64;
            let want = (-(d as f64) / 65536.0).exp() * 2f64.powi(30);
            worst = worst.max((got - want).abs());
        }
        eprintln!("exp_q30: worst absolute error {worst:.3} units of 2^-30");
        assert!(worst <= 2.0);
    }

    #[test]
    fn softmax_rows_are_bit_exact_for_any_thread_count() {
        let x: Vec<i32> = (0..40 * 37).map(|i: i32| i.wrapping_mul(2_654_435_761u32 as i32) >> 10).collect();
        let d = RowDims { rows: 40, len: 37 };
        assert_eq!(
            pool(1).install(|| softmax_wide(&x, d, 16).unwrap()),
            pool(4).install(|| softmax_wide(&x, d, 16).unwrap())
        );
    }

    proptest! {
        #[test]
        fn batch_equals_the_scalar_exp(
            d in prop::collection::vec(any::<i64>(), 0..40),
            near in prop::collection::vec(-(1i64 << 40)..=0, 0..40),
            frac in 0u32..=70,
        ) {
            check_batch(&d, frac);
            check_batch(&near, frac);
        }

        /// Probabilities are within `3 * 2^-30 + 1e-8 p` of the f64 softmax: the exp
        /// error (below 2 units of 2^-30 absolute, relative 1e-8) carried through the
        /// division, and the final rounding. Inputs are exact in f64.
        #[test]
        fn softmax_is_close_to_f64(x in prop::collection::vec(-(1i32 << 22)..1 << 22, 1..64), frac in 12u32..=20) {
            let mut got = vec![0; x.len()];
            softmax_row_q30(&x, frac, &mut got);
            let m = *x.iter().max().unwrap() as f64;
            let e: Vec<f64> = x.iter().map(|&v| ((v as f64 - m) / 2f64.powi(frac as i32)).exp()).collect();
            let s: f64 = e.iter().sum();
            for (&g, &ei) in got.iter().zip(&e) {
                let want = ei / s * 2f64.powi(30);
                prop_assert!((g as f64 - want).abs() <= 3.0 + want * 1e-8 * x.len() as f64, "{} vs {}", g, want);
            }
        }
    }
}
