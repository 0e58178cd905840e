//! Issue 14's dispute figures for a Llama with LLaMA-2-7B's shapes (pseudo-random weights
//! from `opml_importer::SyntheticLlama`, seed 14): VM steps and fast-mode time of its
//! largest block linears for one token (`ffn_gate` 4096 -> 11008 and `ffn_down`
//! 11008 -> 4096 in Q4_1, the untied `output` 4096 -> 32000 in Q8_0; 16-bit activation
//! blocks, as `IntFormat::default()`), each checked bit for bit against the native
//! executor; then the worst-case dispute rounds of a 64-token generation, computed from
//! the protocol's dissection rule (`docs/spec/protocol.md`) and the step graph's node
//! count (`docs/spec/llm-graph.md`), not played on chain. That rounds table predates the
//! generation graph (one graph per claim, `token_select` / `token_emit` per step):
//! `llm7b_dispute_rounds` computes them from its node count and the game's own bisect
//! arithmetic, and is the one docs/benchmarks.md cites.
//!
//! `cargo run --release -p opml-benches --example llm7b_node_steps [-- --skip-vm | --skip-prompt]`

use opml_compiler::{compile_node, matches_native};
use opml_dnn::exec::run_all;
use opml_dnn::graph::{ConstSpec, Graph, Model, Node, Op};
use opml_dnn::ops::llm::blockq::bytes_as_i8;
use opml_dnn::ops::llm::fixed_import::{fixed_from_f16, FixedVec};
use opml_dnn::ops::llm::qlinear::ActBits;
use opml_dnn::{DType, Tensor, TensorSpec};
use opml_importer::{LlamaConfig, Matrix, SyntheticLlama};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The activation width of the integer forward's linears (`IntFormat::default()`).
const ACT: ActBits = ActBits::I16;
/// Prompt and generated tokens of the disputed generation.
const PROMPT: usize = 32;
const GENERATED: usize = 64;
/// The VM phase's depth in the protocol's figures (`docs/spec/protocol.md`, D = 32).
const VM_DEPTH: u32 = 32;

/// A one-node model `linear(x [rows, k])` over `m`'s blocks converted as `IntLlama`
/// converts them (block scales to one exponent per tensor).
fn linear_model(m: &Matrix, rows: usize) -> Model {
    let (n, k) = m.shape();
    let (op, weights) = match m {
        Matrix::Q4_1(b) => {
            let scales: Vec<u16> = b.blocks.iter().flat_map(|b| [b.d, b.m]).collect();
            let FixedVec { values, exp } = fixed_from_f16(&scales).unwrap();
            let (d, mins): (Vec<i32>, Vec<i32>) = values.chunks_exact(2).map(|p| (p[0], p[1])).unzip();
            let qs: Vec<u8> = b.blocks.iter().flat_map(|b| b.qs).collect();
            let weights = vec![
                Tensor::from_i8(vec![n, k / 2], bytes_as_i8(&qs).to_vec()).unwrap(),
                Tensor::from_i32(vec![n, k / 32], d).unwrap(),
                Tensor::from_i32(vec![n, k / 32], mins).unwrap(),
            ];
            (Op::LinearQ4_1 { qs: 0, d: 1, m: 2, exp, act: ACT }, weights)
        }
        Matrix::Q8_0(b) => {
            let scales: Vec<u16> = b.blocks.iter().map(|b| b.d).collect();
            let FixedVec { values, exp } = fixed_from_f16(&scales).unwrap();
            let qs: Vec<i8> = b.blocks.iter().flat_map(|b| b.qs).collect();
            let weights =
                vec![Tensor::from_i8(vec![n, k], qs).unwrap(), Tensor::from_i32(vec![n, k / 32], values).unwrap()];
            (Op::LinearQ8_0 { qs: 0, d: 1, exp, act: ACT }, weights)
        }
    };
    let graph = Graph {
        inputs: vec![TensorSpec::new(DType::I32, vec![rows, k])],
        consts: weights.iter().enumerate().map(|(i, t)| ConstSpec { name: format!("w{i}"), spec: t.spec() }).collect(),
        nodes: vec![Node { name: "linear".into(), op, inputs: vec![0] }],
        output: 1,
    };
    Model::new(graph, weights).unwrap()
}

/// Stream-format activations (F = 14) of normalised rows: values below 2 in real units.
fn activations(rng: &mut ChaCha8Rng, rows: usize, k: usize) -> Tensor {
    Tensor::from_i32(vec![rows, k], (0..rows * k).map(|_| rng.gen_range(-(1 << 15)..1 << 15)).collect()).unwrap()
}

/// Run node 0 natively and in the VM (fast mode); check they agree. (steps, VM seconds).
fn measure(model: &Model, x: &Tensor) -> (u64, f64) {
    let native = run_all(model, std::slice::from_ref(x)).unwrap().swap_remove(1);
    let prog = compile_node(model, 0).unwrap();
    let run = prog.run(&[x], 1 << 40).unwrap();
    assert!(matches_native(&run, &native), "VM output differs from native");
    (run.steps, run.time.as_secs_f64())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().next().unwrap_or("?").to_string())
        .unwrap_or_default()
}

