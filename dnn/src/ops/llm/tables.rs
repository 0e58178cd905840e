//! Lookup tables of the wide ops' two functions of one argument, `exp_q30(-a, frac)`
//! (`docs/spec/ops.md` §5.4) and `sigmoid_q30(a, frac)` (§5.5), for every `a` from 0 up
//! to where the exponential is 0 by the `n >= 32` rule: the attention's softmax then
//! costs a lookup per score, and a SwiGLU element a lookup and two products, instead of
//! an `exp_q30` (and a division). The integers are the definitions': each table is its
//! function evaluated once per entry, `exp_q30` is 0 beyond the table, the sigmoid `2^30`,
//! and `sigmoid_q30(-a) = 2^30 - sigmoid_q30(a)` by definition.
//!
//! A table is built once per process, `frac` and function, on first use, for `frac <=`
//! [`MAX_TABLE_FRAC`] (the recommended stream format, `F = 14`, takes 357,731 entries,
//! 1.4 MB); other formats compute each value (the direct paths of [`super::exp`] and
//! [`super::silu`]).

use std::sync::OnceLock;

use super::blockdot::Isa;
use super::exp::{exp_q30_batch, exp_zero_from, EXP_FRAC};
use super::silu::sigmoid_q30;
use crate::fixed::{round_shift_i64, sat_i32};

/// The largest `frac` with a table (`exp_zero_from(15)` = 715,461 entries, 2.9 MB).
pub const MAX_TABLE_FRAC: u32 = 15;

/// The sigmoid beyond the table: `exp_q30(-a) = 0` there, so
/// `floor((2^61 + 2^30) / 2^31) = 2^30`.
const SIGMOID_ONE: i32 = 1 << EXP_FRAC;

/// Entries one step of the build computes.
const BUILD_CHUNK: usize = 1 << 14;

/// Build the exp and sigmoid tables of `frac` now (both at once, when `frac` has them),
/// so that a model's first forward does not pay for them.
pub fn warm(frac: u32) {
    rayon::join(|| ExpTable::cached(frac), || SigmoidTable::cached(frac));
}

/// `f(start + i)` into `out[i]` for one step of a table's build (`f` the tabulated function).
type Fill = fn(Isa, u32, usize, &mut [i32]);

/// The entries `0..exp_zero_from(frac)` of a table, built by `fill` on this thread: a
/// table is built inside a `OnceLock`, and a parallel build there could deadlock, its
/// tasks queued behind pool threads that wait on that same lock (a few ms for `F = 14`).
fn tabulate(isa: Isa, frac: u32, fill: Fill) -> Box<[i32]> {
    assert!(frac <= MAX_TABLE_FRAC, "no table for frac {frac}");
    let mut v = vec![0i32; exp_zero_from(frac) as usize].into_boxed_slice();
    for (c, out) in v.chunks_mut(BUILD_CHUNK).enumerate() {
        fill(isa, frac, c * BUILD_CHUNK, out);
    }
    v
}

/// `exp_q30(-a, frac)` for `a` in `0..exp_zero_from(frac)`.
#[derive(Debug)]
pub struct ExpTable {
    e: Box<[i32]>,
}

impl ExpTable {
    /// Build the table of `frac` (`<= MAX_TABLE_FRAC`) on `isa`.
    pub fn build(isa: Isa, frac: u32) -> ExpTable {
        let fill: Fill = |isa, frac, start, out| {
            let d: Vec<i64> = (start..start + out.len()).map(|a| -(a as i64)).collect();
            exp_q30_batch(isa, &d, frac, out);
        };
        ExpTable { e: tabulate(isa, frac, fill) }
    }

    /// The cached table of `frac`, built on first use; `None` above [`MAX_TABLE_FRAC`].
    pub fn cached(frac: u32) -> Option<&'static ExpTable> {
        static TABLES: [OnceLock<ExpTable>; MAX_TABLE_FRAC as usize + 1] =
            [const { OnceLock::new() }; MAX_TABLE_FRAC as usize + 1];
        let cell = TABLES.get(frac as usize)?;
        Some(cell.get_or_init(|| ExpTable::build(Isa::detect(), frac)))
    }

    /// Its entries: `exp_q30(-a, frac)` at index `a`.
    pub fn entries(&self) -> &[i32] {
        &self.e
    }

    /// `x_t <- exp_q30(x_t - m, frac)` for every `t`, with `m >= x_t` (a softmax row's
    /// maximum): `m - x_t < 2^32` is exact as u32.
    pub fn exp_below_into(&self, isa: Isa, x: &mut [i32], m: i32) {
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if isa == Isa::Avx512 {
            // SAFETY: `Isa::Avx512` only comes from `Isa::detect` / `Isa::available` on a CPU
            // with AVX-512 F.
            done = unsafe { x86::exp_below_lanes(&self.e, x, m) };
        }
        let _ = isa;
        for v in &mut x[done..] {
            let a = (m as u32).wrapping_sub(*v as u32);
            *v = self.e.get(a as usize).copied().unwrap_or(0);
        }
    }
}

