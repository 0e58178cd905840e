//! SiLU and the SwiGLU product on the wide stream (`docs/spec/ops.md` §5.5), with the
//! sigmoid built on [`exp_q30`]: `sigma(a) = 1 / (1 + e^-a)` for `a >= 0`, and
//! `sigma(-a) = 1 - sigma(a)`, so only non-positive exponents are ever taken.

use rayon::prelude::*;

use super::super::check::{same_shape, want, OpResult};
use super::blockdot::Isa;
use super::exp::{exp_q30, exp_q30_batch, EXP_FRAC};
use super::tables::SigmoidTable;
use super::{want_frac, want_len};
use crate::fixed::{round_shift_i64, sat_i32};
use crate::tensor::{DType, TensorSpec};

/// Most elements per parallel task.
const CHUNK: usize = 4096;

/// Fewest elements per parallel task, below which waking another thread costs more than
/// it saves.
const MIN_CHUNK: usize = 512;

/// Elements per task for `len` elements: a share of each pool thread (a decode step's
/// 1536 runs on two threads), whole eights (the vector steps), `MIN_CHUNK..=CHUNK`.
/// Each element is computed the same way whatever the split.
fn chunk_len(len: usize) -> usize {
    len.div_ceil(rayon::current_num_threads().max(1)).next_multiple_of(8).clamp(MIN_CHUNK, CHUNK)
}

/// `sigma(x / 2^frac)` in Q30: `e = exp_q30(-|x|)`, `s = floor((2^61 + 2^30 + e) / (2 (2^30 + e)))`
/// (`round(2^60 / (2^30 + e))`, half up), and `s` for `x >= 0`, `2^30 - s` otherwise.
pub fn sigmoid_q30(x: i32, frac: u32) -> i64 {
    sigmoid_from_exp(x, exp_q30(-(x as i64).abs(), frac))
}

/// [`sigmoid_q30`] given its `e = exp_q30(-|x|, frac)`.
#[inline]
fn sigmoid_from_exp(x: i32, e: i32) -> i64 {
    let e = e as i64;
    let den = (1i64 << EXP_FRAC) + e;
    let s = ((1i64 << 61) + den) / (2 * den);
    if x >= 0 {
        s
    } else {
        (1 << EXP_FRAC) - s
    }
}

/// `silu(x) = round(x * sigmoid_q30(x) / 2^30)`, in the input's format (`|silu(x)| <= |x|`,
/// so it never saturates).
pub fn silu_fx(x: i32, frac: u32) -> i32 {
    silu_from_exp(x, exp_q30(-(x as i64).abs(), frac))
}

/// [`silu_fx`] given its `e = exp_q30(-|x|, frac)`.
#[inline]
fn silu_from_exp(x: i32, e: i32) -> i32 {
    // `|x| * sigma <= 2^31 * 2^30`: exact in i64.
    round_shift_i64(x as i64 * sigmoid_from_exp(x, e), EXP_FRAC) as i32
}

/// Elements whose exponentials [`swiglu`] computes in one batch ([`exp_q30_batch`]).
const EXP_BATCH: usize = 256;

/// The rule of SwiGLU: two i32 operands of one shape -> i32 of that shape.
pub fn swiglu_rule(gate: &TensorSpec, up: &TensorSpec) -> OpResult<TensorSpec> {
    want(gate, DType::I32, "gate")?;
    want(up, DType::I32, "up")?;
    same_shape(gate, up)?;
    Ok(gate.clone())
}

/// SwiGLU of the FFN: `sat32(round(silu(g_i) * u_i / 2^frac))`, both operands and the
/// result with `frac` fraction bits.
pub fn swiglu(gate: &[i32], up: &[i32], frac: u32) -> OpResult<Vec<i32>> {
    swiglu_on(Isa::detect(), gate, up, frac)
}

