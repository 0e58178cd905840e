//! SmolLM2-135M from its GGUF (Q4_1 linears, Q8_0 tied embedding, f32 norms) through
//! [`IntLlama`] (the integer ops of `dnn::ops::llm`), against the float reference
//! ([`FloatLlama`], f32 on the same real weights dequantized as ggml does): the accuracy of
//! the integer semantics on a real model, with its real activation statistics. The float
//! forward shares nothing with the integer path but the file reader.
//!
//! Without `.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf` each test prints why and passes.

use std::path::PathBuf;
use std::sync::OnceLock;

use opml_importer::float_llama::FloatLlama;
use opml_importer::{ActBits, IntFormat, IntLlama, KvCache, LlamaConfig, LlamaGguf, LlamaTokenizer, LlamaWeights};

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

/// Mean negative log-likelihood of `ids[t + 1]` under the logits of position `t`.
fn nll(logits: &[f64], ids: &[u32], vocab: usize) -> f64 {
    let terms = logits.chunks(vocab).zip(&ids[1..]).map(|(row, &next)| {
        let m = row.iter().cloned().fold(f64::MIN, f64::max);
        let z: f64 = row.iter().map(|v| (v - m).exp()).sum();
        m + z.ln() - row[next as usize]
    });
    terms.sum::<f64>() / (ids.len() - 1) as f64
}

fn argmax_float(row: &[f64]) -> usize {
    (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b })
}

fn argmax_i32(row: &[i32]) -> usize {
    (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b })
}

const PROMPT: &str = "The capital of France is Paris. The capital of Germany is";

#[test]
fn the_integer_forward_agrees_with_the_float_reference_on_its_own_greedy_text() {
    let Some(m) = loaded() else { return };
    let (c, vocab) = (&m.config, m.config.vocab);
    let prompt = m.tokenizer.encode(PROMPT).expect("encodes");
    assert_eq!(prompt.len(), 12);
    // Continue greedily with the integer model (F = 14, 16-bit blocks), so the comparison
    // covers text the model itself writes.
    let gen = m.int14.generate_greedy(&prompt, 36, &[], |_| {}).expect("generates");
    let ids: Vec<u32> = prompt.iter().chain(&gen.tokens).copied().collect();
    eprintln!("text: {:?}", m.tokenizer.decode(&ids, false).expect("decodes"));
    let float = FloatLlama::from_weights(c, &m.weights);
    let want: Vec<f64> = float.forward(&ids).into_iter().map(f64::from).collect();
    let top_float: Vec<usize> = want.chunks(vocab).map(argmax_float).collect();
    let ppl_float = nll(&want, &ids, vocab).exp();
    eprintln!("f32 reference: perplexity of the text {ppl_float:.4}");
    for (frac, act) in [(16, ActBits::I16), (14, ActBits::I16), (12, ActBits::I16), (14, ActBits::I8)] {
        let format = IntFormat { frac_bits: frac, act };
        let model = if format == IntFormat::default() {
            &m.int14
        } else {
            &IntLlama::from_weights(c, &m.weights, format).expect("converts")
        };
        let got = model.forward(&ids, &mut KvCache::new()).expect("runs");
        let agree = got.chunks(vocab).map(argmax_i32).zip(&top_float).filter(|(a, b)| a == *b).count();
        let real: Vec<f64> = got.iter().map(|&g| f64::from(g) / 2f64.powi(frac as i32)).collect();
        let num: f64 = real.iter().zip(&want).map(|(g, w)| (g - w).powi(2)).sum();
        let rel = (num / want.iter().map(|w| w * w).sum::<f64>()).sqrt();
        let ppl = nll(&real, &ids, vocab).exp();
        eprintln!(
            "frac {frac}, {act:?} activations: logits relative error {rel:.2e}, top-1 agreement {agree}/{}, \
             perplexity {ppl:.4} ({:+.3}% against the f32 reference)",
            ids.len(),
            (ppl / ppl_float - 1.0) * 100.0
        );
        if act == ActBits::I16 && frac >= 14 {
            assert!(agree * 100 >= 95 * ids.len(), "{agree}/{}", ids.len());
            assert!((ppl / ppl_float - 1.0).abs() < 0.01, "perplexity {ppl} against {ppl_float}");
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

#[test]
fn the_bundle_of_the_real_model_gives_the_gguf_logits_and_tokens() {
    use opml_importer::bundle::{Limits, LlmBundle, Source};
    let Some(m) = loaded() else { return };
    let mut gguf = LlamaGguf::open(&model().expect("present")).expect("the model opens");
    let source = Source { file: MODEL.into(), sha256: String::new() };
    let bytes = LlmBundle::from_gguf(&mut gguf, source, Limits::default(), IntFormat::default())
        .expect("imports")
        .to_bytes()
        .expect("encodes");
    let bundle = LlmBundle::from_bytes(&bytes).expect("reads back");
    let tok = bundle.tokenizer().expect("the tokenizer builds");
    for text in [PROMPT, "It's 3.14159 — naïve café 東京 🙂\n\n  def f(x):\treturn x**2", "<|im_end|> literal"]
    {
        assert_eq!(tok.encode(text).unwrap(), m.tokenizer.encode(text).unwrap(), "{text:?}");
    }
    assert_eq!(tok.chat_prompt("Hi there").unwrap(), m.tokenizer.chat_prompt("Hi there").unwrap());
    let ids = m.tokenizer.encode(PROMPT).expect("encodes");
    let from_bundle = bundle.into_model().expect("builds");
    let got = from_bundle.forward(&ids, &mut KvCache::new()).expect("runs");
    assert!(
        got == m.int14.forward(&ids, &mut KvCache::new()).expect("runs"),
        "the bundle's logits differ from the GGUF's"
    );
}
