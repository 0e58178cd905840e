//! Q4_1 linears as a GEMM over weights repacked in groups of 16 output columns
//! ([`PackedQ4_1`]), on AVX-512 VNNI with 16-bit activation blocks: the same exact sums as
//! [`super::qlinear`] (`docs/spec/ops.md` §5.2), so the same bits, in about a sixth of the
//! instructions.
//!
//! The row kernels of `blockdot.rs` give each output its own vector lanes: a block's dot
//! ends in a horizontal sum, and each block's exact epilogue serves one output. Here a
//! 32-bit lane is an output column instead. The packed nibbles of 16 columns' block `b`,
//! widened to 16-bit, hold in lane `i` the pair `(q[c_i][2p], q[c_i][2p + 1])`, and
//! `vpdpwssd` against the activation pair `(a[2p], a[2p + 1])` broadcast to every lane adds
//! both products to lane `i`: after the 16 pairs of a block, lane `i` is column `c_i`'s
//! `dot_b` (no horizontal sum), and the epilogue runs on 16 outputs at once. The weights
//! are unpacked once for up to [`ROWS`] activation rows.
//!
//! Exactness of the epilogue, per lane and block (bounds of §5.2 with 16-bit activations:
//! `|D|, |M| <= 2^30`, `|dot_b| < 2^24`, `|A_b| < 2^20`, `0 <= S_b < 2^17`): `P_b = D_b dot_b
//! + M_b A_b` is exact in i64 (`vpmuldq`, `|P_b| < 2^55`), split as `P_b = H 2^32 + L` with
//! `L` in `0..2^32` (`vpmuludq` reads it from the low half of the lane) and `H = P_b >> 32`,
//! `|H| < 2^23` (`vpmuldq` of the lane shifted right by 32). `L S_b < 2^49` summed over at
//! most 2^15 blocks stays below 2^64 (unsigned), `|H S_b| < 2^40` summed below 2^55: the
//! two 64-bit sums are exact without folding, and the output is `H_sum 2^32 + L_sum`.
//!
//! Most blocks take a shorter epilogue. With `S_b <=` [`SMALL_SCALE`] (136: activations
//! below `136 * 32767` in magnitude, `2^8` in real terms with 14 fraction bits),
//! `dot_b S_b` is exact in i32 (`vpmulld`) and `A_b S_b` below 2^28, so `P_b S_b =
//! D_b (dot_b S_b) + M_b (A_b S_b)` is two `vpmuldq` per half, summed in one i64 word per
//! lane: five multiplies per 16 outputs and block instead of eight. A group takes it when
//! its scales and mins keep that sum below 2^63 over all its blocks (checked once, when
//! packing: [`one_word_bound`]); blocks with larger scales take the split epilogue, and
//! the output is the 128-bit sum of both.

use super::super::check::OpResult;
use super::blockq::{ActBlocks, Q4_1, QK};
use super::qlinear::BlockDims;

/// Output columns in a packed group: one per 32-bit lane of a 512-bit register.
pub const GROUP: usize = 16;

/// Activation rows the kernel takes at once (the group's weights are unpacked once for
/// them).
pub const ROWS: usize = 4;

/// Bytes of one group's block: 8 lines of 32 bytes (see [`PackedQ4_1`]).
const BLOCK_BYTES: usize = GROUP * QK / 2;

/// The largest `|dot_b|` with 16-bit activations: 32 nibbles of 15 times 32767.
const DOT_MAX: i64 = 32 * 15 * 32767;

/// The largest `|A_b|` with 16-bit activations.
const SUM_MAX: i64 = 32 * 32767;

/// The largest activation scale `S_b` whose block takes the one-word epilogue (see the
/// module comment): `DOT_MAX * S_b` fits i32 up to here and not one further.
pub const SMALL_SCALE: i32 = 136;
const _: () = assert!(DOT_MAX * SMALL_SCALE as i64 <= i32::MAX as i64);
const _: () = assert!(DOT_MAX * (SMALL_SCALE as i64 + 1) > i32::MAX as i64);

/// The bound on one column's one-word sum over its blocks' scales `d` and mins `m`:
/// `sum_b |D_b| DOT_MAX S + |M_b| SUM_MAX S` with `S = SMALL_SCALE`. Its group takes the
/// one-word epilogue when the bound of every column is below 2^63.
pub fn one_word_bound(d: impl Iterator<Item = i32>, m: impl Iterator<Item = i32>) -> u128 {
    let s = SMALL_SCALE as u128;
    d.zip(m)
        .map(|(d, m)| d.unsigned_abs() as u128 * DOT_MAX as u128 * s + m.unsigned_abs() as u128 * SUM_MAX as u128 * s)
        .sum()
}

