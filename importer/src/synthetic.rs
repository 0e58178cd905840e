//! A Llama with deterministic pseudo-random weights, generated on the fly from a seed and
//! never stored: LLaMA-2-7B's shapes for scale measurements ([`LlamaConfig::llama2_7b`]),
//! a tiny model for tests ([`LlamaConfig::tiny`]). Linears are Q4_1, the embedding and the
//! (untied) output Q8_0, the norm gains F32, as in a llama.cpp `Q4_1` file.
//!
//! Every 64-bit word of a tensor is a counter-based hash of (seed, tensor index, counter)
//! (splitmix64's finaliser applied to the seed and tensor index, then with the counter), so
//! any block of any tensor is computed alone, in any order and on any thread, and the same
//! seed gives the same bytes everywhere. Tensors are numbered by their position in
//! [`LlamaConfig::expected_tensors`] with an untied output (embedding 0, then nine per
//! layer, the output norm, the output).
//!
//! Magnitudes follow a trained model's: every matrix element has mean about 0 and standard
//! deviation about `1 / sqrt(k)` (`k` the input width; the embedding uses the hidden
//! width), so each linear keeps a normalised input's scale, and the norm gains lie in
//! `[0.8, 1.2)`. Each block's scale is the target scale times a jitter in `[0.75, 1.25)`.

use half::f16;
use rayon::prelude::*;

use crate::int_llama::{ForwardError, IntFormat, IntLlama};
use crate::llama::{LayerWeights, LlamaConfig, LlamaWeights, Matrix};
use crate::quant::{BlockMatrix, BlockQ4_1, BlockQ8_0, BLOCK_LEN};

impl LlamaConfig {
    /// LLaMA-2-7B's shapes: 32 layers, hidden 4096, FFN 11008, 32 query and 32 KV heads
    /// of 128, vocabulary 32000, RoPE base 10000, RMSNorm epsilon 1e-5, context 4096.
    pub fn llama2_7b() -> Self {
        Self {
            layers: 32,
            hidden: 4096,
            ffn: 11008,
            heads: 32,
            kv_heads: 32,
            head_dim: 128,
            rope_base: 10_000.0,
            rms_eps: 1e-5,
            vocab: 32_000,
            context: 4096,
        }
    }

    /// A tiny Llama for tests: 2 layers, hidden 64, FFN 96, 4 query heads and 2 KV heads
    /// of 16, vocabulary 256, context 128, LLaMA-2's RoPE base and epsilon.
    pub fn tiny() -> Self {
        Self {
            layers: 2,
            hidden: 64,
            ffn: 96,
            heads: 4,
            kv_heads: 2,
            head_dim: 16,
            rope_base: 10_000.0,
            rms_eps: 1e-5,
            vocab: 256,
            context: 128,
        }
    }

    /// Number of weights with an untied output (LLaMA-2-7B: 6,738,415,616).
    pub fn parameter_count(&self) -> u64 {
        self.expected_tensors(false).iter().map(|t| t.dims.iter().product::<u64>()).sum()
    }
}

/// Tensors per transformer block in [`LlamaConfig::expected_tensors`] order.
const PER_LAYER: u64 = 9;

/// Standard deviation of the Q4_1 values `q` uniform in `0..16`: `sqrt((16^2 - 1) / 12)`.
const Q4_STD: f32 = 4.609_772;
/// Standard deviation of the Q8_0 values `q` uniform in `-127..=127`: `sqrt((255^2 - 1) / 12)`.
const Q8_STD: f32 = 73.610_46;

/// splitmix64's finaliser (Steele, Lea, Flood 2014): a bijection of `u64` with full
/// avalanche.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The word `counter` of the tensor whose key ([`SyntheticLlama::key`]) is `key`.
fn mix(key: u64, counter: u64) -> u64 {
    splitmix64(key ^ splitmix64(counter))
}

/// A uniform value in `[0, 1)` from the top 24 bits of `w`.
fn unit(w: u64) -> f32 {
    (w >> 40) as f32 / (1u64 << 24) as f32
}

/// A scale jitter in `[0.75, 1.25)` from `w`.
fn jitter(w: u64) -> f32 {
    0.75 + 0.5 * unit(w)
}

/// Deterministic pseudo-random Llama weights: `config` and `seed` fix every byte.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticLlama {
    /// The shapes.
    pub config: LlamaConfig,
    /// The seed.
    pub seed: u64,
}

