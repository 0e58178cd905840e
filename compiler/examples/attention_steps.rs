//! Measurements for `docs/benchmarks.md` (section Compiler): VM steps and fast-mode time of
//! SmolLM2-135M's attention node (9 query heads over 3 cache heads of 64 channels, a stream
//! with 16 fraction bits) for one decode step at several cache lengths and for a prompt.
//! Operands are random values in `±4` (`±4 << 16`); each VM output is checked against the
//! native executor (bytes and commitment).
//!
//! `cargo run --release -p opml-compiler --example attention_steps`

use opml_compiler::{compile_node, matches_native};
use opml_dnn::exec::run_all;
use opml_dnn::graph::{Graph, Model, Node, Op};
use opml_dnn::{DType, Tensor, TensorSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const HEADS: usize = 9;
const KV_HEADS: usize = 3;
const HEAD_DIM: usize = 64;
const FRAC: u32 = 16;

/// The attention node for `seq` queries at `pos0..pos0 + seq` over a cache of `ctx`, and
/// random operands.
fn attention_model(rng: &mut ChaCha8Rng, seq: usize, pos0: usize, ctx: usize) -> (Model, Vec<Tensor>) {
    let q = vec![seq, HEADS, HEAD_DIM];
    let kv = vec![ctx, KV_HEADS, HEAD_DIM];
    let specs: Vec<TensorSpec> = [&q, &kv, &kv].iter().map(|s| TensorSpec::new(DType::I32, s.to_vec())).collect();
    let graph = Graph {
        inputs: specs.clone(),
        consts: vec![],
        nodes: vec![Node { name: "attn".into(), op: Op::Attention { pos0, frac: FRAC }, inputs: vec![0, 1, 2] }],
        output: 3,
    };
    let xs = specs
        .iter()
        .map(|s| {
            let v = (0..s.numel()).map(|_| rng.gen_range(-(4 << FRAC)..=4 << FRAC)).collect();
            Tensor::from_i32(s.shape.clone(), v).unwrap()
        })
        .collect();
    (Model::new(graph, vec![]).unwrap(), xs)
}

fn main() {
    let mut rng = ChaCha8Rng::seed_from_u64(135);
    println!(
        "| node | (query, head, position) triples | steps | steps / triple | steps / 2^32 | VM time (s) | M steps/s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, seq, pos0, ctx) in [
        ("decode, ctx 128", 1, 127, 128),
        ("decode, ctx 1024", 1, 1023, 1024),
        ("prompt of 128 (pos0 0, ctx 128)", 128, 0, 128),
    ] {
        let (model, xs) = attention_model(&mut rng, seq, pos0, ctx);
        let native = run_all(&model, &xs).unwrap().swap_remove(xs.len());
        let prog = compile_node(&model, 0).unwrap();
        let ins: Vec<&Tensor> = xs.iter().collect();
        let run = prog.run(&ins, 1 << 40).unwrap();
        assert!(matches_native(&run, &native), "VM output differs from native");
        let triples: usize = HEADS * (0..seq).map(|s| pos0 + s + 1).sum::<usize>();
        let secs = run.time.as_secs_f64();
        println!(
            "| attention {name} | {triples} | {} | {:.0} | {:.5} | {secs:.3} | {:.0} |",
            run.steps,
            run.steps as f64 / triples as f64,
            run.steps as f64 / 2f64.powi(32),
            run.steps as f64 / secs / 1e6
        );
    }
}