/// Q4_1 weights `[n, k]` repacked for the micro-kernel (`avx512::group_rows`): the same
/// nibbles, scales and mins in another order (the committed tensors are the GGUF order;
/// this copy lives in the executor).
///
/// Columns are taken 16 at a time (group `g` holds columns `16g..16g + 16`; the last group
/// is padded with zero weights, whose outputs are dropped), column `16g + j` in lane
/// `i = 2j` (`j < 8`) or `i = 2(j - 8) + 1`. For group `g` and block `b`:
/// * `qs[((g * nb + b) * 8 + p) * 32 + 2i + e]` (`p < 8`, `i < 16`, `e < 2`) holds element
///   `2p + e` of lane `i`'s column's block in its low nibble and element `16 + 2p + e` in
///   its high nibble;
/// * `dm[((g * nb + b) * 2) * 16 + i]` is that block's `D`, `dm[((g * nb + b) * 2 + 1) * 16
///   + i]` its `M`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackedQ4_1 {
    n: usize,
    k: usize,
    exp: u32,
    qs: Vec<u8>,
    dm: Vec<i32>,
    /// Per group: whether it takes the one-word epilogue ([`one_word_bound`]).
    one_word: Vec<bool>,
}

impl PackedQ4_1 {
    /// Repack `w`, which holds `[n, k]` weights; an error names the array whose length
    /// does not match `[n, k]`, or a `k` or exponent out of range.
    pub fn new(w: Q4_1<'_>, n: usize, k: usize) -> OpResult<Self> {
        let dims = BlockDims { rows: 0, k, n };
        dims.check(0, w.exp)?;
        w.check(dims)?;
        let nb = k / QK;
        let groups = n.div_ceil(GROUP);
        let mut qs = vec![0u8; groups * nb * BLOCK_BYTES];
        let mut dm = vec![0i32; groups * nb * 2 * GROUP];
        for c in 0..n {
            // Column 16g + j sits in lane 2j (j < 8) or 2(j - 8) + 1: the epilogue's even
            // 64-bit lanes then hold the group's first eight columns, the odd ones the rest.
            let (g, j) = (c / GROUP, c % GROUP);
            let i = if j < GROUP / 2 { 2 * j } else { 2 * (j - GROUP / 2) + 1 };
            for b in 0..nb {
                let src = &w.qs[(c * nb + b) * QK / 2..][..QK / 2];
                // Element j < 16 is the low nibble of byte j, element 16 + j its high one.
                let q = |j: usize| if j < 16 { src[j] & 15 } else { src[j - 16] >> 4 };
                let gb = g * nb + b;
                for p in 0..8 {
                    for e in 0..2 {
                        qs[(gb * 8 + p) * 32 + 2 * i + e] = q(2 * p + e) | q(16 + 2 * p + e) << 4;
                    }
                }
                dm[gb * 2 * GROUP + i] = w.d[c * nb + b];
                dm[(gb * 2 + 1) * GROUP + i] = w.m[c * nb + b];
            }
        }
        let one_word = (0..groups)
            .map(|g| {
                (g * GROUP..n.min((g + 1) * GROUP)).all(|c| {
                    let blocks = c * nb..(c + 1) * nb;
                    one_word_bound(w.d[blocks.clone()].iter().copied(), w.m[blocks].iter().copied()) < 1 << 63
                })
            })
            .collect();
        Ok(PackedQ4_1 { n, k, exp: w.exp, qs, dm, one_word })
    }

    /// Whether group `g` takes the one-word epilogue.
    pub fn one_word(&self, g: usize) -> bool {
        self.one_word[g]
    }

    /// Rows (outputs).
    pub fn n(&self) -> usize {
        self.n
    }

    /// Columns (inputs).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Fraction bits of the scales and mins.
    pub fn exp(&self) -> u32 {
        self.exp
    }

    /// Column groups.
    pub fn groups(&self) -> usize {
        self.n.div_ceil(GROUP)
    }

    /// Group `g`'s nibbles and scales.
    fn group(&self, g: usize) -> (&[u8], &[i32]) {
        let nb = self.k / QK;
        (&self.qs[g * nb * BLOCK_BYTES..][..nb * BLOCK_BYTES], &self.dm[g * nb * 2 * GROUP..][..nb * 2 * GROUP])
    }

