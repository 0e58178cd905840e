//! The float reference: an f32 Llama forward over the GGUF's weights dequantized as ggml's
//! reference does ([`Matrix::dequantize`]), for evaluation only (`opml lm eval
//! --reference`, the accuracy tests). It shares nothing with the integer path
//! ([`crate::IntLlama`]) but the file reader: plain f32 RMSNorm, RoPE on adjacent pairs,
//! grouped-query causal attention with a softmax, SwiGLU, all written here.
//!
//! One call runs a whole sequence from an empty cache (a perplexity chunk), batched: each
//! linear multiplies all positions by each weight row in turn, rows in parallel (rayon).
//! Every output element is one sequential dot product, so the result does not depend on
//! the thread count.

use rayon::prelude::*;

use crate::llama::{LlamaConfig, LlamaWeights, Matrix};

/// A linear layer `[n, k]`, dequantized.
#[derive(Debug)]
struct Linear {
    w: Vec<f32>,
    n: usize,
    k: usize,
}

impl Linear {
    fn new(m: &Matrix) -> Self {
        let (n, k) = m.shape();
        Self { w: m.dequantize(), n, k }
    }

    /// `x [rows, k] -> [rows, n]`.
    fn apply(&self, x: &[f32]) -> Vec<f32> {
        matmul(x, &self.w, self.k, self.n)
    }
}

/// `x [rows, k]` times `w [n, k]` transposed: `[rows, n]`.
fn matmul(x: &[f32], w: &[f32], k: usize, n: usize) -> Vec<f32> {
    let rows = x.len() / k;
    // Column j of the result for every row; weight rows in parallel.
    let cols: Vec<Vec<f32>> = w.par_chunks_exact(k).map(|wj| x.chunks_exact(k).map(|r| dot(r, wj)).collect()).collect();
    let mut out = vec![0f32; rows * n];
    for (j, c) in cols.iter().enumerate() {
        for (r, &v) in c.iter().enumerate() {
            out[r * n + j] = v;
        }
    }
    out
}

