//! Measurements for `docs/benchmarks.md` (section Compiler): VM steps of the wide row ops
//! of a Llama-family layer (`rmsnorm_wide`, `rope`, `swiglu`) at SmolLM2-135M's sizes, one
//! token (`F = 14`, RoPE with the model's real tables at position 8191). Each VM output is
//! checked against the native executor.
//!
//! `cargo run --release -p opml-compiler --example llm_row_steps`

use opml_compiler::{compile_node, matches_native};
use opml_dnn::exec::run_all;
use opml_dnn::graph::{ConstSpec, Graph, Model, Node, Op};
use opml_dnn::ops::llm::rope::rope_tables;
use opml_dnn::{DType, Tensor, TensorSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// SmolLM2's stream format.
const FRAC: u32 = 14;

fn i32_spec(shape: &[usize]) -> TensorSpec {
    TensorSpec::new(DType::I32, shape.to_vec())
}

/// Stream values `|x| < 2^18` (16 in real units at `F = 14`): every `exp` of the sigmoid
/// takes its full path, none is cut off to 0.
fn stream(rng: &mut ChaCha8Rng, shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_i32(shape.to_vec(), (0..n).map(|_| rng.gen_range(-(1 << 18)..1 << 18)).collect()).unwrap()
}

fn one_node(inputs: Vec<TensorSpec>, weights: Vec<Tensor>, op: Op) -> Model {
    let n_in = inputs.len();
    let graph = Graph {
        inputs,
        consts: weights.iter().enumerate().map(|(i, w)| ConstSpec { name: format!("c{i}"), spec: w.spec() }).collect(),
        nodes: vec![Node { name: "n".into(), op, inputs: (0..n_in).collect() }],
        output: n_in,
    };
    Model::new(graph, weights).unwrap()
}

/// Run node 0 in the VM, check it against native: (steps, seconds).
fn measure(model: &Model, xs: &[Tensor]) -> (u64, f64) {
    let native = run_all(model, xs).unwrap().swap_remove(xs.len());
    let prog = compile_node(model, 0).unwrap();
    let ins: Vec<&Tensor> = xs.iter().collect();
    let run = prog.run(&ins, 1 << 40).unwrap();
    assert!(matches_native(&run, &native), "VM output differs from native");
    (run.steps, run.time.as_secs_f64())
}

fn main() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let gamma = Tensor::from_i32(vec![576], (0..576).map(|_| rng.gen_range(1 << 27..=1 << 30)).collect()).unwrap();
    let (cos, sin) = rope_tables(8192, 64, 100_000.0);
    let table = |v: Vec<i32>| Tensor::from_i32(vec![8192, 32], v).unwrap();
    let (cos, sin) = (table(cos), table(sin));
    let rms = |rows| {
        let op = Op::RmsNormWide { gamma: 0, gamma_exp: 30, eps: 2684, frac: FRAC, out_frac: FRAC };
        one_node(vec![i32_spec(&[rows, 576])], vec![gamma.clone()], op)
    };
    let rope = |heads| {
        let op = Op::Rope { cos: 0, sin: 1, pos0: 8191 };
        one_node(vec![i32_spec(&[1, heads, 64])], vec![cos.clone(), sin.clone()], op)
    };
    let swiglu = one_node(vec![i32_spec(&[1, 1536]), i32_spec(&[1, 1536])], vec![], Op::SwiGlu { frac: FRAC });
    let nodes: Vec<(&str, Model)> = vec![
        ("rmsnorm_wide i32 [1, 576]", rms(1)),
        ("rmsnorm_wide i32 [8, 576]", rms(8)),
        ("rope q i32 [1, 9, 64] at 8191", rope(9)),
        ("rope k i32 [1, 3, 64] at 8191", rope(3)),
        ("swiglu i32 [1, 1536]", swiglu),
    ];
    println!("| node | elements | steps | steps/element | VM time (ms) |");
    println!("|---|---:|---:|---:|---:|");
    for (name, model) in nodes {
        let xs: Vec<Tensor> = model.graph().inputs.iter().map(|s| stream(&mut rng, &s.shape)).collect();
        let (steps, secs) = measure(&model, &xs);
        let n = model.graph().inputs[0].numel();
        println!("| {name} | {n} | {steps} | {:.1} | {:.2} |", steps as f64 / n as f64, secs * 1e3);
    }
}
