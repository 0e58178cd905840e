//! The integer Llama forward: the importer's typed weights converted once to fixed point
//! with `dnn`'s `fixed_import` (block scales to one exponent per tensor, norm weights to
//! one exponent each, epsilon and the RoPE tables to integers), then every step of the
//! forward is a `dnn::ops::llm` op on integers. No float is touched after
//! [`IntLlama::from_weights`].
//!
//! The ops parallelize with rayon over independent output elements, so the result is the
//! same for any number of threads.
//!
//! Specification: `docs/spec/gguf-import.md` ("The integer forward") and `docs/spec/ops.md` §5.

use opml_dnn::ops::dims::RowDims;
use opml_dnn::ops::elementwise::add_i32;
use opml_dnn::ops::llm::attention::{attention, AttnDims};
use opml_dnn::ops::llm::blockdot::Isa;
use opml_dnn::ops::llm::blockq::{Q4_1Owned, Q8_0Owned};
use opml_dnn::ops::llm::fixed_import::{f32_to_fixed, fixed_from_f16, fixed_from_f32, FixedVec};
use opml_dnn::ops::llm::qgemm::PackedQ4_1;
use opml_dnn::ops::llm::qlinear::{block_linears, embed_q8_0, linear_q8_0, BlockDims, BlockWeightsRef};
use opml_dnn::ops::llm::rmsnorm::{rmsnorm_wide, RmsParams};
use opml_dnn::ops::llm::rope::{rope, rope_tables, RopeDims};
use opml_dnn::ops::llm::silu::swiglu;
use opml_dnn::ops::llm::tables;
use opml_dnn::ops::shape::argmax;
use opml_dnn::ops::OpError;
use rayon::prelude::*;

pub use opml_dnn::ops::llm::qlinear::ActBits;

use std::borrow::Borrow;
use std::io::{Read, Seek};

use crate::llama::{LayerWeights, LlamaConfig, LlamaGguf, LlamaWeights, Matrix};
use crate::quant::{BlockMatrix, BlockQ4_1, BlockQ8_0};

/// Largest exponent of a norm weight (a gain near 1 keeps 30 fraction bits).
const NORM_EXP_CAP: u32 = 30;

/// The number format of the integer forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntFormat {
    /// Fraction bits of the residual stream and every activation (14 for SmolLM2).
    pub frac_bits: u32,
    /// The width activations are quantized to per block of 32 inside the linears.
    pub act: ActBits,
}

impl Default for IntFormat {
    /// F = 14 with 16-bit activation blocks: 48/48 top-1 and perplexity within 0.02% of
    /// the f64 forward on SmolLM2-135M (`importer/tests/smollm2_forward.rs`).
    fn default() -> Self {
        Self { frac_bits: 14, act: ActBits::I16 }
    }
}

/// What went wrong building or running the integer model.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// Reading the model file failed.
    #[error(transparent)]
    Import(#[from] crate::error::ImportError),
    /// A weight could not be converted to fixed point, or an op refused its inputs.
    #[error("{what}")]
    Op {
        /// The tensor or step.
        what: String,
        /// The op's message.
        #[source]
        source: OpError,
    },
    /// The model has a shape or type the integer forward does not implement.
    #[error("unsupported model: {0}")]
    Unsupported(String),
    /// A token id is outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab}")]
    Token {
        /// The id.
        id: u32,
        /// The vocabulary size.
        vocab: usize,
    },
    /// The step graph could not be built or fed (`crate::graph`).
    #[error("step graph: {0}")]
    Graph(#[source] opml_dnn::DnnError),
    /// The step graph was given inputs or slots that do not fit it.
    #[error("step graph: {0}")]
    Step(String),
    /// The tokens would run past the context length.
    #[error("{want} positions exceed the context length {context}")]
    Context {
        /// Positions the call needs (cache plus new tokens).
        want: usize,
        /// The model's context length.
        context: usize,
    },
}

fn op<T>(what: impl FnOnce() -> String, r: Result<T, OpError>) -> Result<T, ForwardError> {
    r.map_err(|source| ForwardError::Op { what: what(), source })
}

/// A weight matrix `[n, k]` (`n` outputs of `k` inputs) in fixed point, as the kernels take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntMatrix {
    /// Q4_1 blocks: the nibbles as shipped, scales and mins in fixed point.
    Q4_1 {
        /// The blocks.
        w: Q4_1Owned,
        /// Rows (outputs).
        n: usize,
        /// Columns (inputs).
        k: usize,
    },
    /// Q8_0 blocks: the values as shipped, scales in fixed point.
    Q8_0 {
        /// The blocks.
        w: Q8_0Owned,
        /// Rows (outputs).
        n: usize,
        /// Columns (inputs).
        k: usize,
    },
}

