//! Every node of a whole language-model step in the VM: the step graph
//! (`docs/spec/llm-graph.md`) of the small random Llama (`opml_importer::synthetic`), run
//! natively, then each node compiled to its VM program and run on the native inputs of
//! that node; the VM's output bytes and output-region root equal the native slot and its
//! commitment, node by node. Checked for a decode step (one token over a cache of three
//! positions, tied output) and for a prompt (three tokens, no cache, untied output), which
//! together use every LLM op, both linear formats and both cache shapes.
//!
//! With the real SmolLM2 file present (CI's setup fetches it), the same for every node of
//! a real decode step: the embedding, the 30 layers' 21 nodes each, the final norm, the
//! tied output layer (49152 x 576) and the argmax.
//!
//! Also with the real file: real Q4_1 and Q8_0 blocks at both activation widths (the step
//! uses 16-bit ones) and the whole tied output layer as one node.
//!
//! It lives here because it needs the compiler and the importer, and neither may depend
//! on the other.

use opml_compiler::{compile_node, matches_native};
use opml_dnn::exec::run_all;
use opml_dnn::graph::{ConstSpec, Graph, Model, Node, Op};
use opml_dnn::ops::llm::blockq::{bytes_as_i8, Q4_1Owned, Q8_0Owned};
use opml_dnn::ops::llm::qlinear::ActBits;
use opml_dnn::{DType, Tensor, TensorSpec};
use opml_importer::synthetic::random_weights;
use opml_importer::{IntFormat, IntLlama, KvCache, LlamaConfig, LlamaGguf, LlamaTokenizer, StepGraph};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const MAX_STEPS: u64 = 200_000_000;

/// Run every node of `g` in the VM on the native inputs of that node; each node's name and steps.
fn every_node_in_the_vm(g: &StepGraph, inputs: &[Tensor]) -> Vec<(String, u64)> {
    let slots = run_all(&g.model, inputs).expect("the step runs natively");
    let graph = g.model.graph();
    let mut steps = Vec::new();
    for (j, node) in graph.nodes.iter().enumerate() {
        let native = &slots[graph.node_slot(j)];
        let ins: Vec<&Tensor> = node.inputs.iter().map(|&s| &slots[s]).collect();
        let prog = compile_node(&g.model, j).unwrap_or_else(|e| panic!("node {j} {}: {e}", node.name));
        let run = prog.run(&ins, MAX_STEPS).unwrap_or_else(|e| panic!("node {j} {}: {e}", node.name));
        assert!(matches_native(&run, native), "node {j} {} ({}): VM output differs", node.name, node.op.name());
        steps.push((node.name.clone(), run.steps));
    }
    steps
}

fn report(what: &str, steps: &[(String, u64)]) {
    let total: u64 = steps.iter().map(|s| s.1).sum();
    let (name, most) = steps.iter().max_by_key(|s| s.1).expect("nodes");
    eprintln!("{what}: {} nodes, {total} VM steps in all, the largest {name} with {most}", steps.len());
}

#[test]
fn every_node_of_a_decode_step_and_a_prompt_matches_native_in_the_vm() {
    let c = LlamaConfig::tiny();
    let format = IntFormat::default();
    let tied = IntLlama::from_weights(&c, &random_weights(&c, 21, false).unwrap(), format).unwrap();
    let prompt = [7, 64, 3];
    let mut cache = KvCache::new();
    tied.forward(&prompt, &mut cache).unwrap();
    let decode = StepGraph::new(&tied, 1, prompt.len()).unwrap();
    let steps = every_node_in_the_vm(&decode, &decode.inputs(&[42], &cache).unwrap());
    assert_eq!(steps.len(), 1 + c.layers * 21 + 3);
    report("decode step", &steps);

    let untied = IntLlama::from_weights(&c, &random_weights(&c, 22, true).unwrap(), format).unwrap();
    let first = StepGraph::new(&untied, prompt.len(), 0).unwrap();
    let steps = every_node_in_the_vm(&first, &first.inputs(&prompt, &KvCache::new()).unwrap());
    assert_eq!(steps.len(), 1 + c.layers * 19 + 3);
    report("prompt", &steps);
}

#[test]
fn every_node_of_a_smollm2_decode_step_matches_native_in_the_vm() {
    let p =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !p.exists() {
        eprintln!("skipping: {} is absent (run scripts/fetch_models.sh)", p.display());
        return;
    }
    let mut gguf = LlamaGguf::open(&p).unwrap();
    let prompt = LlamaTokenizer::new(&gguf.vocab().unwrap()).unwrap().encode("The capital of France is").unwrap();
    let m = IntLlama::from_gguf(&mut gguf, IntFormat::default()).unwrap();
    let mut cache = KvCache::new();
    let logits = m.forward(&prompt, &mut cache).unwrap();
    let vocab = m.config().vocab;
    let last = &logits[(prompt.len() - 1) * vocab..];
    let next = last.iter().position(|v| v == last.iter().max().unwrap()).unwrap() as u32;
    let g = StepGraph::new(&m, 1, prompt.len()).unwrap();
    let steps = every_node_in_the_vm(&g, &g.inputs(&[next], &cache).unwrap());
    let layers = m.config().layers;
    assert_eq!(steps.len(), 1 + layers * 21 + 3);
    report("SmolLM2 decode step (every node)", &steps);
    let layer: u64 = steps.iter().filter(|s| s.0.starts_with("blk.0.")).map(|s| s.1).sum();
    let total: u64 = steps.iter().map(|s| s.1).sum();
    eprintln!("layer 0: {layer} VM steps; the whole decode step: {total}");
}

