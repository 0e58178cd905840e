//! Linear layers over block-quantized weights (`docs/spec/ops.md` §5.2): wide i32
//! activations in, quantized per block of 32 to i8 or i16 ([`ActBits`]), and i32 out in
//! the input's fixed-point format. Per block the integer dot is exact in i32, the block's
//! value `D * dot + M * sum(a)` is exact in i64, its product with the activation scale is
//! exact in i128, and the row sums it exactly (`blockdot.rs`): the only rounding is the
//! final shift by the weights' exponent. Every output is computed independently, so any
//! thread count and any instruction set give the same bits.

use rayon::prelude::*;

use super::super::check::{bad, want, OpResult};
use super::blockdot::{BlockDot, Isa, RowScales, TILE_COLS, TILE_ROWS};
use super::blockq::{quantize_act_on, ActBlocks, Q4_1, Q8_0, QK};
use super::qgemm::{PackedQ4_1, GROUP, ROWS};
use super::{prod, want_frac, want_len};
use crate::fixed::{round_shift_i128, sat_i32};
use crate::tensor::{DType, TensorSpec};

/// Sizes of a block-quantized linear: `out[r][c] = sum_k x[r][k] * w[c][k]` with
/// `blocks = k / 32` blocks per row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockDims {
    /// Activation rows (every leading axis of the input folded).
    pub rows: usize,
    /// Reduced length, a multiple of 32.
    pub k: usize,
    /// Output features (weight rows).
    pub n: usize,
}

impl BlockDims {
    /// Blocks per weight row.
    pub fn blocks(&self) -> usize {
        self.k / QK
    }

    /// Check the sizes themselves and an input of `x_len` elements against them.
    pub(super) fn check(&self, x_len: usize, exp: u32) -> OpResult<()> {
        if !self.k.is_multiple_of(QK) || self.k == 0 || self.k > BLOCK_MAX_K || exp > MAX_EXP {
            return Err(bad(format!("k {} must be a multiple of 32 in 32..=2^20, exponent {exp} <= 62", self.k)));
        }
        want_len("input", x_len, prod(&[self.rows, self.k])?)
    }
}

impl Q4_1<'_> {
    /// Check the arrays against `[n, k]` weights.
    pub(super) fn check(&self, d: BlockDims) -> OpResult<()> {
        want_len("nibbles", self.qs.len(), prod(&[d.n, d.k / 2])?)?;
        want_len("scales", self.d.len(), prod(&[d.n, d.blocks()])?)?;
        want_len("mins", self.m.len(), prod(&[d.n, d.blocks()])?)
    }
}

impl Q8_0<'_> {
    /// Check the arrays against `[n, k]` weights.
    fn check(&self, d: BlockDims) -> OpResult<()> {
        want_len("values", self.qs.len(), prod(&[d.n, d.k])?)?;
        want_len("scales", self.d.len(), prod(&[d.n, d.blocks()])?)
    }
}

/// Longest reduced axis (keeps the i128 row sums far from overflow: 2^15 blocks of
/// at most 2^71 each).
pub const BLOCK_MAX_K: usize = 1 << 20;

/// The dims of a block linear from the input shape `[.., k]` and the weight shape `[n, k]`.
pub fn block_linear_dims(x: &[usize], n: usize, k: usize) -> OpResult<BlockDims> {
    let Some(&xk) = x.last() else { return Err(bad("input must have rank >= 1")) };
    if xk != k || !k.is_multiple_of(QK) || k == 0 || k > BLOCK_MAX_K {
        return Err(bad(format!("input last dim {xk} and weight k {k} must agree, be a multiple of 32 and <= 2^20")));
    }
    Ok(BlockDims { rows: x.iter().product::<usize>() / k, k, n })
}

/// The dims of a Q4_1 linear from the input shape `[.., k]` and the nibbles' shape
/// `[n, k / 2]` (the `linear_q4_1` op's executors call this).
pub fn q4_1_dims(x: &[usize], qs: &[usize]) -> OpResult<BlockDims> {
    let [n, half] = *qs else { return Err(bad(format!("nibbles {qs:?} must be [n, k/2]"))) };
    let k = half.checked_mul(2).ok_or_else(|| bad(format!("nibbles {qs:?} overflow")))?;
    block_linear_dims(x, n, k)
}

/// The dims of a Q8_0 linear from the input shape `[.., k]` and the values' shape `[n, k]`
/// (the `linear_q8_0` op's executors call this).
pub fn q8_0_dims(x: &[usize], qs: &[usize]) -> OpResult<BlockDims> {
    let [n, k] = *qs else { return Err(bad(format!("values {qs:?} must be [n, k]"))) };
    block_linear_dims(x, n, k)
}

/// The dims of a Q8_0 embedding from the ids' shape and the table's shape `[vocab, k]`:
/// one output row of `k` per id (`rows` ids, `n = vocab` table rows).
pub fn embed_q8_0_dims(ids: &[usize], qs: &[usize]) -> OpResult<BlockDims> {
    let [vocab, k] = *qs else { return Err(bad(format!("table {qs:?} must be [vocab, k]"))) };
    block_linear_dims(&[k], vocab, k)?;
    Ok(BlockDims { rows: prod(ids)?, k, n: vocab })
}

/// Require `s` to be `[n, per_row]` of dtype `d` (one of the weight arrays).
fn want_rows(s: &TensorSpec, d: DType, n: usize, per_row: usize, what: &str) -> OpResult<()> {
    want(s, d, what)?;
    if s.shape != [n, per_row] {
        return Err(bad(format!("{what} shape {:?}, want [{n}, {per_row}]", s.shape)));
    }
    Ok(())
}

/// The rule of the Q4_1 linear: i32 `[.., k]` with nibbles i8 `[n, k/2]` (bytes), scales
/// and mins i32 `[n, k/32]`, exponent at most 62 -> i32 `[.., n]`.
pub fn q4_1_linear_rule(
    x: &TensorSpec,
    qs: &TensorSpec,
    d: &TensorSpec,
    m: &TensorSpec,
    exp: u32,
) -> OpResult<TensorSpec> {
    want(x, DType::I32, "input")?;
    let [n, half] = qs.shape[..] else { return Err(bad("nibbles must be [n, k/2]")) };
    let dims = block_linear_dims(&x.shape, n, 2 * half)?;
    want_rows(qs, DType::I8, n, half, "nibbles")?;
    want_rows(d, DType::I32, n, dims.blocks(), "scales")?;
    want_rows(m, DType::I32, n, dims.blocks(), "mins")?;
    out_spec(x, n, exp)
}

