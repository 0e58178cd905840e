//! Data movement: transpose, concat, slice, gather, and argmax.

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