    /// Group `g`'s 16 outputs `sat32(rshift(sum_b P_b S_b, E))` for activation rows
    /// `r0..r0 + rows` of `x` (`rows <= ROWS`): `out[r][i]` for column `16g + i`, rows
    /// past `rows` zero.
    ///
    /// # Safety
    /// The CPU has AVX2, AVX-512 F/BW/DQ/VL and VNNI (`Isa::Avx512`), `g < self.groups()`,
    /// and `x` holds rows `r0..r0 + rows` of `self.k` values.
    #[cfg(target_arch = "x86_64")]
    pub(crate) unsafe fn outputs(&self, g: usize, x: &ActBlocks<i16>, r0: usize, rows: usize) -> [[i32; GROUP]; ROWS] {
        let nb = self.k / QK;
        let (qs, dm) = self.group(g);
        let row = |r: usize| {
            let r = r0 + r;
            (&x.a[r * self.k..][..self.k], &x.sum[r * nb..][..nb], &x.s[r * nb..][..nb])
        };
        let mut out = [[0i32; GROUP]; ROWS];
        let (e, one_word) = (self.exp, self.one_word[g]);
        // SAFETY: the CPU's features and the slices' lengths are the caller's (each row
        // slice is exactly `k` values and `nb` blocks long, the group `nb` blocks).
        unsafe {
            macro_rules! rows {
                ($($r:literal),*) => {
                    match rows {
                        $($r => out[..$r].copy_from_slice(&avx512::group_rows::<$r>(qs, dm, std::array::from_fn(row), nb, e, one_word)),)*
                        _ => unreachable!("at most ROWS rows"),
                    }
                };
            }
            rows!(1, 2, 3, 4);
        }
        out
    }
}

