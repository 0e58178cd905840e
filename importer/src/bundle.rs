//! The LLM bundle: one file holding what an integer Llama runs on and what a claim over a
//! generation binds. The GGUF's quantized values as shipped (Q4_1 nibbles, Q8_0 values),
//! their f16 block scales and mins and the f32 norm gains converted once to fixed point
//! ([`FixedWeights::convert`]), RMSNorm's epsilon and the RoPE tables as integers, the
//! configuration and number format, the tokenizer (`tokenizers` JSON, chat template, special
//! ids), the prompt and generation limits, provenance and the conversion's rounding report.
//! Every tensor has its `dnn` tensor commitment; the model commitment is a Merkle root over
//! the committed header, the tokenizer and the tensors. Loading re-checks all of it.
//!
//! Specification, byte by byte: `docs/spec/llm-bundle.md`.

use std::io::Read;
use std::path::Path;

use half::f16;
use opml_dnn::bundle::{hex32, parse_hex32};
use opml_dnn::commit::padded_root;
use opml_dnn::ops::llm::blockq::{Q4_1Owned, Q8_0Owned};
use opml_dnn::ops::llm::fixed_import::{F16_EXP_CAP, F32_EXP_CAP, MANT_MAX};
use opml_merkle::{bytes_root, Hash};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ImportError;
use crate::int_llama::{ActBits, FixedWeights, ForwardError, IntFormat, IntLayer, IntLlama, IntMatrix, IntNorm};
use crate::llama::{LlamaConfig, LlamaGguf, LlamaWeights, Matrix};
use crate::quant::BLOCK_LEN;
use crate::tokenizer::LlamaTokenizer;

/// File magic of an LLM bundle.
pub const LLM_BUNDLE_MAGIC: &[u8; 8] = b"OPMLLLM\0";
/// The format version this build writes and reads.
pub const LLM_BUNDLE_VERSION: u32 = 1;
/// Bytes before the header JSON: magic, version, header length.
pub const PREAMBLE_LEN: usize = 20;
/// Default longest prompt a claim may use.
pub const DEFAULT_MAX_PROMPT: usize = 512;
/// Default most tokens a claim may generate.
pub const DEFAULT_MAX_NEW: usize = 256;
/// Largest header accepted when reading (the SmolLM2 header is about 60 KiB).
pub const MAX_HEADER_LEN: u64 = 64 << 20;
/// Version field of the committed header block (its own layout version).
const CONFIG_BLOCK_VERSION: u32 = 1;
/// `exp` of a tensor without one, in the committed header block.
const NO_EXP: u32 = u32::MAX;

/// What went wrong writing or reading an LLM bundle; each names the field or tensor.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The file could not be read or written.
    #[error("reading or writing the file")]
    Io(#[from] std::io::Error),
    /// The file does not start with [`LLM_BUNDLE_MAGIC`].
    #[error("not an opml LLM bundle (the file does not start with the magic \"OPMLLLM\\0\")")]
    Magic,
    /// Another format version.
    #[error("format version {got}; this build reads version {LLM_BUNDLE_VERSION}")]
    Version {
        /// The version in the file.
        got: u32,
    },
    /// The file ends before a field is complete.
    #[error("truncated: {field} needs {need} bytes, {have} remain")]
    Truncated {
        /// The field (`header`, `tokenizer`, `tensor NAME`, ...).
        field: String,
        /// Bytes it needs.
        need: u64,
        /// Bytes left in the file.
        have: u64,
    },
    /// Bytes after the last tensor.
    #[error("{0} bytes after the last tensor")]
    Trailing(u64),
    /// The header is not the JSON this format defines.
    #[error("header: {0}")]
    Header(String),
    /// A header field holds a value this format refuses.
    #[error("header field {field}: {reason}")]
    Field {
        /// The field, as a JSON path.
        field: String,
        /// Why.
        reason: String,
    },
    /// A tensor's table entry disagrees with what the configuration implies.
    #[error("tensor {name}: {reason}")]
    Tensor {
        /// The tensor.
        name: String,
        /// Why.
        reason: String,
    },
    /// A recorded commitment disagrees with the bytes.
    #[error("{what}: the bytes commit to {computed}, the header records {recorded}")]
    Commitment {
        /// `tensor NAME`, `tokenizer`, `model`.
        what: String,
        /// In the header.
        recorded: String,
        /// Of the bytes.
        computed: String,
    },
    /// The tokenizer cannot be rebuilt.
    #[error("tokenizer")]
    Tokenizer(#[source] ImportError),
    /// Reading the GGUF or converting its weights failed.
    #[error(transparent)]
    Import(#[from] ForwardError),
}

fn field(field: &str, reason: impl Into<String>) -> BundleError {
    BundleError::Field { field: field.into(), reason: reason.into() }
}

/// Element type of a bundle tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TensorType {
    /// Unsigned bytes (Q4_1 nibbles, two per byte, as shipped).
    U8,
    /// Signed bytes (Q8_0 values).
    I8,
    /// Little-endian i32 (fixed-point scales, mins, gains, RoPE tables).
    I32,
}

impl TensorType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::U8 | Self::I8 => 1,
            Self::I32 => 4,
        }
    }

    /// Code in the committed header block.
    fn code(self) -> u32 {
        match self {
            Self::U8 => 0,
            Self::I8 => 1,
            Self::I32 => 2,
        }
    }
}

