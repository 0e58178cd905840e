//! Lowering a graph node to its kernel and argument blob (`docs/spec/node-image.md` §3).
//! Arguments are little-endian `u32` words: tensor addresses of the fixed layout, shapes,
//! op parameters and the scratch buffers the kernel uses. They follow from the node's op,
//! parameters and input / output specs alone (never from tensor values).
//!
//! Every size a kernel takes comes from the op's dims function in `opml_dnn::ops` (the same
//! one the graph checker and the native executor call), and the `match` in [`lower`] has no
//! wildcard arm: an op without a kernel does not build.

use opml_dnn::ops::conv::{conv_dims, plane_dims};
use opml_dnn::ops::dims::{ChannelDims, ConvDims, MatDims, PlaneDims, RowDims};
use opml_dnn::ops::elementwise::requantize_dims;
use opml_dnn::ops::llm::attention::{attention_dims, score_scale_q30, AttnDims};
use opml_dnn::ops::llm::qlinear::{embed_q8_0_dims, q4_1_dims, q8_0_dims, ActBits, BlockDims};
use opml_dnn::ops::llm::rmsnorm::INV_FRAC;
use opml_dnn::ops::llm::rope::{rope_dims, RopeDims};
use opml_dnn::ops::matmul::{linear_dims, matmul_dims};
use opml_dnn::ops::pool::{avgpool_window, maxpool_window};
use opml_dnn::ops::shape::{gather_dims, strides};
use opml_dnn::ops::OpError;
use opml_dnn::{DType, Model, Op, TensorSpec};

use crate::error::CompileError;
use crate::kernels::attention::attention_args;
use crate::kernels::blockq::{embed_q_args, linear_q_args, QK};
use crate::kernels::copy::{gather_args, strided_args};
use crate::kernels::elementwise::{add_args, argmax_args, qbin_args, requantize_args, unary_args};
use crate::kernels::gemm::{conv_args, linear_args, matmul_args, BLOCK};
use crate::kernels::norm::norm_args;
use crate::kernels::pool::pool_args;
use crate::kernels::rmsnorm_wide::rmsnorm_wide_args;
use crate::kernels::rope::rope_args;
use crate::kernels::softmax::softmax_args;
use crate::kernels::swiglu::swiglu_args;
use crate::kernels::token::{token_emit_args, token_select_args};
use crate::kernels::KernelId;
use crate::layout::{input_addr, weight_addr, OUTPUT_BASE, SCRATCH_BASE, STACK_BYTES, TENSOR_WINDOW};

/// A lowered node: which kernel runs it, and its argument words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lowered {
    /// The kernel.
    pub kernel: KernelId,
    /// Argument words (the parameter region holds their little-endian bytes).
    pub args: Vec<u32>,
}

impl Lowered {
    /// The parameter region's bytes.
    pub fn args_bytes(&self) -> Vec<u8> {
        self.args.iter().flat_map(|w| w.to_le_bytes()).collect()
    }
}

/// Bump allocator over the scratch window (32-byte aligned buffers).
struct Scratch {
    next: u64,
}

impl Scratch {
    fn new() -> Self {
        Self { next: SCRATCH_BASE as u64 }
    }

    fn alloc(&mut self, bytes: usize) -> Option<u32> {
        let at = self.next;
        let end = at.checked_add((bytes as u64).div_ceil(32) * 32)?;
        if end > (SCRATCH_BASE + TENSOR_WINDOW - STACK_BYTES) as u64 {
            return None;
        }
        self.next = end;
        Some(at as u32)
    }
}

/// Argument builder: words set by index.
struct Args(Vec<u32>);

impl Args {
    fn new(count: usize) -> Self {
        Self(vec![0; count])
    }

    fn set(&mut self, i: usize, v: impl TryInto<u32>) -> Result<(), String> {
        self.0[i] = v.try_into().map_err(|_| format!("argument {i} does not fit 32 bits"))?;
        Ok(())
    }

    fn set_i(&mut self, i: usize, v: i32) {
        self.0[i] = v as u32;
    }

    fn put(&mut self, first: usize, words: &[u32]) {
        self.0[first..first + words.len()].copy_from_slice(words);
    }
}

