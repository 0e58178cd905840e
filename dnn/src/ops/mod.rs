//! Every op in one place: the [`Op`] enum with its table (tag, name, constants, arity),
//! the shape rule the graph checker runs, and the native evaluation. Each op's rule, the
//! dims every executor derives from its shapes, and its native kernel live in the op's
//! module below; the `match`es here only route to them, and have no wildcard arm, so a new
//! variant does not build until every one of them names it. The compiler's lowering
//! (`compiler/src/lower.rs`) matches the same way. Semantics: `docs/spec/ops.md`; how to add
//! an op: `docs/adding-an-op.md`.

use serde::{Deserialize, Serialize};

use crate::graph::{ConstId, ConstSpec};
use crate::tensor::{Data, Tensor, TensorSpec};

pub mod check;
pub mod conv;
pub mod dims;
pub mod elementwise;
pub mod llm;
pub mod matmul;
pub mod norm;
pub mod pool;
pub mod shape;
pub mod softmax;

use check::bad;
pub use check::{OpError, OpResult};
use conv::{conv2d, conv_dims, conv_rule};
use dims::{ChannelDims, RowDims};
use elementwise::{
    add_i32, add_rule, lut, lut_rule, qadd, qadd_rule, qmul, qmul_rule, relu_i32, relu_i8, relu_rule, requantize,
    requantize_dims, requantize_rule, QAddParams, QMulParams,
};
use llm::attention::{attention, attention_dims, attention_rule};
use llm::blockq::{i8_as_bytes, Q4_1, Q8_0};
use llm::qlinear::{
    embed_q8_0, embed_q8_0_dims, embed_q8_0_rule, linear_q4_1, linear_q8_0, q4_1_dims, q4_1_linear_rule, q8_0_dims,
    q8_0_linear_rule, ActBits,
};
use llm::rmsnorm::{rmsnorm_wide, rmsnorm_wide_rule, RmsParams};
use llm::rope::{rope, rope_dims, rope_rule};
use llm::silu::{swiglu, swiglu_rule};
use llm::token::{token_emit, token_emit_rule, token_select, token_select_rule};
use matmul::{linear, linear_dims, linear_rule, matmul, matmul_dims, matmul_rule};
use norm::{layernorm, norm_rule, rmsnorm, NormOut};
use pool::{avgpool2d, avgpool_window, maxpool2d, maxpool_window, pool_rule};
use shape::{
    argmax, argmax_rule, concat, concat_rule, gather, gather_dims, gather_rule, reshape_rule, slice, slice_rule,
    transpose, transpose_rule,
};
use softmax::{softmax, softmax_rule};

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
    /// i32 `[.., k]` x Q4_1 weights `[n, k]` -> i32 `[.., n]`, same fixed-point format
    /// (`docs/spec/ops.md` §5.2).
    LinearQ4_1 {
        /// Nibbles, i8 `[n, k / 2]` (bytes, GGUF order).
        qs: ConstId,
        /// Block scales, i32 `[n, k / 32]`.
        d: ConstId,
        /// Block mins, i32 `[n, k / 32]`.
        m: ConstId,
        /// Fraction bits of the scales and mins (0..=62).
        exp: u32,
        /// Width the activations are quantized to per block.
        act: ActBits,
    },
    /// i32 `[.., k]` x Q8_0 weights `[n, k]` -> i32 `[.., n]` (§5.2).
    LinearQ8_0 {
        /// Values, i8 `[n, k]`.
        qs: ConstId,
        /// Block scales, i32 `[n, k / 32]`.
        d: ConstId,
        /// Fraction bits of the scales (0..=62).
        exp: u32,
        /// Width the activations are quantized to per block.
        act: ActBits,
    },
    /// i32 token ids -> i32 rows of a Q8_0 table `[vocab, k]` in the stream format (§5.2).
    EmbedQ8_0 {
        /// Values, i8 `[vocab, k]`.
        qs: ConstId,
        /// Block scales, i32 `[vocab, k / 32]`.
        d: ConstId,
        /// Fraction bits of the scales (0..=62).
        exp: u32,
        /// Fraction bits of the output (0..=31).
        frac: u32,
    },
    /// i32 -> i32 RMS normalisation over the last axis, output stays wide (§5.3).
    RmsNormWide {
        /// i32 per-channel gain `[n]`.
        gamma: ConstId,
        /// Fraction bits of the gain (0..=62).
        gamma_exp: u32,
        /// Epsilon in units of `2^-2frac` (`>= 0`).
        eps: i64,
        /// Fraction bits of the input (0..=31).
        frac: u32,
        /// Fraction bits of the output (at most `frac + 30 + gamma_exp`).
        out_frac: u32,
    },
    /// Rotary position embedding of i32 `[seq, heads, head_dim]` at positions
    /// `pos0..pos0 + seq`, adjacent pairs (§5.7).
    Rope {
        /// Q30 cosines, i32 `[positions, head_dim / 2]`.
        cos: ConstId,
        /// Q30 sines, same shape.
        sin: ConstId,
        /// Position of the first row.
        pos0: usize,
    },
    /// `silu(gate) * up` of two i32 operands of one shape (§5.5).
    SwiGlu {
        /// Fraction bits of both operands and the output (0..=31).
        frac: u32,
    },
    /// Causal GQA attention: q `[seq, heads, hd]` at positions `pos0..pos0 + seq`, k and v
    /// `[ctx, kv_heads, hd]` (the cache, positions `0..ctx`) -> i32 of q's shape (§5.6).
    Attention {
        /// Position of the first query.
        pos0: usize,
        /// Fraction bits of q, k, v and the output (0..=31).
        frac: u32,
    },
    /// The token a generation step reads: i32 prompt `[P]`, lengths `[2]` (and the previous
    /// step's argmax `[1]` when `pos > 0`) -> i32 `[1]` (§5.8).
    TokenSelect {
        /// The step's position.
        pos: usize,
        /// Vocabulary size: an id outside `0..vocab` reads as 0.
        vocab: usize,
    },
    /// Emit a step's argmax into the generated tokens: (i32 `[max_new]` when `pos > 0`),
    /// lengths `[2]`, argmax `[1]` -> i32 `[max_new]` (§5.8).
    TokenEmit {
        /// The step's position.
        pos: usize,
        /// Longest prompt.
        max_prompt: usize,
        /// Most generated tokens (the output's length).
        max_new: usize,
    },
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
            Op::LinearQ4_1 { .. } => 21,
            Op::LinearQ8_0 { .. } => 22,
            Op::EmbedQ8_0 { .. } => 23,
            Op::RmsNormWide { .. } => 24,
            Op::Rope { .. } => 25,
            Op::SwiGlu { .. } => 26,
            Op::Attention { .. } => 27,
            Op::TokenSelect { .. } => 28,
            Op::TokenEmit { .. } => 29,
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
            Op::LinearQ4_1 { .. } => "linear_q4_1",
            Op::LinearQ8_0 { .. } => "linear_q8_0",
            Op::EmbedQ8_0 { .. } => "embed_q8_0",
            Op::RmsNormWide { .. } => "rmsnorm_wide",
            Op::Rope { .. } => "rope",
            Op::SwiGlu { .. } => "swiglu",
            Op::Attention { .. } => "attention",
            Op::TokenSelect { .. } => "token_select",
            Op::TokenEmit { .. } => "token_emit",
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
            Op::LinearQ4_1 { qs, d, m, .. } => vec![*qs, *d, *m],
            Op::LinearQ8_0 { qs, d, .. } | Op::EmbedQ8_0 { qs, d, .. } => vec![*qs, *d],
            Op::RmsNormWide { gamma, .. } => vec![*gamma],
            Op::Rope { cos, sin, .. } => vec![*cos, *sin],
            Op::MatMul { .. }
            | Op::MaxPool2d { .. }
            | Op::AvgPool2d { .. }
            | Op::Add
            | Op::QAdd(_)
            | Op::QMul(_)
            | Op::Requantize { .. }
            | Op::Relu { .. }
            | Op::Lut { .. }
            | Op::Softmax { .. }
            | Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::Concat { .. }
            | Op::Slice { .. }
            | Op::ArgMax
            | Op::SwiGlu { .. }
            | Op::Attention { .. }
            | Op::TokenSelect { .. }
            | Op::TokenEmit { .. } => Vec::new(),
        }
    }

    /// Number of activation inputs the op takes (`None`: one or more).
    pub(crate) fn arity(&self) -> Option<usize> {
        match self {
            Op::MatMul { .. } | Op::Add | Op::QAdd(_) | Op::QMul(_) | Op::SwiGlu { .. } => Some(2),
            Op::Attention { .. } => Some(3),
            Op::TokenSelect { pos, .. } | Op::TokenEmit { pos, .. } => Some(if *pos == 0 { 2 } else { 3 }),
            Op::Concat { .. } => None,
            Op::Linear { .. }
            | Op::Conv2d { .. }
            | Op::MaxPool2d { .. }
            | Op::AvgPool2d { .. }
            | Op::Requantize { .. }
            | Op::Relu { .. }
            | Op::Lut { .. }
            | Op::Softmax { .. }
            | Op::LayerNorm { .. }
            | Op::RmsNorm { .. }
            | Op::Reshape { .. }
            | Op::Transpose { .. }
            | Op::Slice { .. }
            | Op::Gather { .. }
            | Op::ArgMax
            | Op::LinearQ4_1 { .. }
            | Op::LinearQ8_0 { .. }
            | Op::EmbedQ8_0 { .. }
            | Op::RmsNormWide { .. }
            | Op::Rope { .. } => Some(1),
        }
    }
}