fn q4_1(name: &str, m: &BlockMatrix<BlockQ4_1>) -> Result<Q4_1Owned, ForwardError> {
    let scales: Vec<u16> = m.blocks.iter().flat_map(|b| [b.d, b.m]).collect();
    let FixedVec { values, exp } = op(|| format!("tensor {name}: block scales"), fixed_from_f16(&scales))?;
    let (d, mins) = values.chunks_exact(2).map(|p| (p[0], p[1])).unzip();
    let qs = m.blocks.iter().flat_map(|b| b.qs).collect();
    Ok(Q4_1Owned { qs, d, m: mins, exp })
}

fn q8_0(name: &str, m: &BlockMatrix<BlockQ8_0>) -> Result<Q8_0Owned, ForwardError> {
    let scales: Vec<u16> = m.blocks.iter().map(|b| b.d).collect();
    let FixedVec { values, exp } = op(|| format!("tensor {name}: block scales"), fixed_from_f16(&scales))?;
    let qs = m.blocks.iter().flat_map(|b| b.qs).collect();
    Ok(Q8_0Owned { qs, d: values, exp })
}

impl IntMatrix {
    fn new(name: &str, m: &Matrix) -> Result<Self, ForwardError> {
        Ok(match m {
            Matrix::Q4_1(b) => Self::Q4_1 { w: q4_1(name, b)?, n: b.rows, k: b.cols },
            Matrix::Q8_0(b) => Self::Q8_0 { w: q8_0(name, b)?, n: b.rows, k: b.cols },
        })
    }

    /// The kernels' view (with `packed`, this matrix repacked, where there is one) and the
    /// output count `n`.
    fn weights_ref<'a>(&'a self, packed: Option<&'a PackedQ4_1>) -> (BlockWeightsRef<'a>, usize) {
        match (self, packed) {
            (Self::Q4_1 { w, n, .. }, Some(p)) => (BlockWeightsRef::Q4_1Packed(w.view(), p), *n),
            (Self::Q4_1 { w, n, .. }, None) => (BlockWeightsRef::Q4_1(w.view()), *n),
            (Self::Q8_0 { w, n, .. }, _) => (BlockWeightsRef::Q8_0(w.view()), *n),
        }
    }

    /// This matrix repacked for the AVX-512 GEMM, if it is Q4_1 (`name` for an error).
    fn pack(&self, name: &str) -> Result<Option<PackedQ4_1>, ForwardError> {
        Ok(match self {
            Self::Q4_1 { w, n, k } => Some(op(|| format!("repack {name}"), PackedQ4_1::new(w.view(), *n, *k))?),
            Self::Q8_0 { .. } => None,
        })
    }

    /// Columns (inputs).
    fn k(&self) -> usize {
        match self {
            Self::Q4_1 { k, .. } | Self::Q8_0 { k, .. } => *k,
        }
    }

    /// `x [rows, k] -> [rows, n]` for several matrices of the same `k` at once (each with
    /// its packed copy, if any): the activations are quantized once and all run in one
    /// parallel region, each output exactly what one matrix alone gives.
    fn apply_many<const N: usize>(
        ms: [(&Self, Option<&PackedQ4_1>); N],
        name: impl FnOnce() -> String,
        x: &[i32],
        act: ActBits,
    ) -> Result<[Vec<i32>; N], ForwardError> {
        let k = ms[0].0.k();
        if let Some((m, _)) = ms.iter().find(|(m, _)| m.k() != k) {
            return Err(ForwardError::Unsupported(format!("{}: inputs {} and {k} differ", name(), m.k())));
        }
        let ws = ms.map(|(m, p)| m.weights_ref(p));
        let outs = op(name, block_linears(x, k, &ws, act))?;
        Ok(outs.try_into().expect("one output per matrix"))
    }

    /// `x [rows, k] -> [rows, n]`.
    fn apply(
        &self,
        packed: Option<&PackedQ4_1>,
        name: &str,
        x: &[i32],
        act: ActBits,
    ) -> Result<Vec<i32>, ForwardError> {
        let [y] = Self::apply_many([(self, packed)], || format!("linear {name}"), x, act)?;
        Ok(y)
    }
}

