//! The derived facts every executor needs from a node's shapes: one struct per layout
//! family, computed once by the op's own module (its `*_dims` function) and taken as-is by
//! the graph checker, the native executor and the compiler's lowering, so that they cannot
//! disagree on a size.

use super::conv::Window;

/// Dimensions of the matmul family, in the order they nest:
/// `out[batch][m][n] = sum over k of a[batch][m][k] * b[batch][k][n]`.
///
/// `linear` is `batch = 1` with every leading input axis folded into `m` and its weight
/// stored `[n, k]`; `matmul` takes `batch` from a rank-3 left operand (1 for rank 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatDims {
    /// Independent products (the leading axis of a rank-3 `matmul`).
    pub batch: usize,
    /// Rows of the left operand and of the output.
    pub m: usize,
    /// The reduced axis.
    pub k: usize,
    /// Columns of the output.
    pub n: usize,
}

/// A tensor seen as `[outer, ch, inner]` around one channel axis: the element at flat index
/// `i` belongs to channel `(i / inner) % ch`.
///
/// A per-tensor parameter is the one-channel case `ch = 1`, `inner = numel`, `outer = 1`:
/// the whole tensor is one block, so every element is channel 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelDims {
    /// Product of the axes before the channel axis (0 for an empty tensor).
    pub outer: usize,
    /// Channels (the length of the channel axis).
    pub ch: usize,
    /// Product of the axes after the channel axis.
    pub inner: usize,
}

impl ChannelDims {
    /// Split `shape` around `axis` (`per_channel`), or as one channel (per-tensor).
    /// `axis` must be inside `shape` when `per_channel` (the rule that calls this checks it).
    pub fn new(shape: &[usize], axis: usize, per_channel: bool) -> Self {
        let numel: usize = shape.iter().product();
        let (inner, ch) = if per_channel { (shape[axis + 1..].iter().product(), shape[axis]) } else { (numel, 1) };
        // An empty tensor, or one whose inner axes hold nothing, has no blocks at all.
        let outer = numel.checked_div(inner * ch).unwrap_or(0);
        Self { outer, ch, inner }
    }
}

/// A tensor seen as rows along its last axis (softmax, the norms, argmax).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowDims {
    /// Number of rows (0 when the row length is 0).
    pub rows: usize,
    /// Row length: the last axis.
    pub len: usize,
}

impl RowDims {
    /// Rows of `shape` along its last axis, or `None` for a scalar (rank 0).
    pub fn of_last_axis(shape: &[usize]) -> Option<Self> {
        let len = *shape.last()?;
        let numel: usize = shape.iter().product();
        Some(Self { rows: numel.checked_div(len).unwrap_or(0), len })
    }
}

/// A window sliding over the planes of an NCHW tensor (pools, and the input side of
/// `conv2d`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlaneDims {
    /// Batch (N).
    pub n: usize,
    /// Channels (C).
    pub c: usize,
    /// Input height (H).
    pub h: usize,
    /// Input width (W).
    pub w: usize,
    /// The window.
    pub win: Window,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
}

impl PlaneDims {
    /// The input shape as `[N, C, H, W]`.
    pub fn nchw(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w]
    }

    /// Output positions per plane (`oh * ow`).
    pub fn positions(&self) -> usize {
        self.oh * self.ow
    }
}

/// `conv2d` as a matrix product over im2col columns: weights `[o, kk]` times columns
/// `[positions, kk]` per batch item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvDims {
    /// The input planes and the window over them.
    pub x: PlaneDims,
    /// Output channels (O).
    pub o: usize,
}

