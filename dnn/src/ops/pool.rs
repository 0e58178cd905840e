//! Max and average pooling over NCHW int8 tensors.

use rayon::prelude::*;

use super::check::{bad, want, OpResult};
use super::conv::{plane_dims, Window};
use super::dims::PlaneDims;
use crate::fixed::round_div_i64;
use crate::tensor::{DType, TensorSpec};

fn pool(x: &[i8], d: &PlaneDims, f: impl Fn(&mut dyn Iterator<Item = i8>) -> i8 + Sync) -> Vec<i8> {
    let PlaneDims { n, c, h, w, win, oh, ow } = *d;
    let mut out = vec![0i8; n * c * oh * ow];
    if oh * ow == 0 {
        return out;
    }
    out.par_chunks_mut(oh * ow).with_min_len(4).enumerate().for_each(|(plane, o)| {
        let xp = &x[plane * h * w..(plane + 1) * h * w];
        for oy in 0..oh {
            for ox in 0..ow {
                let y0 = (oy * win.stride[0]) as isize - win.padding[0] as isize;
                let x0 = (ox * win.stride[1]) as isize - win.padding[1] as isize;
                let ys = y0.max(0) as usize..((y0 + win.kernel[0] as isize).min(h as isize)).max(0) as usize;
                let xs = x0.max(0) as usize..((x0 + win.kernel[1] as isize).min(w as isize)).max(0) as usize;
                let mut it = ys.flat_map(|yy| {
                    let xs = xs.clone();
                    xs.map(move |xx| xp[yy * w + xx])
                });
                o[oy * ow + ox] = f(&mut it);
            }
        }
    });
    out
}

/// Max pooling: the maximum of the window's in-bounds elements (padding is ignored;
/// validation requires every window to hold at least one element).
pub fn maxpool2d(x: &[i8], d: &PlaneDims) -> Vec<i8> {
    pool(x, d, |it| it.max().unwrap_or(i8::MIN))
}

/// Average pooling (no padding): `round(sum / (kh * kw))`, ties away from zero.
pub fn avgpool2d(x: &[i8], d: &PlaneDims) -> Vec<i8> {
    let count = (d.win.kernel[0] * d.win.kernel[1]) as i64;
    pool(x, d, |it| {
        let s: i64 = it.map(|v| v as i64).sum();
        round_div_i64(s, count) as i8
    })
}

/// `maxpool2d`'s window: each padding less than the kernel, so every window holds an
/// input element.
pub fn maxpool_window(kernel: [usize; 2], stride: [usize; 2], padding: [usize; 4]) -> OpResult<Window> {
    if padding[0] >= kernel[0] || padding[2] >= kernel[0] || padding[1] >= kernel[1] || padding[3] >= kernel[1] {
        return Err(bad("padding must be less than the kernel"));
    }
    Ok(Window { kernel, stride, padding })
}

/// `avgpool2d`'s window (no padding).
pub fn avgpool_window(kernel: [usize; 2], stride: [usize; 2]) -> Window {
    Window { kernel, stride, padding: [0; 4] }
}

/// The rule of both pools: i8 NCHW -> i8 `[N, C, OH, OW]`.
pub(crate) fn pool_rule(x: &TensorSpec, win: OpResult<Window>) -> OpResult<TensorSpec> {
    want(x, DType::I8, "input")?;
    let d = plane_dims(&x.shape, win?)?;
    Ok(TensorSpec::new(DType::I8, vec![d.n, d.c, d.oh, d.ow]))
}