/// The checks the integer forward relies on, on a configuration read from a header (or
/// about to be written to one).
fn check_config(c: &LlamaConfig) -> Result<(), BundleError> {
    let f = |name: &str, reason: String| field(&format!("config.{name}"), reason);
    for (name, v) in [
        ("layers", c.layers),
        ("hidden", c.hidden),
        ("ffn", c.ffn),
        ("heads", c.heads),
        ("kv_heads", c.kv_heads),
        ("head_dim", c.head_dim),
        ("vocab", c.vocab),
        ("context", c.context),
    ] {
        if v == 0 || v > u32::MAX as usize {
            return Err(f(name, format!("{v} is not in 1..2^32")));
        }
    }
    if c.heads.checked_mul(c.head_dim) != Some(c.hidden) {
        return Err(f("heads", format!("{} heads of {} do not make hidden {}", c.heads, c.head_dim, c.hidden)));
    }
    if !c.heads.is_multiple_of(c.kv_heads) {
        return Err(f("kv_heads", format!("{} does not divide heads {}", c.kv_heads, c.heads)));
    }
    if !c.head_dim.is_multiple_of(2) {
        return Err(f("head_dim", format!("{} is odd (RoPE rotates pairs)", c.head_dim)));
    }
    for (name, v) in [("hidden", c.hidden), ("ffn", c.ffn)] {
        if !v.is_multiple_of(BLOCK_LEN) {
            return Err(f(name, format!("{v} is not a multiple of the block length {BLOCK_LEN}")));
        }
    }
    if !(c.rms_eps.is_finite() && c.rms_eps > 0.0) {
        return Err(f("rms_eps", format!("{} is not a positive number", c.rms_eps)));
    }
    if !(c.rope_base.is_finite() && c.rope_base > 1.0) {
        return Err(f("rope_base", format!("{} is not above 1", c.rope_base)));
    }
    // Every tensor's byte length is committed as a u32: the embedding's values are
    // vocab x hidden bytes, the RoPE tables context x head_dim x 2.
    if c.vocab.checked_mul(c.hidden).is_none_or(|n| n > u32::MAX as usize) {
        return Err(f("vocab", format!("{} x hidden {} is too large", c.vocab, c.hidden)));
    }
    if c.context.checked_mul(c.head_dim * 2).is_none_or(|n| n > u32::MAX as usize) {
        return Err(f("context", format!("{} positions make RoPE tables over 2^32 bytes", c.context)));
    }
    Ok(())
}

/// The number format of the integer forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberFormat {
    /// Fraction bits of activations and the residual stream.
    pub frac_bits: u32,
    /// Width of the activation blocks inside the linears: 8 or 16.
    pub act_bits: u32,
}

impl From<IntFormat> for NumberFormat {
    fn from(f: IntFormat) -> Self {
        Self {
            frac_bits: f.frac_bits,
            act_bits: match f.act {
                ActBits::I8 => 8,
                ActBits::I16 => 16,
            },
        }
    }
}

impl NumberFormat {
    fn checked(self) -> Result<IntFormat, BundleError> {
        let act = match self.act_bits {
            8 => ActBits::I8,
            16 => ActBits::I16,
            other => return Err(field("format.act_bits", format!("{other} (8 or 16)"))),
        };
        if !(1..=24).contains(&self.frac_bits) {
            return Err(field("format.frac_bits", format!("{} is not in 1..=24", self.frac_bits)));
        }
        Ok(IntFormat { frac_bits: self.frac_bits, act })
    }
}

/// The lengths a claim over a generation may use, fixed with the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Longest prompt, in tokens.
    pub max_prompt: usize,
    /// Most generated tokens.
    pub max_new: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_prompt: DEFAULT_MAX_PROMPT, max_new: DEFAULT_MAX_NEW }
    }
}

impl Limits {
    /// Both at least 1 and together within `context`.
    pub fn check(&self, context: usize) -> Result<(), BundleError> {
        if self.max_prompt == 0 || self.max_new == 0 {
            return Err(field(
                "limits",
                format!("max_prompt {} and max_new {} must be at least 1", self.max_prompt, self.max_new),
            ));
        }
        if self.max_prompt.saturating_add(self.max_new) > context {
            return Err(field(
                "limits",
                format!(
                    "max_prompt {} + max_new {} exceed the context length {context}",
                    self.max_prompt, self.max_new
                ),
            ));
        }
        Ok(())
    }
}

