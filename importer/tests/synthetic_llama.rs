//! The pseudo-random Llama of `opml_importer::synthetic`: deterministic bytes from a seed,
//! blocks generated independently, trained-like magnitudes, and an integer forward that
//! follows an f64 forward written here (so it does not saturate) and decodes over its KV
//! cache exactly like one batched forward.

use half::f16;
use opml_importer::{IntFormat, IntLlama, KvCache, LlamaConfig, LlamaWeights, Matrix, SyntheticLlama};
use proptest::prelude::*;

/// Real weights `[n, k]` from the blocks, in f64.
fn dequant(m: &Matrix) -> Vec<f64> {
    let f = |h: u16| f64::from(f16::from_bits(h).to_f32());
    match m {
        Matrix::Q4_1(b) => b
            .blocks
            .iter()
            .flat_map(|b| {
                let (d, m) = (f(b.d), f(b.m));
                b.values().map(|q| d * f64::from(q) + m)
            })
            .collect(),
        Matrix::Q8_0(b) => b.blocks.iter().flat_map(|b| b.qs.map(|q| f(b.d) * f64::from(q))).collect(),
    }
}

fn matvec(x: &[f64], w: &[f64], k: usize) -> Vec<f64> {
    let n = w.len() / k;
    x.chunks(k)
        .flat_map(|r| (0..n).map(move |c| r.iter().zip(&w[c * k..(c + 1) * k]).map(|(a, b)| a * b).sum::<f64>()))
        .collect()
}

fn rms(x: &[f64], g: &[f32], eps: f64) -> Vec<f64> {
    x.chunks(g.len())
        .flat_map(|r| {
            let inv = 1.0 / (r.iter().map(|v| v * v).sum::<f64>() / g.len() as f64 + eps).sqrt();
            r.iter().zip(g).map(move |(v, &g)| v * inv * f64::from(g))
        })
        .collect()
}

/// RoPE on adjacent pairs (llama.cpp's "normal" layout).
fn rope(x: &mut [f64], heads: usize, c: &LlamaConfig) {
    let hd = c.head_dim;
    for (i, h) in x.chunks_mut(hd).enumerate() {
        let p = (i / heads) as f64;
        for j in 0..hd / 2 {
            let a = p * f64::from(c.rope_base).powf(-(2.0 * j as f64) / hd as f64);
            let (x0, x1) = (h[2 * j], h[2 * j + 1]);
            h[2 * j] = x0 * a.cos() - x1 * a.sin();
            h[2 * j + 1] = x0 * a.sin() + x1 * a.cos();
        }
    }
}

fn attention(q: &[f64], k: &[f64], v: &[f64], seq: usize, c: &LlamaConfig) -> Vec<f64> {
    let (hd, heads, kvh) = (c.head_dim, c.heads, c.kv_heads);
    let mut out = vec![0.0; q.len()];
    for s in 0..seq {
        for h in 0..heads {
            let i = (s * heads + h) * hd;
            let at = |t: usize| (t * kvh + h / (heads / kvh)) * hd;
            let sc: Vec<f64> =
                (0..=s).map(|t| (0..hd).map(|d| q[i + d] * k[at(t) + d]).sum::<f64>() / (hd as f64).sqrt()).collect();
            let m = sc.iter().cloned().fold(f64::MIN, f64::max);
            let e: Vec<f64> = sc.iter().map(|x| (x - m).exp()).collect();
            let z: f64 = e.iter().sum();
            for d in 0..hd {
                out[i + d] = (0..=s).map(|t| e[t] / z * v[at(t) + d]).sum();
            }
        }
    }
    out
}

