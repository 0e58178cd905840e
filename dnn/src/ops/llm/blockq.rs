//! Block-quantized weights (GGUF Q4_1 and Q8_0 with fixed-point block scales) and the
//! per-block i8 / i16 quantization of wide activations (`docs/spec/ops.md` §5.2).
//!
//! Layout: the 4-bit and 8-bit values stay exactly as the GGUF ships them (DESIGN §7: the
//! committed model is the model its users run), row-major with `k / 32` blocks per row. A
//! Q4_1 block's 16 bytes hold element `j` in the low nibble of byte `j` and element
//! `j + 16` in its high nibble — the layout llama.cpp's SIMD kernels read directly (mask
//! the low nibbles, shift the high ones; no shuffle). Scales and mins are separate `i32`
//! arrays (one per block) so each stream is contiguous and every array is a plain tensor.

use rayon::prelude::*;

use super::super::check::{bad, OpResult};
use super::blockdot::Isa;
use super::fixed_import::{fixed_from_f16, FixedVec};

/// Elements per block (GGUF `QK4_1` and `QK8_0`).
pub const QK: usize = 32;

/// Q4_1 weights `[n, k]`: `w[r][32b + j] = (D[r, b] * q + M[r, b]) / 2^exp`, `q` in 0..=15.
#[derive(Clone, Copy, Debug)]
pub struct Q4_1<'a> {
    /// `n * k / 2` bytes, 16 per block (GGUF order).
    pub qs: &'a [u8],
    /// Block scales `D` (`n * k / 32`).
    pub d: &'a [i32],
    /// Block mins `M` (`n * k / 32`).
    pub m: &'a [i32],
    /// Fraction bits of `D` and `M` (one exponent for both: they add inside a block).
    pub exp: u32,
}

/// Q8_0 weights `[n, k]`: `w[r][32b + j] = D[r, b] * q / 2^exp`, `q` in -128..=127.
#[derive(Clone, Copy, Debug)]
pub struct Q8_0<'a> {
    /// `n * k` values.
    pub qs: &'a [i8],
    /// Block scales `D` (`n * k / 32`).
    pub d: &'a [i32],
    /// Fraction bits of `D`.
    pub exp: u32,
}

/// The bytes of an `i8` tensor: the Q4_1 nibbles are stored in the graph as an i8
/// constant `[n, k / 2]` (tensors are i8 or i32) and read by the kernels as bytes.
pub fn i8_as_bytes(v: &[i8]) -> &[u8] {
    // SAFETY: i8 and u8 have the same size and alignment and every bit pattern is valid
    // for both; the returned slice borrows `v` for its whole lifetime.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), v.len()) }
}

/// The inverse of [`i8_as_bytes`] (the importer stores nibbles as an i8 constant).
pub fn bytes_as_i8(v: &[u8]) -> &[i8] {
    // SAFETY: as in `i8_as_bytes`.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<i8>(), v.len()) }
}

/// Q4_1 weights in owned storage, as the importer builds them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Q4_1Owned {
    /// Packed nibbles, GGUF order.
    pub qs: Vec<u8>,
    /// Block scales.
    pub d: Vec<i32>,
    /// Block mins.
    pub m: Vec<i32>,
    /// Shared fraction bits.
    pub exp: u32,
}

/// Q8_0 weights in owned storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Q8_0Owned {
    /// Values.
    pub qs: Vec<i8>,
    /// Block scales.
    pub d: Vec<i32>,
    /// Fraction bits.
    pub exp: u32,
}

/// GGUF block sizes in bytes: Q4_1 is `d: f16, m: f16, qs: [u8; 16]`, Q8_0 is
/// `d: f16, qs: [i8; 32]`, little-endian.
pub const Q4_1_BLOCK_BYTES: usize = 20;
/// See [`Q4_1_BLOCK_BYTES`].
pub const Q8_0_BLOCK_BYTES: usize = 34;

fn f16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

fn whole_blocks(len: usize, block: usize) -> OpResult<usize> {
    if !len.is_multiple_of(block) {
        return Err(bad(format!("{len} bytes are not whole blocks of {block}")));
    }
    Ok(len / block)
}

impl Q4_1Owned {
    /// Import GGUF Q4_1 blocks (any number of rows; blocks never straddle rows because
    /// `k` is a multiple of 32). `d` and `m` share the exponent chosen over both.
    pub fn from_gguf(bytes: &[u8]) -> OpResult<Self> {
        let blocks = whole_blocks(bytes.len(), Q4_1_BLOCK_BYTES)?;
        let mut scales = Vec::with_capacity(2 * blocks);
        let mut qs = Vec::with_capacity(16 * blocks);
        for b in bytes.chunks_exact(Q4_1_BLOCK_BYTES) {
            scales.extend([f16_at(b, 0), f16_at(b, 2)]);
            qs.extend_from_slice(&b[4..]);
        }
        let FixedVec { values, exp } = fixed_from_f16(&scales)?;
        let (d, m) = values.chunks_exact(2).map(|p| (p[0], p[1])).unzip();
        Ok(Self { qs, d, m, exp })
    }

