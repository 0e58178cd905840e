//! Fixed-point arithmetic (gemmlowp / TFLite integer-only style). See `docs/spec/ops.md` §2.

/// Saturating rounding doubling high multiply (gemmlowp): `floor((a * b + 2^30) / 2^31)`,
/// i.e. `a * b / 2^31` rounded to nearest with ties toward +infinity, with the single
/// overflow case `a = b = i32::MIN` saturating to `i32::MAX`.
#[inline]
pub fn srdhm(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    // Division truncates toward zero, as in C.
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// Rounding divide by `2^exponent` (`exponent` in 0..=31), ties away from zero.
#[inline]
pub fn rdbpot(x: i32, exponent: u32) -> i32 {
    debug_assert!(exponent <= 31);
    let mask: i32 = ((1i64 << exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + (x < 0) as i32;
    (x >> exponent) + (remainder > threshold) as i32
}

/// `x * M * 2^shift` for the real multiplier `M = multiplier / 2^31`:
/// `rdbpot(srdhm(x * 2^max(shift,0), multiplier), max(-shift,0))`, the left shift wrapping.
///
/// Valid parameters (checked when a graph is validated): `multiplier >= 0`,
/// `-31 <= shift <= 30`.
#[inline]
pub fn mbqm(x: i32, multiplier: i32, shift: i32) -> i32 {
    let left = shift.max(0) as u32;
    let right = (-shift).max(0) as u32;
    rdbpot(srdhm(x.wrapping_shl(left), multiplier), right)
}

/// Whether `(multiplier, shift)` is a valid fixed-point multiplier for [`mbqm`].
pub fn valid_multiplier(multiplier: i32, shift: i32) -> bool {
    multiplier >= 0 && (-31..=30).contains(&shift)
}

/// Decompose a non-negative real multiplier into `(multiplier, shift)` with
/// `multiplier` in `[2^30, 2^31)` (or 0) such that `real ~= multiplier / 2^31 * 2^shift`.
/// Returns `None` if the real is negative, not finite, or too large (`>= 2^30`).
/// Reals below `2^-31` become `(0, 0)`.
pub fn quantize_multiplier(real: f64) -> Option<(i32, i32)> {
    if !real.is_finite() || real < 0.0 {
        return None;
    }
    if real == 0.0 {
        return Some((0, 0));
    }
    // frexp: real = mant * 2^exp with mant in [0.5, 1).
    let mut exp = real.log2().floor() as i32 + 1;
    let mut mant = real / 2f64.powi(exp);
    while mant >= 1.0 {
        mant /= 2.0;
        exp += 1;
    }
    while mant < 0.5 {
        mant *= 2.0;
        exp -= 1;
    }
    let mut q = (mant * (1u64 << 31) as f64).round() as i64;
    if q == 1i64 << 31 {
        q /= 2;
        exp += 1;
    }
    if exp < -31 {
        return Some((0, 0));
    }
    if exp > 30 {
        return None;
    }
    Some((q as i32, exp))
}

/// `round(a / b)` for `b > 0`, ties away from zero, in i128.
#[inline]
pub fn round_div_i128(a: i128, b: i128) -> i128 {
    debug_assert!(b > 0);
    let q = (a.abs() * 2 + b) / (2 * b);
    if a < 0 {
        -q
    } else {
        q
    }
}

/// `round(a / b)` for `b > 0`, ties away from zero, in i64.
#[inline]
pub fn round_div_i64(a: i64, b: i64) -> i64 {
    round_div_i128(a as i128, b as i128) as i64
}

/// `floor(sqrt(v))`, exact.
pub fn isqrt_u128(v: u128) -> u128 {
    if v < 2 {
        return v;
    }
    // Bit-by-bit method: exact and free of floating point.
    let mut rem = v;
    let mut res: u128 = 0;
    // Highest power of four not above v.
    let mut bit: u128 = 1u128 << ((127 - v.leading_zeros()) & !1);
    while bit != 0 {
        if rem >= res + bit {
            rem -= res + bit;
            res = (res >> 1) + bit;
        } else {
            res >>= 1;
        }
        bit >>= 2;
    }
    res
}

/// `v / 2^s` rounded to nearest, ties away from zero (`s` in 0..=126): the one rounding of
/// the wide fixed-point ops (`docs/spec/ops.md` §5).
#[inline]
pub fn round_shift_i128(v: i128, s: u32) -> i128 {
    debug_assert!(s <= 126);
    if s == 0 {
        return v;
    }
    let half = 1u128 << (s - 1);
    // Magnitude first, so that the tie goes away from zero for both signs (u128: no
    // overflow even at i128::MIN).
    let q = ((v.unsigned_abs() + half) >> s) as i128;
    if v < 0 {
        -q
    } else {
        q
    }
}

/// [`round_shift_i128`] on an `i64` (`s` in 0..=63): the same rounding, for the kernels
/// whose intermediates provably fit 64 bits (`|v| + 2^(s-1) < 2^64` in `u64`, always).
#[inline]
pub fn round_shift_i64(v: i64, s: u32) -> i64 {
    debug_assert!(s <= 63);
    if s == 0 {
        return v;
    }
    let q = ((v.unsigned_abs() + (1u64 << (s - 1))) >> s) as i64;
    if v < 0 {
        -q
    } else {
        q
    }
}

/// Saturate to i32.
#[inline]
pub fn sat_i32(x: i128) -> i32 {
    x.clamp(i32::MIN as i128, i32::MAX as i128) as i32
}

/// Saturate to i8.
#[inline]
pub fn sat_i8(x: i64) -> i8 {
    x.clamp(i8::MIN as i64, i8::MAX as i64) as i8
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Exact rational reference for srdhm: floor((a*b + 2^30) / 2^31), saturated.
    fn srdhm_ref(a: i32, b: i32) -> i32 {
        let p = a as i128 * b as i128;
        let r = (p + (1i128 << 30)).div_euclid(1i128 << 31);
        r.clamp(i32::MIN as i128, i32::MAX as i128) as i32
    }

    #[test]
    fn hand_values() {
        // 0.5 * 0.5 = 0.25
        assert_eq!(srdhm(1 << 30, 1 << 30), 1 << 29);
        assert_eq!(srdhm(i32::MIN, i32::MIN), i32::MAX);
        // Ties go toward +infinity: 0.5 -> 1, -0.5 -> 0, -1.5 -> -1.
        assert_eq!(srdhm(1 << 30, 1), 1);
        assert_eq!(srdhm(-(1 << 30), 1), 0);
        assert_eq!(srdhm(-3 << 29, 2), -1);
        // 5 / 2 = 2.5 -> 3 ; -5 / 2 = -2.5 -> -3 ; 7/4 = 1.75 -> 2 ; -6/4 = -1.5 -> -2
        assert_eq!(rdbpot(5, 1), 3);
        assert_eq!(rdbpot(-5, 1), -3);
        assert_eq!(rdbpot(7, 2), 2);
        assert_eq!(rdbpot(-6, 2), -2);
        assert_eq!(rdbpot(-7, 0), -7);
        assert_eq!(isqrt_u128(0), 0);
        assert_eq!(isqrt_u128(15), 3);
        assert_eq!(isqrt_u128(16), 4);
        assert_eq!(isqrt_u128(u128::MAX), (1u128 << 64) - 1);
        // 0.75 = 0.75 * 2^0 -> multiplier round(0.75 * 2^31), shift 0.
        assert_eq!(quantize_multiplier(0.75), Some((1_610_612_736, 0)));
        assert_eq!(quantize_multiplier(0.0), Some((0, 0)));
        assert_eq!(quantize_multiplier(-1.0), None);
        for v in [i64::MIN, i64::MIN + 1, -(1 << 62) - 1, -3, -1, 0, 1, 3, (1 << 62) + 1, i64::MAX] {
            for s in 0..=63 {
                assert_eq!(round_shift_i64(v, s) as i128, round_shift_i128(v as i128, s), "{v} >> {s}");
            }
        }
    }

    proptest! {
        #[test]
        fn round_shift_i64_is_round_shift_i128(v in any::<i64>(), s in 0u32..=63) {
            prop_assert_eq!(round_shift_i64(v, s) as i128, round_shift_i128(v as i128, s));
        }

        #[test]
        fn srdhm_matches_rational(a in any::<i32>(), b in any::<i32>()) {
            prop_assert_eq!(srdhm(a, b), srdhm_ref(a, b));
        }

        #[test]
        fn rdbpot_matches_rational(x in any::<i32>(), e in 0u32..=31) {
            let r = round_div_i128(x as i128, 1i128 << e) as i32;
            prop_assert_eq!(rdbpot(x, e), r);
        }

        #[test]
        fn round_shift_matches_round_div(v in any::<i64>(), s in 0u32..=62) {
            prop_assert_eq!(round_shift_i128(v as i128, s), round_div_i128(v as i128, 1i128 << s));
        }

        #[test]
        fn isqrt_is_floor_sqrt(v in any::<u128>()) {
            let r = isqrt_u128(v);
            prop_assert!(r * r <= v);
            let r1 = r + 1;
            prop_assert!(r1.checked_mul(r1).is_none_or(|s| s > v));
        }

        #[test]
        fn quantized_multiplier_is_close(real in 1e-6f64..1e6) {
            let (m, s) = quantize_multiplier(real).unwrap();
            prop_assert!(m >= 1 << 30);
            let back = m as f64 / 2f64.powi(31) * 2f64.powi(s);
            prop_assert!((back - real).abs() <= real * 1e-9);
        }
    }
}