/// `sigmoid_q30(a, frac)` for `a` in `0..exp_zero_from(frac)`.
#[derive(Debug)]
pub struct SigmoidTable {
    frac: u32,
    s: Box<[i32]>,
}

impl SigmoidTable {
    /// Build the table of `frac` (`<= MAX_TABLE_FRAC`) on `isa`.
    pub fn build(isa: Isa, frac: u32) -> SigmoidTable {
        let fill: Fill = |isa, frac, start, out| {
            let mut done = 0;
            #[cfg(target_arch = "x86_64")]
            if isa == Isa::Avx512 {
                // SAFETY: `Isa::Avx512` only comes from `Isa::detect` / `Isa::available` on a
                // CPU with AVX-512 F and DQ; `start + out.len() <= 2^20`.
                done = unsafe { super::silu::x86::sigmoid_of_range(start as u32, frac, out) };
            }
            let _ = isa;
            for (i, v) in out.iter_mut().enumerate().skip(done) {
                *v = sigmoid_q30((start + i) as i32, frac) as i32;
            }
        };
        SigmoidTable { frac, s: tabulate(isa, frac, fill) }
    }

    /// The cached table of `frac`, built on first use; `None` above [`MAX_TABLE_FRAC`].
    pub fn cached(frac: u32) -> Option<&'static SigmoidTable> {
        static TABLES: [OnceLock<SigmoidTable>; MAX_TABLE_FRAC as usize + 1] =
            [const { OnceLock::new() }; MAX_TABLE_FRAC as usize + 1];
        let cell = TABLES.get(frac as usize)?;
        Some(cell.get_or_init(|| SigmoidTable::build(Isa::detect(), frac)))
    }

    /// Its `frac`.
    pub fn frac(&self) -> u32 {
        self.frac
    }

    /// Its entries: `sigmoid_q30(a, frac)` at index `a`.
    pub fn entries(&self) -> &[i32] {
        &self.s
    }

    /// `sigmoid_q30(x, frac)`.
    #[inline]
    pub fn sigmoid(&self, x: i32) -> i32 {
        let s = self.s.get(x.unsigned_abs() as usize).copied().unwrap_or(SIGMOID_ONE);
        if x >= 0 {
            s
        } else {
            SIGMOID_ONE - s
        }
    }

    /// SwiGLU (`sat32(rshift(silu(g) u, frac))`, `silu(g) = rshift(g sigma(g), 30)`) of
    /// `g`, `u` into `out` (one length), on `isa`.
    pub fn swiglu_into(&self, isa: Isa, g: &[i32], u: &[i32], out: &mut [i32]) {
        debug_assert!(g.len() == out.len() && u.len() == out.len());
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if isa == Isa::Avx512 {
            // SAFETY: `Isa::Avx512` only comes from `Isa::detect` / `Isa::available` on a CPU
            // with AVX-512 F, DQ and VL; the three slices have one length.
            done = unsafe { x86::swiglu_lanes(self, g, u, out) };
        }
        let _ = isa;
        for ((o, &g), &u) in out[done..].iter_mut().zip(&g[done..]).zip(&u[done..]) {
            // `|g| sigma <= 2^61` and `|silu| |u| <= 2^62`: exact in i64.
            let silu = round_shift_i64(g as i64 * self.sigmoid(g) as i64, EXP_FRAC);
            *o = sat_i32(round_shift_i64(silu * u as i64, self.frac) as i128);
        }
    }
}

