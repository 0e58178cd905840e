//! SiLU and the SwiGLU product on the wide stream (`docs/spec/ops.md` §5.5), with the
//! sigmoid built on [`exp_q30`]: `sigma(a) = 1 / (1 + e^-a)` for `a >= 0`, and
//! `sigma(-a) = 1 - sigma(a)`, so only non-positive exponents are ever taken.

use rayon::prelude::*;

use super::super::check::{same_shape, want, OpResult};
use super::blockdot::Isa;
use super::exp::{exp_q30, exp_q30_batch, EXP_FRAC};
use super::{want_frac, want_len};
use crate::fixed::{round_shift_i64, sat_i32};
use crate::tensor::{DType, TensorSpec};

/// Elements per parallel task.
const CHUNK: usize = 4096;

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
    want_frac(frac)?;
    want_len("up", up.len(), gate.len())?;
    let mut out = vec![0i32; gate.len()];
    let isa = Isa::detect();
    out.par_chunks_mut(CHUNK).zip(gate.par_chunks(CHUNK).zip(up.par_chunks(CHUNK))).for_each(|(o, (g, u))| {
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
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::llm::testutil::{pool, rel_err};
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
