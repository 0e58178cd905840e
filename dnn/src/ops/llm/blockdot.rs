//! The hot loop of the block linears: the exact integer dot of every block of one weight
//! row with the matching block of one activation row, `dots[b] = sum_j q_j * a_j`. A
//! portable kernel and an AVX2 one picked at run time; both are exact integer sums, so
//! they agree bit for bit (checked by the tests below).

use super::blockq::{ActInt, QK};

/// The instruction set a kernel runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust.
    Scalar,
    /// x86-64 AVX2 (`vpmaddubsw`, `vpmaddwd`).
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

/// Activation types with a block-dot kernel for each weight format.
pub trait BlockDot: ActInt {
    /// `dots[b] = sum_j q4_j * a_j` for Q4_1 nibbles (16 bytes a block).
    fn q4_dots(isa: Isa, qs: &[u8], a: &[Self], dots: &mut [i32]);
    /// `dots[b] = sum_j q8_j * a_j` for Q8_0 values.
    fn q8_dots(isa: Isa, qs: &[i8], a: &[Self], dots: &mut [i32]);
}

fn q4_dots_scalar<T: ActInt>(qs: &[u8], a: &[T], dots: &mut [i32]) {
    for ((d, q), a) in dots.iter_mut().zip(qs.chunks_exact(QK / 2)).zip(a.chunks_exact(QK)) {
        let (lo, hi) = a.split_at(QK / 2);
        let mut s = 0i32;
        for j in 0..QK / 2 {
            s += (q[j] & 0x0f) as i32 * lo[j].widen() + (q[j] >> 4) as i32 * hi[j].widen();
        }
        *d = s;
    }
}

fn q8_dots_scalar<T: ActInt>(qs: &[i8], a: &[T], dots: &mut [i32]) {
    for ((d, q), a) in dots.iter_mut().zip(qs.chunks_exact(QK)).zip(a.chunks_exact(QK)) {
        *d = q.iter().zip(a).map(|(&q, &v)| q as i32 * v.widen()).sum();
    }
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
    fn q4_dots(isa: Isa, qs: &[u8], a: &[i8], dots: &mut [i32]) {
        dispatch!(isa, avx2::q4_dots_i8(qs, a, dots), q4_dots_scalar(qs, a, dots))
    }
    fn q8_dots(isa: Isa, qs: &[i8], a: &[i8], dots: &mut [i32]) {
        dispatch!(isa, avx2::q8_dots_i8(qs, a, dots), q8_dots_scalar(qs, a, dots))
    }
}

impl BlockDot for i16 {
    fn q4_dots(isa: Isa, qs: &[u8], a: &[i16], dots: &mut [i32]) {
        dispatch!(isa, avx2::q4_dots_i16(qs, a, dots), q4_dots_scalar(qs, a, dots))
    }
    fn q8_dots(isa: Isa, qs: &[i8], a: &[i16], dots: &mut [i32]) {
        dispatch!(isa, avx2::q8_dots_i16(qs, a, dots), q8_dots_scalar(qs, a, dots))
    }
}

