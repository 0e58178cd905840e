//! Element-wise ops: add, mul, requantize, relu, lookup table.

use rayon::prelude::*;

use crate::fixed::{mbqm, sat_i8};

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
/// `inner` is the product of the dimensions after the axis, `channels` the axis length
/// (1 with one multiplier for per-tensor).
#[allow(clippy::too_many_arguments)]
pub fn requantize(
    x: &[i32],
    inner: usize,
    channels: usize,
    mults: &[i32],
    shifts: &[i32],
    out_zp: i32,
    act_min: i32,
    act_max: i32,
) -> Vec<i8> {
    let mut out = vec![0i8; x.len()];
    let per_tensor = mults.len() == 1;
    out.par_chunks_mut(EW_CHUNK).enumerate().for_each(|(c, o)| {
        let s = c * EW_CHUNK;
        for (i, v) in o.iter_mut().enumerate() {
            let idx = s + i;
            let ch = if per_tensor { 0 } else { (idx / inner) % channels };
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