    /// Borrow as the kernel's view.
    pub fn view(&self) -> Q4_1<'_> {
        Q4_1 { qs: &self.qs, d: &self.d, m: &self.m, exp: self.exp }
    }
}

impl Q8_0Owned {
    /// Import GGUF Q8_0 blocks.
    pub fn from_gguf(bytes: &[u8]) -> OpResult<Self> {
        let blocks = whole_blocks(bytes.len(), Q8_0_BLOCK_BYTES)?;
        let mut scales = Vec::with_capacity(blocks);
        let mut qs = Vec::with_capacity(QK * blocks);
        for b in bytes.chunks_exact(Q8_0_BLOCK_BYTES) {
            scales.push(f16_at(b, 0));
            qs.extend(b[2..].iter().map(|&v| v as i8));
        }
        let FixedVec { values, exp } = fixed_from_f16(&scales)?;
        Ok(Self { qs, d: values, exp })
    }

    /// Borrow as the kernel's view.
    pub fn view(&self) -> Q8_0<'_> {
        Q8_0 { qs: &self.qs, d: &self.d, exp: self.exp }
    }
}

/// The integer type activations are quantized to, per block of 32: `i8` (llama.cpp's Q8
/// activation blocks; the `u8 x i8` products of `vpmaddubsw` / VNNI) or `i16` (256 times
/// finer, for accuracy; the `i16 x i16` products of `vpmaddwd`).
pub trait ActInt: Copy + Default + Send + Sync + 'static {
    /// Largest magnitude of a quantized value (127 or 32767).
    const MAX: i64;
    /// The value `v`, known to be within `-MAX..=MAX`.
    fn from_i64(v: i64) -> Self;
    /// The value as i32.
    fn widen(self) -> i32;
}

impl ActInt for i8 {
    const MAX: i64 = 127;
    fn from_i64(v: i64) -> Self {
        v as i8
    }
    fn widen(self) -> i32 {
        self as i32
    }
}

impl ActInt for i16 {
    const MAX: i64 = 32767;
    fn from_i64(v: i64) -> Self {
        v as i16
    }
    fn widen(self) -> i32 {
        self as i32
    }
}

/// Wide activations quantized per block of 32: `x[32b + j] ~= s[b] * a[32b + j]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActBlocks<T> {
    /// Values in `-MAX..=MAX`.
    pub a: Vec<T>,
    /// Integer block scales in units of the input's last bit: `ceil(max|x| / MAX)`, 0 for
    /// an all-zero block; below 2^25 (i8) or 2^17 (i16).
    pub s: Vec<i32>,
    /// `sum_j a[32b + j]` per block (the Q4_1 min term), |sum| <= 32 * MAX.
    pub sum: Vec<i32>,
}

/// Quantize `x` (length a multiple of 32) per block: `S = ceil(max|x| / MAX)`,
/// `a = round(x / S)` (ties away from zero), so `|a| <= MAX` and the error of each element
/// is at most `S / 2`. A block with `max|x| <= MAX` has `S <= 1` and is exact.
pub fn quantize_act<T: ActInt>(x: &[i32]) -> ActBlocks<T> {
    quantize_act_on(Isa::detect(), x)
}

/// [`quantize_act`] on a given instruction set (the same bits on each).
pub fn quantize_act_on<T: ActInt>(isa: Isa, x: &[i32]) -> ActBlocks<T> {
    debug_assert!(x.len().is_multiple_of(QK));
    let blocks = x.len() / QK;
    let mut out = ActBlocks { a: vec![T::default(); x.len()], s: vec![0; blocks], sum: vec![0; blocks] };
    if blocks <= QUANTIZE_TASK_BLOCKS {
        quantize_blocks(isa, x, &mut out.a, &mut out.s, &mut out.sum);
    } else {
        // Every block is quantized on its own, so the split does not change the bits.
        let (n, items) = (QUANTIZE_TASK_BLOCKS, QUANTIZE_TASK_BLOCKS * QK);
        out.a
            .par_chunks_mut(items)
            .zip(out.s.par_chunks_mut(n))
            .zip(out.sum.par_chunks_mut(n))
            .zip(x.par_chunks(items))
            .for_each(|(((a, s), sum), x)| quantize_blocks(isa, x, a, s, sum));
    }
    out
}

/// Blocks per parallel task of [`quantize_act`] (a prompt's rows; a decode step's one row
/// of up to 48 blocks runs on the calling thread).
const QUANTIZE_TASK_BLOCKS: usize = 256;

