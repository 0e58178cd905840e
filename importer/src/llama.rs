//! The Llama architecture in GGUF (llama.cpp's `llama` arch): the configuration from the
//! metadata, the tensor table it implies (checked name by name), and the typed weights.
//!
//! Tensor names and shapes, GGUF order (fastest dimension first; `d` = hidden, `f` = FFN
//! width, `h`/`k` = query/KV heads, `e` = head dim, `V` = vocabulary):
//!
//! | tensor | shape | types read |
//! |--------|-------|------------|
//! | `token_embd.weight` | `[d, V]` | Q8_0, Q4_1 |
//! | `blk.N.attn_norm.weight`, `blk.N.ffn_norm.weight`, `output_norm.weight` | `[d]` | F32 |
//! | `blk.N.attn_q.weight` | `[d, h*e]` | Q8_0, Q4_1 |
//! | `blk.N.attn_k.weight`, `blk.N.attn_v.weight` | `[d, k*e]` | Q8_0, Q4_1 |
//! | `blk.N.attn_output.weight` | `[h*e, d]` | Q8_0, Q4_1 |
//! | `blk.N.ffn_gate.weight`, `blk.N.ffn_up.weight` | `[d, f]` | Q8_0, Q4_1 |
//! | `blk.N.ffn_down.weight` | `[f, d]` | Q8_0, Q4_1 |
//! | `output.weight` (absent: tied to `token_embd.weight`) | `[d, V]` | Q8_0, Q4_1 |
//!
//! Any other tensor is an error: a file with more than this (rope frequency factors, biases,
//! experts) is another model than the one the integer graph would run.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use crate::error::{ImportError, Result};
use crate::gguf::{GgufFile, TensorDesc, TensorKind};
use crate::quant::{f32_vector, BlockMatrix, BlockQ4_1, BlockQ8_0};
use crate::tokenizer::Vocab;

/// The GGUF `general.architecture` this module reads.
pub const ARCH: &str = "llama";

/// llama.cpp's default RoPE base when `llama.rope.freq_base` is absent.
const DEFAULT_ROPE_BASE: f32 = 10_000.0;

/// Matrix types accepted for every weight matrix.
const MATRIX_KINDS: &[TensorKind] = &[TensorKind::Q8_0, TensorKind::Q4_1];
/// Types accepted for norm weights.
const NORM_KINDS: &[TensorKind] = &[TensorKind::F32];

/// Hyper-parameters of a Llama model, from the GGUF metadata (`llama.*` keys).
///
/// RoPE: llama.cpp's converter permutes the rows of `attn_q` and `attn_k` so that, on GGUF
/// weights, RoPE rotates adjacent pairs `(2i, 2i+1)` of each head (llama.cpp's "normal" RoPE),
/// by the angle `pos * rope_base^(-2i / head_dim)`. A float reference on these weights must
/// rotate adjacent pairs, not the two halves of a head as the original checkpoint does.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LlamaConfig {
    /// Transformer blocks (`llama.block_count`).
    pub layers: usize,
    /// Width of the residual stream (`llama.embedding_length`).
    pub hidden: usize,
    /// Width of the SwiGLU hidden layer (`llama.feed_forward_length`).
    pub ffn: usize,
    /// Query heads (`llama.attention.head_count`).
    pub heads: usize,
    /// Key/value heads (`llama.attention.head_count_kv`; absent: `heads`, as llama.cpp).
    pub kv_heads: usize,
    /// Width of one head: `hidden / heads`; `llama.rope.dimension_count` must equal it (RoPE
    /// over the whole head).
    pub head_dim: usize,
    /// RoPE base (`llama.rope.freq_base`; absent: 10000, as llama.cpp).
    pub rope_base: f32,
    /// RMSNorm epsilon (`llama.attention.layer_norm_rms_epsilon`).
    pub rms_eps: f32,
    /// Vocabulary size: the length of `tokenizer.ggml.tokens` (and `llama.vocab_size` when
    /// present, which must agree).
    pub vocab: usize,
    /// Trained context length (`llama.context_length`).
    pub context: usize,
}

/// One expected tensor: name, shape (GGUF order) and accepted types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedTensor {
    /// GGUF name.
    pub name: String,
    /// Shape, GGUF order.
    pub dims: Vec<u64>,
    /// Accepted element types.
    pub kinds: &'static [TensorKind],
}