/// The f64 forward: logits `[seq, vocab]`, and the largest magnitude the residual stream
/// reached.
fn forward_f64(c: &LlamaConfig, w: &LlamaWeights, ids: &[u32]) -> (Vec<f64>, f64) {
    let (d, eps) = (c.hidden, f64::from(c.rms_eps));
    let emb = dequant(&w.token_embd);
    let mut x: Vec<f64> = ids.iter().flat_map(|&t| emb[t as usize * d..(t as usize + 1) * d].to_vec()).collect();
    let mut peak = 0f64;
    for l in &w.layers {
        let lin = |m: &Matrix, x: &[f64]| matvec(x, &dequant(m), m.shape().1);
        let h = rms(&x, &l.attn_norm, eps);
        let (mut q, mut k) = (lin(&l.attn_q, &h), lin(&l.attn_k, &h));
        rope(&mut q, c.heads, c);
        rope(&mut k, c.kv_heads, c);
        let a = attention(&q, &k, &lin(&l.attn_v, &h), ids.len(), c);
        x.iter_mut().zip(lin(&l.attn_output, &a)).for_each(|(x, o)| *x += o);
        let h2 = rms(&x, &l.ffn_norm, eps);
        let (g, up) = (lin(&l.ffn_gate, &h2), lin(&l.ffn_up, &h2));
        let act: Vec<f64> = g.iter().zip(&up).map(|(g, u)| g / (1.0 + (-g).exp()) * u).collect();
        x.iter_mut().zip(lin(&l.ffn_down, &act)).for_each(|(x, o)| *x += o);
        peak = x.iter().fold(peak, |p, v| p.max(v.abs()));
    }
    let h = rms(&x, &w.output_norm, eps);
    (matvec(&h, &dequant(w.output_projection()), d), peak)
}

fn argmax_f64(row: &[f64]) -> usize {
    (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b })
}

fn argmax_i32(row: &[i32]) -> usize {
    (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b })
}

/// Eight layers of LLaMA-2-7B's head width (128) and FFN ratio (11008 / 4096 ~ 2.7) at
/// hidden 256: deep and wide enough for the residual stream and the attention scores to
/// reach a 7B model's per-element scale, small enough for an f64 forward in a test.
fn narrow_7b() -> LlamaConfig {
    LlamaConfig {
        layers: 8,
        hidden: 256,
        ffn: 704,
        heads: 2,
        kv_heads: 2,
        head_dim: 128,
        vocab: 512,
        ..LlamaConfig::llama2_7b()
    }
}

fn matrices(w: &LlamaWeights) -> Vec<(String, &Matrix)> {
    let mut out = vec![("token_embd".to_string(), &w.token_embd)];
    for (i, l) in w.layers.iter().enumerate() {
        let named = [
            ("attn_q", &l.attn_q),
            ("attn_k", &l.attn_k),
            ("attn_v", &l.attn_v),
            ("attn_output", &l.attn_output),
            ("ffn_gate", &l.ffn_gate),
            ("ffn_up", &l.ffn_up),
            ("ffn_down", &l.ffn_down),
        ];
        out.extend(named.into_iter().map(|(n, m)| (format!("blk.{i}.{n}"), m)));
    }
    out.extend(w.output.iter().map(|m| ("output".to_string(), m)));
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    /// Same seed, same bytes, on one thread or two; another seed changes every tensor.
    #[test]
    fn a_seed_fixes_every_byte_and_another_seed_changes_every_tensor(seed in any::<u64>()) {
        let gen = |threads: usize, seed: u64| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| SyntheticLlama::new(LlamaConfig::tiny(), seed).weights())
        };
        let w = gen(1, seed);
        prop_assert_eq!(&w, &gen(2, seed));
        let other = gen(2, seed.wrapping_add(1));
        for ((name, a), (_, b)) in matrices(&w).into_iter().zip(matrices(&other)) {
            prop_assert_ne!(a, b, "{} is the same under seeds {} and {}", name, seed, seed.wrapping_add(1));
        }
        prop_assert_ne!(&w.layers[0].attn_norm, &other.layers[0].attn_norm);
    }
}

