//! Native CPU executor (rayon inside each kernel; the same bits for any thread count).

use crate::error::{node_err, DnnError, Result};
use crate::graph::{Model, Node, Op};
use crate::ops::conv::{conv2d, Window};
use crate::ops::elementwise::{add_i32, lut, qadd, qmul, relu_i32, relu_i8, requantize};
use crate::ops::matmul::{linear, matmul};
use crate::ops::norm::{layernorm, rmsnorm, NormOut};
use crate::ops::pool::{avgpool2d, maxpool2d};
use crate::ops::shape::{argmax, concat, gather, slice, transpose};
use crate::ops::softmax::softmax;
use crate::tensor::{Data, Tensor, TensorSpec};

/// Check run-time inputs against the graph's input specs.
pub fn check_inputs(model: &Model, inputs: &[Tensor]) -> Result<()> {
    let want = &model.graph().inputs;
    if inputs.len() != want.len() {
        return Err(DnnError::Input {
            index: inputs.len().min(want.len()),
            msg: format!("model takes {} inputs, got {}", want.len(), inputs.len()),
        });
    }
    for (i, (t, s)) in inputs.iter().zip(want).enumerate() {
        if &t.spec() != s {
            return Err(DnnError::Input {
                index: i,
                msg: format!("is {} {:?}, model expects {} {:?}", t.dtype(), t.shape(), s.dtype, s.shape),
            });
        }
    }
    Ok(())
}

/// Run the model and return every slot (inputs first, then each node's output).
///
/// Runs on the current rayon pool; wrap in `ThreadPool::install` to pick the thread count.
pub fn run_all(model: &Model, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    check_inputs(model, inputs)?;
    let mut slots: Vec<Tensor> = inputs.to_vec();
    for (j, node) in model.graph().nodes.iter().enumerate() {
        let ins: Vec<&Tensor> = node.inputs.iter().map(|&s| &slots[s]).collect();
        let spec = &model.specs()[model.graph().node_slot(j)];
        let out = eval_node(model, j, node, &ins, spec)?;
        slots.push(out);
    }
    Ok(slots)
}

/// Run the model and return only its output slot.
pub fn run(model: &Model, inputs: &[Tensor]) -> Result<Tensor> {
    let out = model.graph().output;
    let mut slots = run_all(model, inputs)?;
    Ok(slots.swap_remove(out))
}

fn i8s(t: &Tensor) -> &[i8] {
    t.as_i8().expect("validated dtype i8")
}

fn i32s(t: &Tensor) -> &[i32] {
    t.as_i32().expect("validated dtype i32")
}