/// A fixed-point multiplier as the kernels take it:
/// `multiplier, max(shift, 0), max(-shift, 0), 2^max(-shift, 0) - 1`.
fn mult_words(m: i32, shift: i32) -> [u32; 4] {
    let right = (-shift).max(0) as u32;
    [m as u32, shift.max(0) as u32, right, ((1u64 << right) - 1) as u32]
}

#[allow(clippy::too_many_arguments)]
fn q_common(a: &mut Args, len: usize, a_zp: i32, b_zp: i32, lo: i32, hi: i32, out_zp: i32) -> Result<(), String> {
    use qbin_args::*;
    a.set(A, input_addr(0))?;
    a.set(B, input_addr(1))?;
    a.set(OUT, OUTPUT_BASE)?;
    a.set(LEN, len)?;
    a.set_i(A_ZP, a_zp);
    a.set_i(B_ZP, b_zp);
    a.set_i(LO, lo - out_zp);
    a.set_i(HI, hi - out_zp);
    a.set_i(OUT_ZP, out_zp);
    Ok(())
}

/// One strided-copy job: `axes` are `[dim, src stride, dst stride]` in bytes.
struct Job {
    src: usize,
    dst: usize,
    es: usize,
    axes: Vec<[usize; 3]>,
}

fn strided_lowered(jobs: Vec<Job>, idx: u32) -> Result<(KernelId, Vec<u32>), String> {
    use strided_args::*;
    let mut a = Args::new(FIRST_JOB);
    a.set(IDX, idx)?;
    a.set(JOBS, jobs.len())?;
    for job in jobs {
        let mut w = Args::new(JOB_HEADER_WORDS);
        w.set(0, job.src)?;
        w.set(1, job.dst)?;
        w.set(2, job.es)?;
        w.set(3, job.axes.len())?;
        for ax in &job.axes {
            for v in ax {
                w.0.push(u32::try_from(*v).map_err(|_| format!("stride {v} does not fit 32 bits"))?);
            }
        }
        a.0.extend(w.0);
    }
    Ok((KernelId::Strided, a.0))
}

fn pad_to_block(k: usize) -> usize {
    k.div_ceil(BLOCK) * BLOCK
}

