//! Calibration and lowering of a float model to the integer graph.

use rayon::prelude::*;

use crate::bundle::{hex32, AccuracyReport, Bundle, InputQuant, Metadata, OutputQuant};
use crate::commit::{model_commitment, ImageBinder};
use crate::error::{DnnError, Result};
use crate::exec::run;
use crate::fixed::quantize_multiplier;
use crate::graph::{ConstSpec, Graph, Model, Node, Op};
use crate::quant::arch::Layer;
use crate::quant::float::{argmax_f32, FloatModel};
use crate::st::DataSet;
use crate::tensor::{DType, Tensor, TensorSpec};

/// Affine int8 quantization of a calibrated range (widened to include 0).
fn qparams(min: f32, max: f32) -> (f64, i32) {
    let lo = (min as f64).min(0.0);
    let hi = (max as f64).max(0.0);
    let scale = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
    let zp = (-128.0 - lo / scale).round().clamp(-128.0, 127.0) as i32;
    (scale, zp)
}

fn check_samples(float: &FloatModel, data: &DataSet, what: &str) -> Result<()> {
    if data.sample_shape() != float.arch.input_shape.as_slice() {
        return Err(DnnError::Safetensors {
            file: what.into(),
            msg: format!(
                "tensor `inputs` has sample shape {:?}, the model takes {:?}",
                data.sample_shape(),
                float.arch.input_shape
            ),
        });
    }
    if data.is_empty() {
        return Err(DnnError::Safetensors { file: what.into(), msg: "tensor `inputs` has no samples".into() });
    }
    Ok(())
}

