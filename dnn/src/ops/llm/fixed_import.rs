//! Float scales and weights -> fixed-point integers, once, at import (`docs/spec/ops.md`
//! §5.1). The conversion reads the IEEE bits and is integer from there on: a float is
//! `±sig * 2^pow` with an integer `sig`, so `round(v * 2^e)` is a shift (exact when
//! `pow + e >= 0`, one rounding ties away from zero otherwise). No platform float
//! arithmetic is involved, so every importer produces the same integers.

use super::super::check::{bad, OpResult};
use crate::fixed::round_shift_i128;

/// Largest magnitude of a converted mantissa: `2^30`, so that the sum of two mantissas and
/// the products of `docs/spec/ops.md` §5 keep their headroom.
pub const MANT_MAX: i64 = 1 << 30;

/// Cap on the exponent of an f16 tensor: every f16 is a multiple of `2^-24`, so at
/// `e = 24` the conversion is exact and a larger exponent adds no information.
pub const F16_EXP_CAP: u32 = 24;

/// Cap on the exponent of an f32 tensor (norm weights): 30 fraction bits are far below
/// the other errors of a forward pass (relative `2^-30` at magnitude 1).
pub const F32_EXP_CAP: u32 = 30;

/// A finite float as `±sig * 2^pow`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Parts {
    neg: bool,
    sig: u64,
    pow: i32,
}

/// An f16 by its bits, or `None` for infinity and NaN.
fn f16_parts(h: u16) -> Option<Parts> {
    let (neg, e, m) = (h >> 15 == 1, ((h >> 10) & 0x1f) as i32, (h & 0x3ff) as u64);
    match e {
        0x1f => None,
        // Subnormal: m * 2^-24.
        0 => Some(Parts { neg, sig: m, pow: -24 }),
        _ => Some(Parts { neg, sig: m | 1 << 10, pow: e - 25 }),
    }
}

/// An f32 by its bits, or `None` for infinity and NaN.
fn f32_parts(b: u32) -> Option<Parts> {
    let (neg, e, m) = (b >> 31 == 1, ((b >> 23) & 0xff) as i32, (b & 0x7f_ffff) as u64);
    match e {
        0xff => None,
        0 => Some(Parts { neg, sig: m, pow: -149 }),
        _ => Some(Parts { neg, sig: m | 1 << 23, pow: e - 150 }),
    }
}

/// `round(v * 2^e)`, ties away from zero, or `None` above `2^62`.
fn scaled_wide(p: Parts, e: u32) -> Option<i64> {
    let s = p.pow + e as i32;
    let mag = if s >= 0 {
        // sig < 2^24: beyond a shift of 40 only zero stays below 2^62 (and the shift
        // itself must not overflow).
        if s >= 40 && p.sig != 0 {
            return None;
        }
        (p.sig as i128) << s.min(40)
    } else {
        round_shift_i128(p.sig as i128, (-s).min(126) as u32)
    };
    if mag > 1i128 << 62 {
        return None;
    }
    Some(if p.neg { -(mag as i64) } else { mag as i64 })
}

/// `round(v * 2^e)`, ties away from zero; `None` when the magnitude exceeds [`MANT_MAX`].
fn scaled(p: Parts, e: u32) -> Option<i64> {
    scaled_wide(p, e).filter(|m| m.abs() <= MANT_MAX)
}

/// Fixed-point values `values[i] ~= v_i * 2^exp`, one exponent for the tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedVec {
    /// Mantissas, each with magnitude at most [`MANT_MAX`].
    pub values: Vec<i32>,
    /// Fraction bits shared by every value.
    pub exp: u32,
}

/// Convert with the largest exponent `e <= cap` at which every `|round(v * 2^e)|` is at
/// most [`MANT_MAX`] (the largest magnitude decides it; checking all keeps it obviously
/// right, and it runs once per tensor at import).
fn convert(parts: &[Parts], cap: u32) -> OpResult<FixedVec> {
    let exp = (0..=cap)
        .rev()
        .find(|&e| parts.iter().all(|&p| scaled(p, e).is_some()))
        .ok_or_else(|| bad(format!("a value exceeds 2^30 even with exponent 0 (cap {cap})")))?;
    let values = parts.iter().map(|&p| scaled(p, exp).expect("checked at this exponent") as i32).collect();
    Ok(FixedVec { values, exp })
}

/// f16 values (GGUF block scales and mins, by their bits) to one fixed-point tensor with
/// exponent at most [`F16_EXP_CAP`]. Infinity or NaN is an error.
pub fn fixed_from_f16(bits: &[u16]) -> OpResult<FixedVec> {
    let parts = bits.iter().map(|&h| f16_parts(h).ok_or_else(|| bad(format!("f16 {h:#06x} is not finite"))));
    convert(&parts.collect::<OpResult<Vec<_>>>()?, F16_EXP_CAP)
}

