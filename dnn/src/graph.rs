//! Graph IR: nodes in topological order, one output each, weights as named constants.
//!
//! Slots: graph input `i` is slot `i`; node `j` writes slot `inputs.len() + j`.
//! Validation ([`Graph::infer_specs`]) checks every parameter, dtype and shape, so a
//! validated model never panics when run.

use serde::{Deserialize, Serialize};

use crate::error::{node_err, DnnError, Result};
use crate::fixed::valid_multiplier;
use crate::ops::conv::Window;
use crate::ops::elementwise::{QAddParams, QMulParams};
use crate::ops::softmax::EXP_TABLE_MAX;
use crate::tensor::{checked_numel, DType, Tensor, TensorSpec};

/// Index of a constant (weight) tensor in [`Graph::consts`].
pub type ConstId = usize;

/// An operation and its parameters. Semantics: `docs/spec/ops.md`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// i8 `[.., K]` x weight i8 `[N, K]` (+ bias i32 `[N]`) -> i32 `[.., N]`.
    Linear {
        /// Weight constant.
        weight: ConstId,
        /// Optional bias constant.
        bias: Option<ConstId>,
        /// Zero point of the input.
        input_zp: i32,
    },
    /// i8 `[B?, M, K]` x i8 `[B?, K, N]` -> i32 `[B?, M, N]`.
    MatMul {
        /// Zero point of the left operand.
        a_zp: i32,
        /// Zero point of the right operand.
        b_zp: i32,
    },
    /// i8 NCHW x weight i8 OIHW (+ bias) -> i32 NCHW.
    Conv2d {
        /// Weight constant.
        weight: ConstId,
        /// Optional bias constant.
        bias: Option<ConstId>,
        /// Stride (height, width).
        stride: [usize; 2],
        /// Padding (top, left, bottom, right).
        padding: [usize; 4],
        /// Zero point of the input.
        input_zp: i32,
    },
    /// i8 NCHW -> i8 NCHW.
    MaxPool2d {
        /// Kernel (height, width).
        kernel: [usize; 2],
        /// Stride.
        stride: [usize; 2],
        /// Padding (top, left, bottom, right), each less than the kernel.
        padding: [usize; 4],
    },
    /// i8 NCHW -> i8 NCHW, no padding.
    AvgPool2d {
        /// Kernel (height, width).
        kernel: [usize; 2],
        /// Stride.
        stride: [usize; 2],
    },
    /// i32 + i32 (same shape), wrapping.
    Add,
    /// Quantized i8 + i8 (same shape).
    QAdd(QAddParams),
    /// Quantized i8 * i8 (same shape).
    QMul(QMulParams),
    /// i32 -> i8 with per-channel fixed-point multipliers along `axis`.
    Requantize {
        /// Channel axis (ignored with a single multiplier).
        axis: usize,
        /// Multipliers (one, or one per channel).
        multipliers: Vec<i32>,
        /// Shifts, same length.
        shifts: Vec<i32>,
        /// Output zero point.
        out_zp: i32,
        /// Lower clamp.
        act_min: i32,
        /// Upper clamp.
        act_max: i32,
    },
    /// `max(x, zero_point)` on i8 or i32.
    Relu {
        /// Zero point (the quantized value of real 0).
        zero_point: i32,
    },
    /// i8 -> i8 lookup table (`table[x + 128]`).
    Lut {
        /// 256 entries.
        table: Vec<i8>,
    },
    /// i8 -> i8 softmax over the last axis (output scale 1/256, zero point -128).
    Softmax {
        /// 256 non-negative entries, `exp_table[0] >= 1`, each at most 2^24.
        exp_table: Vec<i32>,
    },
    /// i8/i32 -> i8 layer normalisation over the last axis.
    LayerNorm {
        /// i32 per-channel scale.
        gamma: ConstId,
        /// Optional i32 per-channel offset.
        beta: Option<ConstId>,
        /// Integer epsilon (0..=2^62).
        eps: i64,
        /// Output right shift (0..=62).
        shift: u32,
        /// Output zero point.
        out_zp: i32,
    },
    /// i8/i32 -> i8 RMS normalisation over the last axis.
    RmsNorm {
        /// i32 per-channel scale.
        gamma: ConstId,
        /// Optional i32 per-channel offset.
        beta: Option<ConstId>,
        /// Integer epsilon (0..=2^62).
        eps: i64,
        /// Output right shift (0..=62).
        shift: u32,
        /// Output zero point.
        out_zp: i32,
    },
    /// Same data, new shape.
    Reshape {
        /// Output shape.
        shape: Vec<usize>,
    },
    /// Permute axes: output axis `i` is input axis `perm[i]`.
    Transpose {
        /// Permutation.
        perm: Vec<usize>,
    },
    /// Concatenate the inputs along an axis.
    Concat {
        /// Axis.
        axis: usize,
    },
    /// Contiguous sub-tensor `[starts, ends)` per axis.
    Slice {
        /// Start per axis.
        starts: Vec<usize>,
        /// End (exclusive) per axis.
        ends: Vec<usize>,
    },
    /// Embedding lookup: i32 indices -> rows of a `[V, D]` constant.
    Gather {
        /// Table constant.
        table: ConstId,
    },
    /// i8/i32 -> i32 index of the maximum along the last axis (first on ties).
    ArgMax,
}

