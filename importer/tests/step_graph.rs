//! The step graph (`docs/spec/llm-graph.md`) run by `dnn::exec` against
//! `IntLlama::forward` on the same cache: the same logits, the same new keys and values,
//! for a prompt (`pos0 = 0`, several tokens) and a decode step (one token over the cache),
//! on 1 and 2 threads. The model is `opml_importer::synthetic`'s small random one (two
//! layers, grouped-query heads, Q4_1 and Q8_0 linears, tied and untied outputs); with the
//! real SmolLM2 file present, one decode step after a short prompt is checked too.

use std::path::PathBuf;

use opml_dnn::exec::run_all;
use opml_dnn::{Op, Tensor};
use opml_importer::synthetic::random_weights;
use opml_importer::{
    ActBits, ForwardError, IntFormat, IntLlama, KvCache, LlamaConfig, LlamaGguf, LlamaTokenizer, LlamaWeights,
    StepGraph,
};

fn config() -> LlamaConfig {
    LlamaConfig::tiny()
}

fn weights(c: &LlamaConfig, seed: u64, untied: bool) -> LlamaWeights {
    random_weights(c, seed, untied).unwrap()
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap()
}

/// Index of the largest value, the first on ties (greedy decoding).
fn argmax(row: &[i32]) -> i32 {
    let max = row.iter().max().unwrap();
    row.iter().position(|v| v == max).unwrap() as i32
}

/// Run the step graph of `tokens` over `cache` and check it against `IntLlama::forward`
/// on a copy of the cache: logits, every layer's keys and values (the cache after the
/// step), the argmax output, on 1 and 2 threads. The cache after the step.
fn check_step(m: &IntLlama, tokens: &[u32], cache: &KvCache) -> KvCache {
    let g = StepGraph::new(m, tokens.len(), cache.len()).unwrap();
    let mut want_cache = cache.clone();
    let want = m.forward(tokens, &mut want_cache).unwrap();
    assert!(want.iter().any(|&v| v != want[0]), "the logits are not all one value");
    let inputs = g.inputs(tokens, cache).unwrap();
    let vocab = m.config().vocab;
    let mut runs = Vec::new();
    for threads in [1, 2] {
        let slots = pool(threads).install(|| run_all(&g.model, &inputs).unwrap());
        let s = &g.slots;
        assert_eq!(slots[s.logits].as_i32().unwrap(), want, "logits, {threads} threads");
        assert_eq!(slots[s.logits].shape(), [tokens.len(), vocab]);
        let got_cache = g.cache_after(&slots).unwrap();
        assert_eq!(got_cache.len(), want_cache.len());
        for (i, l) in s.layers.iter().enumerate() {
            assert_eq!(got_cache.keys(i), want_cache.keys(i), "layer {i} keys");
            assert_eq!(got_cache.values(i), want_cache.values(i), "layer {i} values");
            let new = cache.len() * m.config().kv_heads * m.config().head_dim;
            assert_eq!(slots[l.new_keys].as_i32().unwrap(), &want_cache.keys(i)[new..], "layer {i} new keys");
            assert_eq!(slots[l.new_values].as_i32().unwrap(), &want_cache.values(i)[new..]);
        }
        let next: Vec<i32> = want.chunks(vocab).map(argmax).collect();
        assert_eq!(slots[s.next].as_i32().unwrap(), next, "argmax");
        assert_eq!(g.model.graph().output, s.next);
        runs.push(slots);
    }
    assert_eq!(runs[0], runs[1], "every slot is the same for 1 and 2 threads");
    want_cache
}

#[test]
fn a_prompt_and_decode_steps_equal_the_integer_forward() {
    let c = config();
    for untied in [false, true] {
        let w = weights(&c, 7 + untied as u64, untied);
        let m = IntLlama::from_weights(&c, &w, IntFormat { frac_bits: 12, act: ActBits::I16 }).unwrap();
        let cache = check_step(&m, &[3, 41, 79, 0, 12], &KvCache::new());
        let cache = check_step(&m, &[55], &cache);
        let cache = check_step(&m, &[8, 9], &cache);
        assert_eq!(cache.len(), 8);
    }
    // 8-bit activation blocks route to the same kernels with the other width.
    let m = IntLlama::from_weights(&c, &weights(&c, 3, false), IntFormat { frac_bits: 10, act: ActBits::I8 }).unwrap();
    let cache = check_step(&m, &[1, 2, 3], &KvCache::new());
    check_step(&m, &[4], &cache);
}

