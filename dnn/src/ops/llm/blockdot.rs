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
    /// x86-64 AVX-512 F, BW, DQ, VL and VNNI, all detected at run time (never AMX). The
    /// attention's i64 loops, the batched `exp_q30` (`vpmullq`), the activation quantizer
    /// and the packed Q4_1 GEMM (`qgemm.rs`, 16-bit blocks) are compiled for it; the
    /// other block dots run the AVX2 kernels.
    Avx512,
}

impl Isa {
    /// The best this CPU supports.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if Self::has_avx512() {
                return Isa::Avx512;
            }
            if std::is_x86_feature_detected!("avx2") {
                return Isa::Avx2;
            }
        }
        Isa::Scalar
    }

    #[cfg(target_arch = "x86_64")]
    fn has_avx512() -> bool {
        std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512dq")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512vnni")
    }

    /// Every instruction set this CPU can run (the tests run each).
    pub fn available() -> Vec<Self> {
        let mut v = vec![Isa::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                v.push(Isa::Avx2);
            }
            if Self::has_avx512() {
                v.push(Isa::Avx512);
            }
        }
        v
    }

    /// Every instruction set a test should cover, with a note on stderr for each one this
    /// CPU lacks (so a run on a smaller machine says what it skipped).
    pub fn available_noting_skips() -> Vec<Self> {
        let v = Self::available();
        for isa in [Isa::Avx2, Isa::Avx512] {
            if !v.contains(&isa) {
                eprintln!("note: this CPU lacks {isa:?}; its kernels are not tested here");
            }
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

/// Activation rows a tile kernel ([`BlockDot::q4_tile`]) takes at once: the weight row's
/// blocks are loaded and unpacked once for all of them (the integer analogue of a GEMM
/// tile; a prompt's linears run row tiles, a decode step single rows).
pub const TILE_ROWS: usize = 4;

/// Activation types with a row kernel for each weight format.
pub trait BlockDot: ActInt {
    /// The exact row sum for Q4_1 nibbles (16 bytes a block).
    fn q4_row(isa: Isa, qs: &[u8], a: &[Self], sc: &RowScales<'_>) -> i128;
    /// The exact row sum for Q8_0 values.
    fn q8_row(isa: Isa, qs: &[i8], a: &[Self], sc: &RowScales<'_>) -> i128;
    /// The exact row sums of one Q4_1 weight row against [`TILE_ROWS`] activation rows
    /// (`sc[i]` the scales of row `i`; the weight scales and mins are the same in all):
    /// `q4_row` of each row, with the same integers.
    fn q4_tile(isa: Isa, qs: &[u8], a: [&[Self]; TILE_ROWS], sc: &[RowScales<'_>; TILE_ROWS]) -> [i128; TILE_ROWS] {
        std::array::from_fn(|i| Self::q4_row(isa, qs, a[i], &sc[i]))
    }
    /// The exact sums of one activation row against [`TILE_COLS`] consecutive Q4_1 weight
    /// rows: `qs`, `sc.d` and `sc.m` hold the weight rows one after another, `sc.sum` and
    /// `sc.s` the activation row's blocks. `q4_row` of each weight row, same integers.
    fn q4_cols(isa: Isa, qs: &[u8], a: &[Self], sc: &RowScales<'_>) -> [i128; TILE_COLS] {
        cols_by_rows(qs, QK / 2, sc, |q, r| Self::q4_row(isa, q, a, r))
    }
    /// [`BlockDot::q4_cols`] for Q8_0 weight rows.
    fn q8_cols(isa: Isa, qs: &[i8], a: &[Self], sc: &RowScales<'_>) -> [i128; TILE_COLS] {
        cols_by_rows(qs, QK, sc, |q, r| Self::q8_row(isa, q, a, r))
    }
}

/// Weight rows a column-tile kernel ([`BlockDot::q4_cols`]) takes at once for one
/// activation row (a decode step): the activation blocks are loaded once for all of them
/// and each lane of the epilogue is one output, so nothing is summed across lanes.
pub const TILE_COLS: usize = 4;

/// A column tile as [`TILE_COLS`] calls of a row kernel `row` (`qb` weight items a block).
fn cols_by_rows<Q>(
    qs: &[Q],
    qb: usize,
    sc: &RowScales<'_>,
    row: impl Fn(&[Q], &RowScales<'_>) -> i128,
) -> [i128; TILE_COLS] {
    let nb = sc.sum.len();
    std::array::from_fn(|j| {
        let w = j * nb..(j + 1) * nb;
        let r = RowScales { d: &sc.d[w.clone()], m: sc.m.map(|m| &m[w]), sum: sc.sum, s: sc.s };
        row(&qs[j * nb * qb..(j + 1) * nb * qb], &r)
    })
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
        if matches!($isa, Isa::Avx2 | Isa::Avx512) {
            // SAFETY: `Isa::Avx2` and `Isa::Avx512` are only produced by `Isa::detect` and
            // `Isa::available` on a CPU with AVX2.
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
    fn q4_tile(isa: Isa, qs: &[u8], a: [&[i16]; TILE_ROWS], sc: &[RowScales<'_>; TILE_ROWS]) -> [i128; TILE_ROWS] {
        dispatch!(isa, avx2::q4_tile_i16(qs, a, sc), std::array::from_fn(|i| q4_row_scalar(qs, a[i], &sc[i])))
    }
    fn q4_cols(isa: Isa, qs: &[u8], a: &[i16], sc: &RowScales<'_>) -> [i128; TILE_COLS] {
        dispatch!(isa, avx2::q4_cols_i16(qs, a, sc), cols_by_rows(qs, QK / 2, sc, |q, r| q4_row_scalar(q, a, r)))
    }
    fn q8_cols(isa: Isa, qs: &[i8], a: &[i16], sc: &RowScales<'_>) -> [i128; TILE_COLS] {
        dispatch!(isa, avx2::q8_cols_i16(qs, a, sc), cols_by_rows(qs, QK, sc, |q, r| q8_row_scalar(q, a, r)))
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
/// `L` in `0..2^32` (the low half of the lane) and `H = P_b >> 32` (`|H| < 2^23`; `vpmuldq` reads the low 32 bits of a
/// lane as signed, which after a logical shift by 32 are exactly `H`). `L S_b < 2^57`
/// (unsigned, `vpmuludq`) and `|H S_b| < 2^48` accumulate per lane and are folded into an
/// i128 every 16 steps: then a `lo` lane is below `16 * 2^57 = 2^61` and an `hi` lane below
/// `2^52` in magnitude, so the four lanes of each sum exactly in 64 bits (below 2^63 and
/// 2^54) without leaving the registers. So the sum is exact.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{RowScales, QK, TILE_COLS, TILE_ROWS};
    use std::arch::x86_64::*;

    /// Bytes ahead of the current block at which the column tiles prefetch their weight
    /// rows (the rows of a task lie one after another, so this runs into the next tile's
    /// and the one after). Measured (decode, SmolLM2-135M): 64 (about no prefetch) 58.9,
    /// 1024 66.7, 2048 69.4, 4096 66.2, 16384 64.6 tokens/s on one thread.
    const PREFETCH_AHEAD: usize = 2048;

    /// Steps between folds of the lane accumulators (see the module comment).
    const FOLD_EVERY: usize = 16;

    /// Whether the accumulators must fold after the four-block step at block `b`: every
    /// [`FOLD_EVERY`] steps (the kernels step four blocks at a time from 0, then add at
    /// most one last step before [`Acc::finish`] folds).
    #[inline(always)]
    fn fold_due(b: usize) -> bool {
        (b / 4 + 1).is_multiple_of(FOLD_EVERY)
    }

    /// The exact running sum of `P_b * S_b`.
    struct Acc {
        hi: __m256i,
        lo: __m256i,
        total: i128,
    }

    impl Acc {
        #[inline]
        #[target_feature(enable = "avx2")]
        fn new() -> Self {
            Acc { hi: _mm256_setzero_si256(), lo: _mm256_setzero_si256(), total: 0 }
        }

        /// Add four blocks: `dots` their dots, `b` the first block's index.
        ///
        /// # Safety
        /// Blocks `b..b + 4` exist in every array of `sc`.
        #[inline]
        #[target_feature(enable = "avx2")]
        unsafe fn add4(&mut self, dots: __m128i, sc: &RowScales<'_>, b: usize) {
            // SAFETY: blocks `b..b + 4` exist (caller).
            let (d, m) = unsafe { weights4(sc, b) };
            // SAFETY: likewise.
            unsafe { self.add4_with(dots, d, m, sc, b) };
        }

        /// [`Self::add4`] with the weight scales and mins already loaded ([`weights4`]).
        ///
        /// # Safety
        /// Blocks `b..b + 4` exist in the activation arrays of `sc`.
        #[inline]
        #[target_feature(enable = "avx2")]
        unsafe fn add4_with(&mut self, dots: __m128i, d: __m256i, m: Option<__m256i>, sc: &RowScales<'_>, b: usize) {
            // SAFETY: four i32 at `b` in each array (caller); loadu needs no alignment.
            let load = |v: &[i32]| unsafe { _mm_loadu_si128(v.as_ptr().add(b) as *const __m128i) };
            self.add_values(dots, d, m, load(sc.sum), load(sc.s));
        }

        /// Add the last `n < 4` blocks from `b` on: `dots` their dots (zero past `n`),
        /// with their scales zero-padded (a zero block adds nothing).
        ///
        /// # Safety
        /// Blocks `b..b + n` exist in every array of `sc`.
        #[inline]
        #[target_feature(enable = "avx2")]
        unsafe fn add_last(&mut self, dots: __m128i, sc: &RowScales<'_>, b: usize, n: usize) {
            let mask = _mm_cmpgt_epi32(_mm_set1_epi32(n as i32), _mm_setr_epi32(0, 1, 2, 3));
            // SAFETY: block `b + j` exists for `j < n` (caller), and a masked load reads
            // only the lanes its mask selects (the others are zero and never touched).
            let pad = |v: &[i32]| unsafe { _mm_maskload_epi32(v.as_ptr().add(b), mask) };
            let m = sc.m.map(|m| _mm256_cvtepi32_epi64(pad(m)));
            self.add_values(dots, _mm256_cvtepi32_epi64(pad(sc.d)), m, pad(sc.sum), pad(sc.s));
        }

        /// Add four blocks given their dots, weight scales and mins (widened to i64 lanes)
        /// and activation sums and scales (see the module comment for the exactness of each
        /// step).
        #[inline]
        #[target_feature(enable = "avx2")]
        fn add_values(&mut self, dots: __m128i, d: __m256i, m: Option<__m256i>, sum: __m128i, s: __m128i) {
            let mut p = _mm256_mul_epi32(d, _mm256_cvtepi32_epi64(dots));
            if let Some(m) = m {
                p = _mm256_add_epi64(p, _mm256_mul_epi32(m, _mm256_cvtepi32_epi64(sum)));
            }
            let s = _mm256_cvtepi32_epi64(s);
            // `vpmuludq` reads the low 32 bits of each lane as unsigned: `L S_b` without
            // masking `L` out first.
            self.lo = _mm256_add_epi64(self.lo, _mm256_mul_epu32(p, s));
            self.hi = _mm256_add_epi64(self.hi, _mm256_mul_epi32(_mm256_srli_epi64(p, 32), s));
        }

        #[inline]
        #[target_feature(enable = "avx2")]
        fn fold(&mut self) {
            // The four lanes' sum in 64 bits (exact by the bounds in the module comment:
            // wrapping adds of lanes whose true sum fits).
            let sum4 = |v: __m256i| {
                let two = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
                _mm_cvtsi128_si64(_mm_add_epi64(two, _mm_unpackhi_epi64(two, two)))
            };
            let (h, l) = (sum4(self.hi), sum4(self.lo) as u64);
            self.total += ((h as i128) << 32) + l as i128;
            (self.hi, self.lo) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        }

        #[inline]
        #[target_feature(enable = "avx2")]
        fn finish(mut self) -> i128 {
            self.fold();
            self.total
        }
    }

    /// The weight scales and mins of blocks `b..b + 4`, widened to i64 lanes.
    ///
    /// # Safety
    /// Blocks `b..b + 4` exist in `sc.d` and `sc.m`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn weights4(sc: &RowScales<'_>, b: usize) -> (__m256i, Option<__m256i>) {
        // SAFETY: four i32 at `b` (caller); loadu needs no alignment.
        let load = |v: &[i32]| unsafe { _mm256_cvtepi32_epi64(_mm_loadu_si128(v.as_ptr().add(b) as *const __m128i)) };
        (load(sc.d), sc.m.map(load))
    }

    /// The four blocks' dots from their eight-lane partial sums.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn reduce4(v: [__m256i; 4]) -> __m128i {
        let h = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
        _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1))
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

    /// The 32 nibbles of Q4 block `b` as i16: elements 0..16, 16..32.
    ///
    /// # Safety
    /// Block `b` lies inside `qs`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn nibbles_i16(qs: &[u8], b: usize) -> (__m256i, __m256i) {
        // The 16 bytes widened to u16 (`vpmovzxbw` from memory), each `lo + 16 hi`: the low
        // nibbles are `& 15` and the high ones `>> 4`, three instructions for the block.
        // Written as asm because LLVM rewrites the intrinsics' version back into masking
        // the bytes and widening each half (six).
        let x: __m256i;
        // SAFETY: 16 readable bytes at block `b` (caller); the asm only reads them.
        unsafe {
            std::arch::asm!(
                "vpmovzxbw {x}, xmmword ptr [{p}]",
                x = out(ymm_reg) x,
                p = in(reg) qs.as_ptr().add(b * QK / 2),
                options(pure, readonly, nostack, preserves_flags),
            );
        }
        (_mm256_and_si256(x, _mm256_set1_epi16(0x0f)), _mm256_srli_epi16(x, 4))
    }

    /// The eight-lane partial sums of one block's products: `w` its weights as i16, `p` its
    /// 32 activations.
    ///
    /// # Safety
    /// 32 readable i16 at `p`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn madd_i16(w: (__m256i, __m256i), p: *const i16) -> __m256i {
        // SAFETY: 32 readable i16 at `p` (caller); loadu needs no alignment.
        let (alo, ahi) =
            unsafe { (_mm256_loadu_si256(p as *const __m256i), _mm256_loadu_si256(p.add(16) as *const __m256i)) };
        _mm256_add_epi32(_mm256_madd_epi16(w.0, alo), _mm256_madd_epi16(w.1, ahi))
    }

    /// # Safety
    /// Block `b` lies inside both slices.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn q4_i16(qs: &[u8], a: &[i16], b: usize) -> __m256i {
        // SAFETY: block `b` lies inside both slices (caller).
        unsafe { madd_i16(nibbles_i16(qs, b), a.as_ptr().add(b * QK)) }
    }

    /// The Q4_1 tile kernel for i16 activations: four weight blocks unpacked once a step,
    /// then each row's four dots and their epilogue as in the row kernel.
    ///
    /// # Safety
    /// AVX2 is available.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn q4_tile_i16(
        qs: &[u8],
        a: [&[i16]; TILE_ROWS],
        sc: &[RowScales<'_>; TILE_ROWS],
    ) -> [i128; TILE_ROWS] {
        let nb = sc[0].d.len();
        assert!(qs.len() >= nb * QK / 2);
        for (a, s) in a.iter().zip(sc) {
            assert!(a.len() >= nb * QK && s.d.len() == nb && s.s.len() >= nb && s.sum.len() >= nb);
            assert!(s.m.is_none_or(|m| m.len() >= nb));
        }
        let mut acc = [Acc::new(), Acc::new(), Acc::new(), Acc::new()];
        let mut b = 0;
        // SAFETY: every block below `nb` lies inside every slice (asserted above).
        unsafe {
            while b + 4 <= nb {
                let w = [nibbles_i16(qs, b), nibbles_i16(qs, b + 1), nibbles_i16(qs, b + 2), nibbles_i16(qs, b + 3)];
                // Every row's weight scales and mins are the same (the trait's contract).
                let (d, m) = weights4(&sc[0], b);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let p = a[r].as_ptr().add(b * QK);
                    let v = [
                        madd_i16(w[0], p),
                        madd_i16(w[1], p.add(QK)),
                        madd_i16(w[2], p.add(2 * QK)),
                        madd_i16(w[3], p.add(3 * QK)),
                    ];
                    acc.add4_with(reduce4(v), d, m, &sc[r], b);
                }
                if fold_due(b) {
                    acc.iter_mut().for_each(|a| a.fold());
                }
                b += 4;
            }
            if b < nb {
                let (n, z) = (nb - b, _mm256_setzero_si256());
                let w = [
                    nibbles_i16(qs, b),
                    if n > 1 { nibbles_i16(qs, b + 1) } else { (z, z) },
                    if n > 2 { nibbles_i16(qs, b + 2) } else { (z, z) },
                ];
                for (r, acc) in acc.iter_mut().enumerate() {
                    let p = a[r].as_ptr().add(b * QK);
                    let v = [
                        madd_i16(w[0], p),
                        if n > 1 { madd_i16(w[1], p.add(QK)) } else { z },
                        if n > 2 { madd_i16(w[2], p.add(2 * QK)) } else { z },
                        z,
                    ];
                    acc.add_last(reduce4(v), &sc[r], b, n);
                }
            }
            let [a0, a1, a2, a3] = acc;
            [a0.finish(), a1.finish(), a2.finish(), a3.finish()]
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
                        if fold_due(b) {
                            acc.fold();
                        }
                        b += 4;
                    }
                    if b < nb {
                        let n = nb - b;
                        let z = _mm256_setzero_si256();
                        let v = [
                            $block(qs, a, b),
                            if n > 1 { $block(qs, a, b + 1) } else { z },
                            if n > 2 { $block(qs, a, b + 2) } else { z },
                            z,
                        ];
                        acc.add_last(reduce4(v), sc, b, n);
                    }
                    acc.finish()
                }
            }
        };
    }

    /// A column-tile kernel: four blocks a step, and for each of the [`TILE_COLS`] weight
    /// rows their four dots against the activation row's blocks (reduced together) and one
    /// [`Acc`] step of that row, with its scales and mins loaded contiguously (the
    /// activation blocks stay in L1 across the rows); the last `blocks % 4` zero-padded.
    macro_rules! cols_kernel {
        ($name:ident, $q:ty, $a:ty, $block:ident, $qbytes:expr) => {
            /// # Safety
            /// AVX2 is available.
            #[target_feature(enable = "avx2")]
            pub(super) unsafe fn $name(qs: &[$q], a: &[$a], sc: &RowScales<'_>) -> [i128; TILE_COLS] {
                let nb = sc.sum.len();
                assert!(qs.len() >= TILE_COLS * nb * $qbytes && a.len() >= nb * QK && sc.s.len() >= nb);
                assert!(sc.d.len() >= TILE_COLS * nb && sc.m.is_none_or(|m| m.len() >= TILE_COLS * nb));
                let q: [&[$q]; TILE_COLS] = std::array::from_fn(|j| &qs[j * nb * $qbytes..(j + 1) * nb * $qbytes]);
                let rows: [RowScales<'_>; TILE_COLS] = std::array::from_fn(|j| {
                    let w = j * nb..(j + 1) * nb;
                    RowScales { d: &sc.d[w.clone()], m: sc.m.map(|m| &m[w]), sum: sc.sum, s: sc.s }
                });
                let (mut a0, mut a1, mut a2, mut a3) = (Acc::new(), Acc::new(), Acc::new(), Acc::new());
                let mut b = 0;
                // SAFETY: every block below `nb` of every weight row and of the activation
                // row lies inside the slices (asserted above; each `q[j]` and `rows[j]`
                // holds exactly `nb` blocks). A prefetch may name any address: it never
                // faults, and `wrapping_add` keeps the pointer arithmetic defined.
                unsafe {
                    // One weight row's four-block step, its accumulator a named local (kept
                    // in registers: no array indexed at run time).
                    macro_rules! step {
                        ($acc:ident, $j:expr) => {{
                            let j = $j;
                            let ahead = q[j].as_ptr().wrapping_add(b * $qbytes + PREFETCH_AHEAD) as *const i8;
                            for line in (0..4 * $qbytes * std::mem::size_of::<$q>()).step_by(64) {
                                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line));
                            }
                            let v = [
                                $block(q[j], a, b),
                                $block(q[j], a, b + 1),
                                $block(q[j], a, b + 2),
                                $block(q[j], a, b + 3),
                            ];
                            $acc.add4(reduce4(v), &rows[j], b);
                        }};
                    }
                    while b + 4 <= nb {
                        step!(a0, 0);
                        step!(a1, 1);
                        step!(a2, 2);
                        step!(a3, 3);
                        if fold_due(b) {
                            (a0.fold(), a1.fold(), a2.fold(), a3.fold());
                        }
                        b += 4;
                    }
                    if b < nb {
                        let (n, z) = (nb - b, _mm256_setzero_si256());
                        for (j, acc) in [&mut a0, &mut a1, &mut a2, &mut a3].into_iter().enumerate() {
                            let v = [
                                $block(q[j], a, b),
                                if n > 1 { $block(q[j], a, b + 1) } else { z },
                                if n > 2 { $block(q[j], a, b + 2) } else { z },
                                z,
                            ];
                            acc.add_last(reduce4(v), &rows[j], b, n);
                        }
                    }
                }
                [a0.finish(), a1.finish(), a2.finish(), a3.finish()]
            }
        };
    }

    cols_kernel!(q4_cols_i16, u8, i16, q4_i16, QK / 2);
    cols_kernel!(q8_cols_i16, i8, i16, q8_i16, QK);

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

    /// The tile kernel of every ISA gives each row's plain-loop sum (through the portable
    /// row kernel, itself checked against the plain loop above).
    fn check_tile<T: BlockDot + std::fmt::Debug>(qs4: &[u8], rows: [&[T]; TILE_ROWS], sc: &[RowScales<'_>; TILE_ROWS]) {
        let want: [i128; TILE_ROWS] = std::array::from_fn(|i| T::q4_row(Isa::Scalar, qs4, rows[i], &sc[i]));
        for isa in Isa::available_noting_skips() {
            assert_eq!(T::q4_tile(isa, qs4, rows, sc), want, "q4 tile {isa:?}");
        }
    }

    /// Random rows of a tile: activations, their block sums and scales (`s_max` exclusive).
    fn tile_rows<T: BlockDot>(rng: &mut ChaCha8Rng, blocks: usize, s_max: i32) -> Vec<(Vec<T>, Vec<i32>, Vec<i32>)> {
        (0..TILE_ROWS)
            .map(|i| {
                let a: Vec<T> = (0..blocks * QK)
                    .map(|_| {
                        T::from_i64(match i {
                            2 => -T::MAX,
                            3 => T::MAX,
                            _ => rng.gen_range(-T::MAX..=T::MAX),
                        })
                    })
                    .collect();
                let sum = a.chunks(QK).map(|c| c.iter().map(|v| v.widen()).sum()).collect();
                let s = (0..blocks).map(|_| if i >= 2 { s_max - 1 } else { rng.gen_range(0..s_max) }).collect();
                (a, sum, s)
            })
            .collect()
    }

    fn tile_case<T: BlockDot + std::fmt::Debug>(rng: &mut ChaCha8Rng, qs4: &[u8], d: &[i32], m: &[i32], s_max: i32) {
        let rows = tile_rows::<T>(rng, d.len(), s_max);
        let sc: [RowScales<'_>; TILE_ROWS] =
            std::array::from_fn(|i| RowScales { d, m: Some(m), sum: &rows[i].1, s: &rows[i].2 });
        check_tile(qs4, std::array::from_fn(|i| &rows[i].0[..]), &sc);
    }

    /// The column tiles of every ISA give each weight row's plain-loop sum (through the
    /// portable row kernel), for both formats: random rows (several `a`) and extremes.
    fn check_cols<T: BlockDot + std::fmt::Debug>(qs4: &[u8], qs8: &[i8], a: &[T], sc: &RowScales<'_>) {
        let nb = sc.sum.len();
        let row =
            |j: usize| RowScales { d: &sc.d[j * nb..(j + 1) * nb], m: sc.m.map(|m| &m[j * nb..(j + 1) * nb]), ..*sc };
        let want4: [i128; TILE_COLS] =
            std::array::from_fn(|j| T::q4_row(Isa::Scalar, &qs4[j * nb * 16..(j + 1) * nb * 16], a, &row(j)));
        let sc8 = RowScales { m: None, ..*sc };
        let want8: [i128; TILE_COLS] = std::array::from_fn(|j| {
            T::q8_row(Isa::Scalar, &qs8[j * nb * QK..(j + 1) * nb * QK], a, &RowScales { m: None, ..row(j) })
        });
        for isa in Isa::available_noting_skips() {
            assert_eq!(T::q4_cols(isa, qs4, a, sc), want4, "q4 cols {isa:?}");
            assert_eq!(T::q8_cols(isa, qs8, a, &sc8), want8, "q8 cols {isa:?}");
        }
    }

    fn cols_case<T: BlockDot + std::fmt::Debug>(rng: &mut ChaCha8Rng, nb: usize, extreme: bool, s_max: i32) {
        let n = TILE_COLS * nb;
        let (qs4, qs8): (Vec<u8>, Vec<i8>) = if extreme {
            (vec![0xff; n * 16], vec![-128; n * QK])
        } else {
            ((0..n * 16).map(|_| rng.gen()).collect(), (0..n * QK).map(|_| rng.gen()).collect())
        };
        let big =
            |rng: &mut ChaCha8Rng, sign: i32| if extreme { sign << 30 } else { rng.gen_range(-(1 << 30)..=1 << 30) };
        let d: Vec<i32> = (0..n).map(|i| big(rng, if i % 2 == 0 { 1 } else { -1 })).collect();
        let m: Vec<i32> = (0..n).map(|i| big(rng, if i % 3 == 0 { -1 } else { 1 })).collect();
        let rows = tile_rows::<T>(rng, nb, s_max);
        let (a, sum, s) = &rows[if extreme { 3 } else { 0 }];
        check_cols(&qs4, &qs8, a, &RowScales { d: &d, m: Some(&m), sum, s });
    }

    #[test]
    fn column_tiles_agree_on_every_isa() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for nb in [0, 1, 5, 18, 4 * 64 * 3 + 3] {
            for extreme in [false, true] {
                cols_case::<i16>(&mut rng, nb, extreme, 1 << 17);
                cols_case::<i8>(&mut rng, nb, extreme, 1 << 25);
            }
        }
    }

    #[test]
    fn extreme_tiles_agree_on_every_isa() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let nb = 4 * 64 * 3 + 3;
        let qs4 = vec![0xffu8; nb * 16];
        for (d, m) in [(1 << 30, -(1 << 30)), (-(1 << 30), 1 << 30), (1 << 30, 1 << 30)] {
            let (dv, mv) = (vec![d; nb], vec![m; nb]);
            tile_case::<i16>(&mut rng, &qs4, &dv, &mv, 1 << 17);
            tile_case::<i8>(&mut rng, &qs4, &dv, &mv, 1 << 25);
        }
    }

    /// Every block's `P_b` with the low half `L = 2^32 - 32` (its largest for these dots)
    /// and the largest i8 scale, over enough blocks to fold many times: the lane sums
    /// reach their bounds (`16 * 2^57` a lane before a fold), so a fold taken too late
    /// or summed in too few bits shows.
    #[test]
    fn lane_sums_at_their_bounds_fold_exactly() {
        // Nibbles 1 and activations 127: dot = A = 32 * 127 = 2^5 * 127, so
        // P = 2^5 * 127 * (D + M); D + M = -1 / 127 mod 2^27 makes P = -2^5 mod 2^32.
        let inv = (1u64..1 << 27).find(|x| x * 127 % (1 << 27) == 1).unwrap() as i32;
        let (dv, mv) = ((1 << 27) - inv, 0);
        assert_eq!((32i64 * 127 * dv as i64) as u32, u32::MAX - 31);
        let nb = 16 * 4 * 5 + 2;
        let (qs4, qs8) = (vec![0x11u8; TILE_COLS * nb * 16], vec![1i8; TILE_COLS * nb * QK]);
        let a = vec![127i8; nb * QK];
        let (d, m) = (vec![dv; TILE_COLS * nb], vec![mv; TILE_COLS * nb]);
        let (sum, s) = (vec![32 * 127; nb], vec![(1 << 25) - 1; nb]);
        let sc = RowScales { d: &d[..nb], m: Some(&m[..nb]), sum: &sum, s: &s };
        check_all(&qs4[..nb * 16], &qs8[..nb * QK], &a, &sc);
        check_tile(&qs4[..nb * 16], [&a[..]; TILE_ROWS], &[sc; TILE_ROWS]);
        check_cols(&qs4, &qs8, &a, &RowScales { d: &d, m: Some(&m), sum: &sum, s: &s });
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
            tile_case::<i16>(&mut rng, &qs4, &d, &m, 1 << 17);
            tile_case::<i8>(&mut rng, &qs4, &d, &m, 1 << 25);
        }
    }
}
