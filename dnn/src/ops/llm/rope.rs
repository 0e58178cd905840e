//! Rotary position embedding on adjacent pairs (`docs/spec/ops.md` §5.7; the GGUF
//! converter permutes Q and K so that llama.cpp's "normal" RoPE rotates `(x[2j], x[2j+1])`).
//!
//! The op reads Q30 cos/sin tables `[positions, head_dim / 2]`, constants of the model.
//! [`rope_tables`] builds them at model-build time in f64 using only `+ - * /`, `floor`
//! and `round` — operations IEEE 754 rounds exactly, on every platform (Rust never fuses a
//! multiply-add unless asked) — with its own series for `ln`, `exp`, `sin` and `cos`
//! instead of the platform's libm, whose last bits differ between systems. So every
//! builder commits the same tables.

use rayon::prelude::*;

use super::super::check::{bad, want, OpResult};
use super::blockdot::Isa;
use super::{prod, want_len};
use crate::fixed::{round_shift_i128, round_shift_i64, sat_i32};
use crate::tensor::{DType, TensorSpec};

/// Fraction bits of the tables.
pub const ROPE_FRAC: u32 = 30;

/// Sizes of a RoPE node: `x` is `[seq, heads, head_dim]` at positions `pos0..pos0 + seq`,
/// the tables hold `positions` rows of `head_dim / 2` pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RopeDims {
    /// Positions in `x`.
    pub seq: usize,
    /// Heads.
    pub heads: usize,
    /// Channels per head (even).
    pub head_dim: usize,
    /// Position of the first row.
    pub pos0: usize,
}

/// The dims from `x`'s shape `[seq, heads, head_dim]`, the table shape
/// `[positions, head_dim / 2]` and the first position.
pub fn rope_dims(x: &[usize], table: &[usize], pos0: usize) -> OpResult<RopeDims> {
    let [seq, heads, head_dim] = *x else { return Err(bad(format!("x {x:?} must have rank 3"))) };
    if !head_dim.is_multiple_of(2) || table != [table.first().copied().unwrap_or(0), head_dim / 2] {
        return Err(bad(format!("table {table:?} must be [positions, {}] of an even head dim", head_dim / 2)));
    }
    if pos0.checked_add(seq).is_none_or(|end| end > table[0]) {
        return Err(bad(format!("positions {pos0}..+{seq} past the table's {}", table[0])));
    }
    Ok(RopeDims { seq, heads, head_dim, pos0 })
}

/// The rule: i32 `x` and i32 `cos`, `sin` tables as in [`rope_dims`] -> i32 of `x`'s shape.
pub fn rope_rule(x: &TensorSpec, cos: &TensorSpec, sin: &TensorSpec, pos0: usize) -> OpResult<TensorSpec> {
    for (s, what) in [(x, "x"), (cos, "cos"), (sin, "sin")] {
        want(s, DType::I32, what)?;
    }
    if cos.shape != sin.shape {
        return Err(bad("cos and sin tables differ in shape"));
    }
    rope_dims(&x.shape, &cos.shape, pos0)?;
    Ok(x.clone())
}

/// Elements below which parallel tasks cost more than they save.
const MIN_ELEMS_PER_TASK: usize = 4096;

/// Rotate every pair: with `c, s` the table entries of the row's position and pair `j`,
/// `y0 = sat32(round((x0 c - x1 s) / 2^30))`, `y1 = sat32(round((x0 s + x1 c) / 2^30))`.
pub fn rope(x: &[i32], cos: &[i32], sin: &[i32], d: RopeDims) -> OpResult<Vec<i32>> {
    rope_on(Isa::detect(), x, cos, sin, d)
}