impl Op {
    /// Stable numeric tag (part of the node descriptor).
    pub fn tag(&self) -> u32 {
        match self {
            Op::Linear { .. } => 1,
            Op::MatMul { .. } => 2,
            Op::Conv2d { .. } => 3,
            Op::MaxPool2d { .. } => 4,
            Op::AvgPool2d { .. } => 5,
            Op::Add => 6,
            Op::QAdd(_) => 7,
            Op::QMul(_) => 8,
            Op::Requantize { .. } => 9,
            Op::Relu { .. } => 10,
            Op::Lut { .. } => 11,
            Op::Softmax { .. } => 12,
            Op::LayerNorm { .. } => 13,
            Op::RmsNorm { .. } => 14,
            Op::Reshape { .. } => 15,
            Op::Transpose { .. } => 16,
            Op::Concat { .. } => 17,
            Op::Slice { .. } => 18,
            Op::Gather { .. } => 19,
            Op::ArgMax => 20,
        }
    }

    /// Short name.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Linear { .. } => "linear",
            Op::MatMul { .. } => "matmul",
            Op::Conv2d { .. } => "conv2d",
            Op::MaxPool2d { .. } => "maxpool2d",
            Op::AvgPool2d { .. } => "avgpool2d",
            Op::Add => "add",
            Op::QAdd(_) => "qadd",
            Op::QMul(_) => "qmul",
            Op::Requantize { .. } => "requantize",
            Op::Relu { .. } => "relu",
            Op::Lut { .. } => "lut",
            Op::Softmax { .. } => "softmax",
            Op::LayerNorm { .. } => "layernorm",
            Op::RmsNorm { .. } => "rmsnorm",
            Op::Reshape { .. } => "reshape",
            Op::Transpose { .. } => "transpose",
            Op::Concat { .. } => "concat",
            Op::Slice { .. } => "slice",
            Op::Gather { .. } => "gather",
            Op::ArgMax => "argmax",
        }
    }

    /// Constants the op reads, in descriptor order.
    pub fn weights(&self) -> Vec<ConstId> {
        match self {
            Op::Linear { weight, bias, .. } | Op::Conv2d { weight, bias, .. } => {
                std::iter::once(*weight).chain(*bias).collect()
            }
            Op::LayerNorm { gamma, beta, .. } | Op::RmsNorm { gamma, beta, .. } => {
                std::iter::once(*gamma).chain(*beta).collect()
            }
            Op::Gather { table } => vec![*table],
            _ => Vec::new(),
        }
    }

    /// Number of activation inputs the op takes (`None`: one or more).
    fn arity(&self) -> Option<usize> {
        match self {
            Op::MatMul { .. } | Op::Add | Op::QAdd(_) | Op::QMul(_) => Some(2),
            Op::Concat { .. } => None,
            _ => Some(1),
        }
    }
}

/// A named constant's static type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConstSpec {
    /// Name (the safetensors key in a bundle).
    pub name: String,
    /// dtype and shape.
    pub spec: TensorSpec,
}