/// The rule of the Q8_0 linear: i32 `[.., k]` with values i8 `[n, k]` and scales
/// i32 `[n, k/32]` -> i32 `[.., n]`.
pub fn q8_0_linear_rule(x: &TensorSpec, qs: &TensorSpec, d: &TensorSpec, exp: u32) -> OpResult<TensorSpec> {
    want(x, DType::I32, "input")?;
    let [n, k] = qs.shape[..] else { return Err(bad("values must be [n, k]")) };
    let dims = block_linear_dims(&x.shape, n, k)?;
    want_rows(qs, DType::I8, n, k, "values")?;
    want_rows(d, DType::I32, n, dims.blocks(), "scales")?;
    out_spec(x, n, exp)
}

/// The rule of the Q8_0 embedding: i32 token ids of any shape with a table of values
/// i8 `[vocab, k]` and scales i32 `[vocab, k/32]`, exponent <= 62, `frac <= 31` ->
/// i32 `[ids.shape..., k]`.
pub fn embed_q8_0_rule(ids: &TensorSpec, qs: &TensorSpec, d: &TensorSpec, exp: u32, frac: u32) -> OpResult<TensorSpec> {
    want(ids, DType::I32, "ids")?;
    let [vocab, k] = qs.shape[..] else { return Err(bad("values must be [vocab, k]")) };
    let dims = block_linear_dims(&[k], vocab, k)?;
    want_rows(qs, DType::I8, vocab, k, "values")?;
    want_rows(d, DType::I32, vocab, dims.blocks(), "scales")?;
    want_frac(frac)?;
    if exp > MAX_EXP {
        return Err(bad(format!("exponent {exp} above {MAX_EXP}")));
    }
    let mut shape = ids.shape.clone();
    shape.push(k);
    Ok(TensorSpec::new(DType::I32, shape))
}

fn out_spec(x: &TensorSpec, n: usize, exp: u32) -> OpResult<TensorSpec> {
    if exp > MAX_EXP {
        return Err(bad(format!("exponent {exp} above {MAX_EXP}")));
    }
    let mut shape = x.shape.clone();
    *shape.last_mut().expect("rank checked") = n;
    Ok(TensorSpec::new(DType::I32, shape))
}

/// Largest weight exponent.
pub const MAX_EXP: u32 = 62;

/// The width activations are quantized to, per block of 32 (an op parameter): 8 bits is
/// llama.cpp's own activation quantization and the fastest; 16 bits makes it 256 times
/// finer (per-element error `S / 2` with `S = max / 32767`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ActBits {
    /// `|a| <= 127`.
    I8,
    /// `|a| <= 32767`.
    I16,
}

/// The per-block integers of weight rows `c0..c0 + cols` (one after another) and
/// activation row `r`.
fn scales<'a, T>(
    d: &'a [i32],
    m: Option<&'a [i32]>,
    x: &'a ActBlocks<T>,
    (c0, cols): (usize, usize),
    r: usize,
    nb: usize,
) -> RowScales<'a> {
    let (wb, xb) = (c0 * nb..(c0 + cols) * nb, r * nb..(r + 1) * nb);
    RowScales { d: &d[wb.clone()], m: m.map(|m| &m[wb]), sum: &x.sum[xb.clone()], s: &x.s[xb] }
}

/// A block-quantized weight matrix as the linears' driver reads it: one output's exact
/// sum, and those of a tile of [`TILE_ROWS`] activation rows against one weight row.
trait BlockWeights: Sync {
    /// `sum_b P_b * S_b` of weight row `c` and activation row `r`, exact.
    fn out<T: BlockDot>(&self, isa: Isa, c: usize, x: &ActBlocks<T>, r: usize, nb: usize) -> i128;
    /// [`Self::out`] for rows `r0..r0 + TILE_ROWS`.
    fn tile<T: BlockDot>(&self, isa: Isa, c: usize, x: &ActBlocks<T>, r0: usize, nb: usize) -> [i128; TILE_ROWS] {
        std::array::from_fn(|i| self.out(isa, c, x, r0 + i, nb))
    }
    /// [`Self::out`] for columns `c0..c0 + TILE_COLS`.
    fn cols<T: BlockDot>(&self, isa: Isa, c0: usize, x: &ActBlocks<T>, r: usize, nb: usize) -> [i128; TILE_COLS];
}

impl BlockWeights for Q4_1<'_> {
    fn out<T: BlockDot>(&self, isa: Isa, c: usize, x: &ActBlocks<T>, r: usize, nb: usize) -> i128 {
        let sc = scales(self.d, Some(self.m), x, (c, 1), r, nb);
        T::q4_row(isa, &self.qs[c * nb * QK / 2..(c + 1) * nb * QK / 2], &x.a[r * nb * QK..(r + 1) * nb * QK], &sc)
    }

    fn tile<T: BlockDot>(&self, isa: Isa, c: usize, x: &ActBlocks<T>, r0: usize, nb: usize) -> [i128; TILE_ROWS] {
        let sc = std::array::from_fn(|i| scales(self.d, Some(self.m), x, (c, 1), r0 + i, nb));
        let a = std::array::from_fn(|i| &x.a[(r0 + i) * nb * QK..(r0 + i + 1) * nb * QK]);
        T::q4_tile(isa, &self.qs[c * nb * QK / 2..(c + 1) * nb * QK / 2], a, &sc)
    }

    fn cols<T: BlockDot>(&self, isa: Isa, c0: usize, x: &ActBlocks<T>, r: usize, nb: usize) -> [i128; TILE_COLS] {
        let sc = scales(self.d, Some(self.m), x, (c0, TILE_COLS), r, nb);
        let qs = &self.qs[c0 * nb * QK / 2..(c0 + TILE_COLS) * nb * QK / 2];
        T::q4_cols(isa, qs, &x.a[r * nb * QK..(r + 1) * nb * QK], &sc)
    }
}

