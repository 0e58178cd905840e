//! Integer-only softmax over the last axis.

use rayon::prelude::*;

use super::check::{bad, want, OpResult};
use crate::tensor::{DType, TensorSpec};

/// Largest allowed exp-table entry (keeps every sum far inside i64).
pub const EXP_TABLE_MAX: i32 = 1 << 24;

/// Softmax of i8 rows of length `len`: with `m` the row maximum,
/// `e_i = exp_table[m - x_i]` (index 0..=255), `s = sum e_i`, and
/// `out_i = clamp(floor((512 * e_i + s) / (2 * s)) - 128, -128, 127)` (output scale 1/256,
/// zero point -128). `exp_table[0]` is at least 1, so `s >= 1`.
pub fn softmax(x: &[i8], len: usize, exp_table: &[i32]) -> Vec<i8> {
    let mut out = vec![0i8; x.len()];
    if len == 0 {
        return out;
    }
    out.par_chunks_mut(len).zip(x.par_chunks(len)).for_each(|(o, row)| {
        let m = row.iter().copied().max().unwrap_or(0) as i32;
        let s: i64 = row.iter().map(|&v| exp_table[(m - v as i32) as usize] as i64).sum();
        for (ov, &v) in o.iter_mut().zip(row) {
            let e = exp_table[(m - v as i32) as usize] as i64;
            let q = (512 * e + s) / (2 * s) - 128;
            *ov = q.clamp(-128, 127) as i8;
        }
    });
    out
}

/// `softmax`'s rule: i8 -> i8 over the last axis (rank >= 1), a table of 256 entries in
/// `0..=2^24` with entry 0 at least 1 (so every row sum is at least 1).
pub(crate) fn softmax_rule(x: &TensorSpec, exp_table: &[i32]) -> OpResult<TensorSpec> {
    want(x, DType::I8, "input")?;
    if x.shape.is_empty() {
        return Err(bad("input must have rank >= 1"));
    }
    if exp_table.len() != 256 || exp_table[0] < 1 || exp_table.iter().any(|&e| !(0..=EXP_TABLE_MAX).contains(&e)) {
        return Err(bad("exp_table must have 256 entries in 0..=2^24 with entry 0 >= 1"));
    }
    Ok(x.clone())
}
