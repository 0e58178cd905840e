//! Integer-only layer normalisation and RMS normalisation over the last axis.

use rayon::prelude::*;

use super::check::{bad, i8_range, want, OpResult};
use crate::fixed::{isqrt_u128, round_div_i128};
use crate::tensor::{DType, TensorSpec};

/// Fraction bits of the normalised value `z`.
pub const NORM_FRAC_BITS: u32 = 16;

/// Output stage shared by both norms: `clamp(out_zp + round(z*gamma + beta) / 2^shift)`.
#[derive(Clone, Copy, Debug)]
pub struct NormOut<'a> {
    /// Per-channel scale (length = row length).
    pub gamma: &'a [i32],
    /// Per-channel offset (length = row length), or none (zero).
    pub beta: Option<&'a [i32]>,
    /// Right shift of the affine result (0..=62).
    pub shift: u32,
    /// Output zero point.
    pub out_zp: i32,
    /// Integer epsilon added to the variance term.
    pub eps: i64,
}

fn emit(z: i128, i: usize, p: &NormOut<'_>) -> i8 {
    let y = z * p.gamma[i] as i128 + p.beta.map_or(0, |b| b[i] as i128);
    let r = round_div_i128(y, 1i128 << p.shift) + p.out_zp as i128;
    r.clamp(-128, 127) as i8
}

/// LayerNorm of rows of length `n` (values widened to i32):
/// `S = sum x`, `c_i = n*x_i - S`, `Q = sum c_i^2`, `D = isqrt(floor(Q/n) + eps)`,
/// `z_i = round(c_i * 2^16 / D)` (0 if `D = 0`), then the output stage.
pub fn layernorm(x: &[i32], n: usize, p: &NormOut<'_>) -> Vec<i8> {
    let mut out = vec![0i8; x.len()];
    if n == 0 {
        return out;
    }
    out.par_chunks_mut(n).zip(x.par_chunks(n)).for_each(|(o, row)| {
        let nn = n as i128;
        let s: i128 = row.iter().map(|&v| v as i128).sum();
        let q: i128 = row.iter().map(|&v| (nn * v as i128 - s).pow(2)).sum();
        let d = isqrt_u128((q / nn + p.eps as i128) as u128) as i128;
        for (i, (ov, &v)) in o.iter_mut().zip(row).enumerate() {
            let c = nn * v as i128 - s;
            let z = if d == 0 { 0 } else { round_div_i128(c << NORM_FRAC_BITS, d) };
            *ov = emit(z, i, p);
        }
    });
    out
}

/// RMSNorm of rows of length `n`: `Q = sum x_i^2`, `D = isqrt(floor(Q/n) + eps)`,
/// `z_i = round(x_i * 2^16 / D)` (0 if `D = 0`), then the output stage.
pub fn rmsnorm(x: &[i32], n: usize, p: &NormOut<'_>) -> Vec<i8> {
    let mut out = vec![0i8; x.len()];
    if n == 0 {
        return out;
    }
    out.par_chunks_mut(n).zip(x.par_chunks(n)).for_each(|(o, row)| {
        let nn = n as i128;
        let q: i128 = row.iter().map(|&v| (v as i128).pow(2)).sum();
        let d = isqrt_u128((q / nn + p.eps as i128) as u128) as i128;
        for (i, (ov, &v)) in o.iter_mut().zip(row).enumerate() {
            let z = if d == 0 { 0 } else { round_div_i128((v as i128) << NORM_FRAC_BITS, d) };
            *ov = emit(z, i, p);
        }
    });
    out
}

/// Longest row a norm accepts (keeps the i128 sums exact).
pub const NORM_MAX_LEN: usize = 1 << 20;

/// The rule of both norms: i8 or i32 -> i8 over a last axis of `n` in `1..=2^20`, i32
/// `gamma` and optional `beta` of shape `[n]`, `eps` in `0..=2^62`, `shift <= 62`.
pub(crate) fn norm_rule(
    x: &TensorSpec,
    gamma: &TensorSpec,
    beta: Option<&TensorSpec>,
    eps: i64,
    shift: u32,
    out_zp: i32,
) -> OpResult<TensorSpec> {
    let n = match x.shape.last() {
        Some(&n) if (1..=NORM_MAX_LEN).contains(&n) => n,
        _ => return Err(bad(format!("last dim of {:?} must be in 1..=2^20", x.shape))),
    };
    for (what, s) in std::iter::once(("gamma", gamma)).chain(beta.map(|b| ("beta", b))) {
        want(s, DType::I32, what)?;
        if s.shape != [n] {
            return Err(bad(format!("{what} shape {:?}, want [{n}]", s.shape)));
        }
    }
    if !(0..=1i64 << 62).contains(&eps) || shift > 62 || !i8_range(out_zp) {
        return Err(bad("eps must be in 0..=2^62, shift <= 62, out_zp in -128..=127"));
    }
    Ok(TensorSpec::new(DType::I8, x.shape.clone()))
}