/// A norm weight in fixed point: `gamma[i] ~= g_i * 2^exp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntNorm {
    /// The gains.
    pub gamma: Vec<i32>,
    /// Their fraction bits.
    pub exp: u32,
}

impl IntNorm {
    fn new(name: &str, g: &[f32]) -> Result<Self, ForwardError> {
        let bits: Vec<u32> = g.iter().map(|v| v.to_bits()).collect();
        let FixedVec { values, exp } = op(|| format!("tensor {name}"), fixed_from_f32(&bits, NORM_EXP_CAP))?;
        Ok(Self { gamma: values, exp })
    }
}

/// One transformer block's weights in fixed point (GGUF `blk.N.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntLayer {
    /// `attn_norm`.
    pub attn_norm: IntNorm,
    /// `attn_q`.
    pub q: IntMatrix,
    /// `attn_k`.
    pub k: IntMatrix,
    /// `attn_v`.
    pub v: IntMatrix,
    /// `attn_output`.
    pub o: IntMatrix,
    /// `ffn_norm`.
    pub ffn_norm: IntNorm,
    /// `ffn_gate`.
    pub gate: IntMatrix,
    /// `ffn_up`.
    pub up: IntMatrix,
    /// `ffn_down`.
    pub down: IntMatrix,
}

/// Every integer an [`IntLlama`] runs on: the weights converted once from the GGUF's
/// floats ([`FixedWeights::convert`]), or read back from an LLM bundle
/// (`crate::bundle`), which stores exactly these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedWeights {
    /// `token_embd.weight` (also the output projection when `output` is `None`).
    pub token_embd: Q8_0Owned,
    /// The blocks.
    pub layers: Vec<IntLayer>,
    /// `output_norm.weight`.
    pub output_norm: IntNorm,
    /// `output.weight`, if the output is not tied to the embedding.
    pub output: Option<IntMatrix>,
    /// RMSNorm's epsilon with `2 * frac_bits` fraction bits.
    pub eps: i64,
    /// RoPE cosines `[context, head_dim / 2]`, Q30 (`rope_tables`).
    pub cos: Vec<i32>,
    /// RoPE sines, likewise.
    pub sin: Vec<i32>,
}

impl FixedWeights {
    /// Convert the weights once. The embedding must be Q8_0 (the integer embedding op
    /// reads Q8_0 rows); the linears may be Q4_1 or Q8_0.
    pub fn convert(config: &LlamaConfig, w: &LlamaWeights, format: IntFormat) -> Result<Self, ForwardError> {
        Self::convert_layers(config, w, w.layers.iter().map(Ok), format)
    }

    /// [`Self::convert`] with the transformer blocks taken from `layers` instead of
    /// `w.layers` (which is not read), each converted and dropped before the next is taken.
    pub fn convert_layers<L: Borrow<LayerWeights>>(
        config: &LlamaConfig,
        w: &LlamaWeights,
        layers: impl IntoIterator<Item = Result<L, ForwardError>>,
        format: IntFormat,
    ) -> Result<Self, ForwardError> {
        let c = config;
        let Matrix::Q8_0(embd) = &w.token_embd else {
            return Err(ForwardError::Unsupported(format!(
                "token_embd.weight is {}; the integer embedding reads Q8_0",
                w.token_embd.kind().name()
            )));
        };
        let layers = layers
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                let l = l?;
                let l = l.borrow();
                let n = |s: &str| format!("blk.{i}.{s}.weight");
                Ok(IntLayer {
                    attn_norm: IntNorm::new(&n("attn_norm"), &l.attn_norm)?,
                    q: IntMatrix::new(&n("attn_q"), &l.attn_q)?,
                    k: IntMatrix::new(&n("attn_k"), &l.attn_k)?,
                    v: IntMatrix::new(&n("attn_v"), &l.attn_v)?,
                    o: IntMatrix::new(&n("attn_output"), &l.attn_output)?,
                    ffn_norm: IntNorm::new(&n("ffn_norm"), &l.ffn_norm)?,
                    gate: IntMatrix::new(&n("ffn_gate"), &l.ffn_gate)?,
                    up: IntMatrix::new(&n("ffn_up"), &l.ffn_up)?,
                    down: IntMatrix::new(&n("ffn_down"), &l.ffn_down)?,
                })
            })
            .collect::<Result<Vec<_>, ForwardError>>()?;
        let output = w.output.as_ref().map(|m| IntMatrix::new("output.weight", m)).transpose()?;
        let eps = f32_to_fixed(c.rms_eps.to_bits(), 2 * format.frac_bits)
            .ok_or_else(|| ForwardError::Unsupported(format!("RMSNorm epsilon {}", c.rms_eps)))?;
        let (cos, sin) = rope_tables(c.context, c.head_dim, c.rope_base as f64);
        Ok(Self {
            token_embd: q8_0("token_embd.weight", embd)?,
            layers,
            output_norm: IntNorm::new("output_norm.weight", &w.output_norm)?,
            output,
            eps,
            cos,
            sin,
        })
    }
}

