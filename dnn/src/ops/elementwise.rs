//! Element-wise ops: add, mul, requantize, relu, lookup table.

use rayon::prelude::*;

use super::check::{bad, clamp_range, i8_range, same_shape, want, OpResult};
use super::dims::ChannelDims;
use crate::fixed::{mbqm, sat_i8, valid_multiplier};
use crate::tensor::{DType, TensorSpec};

/// Elements per parallel task for element-wise loops.
pub(crate) const EW_CHUNK: usize = 16 * 1024;

/// Parameters of quantized (int8) addition, TFLite style.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QAddParams {
    /// Zero point of `a`.
    pub a_zp: i32,
    /// Multiplier and shift rescaling `a`.
    pub a_mult: i32,
    /// Shift for `a`.
    pub a_shift: i32,
    /// Zero point of `b`.
    pub b_zp: i32,
    /// Multiplier rescaling `b`.
    pub b_mult: i32,
    /// Shift for `b`.
    pub b_shift: i32,
    /// Common left shift applied to both centred inputs (0..=20).
    pub left_shift: u32,
    /// Output multiplier.
    pub out_mult: i32,
    /// Output shift.
    pub out_shift: i32,
    /// Output zero point.
    pub out_zp: i32,
    /// Lower clamp of the output (in -128..=127).
    pub act_min: i32,
    /// Upper clamp of the output.
    pub act_max: i32,
}

/// Wrapping i32 addition of two same-shape tensors.
pub fn add_i32(a: &[i32], b: &[i32]) -> Vec<i32> {
    let mut out = vec![0i32; a.len()];
    out.par_chunks_mut(EW_CHUNK).enumerate().for_each(|(c, o)| {
        let s = c * EW_CHUNK;
        for (i, v) in o.iter_mut().enumerate() {
            *v = a[s + i].wrapping_add(b[s + i]);
        }
    });
    out
}

/// One element of quantized addition.
#[inline]
pub fn qadd_one(x: i8, y: i8, p: &QAddParams) -> i8 {
    let xa = (x as i32 - p.a_zp) << p.left_shift;
    let yb = (y as i32 - p.b_zp) << p.left_shift;
    let sa = mbqm(xa, p.a_mult, p.a_shift);
    let sb = mbqm(yb, p.b_mult, p.b_shift);
    let sum = sa.wrapping_add(sb);
    let r = mbqm(sum, p.out_mult, p.out_shift) as i64 + p.out_zp as i64;
    r.clamp(p.act_min as i64, p.act_max as i64) as i8
}

/// Quantized int8 addition of two same-shape tensors.
pub fn qadd(a: &[i8], b: &[i8], p: &QAddParams) -> Vec<i8> {
    let mut out = vec![0i8; a.len()];
    out.par_chunks_mut(EW_CHUNK).enumerate().for_each(|(c, o)| {
        let s = c * EW_CHUNK;
        for (i, v) in o.iter_mut().enumerate() {
            *v = qadd_one(a[s + i], b[s + i], p);
        }
    });
    out
}

/// Parameters of quantized multiplication.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QMulParams {
    /// Zero point of `a`.
    pub a_zp: i32,
    /// Zero point of `b`.
    pub b_zp: i32,
    /// Output multiplier.
    pub mult: i32,
    /// Output shift.
    pub shift: i32,
    /// Output zero point.
    pub out_zp: i32,
    /// Lower clamp of the output.
    pub act_min: i32,
    /// Upper clamp of the output.
    pub act_max: i32,
}

/// One element of quantized multiplication.
#[inline]
pub fn qmul_one(x: i8, y: i8, p: &QMulParams) -> i8 {
    let prod = (x as i32 - p.a_zp) * (y as i32 - p.b_zp);
    let r = mbqm(prod, p.mult, p.shift) as i64 + p.out_zp as i64;
    r.clamp(p.act_min as i64, p.act_max as i64) as i8
}

/// Quantized int8 multiplication of two same-shape tensors.
pub fn qmul(a: &[i8], b: &[i8], p: &QMulParams) -> Vec<i8> {
    let mut out = vec![0i8; a.len()];
    out.par_chunks_mut(EW_CHUNK).enumerate().for_each(|(c, o)| {
        let s = c * EW_CHUNK;
        for (i, v) in o.iter_mut().enumerate() {
            *v = qmul_one(a[s + i], b[s + i], p);
        }
    });
    out
}

/// Requantize i32 to i8 with per-channel (or one) multipliers along an axis:
/// element `e` with channel index `ch` maps to
/// `clamp(mbqm(e, mult[ch], shift[ch]) + out_zp, act_min, act_max)`.
/// `d` splits the tensor around the axis ([`requantize_dims`]; one channel per-tensor).
#[allow(clippy::too_many_arguments)]
pub fn requantize(
    x: &[i32],
    d: ChannelDims,
    mults: &[i32],
    shifts: &[i32],
    out_zp: i32,
    act_min: i32,
    act_max: i32,
) -> Vec<i8> {
    let mut out = vec![0i8; x.len()];
    // One channel: skip the per-element division (channel 0 either way).
    let one_channel = d.ch == 1;
    out.par_chunks_mut(EW_CHUNK).enumerate().for_each(|(c, o)| {
        let s = c * EW_CHUNK;
        for (i, v) in o.iter_mut().enumerate() {
            let idx = s + i;
            let ch = if one_channel { 0 } else { (idx / d.inner) % d.ch };
            let r = mbqm(x[idx], mults[ch], shifts[ch]) as i64 + out_zp as i64;
            *v = r.clamp(act_min as i64, act_max as i64) as i8;
        }
    });
    out
}