/// Calibrate on `calib` and lower to a bundle. `float_weights` (the original safetensors
/// bytes) is kept as the float reference when given. If `report_data` has labels, the
/// accuracy report is computed on it. `binder` supplies each node's VM image binding
/// (the compiler's kernels and argument blobs), which the model commitment includes.
pub fn quantize(
    float: &FloatModel,
    calib: &DataSet,
    float_weights: Option<Vec<u8>>,
    report_data: Option<&DataSet>,
    binder: &dyn ImageBinder,
) -> Result<Bundle> {
    check_samples(float, calib, "calibration data")?;
    let n_acts = float.shapes.len();
    let ranges = (0..calib.len())
        .into_par_iter()
        .map(|i| {
            float
                .forward(calib.sample(i))
                .iter()
                .map(|a| a.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v))))
                .collect::<Vec<_>>()
        })
        .reduce(
            || vec![(f32::INFINITY, f32::NEG_INFINITY); n_acts],
            |a, b| a.iter().zip(&b).map(|(x, y)| (x.0.min(y.0), x.1.max(y.1))).collect(),
        );
    let q_at = |k: usize| qparams(ranges[k].0, ranges[k].1);

    let (in_scale, in_zp) = q_at(0);
    let mut in_shape = vec![1];
    in_shape.extend_from_slice(&float.arch.input_shape);
    let mut consts: Vec<ConstSpec> = Vec::new();
    let mut weights: Vec<Tensor> = Vec::new();
    let mut nodes: Vec<Node> = Vec::new();
    let mut cur_slot = 0usize;
    let (mut s_cur, mut zp_cur) = (in_scale, in_zp);
    let layers = &float.arch.layers;
    let mut i = 0;
    while i < layers.len() {
        let slot_next = 1 + nodes.len();
        let op = match &layers[i] {
            Layer::Conv2d { weight, bias, .. } | Layer::Linear { weight, bias } => {
                let fused = matches!(layers.get(i + 1), Some(Layer::Relu));
                let out_act = if fused { i + 2 } else { i + 1 };
                let (s_out, zp_out) = q_at(out_act);
                let w = &float.weights[weight];
                let oc = w.shape[0];
                let per = w.data.len() / oc;
                let mut wq = Vec::with_capacity(w.data.len());
                let mut s_w = Vec::with_capacity(oc);
                for c in 0..oc {
                    let row = &w.data[c * per..(c + 1) * per];
                    let amax = row.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
                    let s = if amax > 0.0 { amax / 127.0 } else { 1.0 };
                    s_w.push(s);
                    wq.extend(row.iter().map(|&v| (v as f64 / s).round().clamp(-127.0, 127.0) as i8));
                }
                let w_id = consts.len();
                consts
                    .push(ConstSpec { name: format!("{weight}.q"), spec: TensorSpec::new(DType::I8, w.shape.clone()) });
                weights.push(Tensor::from_i8(w.shape.clone(), wq)?);
                let b_id = match bias {
                    Some(b) => {
                        let bt = &float.weights[b];
                        let bq: Vec<i32> = bt
                            .data
                            .iter()
                            .zip(&s_w)
                            .map(|(&v, &sw)| {
                                (v as f64 / (s_cur * sw)).round().clamp(i32::MIN as f64, i32::MAX as f64) as i32
                            })
                            .collect();
                        consts.push(ConstSpec { name: format!("{b}.q"), spec: TensorSpec::new(DType::I32, vec![oc]) });
                        weights.push(Tensor::from_i32(vec![oc], bq)?);
                        Some(w_id + 1)
                    }
                    None => None,
                };
                let op = match &layers[i] {
                    Layer::Conv2d { stride, padding, .. } => Op::Conv2d {
                        weight: w_id,
                        bias: b_id,
                        stride: *stride,
                        padding: [padding[0], padding[1], padding[0], padding[1]],
                        input_zp: zp_cur,
                    },
                    _ => Op::Linear { weight: w_id, bias: b_id, input_zp: zp_cur },
                };
                nodes.push(Node {
                    name: format!("{}.{}", i, if matches!(op, Op::Conv2d { .. }) { "conv2d" } else { "linear" }),
                    op,
                    inputs: vec![cur_slot],
                });
                let mut mults = Vec::with_capacity(oc);
                let mut shifts = Vec::with_capacity(oc);
                for &sw in &s_w {
                    let real = s_cur * sw / s_out;
                    let (m, s) = quantize_multiplier(real).ok_or_else(|| DnnError::Arch {
                        field: format!("layers[{i}]"),
                        msg: format!("requantization multiplier {real} out of range"),
                    })?;
                    mults.push(m);
                    shifts.push(s);
                }
                nodes.push(Node {
                    name: format!("{i}.requantize{}", if fused { "+relu" } else { "" }),
                    op: Op::Requantize {
                        axis: 1,
                        multipliers: mults,
                        shifts,
                        out_zp: zp_out,
                        act_min: if fused { zp_out } else { -128 },
                        act_max: 127,
                    },
                    inputs: vec![slot_next],
                });
                cur_slot = slot_next + 1;
                s_cur = s_out;
                zp_cur = zp_out;
                i += if fused { 2 } else { 1 };
                continue;
            }
            Layer::Relu => Op::Relu { zero_point: zp_cur },
            Layer::Maxpool2d { kernel, stride } => Op::MaxPool2d { kernel: *kernel, stride: *stride, padding: [0; 4] },
            Layer::Avgpool2d { kernel, stride } => Op::AvgPool2d { kernel: *kernel, stride: *stride },
            Layer::Flatten => Op::Reshape { shape: vec![1, float.shapes[i + 1][0]] },
            Layer::Sigmoid | Layer::Tanh | Layer::Gelu | Layer::Silu => {
                // int8 -> int8 table: dequantize, apply, requantize to the calibrated output.
                let f = layers[i].activation().expect("activation layer");
                let (s_out, zp_out) = q_at(i + 1);
                let table: Vec<i8> = (-128i32..=127)
                    .map(|q| {
                        let y = f((q - zp_cur) as f64 * s_cur);
                        ((y / s_out).round() + zp_out as f64).clamp(-128.0, 127.0) as i8
                    })
                    .collect();
                s_cur = s_out;
                zp_cur = zp_out;
                Op::Lut { table }
            }
        };
        nodes.push(Node { name: format!("{i}.{}", op.name()), op, inputs: vec![cur_slot] });
        cur_slot = slot_next;
        i += 1;
    }
    let graph = Graph { inputs: vec![TensorSpec::new(DType::I8, in_shape)], consts, nodes, output: cur_slot };
    let model = Model::new(graph, weights)?;
    let (pre_scale, pre_shift) = float.arch.normalize.map_or((1.0, 0.0), |n| (n.scale, n.shift));
    let node_images = binder.node_images(&model).map_err(|msg| DnnError::Format { kind: "node images", msg })?;
    if node_images.len() != model.graph().nodes.len() {
        return Err(DnnError::Format {
            kind: "node images",
            msg: format!("the binder gave {} images for {} nodes", node_images.len(), model.graph().nodes.len()),
        });
    }
    let meta = Metadata {
        name: float.arch.name.clone(),
        model_commitment: hex32(&model_commitment(&model, &node_images)),
        node_images,
        input: InputQuant {
            sample_shape: float.arch.input_shape.clone(),
            pre_scale,
            pre_shift,
            scale: in_scale,
            zero_point: in_zp,
        },
        output: OutputQuant { scale: s_cur, zero_point: zp_cur },
        architecture: float_weights.as_ref().map(|_| float.arch.clone()),
        calibration_samples: calib.len(),
        report: None,
    };
    let mut bundle = Bundle { meta, model, float_weights };
    if let Some(d) = report_data {
        bundle.meta.report = Some(report(&bundle, float, d)?);
    }
    Ok(bundle)
}