/// Keys (after RoPE) and values of every past position, per layer: `[ctx, kv_heads,
/// head_dim]` each, grown by appending the new positions of every forward call.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    pub(crate) k: Vec<Vec<i32>>,
    pub(crate) v: Vec<Vec<i32>>,
    pub(crate) len: usize,
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keys of layer `layer`, `[len, kv_heads, head_dim]` row-major (empty when the layer
    /// holds none).
    pub fn keys(&self, layer: usize) -> &[i32] {
        self.k.get(layer).map_or(&[], Vec::as_slice)
    }

    /// Values of layer `layer`, as [`Self::keys`].
    pub fn values(&self, layer: usize) -> &[i32] {
        self.v.get(layer).map_or(&[], Vec::as_slice)
    }
}

/// A layer's Q4_1 matrices repacked for the AVX-512 GEMM (`opml_dnn::ops::llm::qgemm`):
/// the executor's own copy, the same integers in the order that kernel reads; `None` for a
/// Q8_0 matrix.
#[derive(Debug)]
struct LayerPacks {
    q: Option<PackedQ4_1>,
    k: Option<PackedQ4_1>,
    v: Option<PackedQ4_1>,
    o: Option<PackedQ4_1>,
    gate: Option<PackedQ4_1>,
    up: Option<PackedQ4_1>,
    down: Option<PackedQ4_1>,
}

impl LayerPacks {
    /// Layer `i`'s packs.
    fn new(i: usize, l: &IntLayer) -> Result<Self, ForwardError> {
        let n = |s: &str| format!("blk.{i}.{s}");
        Ok(LayerPacks {
            q: l.q.pack(&n("attn_q"))?,
            k: l.k.pack(&n("attn_k"))?,
            v: l.v.pack(&n("attn_v"))?,
            o: l.o.pack(&n("attn_output"))?,
            gate: l.gate.pack(&n("ffn_gate"))?,
            up: l.up.pack(&n("ffn_up"))?,
            down: l.down.pack(&n("ffn_down"))?,
        })
    }
}

/// Which positions' logits a forward computes (the output layer is the largest product).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Logits {
    /// Every position's.
    All,
    /// The last position's only.
    Last,
}

/// SmolLM2-style Llama in integers, ready to run.
#[derive(Debug)]
pub struct IntLlama {
    config: LlamaConfig,
    format: IntFormat,
    pub(crate) embd: Q8_0Owned,
    pub(crate) layers: Vec<IntLayer>,
    pub(crate) output_norm: IntNorm,
    pub(crate) output: Option<IntMatrix>,
    pub(crate) eps: i64,
    /// RoPE tables `[context, head_dim / 2]`, Q30.
    pub(crate) cos: Vec<i32>,
    pub(crate) sin: Vec<i32>,
    /// Per layer, its linears repacked ([`LayerPacks`]): only on a CPU with AVX-512 and
    /// with 16-bit activation blocks (where the packed GEMM reads them), else empty.
    packs: Vec<LayerPacks>,
}

/// Prompt and generation timing of [`IntLlama::generate_greedy`].
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The generated ids (without the prompt).
    pub tokens: Vec<u32>,
    /// Seconds spent on the prompt (one batched forward).
    pub prompt_seconds: f64,
    /// Seconds spent generating (one forward per token after the first).
    pub generate_seconds: f64,
}

impl IntLlama {
    /// Read every weight of `gguf` and convert it (the typed weights are dropped after).
    pub fn from_gguf<R: Read + Seek>(gguf: &mut LlamaGguf<R>, format: IntFormat) -> Result<Self, ForwardError> {
        let weights = gguf.load_weights()?;
        Self::from_weights(gguf.config(), &weights, format)
    }

    /// Convert the weights once ([`FixedWeights::convert`]) and build the model.
    pub fn from_weights(config: &LlamaConfig, w: &LlamaWeights, format: IntFormat) -> Result<Self, ForwardError> {
        Self::from_fixed(config, format, FixedWeights::convert(config, w, format)?)
    }