/// One node: an op reading slots, writing the next slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Human-readable name.
    pub name: String,
    /// Operation.
    pub op: Op,
    /// Input slots (each less than this node's output slot).
    pub inputs: Vec<usize>,
}

/// A model graph.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Graph {
    /// Graph inputs (slots `0..inputs.len()`).
    pub inputs: Vec<TensorSpec>,
    /// Constants.
    pub consts: Vec<ConstSpec>,
    /// Nodes in topological order.
    pub nodes: Vec<Node>,
    /// The slot holding the model output.
    pub output: usize,
}

fn i8_range(v: i32) -> bool {
    (-128..=127).contains(&v)
}

fn clamp_range(min: i32, max: i32) -> bool {
    i8_range(min) && i8_range(max) && min <= max
}

impl Graph {
    /// Output slot of node `j`.
    pub fn node_slot(&self, j: usize) -> usize {
        self.inputs.len() + j
    }

    /// Number of slots (inputs + nodes).
    pub fn slot_count(&self) -> usize {
        self.inputs.len() + self.nodes.len()
    }

    /// Check the whole graph and return the spec of every slot.
    pub fn infer_specs(&self) -> Result<Vec<TensorSpec>> {
        if self.nodes.is_empty() {
            return Err(DnnError::Graph("graph has no nodes".into()));
        }
        let mut specs: Vec<TensorSpec> = self.inputs.clone();
        for (i, s) in specs.iter().enumerate() {
            if checked_numel(&s.shape).is_none() {
                return Err(DnnError::Graph(format!("input {i}: shape {:?} overflows", s.shape)));
            }
        }
        for (j, node) in self.nodes.iter().enumerate() {
            let slot = self.node_slot(j);
            for &inp in &node.inputs {
                if inp >= slot {
                    return Err(node_err(
                        j,
                        node.op.name(),
                        format!("input slot {inp} is not produced before this node (slot {slot})"),
                    ));
                }
            }
            if let Some(a) = node.op.arity() {
                if node.inputs.len() != a {
                    return Err(node_err(j, node.op.name(), format!("takes {a} inputs, got {}", node.inputs.len())));
                }
            } else if node.inputs.is_empty() {
                return Err(node_err(j, node.op.name(), "takes at least one input"));
            }
            for &w in &node.op.weights() {
                if w >= self.consts.len() {
                    return Err(node_err(j, node.op.name(), format!("constant {w} does not exist")));
                }
            }
            let ins: Vec<&TensorSpec> = node.inputs.iter().map(|&s| &specs[s]).collect();
            let out = self.infer_node(j, node, &ins)?;
            if checked_numel(&out.shape).is_none() {
                return Err(node_err(j, node.op.name(), "output shape overflows"));
            }
            specs.push(out);
        }
        if self.output >= specs.len() {
            return Err(DnnError::Graph(format!("output slot {} does not exist", self.output)));
        }
        Ok(specs)
    }