/// A one-node model: input `x`, constants `weights`, node `op` over input 0.
fn model_with(x: TensorSpec, weights: Vec<Tensor>, op: Op) -> Model {
    let graph = Graph {
        inputs: vec![x],
        consts: weights.iter().enumerate().map(|(i, w)| ConstSpec { name: format!("c{i}"), spec: w.spec() }).collect(),
        nodes: vec![Node { name: "n".into(), op, inputs: vec![0] }],
        output: 1,
    };
    Model::new(graph, weights).unwrap()
}

fn i32s(shape: Vec<usize>) -> TensorSpec {
    TensorSpec::new(DType::I32, shape)
}

/// Node 0 of `m` natively and in the VM: equal bytes and commitment; the VM's steps.
fn one_node_in_the_vm(m: &Model, xs: &[Tensor]) -> u64 {
    let native = &run_all(m, xs).unwrap()[xs.len()];
    let run = compile_node(m, 0).unwrap().run(&xs.iter().collect::<Vec<_>>(), MAX_STEPS).unwrap();
    assert!(matches_native(&run, native), "{}: VM output differs", m.graph().nodes[0].op.name());
    run.steps
}

/// Real SmolLM2-135M weights (when `.cache/models/` has the file): 48 rows of the Q4_1
/// `blk.0.ffn_down` (576 x 1536) and of `blk.0.attn_q` (576 x 576), and 64 rows of the
/// Q8_0 token embedding as the tied output layer and as an embedding table, with
/// stream-format activations (`F = 14`) at both widths; then the whole tied output layer
/// (49152 x 576, 16-bit activations), the largest node a dispute runs in the VM.
#[test]
fn real_smollm2_block_weights_at_both_activation_widths_match_native() {
    let path =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !path.is_file() {
        eprintln!("skipping: {} is absent (run scripts/fetch_models.sh)", path.display());
        return;
    }
    let mut gguf = opml_importer::GgufFile::open(&path).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    for (name, k) in [("blk.0.ffn_down.weight", 1536), ("blk.0.attn_q.weight", 576)] {
        let rows = 48;
        let bytes = gguf.tensor_bytes(name).unwrap();
        let w = Q4_1Owned::from_gguf(&bytes[..rows * k / 32 * 20]).unwrap();
        let weights = vec![
            Tensor::from_i8(vec![rows, k / 2], bytes_as_i8(&w.qs).to_vec()).unwrap(),
            Tensor::from_i32(vec![rows, k / 32], w.d.clone()).unwrap(),
            Tensor::from_i32(vec![rows, k / 32], w.m.clone()).unwrap(),
        ];
        for act in [ActBits::I8, ActBits::I16] {
            let op = Op::LinearQ4_1 { qs: 0, d: 1, m: 2, exp: w.exp, act };
            let m = model_with(i32s(vec![2, k]), weights.clone(), op);
            let x =
                Tensor::from_i32(vec![2, k], (0..2 * k).map(|_| rng.gen_range(-(1 << 16)..1 << 16)).collect()).unwrap();
            one_node_in_the_vm(&m, &[x]);
        }
    }
    let (rows, k) = (64, 576);
    let bytes = gguf.tensor_bytes("token_embd.weight").unwrap();
    let e = Q8_0Owned::from_gguf(&bytes[..rows * k / 32 * 34]).unwrap();
    let weights = vec![
        Tensor::from_i8(vec![rows, k], e.qs.clone()).unwrap(),
        Tensor::from_i32(vec![rows, k / 32], e.d.clone()).unwrap(),
    ];
    for act in [ActBits::I8, ActBits::I16] {
        let m = model_with(i32s(vec![1, k]), weights.clone(), Op::LinearQ8_0 { qs: 0, d: 1, exp: e.exp, act });
        let x = Tensor::from_i32(vec![1, k], (0..k).map(|_| rng.gen_range(-(1 << 16)..1 << 16)).collect()).unwrap();
        one_node_in_the_vm(&m, &[x]);
    }
    let m = model_with(i32s(vec![5]), weights, Op::EmbedQ8_0 { qs: 0, d: 1, exp: e.exp, frac: 14 });
    one_node_in_the_vm(&m, &[Tensor::from_i32(vec![5], vec![0, 63, 7, 7, 31]).unwrap()]);
    let e = Q8_0Owned::from_gguf(&bytes).unwrap();
    let vocab = e.qs.len() / k;
    let weights =
        vec![Tensor::from_i8(vec![vocab, k], e.qs).unwrap(), Tensor::from_i32(vec![vocab, k / 32], e.d).unwrap()];
    let m = model_with(i32s(vec![1, k]), weights, Op::LinearQ8_0 { qs: 0, d: 1, exp: e.exp, act: ActBits::I16 });
    let x = Tensor::from_i32(vec![1, k], (0..k).map(|_| rng.gen_range(-(1 << 17)..1 << 17)).collect()).unwrap();
    let steps = one_node_in_the_vm(&m, &[x]);
    eprintln!("tied output layer {vocab} x {k} (16-bit activations): {steps} VM steps");
}
