//! Max and average pooling over NCHW int8 tensors.

use rayon::prelude::*;

use super::conv::Window;
use crate::fixed::round_div_i64;

fn pool(x: &[i8], dims: [usize; 4], win: Window, f: impl Fn(&mut dyn Iterator<Item = i8>) -> i8 + Sync) -> Vec<i8> {
    let [n, c, h, w] = dims;
    let (oh, ow) = win.output_hw(h, w).expect("validated window");
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
pub fn maxpool2d(x: &[i8], dims: [usize; 4], win: Window) -> Vec<i8> {
    pool(x, dims, win, |it| it.max().unwrap_or(i8::MIN))
}

/// Average pooling (no padding): `round(sum / (kh * kw))`, ties away from zero.
pub fn avgpool2d(x: &[i8], dims: [usize; 4], win: Window) -> Vec<i8> {
    let count = (win.kernel[0] * win.kernel[1]) as i64;
    pool(x, dims, win, |it| {
        let s: i64 = it.map(|v| v as i64).sum();
        round_div_i64(s, count) as i8
    })
}