impl SyntheticLlama {
    /// The model of `config` under `seed`.
    pub fn new(config: LlamaConfig, seed: u64) -> Self {
        Self { config, seed }
    }

    /// The hash key of tensor `index` (its position in `expected_tensors(false)`).
    fn key(&self, index: u64) -> u64 {
        splitmix64(self.seed ^ splitmix64(index.wrapping_mul(0xd6e8_feb8_6659_fd93)))
    }

    /// A Q4_1 matrix of `rows x cols`: per block, word `3b` gives the scale's jitter and the
    /// minimum's offset, words `3b + 1` and `3b + 2` the 32 nibbles.
    fn q4_1(&self, index: u64, rows: usize, cols: usize) -> Matrix {
        let key = self.key(index);
        let sigma = 1.0 / (cols as f32).sqrt();
        let blocks = (0..(rows * cols / BLOCK_LEN) as u64)
            .into_par_iter()
            .map(|b| {
                let w0 = mix(key, 3 * b);
                let d = sigma / Q4_STD * jitter(w0);
                // The zero point: 7.5 (mean 0) moved by up to half a step either way.
                let centre = 7.0 + unit(w0 << 24);
                let nibbles = [mix(key, 3 * b + 1), mix(key, 3 * b + 2)];
                let q: [u8; BLOCK_LEN] = std::array::from_fn(|i| ((nibbles[i / 16] >> (4 * (i % 16))) & 15) as u8);
                BlockQ4_1::from_values(f16::from_f32(d).to_bits(), f16::from_f32(-centre * d).to_bits(), &q)
            })
            .collect();
        Matrix::Q4_1(BlockMatrix { rows, cols, blocks })
    }

    /// A Q8_0 matrix of `rows x cols` whose elements have standard deviation about
    /// `1 / sqrt(width)`: per block, word `5b` gives the scale's jitter, words `5b + 1..=5b + 4`
    /// the 32 values (each byte mod 255, minus 127).
    fn q8_0(&self, index: u64, rows: usize, cols: usize, width: usize) -> Matrix {
        let key = self.key(index);
        let sigma = 1.0 / (width as f32).sqrt();
        let blocks = (0..(rows * cols / BLOCK_LEN) as u64)
            .into_par_iter()
            .map(|b| {
                let d = sigma / Q8_STD * jitter(mix(key, 5 * b));
                let words: [u64; 4] = std::array::from_fn(|j| mix(key, 5 * b + 1 + j as u64));
                let qs = std::array::from_fn(|i| (((words[i / 8] >> (8 * (i % 8))) as u8 % 255) as i16 - 127) as i8);
                BlockQ8_0 { d: f16::from_f32(d).to_bits(), qs }
            })
            .collect();
        Matrix::Q8_0(BlockMatrix { rows, cols, blocks })
    }

    /// A norm gain vector: `len` values in `[0.8, 1.2)`, one word each.
    fn norm(&self, index: u64, len: usize) -> Vec<f32> {
        let key = self.key(index);
        (0..len as u64).map(|i| 0.8 + 0.4 * unit(mix(key, i))).collect()
    }

    /// Transformer block `i` (panics when `i` is not below `config.layers`).
    pub fn layer(&self, i: usize) -> LayerWeights {
        let c = &self.config;
        assert!(i < c.layers, "layer {i} of a {}-layer model", c.layers);
        let (d, f, q, kv) = (c.hidden, c.ffn, c.heads * c.head_dim, c.kv_heads * c.head_dim);
        let t = 1 + PER_LAYER * i as u64;
        LayerWeights {
            attn_norm: self.norm(t, d),
            attn_q: self.q4_1(t + 1, q, d),
            attn_k: self.q4_1(t + 2, kv, d),
            attn_v: self.q4_1(t + 3, kv, d),
            attn_output: self.q4_1(t + 4, d, q),
            ffn_norm: self.norm(t + 5, d),
            ffn_gate: self.q4_1(t + 6, f, d),
            ffn_up: self.q4_1(t + 7, f, d),
            ffn_down: self.q4_1(t + 8, d, f),
        }
    }