impl BlockWeights for Q8_0<'_> {
    fn out<T: BlockDot>(&self, isa: Isa, c: usize, x: &ActBlocks<T>, r: usize, nb: usize) -> i128 {
        let sc = scales(self.d, None, x, (c, 1), r, nb);
        T::q8_row(isa, &self.qs[c * nb * QK..(c + 1) * nb * QK], &x.a[r * nb * QK..(r + 1) * nb * QK], &sc)
    }

    fn cols<T: BlockDot>(&self, isa: Isa, c0: usize, x: &ActBlocks<T>, r: usize, nb: usize) -> [i128; TILE_COLS] {
        let sc = scales(self.d, None, x, (c0, TILE_COLS), r, nb);
        let qs = &self.qs[c0 * nb * QK..(c0 + TILE_COLS) * nb * QK];
        T::q8_cols(isa, qs, &x.a[r * nb * QK..(r + 1) * nb * QK], &sc)
    }
}

/// Activation rows per parallel task (a multiple of [`TILE_ROWS`]): their quantized
/// values stay in L2 while the task's weight rows pass over them, tile by tile.
const ROWS_PER_TASK: usize = 8 * TILE_ROWS;

/// Weight rows (outputs) per parallel task: about four tasks per thread for one row
/// (a decode step), within 16..=256. The split only shares out work: every output is
/// computed the same way whatever it is, so the bits do not depend on it.
fn cols_per_task(n: usize, threads: usize) -> usize {
    (n / (4 * threads.max(1))).clamp(16, 256)
}

/// `out[r][c] = sat32(round(acc(r, c) / 2^exp))` for every row and column of one linear.
fn run<T: BlockDot, W: BlockWeights>(isa: Isa, x: &[i32], d: BlockDims, exp: u32, w: &W) -> Vec<i32> {
    let q = quantize_act_on::<T>(isa, x);
    run_many(isa, &q, d.rows, d.blocks(), &[(w, d.n, exp)]).pop().expect("one linear")
}

/// How a parallel region over several linears is split: each linear's outputs in tasks of
/// up to [`ROWS_PER_TASK`] rows by up to `per` of its units (columns, or column groups),
/// numbered linear by linear, row block by row block.
struct TaskPlan {
    rows: usize,
    /// Per linear: its units, units per task, unit tasks, and the index of its first task.
    linears: Vec<(usize, usize, usize, usize)>,
    tasks: usize,
}

/// One task of a [`TaskPlan`]: linear `linear`, rows `r0..r0 + rows`, units
/// `u0..u0 + units`.
struct Task {
    linear: usize,
    r0: usize,
    rows: usize,
    u0: usize,
    units: usize,
}

impl TaskPlan {
    /// `units`: per linear, its units and the units a task takes (at least 1).
    fn new(rows: usize, units: impl Iterator<Item = (usize, usize)>) -> Self {
        let row_tasks = rows.div_ceil(ROWS_PER_TASK);
        let (mut linears, mut tasks) = (Vec::new(), 0);
        for (total, per) in units {
            let unit_tasks = total.div_ceil(per);
            linears.push((total, per, unit_tasks, tasks));
            tasks += row_tasks * unit_tasks;
        }
        TaskPlan { rows, linears, tasks }
    }

    fn tasks(&self) -> usize {
        self.tasks
    }

    /// Task `t` (`t < self.tasks()`).
    fn locate(&self, t: usize) -> Task {
        let linear = self.linears.partition_point(|&(.., first)| first <= t) - 1;
        let (total, per, unit_tasks, first) = self.linears[linear];
        let u = t - first;
        let (r0, u0) = ((u / unit_tasks) * ROWS_PER_TASK, (u % unit_tasks) * per);
        Task { linear, r0, rows: ROWS_PER_TASK.min(self.rows - r0), u0, units: per.min(total - u0) }
    }
}

/// [`run`] for several linears of the same quantized input `q` (`rows` rows of `nb`
/// blocks), `ws` their weights, outputs and exponents: one parallel region over tasks of up
/// to [`ROWS_PER_TASK`] rows by [`cols_per_task`] columns of every linear; inside a task
/// each tile of [`TILE_ROWS`] rows runs over the task's weight rows (the tile's
/// activations stay in L1; in the other order, weight row outer, every weight row reloaded
/// all the task's activations from L2: 10-13% slower at K = 576). Each output is
/// computed exactly as by one linear alone, so the bits do not depend on the grouping.
fn run_many<T: BlockDot, W: BlockWeights>(
    isa: Isa,
    q: &ActBlocks<T>,
    rows: usize,
    nb: usize,
    ws: &[(&W, usize, u32)],
) -> Vec<Vec<i32>> {
    let mut outs: Vec<Vec<i32>> = ws.iter().map(|&(_, n, _)| vec![0i32; rows * n]).collect();
    if rows == 0 {
        return outs;
    }
    let threads = rayon::current_num_threads();
    let plan = TaskPlan::new(rows, ws.iter().map(|&(_, n, _)| (n, cols_per_task(n, threads))));
    let blocks: Vec<Vec<i32>> = (0..plan.tasks())
        .into_par_iter()
        .map(|t| {
            let Task { linear: li, r0, rows: n_rows, u0: c0, units: width } = plan.locate(t);
            let (w, _, exp) = ws[li];
            task(isa, w, q, nb, exp, r0, n_rows, c0, width)
        })
        .collect();
    for (t, o) in blocks.iter().enumerate() {
        let Task { linear: li, r0, u0: c0, units: width, .. } = plan.locate(t);
        let n = ws[li].1;
        for (i, row) in o.chunks_exact(width).enumerate() {
            outs[li][(r0 + i) * n + c0..][..width].copy_from_slice(row);
        }
    }
    outs
}

/// One task of [`run_many`]: rows `r0..r0 + rows` by columns `c0..c0 + width` of one
/// linear, row-major.
#[allow(clippy::too_many_arguments)]
fn task<T: BlockDot, W: BlockWeights>(
    isa: Isa,
    w: &W,
    q: &ActBlocks<T>,
    nb: usize,
    exp: u32,
    r0: usize,
    rows: usize,
    c0: usize,
    width: usize,
) -> Vec<i32> {
    let fin = |v: i128| sat_i32(round_shift_i128(v, exp));
    let mut o = vec![0i32; rows * width];
    let tiled = rows - rows % TILE_ROWS;
    for i in (0..tiled).step_by(TILE_ROWS) {
        for j in 0..width {
            let v = w.tile(isa, c0 + j, q, r0 + i, nb);
            for (k, &v) in v.iter().enumerate() {
                o[(i + k) * width + j] = fin(v);
            }
        }
    }
    // The rows left over from the tiles (all of a decode step's one row), in column
    // tiles and then one by one.
    for i in tiled..rows {
        let mut j = 0;
        while j + TILE_COLS <= width {
            let v = w.cols(isa, c0 + j, q, r0 + i, nb);
            for (k, &v) in v.iter().enumerate() {
                o[i * width + j + k] = fin(v);
            }
            j += TILE_COLS;
        }
        for j in j..width {
            o[i * width + j] = fin(w.out(isa, c0 + j, q, r0 + i, nb));
        }
    }
    o
}

