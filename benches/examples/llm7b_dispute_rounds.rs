//! Issue 14: the rounds of a dispute over a whole 64-token greedy generation of a Llama
//! with LLaMA-2-7B's shapes, from the node count of the real generation graph
//! (`opml_importer::GenerationGraph`, `docs/spec/llm-generation.md`) and the game
//! contract's k-ary dissection arithmetic (`opml_cli::game::bisect`, the client's copy of
//! `OptimisticML.postStates` / `pick`): graph rounds until the interval `[0, nodeCount]`
//! is one node, VM rounds until `[0, 2^D]` is one step.
//!
//! The generation graph has one decode step per position `0 .. P + G - 1` (prompt limit
//! `P`, generated-token limit `G`); a step has `token_select`, the embedding, 21 nodes per
//! layer (19 at position 0, which has no KV cache to `concat` to), output norm, output,
//! argmax and `token_emit`. The formula is checked here against `GenerationGraph::new` on
//! small models (`LlamaConfig::tiny()` with 2 and 32 layers, tied and untied output)
//! before it is used at 7B (building the 7B graph itself needs its weights).
//!
//! `cargo run --release -p opml-benches --example llm7b_dispute_rounds [-- --json]`

use opml_cli::game::bisect::worst_case_rounds;
use opml_importer::synthetic::random_weights;
use opml_importer::{GenerationGraph, IntLlama, Limits, LlamaConfig};

/// Generated tokens of the disputed generation.
const GENERATED: usize = 64;
/// Prompt limits of the table.
const PROMPTS: [usize; 4] = [1, 32, 64, 512];
/// Arities of the table (16: the protocol's default).
const ARITIES: [u64; 3] = [16, 8, 2];
/// VM steps of the largest node of a one-token step at 7B: the untied output projection
/// (Q8_0 4096 -> 32000), measured by `llm7b_node_steps` (docs/benchmarks.md).
const LARGEST_NODE_STEPS: u64 = 316_198_447;

/// Nodes of the step at position `pos` of a model with `layers` blocks.
fn step_nodes(layers: usize, pos: usize) -> u64 {
    let per_layer = if pos == 0 { 19 } else { 21 };
    (1 + 1 + per_layer * layers + 3 + 1) as u64
}

/// Nodes of the generation graph for limits `p` + `g`: `p + g - 1` steps.
fn generation_nodes(layers: usize, p: usize, g: usize) -> u64 {
    (0..p + g - 1).map(|pos| step_nodes(layers, pos)).sum()
}

/// The smallest `D` with `steps <= 2^D`.
fn depth_for(steps: u64) -> u32 {
    64 - steps.saturating_sub(1).leading_zeros()
}

/// The formula against the graph `GenerationGraph::new` builds.
fn check_formula() {
    for layers in [2, 32] {
        for untied in [false, true] {
            let c = LlamaConfig { layers, ..LlamaConfig::tiny() };
            let m = IntLlama::from_weights(&c, &random_weights(&c, 14, untied).unwrap(), Default::default()).unwrap();
            for (p, g) in [(1, 1), (1, 4), (3, 2), (5, 7)] {
                let gg = GenerationGraph::new(&m, Limits { max_prompt: p, max_new: g }).unwrap();
                assert_eq!(gg.steps.len(), p + g - 1);
                for s in &gg.steps {
                    assert_eq!(s.nodes as u64, step_nodes(layers, s.pos), "layers {layers} pos {}", s.pos);
                }
                assert_eq!(
                    gg.model.graph().nodes.len() as u64,
                    generation_nodes(layers, p, g),
                    "layers {layers} untied {untied} limits {p} + {g}"
                );
            }
        }
    }
}

fn main() {
    let json = std::env::args().any(|a| a == "--json");
    check_formula();
    let c = LlamaConfig::llama2_7b();
    let l = c.layers;
    let d_min = depth_for(LARGEST_NODE_STEPS);
    if !json {
        println!(
            "node-count formula checked against GenerationGraph::new (tiny widths, 2 and 32 layers, tied and untied)"
        );
        println!(
            "LLaMA-2-7B shapes: {l} layers; a step has {} nodes ({} at position 0); largest node {} VM steps \
             (2^{:.2}): smallest D = {d_min}",
            step_nodes(l, 1),
            step_nodes(l, 0),
            LARGEST_NODE_STEPS,
            (LARGEST_NODE_STEPS as f64).log2()
        );
        println!();
        println!(
            "| prompt limit P | steps (P + {}) | nodes | k | graph rounds | VM rounds, D = 32 | VM rounds, D = {d_min} | rounds, D = 32 |",
            GENERATED - 1
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    }
    let mut rows = Vec::new();
    for p in PROMPTS {
        assert!(p + GENERATED <= c.context, "limits within the 7B context");
        let nodes = generation_nodes(l, p, GENERATED);
        for k in ARITIES {
            let graph = worst_case_rounds(0, nodes, k);
            let vm32 = worst_case_rounds(0, 1 << 32, k);
            let vm_min = worst_case_rounds(0, 1 << d_min, k);
            if json {
                rows.push(format!(
                    "{{\"prompt\":{p},\"generated\":{GENERATED},\"steps\":{},\"nodes\":{nodes},\"k\":{k},\
                     \"graph_rounds\":{graph},\"vm_rounds_d32\":{vm32},\"vm_rounds_d{d_min}\":{vm_min}}}",
                    p + GENERATED - 1
                ));
            } else {
                println!(
                    "| {p} | {} | {nodes} | {k} | {graph} | {vm32} | {vm_min} | {} |",
                    p + GENERATED - 1,
                    graph + vm32
                );
            }
        }
    }
    if json {
        println!("[{}]", rows.join(","));
    }
}