/// The tokenizer's entry in the header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenizerEntry {
    /// Length of the tokenizer section (`tokenizers` JSON).
    pub bytes: u64,
    /// `bytes_root` of the section.
    pub commitment: String,
    /// Beginning-of-sequence id.
    pub bos: u32,
    /// End-of-sequence id: generation stops there.
    pub eos: u32,
    /// Special (control) token ids, ascending.
    pub special: Vec<u32>,
    /// The GGUF's Jinja chat template, verbatim.
    pub chat_template: String,
}

/// Where the weights came from (not committed: the same weights under another name are
/// the same model).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The GGUF's file name.
    pub file: String,
    /// Its sha256, lower-case hex.
    pub sha256: String,
}

/// One tensor of the table, in file order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorEntry {
    /// Name (`blk.0.attn_q.weight.qs`, ...).
    pub name: String,
    /// Element type.
    pub dtype: TensorType,
    /// Shape, slowest dimension first.
    pub shape: Vec<usize>,
    /// Fraction bits of its values, for fixed-point tensors.
    pub exp: Option<u32>,
    /// Byte length: elements x element size.
    pub bytes: u64,
    /// Its `dnn` tensor commitment (`bytes_root` of its bytes), 0x-hex.
    pub commitment: String,
}

/// How exactly one float tensor became fixed point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rounding {
    /// The GGUF tensor (`blk.0.attn_q.weight`) or `rms_eps`.
    pub tensor: String,
    /// What was converted: `scales` (Q8_0), `scales and mins` (Q4_1), `gains` (norms),
    /// `epsilon`.
    pub what: String,
    /// Fraction bits chosen.
    pub exp: u32,
    /// Whether every value is exactly its fixed-point value.
    pub exact: bool,
    /// Largest `|fixed / 2^exp - v| / |v|` over the non-zero values.
    pub max_rel_error: f64,
}

/// The header (JSON section).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Architecture: `llama`.
    pub architecture: String,
    /// Configuration.
    pub config: LlamaConfig,
    /// Number format.
    pub format: NumberFormat,
    /// RMSNorm's epsilon with `2 * frac_bits` fraction bits.
    pub rms_eps_fixed: i64,
    /// Claim limits.
    pub limits: Limits,
    /// Tokenizer.
    pub tokenizer: TokenizerEntry,
    /// Provenance.
    pub source: Source,
    /// Tensors in file order.
    pub tensors: Vec<TensorEntry>,
    /// The conversion's rounding, per converted tensor.
    pub rounding: Vec<Rounding>,
    /// The model commitment, 0x-hex.
    pub model_commitment: String,
}

/// An LLM bundle in memory.
#[derive(Clone, Debug)]
pub struct LlmBundle {
    header: Header,
    config: LlamaConfig,
    format: IntFormat,
    tokenizer_json: Vec<u8>,
    weights: FixedWeights,
    model_commitment: Hash,
}

/// sha256 of a file, lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String, std::io::Error> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Commitment of a sequence of token ids: the `dnn` tensor commitment of the ids as an
/// i32 tensor `[n]` (`bytes_root` of their little-endian bytes). Used for a generation's
/// prompt (input) and generated tokens (output).
pub fn tokens_commitment(ids: &[u32]) -> Hash {
    let bytes: Vec<u8> = ids.iter().flat_map(|&t| (t as i32).to_le_bytes()).collect();
    bytes_root(&bytes)
}

/// A tensor to write: its table entry (commitment not yet set) and bytes.
struct Out {
    entry: TensorEntry,
    data: Vec<u8>,
}

fn out(name: String, dtype: TensorType, shape: Vec<usize>, exp: Option<u32>, data: Vec<u8>) -> Out {
    Out { entry: TensorEntry { name, dtype, shape, exp, bytes: data.len() as u64, commitment: String::new() }, data }
}