/// Evaluate one node on validated inputs.
pub fn eval_node(model: &Model, j: usize, node: &Node, ins: &[&Tensor], spec: &TensorSpec) -> Result<Tensor> {
    let w = model.weights();
    let x = ins[0];
    let shape = spec.shape.clone();
    let data = match &node.op {
        Op::Linear { weight, bias, input_zp } => {
            let wt = &w[*weight];
            let (n, k) = (wt.shape()[0], wt.shape()[1]);
            let m: usize = x.shape()[..x.shape().len() - 1].iter().product();
            let b = bias.map(|b| i32s(&w[b]));
            Data::I32(linear(i8s(x), m, k, i8s(wt), n, b, *input_zp))
        }
        Op::MatMul { a_zp, b_zp } => {
            let r = x.shape().len();
            let (m, k) = (x.shape()[r - 2], x.shape()[r - 1]);
            let n = ins[1].shape()[r - 1];
            let batch = if r == 3 { x.shape()[0] } else { 1 };
            Data::I32(matmul(i8s(x), i8s(ins[1]), batch, m, k, n, *a_zp, *b_zp))
        }
        Op::Conv2d { weight, bias, stride, padding, input_zp } => {
            let wt = &w[*weight];
            let s = x.shape();
            let win = Window { kernel: [wt.shape()[2], wt.shape()[3]], stride: *stride, padding: *padding };
            let b = bias.map(|b| i32s(&w[b]));
            Data::I32(conv2d(i8s(x), [s[0], s[1], s[2], s[3]], i8s(wt), wt.shape()[0], b, win, *input_zp))
        }
        Op::MaxPool2d { kernel, stride, padding } => {
            let s = x.shape();
            let win = Window { kernel: *kernel, stride: *stride, padding: *padding };
            Data::I8(maxpool2d(i8s(x), [s[0], s[1], s[2], s[3]], win))
        }
        Op::AvgPool2d { kernel, stride } => {
            let s = x.shape();
            let win = Window { kernel: *kernel, stride: *stride, padding: [0; 4] };
            Data::I8(avgpool2d(i8s(x), [s[0], s[1], s[2], s[3]], win))
        }
        Op::Add => Data::I32(add_i32(i32s(x), i32s(ins[1]))),
        Op::QAdd(p) => Data::I8(qadd(i8s(x), i8s(ins[1]), p)),
        Op::QMul(p) => Data::I8(qmul(i8s(x), i8s(ins[1]), p)),
        Op::Requantize { axis, multipliers, shifts, out_zp, act_min, act_max } => {
            let (inner, ch) = if multipliers.len() == 1 {
                (1, 1)
            } else {
                (x.shape()[axis + 1..].iter().product(), x.shape()[*axis])
            };
            Data::I8(requantize(i32s(x), inner, ch, multipliers, shifts, *out_zp, *act_min, *act_max))
        }
        Op::Relu { zero_point } => match x.data() {
            Data::I8(v) => Data::I8(relu_i8(v, *zero_point)),
            Data::I32(v) => Data::I32(relu_i32(v, *zero_point)),
        },
        Op::Lut { table } => Data::I8(lut(i8s(x), table)),
        Op::Softmax { exp_table } => Data::I8(softmax(i8s(x), *x.shape().last().expect("rank >= 1"), exp_table)),
        Op::LayerNorm { gamma, beta, eps, shift, out_zp } | Op::RmsNorm { gamma, beta, eps, shift, out_zp } => {
            let p = NormOut {
                gamma: i32s(&w[*gamma]),
                beta: beta.map(|b| i32s(&w[b])),
                shift: *shift,
                out_zp: *out_zp,
                eps: *eps,
            };
            let v = x.to_i32_vec();
            let n = *x.shape().last().expect("rank >= 1");
            if matches!(node.op, Op::LayerNorm { .. }) {
                Data::I8(layernorm(&v, n, &p))
            } else {
                Data::I8(rmsnorm(&v, n, &p))
            }
        }
        Op::Reshape { .. } => x.data().clone(),
        Op::Transpose { perm } => match x.data() {
            Data::I8(v) => Data::I8(transpose(v, x.shape(), perm)),
            Data::I32(v) => Data::I32(transpose(v, x.shape(), perm)),
        },
        Op::Concat { axis } => match x.data() {
            Data::I8(_) => {
                let parts: Vec<(&[i8], &[usize])> = ins.iter().map(|t| (i8s(t), t.shape())).collect();
                Data::I8(concat(&parts, *axis))
            }
            Data::I32(_) => {
                let parts: Vec<(&[i32], &[usize])> = ins.iter().map(|t| (i32s(t), t.shape())).collect();
                Data::I32(concat(&parts, *axis))
            }
        },
        Op::Slice { starts, ends } => match x.data() {
            Data::I8(v) => Data::I8(slice(v, x.shape(), starts, ends)),
            Data::I32(v) => Data::I32(slice(v, x.shape(), starts, ends)),
        },
        Op::Gather { table } => {
            let t = &w[*table];
            let (v, d) = (t.shape()[0], t.shape()[1]);
            let idx = i32s(x);
            if let Some(bad) = idx.iter().find(|&&i| i < 0 || i as usize >= v) {
                return Err(node_err(j, "gather", format!("index {bad} outside 0..{v}")));
            }
            match t.data() {
                Data::I8(tv) => Data::I8(gather(tv, d, idx)),
                Data::I32(tv) => Data::I32(gather(tv, d, idx)),
            }
        }
        Op::ArgMax => {
            let len = *x.shape().last().expect("rank >= 1");
            match x.data() {
                Data::I8(v) => Data::I32(argmax(v, len)),
                Data::I32(v) => Data::I32(argmax(v, len)),
            }
        }
    };
    Tensor::new(shape, data).map_err(|e| node_err(j, node.op.name(), e.to_string()))
}