    /// Everything but the blocks (`layers` empty): the embedding, the output norm and the
    /// output projection.
    pub fn head(&self) -> LlamaWeights {
        let c = &self.config;
        let last = 1 + PER_LAYER * c.layers as u64;
        LlamaWeights {
            token_embd: self.q8_0(0, c.vocab, c.hidden, c.hidden),
            layers: Vec::new(),
            output_norm: self.norm(last, c.hidden),
            output: Some(self.q8_0(last + 1, c.vocab, c.hidden, c.hidden)),
        }
    }

    /// All the weights at once (small models; a 7B model's typed weights are about 4 GB).
    pub fn weights(&self) -> LlamaWeights {
        LlamaWeights { layers: (0..self.config.layers).map(|i| self.layer(i)).collect(), ..self.head() }
    }

    /// The integer model, generated and converted block by block
    /// ([`IntLlama::from_layers`]): only one block's typed weights exist at a time.
    pub fn int_llama(&self, format: IntFormat) -> Result<IntLlama, ForwardError> {
        let head = self.head();
        IntLlama::from_layers(&self.config, &head, (0..self.config.layers).map(|i| Ok(self.layer(i))), format)
    }
}

/// Random weights for tests of the integer forward, its step graph and the step's nodes in
/// the VM: [`SyntheticLlama`]'s weights, except that the value projection of every odd layer
/// is Q8_0 (so both linear formats occur inside the layers); with `untied` the output has a
/// matrix of its own, else it is tied to the embedding. Every matrix width must be a
/// multiple of 32.
pub fn random_weights(c: &LlamaConfig, seed: u64, untied: bool) -> Result<LlamaWeights, ForwardError> {
    let (d, f, q, kv) = (c.hidden, c.ffn, c.heads * c.head_dim, c.kv_heads * c.head_dim);
    if [d, f, q, kv].iter().any(|w| !w.is_multiple_of(BLOCK_LEN)) {
        return Err(ForwardError::Unsupported(format!("widths {d}, {f}, {q}, {kv} must be multiples of {BLOCK_LEN}")));
    }
    let s = SyntheticLlama::new(c.clone(), seed);
    let mut w = s.weights();
    for (i, l) in w.layers.iter_mut().enumerate().filter(|(i, _)| i % 2 == 1) {
        l.attn_v = s.q8_0(1 + PER_LAYER * i as u64 + 3, kv, d, d);
    }
    if !untied {
        w.output = None;
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_weights_follow_the_seed_and_the_shapes_of_the_config() {
        let c = LlamaConfig::tiny();
        let w = random_weights(&c, 5, false).unwrap();
        assert_eq!(w, random_weights(&c, 5, false).unwrap());
        assert_ne!(w, random_weights(&c, 6, false).unwrap());
        assert_eq!(w.token_embd.shape(), (c.vocab, c.hidden));
        assert_eq!(w.layers.len(), c.layers);
        assert_eq!(w.layers[0].attn_k.shape(), (c.kv_heads * c.head_dim, c.hidden));
        assert_eq!(w.layers[1].ffn_down.shape(), (c.hidden, c.ffn));
        assert!(matches!(w.layers[1].attn_v, Matrix::Q8_0(_)) && matches!(w.layers[0].attn_v, Matrix::Q4_1(_)));
        assert_eq!(w.layers[1].attn_v.shape(), (c.kv_heads * c.head_dim, c.hidden));
        assert!(w.output.is_none());
        assert_eq!(random_weights(&c, 5, true).unwrap().output.map(|m| m.shape()), Some((c.vocab, c.hidden)));
        let odd = LlamaConfig { ffn: 100, ..c };
        assert!(matches!(random_weights(&odd, 5, false), Err(ForwardError::Unsupported(_))));
    }

    #[test]
    fn splitmix64_matches_its_reference_outputs() {
        // The first outputs of Vigna's splitmix64.c seeded with 0: the generator adds the
        // golden gamma to its state before finalising, which is what splitmix64(n * gamma)
        // does here.
        let gamma = 0x9e37_79b9_7f4a_7c15u64;
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
        assert_eq!(splitmix64(gamma), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(splitmix64(gamma.wrapping_mul(2)), 0x06c4_5d18_8009_454f);
    }

    #[test]
    fn llama2_7b_has_its_published_parameter_count() {
        // LLaMA-2-7B: 6,738,415,616 parameters (untied 32000 x 4096 embedding and output).
        assert_eq!(LlamaConfig::llama2_7b().parameter_count(), 6_738_415_616);
    }
}