fn i32_bytes(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The tensors of `w` in file order (`docs/spec/llm-bundle.md` §Tensors).
fn tensors_of(c: &LlamaConfig, w: &FixedWeights) -> Vec<Out> {
    let mut v = Vec::new();
    let q8 = |v: &mut Vec<Out>, name: &str, m: &Q8_0Owned, n: usize, k: usize| {
        v.push(out(format!("{name}.qs"), TensorType::I8, vec![n, k], None, m.qs.iter().map(|&q| q as u8).collect()));
        v.push(out(format!("{name}.d"), TensorType::I32, vec![n, k / BLOCK_LEN], Some(m.exp), i32_bytes(&m.d)));
    };
    let matrix = |v: &mut Vec<Out>, name: &str, m: &IntMatrix| match m {
        IntMatrix::Q4_1 { w, n, k } => {
            v.push(out(format!("{name}.qs"), TensorType::U8, vec![*n, k / 2], None, w.qs.clone()));
            v.push(out(format!("{name}.d"), TensorType::I32, vec![*n, k / BLOCK_LEN], Some(w.exp), i32_bytes(&w.d)));
            v.push(out(format!("{name}.m"), TensorType::I32, vec![*n, k / BLOCK_LEN], Some(w.exp), i32_bytes(&w.m)));
        }
        IntMatrix::Q8_0 { w, n, k } => q8(v, name, w, *n, *k),
    };
    let norm = |v: &mut Vec<Out>, name: &str, g: &IntNorm| {
        v.push(out(name.to_string(), TensorType::I32, vec![g.gamma.len()], Some(g.exp), i32_bytes(&g.gamma)));
    };
    q8(&mut v, "token_embd.weight", &w.token_embd, c.vocab, c.hidden);
    for (i, l) in w.layers.iter().enumerate() {
        let n = |s: &str| format!("blk.{i}.{s}.weight");
        norm(&mut v, &n("attn_norm"), &l.attn_norm);
        matrix(&mut v, &n("attn_q"), &l.q);
        matrix(&mut v, &n("attn_k"), &l.k);
        matrix(&mut v, &n("attn_v"), &l.v);
        matrix(&mut v, &n("attn_output"), &l.o);
        norm(&mut v, &n("ffn_norm"), &l.ffn_norm);
        matrix(&mut v, &n("ffn_gate"), &l.gate);
        matrix(&mut v, &n("ffn_up"), &l.up);
        matrix(&mut v, &n("ffn_down"), &l.down);
    }
    norm(&mut v, "output_norm.weight", &w.output_norm);
    if let Some(m) = &w.output {
        matrix(&mut v, "output.weight", m);
    }
    let half = c.head_dim / 2;
    v.push(out("rope.cos".into(), TensorType::I32, vec![c.context, half], Some(30), i32_bytes(&w.cos)));
    v.push(out("rope.sin".into(), TensorType::I32, vec![c.context, half], Some(30), i32_bytes(&w.sin)));
    v
}

/// The committed header block (`docs/spec/llm-bundle.md` §Model commitment): every header
/// field that changes what the model computes or what a claim may be, little-endian.
fn config_block(h: &Header) -> Vec<u8> {
    let mut b = Vec::new();
    let u = |b: &mut Vec<u8>, v: u32| b.extend_from_slice(&v.to_le_bytes());
    let c = &h.config;
    u(&mut b, CONFIG_BLOCK_VERSION);
    for v in [c.layers, c.hidden, c.ffn, c.heads, c.kv_heads, c.head_dim, c.vocab, c.context] {
        u(&mut b, v as u32);
    }
    u(&mut b, c.rope_base.to_bits());
    u(&mut b, c.rms_eps.to_bits());
    u(&mut b, h.format.frac_bits);
    u(&mut b, h.format.act_bits);
    b.extend_from_slice(&h.rms_eps_fixed.to_le_bytes());
    u(&mut b, h.limits.max_prompt as u32);
    u(&mut b, h.limits.max_new as u32);
    let t = &h.tokenizer;
    u(&mut b, t.bos);
    u(&mut b, t.eos);
    u(&mut b, t.special.len() as u32);
    for &id in &t.special {
        u(&mut b, id);
    }
    b.extend_from_slice(&bytes_root(t.chat_template.as_bytes()));
    u(&mut b, h.tensors.len() as u32);
    for e in &h.tensors {
        u(&mut b, e.name.len() as u32);
        b.extend_from_slice(e.name.as_bytes());
        u(&mut b, e.dtype.code());
        u(&mut b, e.shape.len() as u32);
        for &d in &e.shape {
            u(&mut b, d as u32);
        }
        u(&mut b, e.exp.unwrap_or(NO_EXP));
        u(&mut b, e.bytes as u32);
    }
    b
}

/// The model commitment: `padded_root([bytes_root(config block), tokenizer commitment,
/// tensor commitments in file order...])`.
fn model_root(h: &Header, tokenizer: &Hash, tensors: &[Hash]) -> Hash {
    let mut leaves = Vec::with_capacity(2 + tensors.len());
    leaves.push(bytes_root(&config_block(h)));
    leaves.push(*tokenizer);
    leaves.extend_from_slice(tensors);
    padded_root(&leaves)
}

/// `|a - v| / |v|` and exactness over float values `v` and their fixed-point `a / 2^exp`.
fn rounding(tensor: &str, what: &str, exp: u32, pairs: impl Iterator<Item = (f64, i64)>) -> Rounding {
    let scale = 2f64.powi(-(exp as i32));
    let (mut exact, mut max_rel) = (true, 0f64);
    for (v, q) in pairs {
        // q * 2^-exp is exact in f64 (|q| <= 2^62 and a power-of-two scale), as is v.
        let a = q as f64 * scale;
        if a != v {
            exact = false;
            if v != 0.0 {
                max_rel = max_rel.max((a - v).abs() / v.abs());
            }
        }
    }
    Rounding { tensor: tensor.into(), what: what.into(), exp, exact, max_rel_error: max_rel }
}

fn f16v(h: u16) -> f64 {
    f64::from(f16::from_bits(h).to_f32())
}

/// The rounding report of converting `w` to `fw`.
fn rounding_report(c: &LlamaConfig, w: &LlamaWeights, fw: &FixedWeights, eps_frac: u32) -> Vec<Rounding> {
    let matrix = |name: &str, m: &Matrix, f: &IntMatrix| match (m, f) {
        (Matrix::Q4_1(b), IntMatrix::Q4_1 { w, .. }) => {
            let vals = b.blocks.iter().flat_map(|b| [f16v(b.d), f16v(b.m)]);
            let fixed = w.d.iter().zip(&w.m).flat_map(|(&d, &m)| [d as i64, m as i64]);
            rounding(name, "scales and mins", w.exp, vals.zip(fixed))
        }
        (Matrix::Q8_0(b), IntMatrix::Q8_0 { w, .. }) => {
            let vals = b.blocks.iter().map(|b| f16v(b.d));
            rounding(name, "scales", w.exp, vals.zip(w.d.iter().map(|&d| d as i64)))
        }
        _ => unreachable!("FixedWeights::convert keeps each matrix's block type"),
    };
    let norm = |name: &str, g: &[f32], f: &IntNorm| {
        rounding(name, "gains", f.exp, g.iter().map(|&v| f64::from(v)).zip(f.gamma.iter().map(|&q| q as i64)))
    };
    let mut r = Vec::new();
    let Matrix::Q8_0(e) = &w.token_embd else { unreachable!("converted, so Q8_0") };
    r.push(rounding(
        "token_embd.weight",
        "scales",
        fw.token_embd.exp,
        e.blocks.iter().map(|b| f16v(b.d)).zip(fw.token_embd.d.iter().map(|&d| d as i64)),
    ));
    for (i, (l, f)) in w.layers.iter().zip(&fw.layers).enumerate() {
        let n = |s: &str| format!("blk.{i}.{s}.weight");
        r.push(norm(&n("attn_norm"), &l.attn_norm, &f.attn_norm));
        r.push(matrix(&n("attn_q"), &l.attn_q, &f.q));
        r.push(matrix(&n("attn_k"), &l.attn_k, &f.k));
        r.push(matrix(&n("attn_v"), &l.attn_v, &f.v));
        r.push(matrix(&n("attn_output"), &l.attn_output, &f.o));
        r.push(norm(&n("ffn_norm"), &l.ffn_norm, &f.ffn_norm));
        r.push(matrix(&n("ffn_gate"), &l.ffn_gate, &f.gate));
        r.push(matrix(&n("ffn_up"), &l.ffn_up, &f.up));
        r.push(matrix(&n("ffn_down"), &l.ffn_down, &f.down));
    }
    r.push(norm("output_norm.weight", &w.output_norm, &fw.output_norm));
    if let (Some(m), Some(f)) = (&w.output, &fw.output) {
        r.push(matrix("output.weight", m, f));
    }
    r.push(rounding("rms_eps", "epsilon", eps_frac, std::iter::once((f64::from(c.rms_eps), fw.eps))));
    r
}

impl LlmBundle {
    /// Import a GGUF: read its weights and tokenizer, convert the scales once, commit.
    pub fn from_gguf<R: Read + std::io::Seek>(
        gguf: &mut LlamaGguf<R>,
        source: Source,
        limits: Limits,
        format: IntFormat,
    ) -> Result<Self, BundleError> {
        let config = gguf.config().clone();
        check_config(&config)?;
        limits.check(config.context)?;
        let vocab = gguf.vocab().map_err(BundleError::Tokenizer)?;
        let tok = LlamaTokenizer::new(&vocab).map_err(BundleError::Tokenizer)?;
        let chat_template = vocab.chat_template.clone().unwrap_or_default();
        let tokenizer_json = tok.to_json().map_err(BundleError::Tokenizer)?;
        let weights = gguf.load_weights().map_err(ForwardError::from)?;
        let fixed = FixedWeights::convert(&config, &weights, format)?;
        let rounding = rounding_report(&config, &weights, &fixed, 2 * format.frac_bits);
        drop(weights);
        let tokenizer = TokenizerEntry {
            bytes: tokenizer_json.len() as u64,
            commitment: hex32(&bytes_root(&tokenizer_json)),
            bos: vocab.bos,
            eos: vocab.eos,
            special: tok.special_ids(),
            chat_template,
        };
        let header = Header {
            architecture: crate::llama::ARCH.into(),
            config: config.clone(),
            format: format.into(),
            rms_eps_fixed: fixed.eps,
            limits,
            tokenizer,
            source,
            tensors: Vec::new(),
            rounding,
            model_commitment: String::new(),
        };
        Self::assemble(header, config, format, tokenizer_json, fixed)
    }

    /// Fill in the tensor table and the commitments of `header` from the weights.
    fn assemble(
        mut header: Header,
        config: LlamaConfig,
        format: IntFormat,
        tokenizer_json: Vec<u8>,
        weights: FixedWeights,
    ) -> Result<Self, BundleError> {
        let outs = tensors_of(&config, &weights);
        let roots: Vec<Hash> = outs.par_iter().map(|o| bytes_root(&o.data)).collect();
        header.tensors =
            outs.into_iter().zip(&roots).map(|(o, r)| TensorEntry { commitment: hex32(r), ..o.entry }).collect();
        let root = model_root(&header, &bytes_root(&tokenizer_json), &roots);
        header.model_commitment = hex32(&root);
        Ok(Self { header, config, format, tokenizer_json, weights, model_commitment: root })
    }

    /// The file's bytes (`docs/spec/llm-bundle.md`).
    pub fn to_bytes(&self) -> Result<Vec<u8>, BundleError> {
        let header = serde_json::to_vec(&self.header).map_err(|e| BundleError::Header(e.to_string()))?;
        let outs = tensors_of(&self.config, &self.weights);
        let total =
            PREAMBLE_LEN + header.len() + self.tokenizer_json.len() + outs.iter().map(|o| o.data.len()).sum::<usize>();
        let mut b = Vec::with_capacity(total);
        b.extend_from_slice(LLM_BUNDLE_MAGIC);
        b.extend_from_slice(&LLM_BUNDLE_VERSION.to_le_bytes());
        b.extend_from_slice(&(header.len() as u64).to_le_bytes());
        b.extend_from_slice(&header);
        b.extend_from_slice(&self.tokenizer_json);
        for o in outs {
            b.extend_from_slice(&o.data);
        }
        Ok(b)
    }

    /// Write the file.
    pub fn write(&self, path: &Path) -> Result<(), BundleError> {
        std::fs::write(path, self.to_bytes()?)?;
        Ok(())
    }

    /// Read and check a file.
    pub fn read(path: &Path) -> Result<Self, BundleError> {
        Self::from_bytes(&std::fs::read(path)?)
    }

    /// Whether `bytes` start with the bundle magic (a GGUF starts with `GGUF`).
    pub fn is_bundle(bytes: &[u8]) -> bool {
        bytes.starts_with(LLM_BUNDLE_MAGIC)
    }

    /// Decode and check: magic, version, every length, the header's fields, every tensor's
    /// name, type, shape and commitment, the tokenizer and the model commitment.
    pub fn from_bytes(b: &[u8]) -> Result<Self, BundleError> {
        if b.len() < LLM_BUNDLE_MAGIC.len() || !Self::is_bundle(b) {
            return Err(BundleError::Magic);
        }
        let mut r = Reader { b, pos: LLM_BUNDLE_MAGIC.len() };
        let version = u32::from_le_bytes(r.take("version", 4)?.try_into().expect("4 bytes"));
        if version != LLM_BUNDLE_VERSION {
            return Err(BundleError::Version { got: version });
        }
        let header_len = u64::from_le_bytes(r.take("header length", 8)?.try_into().expect("8 bytes"));
        if header_len > MAX_HEADER_LEN {
            return Err(field("header length", format!("{header_len} bytes is above the limit {MAX_HEADER_LEN}")));
        }
        let header: Header =
            serde_json::from_slice(r.take("header", header_len)?).map_err(|e| BundleError::Header(e.to_string()))?;
        if header.architecture != crate::llama::ARCH {
            return Err(field("architecture", format!("{:?}; this build reads \"llama\"", header.architecture)));
        }
        check_config(&header.config)?;
        let config = header.config.clone();
        let format = header.format.checked()?;
        header.limits.check(config.context).map_err(|e| match e {
            BundleError::Field { reason, .. } => field("limits", reason),
            other => other,
        })?;
        let tokenizer_json = r.take("tokenizer", header.tokenizer.bytes)?.to_vec();
        let tok_root = bytes_root(&tokenizer_json);
        check_root("tokenizer", &header.tokenizer.commitment, &tok_root)?;
        // Every tensor's bytes, then their commitments (in parallel), then their meaning.
        let mut slices = Vec::with_capacity(header.tensors.len());
        for e in &header.tensors {
            slices.push(r.take(&format!("tensor {}", e.name), e.bytes)?);
        }
        if r.pos != b.len() {
            return Err(BundleError::Trailing((b.len() - r.pos) as u64));
        }
        let roots: Vec<Hash> = slices.par_iter().map(|s| bytes_root(s)).collect();
        for (e, root) in header.tensors.iter().zip(&roots) {
            check_root(&format!("tensor {}", e.name), &e.commitment, root)?;
        }
        let weights = parse_weights(&config, &header, &slices)?;
        let root = model_root(&header, &tok_root, &roots);
        check_root("model", &header.model_commitment, &root)?;
        // The tokenizer must build and fit the vocabulary.
        let bundle = Self { header, config, format, tokenizer_json, weights, model_commitment: root };
        let tok = bundle.tokenizer()?;
        if tok.vocab_size() != bundle.config.vocab {
            return Err(field(
                "tokenizer",
                format!("{} tokens, the configuration has a vocabulary of {}", tok.vocab_size(), bundle.config.vocab),
            ));
        }
        Ok(bundle)
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The configuration.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// The number format.
    pub fn format(&self) -> IntFormat {
        self.format
    }

    /// The claim limits.
    pub fn limits(&self) -> Limits {
        self.header.limits
    }

    /// The model commitment.
    pub fn model_commitment(&self) -> Hash {
        self.model_commitment
    }

    /// The fixed-point weights.
    pub fn weights(&self) -> &FixedWeights {
        &self.weights
    }

    /// The tokenizer section (`tokenizers` JSON).
    pub fn tokenizer_json(&self) -> &[u8] {
        &self.tokenizer_json
    }

    /// Rebuild the tokenizer.
    pub fn tokenizer(&self) -> Result<LlamaTokenizer, BundleError> {
        let t = &self.header.tokenizer;
        LlamaTokenizer::from_json(&self.tokenizer_json, &t.chat_template, t.eos).map_err(BundleError::Tokenizer)
    }

    /// The integer model (no GGUF needed).
    pub fn into_model(self) -> Result<IntLlama, ForwardError> {
        IntLlama::from_fixed(&self.config, self.format, self.weights)
    }
}

fn check_root(what: &str, recorded: &str, computed: &Hash) -> Result<(), BundleError> {
    match parse_hex32(recorded) {
        Some(h) if &h == computed => Ok(()),
        _ => Err(BundleError::Commitment { what: what.into(), recorded: recorded.into(), computed: hex32(computed) }),
    }
}

/// A cursor over the file that names what it reads when the file ends early.
struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, what: &str, n: u64) -> Result<&'a [u8], BundleError> {
        let have = (self.b.len() - self.pos) as u64;
        if n > have {
            return Err(BundleError::Truncated { field: what.into(), need: n, have });
        }
        let s = &self.b[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }
}

