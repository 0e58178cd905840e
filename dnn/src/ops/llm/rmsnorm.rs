//! RMSNorm on the wide residual stream (`docs/spec/ops.md` §5.3): i32 fixed point in,
//! i32 fixed point out, with an exact integer inverse square root. Unlike the int8
//! `rmsnorm` op (tag 14), the output stays wide: the linears after it quantize it per
//! block of 32 themselves.

use rayon::prelude::*;

use super::super::check::{bad, want, OpResult};
use super::super::dims::RowDims;
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
    isqrt_u128((1u128 << (2 * frac + 2 * INV_FRAC)) / v)
}

/// Per row: `Q = sum x_i^2`, `v = floor(Q / n) + eps`, `INV = inv_rms(v)`,
/// `y_i = sat32(round(x_i * INV * gamma_i / 2^(frac + 30 + gamma_exp - out_frac)))`.
///
/// Exact in i128: `|x_i| <= sqrt(Q)` so `|x_i| * INV <= sqrt(2n) * 2^(frac+30) <= 2^72`,
/// times `|gamma| <= 2^31`.
pub fn rmsnorm_wide(x: &[i32], gamma: &[i32], rows: RowDims, p: &RmsParams) -> OpResult<Vec<i32>> {
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
        let q: u128 = row.iter().map(|&v| (v as i64 * v as i64) as u128).sum();
        let inv = inv_rms(q / rows.len as u128 + p.eps as u128, p.frac) as i128;
        for ((ov, &v), &g) in o.iter_mut().zip(row).zip(gamma) {
            *ov = sat_i32(round_shift_i128(v as i128 * inv * g as i128, p.shift()));
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