    fn infer_node(&self, j: usize, node: &Node, ins: &[&TensorSpec]) -> Result<TensorSpec> {
        let name = node.op.name();
        let err = |m: String| node_err(j, name, m);
        let cspec = |c: ConstId| &self.consts[c].spec;
        let want = |s: &TensorSpec, d: DType, what: &str| -> Result<()> {
            if s.dtype != d {
                return Err(node_err(j, name, format!("{what} must be {d}, got {}", s.dtype)));
            }
            Ok(())
        };
        let x = ins[0];
        match &node.op {
            Op::Linear { weight, bias, input_zp } => {
                want(x, DType::I8, "input")?;
                let w = cspec(*weight);
                want(w, DType::I8, "weight")?;
                if !i8_range(*input_zp) {
                    return Err(err(format!("input_zp {input_zp} outside -128..=127")));
                }
                if w.shape.len() != 2 || x.shape.last() != Some(&w.shape[1]) {
                    return Err(err(format!(
                        "weight shape {:?} does not fit input shape {:?} (want [N, K] with K the last input dim)",
                        w.shape, x.shape
                    )));
                }
                if let Some(b) = bias {
                    let b = cspec(*b);
                    want(b, DType::I32, "bias")?;
                    if b.shape != [w.shape[0]] {
                        return Err(err(format!("bias shape {:?}, want [{}]", b.shape, w.shape[0])));
                    }
                }
                let mut shape = x.shape.clone();
                *shape.last_mut().expect("rank >= 1") = w.shape[0];
                Ok(TensorSpec::new(DType::I32, shape))
            }
            Op::MatMul { a_zp, b_zp } => {
                let b = ins[1];
                want(x, DType::I8, "left input")?;
                want(b, DType::I8, "right input")?;
                if !i8_range(*a_zp) || !i8_range(*b_zp) {
                    return Err(err("zero points must be in -128..=127".into()));
                }
                let r = x.shape.len();
                let ok = (r == 2 || r == 3)
                    && b.shape.len() == r
                    && x.shape[r - 1] == b.shape[r - 2]
                    && (r == 2 || x.shape[0] == b.shape[0]);
                if !ok {
                    return Err(err(format!("shapes {:?} x {:?} do not multiply", x.shape, b.shape)));
                }
                let mut shape = x.shape.clone();
                shape[r - 1] = b.shape[r - 1];
                Ok(TensorSpec::new(DType::I32, shape))
            }
            Op::Conv2d { weight, bias, stride, padding, input_zp } => {
                want(x, DType::I8, "input")?;
                let w = cspec(*weight);
                want(w, DType::I8, "weight")?;
                if !i8_range(*input_zp) {
                    return Err(err(format!("input_zp {input_zp} outside -128..=127")));
                }
                if x.shape.len() != 4 || w.shape.len() != 4 || w.shape[1] != x.shape[1] {
                    return Err(err(format!("input {:?} (NCHW) and weight {:?} (OIHW) do not fit", x.shape, w.shape)));
                }
                let win = Window { kernel: [w.shape[2], w.shape[3]], stride: *stride, padding: *padding };
                let (oh, ow) = win
                    .output_hw(x.shape[2], x.shape[3])
                    .ok_or_else(|| err(format!("window {win:?} does not fit input {:?}", x.shape)))?;
                if let Some(b) = bias {
                    let b = cspec(*b);
                    want(b, DType::I32, "bias")?;
                    if b.shape != [w.shape[0]] {
                        return Err(err(format!("bias shape {:?}, want [{}]", b.shape, w.shape[0])));
                    }
                }
                Ok(TensorSpec::new(DType::I32, vec![x.shape[0], w.shape[0], oh, ow]))
            }
            Op::MaxPool2d { kernel, stride, padding } => {
                want(x, DType::I8, "input")?;
                if padding[0] >= kernel[0]
                    || padding[2] >= kernel[0]
                    || padding[1] >= kernel[1]
                    || padding[3] >= kernel[1]
                {
                    return Err(err("padding must be less than the kernel".into()));
                }
                self.pool_spec(x, Window { kernel: *kernel, stride: *stride, padding: *padding }, &err)
            }
            Op::AvgPool2d { kernel, stride } => {
                want(x, DType::I8, "input")?;
                self.pool_spec(x, Window { kernel: *kernel, stride: *stride, padding: [0; 4] }, &err)
            }
            Op::Add => {
                want(x, DType::I32, "left input")?;
                want(ins[1], DType::I32, "right input")?;
                if x.shape != ins[1].shape {
                    return Err(err(format!("shapes {:?} and {:?} differ", x.shape, ins[1].shape)));
                }
                Ok(x.clone())
            }
            Op::QAdd(p) => {
                want(x, DType::I8, "left input")?;
                want(ins[1], DType::I8, "right input")?;
                if x.shape != ins[1].shape {
                    return Err(err(format!("shapes {:?} and {:?} differ", x.shape, ins[1].shape)));
                }
                let ok = i8_range(p.a_zp)
                    && i8_range(p.b_zp)
                    && i8_range(p.out_zp)
                    && clamp_range(p.act_min, p.act_max)
                    && p.left_shift <= 20
                    && valid_multiplier(p.a_mult, p.a_shift)
                    && valid_multiplier(p.b_mult, p.b_shift)
                    && valid_multiplier(p.out_mult, p.out_shift);
                if !ok {
                    return Err(err(format!("invalid parameters {p:?}")));
                }
                Ok(x.clone())
            }
            Op::QMul(p) => {
                want(x, DType::I8, "left input")?;
                want(ins[1], DType::I8, "right input")?;
                if x.shape != ins[1].shape {
                    return Err(err(format!("shapes {:?} and {:?} differ", x.shape, ins[1].shape)));
                }
                let ok = i8_range(p.a_zp)
                    && i8_range(p.b_zp)
                    && i8_range(p.out_zp)
                    && clamp_range(p.act_min, p.act_max)
                    && valid_multiplier(p.mult, p.shift);
                if !ok {
                    return Err(err(format!("invalid parameters {p:?}")));
                }
                Ok(x.clone())
            }
            Op::Requantize { axis, multipliers, shifts, out_zp, act_min, act_max } => {
                want(x, DType::I32, "input")?;
                if multipliers.is_empty() || multipliers.len() != shifts.len() {
                    return Err(err(format!(
                        "{} multipliers and {} shifts (need equal, at least one)",
                        multipliers.len(),
                        shifts.len()
                    )));
                }
                if multipliers.len() > 1 && (*axis >= x.shape.len() || x.shape[*axis] != multipliers.len()) {
                    return Err(err(format!(
                        "{} multipliers do not match axis {axis} of shape {:?}",
                        multipliers.len(),
                        x.shape
                    )));
                }
                if let Some((m, s)) = multipliers.iter().zip(shifts).find(|(m, s)| !valid_multiplier(**m, **s)) {
                    return Err(err(format!("invalid multiplier {m} / shift {s}")));
                }
                if !i8_range(*out_zp) || !clamp_range(*act_min, *act_max) {
                    return Err(err("out_zp / act_min / act_max outside -128..=127".into()));
                }
                Ok(TensorSpec::new(DType::I8, x.shape.clone()))
            }
            Op::Relu { zero_point } => {
                if x.dtype == DType::I8 && !i8_range(*zero_point) {
                    return Err(err(format!("zero_point {zero_point} outside -128..=127")));
                }
                Ok(x.clone())
            }
            Op::Lut { table } => {
                want(x, DType::I8, "input")?;
                if table.len() != 256 {
                    return Err(err(format!("table has {} entries, want 256", table.len())));
                }
                Ok(x.clone())
            }
            Op::Softmax { exp_table } => {
                want(x, DType::I8, "input")?;
                if x.shape.is_empty() {
                    return Err(err("input must have rank >= 1".into()));
                }
                if exp_table.len() != 256
                    || exp_table[0] < 1
                    || exp_table.iter().any(|&e| !(0..=EXP_TABLE_MAX).contains(&e))
                {
                    return Err(err("exp_table must have 256 entries in 0..=2^24 with entry 0 >= 1".into()));
                }
                Ok(x.clone())
            }
            Op::LayerNorm { gamma, beta, eps, shift, out_zp } | Op::RmsNorm { gamma, beta, eps, shift, out_zp } => {
                let c = match x.shape.last() {
                    Some(&c) if (1..=1 << 20).contains(&c) => c,
                    _ => return Err(err(format!("last dim of {:?} must be in 1..=2^20", x.shape))),
                };
                for (what, id) in std::iter::once(("gamma", *gamma)).chain(beta.map(|b| ("beta", b))) {
                    let s = cspec(id);
                    want(s, DType::I32, what)?;
                    if s.shape != [c] {
                        return Err(err(format!("{what} shape {:?}, want [{c}]", s.shape)));
                    }
                }
                if !(0..=1i64 << 62).contains(eps) || *shift > 62 || !i8_range(*out_zp) {
                    return Err(err("eps must be in 0..=2^62, shift <= 62, out_zp in -128..=127".into()));
                }
                Ok(TensorSpec::new(DType::I8, x.shape.clone()))
            }
            Op::Reshape { shape } => {
                if checked_numel(shape) != Some(x.numel()) {
                    return Err(err(format!("cannot reshape {:?} to {shape:?}", x.shape)));
                }
                Ok(TensorSpec::new(x.dtype, shape.clone()))
            }
            Op::Transpose { perm } => {
                let mut seen = vec![false; x.shape.len()];
                if perm.len() != x.shape.len()
                    || perm.iter().any(|&p| p >= seen.len() || std::mem::replace(&mut seen[p], true))
                {
                    return Err(err(format!("{perm:?} is not a permutation of rank {}", x.shape.len())));
                }
                Ok(TensorSpec::new(x.dtype, perm.iter().map(|&p| x.shape[p]).collect()))
            }
            Op::Concat { axis } => {
                if *axis >= x.shape.len() {
                    return Err(err(format!("axis {axis} out of rank {}", x.shape.len())));
                }
                let mut shape = x.shape.clone();
                for s in &ins[1..] {
                    let same_other = s.shape.len() == x.shape.len()
                        && (0..x.shape.len()).all(|a| a == *axis || s.shape[a] == x.shape[a]);
                    if s.dtype != x.dtype || !same_other {
                        return Err(err(format!("cannot concat {:?} with {:?}", x, s)));
                    }
                    shape[*axis] += s.shape[*axis];
                }
                Ok(TensorSpec::new(x.dtype, shape))
            }
            Op::Slice { starts, ends } => {
                let r = x.shape.len();
                if starts.len() != r || ends.len() != r || (0..r).any(|a| starts[a] > ends[a] || ends[a] > x.shape[a]) {
                    return Err(err(format!("slice {starts:?}..{ends:?} does not fit {:?}", x.shape)));
                }
                Ok(TensorSpec::new(x.dtype, (0..r).map(|a| ends[a] - starts[a]).collect()))
            }
            Op::Gather { table } => {
                want(x, DType::I32, "indices")?;
                let t = cspec(*table);
                if t.shape.len() != 2 {
                    return Err(err(format!("table shape {:?}, want [V, D]", t.shape)));
                }
                let mut shape = x.shape.clone();
                shape.push(t.shape[1]);
                Ok(TensorSpec::new(t.dtype, shape))
            }
            Op::ArgMax => match x.shape.last() {
                Some(&c) if c >= 1 => Ok(TensorSpec::new(DType::I32, x.shape[..x.shape.len() - 1].to_vec())),
                _ => Err(err(format!("shape {:?} needs a non-empty last axis", x.shape))),
            },
        }
    }