/// Walks the tensor table in file order, checking each entry against what the
/// configuration implies.
struct Tensors<'a, 'h> {
    entries: &'h [TensorEntry],
    slices: &'h [&'a [u8]],
    next: usize,
}

impl Tensors<'_, '_> {
    fn peek(&self) -> Option<&TensorEntry> {
        self.entries.get(self.next)
    }

    /// The next tensor, which must be `name` of `dtype` and `shape`: its entry and bytes.
    fn take(&mut self, name: &str, dtype: TensorType, shape: &[usize]) -> Result<(&TensorEntry, &[u8]), BundleError> {
        let bad = |reason: String| BundleError::Tensor { name: name.into(), reason };
        let e = self.entries.get(self.next).ok_or_else(|| bad("is missing (the table ends before it)".into()))?;
        if e.name != name {
            return Err(bad(format!("expected here, the table has {:?}", e.name)));
        }
        if e.dtype != dtype {
            return Err(bad(format!("type {:?}, expected {dtype:?}", e.dtype)));
        }
        if e.shape != shape {
            return Err(bad(format!("shape {:?}, expected {shape:?}", e.shape)));
        }
        let want = shape.iter().product::<usize>() as u64 * dtype.size() as u64;
        if e.bytes != want {
            return Err(bad(format!("{} bytes, its shape needs {want}", e.bytes)));
        }
        let s = self.slices[self.next];
        self.next += 1;
        Ok((e, s))
    }