/// [`rope`] on `isa`: AVX-512 rotates eight pairs a step (`x86::rotate8`), the other sets
/// pair by pair; the same integers either way.
pub fn rope_on(isa: Isa, x: &[i32], cos: &[i32], sin: &[i32], d: RopeDims) -> OpResult<Vec<i32>> {
    let half = d.head_dim / 2;
    want_len("x", x.len(), prod(&[d.seq, d.heads, d.head_dim])?)?;
    want_len("sin", sin.len(), cos.len())?;
    let rows = d.pos0.checked_add(d.seq).and_then(|p| p.checked_mul(half));
    if !d.head_dim.is_multiple_of(2) || rows.is_none_or(|r| r > cos.len()) {
        return Err(bad(format!("positions {}..+{} of head dim {} past the tables", d.pos0, d.seq, d.head_dim)));
    }
    let mut out = vec![0i32; x.len()];
    if d.head_dim == 0 {
        return Ok(out);
    }
    // At least `MIN_ELEMS_PER_TASK` elements a task: a decode step's few heads run on the
    // calling thread instead of waking the pool (each element is the same either way).
    let min_heads = (MIN_ELEMS_PER_TASK / d.head_dim).max(1);
    let chunks = out.par_chunks_mut(d.head_dim).zip(x.par_chunks(d.head_dim)).with_min_len(min_heads);
    chunks.enumerate().for_each(|(i, (o, xh))| {
        let row = (d.pos0 + i / d.heads) * half;
        rotate_head(isa, xh, &cos[row..row + half], &sin[row..row + half], o);
    });
    Ok(out)
}

/// One head: pair `j` of `xh` by `cos[j]`, `sin[j]` into `o`.
fn rotate_head(isa: Isa, xh: &[i32], cos: &[i32], sin: &[i32], o: &mut [i32]) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 {
        // SAFETY: `Isa::Avx512` only comes from `Isa::detect` / `Isa::available` on a CPU
        // with AVX-512 F; `xh` and `o` hold `2 cos.len()` elements, `sin` as many as `cos`.
        done = unsafe { x86::rotate_lanes(xh, cos, sin, o) };
    }
    let _ = isa;
    for j in done..cos.len() {
        let (x0, x1) = (xh[2 * j] as i64, xh[2 * j + 1] as i64);
        let (c, s) = (cos[j] as i64, sin[j] as i64);
        o[2 * j] = rotated(x0 * c, -(x1 * s));
        o[2 * j + 1] = rotated(x0 * s, x1 * c);
    }
}

/// `sat32(round((a + b) / 2^30))` of two products of i32 values (each in
/// `-2^62 + 2^31..=2^62`): in i64, or in i128 in the one case the sum leaves i64
/// (both products `(-2^31)^2`).
#[inline]
fn rotated(a: i64, b: i64) -> i32 {
    match a.checked_add(b) {
        Some(v) => sat_i32(round_shift_i64(v, ROPE_FRAC) as i128),
        None => sat_i32(round_shift_i128(a as i128 + b as i128, ROPE_FRAC)),
    }
}

/// The AVX-512 RoPE.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::super::exp::x86::round_shift;
    use super::ROPE_FRAC;
    use std::arch::x86_64::*;

    /// Eight pairs: `x` holds them as i64 lanes `x0 + 2^32 x1`, `c`, `s` the table entries
    /// as i64. `vpmuldq` multiplies the (sign-extended) low halves, so each product is
    /// exact and in `-2^62 + 2^31..=2^62`: `y0 = x0 c - x1 s` is then strictly inside i64,
    /// and `y1 = x0 s + x1 c` leaves it only at `2^63` (both products `2^62`), where it
    /// wraps to `i64::MIN`; that lane is set to `2^63 - 1`, which saturates to the same
    /// `i32::MAX`. Rounded by 30 bits, clamped to i32 and interleaved back.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn rotate8(x: __m512i, c: __m512i, s: __m512i) -> __m512i {
        let x1 = _mm512_srli_epi64(x, 32);
        let y0 = _mm512_sub_epi64(_mm512_mul_epi32(x, c), _mm512_mul_epi32(x1, s));
        let y1 = _mm512_add_epi64(_mm512_mul_epi32(x, s), _mm512_mul_epi32(x1, c));
        let y1 = _mm512_mask_sub_epi64(
            y1,
            _mm512_cmpeq_epi64_mask(y1, _mm512_set1_epi64(i64::MIN)),
            y1,
            _mm512_set1_epi64(1),
        );
        let (r0, r1) = (rounded(y0), rounded(y1));
        _mm512_or_si512(_mm512_and_si512(r0, _mm512_set1_epi64(0xffff_ffff)), _mm512_slli_epi64(r1, 32))
    }

    /// `sat32(round(v / 2^30))` of eight lanes (none `i64::MIN`), as i64.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn rounded(v: __m512i) -> __m512i {
        let (lo, hi) = (_mm512_set1_epi64(i32::MIN as i64), _mm512_set1_epi64(i32::MAX as i64));
        _mm512_min_epi64(_mm512_max_epi64(round_shift(v, ROPE_FRAC), lo), hi)
    }

    /// [`rotate8`] over the whole eights of pairs; returns how many pairs were written.
    ///
    /// # Safety
    /// AVX-512 F is available; `x` and `o` hold at least `2 cos.len()` elements and `sin`
    /// at least `cos.len()`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn rotate_lanes(x: &[i32], cos: &[i32], sin: &[i32], o: &mut [i32]) -> usize {
        let whole = cos.len() - cos.len() % 8;
        for j in (0..whole).step_by(8) {
            // SAFETY: `j + 8 <= whole <= cos.len() <= sin.len()`, and `2 j + 16 <= 2 whole`
            // within `x` and `o`; loadu / storeu need no alignment.
            unsafe {
                let xv = _mm512_loadu_si512(x.as_ptr().add(2 * j) as *const __m512i);
                let c = _mm512_cvtepi32_epi64(_mm256_loadu_si256(cos.as_ptr().add(j) as *const __m256i));
                let s = _mm512_cvtepi32_epi64(_mm256_loadu_si256(sin.as_ptr().add(j) as *const __m256i));
                _mm512_storeu_si512(o.as_mut_ptr().add(2 * j) as *mut __m512i, rotate8(xv, c, s));
            }
        }
        whole
    }
}