impl ConvDims {
    /// Length of one im2col column: `c * kh * kw`.
    pub fn kk(&self) -> usize {
        self.x.c * self.x.win.kernel[0] * self.x.win.kernel[1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::conv::conv_dims;
    use crate::ops::elementwise::requantize_dims;
    use crate::ops::matmul::{linear_dims, matmul_dims};

    #[test]
    fn per_tensor_requantize_is_one_channel_spanning_the_tensor() {
        assert_eq!(requantize_dims(&[2, 3, 4], 1, 1).unwrap(), ChannelDims { outer: 1, ch: 1, inner: 24 });
        // The axis is not read with one multiplier, even when it lies outside the shape.
        assert_eq!(requantize_dims(&[5], 9, 1).unwrap(), ChannelDims { outer: 1, ch: 1, inner: 5 });
    }

    #[test]
    fn every_element_lands_in_the_channel_of_its_axis_index() {
        let shape = [2, 3, 4];
        for axis in 0..3 {
            let d = requantize_dims(&shape, axis, shape[axis]).unwrap();
            assert_eq!(d.outer * d.ch * d.inner, 24);
            for i in 0..24 {
                let coords = [i / 12, (i / 4) % 3, i % 4];
                assert_eq!((i / d.inner) % d.ch, coords[axis], "axis {axis}, element {i}");
            }
        }
    }

    #[test]
    fn an_empty_tensor_has_no_channel_blocks() {
        assert_eq!(requantize_dims(&[0, 3], 1, 3).unwrap().outer, 0);
        assert_eq!(requantize_dims(&[3, 0], 0, 3).unwrap().outer, 0);
        assert_eq!(requantize_dims(&[0, 3], 0, 1).unwrap(), ChannelDims { outer: 0, ch: 1, inner: 0 });
    }

    #[test]
    fn per_channel_requantize_needs_one_multiplier_per_axis_entry() {
        assert!(requantize_dims(&[2, 3], 1, 2).is_err());
        assert!(requantize_dims(&[2, 3], 2, 3).is_err());
    }

    #[test]
    fn linear_folds_every_leading_axis_into_rows() {
        assert_eq!(linear_dims(&[2, 3, 5], &[7, 5]).unwrap(), MatDims { batch: 1, m: 6, k: 5, n: 7 });
        assert_eq!(linear_dims(&[5], &[7, 5]).unwrap(), MatDims { batch: 1, m: 1, k: 5, n: 7 });
        assert!(linear_dims(&[], &[7, 5]).is_err());
        assert!(linear_dims(&[4], &[7, 5]).is_err());
        assert!(linear_dims(&[5], &[7, 5, 1]).is_err());
    }

    #[test]
    fn matmul_takes_its_batch_from_a_rank_three_left_operand() {
        assert_eq!(matmul_dims(&[4, 2, 3], &[4, 3, 5]).unwrap(), MatDims { batch: 4, m: 2, k: 3, n: 5 });
        assert_eq!(matmul_dims(&[2, 3], &[3, 5]).unwrap(), MatDims { batch: 1, m: 2, k: 3, n: 5 });
        assert!(matmul_dims(&[4, 2, 3], &[1, 3, 5]).is_err());
        assert!(matmul_dims(&[2, 3], &[4, 5]).is_err());
        assert!(matmul_dims(&[3], &[3]).is_err());
    }

    #[test]
    fn conv_is_the_window_over_the_input_planes_with_the_weights_kernel() {
        let d = conv_dims(&[2, 3, 8, 6], &[5, 3, 3, 2], [2, 1], [1, 0, 1, 0]).unwrap();
        assert_eq!((d.o, d.kk(), d.x.nchw()), (5, 18, [2, 3, 8, 6]));
        assert_eq!((d.x.oh, d.x.ow, d.x.positions()), (4, 5, 20));
        assert!(conv_dims(&[2, 4, 8, 6], &[5, 3, 3, 2], [1, 1], [0; 4]).is_err());
        assert!(conv_dims(&[2, 3, 2, 6], &[5, 3, 3, 2], [1, 1], [0; 4]).is_err());
    }

    #[test]
    fn rows_run_along_the_last_axis_and_a_scalar_has_none() {
        assert_eq!(RowDims::of_last_axis(&[2, 3, 5]), Some(RowDims { rows: 6, len: 5 }));
        assert_eq!(RowDims::of_last_axis(&[3, 0]), Some(RowDims { rows: 0, len: 0 }));
        assert_eq!(RowDims::of_last_axis(&[]), None);
    }
}