    fn pool_spec(&self, x: &TensorSpec, win: Window, err: &dyn Fn(String) -> DnnError) -> Result<TensorSpec> {
        if x.shape.len() != 4 {
            return Err(err(format!("input shape {:?} is not NCHW", x.shape)));
        }
        let (oh, ow) = win
            .output_hw(x.shape[2], x.shape[3])
            .ok_or_else(|| err(format!("window {win:?} does not fit input {:?}", x.shape)))?;
        Ok(TensorSpec::new(DType::I8, vec![x.shape[0], x.shape[1], oh, ow]))
    }
}

/// A validated graph with its constant tensors.
#[derive(Clone, Debug)]
pub struct Model {
    graph: Graph,
    weights: Vec<Tensor>,
    specs: Vec<TensorSpec>,
}

impl Model {
    /// Validate `graph` and check that `weights` match its constants.
    pub fn new(graph: Graph, weights: Vec<Tensor>) -> Result<Self> {
        if weights.len() != graph.consts.len() {
            return Err(DnnError::Graph(format!(
                "{} weight tensors for {} constants",
                weights.len(),
                graph.consts.len()
            )));
        }
        for (c, w) in graph.consts.iter().zip(&weights) {
            if w.spec() != c.spec {
                return Err(DnnError::Tensor {
                    name: c.name.clone(),
                    msg: format!("is {} {:?}, graph expects {} {:?}", w.dtype(), w.shape(), c.spec.dtype, c.spec.shape),
                });
            }
        }
        let specs = graph.infer_specs()?;
        Ok(Self { graph, weights, specs })
    }

    /// The graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Constant tensors, indexed like `graph().consts`.
    pub fn weights(&self) -> &[Tensor] {
        &self.weights
    }

    /// Spec of every slot.
    pub fn specs(&self) -> &[TensorSpec] {
        &self.specs
    }

    /// Total number of constant elements (parameters).
    pub fn param_count(&self) -> usize {
        self.weights.iter().map(Tensor::numel).sum()
    }
}
