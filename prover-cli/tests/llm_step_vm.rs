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
//! It lives here because it needs the compiler and the importer, and neither may depend
//! on the other.

use opml_compiler::{compile_node, matches_native};
use opml_dnn::exec::run_all;
use opml_dnn::Tensor;
use opml_importer::synthetic::random_weights;
use opml_importer::{IntFormat, IntLlama, KvCache, LlamaConfig, LlamaGguf, LlamaTokenizer, StepGraph};

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