/// Predicted class of every sample by the quantized model (argmax of the int8 output).
pub fn predict(bundle: &Bundle, data: &DataSet) -> Result<Vec<usize>> {
    let want = &bundle.meta.input.sample_shape;
    if data.sample_shape() != want.as_slice() {
        return Err(DnnError::Input {
            index: 0,
            msg: format!("data samples have shape {:?}, the model takes {want:?}", data.sample_shape()),
        });
    }
    (0..data.len())
        .into_par_iter()
        .map(|i| {
            let x = bundle.quantize_input(data.sample(i))?;
            let out = run(&bundle.model, &[x])?;
            let v = out.to_i32_vec();
            let mut best = 0;
            for (k, &y) in v.iter().enumerate() {
                if y > v[best] {
                    best = k;
                }
            }
            Ok(best)
        })
        .collect()
}

fn accuracy(pred: &[usize], labels: &[i64]) -> f64 {
    let ok = pred.iter().zip(labels).filter(|(p, l)| **p as i64 == **l).count();
    ok as f64 / pred.len().max(1) as f64
}

/// Accuracy of the quantized model and its float original on labelled data.
pub fn report(bundle: &Bundle, float: &FloatModel, data: &DataSet) -> Result<AccuracyReport> {
    check_samples(float, data, "evaluation data")?;
    let labels = data.labels.as_ref().ok_or_else(|| DnnError::Safetensors {
        file: "evaluation data".into(),
        msg: "missing tensor `labels`".into(),
    })?;
    let q = predict(bundle, data)?;
    let outs: Vec<Vec<f32>> =
        (0..data.len()).into_par_iter().map(|i| float.forward(data.sample(i)).pop().unwrap_or_default()).collect();
    let f: Vec<usize> = outs.iter().map(|o| argmax_f32(o)).collect();
    let agree = q.iter().zip(&f).filter(|(a, b)| a == b).count() as f64 / q.len().max(1) as f64;
    // Output error: dequantized int8 output vs float output.
    let mut err_sum = 0f64;
    let mut err_n = 0usize;
    for (i, fo) in outs.iter().enumerate() {
        let x = bundle.quantize_input(data.sample(i))?;
        let o = run(&bundle.model, &[x])?.to_i32_vec();
        for (a, b) in o.iter().zip(fo) {
            let deq = (*a - bundle.meta.output.zero_point) as f64 * bundle.meta.output.scale;
            err_sum += (deq - *b as f64).abs();
            err_n += 1;
        }
    }
    Ok(AccuracyReport {
        samples: data.len(),
        accuracy: accuracy(&q, labels),
        float_accuracy: accuracy(&f, labels),
        agreement: agree,
        mean_abs_output_error: err_sum / err_n.max(1) as f64,
    })
}

/// The float model a bundle keeps as reference, if any.
pub fn float_reference(bundle: &Bundle) -> Result<Option<FloatModel>> {
    match (&bundle.meta.architecture, &bundle.float_weights) {
        (Some(arch), Some(bytes)) => {
            let w = crate::st::read_f32_all(bytes, "bundle float reference")?;
            Ok(Some(FloatModel::new(arch.clone(), w)?))
        }
        _ => Ok(None),
    }
}