/// A Q4_1 or Q8_0 weight matrix, for [`block_linears`] (which takes both in one call).
#[derive(Clone, Copy, Debug)]
pub enum BlockWeightsRef<'a> {
    /// Q4_1 blocks.
    Q4_1(Q4_1<'a>),
    /// Q8_0 blocks.
    Q8_0(Q8_0<'a>),
    /// Q4_1 blocks and the same weights repacked ([`PackedQ4_1::new`] of them): on AVX-512
    /// with 16-bit activations, the GEMM of `qgemm.rs` computes the same sums.
    Q4_1Packed(Q4_1<'a>, &'a PackedQ4_1),
}

impl BlockWeightsRef<'_> {
    fn exp(&self) -> u32 {
        match self {
            Self::Q4_1(w) | Self::Q4_1Packed(w, _) => w.exp,
            Self::Q8_0(w) => w.exp,
        }
    }

    fn check(&self, d: BlockDims) -> OpResult<()> {
        match self {
            Self::Q4_1(w) => w.check(d),
            Self::Q8_0(w) => w.check(d),
            Self::Q4_1Packed(w, p) => {
                w.check(d)?;
                if (p.n(), p.k(), p.exp()) != (d.n, d.k, w.exp) {
                    return Err(bad(format!(
                        "packed Q4_1 weights are [{}, {}] with exponent {}, want [{}, {}] with {}",
                        p.n(),
                        p.k(),
                        p.exp(),
                        d.n,
                        d.k,
                        w.exp
                    )));
                }
                Ok(())
            }
        }
    }

    /// The packed copy, if any.
    fn packed(&self) -> Option<&PackedQ4_1> {
        match self {
            Self::Q4_1Packed(_, p) => Some(p),
            _ => None,
        }
    }
}

impl BlockWeights for BlockWeightsRef<'_> {
    fn out<T: BlockDot>(&self, isa: Isa, c: usize, x: &ActBlocks<T>, r: usize, nb: usize) -> i128 {
        match self {
            Self::Q4_1(w) | Self::Q4_1Packed(w, _) => w.out(isa, c, x, r, nb),
            Self::Q8_0(w) => w.out(isa, c, x, r, nb),
        }
    }

    fn tile<T: BlockDot>(&self, isa: Isa, c: usize, x: &ActBlocks<T>, r0: usize, nb: usize) -> [i128; TILE_ROWS] {
        match self {
            Self::Q4_1(w) | Self::Q4_1Packed(w, _) => w.tile(isa, c, x, r0, nb),
            Self::Q8_0(w) => w.tile(isa, c, x, r0, nb),
        }
    }

    fn cols<T: BlockDot>(&self, isa: Isa, c0: usize, x: &ActBlocks<T>, r: usize, nb: usize) -> [i128; TILE_COLS] {
        match self {
            Self::Q4_1(w) | Self::Q4_1Packed(w, _) => w.cols(isa, c0, x, r, nb),
            Self::Q8_0(w) => w.cols(isa, c0, x, r, nb),
        }
    }
}