/// Deterministic f64 functions: basic operations only (see the module comment).
mod det {
    use std::f64::consts::{LN_2, PI};

    /// `ln(x)` for `x > 0`: `x = m 2^e` with `m` in `[1, 2)` by exact halving or doubling,
    /// `ln m = 2 atanh((m - 1) / (m + 1))` by its series (`|z| <= 1/3`, 40 terms).
    pub(super) fn ln(mut x: f64) -> f64 {
        let mut e = 0.0;
        while x >= 2.0 {
            x /= 2.0;
            e += 1.0;
        }
        while x < 1.0 {
            x *= 2.0;
            e -= 1.0;
        }
        let z = (x - 1.0) / (x + 1.0);
        let (z2, mut term, mut sum) = (z * z, z, 0.0);
        for k in 0..40 {
            sum += term / (2 * k + 1) as f64;
            term *= z2;
        }
        2.0 * sum + e * LN_2
    }

    /// `e^x` for moderate `|x|`: `x = k ln2 + r` with `|r| <= ln2 / 2`, 30 Taylor terms,
    /// then `k` exact doublings or halvings.
    pub(super) fn exp(x: f64) -> f64 {
        let k = (x / LN_2).round();
        let r = x - k * LN_2;
        let (mut term, mut sum) = (1.0, 1.0);
        for n in 1..30 {
            term *= r / n as f64;
            sum += term;
        }
        let mut k = k as i64;
        while k > 0 {
            sum *= 2.0;
            k -= 1;
        }
        while k < 0 {
            sum /= 2.0;
            k += 1;
        }
        sum
    }

    /// `(cos a, sin a)` for `a >= 0`: reduce to `r` in `[-pi, pi]`, then 40 Taylor terms.
    pub(super) fn cos_sin(a: f64) -> (f64, f64) {
        let r = a - (a / (2.0 * PI) + 0.5).floor() * (2.0 * PI);
        let (mut c, mut s, mut term) = (0.0, 0.0, 1.0);
        for n in 0..40 {
            match n % 4 {
                0 => c += term,
                1 => s += term,
                2 => c -= term,
                _ => s -= term,
            }
            term *= r / (n + 1) as f64;
        }
        (c, s)
    }
}