/// The AVX-512 micro-kernel (see the module comment for the layout and the exactness).
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{BLOCK_BYTES, GROUP};
    use std::arch::x86_64::*;

    /// `acc + (w . pair)` per 32-bit lane (`vpdpwssd`, exact: no lane sum here nears
    /// 2^31) with the two i16 at `pair` broadcast to every lane. Written as asm because
    /// LLVM splits the intrinsic into `vpmaddwd` and `vpaddd` and the broadcast into its
    /// own instruction: three instructions instead of one.
    ///
    /// # Safety
    /// Two i16 are readable at `pair`; the CPU has AVX-512 VNNI.
    #[inline]
    #[target_feature(enable = "avx512f,avx512vnni")]
    unsafe fn dpwssd_broadcast(acc: __m512i, w: __m512i, pair: *const i16) -> __m512i {
        let mut acc = acc;
        // SAFETY: 4 readable bytes at `pair` (caller); the asm only reads them.
        unsafe {
            std::arch::asm!(
                "vpdpwssd {acc}, {w}, dword ptr [{pair}]{{1to16}}",
                acc = inout(zmm_reg) acc,
                w = in(zmm_reg) w,
                pair = in(reg) pair,
                options(pure, readonly, nostack, preserves_flags),
            );
        }
        acc
    }

    /// One activation row: its values, block sums `A_b` and block scales `S_b`.
    pub(super) type Row<'a> = (&'a [i16], &'a [i32], &'a [i32]);

    /// A group's block scales `D` and mins `M`, with their odd columns shifted into the
    /// low halves of the 64-bit lanes (where `vpmuldq` reads).
    #[derive(Clone, Copy)]
    struct BlockDm {
        d: __m512i,
        m: __m512i,
        d_odd: __m512i,
        m_odd: __m512i,
    }

    /// The running sums of one row against the group: even and odd columns in the 64-bit
    /// lanes (`lo` sums `L S_b` as unsigned, `hi` sums `H S_b`, `word` the one-word
    /// epilogue's `P_b S_b`).
    #[derive(Clone, Copy)]
    struct Acc {
        lo_even: __m512i,
        lo_odd: __m512i,
        hi_even: __m512i,
        hi_odd: __m512i,
        word_even: __m512i,
        word_odd: __m512i,
    }

    /// The 16 columns' outputs `sat32(rshift(sum_b P_b S_b, exp))` against `R` rows, the
    /// blocks with `S_b <= SMALL_SCALE` in the one-word epilogue when `one_word` (the
    /// group's scales and mins allow it).
    ///
    /// # Safety
    /// The CPU has the features enabled here; `qs` and `dm` hold `nb` blocks of one group
    /// and each row `nb` blocks; `one_word` only for a group within [`super::one_word_bound`].
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
    pub(super) unsafe fn group_rows<const R: usize>(
        qs: &[u8],
        dm: &[i32],
        rows: [Row<'_>; R],
        nb: usize,
        exp: u32,
        one_word: bool,
    ) -> [[i32; GROUP]; R] {
        debug_assert!(qs.len() == nb * BLOCK_BYTES && dm.len() == nb * 2 * GROUP);
        debug_assert!(rows.iter().all(|r| r.0.len() == nb * 32 && r.1.len() == nb && r.2.len() == nb));
        let zero = _mm512_setzero_si512();
        let mut acc =
            [Acc { lo_even: zero, lo_odd: zero, hi_even: zero, hi_odd: zero, word_even: zero, word_odd: zero }; R];
        let nib = _mm512_set1_epi16(15);
        for b in 0..nb {
            // Two partial dots a row (the low and the high nibbles' elements), so that
            // the `vpdpwssd` chains are half as long.
            let (mut dots, mut dots_hi) = ([zero; R], [zero; R]);
            for p in 0..8 {
                // SAFETY: 32 bytes of line `p` of block `b` (caller's lengths).
                let x = unsafe { _mm512_cvtepu8_epi16(_mm256_loadu_si256(qs.as_ptr().add((b * 8 + p) * 32).cast())) };
                let (w_lo, w_hi) = (_mm512_and_si512(x, nib), _mm512_srli_epi16::<4>(x));
                for ((dot, dot_hi), row) in dots.iter_mut().zip(&mut dots_hi).zip(&rows) {
                    // SAFETY: elements `32b + 2p ..+ 2` and `32b + 16 + 2p ..+ 2` of the row.
                    unsafe {
                        let pair = row.0.as_ptr().add(b * 32 + 2 * p);
                        *dot = dpwssd_broadcast(*dot, w_lo, pair);
                        *dot_hi = dpwssd_broadcast(*dot_hi, w_hi, pair.add(16));
                    }
                }
            }
            for (dot, dot_hi) in dots.iter_mut().zip(dots_hi) {
                *dot = _mm512_add_epi32(*dot, dot_hi);
            }
            // SAFETY: the block's 16 scales and 16 mins (caller's lengths).
            let (d, m) = unsafe {
                let at = dm.as_ptr().add(b * 2 * GROUP);
                (_mm512_loadu_si512(at.cast()), _mm512_loadu_si512(at.add(GROUP).cast()))
            };
            let dm_b = BlockDm { d, m, d_odd: _mm512_srli_epi64::<32>(d), m_odd: _mm512_srli_epi64::<32>(m) };
            // Every row's block small (the common case): the one-word epilogue for all,
            // with no branch between the rows.
            let small = |row: &Row<'_>| one_word && row.2[b] <= super::SMALL_SCALE;
            if rows.iter().all(small) {
                for ((acc, dot), row) in acc.iter_mut().zip(dots).zip(&rows) {
                    word_epilogue(acc, dot, dm_b, row.1[b], row.2[b]);
                }
            } else {
                for ((acc, dot), row) in acc.iter_mut().zip(dots).zip(&rows) {
                    if small(row) {
                        word_epilogue(acc, dot, dm_b, row.1[b], row.2[b]);
                    } else {
                        split_epilogue(acc, dot, dm_b, row.1[b], row.2[b]);
                    }
                }
            }
        }
        acc.map(|a| {
            let mut out = [0i32; GROUP];
            // SAFETY: `out` is 16 writable i32, eight at each half.
            unsafe {
                _mm256_storeu_si256(out.as_mut_ptr().cast(), finish(a.hi_even, a.lo_even, a.word_even, exp));
                _mm256_storeu_si256(
                    out.as_mut_ptr().add(GROUP / 2).cast(),
                    finish(a.hi_odd, a.lo_odd, a.word_odd, exp),
                );
            }
            out
        })
    }

    /// One block's `P_b S_b` into `acc.word` for `S_b <= SMALL_SCALE` in a group within
    /// [`super::one_word_bound`]: `|dot_b| S_b < 2^31` and `|A_b| S_b < 2^28` are exact in
    /// i32, each product `vpmuldq`, and the bound keeps the word's sum below 2^63.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn word_epilogue(acc: &mut Acc, dot: __m512i, dm: BlockDm, a_sum: i32, scale: i32) {
        let BlockDm { d, m, d_odd, m_odd } = dm;
        let dot_s = _mm512_mullo_epi32(dot, _mm512_set1_epi32(scale));
        let sum_s = _mm512_set1_epi64((a_sum * scale) as i64);
        let dot_s_odd = _mm512_srli_epi64::<32>(dot_s);
        let p_even = _mm512_add_epi64(_mm512_mul_epi32(d, dot_s), _mm512_mul_epi32(m, sum_s));
        let p_odd = _mm512_add_epi64(_mm512_mul_epi32(d_odd, dot_s_odd), _mm512_mul_epi32(m_odd, sum_s));
        acc.word_even = _mm512_add_epi64(acc.word_even, p_even);
        acc.word_odd = _mm512_add_epi64(acc.word_odd, p_odd);
    }

    /// One block's `P_b S_b` into `acc.lo` and `acc.hi` (any `S_b`, see the module
    /// comment): `P_b` exact in i64, then `L S_b` and `H S_b`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn split_epilogue(acc: &mut Acc, dot: __m512i, dm: BlockDm, a_sum: i32, scale: i32) {
        let BlockDm { d, m, d_odd, m_odd } = dm;
        // `S_b` in every 64-bit lane (`vpmuludq` and `vpmuldq` read the low halves).
        let (sum, s) = (_mm512_set1_epi32(a_sum), _mm512_set1_epi64(scale as i64));
        let p_even = _mm512_add_epi64(_mm512_mul_epi32(d, dot), _mm512_mul_epi32(m, sum));
        let dot_odd = _mm512_srli_epi64::<32>(dot);
        let p_odd = _mm512_add_epi64(_mm512_mul_epi32(d_odd, dot_odd), _mm512_mul_epi32(m_odd, sum));
        acc.lo_even = _mm512_add_epi64(acc.lo_even, _mm512_mul_epu32(p_even, s));
        acc.lo_odd = _mm512_add_epi64(acc.lo_odd, _mm512_mul_epu32(p_odd, s));
        acc.hi_even = _mm512_add_epi64(acc.hi_even, _mm512_mul_epi32(_mm512_srli_epi64::<32>(p_even), s));
        acc.hi_odd = _mm512_add_epi64(acc.hi_odd, _mm512_mul_epi32(_mm512_srli_epi64::<32>(p_odd), s));
    }

    /// `sat32(rshift(H 2^32 + L + W, exp))` per 64-bit lane (`L` read as unsigned, `W` as
    /// signed, `exp <= 62`): the sum formed exactly in 128 bits (`vh:vl`), rounded half away
    /// from zero by adding `2^(exp-1)` (one less when negative) and shifting right
    /// arithmetically, then saturated to i32 from the high half and the low one.
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512dq,avx512vl")]
    pub(super) fn finish(hi: __m512i, lo: __m512i, word: __m512i, exp: u32) -> __m256i {
        let (zero, one) = (_mm512_setzero_si512(), _mm512_set1_epi64(1));
        // H 2^32 + L = (H >> 32) 2^64 + ((H << 32) + L), the low part's carry into the high.
        let vl = _mm512_add_epi64(lo, _mm512_slli_epi64::<32>(hi));
        let vh = _mm512_srai_epi64::<32>(hi);
        let vh = _mm512_mask_add_epi64(vh, _mm512_cmplt_epu64_mask(vl, lo), vh, one);
        // Plus W: its sign extension (0 or -1) into the high half, and the low part's carry.
        let wl = _mm512_add_epi64(vl, word);
        let vh = _mm512_add_epi64(vh, _mm512_srai_epi64::<63>(word));
        let (vl, vh) = (wl, _mm512_mask_add_epi64(vh, _mm512_cmplt_epu64_mask(wl, vl), vh, one));
        // The rounding term: 2^(exp-1), less one for a negative sum; none for exp = 0.
        let r = if exp == 0 {
            zero
        } else {
            let half = _mm512_set1_epi64(1 << (exp - 1));
            _mm512_mask_sub_epi64(half, _mm512_cmplt_epi64_mask(vh, zero), half, one)
        };
        let vl2 = _mm512_add_epi64(vl, r);
        let vh = _mm512_mask_add_epi64(vh, _mm512_cmplt_epu64_mask(vl2, vl), vh, one);
        // The 128-bit arithmetic shift: `qh:ql` (a count of 64 shifts a lane to zero).
        let (e, back) = (_mm_cvtsi64_si128(exp as i64), _mm_cvtsi64_si128(64 - exp as i64));
        let ql = _mm512_or_si512(_mm512_srl_epi64(vl2, e), _mm512_sll_epi64(vh, back));
        let qh = _mm512_sra_epi64(vh, e);
        // Saturate: above i32::MAX when qh > 0 or (qh = 0 and ql >= 2^31); below i32::MIN
        // when qh < -1 or (qh = -1 and ql < 2^64 - 2^31, unsigned).
        let minus_one = _mm512_set1_epi64(-1);
        let over = _mm512_cmpgt_epi64_mask(qh, zero)
            | (_mm512_cmpeq_epi64_mask(qh, zero) & _mm512_cmpgt_epu64_mask(ql, _mm512_set1_epi64(i32::MAX as i64)));
        let under = _mm512_cmplt_epi64_mask(qh, minus_one)
            | (_mm512_cmpeq_epi64_mask(qh, minus_one)
                & _mm512_cmplt_epu64_mask(ql, _mm512_set1_epi64(i32::MIN as i64)));
        let q = _mm512_mask_mov_epi64(ql, over, _mm512_set1_epi64(i32::MAX as i64));
        let q = _mm512_mask_mov_epi64(q, under, _mm512_set1_epi64(i32::MIN as i64));
        _mm512_cvtepi64_epi32(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixed::{round_shift_i128, sat_i32};
    use crate::ops::llm::blockdot::Isa;
    use crate::ops::llm::blockq::Q4_1Owned;
    use crate::ops::llm::qlinear::{block_linears_on, linear_q4_1_on, ActBits, BlockDims, BlockWeightsRef};
    use crate::ops::llm::testutil::{cpu_seconds_per_call, pool};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The packed GEMM runs only on AVX-512 (elsewhere the row kernels serve the same call).
    fn avx512() -> bool {
        let has = Isa::available().contains(&Isa::Avx512);
        if !has {
            eprintln!("note: this CPU lacks Avx512; the packed GEMM is not tested here");
        }
        has
    }

    /// Weights of two kinds of column group in turn: scales and mins up to about 2^22 and
    /// 2^25 (a real model's sizes), and scales and mins drawn from the ends of their range
    /// as often as from its middle.
    fn weights(rng: &mut ChaCha8Rng, n: usize, k: usize) -> Q4_1Owned {
        weights_of(rng, n, k, |g| g % 2 == 0)
    }

    /// Weights whose groups `g` with `real(g)` have a real model's scales and mins, the
    /// others extreme ones.
    fn weights_of(rng: &mut ChaCha8Rng, n: usize, k: usize, real: impl Fn(usize) -> bool) -> Q4_1Owned {
        let nb = k / QK;
        let (mut d, mut m) = (Vec::with_capacity(n * nb), Vec::with_capacity(n * nb));
        for c in 0..n {
            for _ in 0..nb {
                if real(c / GROUP) {
                    d.push(rng.gen_range(-(1 << 22)..=1 << 22));
                    m.push(rng.gen_range(-(1 << 25)..=1 << 25));
                } else {
                    let mut v = || match rng.gen_range(0..4) {
                        0 => *[1 << 30, -(1 << 30), (1 << 30) - 1, 0, 1, -1].get(rng.gen_range(0..6)).unwrap(),
                        _ => rng.gen_range(-(1 << 30)..=1 << 30),
                    };
                    d.push(v());
                    m.push(v());
                }
            }
        }
        Q4_1Owned { qs: (0..n * k / 2).map(|_| rng.gen()).collect(), d, m, exp: 24 }
    }

    /// Activations with blocks at full scale (`|x|` up to 2^31 - 1, so `S_b` up to its
    /// largest, 65539), blocks of small values and zero blocks.
    fn acts(rng: &mut ChaCha8Rng, len: usize) -> Vec<i32> {
        let mut x = vec![0i32; len];
        for b in x.chunks_mut(QK) {
            let mag = *[i32::MAX, 1 << 20, 40_000, 0].get(rng.gen_range(0..4)).unwrap();
            for v in b {
                *v = if mag == 0 { 0 } else { rng.gen_range(-mag..=mag) };
            }
        }
        x
    }

    #[test]
    fn packing_checks_the_arrays() {
        let w = Q4_1Owned { qs: vec![0; 32], d: vec![1; 2], m: vec![0; 2], exp: 24 };
        assert!(PackedQ4_1::new(w.view(), 2, 32).is_ok());
        assert!(PackedQ4_1::new(w.view(), 1, 64).is_ok());
        assert!(PackedQ4_1::new(w.view(), 3, 32).is_err());
        assert!(PackedQ4_1::new(w.view(), 1, 48).is_err());
        assert!(PackedQ4_1::new(Q4_1 { exp: 63, ..w.view() }, 2, 32).is_err());
    }

    #[test]
    fn packed_gemm_equals_the_row_kernels() {
        if !avx512() {
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        // Widths around the group (padding of the last group), rows around the kernel's
        // four and the task's 32, one block and many.
        let shapes =
            [(1, 16, 32, 24), (3, 1, 64, 0), (5, 17, 96, 62), (37, 40, 576, 24), (9, 300, 192, 40), (70, 33, 64, 1)];
        for (rows, n, k, exp) in shapes {
            let w = Q4_1Owned { exp, ..weights(&mut rng, n, k) };
            let packed = PackedQ4_1::new(w.view(), n, k).unwrap();
            let x = acts(&mut rng, rows * k);
            let want = linear_q4_1_on(Isa::Scalar, &x, w.view(), BlockDims { rows, k, n }, ActBits::I16).unwrap();
            for threads in [1, 3] {
                let ws = [(BlockWeightsRef::Q4_1Packed(w.view(), &packed), n)];
                let got = pool(threads).install(|| block_linears_on(Isa::Avx512, &x, k, &ws, ActBits::I16).unwrap());
                assert_eq!(got, vec![want.clone()], "{rows}x{n}x{k}, exponent {exp}, {threads} threads");
            }
        }
    }

    /// The vector finish against the scalar one (`round_shift_i128`, `sat_i32`) for every
    /// exponent: random sums over the whole range of `H`, the sums at and beside each
    /// rounding tie, and those at and beside the ends of i32 after the shift.
    #[test]
    fn the_vector_finish_rounds_and_saturates_as_the_scalar_one() {
        if !avx512() {
            return;
        }
        use std::arch::x86_64::*;
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for exp in 0..=62u32 {
            let mut sums: Vec<i128> = (0..64).map(|_| rng.gen_range(-(1i128 << 87)..1 << 87)).collect();
            sums.extend((0..64).map(|_| rng.gen_range(-(1i128 << (exp + 33))..1 << (exp + 33))));
            for base in [0i128, 1, 2, 5, i32::MAX as i128, i32::MIN as i128, i32::MAX as i128 + 1, i32::MIN as i128 - 1]
            {
                for sign in [1i128, -1] {
                    let q = base * sign;
                    let tie = (q << exp) + if exp > 0 { 1 << (exp - 1) } else { 0 };
                    sums.extend([q << exp, (q << exp) - 1, (q << exp) + 1, tie - 1, tie, tie + 1, -tie]);
                }
            }
            for chunk in sums.chunks(8) {
                let mut v = [0i128; 8];
                v[..chunk.len()].copy_from_slice(chunk);
                // v = H 2^32 + L + W with L in 0..2^32 and the one-word sum W zero, at an
                // end of i64 or anywhere between.
                let w: Vec<i64> = (0..8)
                    .map(|_| match rng.gen_range(0..4) {
                        0 => 0,
                        1 => *[i64::MAX, i64::MIN, -1, 1].get(rng.gen_range(0..4)).unwrap(),
                        _ => rng.gen(),
                    })
                    .collect();
                let (h, l): (Vec<i64>, Vec<i64>) = v
                    .iter()
                    .zip(&w)
                    .map(|(&v, &w)| (((v - w as i128) >> 32) as i64, ((v - w as i128) & 0xffff_ffff) as i64))
                    .unzip();
                let mut out = [0i32; 8];
                // SAFETY: AVX-512 was checked above; the loads read 8 i64 each, the store
                // writes 8 i32.
                unsafe {
                    let load = |x: &[i64]| _mm512_loadu_si512(x.as_ptr().cast());
                    _mm256_storeu_si256(out.as_mut_ptr().cast(), avx512::finish(load(&h), load(&l), load(&w), exp));
                }
                let want: Vec<i32> = v.iter().map(|&v| sat_i32(round_shift_i128(v, exp))).collect();
                assert_eq!(out.to_vec(), want, "exponent {exp}, sums {v:?}");
            }
        }
    }

    /// The longest reduction (`k = 2^20`, 2^15 blocks) with every block at the bounds the
    /// epilogue's exactness rests on: `S_b = 65539` (the largest 16-bit scale), the low
    /// half `L` of `P_b` close to 2^32, so the unsigned sum of `L S_b` ends just below
    /// 2^64 (a signed or 63-bit sum would wrap), and the value checked against the
    /// closed form `rshift(2^15 P S, E)`.
    #[test]
    fn the_longest_reduction_at_its_bounds_is_exact() {
        if !avx512() {
            return;
        }
        let (n, k) = (16, 1 << 20);
        let nb = k / QK;
        // x = 2^31 - 1 everywhere: S = ceil(x / 32767) = 65539 (32767 * 65538 = x - 1),
        // a = round(x / S) = 32767 (x = 65539 * 32766 + 32773, and 32773 > 65539 / 2), so
        // A = 32 * 32767 and, with every nibble 15, dot = 15 A. With D = 1, pick M in
        // 2^30 - 2^16..2^30 for the largest L.
        let (s, a) = (65539i128, 32 * 32767i128);
        let dot = 15 * a;
        let p = |m: i128| dot + m * a;
        let m = ((1 << 30) - (1 << 16)..1 << 30).max_by_key(|&m| p(m) & 0xffff_ffff).unwrap();
        assert!(p(m) & 0xffff_ffff > 0xfff0_0000, "L = {:#x}", p(m) & 0xffff_ffff);
        let w = Q4_1Owned { qs: vec![0xff; n * k / 2], d: vec![1; n * nb], m: vec![m as i32; n * nb], exp: 62 };
        let packed = PackedQ4_1::new(w.view(), n, k).unwrap();
        let x = vec![i32::MAX; k];
        let ws = [(BlockWeightsRef::Q4_1Packed(w.view(), &packed), n)];
        let got = pool(1).install(|| block_linears_on(Isa::Avx512, &x, k, &ws, ActBits::I16).unwrap());
        let want = sat_i32(round_shift_i128(nb as i128 * p(m) * s, 62));
        assert_eq!(got, vec![vec![want; n]]);
        let spec = linear_q4_1_on(Isa::Scalar, &x, w.view(), BlockDims { rows: 1, k, n }, ActBits::I16).unwrap();
        assert_eq!(spec, vec![want; n]);
        // The sum of the low halves alone passes 2^63, so a signed 64-bit sum would fail.
        assert!(nb as i128 * (p(m) & 0xffff_ffff) * s > 1 << 63);
    }

    /// The one-word bound by hand: one block with `D = 1`, `M = -1` is `136 (DOT_MAX +
    /// SUM_MAX) = 136 * 16,776,704 = 2,281,631,744`; a group takes the one-word epilogue when every column's
    /// bound is below 2^63, and SmolLM2-sized scales and mins (about 2^22 and 2^25, the
    /// test weights' real-sized groups) do, the extreme groups not.
    #[test]
    fn the_one_word_bound() {
        assert_eq!(one_word_bound([1].into_iter(), [-1].into_iter()), 2_281_631_744);
        assert_eq!(
            one_word_bound([i32::MIN, 3].into_iter(), [0, -2].into_iter()),
            (1 << 31) * 2_139_029_760 + 3 * 2_139_029_760 + 2 * 142_601_984
        );
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let w = weights(&mut rng, 64, 1536);
        let p = PackedQ4_1::new(w.view(), 64, 1536).unwrap();
        assert_eq!((0..4).map(|g| p.one_word(g)).collect::<Vec<_>>(), [true, false, true, false]);
    }

    /// The one-word epilogue at its ends: activation blocks at `S_b = 136` with every
    /// nibble 15 and every value 32767 (`dot_b S_b = 2,139,029,760`, the largest below
    /// 2^31) beside blocks at 137 (the split epilogue) in one row, against columns whose
    /// bound is just below 2^63 (the word's sum reaches 2^62.9) and just above it (the
    /// group takes the split epilogue): the same integers as the portable kernel.
    #[test]
    fn the_one_word_epilogue_at_its_bounds_is_exact() {
        if !avx512() {
            return;
        }
        let (k, nb) = (32 * 48, 48);
        // Every column: D_b = d (largest with the bound below 2^63 over 48 blocks), M_b =
        // 0 or -d, so P_b S_b = d dot_b S_b for positive activations.
        let per_block = (DOT_MAX * SMALL_SCALE as i64) as u128;
        let d = ((1u128 << 63) - 1) / (nb as u128 * per_block);
        let d = d as i32;
        assert!(one_word_bound(vec![d; nb].into_iter(), vec![0; nb].into_iter()) < 1 << 63);
        assert!(one_word_bound(vec![d + 1; nb].into_iter(), vec![0; nb].into_iter()) >= 1 << 63);
        // Group 0 at the bound, group 1 one past it (split epilogue), group 2 with mins.
        let n = 48;
        let mut dv = vec![d; 16 * nb];
        dv.extend(vec![d + 1; 16 * nb]);
        dv.extend(vec![d / 2; 16 * nb]);
        let mut mv = vec![0; 32 * nb];
        mv.extend(vec![-d / 2; 16 * nb]);
        let w = Q4_1Owned { qs: vec![0xff; n * k / 2], d: dv, m: mv, exp: 40 };
        let packed = PackedQ4_1::new(w.view(), n, k).unwrap();
        assert_eq!([packed.one_word(0), packed.one_word(1), packed.one_word(2)], [true, false, true]);
        // Row 0: every block at S = 136 (the word's sum at its bound); row 1: blocks at
        // 136 and 137 in turn; row 2: negative, 136; row 3: 137 throughout.
        let at = |s: i32| s * 32767;
        let mut x = vec![at(136); k];
        x.extend((0..k).map(|i| if (i / 32) % 2 == 0 { at(136) } else { at(137) }));
        x.extend(vec![-at(136); k]);
        x.extend(vec![at(137); k]);
        let rows = 4;
        let want = linear_q4_1_on(Isa::Scalar, &x, w.view(), BlockDims { rows, k, n }, ActBits::I16).unwrap();
        let ws = [(BlockWeightsRef::Q4_1Packed(w.view(), &packed), n)];
        let got = pool(1).install(|| block_linears_on(Isa::Avx512, &x, k, &ws, ActBits::I16).unwrap());
        assert_eq!(got, vec![want.clone()]);
        // The word's sum of row 0, group 0 is near 2^63: exact only without a wrap.
        let word = nb as i128 * d as i128 * (DOT_MAX * SMALL_SCALE as i64) as i128;
        assert!(word > 1 << 62 && word < 1 << 63);
        assert_eq!(want[0], sat_i32(round_shift_i128(word, 40)));
    }

    /// One thread's CPU time for a prompt's (64 rows) and a decode step's (1 row) shapes,
    /// packed GEMM against the row kernels on the same call (`cargo test -p opml-dnn
    /// --release --lib qgemm::tests::throughput -- --ignored --nocapture`): a measurement,
    /// not a check.
    #[test]
    #[ignore]
    fn throughput() {
        if !avx512() {
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for (rows, n, k) in [(64, 1536, 576), (64, 576, 1536), (1, 1536, 576), (1, 576, 1536)] {
            // A model's weights (every group takes the one-word epilogue).
            let w = weights_of(&mut rng, n, k, |_| true);
            let packed = PackedQ4_1::new(w.view(), n, k).unwrap();
            let x: Vec<i32> = (0..rows * k).map(|_| rng.gen_range(-(1 << 16)..1 << 16)).collect();
            for (name, wr) in [
                ("row kernels", BlockWeightsRef::Q4_1(w.view())),
                ("packed", BlockWeightsRef::Q4_1Packed(w.view(), &packed)),
            ] {
                let ws = [(wr, n)];
                let step =
                    || drop(std::hint::black_box(block_linears_on(Isa::Avx512, &x, k, &ws, ActBits::I16).unwrap()));
                let s = pool(1).install(|| cpu_seconds_per_call(12800 / rows, step));
                eprintln!(
                    "q4_1 {rows}x{n}x{k} {name}: {:.1} us, {:.2} GMAC/s",
                    s * 1e6,
                    (rows * n * k) as f64 / s / 1e9
                );
            }
        }
    }
}
