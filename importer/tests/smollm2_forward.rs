//! SmolLM2-135M from its GGUF (Q4_1 linears, Q8_0 tied embedding, f32 norms) through
//! [`IntLlama`] (the integer ops of `dnn::ops::llm`), against an f64 forward written here on
//! the same real weights dequantized from their f16 scale bits: the accuracy of the integer
//! semantics on a real model, with its real activation statistics. The f64 forward shares
//! nothing with the integer path but the file reader.
//!
//! Without `.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf` each test prints why and passes.

use std::path::PathBuf;
use std::sync::OnceLock;

use half::f16;
use opml_importer::{
    ActBits, IntFormat, IntLlama, KvCache, LlamaConfig, LlamaGguf, LlamaTokenizer, LlamaWeights, Matrix,
};

const MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn model() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/models").join(MODEL);
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("skipping: {} is absent (run scripts/fetch_models.sh)", p.display());
        None
    }
}

struct Loaded {
    config: LlamaConfig,
    weights: LlamaWeights,
    tokenizer: LlamaTokenizer,
    int14: IntLlama,
}

fn loaded() -> Option<&'static Loaded> {
    static LOADED: OnceLock<Option<Loaded>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let mut gguf = LlamaGguf::open(&model()?).expect("the model opens");
            let weights = gguf.load_weights().expect("the weights load");
            let tokenizer = LlamaTokenizer::new(&gguf.vocab().expect("vocab")).expect("the tokenizer builds");
            let config = gguf.config().clone();
            let int14 = IntLlama::from_weights(&config, &weights, IntFormat::default()).expect("converts");
            Some(Loaded { config, weights, tokenizer, int14 })
        })
        .as_ref()
}

/// Real weights `[n, k]` from the blocks: `d * q + m` (Q4_1), `d * q` (Q8_0), in f64.
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

/// The f64 forward: logits `[seq, vocab]`.
fn forward_f64(c: &LlamaConfig, w: &LlamaWeights, ids: &[u32]) -> Vec<f64> {
    let (d, eps) = (c.hidden, f64::from(c.rms_eps));
    let emb = dequant(&w.token_embd);
    let mut x: Vec<f64> = ids.iter().flat_map(|&t| emb[t as usize * d..(t as usize + 1) * d].to_vec()).collect();
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
    }
    let h = rms(&x, &w.output_norm, eps);
    matvec(&h, &dequant(w.output_projection()), d)
}

/// Mean negative log-likelihood of `ids[t + 1]` under the logits of position `t`.
fn nll(logits: &[f64], ids: &[u32], vocab: usize) -> f64 {
    let terms = logits.chunks(vocab).zip(&ids[1..]).map(|(row, &next)| {
        let m = row.iter().cloned().fold(f64::MIN, f64::max);
        let z: f64 = row.iter().map(|v| (v - m).exp()).sum();
        m + z.ln() - row[next as usize]
    });
    terms.sum::<f64>() / (ids.len() - 1) as f64
}

fn argmax_f64(row: &[f64]) -> usize {
    (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b })
}

fn argmax_i32(row: &[i32]) -> usize {
    (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b })
}

const PROMPT: &str = "The capital of France is Paris. The capital of Germany is";

#[test]
fn the_integer_forward_agrees_with_f64_on_its_own_greedy_text() {
    let Some(m) = loaded() else { return };
    let (c, vocab) = (&m.config, m.config.vocab);
    let prompt = m.tokenizer.encode(PROMPT).expect("encodes");
    assert_eq!(prompt.len(), 12);
    // Continue greedily with the integer model (F = 14, 16-bit blocks), so the comparison
    // covers text the model itself writes.
    let gen = m.int14.generate_greedy(&prompt, 36, &[], |_| {}).expect("generates");
    let ids: Vec<u32> = prompt.iter().chain(&gen.tokens).copied().collect();
    eprintln!("text: {:?}", m.tokenizer.decode(&ids, false).expect("decodes"));
    let want = forward_f64(c, &m.weights, &ids);
    let top_f64: Vec<usize> = want.chunks(vocab).map(argmax_f64).collect();
    let ppl_f64 = nll(&want, &ids, vocab).exp();
    eprintln!("f64: perplexity of the text {ppl_f64:.4}");
    for (frac, act) in [(16, ActBits::I16), (14, ActBits::I16), (12, ActBits::I16), (14, ActBits::I8)] {
        let format = IntFormat { frac_bits: frac, act };
        let model = if format == IntFormat::default() {
            &m.int14
        } else {
            &IntLlama::from_weights(c, &m.weights, format).expect("converts")
        };
        let got = model.forward(&ids, &mut KvCache::new()).expect("runs");
        let agree = got.chunks(vocab).map(argmax_i32).zip(&top_f64).filter(|(a, b)| a == *b).count();
        let real: Vec<f64> = got.iter().map(|&g| f64::from(g) / 2f64.powi(frac as i32)).collect();
        let num: f64 = real.iter().zip(&want).map(|(g, w)| (g - w).powi(2)).sum();
        let rel = (num / want.iter().map(|w| w * w).sum::<f64>()).sqrt();
        let ppl = nll(&real, &ids, vocab).exp();
        eprintln!(
            "frac {frac}, {act:?} activations: logits relative error {rel:.2e}, top-1 agreement {agree}/{}, \
             perplexity {ppl:.4} ({:+.3}% against f64)",
            ids.len(),
            (ppl / ppl_f64 - 1.0) * 100.0
        );
        if act == ActBits::I16 && frac >= 14 {
            assert!(agree * 100 >= 95 * ids.len(), "{agree}/{}", ids.len());
            assert!((ppl / ppl_f64 - 1.0).abs() < 0.01, "perplexity {ppl} against {ppl_f64}");
        }
    }
}

#[test]
fn decoding_with_the_cache_equals_one_batched_forward_for_any_thread_count() {
    let Some(m) = loaded() else { return };
    let ids = m.tokenizer.encode(PROMPT).expect("encodes");
    let vocab = m.config.vocab;
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a pool");
        pool.install(|| m.int14.forward(&ids, &mut KvCache::new()).expect("runs"))
    };
    let batched = run(1);
    assert_eq!(batched, run(2), "the logits depend on the thread count");
    // A prompt of 8, then one token at a time.
    let mut cache = KvCache::new();
    let mut stepped = m.int14.forward(&ids[..8], &mut cache).expect("runs");
    for &t in &ids[8..] {
        stepped.extend(m.int14.forward(&[t], &mut cache).expect("runs"));
    }
    assert_eq!(cache.len(), ids.len());
    assert_eq!(stepped.len(), ids.len() * vocab);
    assert!(stepped == batched, "decoding with the cache differs from the batched forward");
}

#[test]
fn out_of_vocabulary_ids_and_context_overflow_are_errors_that_leave_the_cache() {
    let Some(m) = loaded() else { return };
    let mut cache = KvCache::new();
    m.int14.forward(&[1, 2], &mut cache).expect("runs");
    let err = m.int14.forward(&[49152], &mut cache).unwrap_err().to_string();
    assert!(err.contains("49152"), "{err}");
    let long = vec![1u32; m.config.context];
    let err = m.int14.forward(&long, &mut cache).unwrap_err().to_string();
    assert!(err.contains("context length"), "{err}");
    assert_eq!(cache.len(), 2);
}