/// [`swiglu`] on `isa`: by the cached [`SigmoidTable`] of `frac` where there is one
/// (`frac <= 15`), else [`swiglu_direct_on`].
pub fn swiglu_on(isa: Isa, gate: &[i32], up: &[i32], frac: u32) -> OpResult<Vec<i32>> {
    want_frac(frac)?;
    want_len("up", up.len(), gate.len())?;
    let Some(table) = SigmoidTable::cached(frac) else {
        return swiglu_direct_on(isa, gate, up, frac);
    };
    let mut out = vec![0i32; gate.len()];
    let chunk = chunk_len(gate.len());
    out.par_chunks_mut(chunk)
        .zip(gate.par_chunks(chunk).zip(up.par_chunks(chunk)))
        .for_each(|(o, (g, u))| table.swiglu_into(isa, g, u, o));
    Ok(out)
}

/// [`swiglu`] computed element by element on `isa` (no table): AVX-512 runs eight lanes a
/// step through the same integers (`x86::swiglu8`, the sigmoid's division exact by an
/// integer reciprocal and the remainder's correction), the other sets the scalar steps
/// with [`exp_q30_batch`].
pub fn swiglu_direct_on(isa: Isa, gate: &[i32], up: &[i32], frac: u32) -> OpResult<Vec<i32>> {
    want_frac(frac)?;
    want_len("up", up.len(), gate.len())?;
    let mut out = vec![0i32; gate.len()];
    let chunk = chunk_len(gate.len());
    out.par_chunks_mut(chunk).zip(gate.par_chunks(chunk).zip(up.par_chunks(chunk))).for_each(|(o, (g, u))| {
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if isa == Isa::Avx512 {
            // SAFETY: `Isa::Avx512` only comes from `Isa::detect` / `Isa::available` on a
            // CPU with AVX-512 F and DQ; the three slices have one length; `frac <= 31`.
            done = unsafe { x86::swiglu_lanes(g, u, frac, o) };
        }
        swiglu_scalar(isa, &g[done..], &u[done..], frac, &mut o[done..]);
    });
    Ok(out)
}

/// The portable SwiGLU of one task's elements, the exponentials in batches.
fn swiglu_scalar(isa: Isa, g: &[i32], u: &[i32], frac: u32, o: &mut [i32]) {
    let (mut d, mut e) = ([0i64; EXP_BATCH], [0i32; EXP_BATCH]);
    for ((o, g), u) in o.chunks_mut(EXP_BATCH).zip(g.chunks(EXP_BATCH)).zip(u.chunks(EXP_BATCH)) {
        let n = g.len();
        for (d, &gv) in d.iter_mut().zip(g) {
            *d = -(gv as i64).abs();
        }
        exp_q30_batch(isa, &d[..n], frac, &mut e[..n]);
        for (((ov, &gv), &uv), &ev) in o.iter_mut().zip(g).zip(u).zip(&e) {
            // `|silu(g) * u| <= 2^62`: exact in i64.
            *ov = sat_i32(round_shift_i64(silu_from_exp(gv, ev) as i64 * uv as i64, frac) as i128);
        }
    }
}