impl Op {
    /// Check the op against its input specs and the graph's constants and give its output
    /// spec: the graph checker's rule, one per op, in the op's module.
    pub fn infer(&self, ins: &[&TensorSpec], consts: &[ConstSpec]) -> OpResult<TensorSpec> {
        match self.arity() {
            Some(a) if ins.len() != a => return Err(bad(format!("takes {a} inputs, got {}", ins.len()))),
            None if ins.is_empty() => return Err(bad("takes at least one input")),
            _ => {}
        }
        if let Some(w) = self.weights().into_iter().find(|&w| w >= consts.len()) {
            return Err(bad(format!("constant {w} does not exist")));
        }
        let c = |id: ConstId| &consts[id].spec;
        let x = ins[0];
        match self {
            Op::Linear { weight, bias, input_zp } => linear_rule(x, c(*weight), bias.map(c), *input_zp),
            Op::MatMul { a_zp, b_zp } => matmul_rule(x, ins[1], *a_zp, *b_zp),
            Op::Conv2d { weight, bias, stride, padding, input_zp } => {
                conv_rule(x, c(*weight), bias.map(c), *stride, *padding, *input_zp)
            }
            Op::MaxPool2d { kernel, stride, padding } => pool_rule(x, maxpool_window(*kernel, *stride, *padding)),
            Op::AvgPool2d { kernel, stride } => pool_rule(x, Ok(avgpool_window(*kernel, *stride))),
            Op::Add => add_rule(x, ins[1]),
            Op::QAdd(p) => qadd_rule(x, ins[1], p),
            Op::QMul(p) => qmul_rule(x, ins[1], p),
            Op::Requantize { axis, multipliers, shifts, out_zp, act_min, act_max } => {
                requantize_rule(x, multipliers, shifts, *axis, *out_zp, *act_min, *act_max)
            }
            Op::Relu { zero_point } => relu_rule(x, *zero_point),
            Op::Lut { table } => lut_rule(x, table),
            Op::Softmax { exp_table } => softmax_rule(x, exp_table),
            Op::LayerNorm { gamma, beta, eps, shift, out_zp } | Op::RmsNorm { gamma, beta, eps, shift, out_zp } => {
                norm_rule(x, c(*gamma), beta.map(c), *eps, *shift, *out_zp)
            }
            Op::Reshape { shape } => reshape_rule(x, shape),
            Op::Transpose { perm } => transpose_rule(x, perm),
            Op::Concat { axis } => concat_rule(ins, *axis),
            Op::Slice { starts, ends } => slice_rule(x, starts, ends),
            Op::Gather { table } => gather_rule(x, c(*table)),
            Op::ArgMax => argmax_rule(x),
            Op::LinearQ4_1 { qs, d, m, exp, act: _ } => q4_1_linear_rule(x, c(*qs), c(*d), c(*m), *exp),
            Op::LinearQ8_0 { qs, d, exp, act: _ } => q8_0_linear_rule(x, c(*qs), c(*d), *exp),
            Op::EmbedQ8_0 { qs, d, exp, frac } => embed_q8_0_rule(x, c(*qs), c(*d), *exp, *frac),
            Op::RmsNormWide { gamma, gamma_exp, eps, frac, out_frac } => {
                let p = RmsParams { frac: *frac, out_frac: *out_frac, gamma_exp: *gamma_exp, eps: *eps };
                rmsnorm_wide_rule(x, c(*gamma), &p)
            }
            Op::Rope { cos, sin, pos0 } => rope_rule(x, c(*cos), c(*sin), *pos0),
            Op::SwiGlu { frac } => {
                llm::want_frac(*frac)?;
                swiglu_rule(x, ins[1])
            }
            Op::Attention { pos0, frac } => attention_rule(x, ins[1], ins[2], *pos0, *frac),
            Op::TokenSelect { vocab, .. } => token_select_rule(ins, *vocab),
            Op::TokenEmit { pos, max_prompt, max_new } => token_emit_rule(ins, *pos, *max_prompt, *max_new),
        }
    }