    fn exp(e: &TensorEntry, cap: u32) -> Result<u32, BundleError> {
        match e.exp {
            Some(x) if x <= cap => Ok(x),
            other => {
                Err(BundleError::Tensor { name: e.name.clone(), reason: format!("exp {other:?} is not in 0..={cap}") })
            }
        }
    }

    /// An i32 tensor of fixed-point values: exponent at most `cap`, every magnitude at
    /// most [`MANT_MAX`] (what the conversion produces and the kernels' headroom assumes).
    fn i32s(&mut self, name: &str, shape: &[usize], cap: u32) -> Result<(Vec<i32>, u32), BundleError> {
        let (e, s) = self.take(name, TensorType::I32, shape)?;
        let exp = Self::exp(e, cap)?;
        let v: Vec<i32> = s.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
        if let Some(i) = v.iter().position(|&x| i64::from(x).abs() > MANT_MAX) {
            return Err(BundleError::Tensor {
                name: name.into(),
                reason: format!("value {i} ({}) exceeds 2^30", v[i]),
            });
        }
        Ok((v, exp))
    }

    fn q8(&mut self, name: &str, n: usize, k: usize) -> Result<Q8_0Owned, BundleError> {
        let qs = self.take(&format!("{name}.qs"), TensorType::I8, &[n, k])?.1.iter().map(|&b| b as i8).collect();
        let (d, exp) = self.i32s(&format!("{name}.d"), &[n, k / BLOCK_LEN], F16_EXP_CAP)?;
        Ok(Q8_0Owned { qs, d, exp })
    }