/// [`quantize_act`] of the blocks of `x` into `a`, `s` and `sum` (as long as `x`, and one
/// per block).
fn quantize_blocks<T: ActInt>(isa: Isa, x: &[i32], a: &mut [T], s_out: &mut [i32], sum_out: &mut [i32]) {
    for (b, xb) in x.chunks_exact(QK).enumerate() {
        let block: &[i32; QK] = xb.try_into().expect("a whole block");
        let mut q = [0i32; QK];
        #[cfg(target_arch = "x86_64")]
        let s = if isa == Isa::Avx512 {
            // SAFETY: `Isa::Avx512` is only produced on a CPU with its features.
            unsafe { avx512::quantize_block(block, T::MAX, &mut q) }
        } else {
            quantize_block(block, T::MAX, &mut q)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let s = {
            let _ = isa;
            quantize_block(block, T::MAX, &mut q)
        };
        s_out[b] = s;
        for (a, &q) in a[b * QK..(b + 1) * QK].iter_mut().zip(&q) {
            *a = T::from_i64(q as i64);
        }
        sum_out[b] = q.iter().sum();
    }
}

/// One block: `S = ceil(max|x| / max)` (returned) and `q_j = round(x_j / S)`, ties away
/// from zero (all 0 when `S = 0`).
fn quantize_block(x: &[i32; QK], max: i64, q: &mut [i32; QK]) -> i32 {
    let amax = x.iter().map(|&v| (v as i64).abs()).max().unwrap_or(0);
    let s = (amax + max - 1) / max;
    if s > 0 {
        for (q, &v) in q.iter_mut().zip(x) {
            let m = (2 * (v as i64).abs() + s) / (2 * s);
            *q = if v < 0 { -m } else { m } as i32;
        }
    }
    s as i32
}

/// [`quantize_block`] on AVX-512, eight 64-bit lanes at a time. The division by `2S`
/// (`n = 2|x| + S`, `q = floor(n / 2S)`) is a multiplication by `m = floor(2^33 / 2S)`:
/// `n < 2^33` and `q <= max`, so `n m < 2^64` and `floor(n m / 2^33)` is `q` or `q - 1`,
/// which one decided exactly by comparing `(estimate + 1) 2S` with `n`.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::QK;
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU has AVX-512 F, DQ and VL.
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512dq,avx512vl")]
    pub(super) unsafe fn quantize_block(x: &[i32; QK], max: i64, q: &mut [i32; QK]) -> i32 {
        // SAFETY: 32 readable i32 in `x`, two loads of 16.
        let (x0, x1) =
            unsafe { (_mm512_loadu_si512(x.as_ptr().cast()), _mm512_loadu_si512(x.as_ptr().add(16).cast())) };
        // |x| as u32 (`vpabsd` of i32::MIN is 2^31, right when read unsigned).
        let (a0, a1) = (_mm512_abs_epi32(x0), _mm512_abs_epi32(x1));
        let amax = _mm512_reduce_max_epu32(_mm512_max_epu32(a0, a1)) as i64;
        let s = (amax + max - 1) / max;
        if s == 0 {
            return 0;
        }
        let (d, sv) = (_mm512_set1_epi64(2 * s), _mm512_set1_epi64(s));
        let m = _mm512_set1_epi64((1i64 << 33) / (2 * s));
        let one = _mm512_set1_epi64(1);
        for (i, (a, x)) in [(a0, x0), (a1, x1)].into_iter().enumerate() {
            for h in 0..2 {
                let (a, x) = if h == 0 {
                    (_mm512_castsi512_si256(a), _mm512_castsi512_si256(x))
                } else {
                    (_mm512_extracti64x4_epi64::<1>(a), _mm512_extracti64x4_epi64::<1>(x))
                };
                let n = _mm512_add_epi64(_mm512_slli_epi64::<1>(_mm512_cvtepu32_epi64(a)), sv);
                let est = _mm512_srli_epi64::<33>(_mm512_mullo_epi64(n, m));
                let up = _mm512_cmple_epu64_mask(_mm512_mullo_epi64(_mm512_add_epi64(est, one), d), n);
                let mag = _mm512_mask_add_epi64(est, up, est, one);
                let neg = _mm512_cmplt_epi64_mask(_mm512_cvtepi32_epi64(x), _mm512_setzero_si512());
                let v = _mm512_mask_sub_epi64(mag, neg, _mm512_setzero_si512(), mag);
                // SAFETY: lanes `16i + 8h ..+ 8` of `q`.
                unsafe { _mm256_storeu_si256(q.as_mut_ptr().add(16 * i + 8 * h).cast(), _mm512_cvtepi64_epi32(v)) };
            }
        }
        s as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_q4_1_block_keeps_its_nibbles_and_converts_its_scales() {
        // d = 0.5 (0x3800), m = -1.0 (0xbc00), qs = 0x21 0x43 ...
        let mut blk = vec![0x00, 0x38, 0x00, 0xbc];
        blk.extend((0..16u8).map(|j| j | (15 - j) << 4));
        let w = Q4_1Owned::from_gguf(&blk).unwrap();
        assert_eq!(w.exp, 24);
        assert_eq!((w.d[0], w.m[0]), (1 << 23, -(1 << 24)));
        assert_eq!(w.qs, blk[4..]);
        assert!(Q4_1Owned::from_gguf(&blk[..19]).is_err());
    }

    #[test]
    fn a_q8_0_block_keeps_its_values() {
        let mut blk = vec![0x00, 0x3c];
        blk.extend((0..32u8).map(|j| j.wrapping_mul(37)));
        let w = Q8_0Owned::from_gguf(&blk).unwrap();
        assert_eq!((w.d[0], w.exp), (1 << 24, 24));
        assert_eq!(w.qs[3], 111);
        assert_eq!(w.qs[4], (148u8) as i8);
    }

    #[test]
    fn small_blocks_quantize_exactly_and_zero_blocks_have_scale_zero() {
        let mut x: Vec<i32> = (0..32).map(|j| j * 4 - 64).collect();
        x.extend([0; 32]);
        let q = quantize_act::<i8>(&x);
        assert_eq!(q.s, vec![1, 0]);
        assert_eq!(q.a[..32].iter().map(|&a| a as i32).collect::<Vec<_>>(), x[..32]);
        assert_eq!(q.sum[0], x[..32].iter().sum::<i32>());
        // 254 / 127 = 2 exactly: -3 / 2 = -1.5 rounds away to -2.
        let mut y = vec![0i32; 32];
        y[0] = 254;
        y[1] = -3;
        let q = quantize_act::<i8>(&y);
        assert_eq!((q.s[0], q.a[0], q.a[1]), (2, 127, -2));
        // i16: 65534 / 32767 = 2 exactly, the same ties.
        y[0] = 65534;
        let q = quantize_act::<i16>(&y);
        assert_eq!((q.s[0], q.a[0], q.a[1]), (2, 32767, -2));
    }

    /// Every instruction set quantizes every block alike: blocks at the ends of i32, at
    /// each tie of the rounding, and random ones of every magnitude.
    #[test]
    fn every_isa_quantizes_alike() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let mut x: Vec<i32> = vec![i32::MIN, i32::MAX, -1, 1, 0, 32767, -32768, 65534, -65535, 127, 254, -3];
        x.resize(32, 0);
        // Ties: S = 2 (max 65534 or 254), odd values land on halves.
        for max in [254, 65534, 3 * 32767 + 1, i32::MAX] {
            x.extend((0..31).map(|j| ((2 * j + 1) * (max / 64)) | 1).chain([max]));
        }
        for _ in 0..400 {
            let shift = rng.gen_range(0..32);
            x.extend((0..32).map(|_| rng.gen::<i32>() >> shift));
        }
        x.extend([0; 32]);
        let (s8, s16) = (quantize_act_on::<i8>(Isa::Scalar, &x), quantize_act_on::<i16>(Isa::Scalar, &x));
        for isa in Isa::available_noting_skips() {
            let (q8, q16) = (quantize_act_on::<i8>(isa, &x), quantize_act_on::<i16>(isa, &x));
            assert_eq!((&q8.a, &q8.s, &q8.sum), (&s8.a, &s8.s, &s8.sum), "{isa:?}, 8 bits");
            assert_eq!((&q16.a, &q16.s, &q16.sum), (&s16.a, &s16.s, &s16.sum), "{isa:?}, 16 bits");
        }
    }

    proptest! {
        #[test]
        fn each_element_is_within_half_a_block_scale(x in prop::collection::vec(any::<i32>(), 32..=32), shift in 0u32..31) {
            let x: Vec<i32> = x.iter().map(|v| v >> shift).collect();
            let q = quantize_act::<i8>(&x);
            let s = q.s[0] as i64;
            prop_assert!(s < 1 << 25);
            for (&a, &v) in q.a.iter().zip(&x) {
                prop_assert!((a as i64).abs() <= 127);
                prop_assert!(2 * (a as i64 * s - v as i64).abs() <= s);
            }
            let q = quantize_act::<i16>(&x);
            let s = q.s[0] as i64;
            prop_assert!(s < 1 << 17);
            for (&a, &v) in q.a.iter().zip(&x) {
                prop_assert!(2 * (a as i64 * s - v as i64).abs() <= s);
            }
        }
    }
}