/// Several linears of one input `x` (`[rows, k]`): `ws` the weights and their output
/// counts `n`. The activations are quantized once and every linear runs in one parallel
/// region; output `i` is exactly [`linear_q4_1`] or [`linear_q8_0`] of `x` with `ws[i]`
/// (the attention's q, k and v, the FFN's gate and up).
pub fn block_linears(
    x: &[i32],
    k: usize,
    ws: &[(BlockWeightsRef<'_>, usize)],
    bits: ActBits,
) -> OpResult<Vec<Vec<i32>>> {
    block_linears_on(Isa::detect(), x, k, ws, bits)
}

/// [`block_linears`] on a given instruction set.
pub fn block_linears_on(
    isa: Isa,
    x: &[i32],
    k: usize,
    ws: &[(BlockWeightsRef<'_>, usize)],
    bits: ActBits,
) -> OpResult<Vec<Vec<i32>>> {
    let rows = x.len().checked_div(k).unwrap_or(0);
    for &(w, n) in ws {
        let d = BlockDims { rows, k, n };
        d.check(x.len(), w.exp())?;
        w.check(d)?;
    }
    let list: Vec<(&BlockWeightsRef<'_>, usize, u32)> = ws.iter().map(|(w, n)| (w, *n, w.exp())).collect();
    let nb = k / QK;
    Ok(match bits {
        ActBits::I8 => run_many(isa, &quantize_act_on::<i8>(isa, x), rows, nb, &list),
        ActBits::I16 => {
            let q = quantize_act_on::<i16>(isa, x);
            let packed: Option<Vec<&PackedQ4_1>> = ws.iter().map(|(w, _)| w.packed()).collect();
            match packed {
                #[cfg(target_arch = "x86_64")]
                Some(p) if isa == Isa::Avx512 => {
                    // SAFETY: `Isa::Avx512` is only produced on a CPU with its features.
                    unsafe { run_packed(&q, rows, &p) }
                }
                _ => run_many(isa, &q, rows, nb, &list),
            }
        }
    })
}

/// The outputs of [`run_packed`], written in place by its tasks: each (row, column) cell
/// of each output belongs to exactly one task (its rows and groups), so no two tasks
/// write the same cell and nothing reads them before the parallel region ends.
struct OutPtrs(Vec<*mut i32>);

// SAFETY: see the type's comment: the tasks write disjoint cells, and the vectors the
// pointers come from outlive the parallel region and are not touched during it.
unsafe impl Sync for OutPtrs {}

impl OutPtrs {
    /// Output `li`'s first cell.
    fn output(&self, li: usize) -> *mut i32 {
        self.0[li]
    }
}

/// Column groups per task of [`run_packed`]: about four tasks per thread for one row,
/// within 1..=16 groups (16..=256 columns).
fn groups_per_task(groups: usize, threads: usize) -> usize {
    (groups / (4 * threads.max(1))).clamp(1, 16)
}

/// [`run_many`] on packed Q4_1 weights (`qgemm.rs`): tasks of up to [`ROWS_PER_TASK`] rows
/// by [`groups_per_task`] column groups of one linear; inside a task each group's weights
/// pass over the task's rows [`ROWS`] at a time. Every output is the same exact sum as in
/// [`run_many`], so the bits are the same.
///
/// # Safety
/// The CPU has `Isa::Avx512`'s features; `q` holds `rows` rows of each linear's `k`.
#[cfg(target_arch = "x86_64")]
unsafe fn run_packed(q: &ActBlocks<i16>, rows: usize, ws: &[&PackedQ4_1]) -> Vec<Vec<i32>> {
    let mut outs: Vec<Vec<i32>> = ws.iter().map(|w| vec![0i32; rows * w.n()]).collect();
    if rows == 0 {
        return outs;
    }
    let threads = rayon::current_num_threads();
    let plan = TaskPlan::new(rows, ws.iter().map(|w| (w.groups(), groups_per_task(w.groups(), threads))));
    let ptrs = OutPtrs(outs.iter_mut().map(|o| o.as_mut_ptr()).collect());
    (0..plan.tasks()).into_par_iter().for_each(|t| {
        let Task { linear: li, r0, rows: n_rows, u0: g0, units: n_groups } = plan.locate(t);
        let (w, n) = (ws[li], ws[li].n());
        for g in g0..g0 + n_groups {
            // The group's columns that exist (the last group's padding is dropped).
            let keep = GROUP.min(n - g * GROUP);
            for r in (0..n_rows).step_by(ROWS) {
                let take = ROWS.min(n_rows - r);
                // SAFETY: the CPU's features are the caller's; `g` is a group of `w` and
                // rows `r0 + r..r0 + r + take` lie in `q`.
                let v = unsafe { w.outputs(g, q, r0 + r, take) };
                for (i, v) in v[..take].iter().enumerate() {
                    let at = (r0 + r + i) * n + g * GROUP;
                    // SAFETY: cells `at..at + keep` of output `li` (a row's columns of group
                    // `g`) lie inside it, and no other task writes them (see `OutPtrs`).
                    unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), ptrs.output(li).add(at), keep) };
                }
            }
        }
    });
    outs
}

/// Q4_1 linear of `x` (`[rows, k]`, i32 fixed point): output in the same format, on the
/// best instruction set of this CPU.
pub fn linear_q4_1(x: &[i32], w: Q4_1<'_>, d: BlockDims, bits: ActBits) -> OpResult<Vec<i32>> {
    linear_q4_1_on(Isa::detect(), x, w, d, bits)
}

/// [`linear_q4_1`] on a given instruction set (one the CPU has: see [`Isa::available`]).
pub fn linear_q4_1_on(isa: Isa, x: &[i32], w: Q4_1<'_>, d: BlockDims, bits: ActBits) -> OpResult<Vec<i32>> {
    d.check(x.len(), w.exp)?;
    w.check(d)?;
    Ok(match bits {
        ActBits::I8 => run::<i8, _>(isa, x, d, w.exp, &w),
        ActBits::I16 => run::<i16, _>(isa, x, d, w.exp, &w),
    })
}

/// Q8_0 linear of `x` (`[rows, k]`, i32 fixed point): output in the same format (the tied
/// output layer: logits).
pub fn linear_q8_0(x: &[i32], w: Q8_0<'_>, d: BlockDims, bits: ActBits) -> OpResult<Vec<i32>> {
    linear_q8_0_on(Isa::detect(), x, w, d, bits)
}

/// [`linear_q8_0`] on a given instruction set.
pub fn linear_q8_0_on(isa: Isa, x: &[i32], w: Q8_0<'_>, d: BlockDims, bits: ActBits) -> OpResult<Vec<i32>> {
    d.check(x.len(), w.exp)?;
    w.check(d)?;
    Ok(match bits {
        ActBits::I8 => run::<i8, _>(isa, x, d, w.exp, &w),
        ActBits::I16 => run::<i16, _>(isa, x, d, w.exp, &w),
    })
}

/// Embedding lookup from a Q8_0 table `[vocab, k]`: row `t` of the output is
/// `sat32(round(D_b * q * 2^frac / 2^exp))` for token `ids[t]`, i.e. the weight in the
/// stream's fixed-point format with `frac` fraction bits. An id outside the table is an
/// error (the value the shapes cannot rule out, as for `gather`).
pub fn embed_q8_0(ids: &[i32], w: Q8_0<'_>, k: usize, frac: u32) -> OpResult<Vec<i32>> {
    want_frac(frac)?;
    let vocab = w.qs.len().checked_div(k).unwrap_or(0);
    BlockDims { rows: 0, k, n: vocab }.check(0, w.exp)?;
    w.check(BlockDims { rows: 0, k, n: vocab })?;
    if let Some(bad_id) = ids.iter().find(|&&i| i < 0 || i as usize >= vocab) {
        return Err(bad(format!("token {bad_id} outside 0..{vocab}")));
    }
    let mut out = vec![0i32; ids.len() * k];
    out.par_chunks_mut(k.max(1)).zip(ids).for_each(|(o, &id)| {
        let base = id as usize * k;
        for (j, v) in o.iter_mut().enumerate() {
            let e = w.d[(base + j) / QK] as i128 * w.qs[base + j] as i128;
            *v = sat_i32(shift_by(e, frac as i64 - w.exp as i64));
        }
    });
    Ok(out)
}

/// `v * 2^by`: a left shift, or a right shift rounded as in [`round_shift_i128`].
fn shift_by(v: i128, by: i64) -> i128 {
    if by >= 0 {
        v << by.min(64)
    } else {
        round_shift_i128(v, (-by).min(126) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::llm::blockq::{quantize_act, ActInt, Q4_1Owned, Q8_0Owned};
    use crate::ops::llm::testutil::{cpu_seconds_per_call, pool, rel_err};
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Random Q4_1 weights with scales and mins of realistic magnitude (GGUF: `d` about
    /// `(max - min) / 15` of weights around 0.02..0.2, `m` their minimum).
    fn rand_q4_1(rng: &mut ChaCha8Rng, n: usize, k: usize) -> Q4_1Owned {
        let blocks = n * k / QK;
        let d: Vec<i32> = (0..blocks).map(|_| rng.gen_range(1 << 14..1 << 19)).collect();
        let m: Vec<i32> = d.iter().map(|&d| -(d * rng.gen_range(0..16)) / 2).collect();
        let qs = (0..n * k / 2).map(|_| rng.gen()).collect();
        Q4_1Owned { qs, d, m, exp: 24 }
    }

    fn q4_weight(w: &Q4_1Owned, c: usize, k: usize, j: usize) -> f64 {
        let (blk, jj) = ((c * k + j) / QK, j % QK);
        let byte = w.qs[blk * 16 + jj % 16];
        let q = if jj < 16 { byte & 15 } else { byte >> 4 };
        (w.d[blk] as f64 * q as f64 + w.m[blk] as f64) / 2f64.powi(w.exp as i32)
    }

    /// The f64 product of the real weights and the real activations: the value the
    /// integer op approximates (its error is the activation quantization's and the
    /// final rounding's).
    fn f64_linear(x: &[i32], d: BlockDims, w: impl Fn(usize, usize) -> f64) -> Vec<f64> {
        let mut out = vec![0.0; d.rows * d.n];
        for r in 0..d.rows {
            for c in 0..d.n {
                out[r * d.n + c] = (0..d.k).map(|j| x[r * d.k + j] as f64 * w(c, j)).sum();
            }
        }
        out
    }

    /// The exact integer reference of the spec, as a plain loop over dequantized blocks.
    fn spec_q4_1<T: ActInt>(x: &[i32], w: &Q4_1Owned, d: BlockDims) -> Vec<i32> {
        let q = quantize_act_on::<T>(Isa::Scalar, x);
        let mut out = vec![0; d.rows * d.n];
        for r in 0..d.rows {
            for c in 0..d.n {
                let mut acc = 0i128;
                for j in 0..d.k {
                    let (wb, xb) = ((c * d.k + j) / QK, (r * d.k + j) / QK);
                    let byte = w.qs[wb * 16 + (j % QK) % 16];
                    let qv = if j % QK < 16 { byte & 15 } else { byte >> 4 } as i128;
                    let wv = w.d[wb] as i128 * qv + w.m[wb] as i128;
                    acc += wv * q.a[r * d.k + j].widen() as i128 * q.s[xb] as i128;
                }
                out[r * d.n + c] = sat_i32(round_shift_i128(acc, w.exp));
            }
        }
        out
    }

    #[test]
    fn a_hand_derived_q4_1_block() {
        // One block, d = 1, m = -8 (exp 0): w_j = q_j - 8 with q_j = j % 16.
        let qs: Vec<u8> = (0..16u8).map(|j| j | j << 4).collect();
        let w = Q4_1Owned { qs, d: vec![1], m: vec![-8], exp: 0 };
        // x = 1 everywhere: S = 1, a = 1; sum (q - 8) = 2 * (120 - 128) = -16.
        let d = BlockDims { rows: 1, k: 32, n: 1 };
        assert_eq!(linear_q4_1(&[1; 32], w.view(), d, ActBits::I8).unwrap(), vec![-16]);
        // x = 254 at j = 15 only: S = 2, a = 127; w_15 = 7 -> 127 * 2 * 7 = 1778.
        let mut x = [0; 32];
        x[15] = 254;
        assert_eq!(linear_q4_1(&x, w.view(), d, ActBits::I8).unwrap(), vec![1778]);
        // 16 bits: 254 <= 32767, so S = 1 and the block is exact: 254 * 7.
        assert_eq!(linear_q4_1(&x, w.view(), d, ActBits::I16).unwrap(), vec![1778]);
        // x = 32767 * 3 + 1 at j = 15: i8 gives S = 775, a = 127 (126.8) -> 127 * 775 * 7 = 688975;
        // i16 gives S = 4, a = 24576 (98302 / 4 = 24575.5 rounds away) -> 24576 * 4 * 7 = 688128.
        x[15] = 98_302;
        assert_eq!(linear_q4_1(&x, w.view(), d, ActBits::I8).unwrap(), vec![688_975]);
        assert_eq!(linear_q4_1(&x, w.view(), d, ActBits::I16).unwrap(), vec![688_128]);
        x[15] = 254;
        // With exponent 2 (d = 1/4, m = -2) the same block gives 1778 / 4 = 444.5 -> 445.
        let w2 = Q4_1Owned { exp: 2, ..w };
        assert_eq!(linear_q4_1(&x, w2.view(), d, ActBits::I8).unwrap(), vec![445]);
    }

    #[test]
    fn a_hand_derived_q8_0_block_and_embedding() {
        let w = Q8_0Owned { qs: (0..64).map(|j| (j - 32) as i8).collect(), d: vec![4, 1], exp: 2 };
        // Row 0: weights (j - 32) * 4 / 4 = j - 32 for j < 32; x = 1: sum = -528.
        let d = BlockDims { rows: 1, k: 32, n: 2 };
        assert_eq!(linear_q8_0(&[1; 32], w.view(), d, ActBits::I8).unwrap(), vec![-528, (0..32).sum::<i32>() / 4]);
        assert_eq!(linear_q8_0(&[1; 32], w.view(), d, ActBits::I16).unwrap(), vec![-528, (0..32).sum::<i32>() / 4]);
        // Embedding row 1 with 3 fraction bits: q * 1 / 4 * 8 = 2q (q = j for row 1).
        let e = embed_q8_0(&[1], w.view(), 32, 3).unwrap();
        assert_eq!(e, (0..32).map(|j| 2 * j).collect::<Vec<_>>());
        // Row 0 with 1 fraction bit: (j - 32) * 4 / 4 * 2.
        assert_eq!(embed_q8_0(&[0], w.view(), 32, 1).unwrap()[0], -64);
        assert!(embed_q8_0(&[2], w.view(), 32, 1).is_err());
        assert!(embed_q8_0(&[-1], w.view(), 32, 1).is_err());
    }

    #[test]
    fn dims_and_rules_check_shapes() {
        assert_eq!(block_linear_dims(&[3, 2, 64], 5, 64).unwrap(), BlockDims { rows: 6, k: 64, n: 5 });
        assert!(block_linear_dims(&[3, 48], 5, 48).is_err());
        assert!(block_linear_dims(&[3, 64], 5, 32).is_err());
        assert!(block_linear_dims(&[], 5, 32).is_err());
        let s = |d, shape: &[usize]| TensorSpec::new(d, shape.to_vec());
        let (x, qs) = (s(DType::I32, &[2, 64]), s(DType::I8, &[5, 32]));
        let (sc, bad_sc) = (s(DType::I32, &[5, 2]), s(DType::I32, &[5, 3]));
        assert_eq!(q4_1_linear_rule(&x, &qs, &sc, &sc, 24).unwrap(), s(DType::I32, &[2, 5]));
        assert!(q4_1_linear_rule(&x, &qs, &sc, &bad_sc, 24).is_err());
        assert!(q4_1_linear_rule(&x, &qs, &sc, &sc, 63).is_err());
        assert!(q4_1_linear_rule(&s(DType::I8, &[2, 64]), &qs, &sc, &sc, 24).is_err());
        assert_eq!(q8_0_linear_rule(&x, &s(DType::I8, &[5, 64]), &sc, 24).unwrap(), s(DType::I32, &[2, 5]));
        assert!(q8_0_linear_rule(&x, &qs, &sc, 24).is_err());
        let ids = s(DType::I32, &[3]);
        assert_eq!(embed_q8_0_rule(&ids, &s(DType::I8, &[5, 64]), &sc, 24, 16).unwrap(), s(DType::I32, &[3, 64]));
        assert!(embed_q8_0_rule(&ids, &s(DType::I8, &[5, 64]), &sc, 24, 32).is_err());
        assert!(embed_q8_0_rule(&ids, &s(DType::I8, &[5, 64]), &bad_sc, 24, 16).is_err());
        assert!(embed_q8_0_rule(&s(DType::I8, &[3]), &s(DType::I8, &[5, 64]), &sc, 24, 16).is_err());
        // The kernels check their operands against the dims instead of panicking.
        let w = Q4_1Owned { qs: vec![0; 32], d: vec![1; 2], m: vec![0; 2], exp: 0 };
        let d = BlockDims { rows: 1, k: 64, n: 1 };
        assert!(linear_q4_1(&[0; 64], w.view(), d, ActBits::I8).is_ok());
        assert!(linear_q4_1(&[0; 63], w.view(), d, ActBits::I8).is_err());
        assert!(linear_q4_1(&[0; 64], w.view(), BlockDims { n: 2, ..d }, ActBits::I8).is_err());
        assert!(linear_q4_1(&[0; 64], Q4_1 { exp: 63, ..w.view() }, d, ActBits::I8).is_err());
        let w8 = Q8_0Owned { qs: vec![0; 64], d: vec![1; 1], exp: 0 };
        assert!(linear_q8_0(&[0; 64], w8.view(), d, ActBits::I16).is_err());
        assert!(embed_q8_0(&[0], w8.view(), 48, 16).is_err());
        assert!(embed_q8_0(&[0], w8.view(), 32, 32).is_err());
    }

    #[test]
    fn both_linears_are_bit_exact_for_any_isa_and_thread_count() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        // 37 rows: a full task of row tiles, then a task with one tile and single rows.
        let d = BlockDims { rows: 37, k: 576, n: 300 };
        let w = rand_q4_1(&mut rng, d.n, d.k);
        let x: Vec<i32> = (0..d.rows * d.k).map(|_| rng.gen_range(-(1 << 20)..1 << 20)).collect();
        let w8 = Q8_0Owned {
            qs: (0..d.n * d.k).map(|_| rng.gen()).collect(),
            d: (0..d.n * d.k / QK).map(|_| rng.gen_range(1 << 14..1 << 17)).collect(),
            exp: 24,
        };
        for bits in [ActBits::I8, ActBits::I16] {
            let spec = if bits == ActBits::I8 { spec_q4_1::<i8>(&x, &w, d) } else { spec_q4_1::<i16>(&x, &w, d) };
            let q8_ref = pool(1).install(|| linear_q8_0_on(Isa::Scalar, &x, w8.view(), d, bits).unwrap());
            for isa in Isa::available_noting_skips() {
                for threads in [1, 3] {
                    let got = pool(threads).install(|| linear_q4_1_on(isa, &x, w.view(), d, bits).unwrap());
                    assert_eq!(got, spec, "{isa:?}, {threads} threads, {bits:?}");
                    let got8 = pool(threads).install(|| linear_q8_0_on(isa, &x, w8.view(), d, bits).unwrap());
                    assert_eq!(got8, q8_ref, "{isa:?}, {threads} threads, {bits:?}");
                }
            }
        }
    }

    #[test]
    fn grouped_linears_equal_each_linear_alone() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let k = 192;
        let (w1, w2) = (rand_q4_1(&mut rng, 40, k), rand_q4_1(&mut rng, 13, k));
        let w8 = Q8_0Owned {
            qs: (0..21 * k).map(|_| rng.gen()).collect(),
            d: (0..21 * k / QK).map(|_| rng.gen_range(1 << 14..1 << 17)).collect(),
            exp: 22,
        };
        let empty = Q8_0Owned { qs: vec![], d: vec![], exp: 20 };
        for rows in [1, 5, 37] {
            let x: Vec<i32> = (0..rows * k).map(|_| rng.gen_range(-(1 << 20)..1 << 20)).collect();
            let ws = [
                (BlockWeightsRef::Q4_1(w1.view()), 40),
                (BlockWeightsRef::Q8_0(empty.view()), 0),
                (BlockWeightsRef::Q8_0(w8.view()), 21),
                (BlockWeightsRef::Q4_1(w2.view()), 13),
            ];
            for bits in [ActBits::I8, ActBits::I16] {
                let dims = |n| BlockDims { rows, k, n };
                let want = vec![
                    linear_q4_1_on(Isa::Scalar, &x, w1.view(), dims(40), bits).unwrap(),
                    vec![],
                    linear_q8_0_on(Isa::Scalar, &x, w8.view(), dims(21), bits).unwrap(),
                    linear_q4_1_on(Isa::Scalar, &x, w2.view(), dims(13), bits).unwrap(),
                ];
                for isa in Isa::available_noting_skips() {
                    for threads in [1, 3] {
                        let got = pool(threads).install(|| block_linears_on(isa, &x, k, &ws, bits).unwrap());
                        assert_eq!(got, want, "{rows} rows, {isa:?}, {threads} threads, {bits:?}");
                    }
                }
            }
        }
        assert!(block_linears(&[0; 64], 64, &[(BlockWeightsRef::Q4_1(w1.view()), 40)], ActBits::I16).is_err());
    }

    /// Relative error (norm of the error over the norm of the reference) of the Q4_1
    /// and Q8_0 linears against the f64 product, at SmolLM2 sizes with stream values of
    /// 16 fraction bits and magnitude about 1. The bound is the activation quantization
    /// (per element at most `S / 2 = max / (2 MAX)`): a few 1e-3 with 8 bits, 256 times
    /// less with 16.
    #[test]
    fn error_against_f64_at_model_sizes() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let d = BlockDims { rows: 2, k: 576, n: 256 };
        let w = rand_q4_1(&mut rng, d.n, d.k);
        let x: Vec<i32> = (0..d.rows * d.k).map(|_| rng.gen_range(-(1 << 16)..1 << 16)).collect();
        let w8 = Q8_0Owned {
            qs: (0..d.n * d.k).map(|_| rng.gen()).collect(),
            d: (0..d.n * d.k / QK).map(|_| rng.gen_range(1 << 14..1 << 17)).collect(),
            exp: 24,
        };
        let want4 = f64_linear(&x, d, |c, j| q4_weight(&w, c, d.k, j));
        let want8 =
            f64_linear(&x, d, |c, j| w8.d[(c * d.k + j) / QK] as f64 * w8.qs[c * d.k + j] as f64 / 2f64.powi(24));
        for (bits, bound) in [(ActBits::I8, 5e-3), (ActBits::I16, 5e-5)] {
            let e4 = rel_err(&linear_q4_1(&x, w.view(), d, bits).unwrap(), &want4);
            let e8 = rel_err(&linear_q8_0(&x, w8.view(), d, bits).unwrap(), &want8);
            eprintln!("linear relative error ({bits:?} activations): q4_1 {e4:.2e}, q8_0 {e8:.2e}");
            assert!(e4 < bound && e8 < bound, "{bits:?}: q4_1 {e4}, q8_0 {e8}");
        }
    }

    /// Throughput of a decode step's (1 row) and a prompt's (64 rows) shapes on one thread
    /// (`cargo test -p opml-dnn --release --lib throughput -- --ignored --nocapture`): a
    /// measurement, not a check.
    #[test]
    #[ignore]
    fn throughput() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for (rows, n, k) in [(1, 1536, 576), (1, 576, 1536), (64, 1536, 576), (64, 576, 1536)] {
            let w = rand_q4_1(&mut rng, n, k);
            let x: Vec<i32> = (0..rows * k).map(|_| rng.gen_range(-(1 << 16)..1 << 16)).collect();
            let d = BlockDims { rows, k, n };
            for (bits, isa) in
                [ActBits::I8, ActBits::I16].into_iter().flat_map(|b| Isa::available().into_iter().map(move |i| (b, i)))
            {
                let reps = 12800 / rows;
                let step = || drop(std::hint::black_box(linear_q4_1_on(isa, &x, w.view(), d, bits).unwrap()));
                let s = cpu_seconds_per_call(reps, step);
                let gmac = (rows * n * k) as f64 / s / 1e9;
                eprintln!("q4_1 {rows}x{n}x{k} {bits:?} {isa:?}: {:.1} us, {gmac:.2} GMAC/s", s * 1e6);
            }
        }
    }

    /// A decode step's weight traffic: one activation row against 160 matrices of
    /// 1536 x 576 (about 100 MB, far more than the caches, as a model's layers), on one
    /// thread (its CPU time: what the kernels cost when the weights come from memory) and
    /// on two (the wall clock). Compare with `throughput`'s one-row figures, whose weights
    /// stay in L2.
    /// `cargo test -p opml-dnn --release --lib streaming -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn streaming_throughput() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let (n, k, count) = (1536, 576, 160);
        let ws: Vec<Q4_1Owned> = (0..count).map(|_| rand_q4_1(&mut rng, n, k)).collect();
        let x: Vec<i32> = (0..k).map(|_| rng.gen_range(-(1 << 16)..1 << 16)).collect();
        let d = BlockDims { rows: 1, k, n };
        let bytes = (count * n * k / QK * 24) as f64;
        let pass = || {
            for w in &ws {
                std::hint::black_box(linear_q4_1(&x, w.view(), d, ActBits::I16).unwrap());
            }
        };
        for round in 0..3 {
            let one = cpu_seconds_per_call(1, pass);
            let t = std::time::Instant::now();
            pool(2).install(pass);
            let two = t.elapsed().as_secs_f64();
            eprintln!(
                "round {round}: 1 thread {:.2} ms CPU ({:.1} GB/s of 24-byte blocks), 2 threads {:.2} ms wall ({:.1} GB/s)",
                one * 1e3,
                bytes / one / 1e9,
                two * 1e3,
                bytes / two / 1e9
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// The kernel equals the plain-loop transcription of the spec, and the result is
        /// within the activation-quantization bound of the f64 product: per output at most
        /// `sum_b S_b / 2 * sum_j |w_j|` plus half a unit of the final rounding.
        #[test]
        fn q4_1_matches_spec_and_f64_bound(
            seed in any::<u64>(), rows in 1usize..4, blocks in 1usize..6, n in 1usize..9, mag in 0u32..22,
            wide in any::<bool>(),
        ) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let d = BlockDims { rows, k: blocks * QK, n };
            let w = rand_q4_1(&mut rng, n, d.k);
            let x: Vec<i32> = (0..rows * d.k).map(|_| rng.gen_range(-(1 << mag)..=1 << mag)).collect();
            let bits = if wide { ActBits::I16 } else { ActBits::I8 };
            let got = linear_q4_1(&x, w.view(), d, bits).unwrap();
            let (spec, s) = if wide {
                (spec_q4_1::<i16>(&x, &w, d), quantize_act::<i16>(&x).s)
            } else {
                (spec_q4_1::<i8>(&x, &w, d), quantize_act::<i8>(&x).s)
            };
            prop_assert_eq!(&got, &spec);
            let want = f64_linear(&x, d, |c, j| q4_weight(&w, c, d.k, j));
            for r in 0..rows {
                for c in 0..n {
                    let bound: f64 = (0..d.k)
                        .map(|j| s[(r * d.k + j) / QK] as f64 / 2.0 * q4_weight(&w, c, d.k, j).abs())
                        .sum::<f64>() + 0.5;
                    let err = (got[r * n + c] as f64 - want[r * n + c]).abs();
                    prop_assert!(err <= bound * (1.0 + 1e-9), "err {} bound {}", err, bound);
                }
            }
        }
    }
}