/// Q30 tables `cos[p][j] = round(cos(p theta_j) 2^30)`, likewise `sin`, with
/// `theta_j = base^(-2j / head_dim)`, for positions `0..positions` (row-major
/// `[positions, head_dim / 2]`). `base > 0` (SmolLM2: 100000).
pub fn rope_tables(positions: usize, head_dim: usize, base: f64) -> (Vec<i32>, Vec<i32>) {
    let half = head_dim / 2;
    let ln_base = det::ln(base);
    let theta: Vec<f64> = (0..half).map(|j| det::exp(-((2 * j) as f64 / head_dim as f64) * ln_base)).collect();
    let q30 = |v: f64| (v * (1u64 << ROPE_FRAC) as f64).round() as i32;
    let (mut cos, mut sin) = (Vec::with_capacity(positions * half), Vec::with_capacity(positions * half));
    for p in 0..positions {
        for &t in &theta {
            let (c, s) = det::cos_sin(p as f64 * t);
            cos.push(q30(c));
            sin.push(q30(s));
        }
    }
    (cos, sin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::llm::testutil::{cpu_seconds_per_call, pool};
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    const PIN_COS: i32 = -146_157_272;
    const PIN_SIN: i32 = -1_063_747_882;
    const PIN_COS_SUM: u64 = 84_795_869_652_717_675;
    const PIN_SIN_SUM: u64 = 15_097_272_597_533_823_416;

    #[test]
    fn tables_match_libm_to_a_unit() {
        let (cos, sin) = rope_tables(2048, 64, 100_000.0);
        let mut worst: f64 = 0.0;
        for p in 0..2048 {
            for j in 0..32 {
                let a = p as f64 * 100_000f64.powf(-(2.0 * j as f64) / 64.0);
                let q = 2f64.powi(30);
                worst = worst.max((cos[p * 32 + j] as f64 - a.cos() * q).abs());
                worst = worst.max((sin[p * 32 + j] as f64 - a.sin() * q).abs());
            }
        }
        eprintln!("rope tables: worst {worst:.3} units of 2^-30 against libm");
        assert!(worst <= 1.0);
        assert_eq!((cos[0], sin[0]), (1 << 30, 0));
    }

    /// The tables are committed model constants: pin SmolLM2's (8192 positions, head dim
    /// 64, base 100000) by a checksum, so a platform or compiler on which the f64 basic
    /// operations somehow differ fails here instead of committing another model.
    #[test]
    fn smollm2_tables_are_pinned() {
        let (cos, sin) = rope_tables(8192, 64, 100_000.0);
        let sum = |v: &[i32]| {
            v.iter().enumerate().fold(0u64, |h, (i, &x)| h.wrapping_mul(1_000_003) ^ (x as u32 as u64 + i as u64))
        };
        assert_eq!((cos[8191 * 32 + 5], sin[8191 * 32 + 5]), (PIN_COS, PIN_SIN));
        assert_eq!((sum(&cos), sum(&sin)), (PIN_COS_SUM, PIN_SIN_SUM));
    }

    #[test]
    fn position_zero_is_the_identity_and_shapes_are_checked() {
        let (cos, sin) = rope_tables(4, 4, 10_000.0);
        let d = rope_dims(&[1, 2, 4], &[4, 2], 0).unwrap();
        let x = [5, -7, 1 << 20, i32::MIN, 3, 4, -5, 6];
        assert_eq!(rope(&x, &cos, &sin, d).unwrap(), x);
        // Position 1, pair 0: theta = 1 rad; (1, 0) -> (cos 1, sin 1) in 16 fraction bits.
        let d1 = rope_dims(&[1, 1, 4], &[4, 2], 1).unwrap();
        let y = rope(&[1 << 16, 0, 0, 0], &cos, &sin, d1).unwrap();
        assert_eq!(&y[..2], &[35409, 55147]); // 65536 cos(1) = 35409.3, 65536 sin(1) = 55146.6
        assert!(rope_dims(&[1, 1, 4], &[4, 2], 4).is_err());
        assert!(rope_dims(&[1, 1, 5], &[4, 2], 0).is_err());
        assert!(rope_dims(&[1, 4], &[4, 2], 0).is_err());
        let s = |shape: &[usize]| TensorSpec::new(DType::I32, shape.to_vec());
        assert!(rope_rule(&s(&[2, 9, 64]), &s(&[8, 32]), &s(&[8, 32]), 6).is_ok());
        assert!(rope_rule(&s(&[2, 9, 64]), &s(&[8, 32]), &s(&[8, 31]), 6).is_err());
        // The kernel checks its operands against the dims instead of panicking.
        let d = RopeDims { seq: 1, heads: 1, head_dim: 4, pos0: 3 };
        assert!(rope(&[0; 4], &cos, &sin, d).is_ok());
        assert!(rope(&[0; 4], &cos, &sin, RopeDims { pos0: 4, ..d }).is_err());
        assert!(rope(&[0; 3], &cos, &sin, d).is_err());
        assert!(rope(&[0; 4], &cos, &sin[1..], d).is_err());
    }

    #[test]
    fn rotation_is_bit_exact_for_any_thread_count() {
        let (cos, sin) = rope_tables(64, 64, 100_000.0);
        let x: Vec<i32> = (0..5 * 9 * 64).map(|i: i32| i.wrapping_mul(-1_640_531_535) >> 8).collect();
        let d = rope_dims(&[5, 9, 64], &[64, 32], 40).unwrap();
        assert_eq!(
            pool(1).install(|| rope(&x, &cos, &sin, d).unwrap()),
            pool(4).install(|| rope(&x, &cos, &sin, d).unwrap())
        );
    }

    /// The i64 arithmetic gives the spec's i128 integers even for tables and values at the
    /// ends of i32 (which `rope_tables` never builds, but a caller may pass).
    #[test]
    fn extreme_operands_match_the_i128_transcription() {
        let ext = [i32::MIN, i32::MIN + 1, -(1 << 30), -1, 0, 1, 1 << 30, i32::MAX];
        for &c in &ext {
            for &sn in &ext {
                for &x0 in &ext {
                    for &x1 in &ext {
                        let y = rope(&[x0, x1], &[c], &[sn], RopeDims { seq: 1, heads: 1, head_dim: 2, pos0: 0 });
                        let (a, b, c, sn) = (x0 as i128, x1 as i128, c as i128, sn as i128);
                        let want = [
                            sat_i32(round_shift_i128(a * c - b * sn, ROPE_FRAC)),
                            sat_i32(round_shift_i128(a * sn + b * c, ROPE_FRAC)),
                        ];
                        assert_eq!(y.unwrap(), want, "x ({x0}, {x1}), cos {c}, sin {sn}");
                    }
                }
            }
        }
    }

    /// The spec's transcription in i128.
    fn spec_rope(x: &[i32], cos: &[i32], sin: &[i32], d: RopeDims) -> Vec<i32> {
        let half = d.head_dim / 2;
        let mut out = vec![0; x.len()];
        for (i, (o, xh)) in out.chunks_mut(d.head_dim).zip(x.chunks(d.head_dim)).enumerate() {
            let row = (d.pos0 + i / d.heads) * half;
            for j in 0..half {
                let (a, b) = (xh[2 * j] as i128, xh[2 * j + 1] as i128);
                let (c, s) = (cos[row + j] as i128, sin[row + j] as i128);
                o[2 * j] = sat_i32(round_shift_i128(a * c - b * s, ROPE_FRAC));
                o[2 * j + 1] = sat_i32(round_shift_i128(a * s + b * c, ROPE_FRAC));
            }
        }
        out
    }

    fn check_isas(x: &[i32], cos: &[i32], sin: &[i32], d: RopeDims) {
        let want = spec_rope(x, cos, sin, d);
        for isa in Isa::available_noting_skips() {
            assert_eq!(rope_on(isa, x, cos, sin, d).unwrap(), want, "{isa:?}, {d:?}");
        }
    }

    /// Every ISA gives the spec's integers for every combination of extreme values, in
    /// heads of whole eights of pairs and with a ragged tail.
    #[test]
    fn every_isa_equals_the_spec_at_the_extremes() {
        let ext = [i32::MIN, i32::MIN + 1, -(1 << 30), -1, 0, 1, 1 << 30, i32::MAX];
        let x: Vec<i32> = ext.iter().flat_map(|&a| ext.iter().flat_map(move |&b| [a, b])).collect();
        for (k, &c) in ext.iter().enumerate() {
            for &s in &ext {
                // Position 1 holds (c, s) in every pair; position 0 a rotation of `ext`.
                for head_dim in [16, 18, 2, 32] {
                    let half = head_dim / 2;
                    let mut cos: Vec<i32> = (0..half).map(|j| ext[(j + k) % 8]).collect();
                    let mut sin: Vec<i32> = (0..half).map(|j| ext[(j * 3 + k) % 8]).collect();
                    cos.extend(std::iter::repeat_n(c, half));
                    sin.extend(std::iter::repeat_n(s, half));
                    let heads = x.len() / head_dim;
                    let n = heads * head_dim;
                    check_isas(&x[..n], &cos, &sin, RopeDims { seq: 1, heads, head_dim, pos0: 1 });
                    check_isas(&x[..n], &cos, &sin, RopeDims { seq: 1, heads, head_dim, pos0: 0 });
                }
            }
        }
    }

    proptest! {
        #[test]
        fn every_isa_equals_the_spec(
            seed in any::<u64>(), seq in 1usize..4, heads in 1usize..4, half in 1usize..40, pos0 in 0usize..3,
            near in any::<bool>(),
        ) {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let head_dim = 2 * half;
            let mut val = || if near { rng.gen_range(-(1 << 30)..=1 << 30) } else { rng.gen::<i32>() };
            let x: Vec<i32> = (0..seq * heads * head_dim).map(|_| val()).collect();
            let cos: Vec<i32> = (0..(pos0 + seq) * half).map(|_| val()).collect();
            let sin: Vec<i32> = (0..(pos0 + seq) * half).map(|_| val()).collect();
            check_isas(&x, &cos, &sin, RopeDims { seq, heads, head_dim, pos0 });
        }
    }

    /// CPU time of a decode step's (q and k at position 200) and a prompt's (193 positions)
    /// rotations per ISA (`cargo test -p opml-dnn --release --lib throughput -- --ignored
    /// --nocapture`): a measurement, not a check.
    #[test]
    #[ignore]
    fn throughput() {
        let (cos, sin) = rope_tables(512, 64, 100_000.0);
        for (seq, pos0) in [(1, 200), (193, 0)] {
            let q: Vec<i32> = (0..seq * 9 * 64).map(|i: usize| (i as i32).wrapping_mul(-1_640_531_535) >> 8).collect();
            let k = &q[..seq * 3 * 64];
            let (dq, dk) =
                (RopeDims { seq, heads: 9, head_dim: 64, pos0 }, RopeDims { seq, heads: 3, head_dim: 64, pos0 });
            let n = (q.len() + k.len()) as f64;
            let t = cpu_seconds_per_call(2000 / seq, || {
                drop(std::hint::black_box((spec_rope(&q, &cos, &sin, dq), spec_rope(k, &cos, &sin, dk))))
            });
            eprintln!("rope {seq}x(9+3)x64 i128 spec: {:.2} us, {:.2} ns/element", t * 1e6, t * 1e9 / n);
            for isa in Isa::available() {
                let t = cpu_seconds_per_call(2000 / seq, || {
                    drop(std::hint::black_box((rope_on(isa, &q, &cos, &sin, dq), rope_on(isa, k, &cos, &sin, dk))))
                });
                eprintln!("rope {seq}x(9+3)x64 {isa:?}: {:.2} us, {:.2} ns/element", t * 1e6, t * 1e9 / n);
            }
        }
    }

    proptest! {
        /// Each rotated value is within one unit plus `2^-29 (|x0| + |x1|)` of the f64
        /// rotation (table rounding of half a unit of 2^-30 on each factor, and the final
        /// rounding).
        #[test]
        fn close_to_f64(x0 in -(1i32 << 30)..1 << 30, x1 in -(1i32 << 30)..1 << 30, p in 0usize..64, j in 0usize..32) {
            let (cos, sin) = rope_tables(64, 64, 100_000.0);
            let mut x = vec![0i32; 64];
            x[2 * j] = x0;
            x[2 * j + 1] = x1;
            let y = rope(&x, &cos, &sin, RopeDims { seq: 1, heads: 1, head_dim: 64, pos0: p }).unwrap();
            let a = p as f64 * 100_000f64.powf(-(2.0 * j as f64) / 64.0);
            let (w0, w1) = (x0 as f64 * a.cos() - x1 as f64 * a.sin(), x0 as f64 * a.sin() + x1 as f64 * a.cos());
            let tol = 1.0 + 2f64.powi(-29) * (x0.abs() as f64 + x1.abs() as f64);
            prop_assert!((y[2 * j] as f64 - w0).abs() <= tol && (y[2 * j + 1] as f64 - w1).abs() <= tol);
        }
    }
}
