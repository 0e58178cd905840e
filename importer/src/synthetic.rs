//! A small Llama with deterministic random weights, for tests that must run without a model
//! file (the integer forward, its step graph, the step's nodes in the VM). The weights are
//! of realistic scale (Q4_1 blocks `d * (q - 8)` with `d` in `[0.02, 0.06)`, norm gains in
//! `[0.5, 1.5)`), so activations spread over the fixed-point range instead of collapsing
//! to zeros or saturating; every value comes from one seed.

use crate::int_llama::ForwardError;
use crate::llama::{LayerWeights, LlamaConfig, LlamaWeights, Matrix};
use crate::quant::{BlockMatrix, BlockQ4_1, BlockQ8_0, BLOCK_LEN};

/// Two layers, hidden 64, 4 query heads over 2 KV heads of 16 (grouped-query attention),
/// FFN 96, vocabulary 80, context 24, RoPE base 10000, epsilon 1e-5.
pub fn small_config() -> LlamaConfig {
    LlamaConfig {
        layers: 2,
        hidden: 64,
        ffn: 96,
        heads: 4,
        kv_heads: 2,
        head_dim: 16,
        rope_base: 10_000.0,
        rms_eps: 1e-5,
        vocab: 80,
        context: 24,
    }
}

/// Random weights for `c` from `seed`: Q8_0 embedding; Q4_1 linears except the value
/// projection of every odd layer, which is Q8_0 (so both linear formats occur inside the
/// layers); with `untied` an output matrix of its own (Q4_1), else the output is tied to
/// the embedding. Every matrix width must be a multiple of 32.
pub fn random_weights(c: &LlamaConfig, seed: u64, untied: bool) -> Result<LlamaWeights, ForwardError> {
    let (d, f, q, kv) = (c.hidden, c.ffn, c.heads * c.head_dim, c.kv_heads * c.head_dim);
    if [d, f, q].iter().any(|w| !w.is_multiple_of(BLOCK_LEN)) {
        return Err(ForwardError::Unsupported(format!("widths {d}, {f}, {q} must be multiples of {BLOCK_LEN}")));
    }
    let mut r = SplitMix(seed);
    let layers = (0..c.layers)
        .map(|i| LayerWeights {
            attn_norm: r.norm(d),
            attn_q: r.q4_1(q, d),
            attn_k: r.q4_1(kv, d),
            attn_v: if i % 2 == 1 { r.q8_0(kv, d, 0.002, 0.01) } else { r.q4_1(kv, d) },
            attn_output: r.q4_1(d, q),
            ffn_norm: r.norm(d),
            ffn_gate: r.q4_1(f, d),
            ffn_up: r.q4_1(f, d),
            ffn_down: r.q4_1(d, f),
        })
        .collect();
    Ok(LlamaWeights {
        token_embd: r.q8_0(c.vocab, d, 0.005, 0.02),
        layers,
        output_norm: r.norm(d),
        output: untied.then(|| r.q4_1(c.vocab, d)),
    })
}

/// SplitMix64 (Steele, Lea, Flood 2014): small, deterministic on every platform.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)` (24 random bits).
    fn f32(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }

    fn f16(&mut self, lo: f32, hi: f32) -> u16 {
        half::f16::from_f32(self.f32(lo, hi)).to_bits()
    }

    fn norm(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f32(0.5, 1.5)).collect()
    }

    /// Q4_1 `[rows, cols]`: block weights `d * (q - 8)`, `d` in `[0.02, 0.06)`.
    fn q4_1(&mut self, rows: usize, cols: usize) -> Matrix {
        let blocks = (0..rows * cols / BLOCK_LEN)
            .map(|_| {
                let d = self.f32(0.02, 0.06);
                let qs = std::array::from_fn(|_| self.next() as u8);
                BlockQ4_1 { d: half::f16::from_f32(d).to_bits(), m: half::f16::from_f32(-8.0 * d).to_bits(), qs }
            })
            .collect();
        Matrix::Q4_1(BlockMatrix { rows, cols, blocks })
    }

    /// Q8_0 `[rows, cols]` with `d` in `[lo, hi)`.
    fn q8_0(&mut self, rows: usize, cols: usize, lo: f32, hi: f32) -> Matrix {
        let blocks = (0..rows * cols / BLOCK_LEN)
            .map(|_| BlockQ8_0 { d: self.f16(lo, hi), qs: std::array::from_fn(|_| self.next() as i8) })
            .collect();
        Matrix::Q8_0(BlockMatrix { rows, cols, blocks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_follow_the_seed_and_the_shapes_of_the_config() {
        let c = small_config();
        let w = random_weights(&c, 5, false).unwrap();
        assert_eq!(w, random_weights(&c, 5, false).unwrap());
        assert_ne!(w, random_weights(&c, 6, false).unwrap());
        assert_eq!(w.token_embd.shape(), (c.vocab, c.hidden));
        assert_eq!(w.layers.len(), c.layers);
        assert_eq!(w.layers[0].attn_k.shape(), (c.kv_heads * c.head_dim, c.hidden));
        assert_eq!(w.layers[1].ffn_down.shape(), (c.hidden, c.ffn));
        assert!(matches!(w.layers[1].attn_v, Matrix::Q8_0(_)) && matches!(w.layers[0].attn_v, Matrix::Q4_1(_)));
        assert!(w.output.is_none());
        assert_eq!(random_weights(&c, 5, true).unwrap().output.map(|m| m.shape()), Some((c.vocab, c.hidden)));
        let odd = LlamaConfig { ffn: 100, ..c };
        assert!(matches!(random_weights(&odd, 5, false), Err(ForwardError::Unsupported(_))));
    }
}
