//! Float reference executor of an [`Arch`], with weight checking.

use std::collections::BTreeMap;

use crate::error::{DnnError, Result};
use crate::ops::conv::{conv_dims, plane_dims};
use crate::ops::pool::avgpool_window;
use crate::quant::arch::{Arch, Layer};
use crate::st::F32Tensor;

/// A float model: architecture plus checked float32 weights.
#[derive(Clone, Debug)]
pub struct FloatModel {
    /// Architecture.
    pub arch: Arch,
    /// Weights by name.
    pub weights: BTreeMap<String, F32Tensor>,
    /// Per-sample shape of each activation: index 0 is the input, `k` the output of layer `k-1`.
    pub shapes: Vec<Vec<usize>>,
}

fn arch_err(field: String, msg: String) -> DnnError {
    DnnError::Arch { field, msg }
}

fn tensor_err(name: &str, msg: String) -> DnnError {
    DnnError::Tensor { name: name.into(), msg }
}

impl FloatModel {
    /// Check weights against the architecture: every named tensor present with the right
    /// shape, no extra tensors, and layer shapes that chain.
    pub fn new(arch: Arch, weights: BTreeMap<String, F32Tensor>) -> Result<Self> {
        let mut used: Vec<&str> = Vec::new();
        let mut shapes = vec![arch.input_shape.clone()];
        if arch.input_shape.is_empty() || arch.input_shape.contains(&0) {
            return Err(arch_err(
                "input_shape".into(),
                format!("{:?} must be non-empty and positive", arch.input_shape),
            ));
        }
        let get = |name: &str| -> Result<&F32Tensor> {
            weights.get(name).ok_or_else(|| tensor_err(name, "missing from the weights file".into()))
        };
        for (i, layer) in arch.layers.iter().enumerate() {
            let cur = shapes.last().expect("input shape").clone();
            let field = format!("layers[{i}]");
            let next = match layer {
                Layer::Conv2d { weight, bias, stride, padding } => {
                    if cur.len() != 3 {
                        return Err(arch_err(field, format!("conv2d needs a [C, H, W] input, got {cur:?}")));
                    }
                    let w = get(weight)?;
                    used.push(weight);
                    if w.shape.len() != 4 || w.shape[1] != cur[0] || w.shape[0] == 0 {
                        return Err(tensor_err(
                            weight,
                            format!("shape {:?}, expected [OC, {}, KH, KW]", w.shape, cur[0]),
                        ));
                    }
                    if let Some(b) = bias {
                        let bt = get(b)?;
                        used.push(b);
                        if bt.shape != [w.shape[0]] {
                            return Err(tensor_err(b, format!("shape {:?}, expected [{}]", bt.shape, w.shape[0])));
                        }
                    }
                    // The graph's own rule, on a batch of one: the float model and the
                    // quantized graph cannot disagree on a shape.
                    let padding = [padding[0], padding[1], padding[0], padding[1]];
                    let d = conv_dims(&[1, cur[0], cur[1], cur[2]], &w.shape, *stride, padding)
                        .map_err(|_| arch_err(field, format!("window does not fit input {cur:?}")))?;
                    vec![d.o, d.x.oh, d.x.ow]
                }
                Layer::Linear { weight, bias } => {
                    if cur.len() != 1 {
                        return Err(arch_err(field, format!("linear needs a flat input, got {cur:?} (add flatten)")));
                    }
                    let w = get(weight)?;
                    used.push(weight);
                    if w.shape.len() != 2 || w.shape[1] != cur[0] || w.shape[0] == 0 {
                        return Err(tensor_err(weight, format!("shape {:?}, expected [N, {}]", w.shape, cur[0])));
                    }
                    if let Some(b) = bias {
                        let bt = get(b)?;
                        used.push(b);
                        if bt.shape != [w.shape[0]] {
                            return Err(tensor_err(b, format!("shape {:?}, expected [{}]", bt.shape, w.shape[0])));
                        }
                    }
                    vec![w.shape[0]]
                }
                Layer::Relu => cur.clone(),
                Layer::Maxpool2d { kernel, stride } | Layer::Avgpool2d { kernel, stride } => {
                    if cur.len() != 3 {
                        return Err(arch_err(field, format!("pooling needs a [C, H, W] input, got {cur:?}")));
                    }
                    // Both pools lower without padding (`quant/lower.rs`), so avgpool's
                    // window is the rule for either.
                    let d = plane_dims(&[1, cur[0], cur[1], cur[2]], avgpool_window(*kernel, *stride))
                        .map_err(|_| arch_err(field, format!("window does not fit input {cur:?}")))?;
                    vec![d.c, d.oh, d.ow]
                }
                Layer::Flatten => vec![cur.iter().product()],
                Layer::Sigmoid | Layer::Tanh | Layer::Gelu | Layer::Silu => cur.clone(),
            };
            shapes.push(next);
        }
        if let Some(extra) = weights.keys().find(|k| !used.contains(&k.as_str())) {
            return Err(tensor_err(extra, "is not used by the architecture (extra tensor)".into()));
        }
        Ok(Self { arch, weights, shapes })
    }