    /// Run the op natively on inputs and constants that passed [`Op::infer`]; the data of
    /// its output (shape: the inferred spec's). The only error left at run time is a value
    /// the shapes cannot rule out (a `gather` or `embed_q8_0` index outside the table).
    pub(crate) fn eval(&self, ins: &[&Tensor], weights: &[Tensor]) -> OpResult<Data> {
        let x = ins[0];
        Ok(match self {
            Op::Linear { weight, bias, input_zp } => {
                let w = &weights[*weight];
                let d = linear_dims(x.shape(), w.shape())?;
                Data::I32(linear(i8s(x), i8s(w), bias.map(|b| i32s(&weights[b])), d, *input_zp))
            }
            Op::MatMul { a_zp, b_zp } => {
                let d = matmul_dims(x.shape(), ins[1].shape())?;
                Data::I32(matmul(i8s(x), i8s(ins[1]), d, *a_zp, *b_zp))
            }
            Op::Conv2d { weight, bias, stride, padding, input_zp } => {
                let w = &weights[*weight];
                let d = conv_dims(x.shape(), w.shape(), *stride, *padding)?;
                Data::I32(conv2d(i8s(x), i8s(w), bias.map(|b| i32s(&weights[b])), &d, *input_zp))
            }
            Op::MaxPool2d { kernel, stride, padding } => {
                let d = conv::plane_dims(x.shape(), maxpool_window(*kernel, *stride, *padding)?)?;
                Data::I8(maxpool2d(i8s(x), &d))
            }
            Op::AvgPool2d { kernel, stride } => {
                let d = conv::plane_dims(x.shape(), avgpool_window(*kernel, *stride))?;
                Data::I8(avgpool2d(i8s(x), &d))
            }
            Op::Add => Data::I32(add_i32(i32s(x), i32s(ins[1]))),
            Op::QAdd(p) => Data::I8(qadd(i8s(x), i8s(ins[1]), p)),
            Op::QMul(p) => Data::I8(qmul(i8s(x), i8s(ins[1]), p)),
            Op::Requantize { axis, multipliers, shifts, out_zp, act_min, act_max } => {
                let d: ChannelDims = requantize_dims(x.shape(), *axis, multipliers.len())?;
                Data::I8(requantize(i32s(x), d, multipliers, shifts, *out_zp, *act_min, *act_max))
            }
            Op::Relu { zero_point } => match x.data() {
                Data::I8(v) => Data::I8(relu_i8(v, *zero_point)),
                Data::I32(v) => Data::I32(relu_i32(v, *zero_point)),
            },
            Op::Lut { table } => Data::I8(lut(i8s(x), table)),
            Op::Softmax { exp_table } => Data::I8(softmax(i8s(x), rows(x)?.len, exp_table)),
            Op::LayerNorm { gamma, beta, eps, shift, out_zp } | Op::RmsNorm { gamma, beta, eps, shift, out_zp } => {
                let p = NormOut {
                    gamma: i32s(&weights[*gamma]),
                    beta: beta.map(|b| i32s(&weights[b])),
                    shift: *shift,
                    out_zp: *out_zp,
                    eps: *eps,
                };
                let (v, n) = (x.to_i32_vec(), rows(x)?.len);
                if matches!(self, Op::LayerNorm { .. }) {
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
                let t = &weights[*table];
                let (v, d) = gather_dims(t.shape())?;
                let idx = i32s(x);
                if let Some(bad_index) = idx.iter().find(|&&i| i < 0 || i as usize >= v) {
                    return Err(bad(format!("index {bad_index} outside 0..{v}")));
                }
                match t.data() {
                    Data::I8(tv) => Data::I8(gather(tv, d, idx)),
                    Data::I32(tv) => Data::I32(gather(tv, d, idx)),
                }
            }
            Op::ArgMax => {
                let len = rows(x)?.len;
                match x.data() {
                    Data::I8(v) => Data::I32(argmax(v, len)),
                    Data::I32(v) => Data::I32(argmax(v, len)),
                }
            }
            Op::LinearQ4_1 { qs, d, m, exp, act } => {
                let q = &weights[*qs];
                let dims = q4_1_dims(x.shape(), q.shape())?;
                let w = Q4_1 { qs: i8_as_bytes(i8s(q)), d: i32s(&weights[*d]), m: i32s(&weights[*m]), exp: *exp };
                Data::I32(linear_q4_1(i32s(x), w, dims, *act)?)
            }
            Op::LinearQ8_0 { qs, d, exp, act } => {
                let q = &weights[*qs];
                let dims = q8_0_dims(x.shape(), q.shape())?;
                let w = Q8_0 { qs: i8s(q), d: i32s(&weights[*d]), exp: *exp };
                Data::I32(linear_q8_0(i32s(x), w, dims, *act)?)
            }
            Op::EmbedQ8_0 { qs, d, exp, frac } => {
                let q = &weights[*qs];
                let dims = embed_q8_0_dims(x.shape(), q.shape())?;
                let w = Q8_0 { qs: i8s(q), d: i32s(&weights[*d]), exp: *exp };
                Data::I32(embed_q8_0(i32s(x), w, dims.k, *frac)?)
            }
            Op::RmsNormWide { gamma, gamma_exp, eps, frac, out_frac } => {
                let p = RmsParams { frac: *frac, out_frac: *out_frac, gamma_exp: *gamma_exp, eps: *eps };
                Data::I32(rmsnorm_wide(i32s(x), i32s(&weights[*gamma]), rows(x)?, &p)?)
            }
            Op::Rope { cos, sin, pos0 } => {
                let (c, s) = (&weights[*cos], &weights[*sin]);
                let d = rope_dims(x.shape(), c.shape(), *pos0)?;
                Data::I32(rope(i32s(x), i32s(c), i32s(s), d)?)
            }
            Op::SwiGlu { frac } => Data::I32(swiglu(i32s(x), i32s(ins[1]), *frac)?),
            Op::Attention { pos0, frac } => {
                let (k, v) = (ins[1], ins[2]);
                let d = attention_dims(x.shape(), k.shape(), v.shape(), *pos0)?;
                Data::I32(attention(i32s(x), i32s(k), i32s(v), d, *frac)?)
            }
            Op::TokenSelect { pos, vocab } => {
                let prev = ins.get(2).map(|t| i32s(t));
                Data::I32(vec![token_select(i32s(x), i32s(ins[1]), prev, *pos, *vocab)?])
            }
            Op::TokenEmit { pos, max_prompt, max_new } => {
                let (gen, rest) = if *pos > 0 { (Some(i32s(x)), &ins[1..]) } else { (None, ins) };
                Data::I32(token_emit(gen, i32s(rest[0]), i32s(rest[1]), *pos, *max_prompt, *max_new)?)
            }
        })
    }
}

/// The rows of a tensor along its last axis (softmax, the norms, argmax).
fn rows(x: &Tensor) -> OpResult<RowDims> {
    RowDims::of_last_axis(x.shape()).ok_or_else(|| bad(format!("shape {:?} has no last axis", x.shape())))
}

fn i8s(t: &Tensor) -> &[i8] {
    t.as_i8().expect("validated dtype i8")
}

fn i32s(t: &Tensor) -> &[i32] {
    t.as_i32().expect("validated dtype i32")
}