    fn matrix(&mut self, name: &str, n: usize, k: usize) -> Result<IntMatrix, BundleError> {
        let qs_name = format!("{name}.qs");
        match self.peek().filter(|e| e.name == qs_name).map(|e| e.dtype) {
            Some(TensorType::U8) => {
                let qs = self.take(&qs_name, TensorType::U8, &[n, k / 2])?.1.to_vec();
                let (d, exp) = self.i32s(&format!("{name}.d"), &[n, k / BLOCK_LEN], F16_EXP_CAP)?;
                let (m, mexp) = self.i32s(&format!("{name}.m"), &[n, k / BLOCK_LEN], F16_EXP_CAP)?;
                if mexp != exp {
                    return Err(BundleError::Tensor {
                        name: format!("{name}.m"),
                        reason: format!("exp {mexp}, the scales' is {exp} (Q4_1 shares one)"),
                    });
                }
                Ok(IntMatrix::Q4_1 { w: Q4_1Owned { qs, d, m, exp }, n, k })
            }
            // Q8_0, or a table that is wrong here: `take` names what it expected.
            _ => Ok(IntMatrix::Q8_0 { w: self.q8(name, n, k)?, n, k }),
        }
    }

    fn norm(&mut self, name: &str, len: usize) -> Result<IntNorm, BundleError> {
        let (gamma, exp) = self.i32s(name, &[len], F32_EXP_CAP)?;
        Ok(IntNorm { gamma, exp })
    }
}