#[test]
fn the_graph_names_its_nodes_and_shares_tied_constants() {
    let c = config();
    let m = IntLlama::from_weights(&c, &weights(&c, 1, false), IntFormat::default()).unwrap();
    let g = StepGraph::new(&m, 1, 4).unwrap();
    let nodes = &g.model.graph().nodes;
    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    for want in ["token_embd", "blk.0.attn_q", "blk.1.attn_k.rope", "blk.1.cache_v", "blk.1.swiglu", "output", "argmax"]
    {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    // 1 embedding + 2 layers of 21 nodes (the two cache concats included) + norm, output,
    // argmax; without a cache each layer has 19.
    assert_eq!(nodes.len(), 1 + 2 * 21 + 3);
    // Inputs: ids, then keys and values of each layer.
    assert_eq!(g.model.graph().inputs.len(), 1 + 2 * 2);
    let (Op::EmbedQ8_0 { qs, d, .. }, Op::LinearQ8_0 { qs: oq, d: od, .. }) =
        (&nodes[0].op, &nodes[names.iter().position(|&n| n == "output").unwrap()].op)
    else {
        panic!("embedding and tied output are Q8_0 ops");
    };
    assert_eq!((qs, d), (oq, od), "the tied output reads the embedding's constants");
    // The prompt graph has no cache inputs and no concat.
    let p = StepGraph::new(&m, 3, 0).unwrap();
    assert_eq!(p.model.graph().inputs.len(), 1);
    assert_eq!(p.model.graph().nodes.len(), 1 + 2 * 19 + 3);
    assert!(p.model.graph().nodes.iter().all(|n| !matches!(n.op, Op::Concat { .. })));
}

#[test]
fn a_step_past_the_context_or_fed_the_wrong_inputs_is_refused() {
    let c = config();
    let m = IntLlama::from_weights(&c, &weights(&c, 2, false), IntFormat::default()).unwrap();
    assert!(matches!(StepGraph::new(&m, 5, 124), Err(ForwardError::Context { want: 129, context: 128 })));
    assert!(matches!(StepGraph::new(&m, 0, 3), Err(ForwardError::Context { .. })));
    let g = StepGraph::new(&m, 1, 2).unwrap();
    let mut cache = KvCache::new();
    m.forward(&[1, 2], &mut cache).unwrap();
    assert!(g.inputs(&[1], &cache).is_ok());
    assert!(matches!(g.inputs(&[1, 2], &cache), Err(ForwardError::Step(_))));
    assert!(matches!(g.inputs(&[1], &KvCache::new()), Err(ForwardError::Step(_))));
    assert!(matches!(g.inputs(&[256], &cache), Err(ForwardError::Token { id: 256, vocab: 256 })));
    assert!(matches!(g.cache_after(&[Tensor::from_i32(vec![1], vec![0]).unwrap()]), Err(ForwardError::Step(_))));
}

/// With the real model: a 6-token prompt, then one decode step, each as a graph.
#[test]
fn smollm2_decode_step_as_a_graph_equals_the_forward() {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !p.exists() {
        eprintln!("skipping: {} is absent (run scripts/fetch_models.sh)", p.display());
        return;
    }
    let mut gguf = LlamaGguf::open(&p).unwrap();
    let prompt = LlamaTokenizer::new(&gguf.vocab().unwrap()).unwrap().encode("The capital of France is").unwrap();
    let m = IntLlama::from_gguf(&mut gguf, IntFormat::default()).unwrap();
    let cache = check_step(&m, &prompt, &KvCache::new());
    let next = m.forward(&prompt, &mut KvCache::new()).unwrap();
    let vocab = m.config().vocab;
    let t = argmax(&next[(prompt.len() - 1) * vocab..]) as u32;
    eprintln!("next token after the prompt: {t}");
    check_step(&m, &[t], &cache);
}