/// The AVX-512 lookups: masked gathers, the SwiGLU products by `vpmuldq`.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::super::exp::x86::round_shift_small;
    use super::{SigmoidTable, EXP_FRAC, SIGMOID_ONE};
    use std::arch::x86_64::*;

    /// [`super::ExpTable::exp_below_into`] over the whole sixteens of `x`; returns how
    /// many were written.
    ///
    /// # Safety
    /// AVX-512 F is available.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn exp_below_lanes(e: &[i32], x: &mut [i32], m: i32) -> usize {
        let whole = x.len() - x.len() % 16;
        let (mv, len) = (_mm512_set1_epi32(m), _mm512_set1_epi32(e.len() as i32));
        for i in (0..whole).step_by(16) {
            // SAFETY: `i + 16 <= whole <= x.len()`; loadu / storeu need no alignment; the
            // gather reads only lanes with `a < e.len()` (at most 2^20, so such an `a` is a
            // non-negative i32 index).
            unsafe {
                let a = _mm512_sub_epi32(mv, _mm512_loadu_si512(x.as_ptr().add(i).cast()));
                let inside = _mm512_cmplt_epu32_mask(a, len);
                let v = _mm512_mask_i32gather_epi32::<4>(_mm512_setzero_si512(), inside, a, e.as_ptr());
                _mm512_storeu_si512(x.as_mut_ptr().add(i).cast(), v);
            }
        }
        whole
    }

    /// SwiGLU of eight lanes by the table.
    #[inline]
    #[target_feature(enable = "avx512f,avx512dq,avx512vl")]
    fn swiglu8(t: &SigmoidTable, g: __m256i, u: __m256i) -> __m256i {
        // `|i32::MIN|` stays 2^31 as u32: outside the table (at most 2^20 entries).
        let a = _mm256_abs_epi32(g);
        let inside = _mm256_cmplt_epu32_mask(a, _mm256_set1_epi32(t.s.len() as i32));
        let one = _mm256_set1_epi32(SIGMOID_ONE);
        // SAFETY: only lanes with `a < len` are read, each within the table.
        let s = unsafe { _mm256_mmask_i32gather_epi32::<4>(one, inside, a, t.s.as_ptr()) };
        let s = _mm256_mask_sub_epi32(s, _mm256_cmplt_epi32_mask(g, _mm256_setzero_si256()), one, s);
        let silu = round_shift_small(_mm512_mul_epi32(_mm512_cvtepi32_epi64(g), _mm512_cvtepi32_epi64(s)), EXP_FRAC);
        let p = _mm512_mul_epi32(silu, _mm512_cvtepi32_epi64(u));
        let o = if t.frac == 0 { p } else { round_shift_small(p, t.frac) };
        _mm512_cvtsepi64_epi32(o)
    }

    /// [`swiglu8`] over the whole eights of `g`, `u` into `out`; returns how many elements
    /// were written.
    ///
    /// # Safety
    /// AVX-512 F, DQ and VL are available; `g`, `u` and `out` have one length.
    #[target_feature(enable = "avx512f,avx512dq,avx512vl")]
    pub(super) unsafe fn swiglu_lanes(t: &SigmoidTable, g: &[i32], u: &[i32], out: &mut [i32]) -> usize {
        let whole = out.len() - out.len() % 8;
        for i in (0..whole).step_by(8) {
            // SAFETY: `i + 8 <= whole <= len` of all three; loadu / storeu need no alignment.
            unsafe {
                let gv = _mm256_loadu_si256(g.as_ptr().add(i).cast());
                let uv = _mm256_loadu_si256(u.as_ptr().add(i).cast());
                _mm256_storeu_si256(out.as_mut_ptr().add(i).cast(), swiglu8(t, gv, uv));
            }
        }
        whole
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::llm::exp::exp_q30;
    use crate::ops::llm::silu::swiglu_direct_on;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The table's end: `n` (§5.4) reaches 32 there and not before, so `exp_q30` is 0 from
    /// it on; hand-derived for `frac = 0`: `u = 1549082005 a >= 63 2^29` from
    /// `a = ceil(33822867456 / 1549082005) = 22`.
    #[test]
    fn the_table_ends_where_exp_becomes_zero() {
        assert_eq!(exp_zero_from(0), 22);
        for frac in [0, 1, 8, 14, 15, 16, 31] {
            let len = exp_zero_from(frac) as i64;
            let n = |a: i64| (crate::fixed::round_shift_i128(a as i128 * 1_549_082_005, frac) + (1 << 29)) >> 30;
            assert!(n(len) >= 32 && n(len - 1) < 32, "frac {frac}: len {len}");
            for a in [len, len + 1, len * 2, len.max(i32::MAX as i64)] {
                assert_eq!(exp_q30(-a, frac), 0, "frac {frac}, a {a}");
                if let Ok(x) = i32::try_from(a) {
                    assert_eq!(sigmoid_q30(x, frac), SIGMOID_ONE as i64, "frac {frac}, x {x}");
                }
            }
        }
        // By a second implementation (Python integers): 357,731 and 715,461.
        assert_eq!((exp_zero_from(14), exp_zero_from(15)), (357_731, 715_461));
    }

    /// Every entry of the tables of the recommended format and its neighbours, built on
    /// each ISA, is the scalar `sigmoid_q30`; so is the lookup at both signs and beyond.
    #[test]
    fn every_entry_is_the_scalar_sigmoid() {
        for frac in [0, 13, 14, 15] {
            let want: Vec<i32> = (0..exp_zero_from(frac)).map(|a| sigmoid_q30(a as i32, frac) as i32).collect();
            for isa in Isa::available_noting_skips() {
                let t = SigmoidTable::build(isa, frac);
                assert!(t.entries() == want.as_slice(), "{isa:?}, frac {frac}");
            }
            let t = SigmoidTable::cached(frac).unwrap();
            let len = want.len() as i32;
            for x in [0, 1, -1, len - 1, -(len - 1), len, -len, len + 7, i32::MAX, i32::MIN, i32::MIN + 1] {
                assert_eq!(t.sigmoid(x) as i64, sigmoid_q30(x, frac), "x {x}, frac {frac}");
            }
        }
        assert!(SigmoidTable::cached(MAX_TABLE_FRAC + 1).is_none());
    }

    /// Every entry of the exp tables, built on each ISA, is the scalar `exp_q30`; so is the
    /// lookup below a row's maximum at the table's edges and at the ends of i32.
    #[test]
    fn every_exp_entry_is_the_scalar_exp() {
        for frac in [0, 1, 14, 15] {
            let want: Vec<i32> = (0..exp_zero_from(frac)).map(|a| exp_q30(-(a as i64), frac)).collect();
            for isa in Isa::available_noting_skips() {
                assert!(ExpTable::build(isa, frac).entries() == want.as_slice(), "{isa:?}, frac {frac}");
            }
            let t = ExpTable::cached(frac).unwrap();
            let len = want.len() as i32;
            for m in [i32::MAX, 0, len, i32::MIN] {
                let mut x: Vec<i32> = [0, 1, len - 1, len, len + 1, 1 << 30, i32::MAX]
                    .iter()
                    .flat_map(|&gap| [m as i64 - gap as i64, m as i64 - gap as i64 - 16])
                    .chain([i32::MIN as i64, m as i64])
                    .filter(|&v| v >= i32::MIN as i64)
                    .map(|v| v as i32)
                    .collect();
                x.extend(x.clone().iter().rev());
                x.push(m);
                let want: Vec<i32> = x.iter().map(|&v| exp_q30(v as i64 - m as i64, frac)).collect();
                for isa in Isa::available() {
                    let mut got = x.clone();
                    t.exp_below_into(isa, &mut got, m);
                    assert_eq!(got, want, "{isa:?}, frac {frac}, m {m}");
                }
            }
        }
        assert!(ExpTable::cached(MAX_TABLE_FRAC + 1).is_none());
    }

    /// The lookup SwiGLU equals the direct one (every ISA's) on the table's edges, the ends
    /// of i32 and random operands of a model's size.
    #[test]
    fn the_lookup_swiglu_equals_the_direct_one() {
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        for frac in [0, 1, 14, 15] {
            let t = SigmoidTable::cached(frac).unwrap();
            let len = t.entries().len() as i32;
            let edge = [i32::MIN, i32::MIN + 1, -len - 1, -len, -len + 1, -1, 0, 1, len - 1, len, len + 1, i32::MAX];
            let mut g: Vec<i32> = edge.iter().flat_map(|&g| edge.map(|_| g)).collect();
            let mut u: Vec<i32> = edge.iter().flat_map(|_| edge).collect();
            for _ in 0..5000 {
                g.push(rng.gen_range(-2 * len..2 * len));
                u.push(rng.gen_range(-(1 << 20)..1 << 20));
            }
            let want = swiglu_direct_on(Isa::Scalar, &g, &u, frac).unwrap();
            for isa in Isa::available_noting_skips() {
                assert_eq!(swiglu_direct_on(isa, &g, &u, frac).unwrap(), want, "direct, {isa:?}, frac {frac}");
                let mut out = vec![0; g.len()];
                t.swiglu_into(isa, &g, &u, &mut out);
                assert_eq!(out, want, "table, {isa:?}, frac {frac}");
            }
        }
    }
}