/// Lower node `j` of a validated model.
pub fn lower(model: &Model, j: usize) -> Result<Lowered, CompileError> {
    let g = model.graph();
    let node = &g.nodes[j];
    let specs = model.specs();
    let ins: Vec<&TensorSpec> = node.inputs.iter().map(|&s| &specs[s]).collect();
    let out = &specs[g.node_slot(j)];
    let wspec = |c: usize| &g.consts[c].spec;
    let op = node.op.name();
    let layout_err = |msg: String| CompileError::Layout { node: j, op, msg };
    // A validated model fits its op's dims; reaching these errors means the model and its
    // specs disagree, which is reported like any argument that does not fit.
    let dims_err = |e: OpError| layout_err(e.0);
    let last_axis_rows = |t: &TensorSpec| {
        RowDims::of_last_axis(&t.shape).ok_or_else(|| layout_err(format!("shape {:?} has no last axis", t.shape)))
    };
    let mut scratch = Scratch::new();
    let mut alloc = |bytes: usize| {
        scratch.alloc(bytes).ok_or_else(|| layout_err(format!("scratch buffers of {bytes} bytes do not fit")))
    };
    let x = ins[0];
    let (kernel, args) = match &node.op {
        Op::Linear { weight, bias, input_zp } => {
            use linear_args::*;
            let MatDims { m, k, n, .. } = linear_dims(&x.shape, &wspec(*weight).shape).map_err(dims_err)?;
            let kp = pad_to_block(k);
            let mut a = Args::new(COUNT);
            a.set(X, input_addr(0)).map_err(layout_err)?;
            a.set(W, weight_addr(0)).map_err(layout_err)?;
            a.set(BIAS, if bias.is_some() { weight_addr(1) } else { 0 }).map_err(layout_err)?;
            a.set(OUT, OUTPUT_BASE).map_err(layout_err)?;
            a.set(M, m).map_err(layout_err)?;
            a.set(K, k).map_err(layout_err)?;
            a.set(N, n).map_err(layout_err)?;
            a.set(KP, kp).map_err(layout_err)?;
            a.set_i(ZP, *input_zp);
            a.set(XA, alloc(m * kp)?).map_err(layout_err)?;
            a.set(WB, alloc(n * kp)?).map_err(layout_err)?;
            a.set(ROWFIX, alloc(4 * m)?).map_err(layout_err)?;
            a.set(COLFIX, alloc(4 * n)?).map_err(layout_err)?;
            a.set(WSUM, alloc(4 * n)?).map_err(layout_err)?;
            (KernelId::Linear, a.0)
        }
        Op::MatMul { a_zp, b_zp } => {
            use matmul_args::*;
            let MatDims { batch: t, m, k, n } = matmul_dims(&x.shape, &ins[1].shape).map_err(dims_err)?;
            let kp = pad_to_block(k);
            let mut a = Args::new(COUNT);
            let e = layout_err;
            a.set(A, input_addr(0)).map_err(e)?;
            a.set(B, input_addr(1)).map_err(e)?;
            a.set(OUT, OUTPUT_BASE).map_err(e)?;
            a.set(T, t).map_err(e)?;
            a.set(M, m).map_err(e)?;
            a.set(K, k).map_err(e)?;
            a.set(N, n).map_err(e)?;
            a.set(KP, kp).map_err(e)?;
            a.set_i(A_ZP, *a_zp);
            a.set_i(B_ZP, *b_zp);
            a.set(AA, alloc(m * kp)?).map_err(e)?;
            a.set(BB, alloc(n * kp)?).map_err(e)?;
            a.set(ROWFIX, alloc(4 * m)?).map_err(e)?;
            a.set(COLFIX, alloc(4 * n)?).map_err(e)?;
            a.set(SUMA, alloc(4 * m)?).map_err(e)?;
            a.set(SUMB, alloc(4 * n)?).map_err(e)?;
            a.set(A_STRIDE, m * k).map_err(e)?;
            a.set(B_STRIDE, k * n).map_err(e)?;
            a.set(OUT_STRIDE, 4 * m * n).map_err(e)?;
            (KernelId::MatMul, a.0)
        }
        Op::Conv2d { weight, bias, stride, padding, input_zp } => {
            use conv_args::*;
            let d = conv_dims(&x.shape, &wspec(*weight).shape, *stride, *padding).map_err(dims_err)?;
            let ConvDims { x: PlaneDims { n: nb, c, h, w: wd, win, oh, ow }, o } = d;
            let [kh, kw] = win.kernel;
            let kk = d.kk();
            let kp = pad_to_block(kk);
            let p = d.x.positions();
            let e = layout_err;
            let mut a = Args::new(COUNT);
            a.set(X, input_addr(0)).map_err(e)?;
            a.set(W, weight_addr(0)).map_err(e)?;
            a.set(BIAS, if bias.is_some() { weight_addr(1) } else { 0 }).map_err(e)?;
            a.set(OUT, OUTPUT_BASE).map_err(e)?;
            for (i, v) in [
                (NB, nb),
                (C, c),
                (H, h),
                (WD, wd),
                (O, o),
                (KH, kh),
                (KW, kw),
                (SH, win.stride[0]),
                (SW, win.stride[1]),
                (PT, win.padding[0]),
                (PL, win.padding[1]),
                (OH, oh),
                (OW, ow),
                (KK, kk),
                (KP, kp),
                (X_STRIDE, c * h * wd),
                (OUT_STRIDE, 4 * o * p),
                (P, p),
            ] {
                a.set(i, v).map_err(e)?;
            }
            a.set_i(ZP, *input_zp);
            a.set(WB, alloc(o * kp)?).map_err(e)?;
            a.set(COLS, alloc(p * kp)?).map_err(e)?;
            a.set(ROWFIX, alloc(4 * o)?).map_err(e)?;
            a.set(COLFIX, alloc(4 * p)?).map_err(e)?;
            a.set(WSUM, alloc(4 * o)?).map_err(e)?;
            (KernelId::Conv2d, a.0)
        }
        Op::MaxPool2d { kernel, stride, padding } => {
            let win = maxpool_window(*kernel, *stride, *padding).map_err(dims_err)?;
            pool_lowered(KernelId::MaxPool2d, &plane_dims(&x.shape, win).map_err(dims_err)?).map_err(layout_err)?
        }
        Op::AvgPool2d { kernel, stride } => {
            let win = avgpool_window(*kernel, *stride);
            pool_lowered(KernelId::AvgPool2d, &plane_dims(&x.shape, win).map_err(dims_err)?).map_err(layout_err)?
        }
        Op::Add => {
            use add_args::*;
            let mut a = Args::new(COUNT);
            a.set(A, input_addr(0)).map_err(layout_err)?;
            a.set(B, input_addr(1)).map_err(layout_err)?;
            a.set(OUT, OUTPUT_BASE).map_err(layout_err)?;
            a.set(LEN, x.numel()).map_err(layout_err)?;
            (KernelId::Add, a.0)
        }
        Op::Requantize { axis, multipliers, shifts, out_zp, act_min, act_max } => {
            use requantize_args::*;
            let ChannelDims { outer, ch, inner } =
                requantize_dims(&x.shape, *axis, multipliers.len()).map_err(dims_err)?;
            let mut a = Args::new(CH0);
            a.set(X, input_addr(0)).map_err(layout_err)?;
            a.set(OUT, OUTPUT_BASE).map_err(layout_err)?;
            a.set(OUTER, outer).map_err(layout_err)?;
            a.set(CHANNELS, ch).map_err(layout_err)?;
            a.set(INNER, inner).map_err(layout_err)?;
            a.set_i(ZP, *out_zp);
            for (&m, &s) in multipliers.iter().zip(shifts) {
                let right = (-s).max(0) as u32;
                a.0.extend_from_slice(&[
                    m as u32,
                    s.max(0) as u32,
                    right,
                    ((1u64 << right) - 1) as u32,
                    (act_min - out_zp) as u32,
                    (act_max - out_zp) as u32,
                ]);
            }
            (KernelId::Requantize, a.0)
        }
        Op::Relu { zero_point } => {
            use unary_args::*;
            let mut a = Args::new(WIDE + 1);
            a.set(X, input_addr(0)).map_err(layout_err)?;
            a.set(OUT, OUTPUT_BASE).map_err(layout_err)?;
            a.set(COUNT, x.numel()).map_err(layout_err)?;
            a.set_i(P0, *zero_point);
            a.set(WIDE, u32::from(x.dtype == DType::I32)).map_err(layout_err)?;
            (KernelId::Relu, a.0)
        }
        Op::Lut { table } => {
            use unary_args::*;
            let mut a = Args::new(P0);
            a.set(X, input_addr(0)).map_err(layout_err)?;
            a.set(OUT, OUTPUT_BASE).map_err(layout_err)?;
            a.set(COUNT, x.numel()).map_err(layout_err)?;
            a.0.extend(
                table.chunks_exact(4).map(|c| u32::from_le_bytes([c[0] as u8, c[1] as u8, c[2] as u8, c[3] as u8])),
            );
            (KernelId::Lut, a.0)
        }
        Op::Reshape { .. } => {
            use unary_args::*;
            let mut a = Args::new(P0);
            a.set(X, input_addr(0)).map_err(layout_err)?;
            a.set(OUT, OUTPUT_BASE).map_err(layout_err)?;
            a.set(COUNT, x.byte_len().div_ceil(4)).map_err(layout_err)?;
            (KernelId::Copy, a.0)
        }
        Op::ArgMax => {
            use argmax_args::*;
            let RowDims { rows, len } = last_axis_rows(x)?;
            let mut a = Args::new(WIDE + 1);
            a.set(X, input_addr(0)).map_err(layout_err)?;
            a.set(OUT, OUTPUT_BASE).map_err(layout_err)?;
            a.set(ROWS, rows).map_err(layout_err)?;
            a.set(LEN, len).map_err(layout_err)?;
            a.set(WIDE, u32::from(x.dtype == DType::I32)).map_err(layout_err)?;
            (KernelId::ArgMax, a.0)
        }
        Op::QAdd(p) => {
            use qbin_args::*;
            let mut a = Args::new(QADD_COUNT);
            q_common(&mut a, x.numel(), p.a_zp, p.b_zp, p.act_min, p.act_max, p.out_zp).map_err(layout_err)?;
            a.put(MULT, &mult_words(p.out_mult, p.out_shift));
            a.put(A_MULT, &mult_words(p.a_mult, p.a_shift));
            a.put(B_MULT, &mult_words(p.b_mult, p.b_shift));
            a.set(LEFT, p.left_shift).map_err(layout_err)?;
            (KernelId::QAdd, a.0)
        }
        Op::QMul(p) => {
            use qbin_args::*;
            let mut a = Args::new(QMUL_COUNT);
            q_common(&mut a, x.numel(), p.a_zp, p.b_zp, p.act_min, p.act_max, p.out_zp).map_err(layout_err)?;
            a.put(MULT, &mult_words(p.mult, p.shift));
            (KernelId::QMul, a.0)
        }
        Op::Transpose { perm } => {
            let es = x.dtype.size();
            let st = strides(&x.shape);
            let ost = strides(&out.shape);
            let axes: Vec<[usize; 3]> =
                (0..perm.len()).map(|i| [x.shape[perm[i]], st[perm[i]] * es, ost[i] * es]).collect();
            let jobs = vec![Job { src: input_addr(0) as usize, dst: OUTPUT_BASE as usize, es, axes }];
            strided_lowered(jobs, alloc(4 * x.shape.len().max(1))?).map_err(layout_err)?
        }
        Op::Slice { starts, ends } => {
            let es = x.dtype.size();
            let st = strides(&x.shape);
            let ost = strides(&out.shape);
            let src = input_addr(0) as usize + starts.iter().zip(&st).map(|(s, t)| s * t * es).sum::<usize>();
            let axes: Vec<[usize; 3]> =
                (0..x.shape.len()).map(|i| [ends[i] - starts[i], st[i] * es, ost[i] * es]).collect();
            let jobs = vec![Job { src, dst: OUTPUT_BASE as usize, es, axes }];
            strided_lowered(jobs, alloc(4 * x.shape.len().max(1))?).map_err(layout_err)?
        }
        Op::Concat { axis } => {
            let es = x.dtype.size();
            let ost = strides(&out.shape);
            let mut offset = 0usize;
            let mut jobs = Vec::new();
            for (i, part) in ins.iter().enumerate() {
                let st = strides(&part.shape);
                let axes: Vec<[usize; 3]> =
                    (0..part.shape.len()).map(|d| [part.shape[d], st[d] * es, ost[d] * es]).collect();
                jobs.push(Job {
                    src: input_addr(i) as usize,
                    dst: OUTPUT_BASE as usize + offset * ost[*axis] * es,
                    es,
                    axes,
                });
                offset += part.shape[*axis];
            }
            strided_lowered(jobs, alloc(4 * x.shape.len().max(1))?).map_err(layout_err)?
        }
        Op::Gather { table } => {
            use gather_args::*;
            let t = wspec(*table);
            let (v, d) = gather_dims(&t.shape).map_err(dims_err)?;
            let mut a = Args::new(ROW_BYTES + 1);
            a.set(IDX, input_addr(0)).map_err(layout_err)?;
            a.set(TABLE, weight_addr(0)).map_err(layout_err)?;
            a.set(OUT, OUTPUT_BASE).map_err(layout_err)?;
            a.set(COUNT, x.numel()).map_err(layout_err)?;
            a.set(V, v).map_err(layout_err)?;
            a.set(ROW_BYTES, d * t.dtype.size()).map_err(layout_err)?;
            (KernelId::Gather, a.0)
        }
        Op::Softmax { exp_table } => {
            use softmax_args::*;
            let RowDims { rows, len } = last_axis_rows(x)?;
            let mut a = Args::new(TABLE);
            a.set(X, input_addr(0)).map_err(layout_err)?;
            a.set(OUT, OUTPUT_BASE).map_err(layout_err)?;
            a.set(ROWS, rows).map_err(layout_err)?;
            a.set(LEN, len).map_err(layout_err)?;
            a.0.extend(exp_table.iter().map(|&e| e as u32));
            (KernelId::Softmax, a.0)
        }
        Op::LayerNorm { gamma, beta, eps, shift, out_zp } | Op::RmsNorm { gamma, beta, eps, shift, out_zp } => {
            use norm_args::*;
            let RowDims { rows, len: n } = last_axis_rows(x)?;
            let mut a = Args::new(COUNT);
            let e = layout_err;
            a.set(X, input_addr(0)).map_err(e)?;
            a.set(OUT, OUTPUT_BASE).map_err(e)?;
            a.set(ROWS, rows).map_err(e)?;
            a.set(N, n).map_err(e)?;
            a.set(WIDE, u32::from(x.dtype == DType::I32)).map_err(e)?;
            a.set(GAMMA, weight_addr(0)).map_err(e)?;
            a.set(BETA, if beta.is_some() { weight_addr(1) } else { 0 }).map_err(e)?;
            a.set(EPS_LO, *eps as u64 as u32).map_err(e)?;
            a.set(EPS_HI, (*eps as u64 >> 32) as u32).map_err(e)?;
            a.set(SHIFT, *shift).map_err(e)?;
            a.set_i(OUT_ZP, *out_zp);
            a.set_i(LO, -128 - out_zp);
            a.set_i(HI, 127 - out_zp);
            a.set(SLOTS, alloc(SLOT_BYTES)?).map_err(e)?;
            a.set(CENTER, u32::from(matches!(node.op, Op::LayerNorm { .. }))).map_err(e)?;
            let _ = gamma;
            (KernelId::Norm, a.0)
        }
        Op::LinearQ4_1 { qs, exp, act, .. } => {
            let dims = q4_1_dims(&x.shape, &wspec(*qs).shape).map_err(dims_err)?;
            block_linear_lowered(KernelId::LinearQ4_1, dims, *exp, *act, true, &mut alloc, &layout_err)?
        }
        Op::LinearQ8_0 { qs, exp, act, .. } => {
            let dims = q8_0_dims(&x.shape, &wspec(*qs).shape).map_err(dims_err)?;
            block_linear_lowered(KernelId::LinearQ8_0, dims, *exp, *act, false, &mut alloc, &layout_err)?
        }
        Op::EmbedQ8_0 { qs, exp, frac, .. } => {
            use embed_q_args::*;
            let BlockDims { rows, k, n } = embed_q8_0_dims(&x.shape, &wspec(*qs).shape).map_err(dims_err)?;
            let mut a = Args::new(COUNT);
            let e = layout_err;
            a.set(IDS, input_addr(0)).map_err(e)?;
            a.set(QS, weight_addr(0)).map_err(e)?;
            a.set(D, weight_addr(1)).map_err(e)?;
            a.set(OUT, OUTPUT_BASE).map_err(e)?;
            a.set(COUNT_IDS, rows).map_err(e)?;
            a.set(V, n).map_err(e)?;
            a.set(K, k).map_err(e)?;
            a.set(NB, k / QK).map_err(e)?;
            a.set(LEFT, frac.saturating_sub(*exp)).map_err(e)?;
            a.set(RIGHT, exp.saturating_sub(*frac)).map_err(e)?;
            (KernelId::EmbedQ8_0, a.0)
        }
        Op::RmsNormWide { gamma: _, gamma_exp, eps, frac, out_frac } => {
            use rmsnorm_wide_args::*;
            let RowDims { rows, len: n } = last_axis_rows(x)?;
            // The rule bounds out_frac by frac + 30 + gamma_exp.
            let shift = (frac + INV_FRAC + gamma_exp)
                .checked_sub(*out_frac)
                .ok_or_else(|| layout_err(format!("out_frac {out_frac} above frac + 30 + gamma_exp")))?;
            let mut a = Args::new(COUNT);
            let e = layout_err;
            a.set(X, input_addr(0)).map_err(e)?;
            a.set(GAMMA, weight_addr(0)).map_err(e)?;
            a.set(OUT, OUTPUT_BASE).map_err(e)?;
            a.set(ROWS, rows).map_err(e)?;
            a.set(N, n).map_err(e)?;
            a.set(EPS_LO, *eps as u64 as u32).map_err(e)?;
            a.set(EPS_HI, (*eps as u64 >> 32) as u32).map_err(e)?;
            a.set(FRAC, *frac).map_err(e)?;
            a.set(SHIFT, shift).map_err(e)?;
            a.set(SLOTS, alloc(SLOT_BYTES)?).map_err(e)?;
            (KernelId::RmsNormWide, a.0)
        }
        Op::Rope { cos, sin: _, pos0 } => {
            use rope_args::*;
            let RopeDims { seq, heads, head_dim, pos0 } =
                rope_dims(&x.shape, &wspec(*cos).shape, *pos0).map_err(dims_err)?;
            let half = head_dim / 2;
            let row0 = pos0
                .checked_mul(4 * half)
                .ok_or_else(|| layout_err(format!("position {pos0} of {half} pairs overflows")))?;
            let mut a = Args::new(ROW0 + 1);
            let e = layout_err;
            a.set(X, input_addr(0)).map_err(e)?;
            a.set(COS, weight_addr(0)).map_err(e)?;
            a.set(SIN, weight_addr(1)).map_err(e)?;
            a.set(OUT, OUTPUT_BASE).map_err(e)?;
            a.set(SEQ, seq).map_err(e)?;
            a.set(HEADS, heads).map_err(e)?;
            a.set(HALF, half).map_err(e)?;
            a.set(ROW0, row0).map_err(e)?;
            (KernelId::Rope, a.0)
        }
        Op::SwiGlu { frac } => {
            use swiglu_args::*;
            let mut a = Args::new(FRAC + 1);
            let e = layout_err;
            a.set(GATE, input_addr(0)).map_err(e)?;
            a.set(UP, input_addr(1)).map_err(e)?;
            a.set(OUT, OUTPUT_BASE).map_err(e)?;
            a.set(COUNT, x.numel()).map_err(e)?;
            a.set(FRAC, *frac).map_err(e)?;
            (KernelId::SwiGlu, a.0)
        }
        Op::Attention { pos0, frac } => {
            use attention_args::*;
            let d = attention_dims(&x.shape, &ins[1].shape, &ins[2].shape, *pos0).map_err(dims_err)?;
            let AttnDims { seq, heads, kv_heads, head_dim, .. } = d;
            let e = layout_err;
            let too_big = || e(format!("attention sizes {d:?} overflow"));
            let row_bytes = kv_heads.checked_mul(head_dim).and_then(|n| n.checked_mul(4)).ok_or_else(too_big)?;
            let buffer_bytes = (pos0 + seq).checked_mul(4).ok_or_else(too_big)?;
            let mut a = Args::new(COUNT);
            a.set(Q, input_addr(0)).map_err(e)?;
            a.set(K, input_addr(1)).map_err(e)?;
            a.set(V, input_addr(2)).map_err(e)?;
            a.set(OUT, OUTPUT_BASE).map_err(e)?;
            for (i, v) in [
                (SEQ, seq),
                (HEADS, heads),
                (GROUP, heads / kv_heads),
                (HEAD_DIM, head_dim),
                (POS0, *pos0),
                (FRAC, *frac as usize),
                (SCALE, score_scale_q30(head_dim) as usize),
                (ROW_BYTES, row_bytes),
            ] {
                a.set(i, v).map_err(e)?;
            }
            a.set(CONSTS, alloc(CONST_BYTES)?).map_err(e)?;
            a.set(ROW, alloc(buffer_bytes)?).map_err(e)?;
            (KernelId::Attention, a.0)
        }
        Op::TokenSelect { pos, vocab } => {
            use token_select_args::*;
            let mut a = Args::new(VOCAB + 1);
            let e = layout_err;
            a.set(PROMPT, input_addr(0)).map_err(e)?;
            a.set(LENGTHS, input_addr(1)).map_err(e)?;
            a.set(PREV, if *pos > 0 { input_addr(2) } else { 0 }).map_err(e)?;
            a.set(OUT, OUTPUT_BASE).map_err(e)?;
            a.set(P, x.numel()).map_err(e)?;
            a.set(POS, saturated_pos(*pos)).map_err(e)?;
            a.set(VOCAB, *vocab).map_err(e)?;
            (KernelId::TokenSelect, a.0)
        }
        Op::TokenEmit { pos, max_prompt, max_new } => {
            use token_emit_args::*;
            // Operands: `gen` first when `pos > 0`, then `lengths` and `next`.
            let first = usize::from(*pos > 0);
            let mut a = Args::new(POS + 1);
            let e = layout_err;
            a.set(GEN, if *pos > 0 { input_addr(0) } else { 0 }).map_err(e)?;
            a.set(COPY, if *pos > 0 { *max_new } else { 0 }).map_err(e)?;
            a.set(LENGTHS, input_addr(first)).map_err(e)?;
            a.set(NEXT, input_addr(first + 1)).map_err(e)?;
            a.set(OUT, OUTPUT_BASE).map_err(e)?;
            a.set(MAX_PROMPT, *max_prompt).map_err(e)?;
            a.set(MAX_NEW, *max_new).map_err(e)?;
            a.set(POS, saturated_pos(*pos)).map_err(e)?;
            (KernelId::TokenEmit, a.0)
        }
    };
    Ok(Lowered { kernel, args })
}