/// The weights from the table, in the order [`tensors_of`] writes them.
fn parse_weights(c: &LlamaConfig, h: &Header, slices: &[&[u8]]) -> Result<FixedWeights, BundleError> {
    let mut t = Tensors { entries: &h.tensors, slices, next: 0 };
    let (d, f, kv) = (c.hidden, c.ffn, c.kv_heads * c.head_dim);
    let token_embd = t.q8("token_embd.weight", c.vocab, d)?;
    let mut layers = Vec::with_capacity(c.layers);
    for i in 0..c.layers {
        let n = |s: &str| format!("blk.{i}.{s}.weight");
        layers.push(IntLayer {
            attn_norm: t.norm(&n("attn_norm"), d)?,
            q: t.matrix(&n("attn_q"), d, d)?,
            k: t.matrix(&n("attn_k"), kv, d)?,
            v: t.matrix(&n("attn_v"), kv, d)?,
            o: t.matrix(&n("attn_output"), d, d)?,
            ffn_norm: t.norm(&n("ffn_norm"), d)?,
            gate: t.matrix(&n("ffn_gate"), f, d)?,
            up: t.matrix(&n("ffn_up"), f, d)?,
            down: t.matrix(&n("ffn_down"), d, f)?,
        });
    }
    let output_norm = t.norm("output_norm.weight", d)?;
    let output = if t.peek().is_some_and(|e| e.name.starts_with("output.weight.")) {
        Some(t.matrix("output.weight", c.vocab, d)?)
    } else {
        None
    };
    let half = c.head_dim / 2;
    let (cos, ce) = t.i32s("rope.cos", &[c.context, half], 30)?;
    let (sin, se) = t.i32s("rope.sin", &[c.context, half], 30)?;
    if (ce, se) != (30, 30) {
        return Err(BundleError::Tensor { name: "rope.cos".into(), reason: "the RoPE tables are Q30 (exp 30)".into() });
    }
    if let Some(e) = t.peek() {
        return Err(BundleError::Tensor { name: e.name.clone(), reason: "is not part of the architecture".into() });
    }
    if h.rms_eps_fixed <= 0 {
        return Err(field("rms_eps_fixed", format!("{} is not positive", h.rms_eps_fixed)));
    }
    Ok(FixedWeights { token_embd, layers, output_norm, output, eps: h.rms_eps_fixed, cos, sin })
}
