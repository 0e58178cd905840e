//! RMSNorm on the wide residual stream (`docs/spec/ops.md` §5.3): i32 fixed point in,
//! i32 fixed point out, with an exact integer inverse square root. Unlike the int8
//! `rmsnorm` op (tag 14), the output stays wide: the linears after it quantize it per
//! block of 32 themselves.

use rayon::prelude::*;

use super::super::check::{bad, want, OpResult};
use super::super::dims::RowDims;
use super::blockdot::Isa;
use super::{prod, want_len};
use crate::fixed::{isqrt_u128, round_shift_i128, sat_i32};
use crate::tensor::{DType, TensorSpec};

/// Fraction bits of the inverse RMS.
pub const INV_FRAC: u32 = 30;

/// Longest row (keeps every product in i128: see [`rmsnorm_wide`]).
pub const RMS_MAX_LEN: usize = 1 << 20;

/// Parameters of the wide RMSNorm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RmsParams {
    /// Fraction bits of the input (0..=31).
    pub frac: u32,
    /// Fraction bits of the output (at most `frac + 30 + gamma_exp`).
    pub out_frac: u32,
    /// Fraction bits of `gamma` (0..=62).
    pub gamma_exp: u32,
    /// Epsilon in units of `2^-2frac` (the mean square's units), `>= 0`.
    pub eps: i64,
}

impl RmsParams {
    /// The right shift of the output stage: `frac + 30 + gamma_exp - out_frac`.
    fn shift(&self) -> u32 {
        self.frac + INV_FRAC + self.gamma_exp - self.out_frac
    }
}

/// The rule: i32 `[.., n]` (n in 1..=2^20) with i32 `gamma [n]` and valid parameters ->
/// i32 of the same shape.
pub fn rmsnorm_wide_rule(x: &TensorSpec, gamma: &TensorSpec, p: &RmsParams) -> OpResult<TensorSpec> {
    want(x, DType::I32, "input")?;
    want(gamma, DType::I32, "gamma")?;
    let n = match x.shape.last() {
        Some(&n) if (1..=RMS_MAX_LEN).contains(&n) => n,
        _ => return Err(bad(format!("last dim of {:?} must be in 1..=2^20", x.shape))),
    };
    if gamma.shape != [n] {
        return Err(bad(format!("gamma shape {:?}, want [{n}]", gamma.shape)));
    }
    p.check()?;
    Ok(x.clone())
}

impl RmsParams {
    /// The parameter ranges of the spec.
    fn check(&self) -> OpResult<()> {
        let p = self;
        if p.frac > 31 || p.gamma_exp > 62 || p.eps < 0 || p.out_frac > p.frac + INV_FRAC + p.gamma_exp {
            return Err(bad("frac <= 31, gamma_exp <= 62, eps >= 0, out_frac <= frac + 30 + gamma_exp"));
        }
        Ok(())
    }
}

/// `floor(2^(frac + 30) / sqrt(v))` exactly, as `isqrt(floor(2^(2 frac + 60) / v))`
/// (`floor(sqrt(floor(y))) = floor(sqrt(y))`), and 0 for `v = 0`.
pub fn inv_rms(v: u128, frac: u32) -> u128 {
    if v == 0 {
        return 0;
    }
    isqrt_fast((1u128 << (2 * frac + 2 * INV_FRAC)) / v)
}

/// `isqrt_u128(y)`, the bit-by-bit root, in u64 when `y < 2^64` (a row whose mean square
/// is above `2^(2 frac - 4)`, as in a model's residual stream) and without branches: each
/// of the 32 steps keeps `res` (the root so far, scaled) and the remainder as
/// `isqrt_u128` does, choosing by a mask instead of an `if`.
fn isqrt_fast(y: u128) -> u128 {
    let Ok(y) = u64::try_from(y) else { return isqrt_u128(y) };
    let (mut rem, mut res) = (y, 0u64);
    let mut bit = 1u64 << 62;
    while bit != 0 {
        let t = res + bit;
        // All ones when `rem >= t` (then `rem -= t`, `res = res / 2 + bit`), else zero.
        let take = 0u64.wrapping_sub((rem >= t) as u64);
        rem -= t & take;
        res = (res >> 1) + (bit & take);
        bit >>= 2;
    }
    res as u128
}