impl LlamaConfig {
    /// Read the configuration from the metadata of a `llama` GGUF file.
    pub fn from_gguf<R: Read + Seek>(f: &GgufFile<R>) -> Result<Self> {
        let arch = f.str("general.architecture")?;
        if arch != ARCH {
            return Err(ImportError::Unsupported {
                key: "general.architecture".into(),
                reason: format!("{arch:?}: only {ARCH:?} is imported"),
            });
        }
        refuse_present(f, "llama.expert_count", "mixture-of-experts models are not imported")?;
        if f.has("llama.rope.scaling.type") && f.str("llama.rope.scaling.type")? != "none" {
            return Err(ImportError::Unsupported {
                key: "llama.rope.scaling.type".into(),
                reason: format!("{:?}: only unscaled RoPE is imported", f.str("llama.rope.scaling.type")?),
            });
        }
        let hidden = f.usize("llama.embedding_length")?;
        let heads = f.usize("llama.attention.head_count")?;
        let kv_heads =
            if f.has("llama.attention.head_count_kv") { f.usize("llama.attention.head_count_kv")? } else { heads };
        let vocab = f.str_array("tokenizer.ggml.tokens")?.len();
        let c = Self {
            layers: f.usize("llama.block_count")?,
            hidden,
            ffn: f.usize("llama.feed_forward_length")?,
            heads,
            kv_heads,
            head_dim: hidden.checked_div(heads).unwrap_or(0),
            rope_base: if f.has("llama.rope.freq_base") { f.f32("llama.rope.freq_base")? } else { DEFAULT_ROPE_BASE },
            rms_eps: f.f32("llama.attention.layer_norm_rms_epsilon")?,
            vocab,
            context: f.usize("llama.context_length")?,
        };
        c.check(f)?;
        Ok(c)
    }

    /// Consistency of the values read: divisibility and agreement of redundant keys.
    fn check<R: Read + Seek>(&self, f: &GgufFile<R>) -> Result<()> {
        let bad = |key: &str, reason: String| Err(ImportError::Unsupported { key: key.into(), reason });
        if self.heads == 0 || !self.hidden.is_multiple_of(self.heads) {
            return bad(
                "llama.attention.head_count",
                format!("{} heads do not divide the hidden width {}", self.heads, self.hidden),
            );
        }
        if self.kv_heads == 0 || !self.heads.is_multiple_of(self.kv_heads) {
            return bad(
                "llama.attention.head_count_kv",
                format!("{} KV heads do not divide the {} query heads", self.kv_heads, self.heads),
            );
        }
        if f.has("llama.rope.dimension_count") {
            let rope_dim = f.usize("llama.rope.dimension_count")?;
            if rope_dim != self.head_dim {
                return bad(
                    "llama.rope.dimension_count",
                    format!("{rope_dim}: only RoPE over the whole head ({}) is imported", self.head_dim),
                );
            }
        }
        if f.has("llama.vocab_size") && f.usize("llama.vocab_size")? != self.vocab {
            return bad(
                "llama.vocab_size",
                format!(
                    "{} differs from the {} tokens of tokenizer.ggml.tokens",
                    f.usize("llama.vocab_size")?,
                    self.vocab
                ),
            );
        }
        for (key, v) in [
            ("llama.block_count", self.layers),
            ("llama.feed_forward_length", self.ffn),
            ("llama.context_length", self.context),
        ] {
            if v == 0 {
                return bad(key, "must not be zero".into());
            }
        }
        if !(self.rms_eps.is_finite() && self.rms_eps > 0.0) {
            return bad("llama.attention.layer_norm_rms_epsilon", format!("{}: must be positive", self.rms_eps));
        }
        if !(self.rope_base.is_finite() && self.rope_base > 1.0) {
            return bad("llama.rope.freq_base", format!("{}: must be above 1", self.rope_base));
        }
        Ok(())
    }

    /// The tensors a file of this configuration holds, in a fixed order (embedding, layers,
    /// output norm); `tied` says whether the output projection is the embedding (no
    /// `output.weight`).
    pub fn expected_tensors(&self, tied: bool) -> Vec<ExpectedTensor> {
        let (d, f, v) = (self.hidden as u64, self.ffn as u64, self.vocab as u64);
        let (q, kv) = ((self.heads * self.head_dim) as u64, (self.kv_heads * self.head_dim) as u64);
        let t = |name: String, dims: Vec<u64>, kinds| ExpectedTensor { name, dims, kinds };
        let mut out = vec![t("token_embd.weight".into(), vec![d, v], MATRIX_KINDS)];
        for i in 0..self.layers {
            let n = |s: &str| format!("blk.{i}.{s}.weight");
            out.extend([
                t(n("attn_norm"), vec![d], NORM_KINDS),
                t(n("attn_q"), vec![d, q], MATRIX_KINDS),
                t(n("attn_k"), vec![d, kv], MATRIX_KINDS),
                t(n("attn_v"), vec![d, kv], MATRIX_KINDS),
                t(n("attn_output"), vec![q, d], MATRIX_KINDS),
                t(n("ffn_norm"), vec![d], NORM_KINDS),
                t(n("ffn_gate"), vec![d, f], MATRIX_KINDS),
                t(n("ffn_up"), vec![d, f], MATRIX_KINDS),
                t(n("ffn_down"), vec![f, d], MATRIX_KINDS),
            ]);
        }
        out.push(t("output_norm.weight".into(), vec![d], NORM_KINDS));
        if !tied {
            out.push(t("output.weight".into(), vec![d, v], MATRIX_KINDS));
        }
        out
    }