/// A generation step's position as an argument word: saturated at `u32::MAX`, which the
/// token kernels treat as every larger position (past the prompt, whose length fits its
/// window, and past every emit window, as `max_prompt, max_new <= 2^31 - 1` give
/// `pos + 1 - n >= 2^31 + 1 > g`).
fn saturated_pos(pos: usize) -> u32 {
    u32::try_from(pos).unwrap_or(u32::MAX)
}

/// The argument blob of a block linear (`linear_q4_1`, `linear_q8_0`; `mins` when the
/// format has them): weights in descriptor order `qs, D (, M)`.
fn block_linear_lowered(
    kernel: KernelId,
    dims: BlockDims,
    exp: u32,
    act: ActBits,
    mins: bool,
    alloc: &mut impl FnMut(usize) -> Result<u32, CompileError>,
    layout_err: &dyn Fn(String) -> CompileError,
) -> Result<(KernelId, Vec<u32>), CompileError> {
    use linear_q_args::*;
    let BlockDims { rows, k, n } = dims;
    let nb = k / QK;
    let rec = match act {
        ActBits::I8 => REC_I8,
        ActBits::I16 => REC_I16,
    };
    let too_big = || layout_err(format!("activation records of {rows} rows x {k} overflow"));
    let row_rec = nb.checked_mul(rec).ok_or_else(too_big)?;
    let act_bytes = rows.checked_mul(row_rec).ok_or_else(too_big)?;
    let records = alloc(act_bytes)?;
    let total = alloc(TOTAL_BYTES)?;
    let dots = alloc(nb * 4 * GROUP)?;
    let words: [(usize, usize); 15] = [
        (X, input_addr(0) as usize),
        (QS, weight_addr(0) as usize),
        (D, weight_addr(1) as usize),
        (M, if mins { weight_addr(2) as usize } else { 0 }),
        (OUT, OUTPUT_BASE as usize),
        (ROWS, rows),
        (N, n),
        (NB, nb),
        (EXP, exp as usize),
        (WIDE, usize::from(act == ActBits::I16)),
        (ACT, records as usize),
        (ROW_REC, row_rec),
        (QBLOCKS, rows.checked_mul(nb).ok_or_else(too_big)?),
        (TOTAL, total as usize),
        (DOTS, dots as usize),
    ];
    let mut a = Args::new(COUNT);
    for (i, v) in words {
        a.set(i, v).map_err(layout_err)?;
    }
    Ok((kernel, a.0))
}

fn pool_lowered(kernel: KernelId, d: &PlaneDims) -> Result<(KernelId, Vec<u32>), String> {
    use pool_args::*;
    let PlaneDims { n, c, h, w, win, oh, ow } = *d;
    let mut a = Args::new(COUNT);
    a.set(X, input_addr(0))?;
    a.set(OUT, OUTPUT_BASE)?;
    for (i, v) in [
        (PLANES, n * c),
        (H, h),
        (W, w),
        (KH, win.kernel[0]),
        (KW, win.kernel[1]),
        (SH, win.stride[0]),
        (SW, win.stride[1]),
        (PT, win.padding[0]),
        (PL, win.padding[1]),
        (OH, oh),
        (OW, ow),
        (PLANE_BYTES, h * w),
    ] {
        a.set(i, v)?;
    }
    Ok((kernel, a.0))
}
