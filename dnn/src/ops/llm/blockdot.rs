//! The hot loop of the block linears: one weight row against one activation row,
//! `sum_b P_b * S_b` with `P_b = D_b * dot_b + M_b * A_b` (Q4_1) or `D_b * dot_b` (Q8_0)
//! and `dot_b = sum_j q_j * a_j`, exact (`docs/spec/ops.md` §5.2). A portable kernel and an
//! AVX2 one picked at run time; both compute the same exact integer, so they agree bit
//! for bit (checked by the tests below, at the extremes of every bound).

use super::blockq::{ActInt, QK};

/// The instruction set a kernel runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust.
    Scalar,
    /// x86-64 AVX2 (`vpmaddubsw`, `vpmaddwd`, `vpmuldq`).
    Avx2,
}

impl Isa {
    /// The best this CPU supports.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            return Isa::Avx2;
        }
        Isa::Scalar
    }

    /// Every instruction set this CPU can run (the tests run each).
    pub fn available() -> Vec<Self> {
        let mut v = vec![Isa::Scalar];
        if Self::detect() == Isa::Avx2 {
            v.push(Isa::Avx2);
        }
        v
    }
}

/// The per-block integers of one weight row and one activation row (all `blocks` long):
/// weight scales `d`, weight mins `m` (Q4_1 only), activation block sums `sum` and scales
/// `s` (`0 <= s < 2^25`).
#[derive(Clone, Copy, Debug)]
pub struct RowScales<'a> {
    /// `D_b`, `|D_b| <= 2^30`.
    pub d: &'a [i32],
    /// `M_b` (Q4_1), `|M_b| <= 2^30`; `None` for Q8_0.
    pub m: Option<&'a [i32]>,
    /// `A_b = sum_j a_j`.
    pub sum: &'a [i32],
    /// `S_b`.
    pub s: &'a [i32],
}

impl RowScales<'_> {
    /// `P_b * S_b` of block `b` given its dot.
    #[inline(always)]
    fn term(&self, b: usize, dot: i32) -> i128 {
        let p = self.d[b] as i64 * dot as i64 + self.m.map_or(0, |m| m[b] as i64 * self.sum[b] as i64);
        p as i128 * self.s[b] as i128
    }
}