    /// Run one raw sample; returns every activation (index 0: normalised input).
    pub fn forward(&self, x: &[f32]) -> Vec<Vec<f32>> {
        let (a, b) = self.arch.normalize.map_or((1.0, 0.0), |n| (n.scale, n.shift));
        let mut acts = vec![x.iter().map(|&v| (v as f64 * a + b) as f32).collect::<Vec<f32>>()];
        for (i, layer) in self.arch.layers.iter().enumerate() {
            let cur = &acts[i];
            let s = &self.shapes[i];
            let out = match layer {
                Layer::Conv2d { weight, bias, stride, padding } => {
                    let w = &self.weights[weight];
                    let (oc, c, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3]);
                    let (h, wd) = (s[1], s[2]);
                    let o = &self.shapes[i + 1];
                    let (oh, ow) = (o[1], o[2]);
                    let mut out = vec![0f32; oc * oh * ow];
                    for co in 0..oc {
                        let bv = bias.as_ref().map_or(0.0, |b| self.weights[b].data[co]);
                        for y in 0..oh {
                            for xx in 0..ow {
                                let mut acc = bv;
                                for ci in 0..c {
                                    for ky in 0..kh {
                                        let iy = (y * stride[0] + ky) as isize - padding[0] as isize;
                                        if iy < 0 || iy >= h as isize {
                                            continue;
                                        }
                                        for kx in 0..kw {
                                            let ix = (xx * stride[1] + kx) as isize - padding[1] as isize;
                                            if ix < 0 || ix >= wd as isize {
                                                continue;
                                            }
                                            acc += cur[(ci * h + iy as usize) * wd + ix as usize]
                                                * w.data[((co * c + ci) * kh + ky) * kw + kx];
                                        }
                                    }
                                }
                                out[(co * oh + y) * ow + xx] = acc;
                            }
                        }
                    }
                    out
                }
                Layer::Linear { weight, bias } => {
                    let w = &self.weights[weight];
                    let (n, k) = (w.shape[0], w.shape[1]);
                    (0..n)
                        .map(|j| {
                            let bv = bias.as_ref().map_or(0.0, |b| self.weights[b].data[j]);
                            bv + (0..k).map(|t| cur[t] * w.data[j * k + t]).sum::<f32>()
                        })
                        .collect()
                }
                Layer::Relu => cur.iter().map(|&v| v.max(0.0)).collect(),
                Layer::Maxpool2d { kernel, stride } | Layer::Avgpool2d { kernel, stride } => {
                    let is_max = matches!(layer, Layer::Maxpool2d { .. });
                    let (c, h, wd) = (s[0], s[1], s[2]);
                    let o = &self.shapes[i + 1];
                    let (oh, ow) = (o[1], o[2]);
                    let mut out = vec![0f32; c * oh * ow];
                    for ci in 0..c {
                        for y in 0..oh {
                            for xx in 0..ow {
                                let mut m = f32::NEG_INFINITY;
                                let mut sum = 0f32;
                                for ky in 0..kernel[0] {
                                    for kx in 0..kernel[1] {
                                        let v = cur[(ci * h + y * stride[0] + ky) * wd + xx * stride[1] + kx];
                                        m = m.max(v);
                                        sum += v;
                                    }
                                }
                                out[(ci * oh + y) * ow + xx] =
                                    if is_max { m } else { sum / (kernel[0] * kernel[1]) as f32 };
                            }
                        }
                    }
                    out
                }
                Layer::Flatten => cur.clone(),
                Layer::Sigmoid | Layer::Tanh | Layer::Gelu | Layer::Silu => {
                    let f = layer.activation().expect("activation layer");
                    cur.iter().map(|&v| f(v as f64) as f32).collect()
                }
            };
            acts.push(out);
        }
        acts
    }
}

/// Index of the largest value (first on ties).
pub fn argmax_f32(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}