    /// [`Self::from_weights`] with the transformer blocks taken from `layers` instead of
    /// `w.layers` (which is not read): each block is converted and dropped before the next
    /// is taken ([`FixedWeights::convert_layers`]), so a model generated or read block by
    /// block never holds more than one block of typed weights beside the converted ones
    /// (`crate::synthetic`).
    pub fn from_layers<L: Borrow<LayerWeights>>(
        config: &LlamaConfig,
        w: &LlamaWeights,
        layers: impl IntoIterator<Item = Result<L, ForwardError>>,
        format: IntFormat,
    ) -> Result<Self, ForwardError> {
        Self::from_fixed(config, format, FixedWeights::convert_layers(config, w, layers, format)?)
    }

    /// The model over weights already in fixed point (from [`FixedWeights::convert`] or
    /// an LLM bundle). The shapes must be the configuration's (the bundle reader checks
    /// them against it).
    pub fn from_fixed(config: &LlamaConfig, format: IntFormat, w: FixedWeights) -> Result<Self, ForwardError> {
        let c = config;
        if c.heads * c.head_dim != c.hidden {
            return Err(ForwardError::Unsupported(format!(
                "{} heads of {} channels do not make the hidden size {}",
                c.heads, c.head_dim, c.hidden
            )));
        }
        // Only the packed GEMM reads the packs: AVX-512 with 16-bit activation blocks.
        let packs = if Isa::detect() == Isa::Avx512 && format.act == ActBits::I16 {
            w.layers.par_iter().enumerate().map(|(i, l)| LayerPacks::new(i, l)).collect::<Result<_, _>>()?
        } else {
            Vec::new()
        };
        // The softmax's and SwiGLU's tables of the format, built once per process.
        tables::warm(format.frac_bits);
        Ok(Self {
            config: c.clone(),
            format,
            packs,
            embd: w.token_embd,
            layers: w.layers,
            output_norm: w.output_norm,
            output: w.output,
            eps: w.eps,
            cos: w.cos,
            sin: w.sin,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// The number format.
    pub fn format(&self) -> IntFormat {
        self.format
    }

    fn norm(&self, n: &IntNorm, name: &str, x: &[i32], rows: usize) -> Result<Vec<i32>, ForwardError> {
        let f = self.format.frac_bits;
        let p = RmsParams { frac: f, out_frac: f, gamma_exp: n.exp, eps: self.eps };
        op(|| format!("rmsnorm {name}"), rmsnorm_wide(x, &n.gamma, RowDims { rows, len: self.config.hidden }, &p))
    }

    /// Run `tokens` at positions `cache.len()..`, appending their keys and values to
    /// `cache`: logits `[tokens.len(), vocab]` with `frac_bits` fraction bits. A prompt is
    /// one call; decoding is one call per token. The cache is unchanged on an error.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Vec<i32>, ForwardError> {
        self.forward_checked(tokens, cache, Logits::All)
    }

    /// [`Self::forward`] with only the last position's logits (`[vocab]`): what greedy
    /// decoding reads, without the output layer's product for the other positions.
    pub fn forward_last(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Vec<i32>, ForwardError> {
        self.forward_checked(tokens, cache, Logits::Last)
    }

    /// The checks of [`Self::forward`], then the forward; the cache is unchanged on an error.
    fn forward_checked(&self, tokens: &[u32], cache: &mut KvCache, logits: Logits) -> Result<Vec<i32>, ForwardError> {
        let c = &self.config;
        let (seq, pos0) = (tokens.len(), cache.len);
        if let Some(&id) = tokens.iter().find(|&&t| t as usize >= c.vocab) {
            return Err(ForwardError::Token { id, vocab: c.vocab });
        }
        let ctx = pos0 + seq;
        if ctx > c.context {
            return Err(ForwardError::Context { want: ctx, context: c.context });
        }
        if seq == 0 {
            return Ok(Vec::new());
        }
        cache.k.resize_with(self.layers.len(), Vec::new);
        cache.v.resize_with(self.layers.len(), Vec::new);
        let r = self.forward_into(tokens, cache, logits);
        let keep = if r.is_ok() { ctx } else { pos0 } * c.kv_heads * c.head_dim;
        cache.k.iter_mut().chain(cache.v.iter_mut()).for_each(|t| t.truncate(keep));
        if r.is_ok() {
            cache.len = ctx;
        }
        r
    }

    /// [`Self::forward`] after the checks; appends to every layer's cache.
    fn forward_into(&self, tokens: &[u32], cache: &mut KvCache, logits: Logits) -> Result<Vec<i32>, ForwardError> {
        let c = &self.config;
        let (seq, pos0, f, act) = (tokens.len(), cache.len, self.format.frac_bits, self.format.act);
        let ctx = pos0 + seq;
        let ids: Vec<i32> = tokens.iter().map(|&t| t as i32).collect();
        let mut x = op(|| "embedding".into(), embed_q8_0(&ids, self.embd.view(), c.hidden, f))?;
        let rd = |heads| RopeDims { seq, heads, head_dim: c.head_dim, pos0 };
        let ad = AttnDims { seq, heads: c.heads, kv_heads: c.kv_heads, head_dim: c.head_dim, ctx, pos0 };
        for (i, l) in self.layers.iter().enumerate() {
            let n = |s: &str| format!("blk.{i}.{s}");
            let h = self.norm(&l.attn_norm, &n("attn_norm"), &x, seq)?;
            let pk = self.packs.get(i);
            let p = |f: fn(&LayerPacks) -> &Option<PackedQ4_1>| pk.and_then(|pk| f(pk).as_ref());
            let [q, k, v] = IntMatrix::apply_many(
                [(&l.q, p(|p| &p.q)), (&l.k, p(|p| &p.k)), (&l.v, p(|p| &p.v))],
                || n("linear attn_q/k/v"),
                &h,
                act,
            )?;
            let q = op(|| n("rope q"), rope(&q, &self.cos, &self.sin, rd(c.heads)))?;
            let k = op(|| n("rope k"), rope(&k, &self.cos, &self.sin, rd(c.kv_heads)))?;
            cache.k[i].extend_from_slice(&k);
            cache.v[i].extend_from_slice(&v);
            let a = op(|| n("attention"), attention(&q, &cache.k[i], &cache.v[i], ad, f))?;
            x = add_i32(&x, &l.o.apply(p(|p| &p.o), &n("attn_output"), &a, act)?);
            let h2 = self.norm(&l.ffn_norm, &n("ffn_norm"), &x, seq)?;
            let [g, u] = IntMatrix::apply_many(
                [(&l.gate, p(|p| &p.gate)), (&l.up, p(|p| &p.up))],
                || n("linear ffn_gate/up"),
                &h2,
                act,
            )?;
            let s = op(|| n("swiglu"), swiglu(&g, &u, f))?;
            x = add_i32(&x, &l.down.apply(p(|p| &p.down), &n("ffn_down"), &s, act)?);
        }
        let (rows, x) = match logits {
            Logits::All => (seq, &x[..]),
            Logits::Last => (1, &x[(seq - 1) * c.hidden..]),
        };
        let h = self.norm(&self.output_norm, "output_norm", x, rows)?;
        match &self.output {
            Some(m) => m.apply(None, "output", &h, act),
            None => op(
                || "linear output (tied to token_embd)".into(),
                linear_q8_0(&h, self.embd.view(), BlockDims { rows, k: c.hidden, n: c.vocab }, act),
            ),
        }
    }

    /// Greedy decoding: the prompt in one forward, then up to `max_new` tokens one at a
    /// time (argmax, lowest id on a tie), calling `on_token` with each id as soon as it is
    /// chosen. Stops early after a token in `stop` (which is returned and reported).
    pub fn generate_greedy(
        &self,
        prompt: &[u32],
        max_new: usize,
        stop: &[u32],
        mut on_token: impl FnMut(u32),
    ) -> Result<Generation, ForwardError> {
        let vocab = self.config.vocab;
        let mut cache = KvCache::new();
        let mut out = Generation { tokens: Vec::new(), prompt_seconds: 0.0, generate_seconds: 0.0 };
        if max_new == 0 || prompt.is_empty() {
            return Ok(out);
        }
        let t0 = std::time::Instant::now();
        let logits = self.forward_last(prompt, &mut cache)?;
        let mut next = argmax(&logits, vocab)[0] as u32;
        out.prompt_seconds = t0.elapsed().as_secs_f64();
        let t1 = std::time::Instant::now();
        loop {
            out.tokens.push(next);
            on_token(next);
            if out.tokens.len() == max_new || stop.contains(&next) {
                break;
            }
            let logits = self.forward_last(&[next], &mut cache)?;
            next = argmax(&logits, vocab)[0] as u32;
        }
        out.generate_seconds = t1.elapsed().as_secs_f64();
        Ok(out)
    }
}