/// Activation types with a row kernel for each weight format.
pub trait BlockDot: ActInt {
    /// The exact row sum for Q4_1 nibbles (16 bytes a block).
    fn q4_row(isa: Isa, qs: &[u8], a: &[Self], sc: &RowScales<'_>) -> i128;
    /// The exact row sum for Q8_0 values.
    fn q8_row(isa: Isa, qs: &[i8], a: &[Self], sc: &RowScales<'_>) -> i128;
}

#[inline(always)]
fn q4_dot_scalar<T: ActInt>(q: &[u8], a: &[T]) -> i32 {
    let (lo, hi) = a.split_at(QK / 2);
    let mut s = 0i32;
    for j in 0..QK / 2 {
        s += (q[j] & 0x0f) as i32 * lo[j].widen() + (q[j] >> 4) as i32 * hi[j].widen();
    }
    s
}

#[inline(always)]
fn q8_dot_scalar<T: ActInt>(q: &[i8], a: &[T]) -> i32 {
    q.iter().zip(a).map(|(&q, &v)| q as i32 * v.widen()).sum()
}

/// Blocks whose dots the portable kernel computes in one pass before their epilogue: two
/// simple loops, so that the dot loop vectorizes.
const SCALAR_CHUNK: usize = 64;

/// The portable row kernel over blocks of `qb` weight items, with `dot` one block's dot.
#[inline(always)]
fn row_scalar<Q, T: ActInt>(qs: &[Q], qb: usize, a: &[T], sc: &RowScales<'_>, dot: impl Fn(&[Q], &[T]) -> i32) -> i128 {
    let mut dots = [0i32; SCALAR_CHUNK];
    let mut total = 0i128;
    for c0 in (0..sc.d.len()).step_by(SCALAR_CHUNK) {
        let n = SCALAR_CHUNK.min(sc.d.len() - c0);
        let blocks = qs[c0 * qb..].chunks_exact(qb).zip(a[c0 * QK..].chunks_exact(QK));
        for (d, (q, a)) in dots[..n].iter_mut().zip(blocks) {
            *d = dot(q, a);
        }
        total += dots[..n].iter().enumerate().map(|(i, &d)| sc.term(c0 + i, d)).sum::<i128>();
    }
    total
}

fn q4_row_scalar<T: ActInt>(qs: &[u8], a: &[T], sc: &RowScales<'_>) -> i128 {
    row_scalar(qs, QK / 2, a, sc, q4_dot_scalar)
}

fn q8_row_scalar<T: ActInt>(qs: &[i8], a: &[T], sc: &RowScales<'_>) -> i128 {
    row_scalar(qs, QK, a, sc, q8_dot_scalar)
}

macro_rules! dispatch {
    ($isa:expr, $avx2:expr, $scalar:expr) => {{
        #[cfg(target_arch = "x86_64")]
        if $isa == Isa::Avx2 {
            // SAFETY: `Isa::Avx2` is only produced by `Isa::detect` on a CPU with AVX2 (the
            // tests take it from `Isa::available`).
            return unsafe { $avx2 };
        }
        $scalar
    }};
}

impl BlockDot for i8 {
    fn q4_row(isa: Isa, qs: &[u8], a: &[i8], sc: &RowScales<'_>) -> i128 {
        dispatch!(isa, avx2::q4_row_i8(qs, a, sc), q4_row_scalar(qs, a, sc))
    }
    fn q8_row(isa: Isa, qs: &[i8], a: &[i8], sc: &RowScales<'_>) -> i128 {
        dispatch!(isa, avx2::q8_row_i8(qs, a, sc), q8_row_scalar(qs, a, sc))
    }
}

impl BlockDot for i16 {
    fn q4_row(isa: Isa, qs: &[u8], a: &[i16], sc: &RowScales<'_>) -> i128 {
        dispatch!(isa, avx2::q4_row_i16(qs, a, sc), q4_row_scalar(qs, a, sc))
    }
    fn q8_row(isa: Isa, qs: &[i8], a: &[i16], sc: &RowScales<'_>) -> i128 {
        dispatch!(isa, avx2::q8_row_i16(qs, a, sc), q8_row_scalar(qs, a, sc))
    }
}

/// AVX2 kernels.
///
/// Block dots: no product or pair sum saturates (`vpmaddubsw` pairs are at most
/// `2 * 15 * 128` (Q4) or `2 * 128 * 127` (Q8, the sign moved onto the activation),
/// `vpmaddwd` pairs at most `2 * 128 * 32767`), and a block's dot is below 2^28, so the i32
/// lane sums are exact. Four blocks' dots are reduced together (`vphaddd`).
///
/// Epilogue, four blocks per step in 64-bit lanes: `P_b = D_b dot_b + M_b A_b` exactly
/// (`vpmuldq`, each product below 2^54, `|P_b| < 2^55`), split as `P_b = H 2^32 + L` with
/// `L` in `0..2^32` and `H = P_b >> 32` (`|H| < 2^23`; `vpmuldq` reads the low 32 bits of a
/// lane as signed, which after a logical shift by 32 are exactly `H`). `L S_b < 2^57`
/// (unsigned, `vpmuludq`) and `|H S_b| < 2^48` accumulate per lane and are folded into an
/// i128 every 64 steps, before `64 * 2^57` could reach 2^63. So the sum is exact.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{RowScales, QK};
    use std::arch::x86_64::*;

    /// Steps between folds of the lane accumulators (see the module comment).
    const FOLD_EVERY: u32 = 64;

    /// The exact running sum of `P_b * S_b`.
    struct Acc {
        hi: __m256i,
        lo: __m256i,
        steps: u32,
        total: i128,
    }

    impl Acc {
        #[inline]
        #[target_feature(enable = "avx2")]
        fn new() -> Self {
            Acc { hi: _mm256_setzero_si256(), lo: _mm256_setzero_si256(), steps: 0, total: 0 }
        }

        /// Add four blocks: `dots` their dots, `b` the first block's index.
        ///
        /// # Safety
        /// Blocks `b..b + 4` exist in every array of `sc`.
        #[inline]
        #[target_feature(enable = "avx2")]
        unsafe fn add4(&mut self, dots: __m128i, sc: &RowScales<'_>, b: usize) {
            // SAFETY: four i32 at `b` in each array (caller).
            let load =
                |v: &[i32]| unsafe { _mm256_cvtepi32_epi64(_mm_loadu_si128(v.as_ptr().add(b) as *const __m128i)) };
            let mut p = _mm256_mul_epi32(load(sc.d), _mm256_cvtepi32_epi64(dots));
            if let Some(m) = sc.m {
                p = _mm256_add_epi64(p, _mm256_mul_epi32(load(m), load(sc.sum)));
            }
            let s = load(sc.s);
            let low = _mm256_and_si256(p, _mm256_set1_epi64x(0xffff_ffff));
            self.lo = _mm256_add_epi64(self.lo, _mm256_mul_epu32(low, s));
            self.hi = _mm256_add_epi64(self.hi, _mm256_mul_epi32(_mm256_srli_epi64(p, 32), s));
            self.steps += 1;
            if self.steps == FOLD_EVERY {
                self.fold();
            }
        }

        #[inline]
        #[target_feature(enable = "avx2")]
        fn fold(&mut self) {
            let (mut hi, mut lo) = ([0i64; 4], [0u64; 4]);
            // SAFETY: both arrays are 32 bytes; storeu needs no alignment.
            unsafe {
                _mm256_storeu_si256(hi.as_mut_ptr() as *mut __m256i, self.hi);
                _mm256_storeu_si256(lo.as_mut_ptr() as *mut __m256i, self.lo);
            }
            let h: i128 = hi.iter().map(|&v| v as i128).sum();
            let l: i128 = lo.iter().map(|&v| v as i128).sum();
            self.total += (h << 32) + l;
            (self.hi, self.lo, self.steps) = (_mm256_setzero_si256(), _mm256_setzero_si256(), 0);
        }

        #[inline]
        #[target_feature(enable = "avx2")]
        fn finish(mut self) -> i128 {
            self.fold();
            self.total
        }
    }

    /// The four blocks' dots from their eight-lane partial sums.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn reduce4(v: [__m256i; 4]) -> __m128i {
        let h = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
        _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1))
    }

    /// The dot of one block from its eight-lane partial sums.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn hsum(v: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        _mm_cvtsi128_si32(s)
    }

    /// The 32 nibbles of Q4 block `b`: elements 0..16 (low nibbles), 16..32 (high).
    ///
    /// # Safety
    /// Block `b` lies inside `qs`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn nibbles(qs: &[u8], b: usize) -> (__m128i, __m128i) {
        // SAFETY: 16 readable bytes at block `b` (caller); loadu needs no alignment.
        let v = unsafe { _mm_loadu_si128(qs.as_ptr().add(b * QK / 2) as *const __m128i) };
        let mask = _mm_set1_epi8(0x0f);
        (_mm_and_si128(v, mask), _mm_and_si128(_mm_srli_epi16(v, 4), mask))
    }

    /// # Safety
    /// Block `b` lies inside both slices.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn q4_i8(qs: &[u8], a: &[i8], b: usize) -> __m256i {
        // SAFETY: block `b` lies inside both slices (caller).
        unsafe {
            let (lo, hi) = nibbles(qs, b);
            let av = _mm256_loadu_si256(a.as_ptr().add(b * QK) as *const __m256i);
            _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set_m128i(hi, lo), av), _mm256_set1_epi16(1))
        }
    }

    /// # Safety
    /// Block `b` lies inside both slices.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn q4_i16(qs: &[u8], a: &[i16], b: usize) -> __m256i {
        // SAFETY: block `b` lies inside both slices (caller).
        unsafe {
            let (lo, hi) = nibbles(qs, b);
            let p = a.as_ptr().add(b * QK);
            let (alo, ahi) = (_mm256_loadu_si256(p as *const __m256i), _mm256_loadu_si256(p.add(16) as *const __m256i));
            _mm256_add_epi32(
                _mm256_madd_epi16(_mm256_cvtepu8_epi16(lo), alo),
                _mm256_madd_epi16(_mm256_cvtepu8_epi16(hi), ahi),
            )
        }
    }

    /// # Safety
    /// Block `b` lies inside both slices.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn q8_i8(qs: &[i8], a: &[i8], b: usize) -> __m256i {
        // SAFETY: block `b` lies inside both slices (caller).
        unsafe {
            let q = _mm256_loadu_si256(qs.as_ptr().add(b * QK) as *const __m256i);
            let av = _mm256_loadu_si256(a.as_ptr().add(b * QK) as *const __m256i);
            // |q| as unsigned times a with q's sign: the same products, and |a| <= 127 so
            // negating it never wraps.
            let p = _mm256_maddubs_epi16(_mm256_abs_epi8(q), _mm256_sign_epi8(av, q));
            _mm256_madd_epi16(p, _mm256_set1_epi16(1))
        }
    }

    /// # Safety
    /// Block `b` lies inside both slices.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn q8_i16(qs: &[i8], a: &[i16], b: usize) -> __m256i {
        // SAFETY: block `b` lies inside both slices (caller).
        unsafe {
            let q = _mm256_loadu_si256(qs.as_ptr().add(b * QK) as *const __m256i);
            let p = a.as_ptr().add(b * QK);
            let (alo, ahi) = (_mm256_loadu_si256(p as *const __m256i), _mm256_loadu_si256(p.add(16) as *const __m256i));
            _mm256_add_epi32(
                _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(q)), alo),
                _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_extracti128_si256(q, 1)), ahi),
            )
        }
    }

    /// A row kernel: four blocks a step through [`Acc`], the last `blocks % 4` one by one.
    macro_rules! row_kernel {
        ($name:ident, $q:ty, $a:ty, $block:ident, $qbytes:expr) => {
            /// # Safety
            /// AVX2 is available.
            #[target_feature(enable = "avx2")]
            pub(super) unsafe fn $name(qs: &[$q], a: &[$a], sc: &RowScales<'_>) -> i128 {
                let nb = sc.d.len();
                assert!(qs.len() >= nb * $qbytes && a.len() >= nb * QK);
                assert!(sc.s.len() >= nb && sc.sum.len() >= nb && sc.m.is_none_or(|m| m.len() >= nb));
                let mut acc = Acc::new();
                let mut b = 0;
                // SAFETY: every block below `nb` lies inside every slice (asserted above).
                unsafe {
                    while b + 4 <= nb {
                        let v = [$block(qs, a, b), $block(qs, a, b + 1), $block(qs, a, b + 2), $block(qs, a, b + 3)];
                        acc.add4(reduce4(v), sc, b);
                        b += 4;
                    }
                    let mut total = acc.finish();
                    while b < nb {
                        total += sc.term(b, hsum($block(qs, a, b)));
                        b += 1;
                    }
                    total
                }
            }
        };
    }

    row_kernel!(q4_row_i8, u8, i8, q4_i8, QK / 2);
    row_kernel!(q4_row_i16, u8, i16, q4_i16, QK / 2);
    row_kernel!(q8_row_i8, i8, i8, q8_i8, QK);
    row_kernel!(q8_row_i16, i8, i16, q8_i16, QK);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Every ISA against the portable kernel and against a plain i128 loop, for both
    /// formats.
    fn check_all<T: BlockDot + std::fmt::Debug>(qs4: &[u8], qs8: &[i8], a: &[T], sc: &RowScales<'_>) {
        let nb = sc.d.len();
        let plain = |dot: &dyn Fn(usize) -> i32, m: Option<&[i32]>| -> i128 {
            (0..nb)
                .map(|b| {
                    let p = sc.d[b] as i128 * dot(b) as i128 + m.map_or(0, |m| m[b] as i128 * sc.sum[b] as i128);
                    p * sc.s[b] as i128
                })
                .sum()
        };
        let want4 = plain(&|b| q4_dot_scalar(&qs4[b * 16..], &a[b * QK..]), sc.m);
        let sc8 = RowScales { m: None, ..*sc };
        let want8 = plain(&|b| q8_dot_scalar(&qs8[b * QK..(b + 1) * QK], &a[b * QK..]), None);
        for isa in Isa::available() {
            assert_eq!(T::q4_row(isa, qs4, a, sc), want4, "q4 {isa:?}");
            assert_eq!(T::q8_row(isa, qs8, a, &sc8), want8, "q8 {isa:?}");
        }
    }

    /// Blocks at the extremes of every bound: 15-nibbles and -128 values, activations at
    /// +-MAX with the largest scales, `|D| = |M| = 2^30`, over enough blocks to fold the
    /// AVX2 lane accumulators several times (and a remainder).
    fn extremes<T: BlockDot + std::fmt::Debug>(a_max: T, a_min: T, s_max: i32) {
        let nb = 4 * 64 * 3 + 3;
        let (qs4, qs8) = (vec![0xffu8; nb * 16], vec![-128i8; nb * QK]);
        for (d, m, a) in [(1 << 30, -(1 << 30), a_max), (-(1 << 30), 1 << 30, a_min), (1 << 30, 1 << 30, a_max)] {
            let (dv, mv) = (vec![d; nb], vec![m; nb]);
            let sum = vec![32 * a.widen(); nb];
            let s = vec![s_max; nb];
            let sc = RowScales { d: &dv, m: Some(&mv), sum: &sum, s: &s };
            check_all(&qs4, &qs8, &vec![a; nb * QK], &sc);
        }
    }

    #[test]
    fn extreme_rows_agree_on_every_isa() {
        extremes::<i8>(127, -127, (1 << 25) - 1);
        extremes::<i16>(32767, -32767, (1 << 17) - 1);
    }

    proptest! {
        #[test]
        fn every_isa_equals_the_plain_loop(blocks in 0usize..40, seed in any::<u64>()) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let qs4: Vec<u8> = (0..blocks * 16).map(|_| rng.gen()).collect();
            let qs8: Vec<i8> = (0..blocks * QK).map(|_| rng.gen()).collect();
            let d: Vec<i32> = (0..blocks).map(|_| rng.gen_range(-(1 << 30)..=1 << 30)).collect();
            let m: Vec<i32> = (0..blocks).map(|_| rng.gen_range(-(1 << 30)..=1 << 30)).collect();
            let a8: Vec<i8> = (0..blocks * QK).map(|_| rng.gen_range(-127..=127)).collect();
            let a16: Vec<i16> = (0..blocks * QK).map(|_| rng.gen_range(-32767..=32767)).collect();
            let sums = |a: &[i32]| a.chunks(QK).map(|c| c.iter().sum()).collect::<Vec<i32>>();
            let sum8 = sums(&a8.iter().map(|&v| v as i32).collect::<Vec<_>>());
            let sum16 = sums(&a16.iter().map(|&v| v as i32).collect::<Vec<_>>());
            let s8: Vec<i32> = (0..blocks).map(|_| rng.gen_range(0..1 << 25)).collect();
            let s16: Vec<i32> = (0..blocks).map(|_| rng.gen_range(0..1 << 17)).collect();
            check_all(&qs4, &qs8, &a8, &RowScales { d: &d, m: Some(&m), sum: &sum8, s: &s8 });
            check_all(&qs4, &qs8, &a16, &RowScales { d: &d, m: Some(&m), sum: &sum16, s: &s16 });
        }
    }
}
