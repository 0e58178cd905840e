//! A whole generation as one graph (`docs/spec/llm-generation.md`): run node by node by
//! `dnn::exec`, its output equals the quick path `GenerationGraph::run_fast` (the prompt
//! batched, then only the claimed tokens) for honest inputs and for any input bytes
//! (lengths out of range, ids outside the vocabulary, garbage in the padding), on 1 and 2
//! threads; every step's cache and token are the ones a step-by-step decode gives; and
//! the node count is the one the spec derives.

use opml_dnn::exec::{run, run_all};
use opml_dnn::Tensor;
use opml_importer::synthetic::random_weights;
use opml_importer::{GenerationGraph, IntLlama, KvCache, Limits, LlamaConfig};

fn model(untied: bool) -> IntLlama {
    let c = LlamaConfig::tiny();
    IntLlama::from_weights(&c, &random_weights(&c, 11, untied).unwrap(), Default::default()).unwrap()
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap()
}

fn raw(prompt: Vec<i32>, lengths: [i32; 2]) -> Vec<Tensor> {
    let p = prompt.len();
    vec![Tensor::from_i32(vec![p], prompt).unwrap(), Tensor::from_i32(vec![2], lengths.to_vec()).unwrap()]
}

#[test]
fn the_graph_and_the_quick_path_agree_on_any_input() {
    for untied in [false, true] {
        let m = model(untied);
        let vocab = m.config().vocab as i32;
        let limits = Limits { max_prompt: 4, max_new: 3 };
        let g = GenerationGraph::new(&m, limits).unwrap();
        let mut cases = Vec::new();
        for n in 1..=4usize {
            for new in 1..=3usize {
                let prompt: Vec<u32> = (0..n as u32).map(|i| (i * 37 + 5) % vocab as u32).collect();
                cases.push(g.inputs(&prompt, new).unwrap());
            }
        }
        // Input bytes no honest submitter writes: every one still has one output.
        for (prompt, lengths) in [
            (vec![3, 9, -7, 2], [3, 3]),
            (vec![vocab, vocab + 5, 1, 1], [2, 2]),
            (vec![1, 2, 3, 4], [0, -1]),
            (vec![1, 2, 3, 4], [-5, 9]),
            (vec![8, 2, 3, 4], [i32::MAX, i32::MIN]),
            (vec![8, 2, 3, 4], [i32::MIN, i32::MAX]),
            (vec![6, 6, 99999, -1], [1, 3]),
        ] {
            cases.push(raw(prompt, lengths));
        }
        for inputs in &cases {
            let fast = g.run_fast(&m, inputs).unwrap();
            for threads in [1, 2] {
                let out = pool(threads).install(|| run(&g.model, inputs).unwrap());
                assert_eq!(out, fast, "untied {untied}, inputs {inputs:?}, {threads} threads");
            }
        }
        // The honest cases emit exactly their count, zero after.
        let inputs = g.inputs(&[4, 1], 2).unwrap();
        let out = g.run_fast(&m, &inputs).unwrap();
        let want = m.generate_greedy(&[4, 1], 2, &[], |_| {}).unwrap().tokens;
        assert_eq!(out.as_i32().unwrap(), [want[0] as i32, want[1] as i32, 0]);
    }
}

#[test]
fn every_step_reads_its_token_and_grows_the_cache_by_one_position() {
    let m = model(false);
    let c = m.config().clone();
    let limits = Limits { max_prompt: 3, max_new: 3 };
    let g = GenerationGraph::new(&m, limits).unwrap();
    let prompt = [7u32, 3];
    let slots = run_all(&g.model, &g.inputs(&prompt, 3).unwrap()).unwrap();
    // Step by step with IntLlama: the token each position reads and the cache after it.
    let mut cache = KvCache::new();
    let mut token = prompt[0];
    for s in &g.steps {
        assert_eq!(slots[s.token].as_i32().unwrap(), [token as i32], "token at position {}", s.pos);
        let logits = m.forward_last(&[token], &mut cache).unwrap();
        let max = *logits.iter().max().unwrap();
        let next = logits.iter().position(|&v| v == max).unwrap() as u32;
        assert_eq!(slots[s.slots.next].as_i32().unwrap(), [next as i32], "argmax at position {}", s.pos);
        for (i, l) in s.slots.layers.iter().enumerate() {
            assert_eq!(slots[l.keys].shape(), [s.pos + 1, c.kv_heads, c.head_dim]);
            assert_eq!(slots[l.keys].as_i32().unwrap(), cache.keys(i), "layer {i} keys at {}", s.pos);
            assert_eq!(slots[l.values].as_i32().unwrap(), cache.values(i));
        }
        token = prompt.get(s.pos + 1).copied().unwrap_or(next);
    }
    // Node count: per step a token node, the embedding, 19 (first step) or 21 nodes per
    // layer, the output norm, the output, the argmax and the emit node.
    let layers = c.layers;
    let want: usize = (0..limits.max_prompt + limits.max_new - 1)
        .map(|pos| 1 + 1 + layers * if pos == 0 { 19 } else { 21 } + 3 + 1)
        .sum();
    assert_eq!(g.model.graph().nodes.len(), want);
    // One copy of each weight, shared by every step.
    let names: std::collections::HashSet<_> = g.model.graph().consts.iter().map(|c| &c.name).collect();
    assert_eq!(names.len(), g.model.graph().consts.len());
}

#[test]
fn bad_requests_are_refused_by_name() {
    let m = model(false);
    let g = GenerationGraph::new(&m, Limits { max_prompt: 3, max_new: 2 }).unwrap();
    for (prompt, new, want) in [
        (vec![], 1, "a prompt of 0 tokens"),
        (vec![1, 2, 3, 4], 1, "a prompt of 4 tokens"),
        (vec![1], 0, "0 tokens to generate"),
        (vec![1], 3, "3 tokens to generate"),
        (vec![1, 100000], 1, "outside the vocabulary"),
    ] {
        let e = g.inputs(&prompt, new).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
    let e = g.run_fast(&m, &raw(vec![1, 2], [1, 1])).unwrap_err().to_string();
    assert!(e.contains("input 0 must be i32 [3]"), "{e}");
    let ctx = m.config().context;
    let e = GenerationGraph::new(&m, Limits { max_prompt: ctx, max_new: 1 }).unwrap_err().to_string();
    assert!(e.contains("exceed the context length"), "{e}");
}