/// Worst-case rounds of the k-ary dissection of `[0, width]`: each round splits the
/// interval into `min(k, width)` pieces of `floor` / `ceil(width / parts)`, and the worst
/// case keeps a largest piece.
fn rounds(mut width: u64, k: u64) -> u32 {
    let mut r = 0;
    while width > 1 {
        width = width.div_ceil(k.min(width));
        r += 1;
    }
    r
}

/// Nodes of one step graph (`docs/spec/llm-graph.md` §3): per layer 19 nodes, plus the two
/// cache `concat`s when the step reads a cache; embedding, output norm, output, argmax.
fn step_nodes(layers: usize, with_cache: bool) -> u64 {
    (layers * if with_cache { 21 } else { 19 } + 4) as u64
}

/// How the generation is cut into step graphs.
struct Layout {
    name: &'static str,
    /// Step graphs: (new tokens, whether the step reads a cache).
    steps: Vec<(usize, bool)>,
}

impl Layout {
    fn nodes(&self, layers: usize) -> u64 {
        self.steps.iter().map(|&(_, cache)| step_nodes(layers, cache)).sum()
    }

    /// Rows of the widest step (the rows of its largest node).
    fn widest(&self) -> usize {
        self.steps.iter().map(|&(seq, _)| seq).max().unwrap_or(0)
    }
}

/// The smallest `D` with `steps <= 2^D`.
fn depth_for(steps: u64) -> u32 {
    64 - steps.saturating_sub(1).leading_zeros()
}

fn main() {
    let skip_vm = std::env::args().any(|a| a == "--skip-vm");
    let skip_prompt = std::env::args().any(|a| a == "--skip-prompt");
    let config = LlamaConfig::llama2_7b();
    // Largest node's VM steps by the rows it takes (one token, the whole prompt).
    let mut largest: Vec<(usize, u64)> = Vec::new();
    if !skip_vm {
        let model = SyntheticLlama::new(config.clone(), 14);
        let layer = model.layer(0);
        let head = model.head();
        let mut rng = ChaCha8Rng::seed_from_u64(14);
        println!("| node | MACs | VM steps | steps/MAC | VM time (s) | M steps/s | load |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        let output = head.output.as_ref().expect("the synthetic output is untied");
        let mut nodes = vec![
            ("blk.0.ffn_gate Q4_1 4096 -> 11008", &layer.ffn_gate, 1),
            ("blk.0.ffn_down Q4_1 11008 -> 4096", &layer.ffn_down, 1),
            ("output Q8_0 4096 -> 32000", output, 1),
        ];
        if !skip_prompt {
            nodes.push(("blk.0.ffn_gate Q4_1 4096 -> 11008", &layer.ffn_gate, PROMPT));
            nodes.push(("output Q8_0 4096 -> 32000", output, PROMPT));
        }
        for (name, m, rows) in nodes {
            let lm = linear_model(m, rows);
            let (n, k) = m.shape();
            let x = activations(&mut rng, rows, k);
            let (steps, secs) = measure(&lm, &x);
            match largest.iter_mut().find(|(r, _)| *r == rows) {
                Some((_, s)) => *s = (*s).max(steps),
                None => largest.push((rows, steps)),
            }
            let macs = (rows * n * k) as u64;
            println!(
                "| {name}, {rows} token(s) | {macs} | {steps} | {:.3} | {secs:.2} | {:.0} | {} |",
                steps as f64 / macs as f64,
                steps as f64 / secs / 1e6,
                load_average()
            );
        }
    }
    // The prompt's forward gives the first token; each later token takes one step.
    let decode_steps = GENERATED - 1;
    let layouts = [
        Layout {
            name: "prompt in one step",
            steps: std::iter::once((PROMPT, false)).chain(std::iter::repeat_n((1, true), decode_steps)).collect(),
        },
        Layout {
            name: "every token its own step",
            steps: std::iter::once((1, false))
                .chain(std::iter::repeat_n((1, true), PROMPT - 1 + decode_steps))
                .collect(),
        },
    ];
    println!();
    println!(
        "A {PROMPT}-token prompt and {GENERATED} generated tokens; a step graph has {} nodes without a cache, {} with one.",
        step_nodes(config.layers, false),
        step_nodes(config.layers, true)
    );
    println!();
    println!("| layout | steps | nodes | largest node (VM steps) | smallest D | k | graph rounds | VM rounds (D = {VM_DEPTH}) | VM rounds (smallest D) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for l in &layouts {
        let nodes = l.nodes(config.layers);
        let big = largest.iter().find(|(r, _)| *r == l.widest()).map(|&(_, s)| s);
        for k in [2u64, 8, 16] {
            let vm32 = match big {
                Some(s) if s > 1 << VM_DEPTH => format!("over 2^{VM_DEPTH} steps"),
                _ => rounds(1 << VM_DEPTH, k).to_string(),
            };
            let (big_s, d, vm_min) = match big {
                Some(s) => (s.to_string(), depth_for(s).to_string(), rounds(1 << depth_for(s), k).to_string()),
                None => ("-".into(), "-".into(), "-".into()),
            };
            println!(
                "| {} | {} | {nodes} | {big_s} | {d} | {k} | {} | {vm32} | {vm_min} |",
                l.name,
                l.steps.len(),
                rounds(nodes, k)
            );
        }
    }
}