/// f32 values (norm weights, by their bits) to one fixed-point tensor with exponent at
/// most `cap`. Infinity or NaN is an error, as is a value above 2^30.
pub fn fixed_from_f32(bits: &[u32], cap: u32) -> OpResult<FixedVec> {
    let parts = bits.iter().map(|&b| f32_parts(b).ok_or_else(|| bad(format!("f32 {b:#010x} is not finite"))));
    convert(&parts.collect::<OpResult<Vec<_>>>()?, cap)
}

/// One f32 (a hyper-parameter such as RMSNorm's epsilon) as `round(v * 2^e)`, or `None`
/// if it is not finite or the result exceeds 2^62.
pub fn f32_to_fixed(v: u32, e: u32) -> Option<i64> {
    scaled_wide(f32_parts(v)?, e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// f16 bits -> f64, independently of the code above (the textbook formula).
    pub(crate) fn f16_to_f64(h: u16) -> f64 {
        let (s, e, m) = ((h >> 15) as i32, ((h >> 10) & 0x1f) as i32, (h & 0x3ff) as f64);
        let mag = if e == 0 { m * 2f64.powi(-24) } else { (1.0 + m / 1024.0) * 2f64.powi(e - 15) };
        if s == 1 {
            -mag
        } else {
            mag
        }
    }

    #[test]
    fn hand_values_convert_exactly() {
        // 1.0 = 0x3c00, -2.0 = 0xc000, 0.5 = 0x3800: max 2 -> exponent 24 gives 2^25 <= 2^30.
        let f = fixed_from_f16(&[0x3c00, 0xc000, 0x3800]).unwrap();
        assert_eq!(f, FixedVec { values: vec![1 << 24, -(2 << 24), 1 << 23], exp: 24 });
        // 65504 (f16 max, 0x7bff) needs exponent 14: 65504 * 2^14 < 2^30.
        let f = fixed_from_f16(&[0x7bff, 0x0001]).unwrap();
        assert_eq!(f.exp, 14);
        assert_eq!(f.values[0], 65504 << 14);
        // The smallest subnormal (2^-24) rounds to 0 at exponent 14: 2^-10 < 1/2.
        assert_eq!(f.values[1], 0);
        assert!(fixed_from_f16(&[0x7c00]).is_err());
        assert!(fixed_from_f16(&[0x7e00]).is_err());
        // f32: 1.5 at cap 30 -> 1.5 * 2^29 (2^30 would be 1.5 * 2^30 > 2^30).
        let f = fixed_from_f32(&[1.5f32.to_bits(), (-0.25f32).to_bits()], 30).unwrap();
        assert_eq!(f, FixedVec { values: vec![3 << 28, -(1 << 27)], exp: 29 });
        assert!(fixed_from_f32(&[f32::INFINITY.to_bits()], 30).is_err());
        assert!(fixed_from_f32(&[3e9f32.to_bits()], 30).is_err());
        assert_eq!(f32_to_fixed(1e-5f32.to_bits(), 32), Some((1e-5f32 as f64 * 2f64.powi(32)).round() as i64));
    }

    #[test]
    fn ties_round_away_from_zero() {
        // 3 * 2^-24 at exponent 23 is 1.5 -> 2, and -1.5 -> -2; force exponent 23 with a
        // companion of magnitude 64 (64 * 2^24 = 2^30 fits, so use 128 to push it down).
        let f = fixed_from_f16(&[0x0003, 0x8003, 0x5800]).unwrap(); // 0x5800 = 128
        assert_eq!(f.exp, 23);
        assert_eq!(&f.values[..2], &[2, -2]);
    }

    proptest! {
        /// Every finite f16 converts to within half a unit of the exponent, and exactly
        /// when its bits fit; the tensor exponent is the largest allowed.
        #[test]
        fn f16_conversion_is_round_to_nearest(bits in prop::collection::vec(0u16..0x7c00, 1..40), neg in any::<u64>()) {
            let bits: Vec<u16> = bits.iter().enumerate().map(|(i, &b)| b | (((neg >> (i % 64)) & 1) as u16) << 15).collect();
            let f = fixed_from_f16(&bits).unwrap();
            let unit = 2f64.powi(-(f.exp as i32));
            for (&b, &q) in bits.iter().zip(&f.values) {
                let v = f16_to_f64(b);
                prop_assert!((q as f64 * unit - v).abs() <= unit / 2.0);
                prop_assert!((q as i64).abs() <= MANT_MAX);
            }
            if f.exp < F16_EXP_CAP {
                let max = bits.iter().map(|&b| f16_to_f64(b).abs()).fold(0.0, f64::max);
                prop_assert!((max * 2f64.powi(f.exp as i32 + 1)).round() > MANT_MAX as f64);
            }
        }
    }
}
