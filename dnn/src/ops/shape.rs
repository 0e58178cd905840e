//! Data movement: reshape, transpose, concat, slice, gather, and argmax.

use super::check::{bad, want, OpResult};
use super::dims::RowDims;
use crate::tensor::{checked_numel, DType, TensorSpec};

/// Row-major strides of a shape.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Transpose: output axis `i` is input axis `perm[i]`.
pub fn transpose<T: Copy + Default>(x: &[T], shape: &[usize], perm: &[usize]) -> Vec<T> {
    let in_strides = strides(shape);
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let n = x.len();
    let mut out = vec![T::default(); n];
    let mut idx = vec![0usize; out_shape.len()];
    for o in out.iter_mut() {
        let src: usize = idx.iter().zip(perm).map(|(&i, &p)| i * in_strides[p]).sum();
        *o = x[src];
        // Increment the output multi-index.
        for ax in (0..idx.len()).rev() {
            idx[ax] += 1;
            if idx[ax] < out_shape[ax] {
                break;
            }
            idx[ax] = 0;
        }
    }
    out
}

/// Concatenate along `axis`: inputs agree on every other dimension.
pub fn concat<T: Copy>(parts: &[(&[T], &[usize])], axis: usize) -> Vec<T> {
    let outer: usize = parts[0].1[..axis].iter().product();
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.0.len()).sum());
    for o in 0..outer {
        for (data, shape) in parts {
            let block: usize = shape[axis..].iter().product();
            out.extend_from_slice(&data[o * block..(o + 1) * block]);
        }
    }
    out
}

/// Slice `[starts[i], ends[i])` on every axis (step 1).
pub fn slice<T: Copy>(x: &[T], shape: &[usize], starts: &[usize], ends: &[usize]) -> Vec<T> {
    let st = strides(shape);
    let out_shape: Vec<usize> = starts.iter().zip(ends).map(|(&s, &e)| e - s).collect();
    let n: usize = out_shape.iter().product();
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        return out;
    }
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..n {
        let src: usize = (0..shape.len()).map(|a| (starts[a] + idx[a]) * st[a]).sum();
        out.push(x[src]);
        for ax in (0..idx.len()).rev() {
            idx[ax] += 1;
            if idx[ax] < out_shape[ax] {
                break;
            }
            idx[ax] = 0;
        }
    }
    out
}

/// Gather rows of `table: v x d`: for each index `t`, row `t` (`0 <= t < v`; the executor
/// rejects other indices). Output `indices.len() x d`.
pub fn gather<T: Copy>(table: &[T], d: usize, indices: &[i32]) -> Vec<T> {
    let mut out = Vec::with_capacity(indices.len() * d);
    for &t in indices {
        let t = t as usize;
        out.extend_from_slice(&table[t * d..(t + 1) * d]);
    }
    out
}

/// Index of the maximum of each row of length `len` (the first one on ties).
pub fn argmax<T: Copy + Ord>(x: &[T], len: usize) -> Vec<i32> {
    if len == 0 {
        return Vec::new();
    }
    x.chunks(len)
        .map(|row| {
            let mut best = 0usize;
            for (i, v) in row.iter().enumerate() {
                if *v > row[best] {
                    best = i;
                }
            }
            best as i32
        })
        .collect()
}

/// `reshape`'s rule: the same data under a shape of the same element count.
pub(crate) fn reshape_rule(x: &TensorSpec, shape: &[usize]) -> OpResult<TensorSpec> {
    if checked_numel(shape) != Some(x.numel()) {
        return Err(bad(format!("cannot reshape {:?} to {shape:?}", x.shape)));
    }
    Ok(TensorSpec::new(x.dtype, shape.to_vec()))
}

/// `transpose`'s rule: `perm` is a permutation of the input's axes.
pub(crate) fn transpose_rule(x: &TensorSpec, perm: &[usize]) -> OpResult<TensorSpec> {
    let mut seen = vec![false; x.shape.len()];
    if perm.len() != x.shape.len() || perm.iter().any(|&p| p >= seen.len() || std::mem::replace(&mut seen[p], true)) {
        return Err(bad(format!("{perm:?} is not a permutation of rank {}", x.shape.len())));
    }
    Ok(TensorSpec::new(x.dtype, perm.iter().map(|&p| x.shape[p]).collect()))
}

/// `concat`'s rule: one dtype and rank, equal sizes off `axis`.
pub(crate) fn concat_rule(ins: &[&TensorSpec], axis: usize) -> OpResult<TensorSpec> {
    let (x, rest) = ins.split_first().ok_or_else(|| bad("takes at least one input"))?;
    if axis >= x.shape.len() {
        return Err(bad(format!("axis {axis} out of rank {}", x.shape.len())));
    }
    let mut shape = x.shape.clone();
    for s in rest {
        let same_other =
            s.shape.len() == x.shape.len() && (0..x.shape.len()).all(|a| a == axis || s.shape[a] == x.shape[a]);
        if s.dtype != x.dtype || !same_other {
            return Err(bad(format!("cannot concat {x:?} with {s:?}")));
        }
        shape[axis] += s.shape[axis];
    }
    Ok(TensorSpec::new(x.dtype, shape))
}

/// `slice`'s rule: `starts <= ends <= size` on every axis.
pub(crate) fn slice_rule(x: &TensorSpec, starts: &[usize], ends: &[usize]) -> OpResult<TensorSpec> {
    let r = x.shape.len();
    if starts.len() != r || ends.len() != r || (0..r).any(|a| starts[a] > ends[a] || ends[a] > x.shape[a]) {
        return Err(bad(format!("slice {starts:?}..{ends:?} does not fit {:?}", x.shape)));
    }
    Ok(TensorSpec::new(x.dtype, (0..r).map(|a| ends[a] - starts[a]).collect()))
}

/// `gather`'s table as `(v, d)`: `v` rows of `d` values.
pub fn gather_dims(table: &[usize]) -> OpResult<(usize, usize)> {
    match *table {
        [v, d] => Ok((v, d)),
        _ => Err(bad(format!("table shape {table:?}, want [V, D]"))),
    }
}

/// `gather`'s rule: i32 indices `[..]` -> rows `[.., D]` of a `[V, D]` table, in its dtype.
pub(crate) fn gather_rule(x: &TensorSpec, table: &TensorSpec) -> OpResult<TensorSpec> {
    want(x, DType::I32, "indices")?;
    let (_, d) = gather_dims(&table.shape)?;
    let mut shape = x.shape.clone();
    shape.push(d);
    Ok(TensorSpec::new(table.dtype, shape))
}

/// `argmax`'s rule: i8 or i32 rows -> i32 index per row; rows must not be empty.
pub(crate) fn argmax_rule(x: &TensorSpec) -> OpResult<TensorSpec> {
    match RowDims::of_last_axis(&x.shape) {
        Some(d) if d.len >= 1 => Ok(TensorSpec::new(DType::I32, x.shape[..x.shape.len() - 1].to_vec())),
        _ => Err(bad(format!("shape {:?} needs a non-empty last axis", x.shape))),
    }
}
