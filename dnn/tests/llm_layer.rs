//! One SmolLM2-sized decoder layer (hidden 576, 9 query / 3 KV heads of 64, SwiGLU 1536)
//! run with the integer ops of `dnn::ops::llm` and in f64 on the same real weights
//! (no activation quantization), so the error the integer semantics adds to a whole
//! layer is measured, not only per op. Weights are random Q4_1 blocks of realistic scale.

use opml_dnn::ops::dims::RowDims;
use opml_dnn::ops::elementwise::add_i32;
use opml_dnn::ops::llm::attention::{attention, AttnDims};
use opml_dnn::ops::llm::blockq::{Q4_1Owned, QK};
use opml_dnn::ops::llm::qlinear::{linear_q4_1, ActBits, BlockDims};
use opml_dnn::ops::llm::rmsnorm::{rmsnorm_wide, RmsParams};
use opml_dnn::ops::llm::rope::{rope, rope_tables, RopeDims};
use opml_dnn::ops::llm::silu::swiglu;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const HIDDEN: usize = 576;
const FFN: usize = 1536;
const HEADS: usize = 9;
const KV_HEADS: usize = 3;
const HEAD_DIM: usize = 64;
const SEQ: usize = 12;
/// Stream fraction bits.
const F: u32 = 16;
const ROPE_BASE: f64 = 100_000.0;

struct Linear {
    w: Q4_1Owned,
    n: usize,
    k: usize,
}

impl Linear {
    fn random(rng: &mut ChaCha8Rng, n: usize, k: usize) -> Self {
        let blocks = n * k / QK;
        // d about 0.002..0.01 at exponent 24; m about -8 d (weights centred on 0).
        let d: Vec<i32> = (0..blocks).map(|_| rng.gen_range(33_000..170_000)).collect();
        let m = d.iter().map(|&d| -d * rng.gen_range(70..90) / 10).collect();
        Linear { w: Q4_1Owned { qs: (0..n * k / 2).map(|_| rng.gen()).collect(), d, m, exp: 24 }, n, k }
    }

    fn real(&self, c: usize, j: usize) -> f64 {
        let blk = (c * self.k + j) / QK;
        let byte = self.w.qs[blk * 16 + (j % QK) % 16];
        let q = if j % QK < 16 { byte & 15 } else { byte >> 4 };
        (self.w.d[blk] as f64 * q as f64 + self.w.m[blk] as f64) / 2f64.powi(24)
    }

    fn int(&self, x: &[i32], bits: ActBits) -> Vec<i32> {
        linear_q4_1(x, self.w.view(), BlockDims { rows: x.len() / self.k, k: self.k, n: self.n }, bits).unwrap()
    }

    fn f64(&self, x: &[f64]) -> Vec<f64> {
        let w: Vec<f64> = (0..self.n * self.k).map(|i| self.real(i / self.k, i % self.k)).collect();
        x.chunks(self.k)
            .flat_map(|row| {
                (0..self.n).map(|c| row.iter().zip(&w[c * self.k..]).map(|(a, b)| a * b).sum()).collect::<Vec<f64>>()
            })
            .collect()
    }
}