/// AVX2 kernels. No product or pair sum saturates: `vpmaddubsw` pairs are at most
/// `2 * 15 * 128` (Q4) or `2 * 128 * 127` (Q8, with the sign moved onto the activation),
/// `vpmaddwd` pairs at most `2 * 128 * 32767`; lane sums are exact i32 (a block's dot is
/// below 2^28). So the result equals the portable kernel's.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::QK;
    use std::arch::x86_64::*;

    /// Sum of the 8 i32 lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn hsum(v: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        _mm_cvtsi128_si32(s)
    }

    /// The 32 nibbles of a Q4 block as bytes: elements 0..16 (low nibbles) in the low
    /// lane, 16..32 (high nibbles) in the high lane.
    ///
    /// # Safety
    /// `q` has at least 16 bytes.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn nibbles(q: &[u8]) -> (__m128i, __m128i) {
        debug_assert!(q.len() >= 16);
        // SAFETY: 16 readable bytes (caller); loadu needs no alignment.
        let v = unsafe { _mm_loadu_si128(q.as_ptr() as *const __m128i) };
        let mask = _mm_set1_epi8(0x0f);
        (_mm_and_si128(v, mask), _mm_and_si128(_mm_srli_epi16(v, 4), mask))
    }

    /// # Safety
    /// AVX2 is available; the slices hold `dots.len()` blocks.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn q4_dots_i8(qs: &[u8], a: &[i8], dots: &mut [i32]) {
        assert!(qs.len() >= dots.len() * QK / 2 && a.len() >= dots.len() * QK);
        let ones = _mm256_set1_epi16(1);
        for (b, d) in dots.iter_mut().enumerate() {
            // SAFETY: block `b` lies inside both slices (asserted above).
            unsafe {
                let (lo, hi) = nibbles(&qs[b * QK / 2..]);
                let q = _mm256_set_m128i(hi, lo);
                let av = _mm256_loadu_si256(a.as_ptr().add(b * QK) as *const __m256i);
                *d = hsum(_mm256_madd_epi16(_mm256_maddubs_epi16(q, av), ones));
            }
        }
    }

    /// # Safety
    /// AVX2 is available; the slices hold `dots.len()` blocks.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn q4_dots_i16(qs: &[u8], a: &[i16], dots: &mut [i32]) {
        assert!(qs.len() >= dots.len() * QK / 2 && a.len() >= dots.len() * QK);
        for (b, d) in dots.iter_mut().enumerate() {
            // SAFETY: block `b` lies inside both slices (asserted above).
            unsafe {
                let (lo, hi) = nibbles(&qs[b * QK / 2..]);
                let p = a.as_ptr().add(b * QK);
                let alo = _mm256_loadu_si256(p as *const __m256i);
                let ahi = _mm256_loadu_si256(p.add(16) as *const __m256i);
                let s = _mm256_add_epi32(
                    _mm256_madd_epi16(_mm256_cvtepu8_epi16(lo), alo),
                    _mm256_madd_epi16(_mm256_cvtepu8_epi16(hi), ahi),
                );
                *d = hsum(s);
            }
        }
    }

    /// # Safety
    /// AVX2 is available; the slices hold `dots.len()` blocks.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn q8_dots_i8(qs: &[i8], a: &[i8], dots: &mut [i32]) {
        assert!(qs.len() >= dots.len() * QK && a.len() >= dots.len() * QK);
        let ones = _mm256_set1_epi16(1);
        for (b, d) in dots.iter_mut().enumerate() {
            // SAFETY: block `b` lies inside both slices (asserted above).
            unsafe {
                let q = _mm256_loadu_si256(qs.as_ptr().add(b * QK) as *const __m256i);
                let av = _mm256_loadu_si256(a.as_ptr().add(b * QK) as *const __m256i);
                // |q| as unsigned times a with q's sign: the same products, and |a| <= 127
                // so negating it never wraps.
                let p = _mm256_maddubs_epi16(_mm256_abs_epi8(q), _mm256_sign_epi8(av, q));
                *d = hsum(_mm256_madd_epi16(p, ones));
            }
        }
    }

    /// # Safety
    /// AVX2 is available; the slices hold `dots.len()` blocks.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn q8_dots_i16(qs: &[i8], a: &[i16], dots: &mut [i32]) {
        assert!(qs.len() >= dots.len() * QK && a.len() >= dots.len() * QK);
        for (b, d) in dots.iter_mut().enumerate() {
            // SAFETY: block `b` lies inside both slices (asserted above).
            unsafe {
                let q = _mm256_loadu_si256(qs.as_ptr().add(b * QK) as *const __m256i);
                let p = a.as_ptr().add(b * QK);
                let alo = _mm256_loadu_si256(p as *const __m256i);
                let ahi = _mm256_loadu_si256(p.add(16) as *const __m256i);
                let s = _mm256_add_epi32(
                    _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(q)), alo),
                    _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_extracti128_si256(q, 1)), ahi),
                );
                *d = hsum(s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check_all<T: BlockDot + std::fmt::Debug>(qs4: &[u8], qs8: &[i8], a: &[T]) {
        let blocks = a.len() / QK;
        let (mut want4, mut want8) = (vec![0; blocks], vec![0; blocks]);
        q4_dots_scalar(qs4, a, &mut want4);
        q8_dots_scalar(qs8, a, &mut want8);
        for isa in Isa::available() {
            let (mut got4, mut got8) = (vec![0; blocks], vec![0; blocks]);
            T::q4_dots(isa, qs4, a, &mut got4);
            T::q8_dots(isa, qs8, a, &mut got8);
            assert_eq!((&got4, &got8), (&want4, &want8), "{isa:?}");
        }
    }

    #[test]
    fn extreme_blocks_agree_on_every_isa() {
        // The largest products of each format: nibble 15 and q8 = -128 against +-MAX.
        let (qs4, qs8) = (vec![0xffu8; 32], vec![-128i8; 64]);
        check_all(&qs4, &qs8, &[127i8; 64]);
        check_all(&qs4, &qs8, &[-127i8; 64]);
        check_all(&qs4, &qs8, &[32767i16; 64]);
        check_all(&qs4, &qs8, &[-32767i16; 64]);
        let mut d = [0];
        i8::q4_dots(Isa::Scalar, &[0x21; 16], &[1; 32], &mut d);
        assert_eq!(d[0], 16 * (1 + 2));
    }

    proptest! {
        #[test]
        fn every_isa_equals_the_portable_kernel(
            blocks in 1usize..9, seed in any::<u64>(),
        ) {
            use rand::{Rng, SeedableRng};
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let qs4: Vec<u8> = (0..blocks * 16).map(|_| rng.gen()).collect();
            let qs8: Vec<i8> = (0..blocks * QK).map(|_| rng.gen()).collect();
            let a8: Vec<i8> = (0..blocks * QK).map(|_| rng.gen_range(-127..=127)).collect();
            let a16: Vec<i16> = (0..blocks * QK).map(|_| rng.gen_range(-32767..=32767)).collect();
            check_all(&qs4, &qs8, &a8);
            check_all(&qs4, &qs8, &a16);
        }
    }
}