    /// Check a tensor table against this configuration: every expected tensor present with its
    /// shape and an accepted type, nothing else. Returns whether the output is tied.
    pub fn check_tensors(&self, table: &[TensorDesc]) -> Result<bool> {
        let by_name: BTreeMap<&str, &TensorDesc> = table.iter().map(|t| (t.name.as_str(), t)).collect();
        let tied = !by_name.contains_key("output.weight");
        let expected = self.expected_tensors(tied);
        for e in &expected {
            let got =
                by_name.get(e.name.as_str()).ok_or_else(|| ImportError::MissingTensor { name: e.name.clone() })?;
            if !e.kinds.contains(&got.kind) {
                let expected = e.kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(" or ");
                return Err(ImportError::TensorType { name: e.name.clone(), expected, got: got.kind.to_string() });
            }
            if got.dims != e.dims {
                return Err(ImportError::TensorShape {
                    name: e.name.clone(),
                    expected: e.dims.clone(),
                    got: got.dims.clone(),
                });
            }
        }
        if table.len() != expected.len() {
            let known: BTreeMap<&str, ()> = expected.iter().map(|e| (e.name.as_str(), ())).collect();
            let extra =
                table.iter().find(|t| !known.contains_key(t.name.as_str())).expect("more tensors than expected");
            return Err(ImportError::UnexpectedTensor { name: extra.name.clone() });
        }
        Ok(tied)
    }
}

fn refuse_present<R: Read + Seek>(f: &GgufFile<R>, key: &str, reason: &str) -> Result<()> {
    if f.has(key) && f.usize(key).unwrap_or(1) != 0 {
        return Err(ImportError::Unsupported { key: key.into(), reason: reason.into() });
    }
    Ok(())
}

/// A weight matrix as shipped, in one of the block types read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matrix {
    /// Q4_1 blocks.
    Q4_1(BlockMatrix<BlockQ4_1>),
    /// Q8_0 blocks.
    Q8_0(BlockMatrix<BlockQ8_0>),
}

impl Matrix {
    /// `(rows, cols)`: rows are outputs (tokens for the embedding), cols the input width.
    pub fn shape(&self) -> (usize, usize) {
        match self {
            Self::Q4_1(m) => (m.rows, m.cols),
            Self::Q8_0(m) => (m.rows, m.cols),
        }
    }

    /// The block type.
    pub fn kind(&self) -> TensorKind {
        match self {
            Self::Q4_1(_) => TensorKind::Q4_1,
            Self::Q8_0(_) => TensorKind::Q8_0,
        }
    }

    /// Float values, row-major `rows x cols`.
    pub fn dequantize(&self) -> Vec<f32> {
        match self {
            Self::Q4_1(m) => m.dequantize(),
            Self::Q8_0(m) => m.dequantize(),
        }
    }
}

/// The weights of one transformer block.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerWeights {
    /// RMSNorm gain before attention, `hidden` values.
    pub attn_norm: Vec<f32>,
    /// Query projection, `heads * head_dim` rows of `hidden` (rows permuted for adjacent-pair RoPE).
    pub attn_q: Matrix,
    /// Key projection, `kv_heads * head_dim` rows of `hidden` (rows permuted likewise).
    pub attn_k: Matrix,
    /// Value projection, `kv_heads * head_dim` rows of `hidden`.
    pub attn_v: Matrix,
    /// Attention output projection, `hidden` rows of `heads * head_dim`.
    pub attn_output: Matrix,
    /// RMSNorm gain before the FFN, `hidden` values.
    pub ffn_norm: Vec<f32>,
    /// SwiGLU gate, `ffn` rows of `hidden` (`silu(gate x) * (up x)`).
    pub ffn_gate: Matrix,
    /// SwiGLU up projection, `ffn` rows of `hidden`.
    pub ffn_up: Matrix,
    /// FFN down projection, `hidden` rows of `ffn`.
    pub ffn_down: Matrix,
}

/// All weights of a Llama model, typed, values as shipped.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaWeights {
    /// Token embedding: `vocab` rows of `hidden`.
    pub token_embd: Matrix,
    /// The transformer blocks, in order.
    pub layers: Vec<LayerWeights>,
    /// Final RMSNorm gain, `hidden` values.
    pub output_norm: Vec<f32>,
    /// Output projection (`vocab` rows of `hidden`); `None`: tied to `token_embd`.
    pub output: Option<Matrix>,
}