#[test]
fn a_block_generated_alone_equals_the_same_block_of_the_whole_model() {
    let s = SyntheticLlama::new(LlamaConfig::tiny(), 7);
    let w = s.weights();
    assert_eq!(s.layer(1), w.layers[1]);
    assert_eq!(LlamaWeights { layers: Vec::new(), ..w.clone() }, s.head());
    // Tensors of the same shape under one seed are different tensors.
    assert_ne!(w.layers[0].ffn_gate, w.layers[0].ffn_up);
    assert_ne!(w.layers[0].attn_q, w.layers[1].attn_q);
    assert_ne!(w.token_embd, *w.output.as_ref().unwrap());
}

#[test]
fn weights_have_mean_zero_and_a_trained_models_scale() {
    // Designed: standard deviation 1 / sqrt(k) times the block jitter's RMS,
    // sqrt(E[U(0.75, 1.25)^2]) = 1.0104, plus at most 0.5% from the Q4_1 minimum's offset.
    let w = SyntheticLlama::new(narrow_7b(), 3).weights();
    for (name, m) in matrices(&w) {
        let (n, k) = m.shape();
        let x = dequant(m);
        let mean = x.iter().sum::<f64>() / x.len() as f64;
        let std = (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
        let want = 1.0104 / (k as f64).sqrt();
        assert!((std / want - 1.0).abs() < 0.05, "{name} [{n}, {k}]: std {std}, designed {want}");
        assert!(mean.abs() < 0.05 * want, "{name}: mean {mean} against std {want}");
    }
    for g in w.layers.iter().flat_map(|l| [&l.attn_norm, &l.ffn_norm]).chain([&w.output_norm]) {
        assert!(g.iter().all(|v| (0.8..1.2).contains(v)));
        assert!(g.iter().any(|&v| v < 0.85) && g.iter().any(|&v| v > 1.15), "gains spread over [0.8, 1.2)");
    }
}

/// The integer forward (F = 14, 16-bit activation blocks) on `config` against the f64
/// forward on the same weights: no logit at an i32 limit, logits spread out, every
/// position's logits within 0.5% of the logit range of the f64 ones, and the same top-1
/// wherever the f64 margin exceeds that error.
fn follows_f64(config: LlamaConfig, seed: u64, ids: &[u32]) {
    let s = SyntheticLlama::new(config.clone(), seed);
    let w = s.weights();
    let int = IntLlama::from_weights(&config, &w, IntFormat::default()).unwrap();
    let got = int.forward(ids, &mut KvCache::new()).unwrap();
    let (want, peak) = forward_f64(&config, &w, ids);
    assert!(got.iter().all(|&v| v != i32::MIN && v != i32::MAX), "a logit saturated");
    let scale = f64::from(1u32 << IntFormat::default().frac_bits);
    let v = config.vocab;
    for (p, (g, f)) in got.chunks(v).zip(want.chunks(v)).enumerate() {
        let range = f.iter().cloned().fold(f64::MIN, f64::max) - f.iter().cloned().fold(f64::MAX, f64::min);
        assert!(range > 1.0, "position {p}: f64 logits span only {range}");
        let err = g.iter().zip(f).map(|(&g, f)| (f64::from(g) / scale - f).abs()).fold(0.0, f64::max);
        assert!(err < 0.005 * range, "position {p}: integer logits {err} from f64 over a range of {range}");
        let mut sorted = f.to_vec();
        sorted.sort_by(|a, b| b.total_cmp(a));
        if sorted[0] - sorted[1] > 2.0 * err {
            assert_eq!(argmax_i32(g), argmax_f64(f), "position {p}");
        }
    }
    // The stream stays far below the i32 stream's limit of 2^31 / 2^14 = 131072.
    assert!(peak > 1.0 && peak < 1000.0, "residual stream peak {peak}");
}

#[test]
fn the_tiny_integer_forward_follows_the_f64_forward() {
    follows_f64(LlamaConfig::tiny(), 11, &[3, 200, 17, 17, 255, 0, 90, 41]);
}

#[test]
fn eight_layers_of_7b_head_width_follow_the_f64_forward() {
    follows_f64(narrow_7b(), 14, &[1, 511, 300, 2, 77, 77, 128, 9]);
}

#[test]
fn decoding_over_the_cache_equals_one_batched_forward_and_streaming_conversion_equals_whole() {
    let s = SyntheticLlama::new(LlamaConfig::tiny(), 5);
    let whole = IntLlama::from_weights(&s.config, &s.weights(), IntFormat::default()).unwrap();
    let streamed = s.int_llama(IntFormat::default()).unwrap();
    let ids = [9u32, 8, 7, 250, 1, 1, 64, 128, 33, 2];
    let run = |threads: usize, m: &IntLlama| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| m.forward(&ids, &mut KvCache::new()).unwrap())
    };
    let batched = run(1, &whole);
    assert_eq!(batched, run(2, &whole));
    assert_eq!(batched, run(2, &streamed));
    let mut cache = KvCache::new();
    let mut stepped = streamed.forward(&ids[..3], &mut cache).unwrap();
    for &t in &ids[3..] {
        stepped.extend(streamed.forward(&[t], &mut cache).unwrap());
    }
    assert_eq!(stepped, batched);
    let distinct: std::collections::BTreeSet<i32> = batched.iter().copied().collect();
    assert!(distinct.len() > batched.len() / 2, "logits are mostly distinct: {}", distinct.len());
}