struct Layer {
    norm1: Vec<i32>,
    norm2: Vec<i32>,
    wq: Linear,
    wk: Linear,
    wv: Linear,
    wo: Linear,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// Norm weights near 1 with 30 fraction bits.
fn norm_weights(rng: &mut ChaCha8Rng) -> Vec<i32> {
    (0..HIDDEN).map(|_| rng.gen_range(700_000_000..1_400_000_000)).collect()
}

const NORM: RmsParams = RmsParams { frac: F, out_frac: F, gamma_exp: 30, eps: 42_950 };

fn forward_int(l: &Layer, x: &[i32], b: ActBits) -> Vec<i32> {
    let rows = RowDims { rows: SEQ, len: HIDDEN };
    let (cos, sin) = rope_tables(SEQ, HEAD_DIM, ROPE_BASE);
    let h = rmsnorm_wide(x, &l.norm1, rows, &NORM).unwrap();
    let rd = |heads| RopeDims { seq: SEQ, heads, head_dim: HEAD_DIM, pos0: 0 };
    let q = rope(&l.wq.int(&h, b), &cos, &sin, rd(HEADS)).unwrap();
    let k = rope(&l.wk.int(&h, b), &cos, &sin, rd(KV_HEADS)).unwrap();
    let v = l.wv.int(&h, b);
    let d = AttnDims { seq: SEQ, heads: HEADS, kv_heads: KV_HEADS, head_dim: HEAD_DIM, ctx: SEQ, pos0: 0 };
    let x1 = add_i32(x, &l.wo.int(&attention(&q, &k, &v, d, F).unwrap(), b));
    let h2 = rmsnorm_wide(&x1, &l.norm2, rows, &NORM).unwrap();
    add_i32(&x1, &l.down.int(&swiglu(&l.gate.int(&h2, b), &l.up.int(&h2, b), F).unwrap(), b))
}

fn rms_f64(x: &[f64], g: &[i32]) -> Vec<f64> {
    x.chunks(HIDDEN)
        .flat_map(|r| {
            let inv = 1.0 / (r.iter().map(|v| v * v).sum::<f64>() / HIDDEN as f64 + 1e-5).sqrt();
            r.iter().zip(g).map(move |(v, &g)| v * inv * g as f64 / 2f64.powi(30)).collect::<Vec<_>>()
        })
        .collect()
}

fn rope_f64(x: &[f64], heads: usize) -> Vec<f64> {
    let mut y = x.to_vec();
    for (i, h) in y.chunks_mut(HEAD_DIM).enumerate() {
        let p = (i / heads) as f64;
        for j in 0..HEAD_DIM / 2 {
            let a = p * ROPE_BASE.powf(-(2.0 * j as f64) / HEAD_DIM as f64);
            let (x0, x1) = (h[2 * j], h[2 * j + 1]);
            h[2 * j] = x0 * a.cos() - x1 * a.sin();
            h[2 * j + 1] = x0 * a.sin() + x1 * a.cos();
        }
    }
    y
}

fn attention_f64(q: &[f64], k: &[f64], v: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; q.len()];
    for s in 0..SEQ {
        for h in 0..HEADS {
            let i = (s * HEADS + h) * HEAD_DIM;
            let c = |t: usize| (t * KV_HEADS + h / (HEADS / KV_HEADS)) * HEAD_DIM;
            let sc: Vec<f64> =
                (0..=s).map(|t| (0..HEAD_DIM).map(|d| q[i + d] * k[c(t) + d]).sum::<f64>() / 8.0).collect();
            let m = sc.iter().cloned().fold(f64::MIN, f64::max);
            let e: Vec<f64> = sc.iter().map(|x| (x - m).exp()).collect();
            let z: f64 = e.iter().sum();
            for d in 0..HEAD_DIM {
                out[i + d] = (0..=s).map(|t| e[t] / z * v[c(t) + d]).sum();
            }
        }
    }
    out
}

fn forward_f64(l: &Layer, x: &[f64]) -> Vec<f64> {
    let h = rms_f64(x, &l.norm1);
    let q = rope_f64(&l.wq.f64(&h), HEADS);
    let k = rope_f64(&l.wk.f64(&h), KV_HEADS);
    let a = attention_f64(&q, &k, &l.wv.f64(&h));
    let x1: Vec<f64> = x.iter().zip(l.wo.f64(&a)).map(|(a, b)| a + b).collect();
    let h2 = rms_f64(&x1, &l.norm2);
    let (g, u) = (l.gate.f64(&h2), l.up.f64(&h2));
    let act: Vec<f64> = g.iter().zip(&u).map(|(g, u)| g / (1.0 + (-g).exp()) * u).collect();
    x1.iter().zip(l.down.f64(&act)).map(|(a, b)| a + b).collect()
}

fn rel(got: &[f64], want: &[f64]) -> f64 {
    let num: f64 = got.iter().zip(want).map(|(g, w)| (g - w).powi(2)).sum();
    (num / want.iter().map(|w| w * w).sum::<f64>()).sqrt()
}

#[test]
fn one_decoder_layer_is_close_to_f64_with_either_activation_width() {
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let l = Layer {
        norm1: norm_weights(&mut rng),
        norm2: norm_weights(&mut rng),
        wq: Linear::random(&mut rng, HIDDEN, HIDDEN),
        wk: Linear::random(&mut rng, KV_HEADS * HEAD_DIM, HIDDEN),
        wv: Linear::random(&mut rng, KV_HEADS * HEAD_DIM, HIDDEN),
        wo: Linear::random(&mut rng, HIDDEN, HIDDEN),
        gate: Linear::random(&mut rng, FFN, HIDDEN),
        up: Linear::random(&mut rng, FFN, HIDDEN),
        down: Linear::random(&mut rng, HIDDEN, FFN),
    };
    let x: Vec<i32> = (0..SEQ * HIDDEN).map(|_| rng.gen_range(-(2 << F)..2 << F)).collect();
    let scale = 2f64.powi(F as i32);
    let xf: Vec<f64> = x.iter().map(|&v| v as f64 / scale).collect();
    let want = forward_f64(&l, &xf);
    // The layer's contribution (output minus the residual input), where its error lives.
    let delta = |y: &[f64]| y.iter().zip(&xf).map(|(a, b)| a - b).collect::<Vec<_>>();
    for (bits, bound) in [(ActBits::I8, 2e-2), (ActBits::I16, 1e-3)] {
        let got: Vec<f64> = forward_int(&l, &x, bits).iter().map(|&v| v as f64 / scale).collect();
        let (e_delta, e_out) = (rel(&delta(&got), &delta(&want)), rel(&got, &want));
        eprintln!("decoder layer vs f64 ({bits:?} activations): update {e_delta:.2e}, output {e_out:.2e}");
        assert!(e_delta < bound, "{bits:?}: {e_delta}");
    }
}