/// Per row: `Q = sum x_i^2`, `v = floor(Q / n) + eps`, `INV = inv_rms(v)`,
/// `y_i = sat32(round(x_i * INV * gamma_i / 2^(frac + 30 + gamma_exp - out_frac)))`.
///
/// Exact in i128: `|x_i| <= sqrt(Q)` so `|x_i| * INV <= sqrt(2n) * 2^(frac+30) <= 2^72`,
/// times `|gamma| <= 2^31`.
pub fn rmsnorm_wide(x: &[i32], gamma: &[i32], rows: RowDims, p: &RmsParams) -> OpResult<Vec<i32>> {
    rmsnorm_wide_on(Isa::detect(), x, gamma, rows, p)
}

/// [`rmsnorm_wide`] on `isa`. The same integers on every set, computed as
/// `(x_i gamma_i) * INV`: `|x_i gamma_i| <= 2^62` and `INV <= 2^(frac + 30) <= 2^61` (as
/// `v >= 1`) both fit i64, so the product is one 64-by-64-bit multiply into 128 bits
/// (scalar), or four 32-by-32-bit ones per lane (AVX-512, `x86::scale8`); `Q` is summed
/// as two u64 halves (`x^2 < 2^63`, at most 2^20 of them).
pub fn rmsnorm_wide_on(isa: Isa, x: &[i32], gamma: &[i32], rows: RowDims, p: &RmsParams) -> OpResult<Vec<i32>> {
    p.check()?;
    want_len("input", x.len(), prod(&[rows.rows, rows.len])?)?;
    want_len("gamma", gamma.len(), rows.len)?;
    if rows.len > RMS_MAX_LEN {
        return Err(bad(format!("row length {} above 2^20", rows.len)));
    }
    let mut out = vec![0i32; x.len()];
    if rows.len == 0 {
        return Ok(out);
    }
    out.par_chunks_mut(rows.len).zip(x.par_chunks(rows.len)).for_each(|(o, row)| {
        let inv = inv_rms(sum_squares(isa, row) / rows.len as u128 + p.eps as u128, p.frac);
        // `inv <= 2^(frac + 30) <= 2^61`: `v >= 1` whenever it is nonzero.
        scale_row(isa, row, gamma, inv as i64, p.shift(), o);
    });
    Ok(out)
}

/// `sum x_i^2` exactly: each `x_i^2 < 2^63` split into its high and low 32 bits, summed
/// apart (at most 2^20 terms of below 2^32 each: no overflow), then joined.
fn sum_squares(isa: Isa, row: &[i32]) -> u128 {
    let (mut hi, mut lo, mut done) = (0u64, 0u64, 0);
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 {
        // SAFETY: `Isa::Avx512` only comes from `Isa::detect` / `Isa::available` on a CPU
        // with AVX-512 F; `row.len() <= 2^20`.
        (hi, lo, done) = unsafe { x86::sum_squares_lanes(row) };
    }
    let _ = isa;
    for &v in &row[done..] {
        let sq = v.unsigned_abs() as u64 * v.unsigned_abs() as u64;
        hi += sq >> 32;
        lo += sq & 0xffff_ffff;
    }
    ((hi as u128) << 32) + lo as u128
}

/// `o_i = sat32(round(x_i * gamma_i * inv / 2^s))` for `inv` in `0..=2^61`, `s <= 123`.
fn scale_row(isa: Isa, row: &[i32], gamma: &[i32], inv: i64, s: u32, o: &mut [i32]) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 {
        // SAFETY: `Isa::Avx512` only comes from `Isa::detect` / `Isa::available` on a CPU
        // with AVX-512 F; `inv` and `s` are in range, the slices one length.
        done = unsafe { x86::scale_lanes(row, gamma, inv, s, o) };
    }
    let _ = isa;
    for ((ov, &v), &g) in o[done..].iter_mut().zip(&row[done..]).zip(&gamma[done..]) {
        // `|x g| <= 2^62`, `inv <= 2^61`: one widening multiply.
        *ov = sat_i32(round_shift_i128((v as i64 * g as i64) as i128 * inv as i128, s));
    }
}