/// Dot product with eight partial sums (so that it vectorises), then their sum.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[derive(Debug)]
struct Layer {
    attn_norm: Vec<f32>,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ffn_norm: Vec<f32>,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// A Llama model in f32.
#[derive(Debug)]
pub struct FloatLlama {
    config: LlamaConfig,
    embd: Vec<f32>,
    layers: Vec<Layer>,
    output_norm: Vec<f32>,
    output: Option<Linear>,
}

impl FloatLlama {
    /// Dequantize every weight (f32, about 4 bytes per parameter).
    pub fn from_weights(config: &LlamaConfig, w: &LlamaWeights) -> Self {
        let layers = w
            .layers
            .par_iter()
            .map(|l| Layer {
                attn_norm: l.attn_norm.clone(),
                q: Linear::new(&l.attn_q),
                k: Linear::new(&l.attn_k),
                v: Linear::new(&l.attn_v),
                o: Linear::new(&l.attn_output),
                ffn_norm: l.ffn_norm.clone(),
                gate: Linear::new(&l.ffn_gate),
                up: Linear::new(&l.ffn_up),
                down: Linear::new(&l.ffn_down),
            })
            .collect();
        Self {
            config: config.clone(),
            embd: w.token_embd.dequantize(),
            layers,
            output_norm: w.output_norm.clone(),
            output: w.output.as_ref().map(Linear::new),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// Logits `[ids.len(), vocab]` of `ids` at positions `0..`, from an empty cache.
    ///
    /// # Panics
    /// If an id is outside the vocabulary or the sequence is longer than the context.
    pub fn forward(&self, ids: &[u32]) -> Vec<f32> {
        let c = &self.config;
        let (d, seq) = (c.hidden, ids.len());
        assert!(seq <= c.context, "{seq} positions exceed the context length {}", c.context);
        let mut x: Vec<f32> = ids
            .iter()
            .flat_map(|&t| {
                assert!((t as usize) < c.vocab, "token id {t} is outside the vocabulary");
                self.embd[t as usize * d..(t as usize + 1) * d].iter().copied()
            })
            .collect();
        let (cos, sin) = rope_tables(seq, c.head_dim, c.rope_base);
        for l in &self.layers {
            let h = rms_norm(&x, &l.attn_norm, c.rms_eps);
            let (mut q, mut k) = (l.q.apply(&h), l.k.apply(&h));
            rope(&mut q, c.heads, c.head_dim, &cos, &sin);
            rope(&mut k, c.kv_heads, c.head_dim, &cos, &sin);
            let a = attention(&q, &k, &l.v.apply(&h), c);
            x.iter_mut().zip(l.o.apply(&a)).for_each(|(x, o)| *x += o);
            let h2 = rms_norm(&x, &l.ffn_norm, c.rms_eps);
            let (g, u) = (l.gate.apply(&h2), l.up.apply(&h2));
            let act: Vec<f32> = g.iter().zip(&u).map(|(&g, &u)| g / (1.0 + (-g).exp()) * u).collect();
            x.iter_mut().zip(l.down.apply(&act)).for_each(|(x, o)| *x += o);
        }
        let h = rms_norm(&x, &self.output_norm, c.rms_eps);
        match &self.output {
            Some(o) => o.apply(&h),
            None => matmul(&h, &self.embd, d, c.vocab),
        }
    }
}

/// `x / sqrt(mean(x^2) + eps) * g`, per row of `g.len()`.
fn rms_norm(x: &[f32], g: &[f32], eps: f32) -> Vec<f32> {
    x.chunks_exact(g.len())
        .flat_map(|r| {
            let ms = r.iter().map(|v| v * v).sum::<f32>() / g.len() as f32;
            let inv = 1.0 / (ms + eps).sqrt();
            r.iter().zip(g).map(move |(v, g)| v * inv * g)
        })
        .collect()
}

/// `cos, sin [seq, head_dim / 2]` of `p * base^(-2i / head_dim)` (angles in f64).
fn rope_tables(seq: usize, head_dim: usize, base: f32) -> (Vec<f32>, Vec<f32>) {
    let half = head_dim / 2;
    let mut cos = Vec::with_capacity(seq * half);
    let mut sin = Vec::with_capacity(seq * half);
    for p in 0..seq {
        for i in 0..half {
            let a = p as f64 * f64::from(base).powf(-((2 * i) as f64) / head_dim as f64);
            cos.push(a.cos() as f32);
            sin.push(a.sin() as f32);
        }
    }
    (cos, sin)
}

/// Rotate adjacent pairs `(2i, 2i+1)` of every head of `x [seq, heads, head_dim]`.
fn rope(x: &mut [f32], heads: usize, head_dim: usize, cos: &[f32], sin: &[f32]) {
    let half = head_dim / 2;
    for (i, h) in x.chunks_exact_mut(head_dim).enumerate() {
        let p = i / heads;
        for j in 0..half {
            let (c, s) = (cos[p * half + j], sin[p * half + j]);
            let (x0, x1) = (h[2 * j], h[2 * j + 1]);
            h[2 * j] = x0 * c - x1 * s;
            h[2 * j + 1] = x0 * s + x1 * c;
        }
    }
}

/// Causal grouped-query attention: query head `h` reads KV head `h / (heads / kv_heads)`.
fn attention(q: &[f32], k: &[f32], v: &[f32], c: &LlamaConfig) -> Vec<f32> {
    let (hd, heads, kvh) = (c.head_dim, c.heads, c.kv_heads);
    let group = heads / kvh;
    let scale = 1.0 / (hd as f32).sqrt();
    let mut out = vec![0f32; q.len()];
    out.par_chunks_exact_mut(heads * hd).enumerate().for_each(|(s, row)| {
        let mut w = vec![0f32; s + 1];
        for h in 0..heads {
            let qi = &q[(s * heads + h) * hd..][..hd];
            let at = |t: usize| (t * kvh + h / group) * hd;
            for (t, wt) in w.iter_mut().enumerate() {
                *wt = dot(qi, &k[at(t)..at(t) + hd]) * scale;
            }
            let m = w.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut z = 0f32;
            for wt in w.iter_mut() {
                *wt = (*wt - m).exp();
                z += *wt;
            }
            let o = &mut row[h * hd..(h + 1) * hd];
            for (t, &wt) in w.iter().enumerate() {
                let p = wt / z;
                o.iter_mut().zip(&v[at(t)..at(t) + hd]).for_each(|(o, &v)| *o += p * v);
            }
        }
    });
    out
}

/// Natural-log probabilities of a row of logits (f64 throughout: evaluation, not
/// inference): `log_softmax(row)[target]`.
pub fn log_prob(row: impl Iterator<Item = f64> + Clone, target: usize) -> f64 {
    let m = row.clone().fold(f64::NEG_INFINITY, f64::max);
    let z: f64 = row.clone().map(|v| (v - m).exp()).sum();
    let t = row.clone().nth(target).expect("target inside the row");
    t - m - z.ln()
}

/// Index of the largest value (the lowest index on a tie).
pub fn argmax_by<T: PartialOrd + Copy>(row: &[T]) -> usize {
    (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_multiplies_by_the_transpose() {
        // x = [[1, 2], [3, 4]], w = [[1, 0], [1, 1], [0, 2]] -> x w^T = [[1, 3, 4], [3, 7, 8]].
        let out = matmul(&[1.0, 2.0, 3.0, 4.0], &[1.0, 0.0, 1.0, 1.0, 0.0, 2.0], 2, 3);
        assert_eq!(out, vec![1.0, 3.0, 4.0, 3.0, 7.0, 8.0]);
    }

    #[test]
    fn dot_sums_every_product_including_the_tail() {
        let a: Vec<f32> = (1..=11).map(|v| v as f32).collect();
        // 1^2 + ... + 11^2 = 11 * 12 * 23 / 6 = 506.
        assert_eq!(dot(&a, &a), 506.0);
    }

    #[test]
    fn log_prob_of_equal_logits_is_minus_log_n() {
        let lp = log_prob([3.0f64; 4].into_iter(), 2);
        assert!((lp + 4f64.ln()).abs() < 1e-12);
        assert_eq!(argmax_by(&[1, 5, 5, 2]), 1);
    }
}