/// ReLU on i8: `max(x, zero_point)` (zero point in -128..=127).
pub fn relu_i8(x: &[i8], zero_point: i32) -> Vec<i8> {
    let z = sat_i8(zero_point as i64);
    x.iter().map(|&v| v.max(z)).collect()
}

/// ReLU on i32: `max(x, zero_point)`.
pub fn relu_i32(x: &[i32], zero_point: i32) -> Vec<i32> {
    x.iter().map(|&v| v.max(zero_point)).collect()
}

/// Lookup table: `out = table[x + 128]` (256 entries).
pub fn lut(x: &[i8], table: &[i8]) -> Vec<i8> {
    x.iter().map(|&v| table[(v as i32 + 128) as usize]).collect()
}

/// `add`'s rule: i32 + i32 of one shape.
pub(crate) fn add_rule(a: &TensorSpec, b: &TensorSpec) -> OpResult<TensorSpec> {
    want(a, DType::I32, "left input")?;
    want(b, DType::I32, "right input")?;
    same_shape(a, b)?;
    Ok(a.clone())
}

/// `qadd`'s rule: i8 + i8 of one shape, int8 zero points and clamp, valid multipliers.
pub(crate) fn qadd_rule(a: &TensorSpec, b: &TensorSpec, p: &QAddParams) -> OpResult<TensorSpec> {
    want(a, DType::I8, "left input")?;
    want(b, DType::I8, "right input")?;
    same_shape(a, b)?;
    let ok = i8_range(p.a_zp)
        && i8_range(p.b_zp)
        && i8_range(p.out_zp)
        && clamp_range(p.act_min, p.act_max)
        && p.left_shift <= 20
        && valid_multiplier(p.a_mult, p.a_shift)
        && valid_multiplier(p.b_mult, p.b_shift)
        && valid_multiplier(p.out_mult, p.out_shift);
    if !ok {
        return Err(bad(format!("invalid parameters {p:?}")));
    }
    Ok(a.clone())
}

/// `qmul`'s rule: i8 * i8 of one shape, int8 zero points and clamp, a valid multiplier.
pub(crate) fn qmul_rule(a: &TensorSpec, b: &TensorSpec, p: &QMulParams) -> OpResult<TensorSpec> {
    want(a, DType::I8, "left input")?;
    want(b, DType::I8, "right input")?;
    same_shape(a, b)?;
    let ok = i8_range(p.a_zp)
        && i8_range(p.b_zp)
        && i8_range(p.out_zp)
        && clamp_range(p.act_min, p.act_max)
        && valid_multiplier(p.mult, p.shift);
    if !ok {
        return Err(bad(format!("invalid parameters {p:?}")));
    }
    Ok(a.clone())
}

/// `requantize`'s dims: per-channel along `axis` with more than one multiplier, else one
/// channel spanning the whole tensor (`docs/spec/ops.md`: `c = 0` per-tensor).
pub fn requantize_dims(shape: &[usize], axis: usize, multipliers: usize) -> OpResult<ChannelDims> {
    if multipliers > 1 && (axis >= shape.len() || shape[axis] != multipliers) {
        return Err(bad(format!("{multipliers} multipliers do not match axis {axis} of shape {shape:?}")));
    }
    Ok(ChannelDims::new(shape, axis, multipliers > 1))
}

/// `requantize`'s rule: i32 -> i8 of the same shape, valid multipliers, int8 output range.
pub(crate) fn requantize_rule(
    x: &TensorSpec,
    multipliers: &[i32],
    shifts: &[i32],
    axis: usize,
    out_zp: i32,
    act_min: i32,
    act_max: i32,
) -> OpResult<TensorSpec> {
    want(x, DType::I32, "input")?;
    if multipliers.is_empty() || multipliers.len() != shifts.len() {
        return Err(bad(format!(
            "{} multipliers and {} shifts (need equal, at least one)",
            multipliers.len(),
            shifts.len()
        )));
    }
    requantize_dims(&x.shape, axis, multipliers.len())?;
    if let Some((m, s)) = multipliers.iter().zip(shifts).find(|(m, s)| !valid_multiplier(**m, **s)) {
        return Err(bad(format!("invalid multiplier {m} / shift {s}")));
    }
    if !i8_range(out_zp) || !clamp_range(act_min, act_max) {
        return Err(bad("out_zp / act_min / act_max outside -128..=127"));
    }
    Ok(TensorSpec::new(DType::I8, x.shape.clone()))
}

/// `relu`'s rule: i8 or i32 unchanged; an i8 zero point is an int8 value.
pub(crate) fn relu_rule(x: &TensorSpec, zero_point: i32) -> OpResult<TensorSpec> {
    if x.dtype == DType::I8 && !i8_range(zero_point) {
        return Err(bad(format!("zero_point {zero_point} outside -128..=127")));
    }
    Ok(x.clone())
}

/// `lut`'s rule: i8 -> i8 through 256 entries.
pub(crate) fn lut_rule(x: &TensorSpec, table: &[i8]) -> OpResult<TensorSpec> {
    want(x, DType::I8, "input")?;
    if table.len() != 256 {
        return Err(bad(format!("table has {} entries, want 256", table.len())));
    }
    Ok(x.clone())
}