/// The AVX-512 output stage of RMSNorm.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// `sat32(round(a * inv / 2^s))` of eight lanes, with `a = x g` (`vpmuldq`, exact),
    /// `inv` in `0..=2^61` as its 32-bit halves `ih < 2^29`, `il`, and `s <= 123`. The
    /// magnitude `m = |a| <= 2^62` (halves `mh <= 2^30`, `ml`) times `inv` is the 128-bit
    /// `hi 2^64 + lo` of `mh ih 2^64 + (mh il + ml ih) 2^32 + ml il` (each partial product
    /// by `vpmuludq`; the middle sum is below 2^63, `hi` below 2^60); then half of `2^s`
    /// is added with its carry, the pair shifted right by `s`, the magnitude clamped to
    /// 2^31 (or 2^31 - 1 for a positive result) and the sign put back.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn scale8(x: __m256i, g: __m256i, ih: __m512i, il: __m512i, s: u32) -> __m256i {
        let zero = _mm512_setzero_si512();
        let one = _mm512_set1_epi64(1);
        let a = _mm512_mul_epi32(_mm512_cvtepi32_epi64(x), _mm512_cvtepi32_epi64(g));
        let neg = _mm512_cmplt_epi64_mask(a, zero);
        let m = _mm512_abs_epi64(a);
        let mh = _mm512_srli_epi64(m, 32);
        let lo0 = _mm512_mul_epu32(m, il);
        let mid = _mm512_add_epi64(_mm512_mul_epu32(mh, il), _mm512_mul_epu32(m, ih));
        let mut lo = _mm512_add_epi64(lo0, _mm512_slli_epi64(mid, 32));
        let mut hi = _mm512_add_epi64(_mm512_mul_epu32(mh, ih), _mm512_srli_epi64(mid, 32));
        hi = _mm512_mask_add_epi64(hi, _mm512_cmplt_epu64_mask(lo, lo0), hi, one);
        let q = if s == 0 {
            lo
        } else if s <= 64 {
            let lo2 = _mm512_add_epi64(lo, _mm512_set1_epi64((1u64 << (s - 1)) as i64));
            hi = _mm512_mask_add_epi64(hi, _mm512_cmplt_epu64_mask(lo2, lo), hi, one);
            lo = lo2;
            let sl = _mm_cvtsi32_si128(s as i32);
            // A shift count of 64 gives 0 (`s = 64`: the low word is gone).
            _mm512_or_si512(_mm512_srl_epi64(lo, sl), _mm512_sll_epi64(hi, _mm_cvtsi32_si128(64 - s as i32)))
        } else {
            hi = _mm512_add_epi64(hi, _mm512_set1_epi64(1i64 << (s - 65)));
            _mm512_srl_epi64(hi, _mm_cvtsi32_si128(s as i32 - 64))
        };
        // The quotient's bits above the low word (`hi >> s`) exist only for `s < 64`.
        let big = if s < 64 {
            _mm512_test_epi64_mask(_mm512_srl_epi64(hi, _mm_cvtsi32_si128(s as i32)), _mm512_set1_epi64(-1))
        } else {
            0
        };
        let lim = _mm512_set1_epi64(1 << 31);
        let mag = _mm512_mask_mov_epi64(_mm512_min_epu64(q, lim), big, lim);
        let pos = _mm512_min_epu64(mag, _mm512_set1_epi64((1 << 31) - 1));
        _mm512_cvtepi64_epi32(_mm512_mask_sub_epi64(pos, neg, zero, mag))
    }

    /// The halves `(sum (x^2 >> 32), sum (x^2 mod 2^32))` over the whole sixteens of `row`
    /// and how many elements they cover: `|x|` as u32 (`vpabsd`), the squares of the even
    /// and the odd elements by `vpmuludq`, split and summed per lane (at most 2^17 terms
    /// a lane), then across the lanes.
    ///
    /// # Safety
    /// AVX-512 F is available; `row.len() <= 2^20`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn sum_squares_lanes(row: &[i32]) -> (u64, u64, usize) {
        let whole = row.len() - row.len() % 16;
        let low = _mm512_set1_epi64(0xffff_ffff);
        let (mut hi, mut lo) = (_mm512_setzero_si512(), _mm512_setzero_si512());
        for i in (0..whole).step_by(16) {
            // SAFETY: `i + 16 <= whole <= row.len()`; loadu needs no alignment.
            let a = _mm512_abs_epi32(unsafe { _mm512_loadu_si512(row.as_ptr().add(i) as *const __m512i) });
            for sq in [_mm512_mul_epu32(a, a), _mm512_mul_epu32(_mm512_srli_epi64(a, 32), _mm512_srli_epi64(a, 32))] {
                hi = _mm512_add_epi64(hi, _mm512_srli_epi64(sq, 32));
                lo = _mm512_add_epi64(lo, _mm512_and_si512(sq, low));
            }
        }
        (_mm512_reduce_add_epi64(hi) as u64, _mm512_reduce_add_epi64(lo) as u64, whole)
    }

    /// [`scale8`] over the whole eights of `row`; returns how many elements were written.
    ///
    /// # Safety
    /// AVX-512 F is available; `row`, `gamma` and `o` have one length; `0 <= inv <= 2^61`,
    /// `s <= 123`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn scale_lanes(row: &[i32], gamma: &[i32], inv: i64, s: u32, o: &mut [i32]) -> usize {
        let whole = o.len() - o.len() % 8;
        let (ih, il) = (_mm512_set1_epi64(inv >> 32), _mm512_set1_epi64(inv & 0xffff_ffff));
        for i in (0..whole).step_by(8) {
            // SAFETY: `i + 8 <= whole <= len` of all three; loadu / storeu need no alignment.
            unsafe {
                let x = _mm256_loadu_si256(row.as_ptr().add(i) as *const __m256i);
                let g = _mm256_loadu_si256(gamma.as_ptr().add(i) as *const __m256i);
                _mm256_storeu_si256(o.as_mut_ptr().add(i) as *mut __m256i, scale8(x, g, ih, il, s));
            }
        }
        whole
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::llm::testutil::{cpu_seconds_per_call, pool, rel_err};
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn f64_rmsnorm(x: &[i32], gamma: &[i32], n: usize, p: &RmsParams) -> Vec<f64> {
        let (fx, fo) = (2f64.powi(p.frac as i32), 2f64.powi(p.out_frac as i32));
        let eps = p.eps as f64 / (fx * fx);
        x.chunks(n)
            .flat_map(|row| {
                let ms = row.iter().map(|&v| (v as f64 / fx).powi(2)).sum::<f64>() / n as f64;
                let inv = 1.0 / (ms + eps).sqrt();
                row.iter()
                    .zip(gamma)
                    .map(move |(&v, &g)| v as f64 / fx * inv * g as f64 / 2f64.powi(p.gamma_exp as i32) * fo)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn a_hand_derived_row() {
        // x = (3, 4) with 16 fraction bits, gamma = (1, 2) with exponent 0, no epsilon:
        // mean square 12.5, INV = floor(2^30 / sqrt(12.5)) = 303700049.
        let p = RmsParams { frac: 16, out_frac: 16, gamma_exp: 0, eps: 0 };
        assert_eq!(inv_rms(25u128 << 31, 16), 303_700_049);
        let y = rmsnorm_wide(&[3 << 16, 4 << 16], &[1, 2], RowDims { rows: 1, len: 2 }, &p).unwrap();
        // 3 * 2^16 * 303700049 / 2^30 = 55609.07; 8 * 2^16 * 303700049 / 2^30 = 148290.86.
        assert_eq!(y, vec![55609, 148291]);
        // An all-zero row stays zero, with or without epsilon.
        let z = rmsnorm_wide(&[0, 0], &[1, 1], RowDims { rows: 1, len: 2 }, &p).unwrap();
        assert_eq!(z, vec![0, 0]);
        // The kernel checks its operands instead of panicking.
        let d = RowDims { rows: 1, len: 2 };
        assert!(rmsnorm_wide(&[0, 0], &[1], d, &p).is_err());
        assert!(rmsnorm_wide(&[0], &[1, 1], d, &p).is_err());
        assert!(rmsnorm_wide(&[0, 0], &[1, 1], d, &RmsParams { frac: 40, ..p }).is_err());
    }

    #[test]
    fn the_rule_checks_shapes_and_formats() {
        let s = |d, shape: &[usize]| TensorSpec::new(d, shape.to_vec());
        let p = RmsParams { frac: 16, out_frac: 16, gamma_exp: 30, eps: 42950 };
        let x = s(DType::I32, &[2, 576]);
        assert_eq!(rmsnorm_wide_rule(&x, &s(DType::I32, &[576]), &p).unwrap(), x);
        assert!(rmsnorm_wide_rule(&x, &s(DType::I32, &[575]), &p).is_err());
        assert!(rmsnorm_wide_rule(&s(DType::I8, &[2, 576]), &s(DType::I32, &[576]), &p).is_err());
        assert!(rmsnorm_wide_rule(&x, &s(DType::I32, &[576]), &RmsParams { frac: 32, ..p }).is_err());
        assert!(rmsnorm_wide_rule(&x, &s(DType::I32, &[576]), &RmsParams { out_frac: 77, ..p }).is_err());
    }

    #[test]
    fn rows_are_bit_exact_for_any_thread_count_and_close_to_f64() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (rows, n) = (7, 576);
        let x: Vec<i32> = (0..rows * n).map(|_| rng.gen_range(-(1 << 18)..1 << 18)).collect();
        let gamma: Vec<i32> = (0..n).map(|_| rng.gen_range(1 << 27..1 << 30)).collect();
        let p = RmsParams { frac: 16, out_frac: 16, gamma_exp: 30, eps: 42950 };
        let d = RowDims { rows, len: n };
        let one = pool(1).install(|| rmsnorm_wide(&x, &gamma, d, &p).unwrap());
        assert_eq!(one, pool(3).install(|| rmsnorm_wide(&x, &gamma, d, &p).unwrap()));
        let e = rel_err(&one, &f64_rmsnorm(&x, &gamma, n, &p));
        eprintln!("rmsnorm relative error {e:.2e}");
        assert!(e < 1e-4);
    }

    /// The spec's transcription in i128 (`u128` sum, `x * INV * gamma` in i128).
    fn spec_rmsnorm(x: &[i32], gamma: &[i32], n: usize, p: &RmsParams) -> Vec<i32> {
        x.chunks(n)
            .flat_map(|row| {
                let q: u128 = row.iter().map(|&v| (v as i128 * v as i128) as u128).sum();
                let inv = inv_rms(q / n as u128 + p.eps as u128, p.frac) as i128;
                row.iter()
                    .zip(gamma)
                    .map(move |(&v, &g)| sat_i32(round_shift_i128(v as i128 * inv * g as i128, p.shift())))
            })
            .collect()
    }

    /// Every ISA gives the spec's integers.
    fn check_isas(x: &[i32], gamma: &[i32], n: usize, p: &RmsParams) {
        let want = spec_rmsnorm(x, gamma, n, p);
        let d = RowDims { rows: x.len() / n, len: n };
        for isa in Isa::available_noting_skips() {
            assert_eq!(rmsnorm_wide_on(isa, x, gamma, d, p).unwrap(), want, "{isa:?}, {p:?}");
        }
    }

    /// The output stage alone, for any `inv` in `0..=2^61` and shift in `0..=123` (more than
    /// whole rows reach), against the i128 product.
    fn check_scale(x: &[i32], gamma: &[i32], inv: i64, s: u32) {
        let want: Vec<i32> = x
            .iter()
            .zip(gamma)
            .map(|(&v, &g)| sat_i32(round_shift_i128(v as i128 * g as i128 * inv as i128, s)))
            .collect();
        for isa in Isa::available_noting_skips() {
            let mut got = vec![0; x.len()];
            scale_row(isa, x, gamma, inv, s, &mut got);
            assert_eq!(got, want, "{isa:?}, inv {inv}, s {s}");
        }
    }

    /// The u64 square root equals the u128 one: at every power of two and its neighbours,
    /// at perfect squares and their neighbours (on both sides of 2^64, where the u128
    /// function takes over), and on random values of every size.
    #[test]
    fn isqrt_fast_equals_isqrt_u128() {
        let mut ys: Vec<u128> = vec![0, 1, 2, 3, 4, (1 << 64) - 1, 1 << 64, u128::MAX];
        for b in 0..124 {
            ys.extend([(1u128 << b) - 1, 1 << b, (1 << b) + 1]);
        }
        let small = (1u128..1 << 32).step_by((1 << 32) / 5000).chain([(1 << 32) - 1, 1 << 32, 3_037_000_499]);
        for r in (1u128..1 << 62).step_by((1 << 62) / 1000).chain([(1 << 62) - 1, 1 << 62]).chain(small) {
            ys.extend([r * r - 1, r * r, r * r + 1, r * r + 2 * r, (r + 1) * (r + 1) - 1]);
        }
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let y = ((x as u128) << 64 | x.rotate_left(17) as u128) >> (x % 128);
            ys.push(y);
        }
        for y in ys {
            assert_eq!(isqrt_fast(y), isqrt_u128(y), "y {y}");
        }
    }

    /// The sum of squares on every ISA equals the u128 sum, up to the longest row.
    #[test]
    fn sum_squares_is_exact() {
        let rows: [Vec<i32>; 4] = [
            vec![i32::MIN; RMS_MAX_LEN],
            (0..RMS_MAX_LEN as i32).map(|i| if i % 3 == 0 { i32::MAX } else { i32::MIN + (i % 7) }).collect(),
            (0..1000).map(|i: i32| i.wrapping_mul(-1_640_531_535)).collect(),
            (0..37).collect(),
        ];
        for row in &rows {
            let want: u128 = row.iter().map(|&v| (v as i128 * v as i128) as u128).sum();
            for isa in Isa::available_noting_skips() {
                for len in [0, 1, 15, 16, 17, row.len()] {
                    let want = if len == row.len() {
                        want
                    } else {
                        row[..len].iter().map(|&v| (v as i128 * v as i128) as u128).sum()
                    };
                    assert_eq!(sum_squares(isa, &row[..len]), want, "{isa:?}, len {len}");
                }
            }
        }
    }

    #[test]
    fn every_isa_equals_the_spec_at_the_extremes() {
        let ext = [i32::MIN, i32::MIN + 1, -(1 << 30), -65536, -1, 0, 1, 65536, 1 << 30, i32::MAX];
        let (x, g): (Vec<i32>, Vec<i32>) = ext.iter().flat_map(|&a| ext.iter().map(move |&b| (a, b))).unzip();
        let invs = [0, 1, 2, (1 << 32) - 1, 1 << 32, (1 << 32) + 1, 303_700_049, (1 << 61) - 1, 1 << 61];
        for &inv in &invs {
            for s in 0..=123 {
                check_scale(&x, &g, inv, s);
            }
        }
        // Whole rows: one extreme row (ragged length), a tiny one (INV at its largest).
        for frac in [0, 16, 31] {
            for gamma_exp in [0, 30, 62] {
                for out_frac in [0, 16, frac + gamma_exp, frac + 30 + gamma_exp] {
                    for eps in [0, 1, 42950] {
                        let p = RmsParams { frac, out_frac, gamma_exp, eps };
                        check_isas(&x, &g, x.len(), &p);
                        check_isas(&x[..27], &g[..9], 9, &p);
                        check_isas(
                            &[0, 1, 0, -1, 0, 0, 0, 0, 0, 0],
                            &[i32::MAX, i32::MIN, 7, -7, 1, 1, 1, 1, 1, 1],
                            10,
                            &p,
                        );
                    }
                }
            }
        }
    }

    proptest! {
        #[test]
        fn every_isa_equals_the_spec(
            seed in any::<u64>(), n in 1usize..40, rows in 1usize..4, mag in 0u32..32, frac in 0u32..=31,
            gamma_exp in 0u32..=62, drop in 0u32..=123, eps in 0i64..1 << 40,
        ) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let x: Vec<i32> = (0..n * rows).map(|_| rng.gen_range(-(1i64 << mag)..1i64 << mag) as i32).collect();
            let gamma: Vec<i32> = (0..n).map(|_| rng.gen()).collect();
            let out_frac = (frac + 30 + gamma_exp).saturating_sub(drop);
            check_isas(&x, &gamma, n, &RmsParams { frac, out_frac, gamma_exp, eps });
        }

        #[test]
        fn the_output_stage_equals_the_i128_product(
            xg in prop::collection::vec((any::<i32>(), any::<i32>()), 0..40), inv in 0i64..=1 << 61, s in 0u32..=123,
        ) {
            let (x, g): (Vec<i32>, Vec<i32>) = xg.into_iter().unzip();
            check_scale(&x, &g, inv, s);
            check_scale(&x, &g, inv >> (s % 61), s);
        }
    }

    /// CPU time of decode- and prompt-sized norms per ISA (`cargo test -p opml-dnn
    /// --release --lib throughput -- --ignored --nocapture`): a measurement, not a check.
    #[test]
    #[ignore]
    fn throughput() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let n = 576;
        let gamma: Vec<i32> = (0..n).map(|_| rng.gen_range(1 << 27..1 << 30)).collect();
        let p = RmsParams { frac: 16, out_frac: 16, gamma_exp: 30, eps: 42950 };
        // 193 rows: a decode-sized call takes the next row each time (new data, as in a
        // model, so that no branch predictor learns one row).
        let total = 193 * n;
        let all: Vec<i32> = (0..total).map(|_| rng.gen_range(-(1 << 18)..1 << 18)).collect();
        for rows in [1, 193] {
            let d = RowDims { rows, len: n };
            let reps = 4000 / rows;
            let next = AtomicUsize::new(0);
            let x = || {
                let at = next.fetch_add(rows * n, Ordering::Relaxed) % total;
                &all[at..at + rows * n]
            };
            let s = cpu_seconds_per_call(reps, || drop(std::hint::black_box(spec_rmsnorm(x(), &gamma, n, &p))));
            eprintln!("rmsnorm {rows}x{n} i128 spec: {:.2} us, {:.2} ns/element", s * 1e6, s * 1e9 / (rows * n) as f64);
            for isa in Isa::available() {
                let s =
                    cpu_seconds_per_call(reps, || drop(std::hint::black_box(rmsnorm_wide_on(isa, x(), &gamma, d, &p))));
                eprintln!(
                    "rmsnorm {rows}x{n} {isa:?}: {:.2} us, {:.2} ns/element",
                    s * 1e6,
                    s * 1e9 / (rows * n) as f64
                );
            }
        }
    }

    proptest! {
        /// Each output is within one unit (the output rounding) plus a relative error of
        /// `1/(2v)` (the floor of the mean square `v`, halved by the square root) and
        /// `1/INV` (the floor of the inverse) of the f64 value.
        #[test]
        fn close_to_f64(
            seed in any::<u64>(), n in 1usize..80, mag in 4u32..31, frac in 8u32..=24, eps in 0i64..1000,
        ) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let x: Vec<i32> = (0..n).map(|_| rng.gen_range(-(1i64 << mag)..1i64 << mag) as i32).collect();
            let gamma: Vec<i32> = (0..n).map(|_| rng.gen_range(-(1 << 30)..=1 << 30)).collect();
            let p = RmsParams { frac, out_frac: 16, gamma_exp: 30, eps };
            let got = rmsnorm_wide(&x, &gamma, RowDims { rows: 1, len: n }, &p).unwrap();
            let q: u128 = x.iter().map(|&v| (v as i128 * v as i128) as u128).sum();
            let v = q / n as u128 + eps as u128;
            let rel = if v == 0 { 0.0 } else { 0.5 / v as f64 + 1.0 / inv_rms(v, frac) as f64 + 1e-12 };
            for (&g, w) in got.iter().zip(f64_rmsnorm(&x, &gamma, n, &p)) {
                if v > 0 && w.abs() < i32::MAX as f64 {
                    prop_assert!((g as f64 - w).abs() <= 1.0 + w.abs() * rel, "{} vs {}", g, w);
                }
            }
        }
    }
}
