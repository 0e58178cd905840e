//! opml-importer: reads an already-quantized language model as llama.cpp users run it (GGUF)
//! into plain data: its configuration ([`LlamaConfig`]), its weights typed as shipped
//! ([`BlockQ4_1`] and [`BlockQ8_0`] blocks with their f16 scale bits, F32 norm vectors) and
//! its tokenizer ([`LlamaTokenizer`], a `tokenizers` byte-level BPE with the file's chat
//! template). The integer graph is built from this elsewhere; floats appear here only in
//! [`Matrix::dequantize`], for the float reference.
//!
//! [`IntLlama`] runs the model in integers; [`LlmBundle`] stores its converted weights with the
//! tokenizer, claim limits and commitments in one checked file (`docs/spec/llm-bundle.md`),
//! so no GGUF is needed after the import; [`float_llama::FloatLlama`] is the f32 float
//! reference for evaluation.
//!
//! [`GenerationGraph`] unrolls a whole greedy generation into one `dnn` graph, so that a
//! claim over a generation is disputed node by node (`docs/spec/llm-generation.md`).
//!
//! [`synthetic`] generates a Llama's weights from a seed instead (LLaMA-2-7B's shapes for
//! scale measurements, a tiny model for tests).
//!
//! Specification: `docs/spec/gguf-import.md`.
//!
//! # The GGUF reader
//!
//! The container is parsed by `gguf-rs-lib` (ThreatFlux; MIT). Of the registry's GGUF readers
//! it is the one maintained now (releases through 2026, a changelog, declared MSRV 1.87 under
//! our 1.89) whose parser is defensive rather than trusting: bounded metadata sizes and
//! nesting, duplicate keys and tensor names rejected, every tensor's offset checked for
//! alignment and its byte range checked against the file size, with checked arithmetic, before
//! any payload is read. It reads metadata and the tensor table without loading payloads, and
//! loads one tensor's bytes by name. Its dependencies (serde, thiserror, hashbrown, libm) were
//! already in this workspace. Alternatives looked at: `ggus` (zero-copy, but last released in
//! 2025 and trusts offsets); `gguf` and `gguf-rs` (small, unmaintained, and pull in a CLI's
//! dependencies); candle-core's `quantized::gguf_file` (maintained, but brings a whole tensor
//! library for a file reader). Only [`gguf`] touches the crate; the rest of this crate and its
//! users see [`TensorDesc`], [`TensorKind`] and the typed blocks.
//!
//! # The tokenizer
//!
//! `tokenizers` (Hugging Face), default features off, `fancy-regex` for its regex (no C
//! library, no network): the BPE model from `tokenizer.ggml.tokens` and
//! `tokenizer.ggml.merges`, the pre-tokenizer llama.cpp uses for `tokenizer.ggml.pre`, the
//! byte-level decoder, control tokens as special tokens. See [`tokenizer`].

pub mod bundle;
pub mod error;
pub mod float_llama;
pub mod generation;
pub mod gguf;
pub mod graph;
pub mod int_llama;
pub mod llama;
pub mod quant;
pub mod synthetic;
pub mod tokenizer;

pub use bundle::{tokens_commitment, BundleError, Limits, LlmBundle, Source};
pub use error::{ImportError, Result};
pub use generation::{GenStep, GenerationGraph};
pub use gguf::{GgufFile, TensorDesc, TensorKind};
pub use graph::{LayerSlots, StepGraph, StepSlots};
pub use int_llama::{
    ActBits, FixedWeights, ForwardError, Generation, IntFormat, IntLayer, IntLlama, IntMatrix, IntNorm, KvCache,
};
pub use llama::{LayerWeights, LlamaConfig, LlamaGguf, LlamaWeights, Matrix};
pub use quant::{BlockMatrix, BlockQ4_1, BlockQ8_0, BLOCK_LEN};
pub use synthetic::SyntheticLlama;
pub use tokenizer::{ChatTemplate, LlamaTokenizer, Vocab};