/// The AVX-512 SwiGLU.
#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    use super::super::exp::x86::{exp8_of_product, round_shift_small};
    use super::super::exp::LOG2E_Q30;
    use super::EXP_FRAC;
    use std::arch::x86_64::*;

    /// `round(48/17 2^31)` and `round(16/17 2^32)`: the line of the first reciprocal.
    const RECIP_K1: i64 = 6_063_483_241;
    const RECIP_K2: i64 = 4_042_322_161;

    /// `floor((2^61 + den) / (2 den))` of eight lanes with `den` in `2^30..=2^31` (the
    /// sigmoid's division), exactly and in integers only. An estimate `X` of `2^62 / den`
    /// (in `2^31..2^32`): the line `48/17 - 32/17 y` for `1/y`, `y = den / 2^31` (relative
    /// error below 1/17), then three Newton steps `X += X (2^62 - den X) / 2^62` (the
    /// error squared each time, the residual cut to 28 bits by `>> 30` so that every
    /// product is u32 by u32, `vpmuludq`), `X` kept below 2^32: a relative error near
    /// 2^-32 plus a few units of truncation. Then `q = X / 4` is within two of the
    /// quotient (within one for every `den`, in fact), and the exact remainder
    /// `r = N - q D` (`N = 2^61 + den`, `D = 2 den`, `q D = 2 (q den)`) corrects it:
    /// `r < 0` takes one off, `r >= D` adds one, twice. The domain is finite: an ignored
    /// test checks every `den` against `/` (run it after any change here).
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn sigmoid_quotient8(den: __m512i) -> __m512i {
        let below_2_32 = _mm512_set1_epi64((1 << 32) - 1);
        // `den * K2 < 2^64`; `(den * K2) >> 31 = 32/17 den`.
        let mut x = _mm512_sub_epi64(
            _mm512_set1_epi64(RECIP_K1),
            _mm512_srli_epi64(_mm512_mul_epu32(den, _mm512_set1_epi64(RECIP_K2)), 31),
        );
        x = _mm512_min_epu64(x, below_2_32);
        for _ in 0..3 {
            // `den X < 2^63`: the residual fits i64.
            let e = _mm512_sub_epi64(_mm512_set1_epi64(1 << 62), _mm512_mul_epu32(den, x));
            let es = _mm512_srai_epi64(e, 30);
            let delta = _mm512_srli_epi64(_mm512_mul_epu32(x, _mm512_abs_epi64(es)), 32);
            let neg = _mm512_cmplt_epi64_mask(es, _mm512_setzero_si512());
            x = _mm512_mask_sub_epi64(_mm512_add_epi64(x, delta), neg, x, delta);
            x = _mm512_min_epu64(x, below_2_32);
        }
        let n = _mm512_add_epi64(den, _mm512_set1_epi64(1 << 61));
        let d = _mm512_add_epi64(den, den);
        let mut q = _mm512_srli_epi64(x, 2);
        let mut r = _mm512_sub_epi64(n, _mm512_slli_epi64(_mm512_mul_epu32(q, den), 1));
        let one = _mm512_set1_epi64(1);
        for _ in 0..2 {
            let low = _mm512_cmplt_epi64_mask(r, _mm512_setzero_si512());
            q = _mm512_mask_sub_epi64(q, low, q, one);
            r = _mm512_mask_add_epi64(r, low, r, d);
            let high = _mm512_cmpge_epi64_mask(r, d);
            q = _mm512_mask_add_epi64(q, high, q, one);
            r = _mm512_mask_sub_epi64(r, high, r, d);
        }
        q
    }

    /// `sigmoid_q30` of eight lanes `x` (i32 values in i64 lanes, `frac <= 31`).
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn sigmoid8(x: __m512i, frac: u32) -> __m512i {
        let one = _mm512_set1_epi64(1 << EXP_FRAC);
        // `exp_q30(-|x|)`: `|x| <= 2^31` and `LOG2E_Q30 < 2^31` multiply as u32 (`vpmuludq`).
        let e = exp8_of_product(_mm512_mul_epu32(_mm512_abs_epi64(x), _mm512_set1_epi64(LOG2E_Q30)), frac);
        let s = sigmoid_quotient8(_mm512_add_epi64(one, e));
        _mm512_mask_sub_epi64(s, _mm512_cmplt_epi64_mask(x, _mm512_setzero_si512()), one, s)
    }

    /// [`sigmoid8`] of `start, start + 1, ...` into `out` (whole eights; `frac <= 31`,
    /// `start + out.len() <= 2^31`); returns how many were written.
    ///
    /// # Safety
    /// AVX-512 F and DQ are available.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(in crate::ops::llm) unsafe fn sigmoid_of_range(start: u32, frac: u32, out: &mut [i32]) -> usize {
        let whole = out.len() - out.len() % 8;
        let step = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
        for i in (0..whole).step_by(8) {
            let x = _mm512_add_epi64(_mm512_set1_epi64(start as i64 + i as i64), step);
            // SAFETY: `i + 8 <= whole <= out.len()`; storeu needs no alignment.
            unsafe { _mm256_storeu_si256(out.as_mut_ptr().add(i).cast(), _mm512_cvtepi64_epi32(sigmoid8(x, frac))) };
        }
        whole
    }

    /// SwiGLU of eight lanes (`frac <= 31`): the scalar steps, each product exact in i64
    /// (`|x| sigma <= 2^61`, `|silu| |u| <= 2^62`) and of two factors that fit i32
    /// (`vpmuldq`: `x`, `sigma <= 2^30`, `|silu| <= |x|`, `u`), saturated to i32 by
    /// `vpmovsqd`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq")]
    fn swiglu8(g: __m256i, u: __m256i, frac: u32) -> __m256i {
        let x = _mm512_cvtepi32_epi64(g);
        let silu = round_shift_small(_mm512_mul_epi32(x, sigmoid8(x, frac)), EXP_FRAC);
        let t = _mm512_mul_epi32(silu, _mm512_cvtepi32_epi64(u));
        let o = if frac == 0 { t } else { round_shift_small(t, frac) };
        _mm512_cvtsepi64_epi32(o)
    }

    /// [`swiglu8`] over the whole eights of `g`, `u` into `out`; returns how many elements
    /// were written.
    ///
    /// # Safety
    /// AVX-512 F and DQ are available; `g`, `u` and `out` have one length; `frac <= 31`.
    #[target_feature(enable = "avx512f,avx512dq")]
    pub(super) unsafe fn swiglu_lanes(g: &[i32], u: &[i32], frac: u32, out: &mut [i32]) -> usize {
        let whole = out.len() - out.len() % 8;
        for i in (0..whole).step_by(8) {
            // SAFETY: `i + 8 <= whole <= len` of all three; loadu / storeu need no alignment.
            unsafe {
                let gv = _mm256_loadu_si256(g.as_ptr().add(i) as *const __m256i);
                let uv = _mm256_loadu_si256(u.as_ptr().add(i) as *const __m256i);
                _mm256_storeu_si256(out.as_mut_ptr().add(i) as *mut __m256i, swiglu8(gv, uv, frac));
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

    fn silu_f64(x: f64) -> f64 {
        x / (1.0 + (-x).exp())
    }

    #[test]
    fn hand_values() {
        assert_eq!(sigmoid_q30(0, 16), 1 << 29);
        assert_eq!(silu_fx(0, 16), 0);
        // Far out the sigmoid is exactly 1 or 0: silu(x) = x, silu(-x) = 0.
        assert_eq!(silu_fx(100 << 16, 16), 100 << 16);
        assert_eq!(silu_fx(-(100 << 16), 16), 0);
        // silu(1) = 0.7310585786: 65536 * that = 47910.66 -> 47911.
        assert_eq!(silu_fx(1 << 16, 16), 47911);
        // swiglu(1, 2).unwrap() multiplies the rounded silu: 47911 * 2.
        assert_eq!(swiglu(&[1 << 16], &[2 << 16], 16).unwrap(), vec![95822]);
        assert!(swiglu(&[1], &[1, 2], 16).is_err());
        assert!(swiglu(&[1], &[1], 32).is_err());
        // Saturation: a huge gate times a huge up clamps.
        assert_eq!(swiglu(&[i32::MAX], &[i32::MAX], 0).unwrap(), vec![i32::MAX]);
    }

    #[test]
    fn swiglu_is_bit_exact_for_any_thread_count_and_close_to_f64() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let n = 3 * 1536 * 4;
        let g: Vec<i32> = (0..n).map(|_| rng.gen_range(-(6 << 16)..6 << 16)).collect();
        let u: Vec<i32> = (0..n).map(|_| rng.gen_range(-(4 << 16)..4 << 16)).collect();
        let one = pool(1).install(|| swiglu(&g, &u, 16).unwrap());
        assert_eq!(one, pool(4).install(|| swiglu(&g, &u, 16).unwrap()));
        // A decode step's size, split in two or four tasks (with a ragged end).
        for len in [1536, 1531] {
            let one = pool(1).install(|| swiglu(&g[..len], &u[..len], 16).unwrap());
            for t in [2, 4] {
                assert_eq!(one, pool(t).install(|| swiglu(&g[..len], &u[..len], 16).unwrap()), "{t} threads, {len}");
            }
        }
        let want: Vec<f64> =
            g.iter().zip(&u).map(|(&g, &u)| silu_f64(g as f64 / 65536.0) * u as f64 / 65536.0 * 65536.0).collect();
        let e = rel_err(&one, &want);
        eprintln!("swiglu relative error {e:.2e}");
        assert!(e < 1e-4);
    }

    /// The i64 arithmetic gives the spec's i128 integers at the ends of i32.
    #[test]
    fn extreme_operands_match_the_i128_transcription() {
        use crate::fixed::round_shift_i128;
        let ext = [i32::MIN, i32::MIN + 1, -(1 << 30), -65536, -1, 0, 1, 65536, 1 << 30, i32::MAX];
        for frac in [0, 14, 16, 31] {
            for &g in &ext {
                let silu = round_shift_i128(g as i128 * sigmoid_q30(g, frac) as i128, EXP_FRAC);
                assert_eq!(silu_fx(g, frac) as i128, silu, "silu({g}), frac {frac}");
                for &u in &ext {
                    let want = sat_i32(round_shift_i128(silu * u as i128, frac));
                    assert_eq!(swiglu(&[g], &[u], frac).unwrap(), vec![want], "g {g}, u {u}, frac {frac}");
                }
            }
        }
    }

    /// The sigmoid's division `floor((2^61 + den) / (2 den))` by `/`, the definition.
    fn quotient_by_division(den: i64) -> i64 {
        ((1i64 << 61) + den) / (2 * den)
    }

    /// `x86::sigmoid_quotient8` of every `den` (padded to whole eights with `2^30`).
    #[cfg(target_arch = "x86_64")]
    fn quotients_avx512(den: &[i64]) -> Vec<i64> {
        use std::arch::x86_64::*;
        let mut out = Vec::with_capacity(den.len() + 8);
        for c in den.chunks(8) {
            let mut lanes = [1i64 << 30; 8];
            lanes[..c.len()].copy_from_slice(c);
            let mut q = [0i64; 8];
            // SAFETY: only called when `Isa::available` lists AVX-512 (F and DQ); the
            // arrays hold eight i64 each.
            unsafe {
                let v = _mm512_loadu_si512(lanes.as_ptr() as *const __m512i);
                _mm512_storeu_si512(q.as_mut_ptr() as *mut __m512i, x86::sigmoid_quotient8(v));
            }
            out.extend_from_slice(&q[..c.len()]);
        }
        out
    }

    /// Checks the vector quotient against `/` on `den` (a no-op without AVX-512).
    fn check_quotients(den: &[i64]) {
        #[cfg(target_arch = "x86_64")]
        if Isa::available_noting_skips().contains(&Isa::Avx512) {
            let got = quotients_avx512(den);
            for (&d, &q) in den.iter().zip(&got) {
                assert_eq!(q, quotient_by_division(d), "den {d}");
            }
        }
        let _ = den;
    }

    /// Hard cases: every `den` in `2^30..=2^31` whose f64 quotient `trunc(fl(N) / D)` is
    /// one below the floor (found by a sweep of the whole range), as `N / D` is within
    /// 2^-20 of an integer.
    const F64_QUOTIENT_LOW: [i64; 32] = [
        1_077_835_962,
        1_099_332_850,
        1_117_217_518,
        1_122_737_850,
        1_124_104_950,
        1_147_373_766,
        1_152_677_526,
        1_156_337_350,
        1_189_047_990,
        1_198_022_826,
        1_219_930_290,
        1_224_352_998,
        1_288_490_190,
        1_291_009_230,
        1_299_290_850,
        1_355_987_178,
        1_371_978_450,
        1_377_340_650,
        1_397_568_722,
        1_413_427_950,
        1_426_217_650,
        1_452_547_822,
        1_453_956_350,
        1_521_933_530,
        1_533_916_890,
        1_540_689_150,
        1_573_746_930,
        1_817_101_550,
        1_914_189_550,
        1_921_129_210,
        2_079_309_562,
        2_081_407_230,
    ];

    /// Every `den` whose plain f64 quotient is one above the floor.
    const F64_QUOTIENT_HIGH: [i64; 72] = [
        1_088_519_487,
        1_127_980_293,
        1_136_161_130,
        1_163_123_034,
        1_184_677_982,
        1_192_691_488,
        1_210_106_133,
        1_210_748_888,
        1_217_479_468,
        1_260_291_919,
        1_271_941_099,
        1_272_049_467,
        1_281_504_127,
        1_288_818_513,
        1_302_252_409,
        1_308_803_878,
        1_317_295_067,
        1_321_638_922,
        1_341_015_915,
        1_355_179_308,
        1_365_201_767,
        1_382_160_254,
        1_386_221_438,
        1_418_421_697,
        1_421_042_060,
        1_422_793_009,
        1_436_600_684,
        1_440_886_537,
        1_442_195_503,
        1_453_145_454,
        1_473_901_931,
        1_475_057_515,
        1_563_222_441,
        1_564_448_055,
        1_596_634_768,
        1_597_827_341,
        1_598_842_185,
        1_601_600_380,
        1_619_147_037,
        1_620_645_445,
        1_622_038_298,
        1_631_124_910,
        1_649_904_972,
        1_689_012_617,
        1_714_935_188,
        1_719_474_753,
        1_750_437_747,
        1_766_929_773,
        1_789_113_817,
        1_799_219_562,
        1_799_325_465,
        1_812_699_167,
        1_812_853_607,
        1_829_610_247,
        1_901_589_986,
        1_905_488_243,
        1_918_180_625,
        1_921_641_866,
        1_932_934_538,
        1_948_313_667,
        1_950_653_204,
        1_959_599_695,
        1_974_287_620,
        2_001_273_698,
        2_027_639_704,
        2_044_222_779,
        2_063_085_124,
        2_072_967_687,
        2_113_799_061,
        2_116_310_396,
        2_131_905_829,
        2_132_328_818,
    ];

    /// The dens whose quotients are nearly integers: the lists are what they say, and the
    /// vector quotient equals `/` on them.
    #[test]
    fn vector_quotient_is_exact_where_it_is_nearly_an_integer() {
        // `N mod D` within `D / 2^20` of 0 (just above an integer) or of `D` (just below).
        let rem = |den: i64| ((1i64 << 61) + den) % (2 * den);
        for den in F64_QUOTIENT_LOW {
            assert!(rem(den) < (2 * den) >> 20, "den {den}");
        }
        for den in F64_QUOTIENT_HIGH {
            assert!(rem(den) > 2 * den - ((2 * den) >> 20), "den {den}");
        }
        check_quotients(&F64_QUOTIENT_LOW);
        check_quotients(&F64_QUOTIENT_HIGH);
    }

    /// Every `den = 2^30 + e` at the ends, around powers of two, where the quotient is
    /// nearly an integer or half of one, and on a stride over the whole range.
    #[test]
    fn vector_quotient_equals_the_division() {
        let (lo, hi) = (1i64 << 30, 1i64 << 31);
        let mut den: Vec<i64> = (lo..lo + 2000).chain(hi - 2000..=hi).collect();
        for b in 0..31 {
            den.extend([lo + (1 << b) - 1, lo + (1 << b), lo + (1 << b) + 1]);
        }
        // `2^60 / den` at (or next to) an integer `k` or `k + 1/2`: `den` near `2^60 / k`.
        for k in ((1i64 << 29)..=(1i64 << 30)).step_by(65_537).chain([(1 << 29) + 1, (1 << 30) - 1]) {
            for t in [(1i64 << 61) / (2 * k), (1i64 << 61) / (2 * k + 1)] {
                den.extend((t - 2..=t + 2).filter(|d| (lo..=hi).contains(d)));
            }
        }
        den.extend((lo..=hi).step_by(997));
        check_quotients(&den);
    }

    /// All `2^30 + 1` values of `den` (about a second in release):
    /// `cargo test -p opml-dnn --release --lib silu -- --ignored`.
    #[test]
    #[ignore]
    fn vector_quotient_equals_the_division_everywhere() {
        let den: Vec<i64> = ((1i64 << 30)..=(1i64 << 31)).collect();
        check_quotients(&den);
    }

    /// Every ISA's SwiGLU, direct and by table, equals the scalar direct one (the
    /// definition's integers) on `g`, `u`.
    fn check_isas(g: &[i32], u: &[i32], frac: u32) {
        let want = swiglu_direct_on(Isa::Scalar, g, u, frac).unwrap();
        for isa in Isa::available_noting_skips() {
            assert_eq!(swiglu_direct_on(isa, g, u, frac).unwrap(), want, "direct, {isa:?}, frac {frac}");
            assert_eq!(swiglu_on(isa, g, u, frac).unwrap(), want, "{isa:?}, frac {frac}");
        }
    }

    #[test]
    fn every_isa_equals_the_scalar_swiglu_at_the_extremes() {
        let ext = [i32::MIN, i32::MIN + 1, -(1 << 30), -(40 << 16), -65536, -1, 0, 1, 65536, 1 << 30, i32::MAX];
        let (g, u): (Vec<i32>, Vec<i32>) = ext.iter().flat_map(|&g| ext.iter().map(move |&u| (g, u))).unzip();
        for frac in [0, 1, 14, 16, 30, 31] {
            check_isas(&g, &u, frac);
        }
    }

    proptest! {
        #[test]
        fn every_isa_equals_the_scalar_swiglu(
            gu in prop::collection::vec((any::<i32>(), any::<i32>()), 0..70),
            near in prop::collection::vec((-(1i32 << 22)..1 << 22, -(1i32 << 22)..1 << 22), 0..70),
            frac in 0u32..=31,
        ) {
            for v in [gu, near] {
                let (g, u): (Vec<i32>, Vec<i32>) = v.into_iter().unzip();
                check_isas(&g, &u, frac);
            }
        }

        #[test]
        fn vector_quotient_equals_the_division_on_random_den(den in prop::collection::vec((1i64 << 30)..=1 << 31, 1..40)) {
            check_quotients(&den);
        }
    }

    /// CPU time of decode- and prompt-sized SwiGLU per ISA, direct and by table, in the
    /// recommended format (`F = 14`; `cargo test -p opml-dnn --release --lib throughput --
    /// --ignored --nocapture`): a measurement, not a check.
    #[test]
    #[ignore]
    fn throughput() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        const F: u32 = 14;
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        // 193 rows of 1536: a decode-sized call takes the next row each time (new data,
        // as in a model, so that no branch predictor learns one row's signs).
        let total = 193 * 1536;
        let g: Vec<i32> = (0..total).map(|_| rng.gen_range(-(6 << F)..6 << F)).collect();
        let u: Vec<i32> = (0..total).map(|_| rng.gen_range(-(4 << F)..4 << F)).collect();
        let _ = SigmoidTable::cached(F);
        for rows in [1, 193] {
            let n = rows * 1536;
            let next = AtomicUsize::new(0);
            let slice = || {
                let at = next.fetch_add(n, Ordering::Relaxed) % total;
                (&g[at..at + n], &u[at..at + n])
            };
            for isa in Isa::available() {
                for (how, f) in [("direct", swiglu_direct_on as fn(_, &_, &_, _) -> _), ("table", swiglu_on)] {
                    let s = cpu_seconds_per_call(3000 / rows, || {
                        let (g, u) = slice();
                        drop(std::hint::black_box(f(isa, g, u, F)))
                    });
                    eprintln!(
                        "swiglu {rows}x1536 {isa:?} {how}: {:.2} us, {:.2} ns/element",
                        s * 1e6,
                        s * 1e9 / n as f64
                    );
                }
            }
        }
    }

    proptest! {
        /// `silu` is within one unit of the f64 value (half a unit of rounding and the
        /// sigmoid's error, below 2^-29 relative, times |x|).
        #[test]
        fn silu_is_close_to_f64(x in any::<i32>(), frac in 8u32..=24) {
            let f = 2f64.powi(frac as i32);
            let want = silu_f64(x as f64 / f) * f;
            prop_assert!((silu_fx(x, frac) as f64 - want).abs() <= 0.5 + (x as f64).abs() * 2f64.powi(-28));
        }
    }
}
