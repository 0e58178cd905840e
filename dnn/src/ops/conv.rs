//! 2-D convolution (NCHW, OIHW weights) as im2col + the int8 dot kernel.

use rayon::prelude::*;

use super::check::{bad, i8_range, want, OpResult};
use super::dims::{ConvDims, MatDims, PlaneDims};
use super::matmul::{bias_rule, gemm_nt_i8, row_sums};
use crate::tensor::{DType, TensorSpec};

/// Geometry of a convolution or pooling window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride along height and width.
    pub stride: [usize; 2],
    /// Padding: top, left, bottom, right.
    pub padding: [usize; 4],
}

impl Window {
    /// Output height and width for an input of `h x w`, or `None` if the kernel does not fit
    /// or the stride is zero.
    pub fn output_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let [kh, kw] = self.kernel;
        let [sh, sw] = self.stride;
        let [pt, pl, pb, pr] = self.padding;
        if sh == 0 || sw == 0 || kh == 0 || kw == 0 {
            return None;
        }
        let ph = h + pt + pb;
        let pw = w + pl + pr;
        if ph < kh || pw < kw {
            return None;
        }
        Some(((ph - kh) / sh + 1, (pw - kw) / sw + 1))
    }
}

/// Convolution: `x: n x c x h x w` i8, `weight: oc x c x kh x kw` i8, optional `bias: oc`;
/// `out[b, o, y, x] = bias[o] + sum_{c,i,j} (in(b, c, y*sh + i - pt, x*sw + j - pl) - zp) * w[o,c,i,j]`
/// where positions outside the input contribute 0. Wrapping i32. Output `n x oc x oh x ow`.
pub fn conv2d(x: &[i8], weight: &[i8], bias: Option<&[i32]>, d: &ConvDims, input_zp: i32) -> Vec<i32> {
    let PlaneDims { n, c, h, w, win, ow, .. } = d.x;
    let [kh, kw] = win.kernel;
    let oc = d.o;
    let kk = d.kk();
    let p = d.x.positions();
    let wsum = row_sums(weight, oc, kk);
    let fixes: Vec<i32> =
        (0..oc).map(|o| bias.map_or(0, |b| b[o]).wrapping_sub(input_zp.wrapping_mul(wsum[o]))).collect();
    let pad_val = input_zp as i8;
    let mut out = Vec::with_capacity(n * oc * p);
    for b in 0..n {
        let xb = &x[b * c * h * w..(b + 1) * c * h * w];
        // im2col: row per output position, padded positions hold the zero point so that
        // (value - zp) is 0 there.
        let mut cols = vec![pad_val; p * kk];
        if kk > 0 {
            cols.par_chunks_mut(kk).with_min_len(64).enumerate().for_each(|(pos, row)| {
                let oy = pos / ow;
                let ox = pos % ow;
                for ci in 0..c {
                    for i in 0..kh {
                        let iy = (oy * win.stride[0] + i) as isize - win.padding[0] as isize;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        for j in 0..kw {
                            let ix = (ox * win.stride[1] + j) as isize - win.padding[1] as isize;
                            if ix < 0 || ix >= w as isize {
                                continue;
                            }
                            row[(ci * kh + i) * kw + j] = xb[(ci * h + iy as usize) * w + ix as usize];
                        }
                    }
                }
            });
        }
        // Weights `[oc, kk]` times this item's columns `[p, kk]`.
        let mut ob = gemm_nt_i8(weight, &cols, MatDims { batch: 1, m: oc, k: kk, n: p });
        if p > 0 {
            ob.par_chunks_mut(p).zip(fixes.par_iter()).for_each(|(row, f)| {
                for v in row.iter_mut() {
                    *v = v.wrapping_add(*f);
                }
            });
        }
        out.extend_from_slice(&ob);
    }
    out
}

/// The window over the planes of an NCHW input `x`, with its output height and width.
pub fn plane_dims(x: &[usize], win: Window) -> OpResult<PlaneDims> {
    let &[n, c, h, w] = x else {
        return Err(bad(format!("input shape {x:?} is not NCHW")));
    };
    let (oh, ow) = win.output_hw(h, w).ok_or_else(|| bad(format!("window {win:?} does not fit input {x:?}")))?;
    Ok(PlaneDims { n, c, h, w, win, oh, ow })
}

/// `conv2d`'s dims: input NCHW, weight OIHW with `I = C`; the weight's `H, W` are the
/// window's kernel.
pub fn conv_dims(x: &[usize], w: &[usize], stride: [usize; 2], padding: [usize; 4]) -> OpResult<ConvDims> {
    let (&[_, c, _, _], &[o, wc, kh, kw]) = (x, w) else {
        return Err(bad(format!("input {x:?} (NCHW) and weight {w:?} (OIHW) do not fit")));
    };
    if wc != c {
        return Err(bad(format!(
            "input {x:?} (NCHW) and weight {w:?} (OIHW) do not fit: {wc} input channels, not {c}"
        )));
    }
    Ok(ConvDims { x: plane_dims(x, Window { kernel: [kh, kw], stride, padding })?, o })
}

/// `conv2d`'s rule: i8 NCHW x weight i8 OIHW (+ bias i32 `[O]`) -> i32 `[N, O, OH, OW]`.
pub(crate) fn conv_rule(
    x: &TensorSpec,
    w: &TensorSpec,
    bias: Option<&TensorSpec>,
    stride: [usize; 2],
    padding: [usize; 4],
    input_zp: i32,
) -> OpResult<TensorSpec> {
    want(x, DType::I8, "input")?;
    want(w, DType::I8, "weight")?;
    if !i8_range(input_zp) {
        return Err(bad(format!("input_zp {input_zp} outside -128..=127")));
    }
    let d = conv_dims(&x.shape, &w.shape, stride, padding)?;
    if let Some(b) = bias {
        bias_rule(b, d.o)?;
    }
    Ok(TensorSpec::new(DType::I32, vec![d.x.n, d.o, d.x.oh, d.x.ow]))
}