/// splitmix64's finaliser of `x + gamma`, written from `docs/spec/gguf-import.md`.
fn s(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[test]
fn blocks_follow_the_specified_derivation() {
    let seed = 0x1234_5678_9abc_def0u64;
    let c = LlamaConfig::tiny();
    let w = SyntheticLlama::new(c.clone(), seed).weights();
    let word = |t: u64, ctr: u64| s(s(seed ^ s(t.wrapping_mul(0xd6e8_feb8_6659_fd93))) ^ s(ctr));
    let u = |w: u64| (w >> 40) as f32 / 16_777_216.0;
    let j = |w: u64| 0.75 + 0.5 * u(w);
    // Tensor 11 = blk.1.attn_q (Q4_1, 64 x 64), block 5.
    let Matrix::Q4_1(q) = &w.layers[1].attn_q else { panic!("attn_q is Q4_1") };
    let (t, b) = (11, 5u64);
    let d = (1.0 / 64f32.sqrt()) / 4.609_772 * j(word(t, 3 * b));
    let m = -(7.0 + u(word(t, 3 * b) << 24)) * d;
    let blk = q.blocks[b as usize];
    assert_eq!((blk.d, blk.m), (f16::from_f32(d).to_bits(), f16::from_f32(m).to_bits()));
    let want: [u8; 32] = std::array::from_fn(|i| ((word(t, 3 * b + 1 + i as u64 / 16) >> (4 * (i % 16))) & 15) as u8);
    assert_eq!(blk.values(), want);
    // Tensor 19 = output_norm (after 1 + 9 * 2 tensors), element 3; tensor 20 = output (Q8_0), block 2.
    assert_eq!(w.output_norm[3], 0.8 + 0.4 * u(word(19, 3)));
    let Some(Matrix::Q8_0(o)) = &w.output else { panic!("output is Q8_0") };
    let d = (1.0 / 64f32.sqrt()) / 73.610_46 * j(word(20, 10));
    let want: [i8; 32] = std::array::from_fn(|i| {
        let byte = (word(20, 11 + i as u64 / 8) >> (8 * (i % 8))) as u8;
        (i16::from(byte % 255) - 127) as i8
    });
    assert_eq!((o.blocks[2].d, o.blocks[2].qs), (f16::from_f32(d).to_bits(), want));
}