impl LlamaWeights {
    /// The output projection: `output` or, when tied, the embedding.
    pub fn output_projection(&self) -> &Matrix {
        self.output.as_ref().unwrap_or(&self.token_embd)
    }
}

/// A Llama GGUF file, opened and checked: configuration read, tensor table validated.
#[derive(Debug)]
pub struct LlamaGguf<R> {
    file: GgufFile<R>,
    config: LlamaConfig,
    tensors: Vec<TensorDesc>,
    tied: bool,
}

impl LlamaGguf<BufReader<File>> {
    /// Open `path`, read the configuration and validate the tensor table (no payload is read).
    pub fn open(path: &Path) -> Result<Self> {
        Self::new(GgufFile::open(path)?)
    }
}

impl<R: Read + Seek> LlamaGguf<R> {
    /// Read the configuration of `file` and validate its tensor table.
    pub fn new(file: GgufFile<R>) -> Result<Self> {
        let config = LlamaConfig::from_gguf(&file)?;
        let tensors = file.tensors();
        let tied = config.check_tensors(&tensors)?;
        Ok(Self { file, config, tensors, tied })
    }

    /// The configuration.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// The tensor table, in file order.
    pub fn tensors(&self) -> &[TensorDesc] {
        &self.tensors
    }

    /// Whether the output projection is tied to the embedding.
    pub fn tied_output(&self) -> bool {
        self.tied
    }

    /// The underlying file (metadata look-ups).
    pub fn file(&self) -> &GgufFile<R> {
        &self.file
    }

    /// The tokenizer data (vocabulary, merges, special tokens, chat template).
    pub fn vocab(&self) -> Result<Vocab> {
        Vocab::from_gguf(&self.file)
    }

    /// Number of weights (elements of every tensor; a tied output is counted once).
    pub fn parameter_count(&self) -> u64 {
        self.tensors.iter().map(TensorDesc::elements).sum()
    }

    /// Tensor counts by element type.
    pub fn kind_counts(&self) -> BTreeMap<TensorKind, usize> {
        let mut counts = BTreeMap::new();
        for t in &self.tensors {
            *counts.entry(t.kind).or_insert(0) += 1;
        }
        counts
    }

    /// Read every weight (the payloads: about the file's size in memory).
    pub fn load_weights(&mut self) -> Result<LlamaWeights> {
        let (d, f, q, kv, v) = (
            self.config.hidden,
            self.config.ffn,
            self.config.heads * self.config.head_dim,
            self.config.kv_heads * self.config.head_dim,
            self.config.vocab,
        );
        let layers = (0..self.config.layers)
            .map(|i| {
                let n = |s: &str| format!("blk.{i}.{s}.weight");
                Ok(LayerWeights {
                    attn_norm: self.vector(&n("attn_norm"), d)?,
                    attn_q: self.matrix(&n("attn_q"), q, d)?,
                    attn_k: self.matrix(&n("attn_k"), kv, d)?,
                    attn_v: self.matrix(&n("attn_v"), kv, d)?,
                    attn_output: self.matrix(&n("attn_output"), d, q)?,
                    ffn_norm: self.vector(&n("ffn_norm"), d)?,
                    ffn_gate: self.matrix(&n("ffn_gate"), f, d)?,
                    ffn_up: self.matrix(&n("ffn_up"), f, d)?,
                    ffn_down: self.matrix(&n("ffn_down"), d, f)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(LlamaWeights {
            token_embd: self.matrix("token_embd.weight", v, d)?,
            layers,
            output_norm: self.vector("output_norm.weight", d)?,
            output: if self.tied { None } else { Some(self.matrix("output.weight", v, d)?) },
        })
    }

    fn kind_of(&self, name: &str) -> TensorKind {
        self.tensors.iter().find(|t| t.name == name).expect("validated tensor table").kind
    }

    fn matrix(&mut self, name: &str, rows: usize, cols: usize) -> Result<Matrix> {
        let kind = self.kind_of(name);
        let bytes = self.file.tensor_bytes(name)?;
        match kind {
            TensorKind::Q4_1 => Ok(Matrix::Q4_1(BlockMatrix::from_bytes(name, rows, cols, &bytes)?)),
            TensorKind::Q8_0 => Ok(Matrix::Q8_0(BlockMatrix::from_bytes(name, rows, cols, &bytes)?)),
            TensorKind::F32 | TensorKind::Other(_) => unreachable!("check_tensors accepts only block types for {name}"),
        }
    }

    fn vector(&mut self, name: &str, len: usize) -> Result<Vec<f32>> {
        let bytes = self.file.tensor_bytes(name)?;
        f32_vector(name, len, &bytes)
    }
}
