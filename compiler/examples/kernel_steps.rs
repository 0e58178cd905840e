//! Measurements for `docs/benchmarks.md` (section Compiler): VM steps per multiply-accumulate
//! of the int8 product kernels with and without `dot4`, a transformer-size node, the
//! block-quantized linears at SmolLM2-135M sizes, and every node of the digits models. Each
//! VM output is checked against the native executor.
//!
//! `cargo run --release -p opml-compiler --example kernel_steps` (`-- block` for the
//! block-quantized linears only)

use std::path::PathBuf;
use std::time::Instant;

use opml_compiler::{compile_node, compile_node_with, matches_native};
use opml_dnn::bundle::Bundle;
use opml_dnn::exec::run_all;
use opml_dnn::graph::{ConstSpec, Graph, Model, Node, Op};
use opml_dnn::ops::llm::qlinear::ActBits;
use opml_dnn::st::read_dataset;
use opml_dnn::{DType, Tensor, TensorSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn i8_tensor(rng: &mut ChaCha8Rng, shape: Vec<usize>) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_i8(shape, (0..n).map(|_| rng.gen()).collect()).unwrap()
}

/// `linear` x [m, k] . W[n, k]^T (+ bias) as a one-node model.
fn linear_model(rng: &mut ChaCha8Rng, m: usize, k: usize, n: usize) -> (Model, Vec<Tensor>) {
    let w = i8_tensor(rng, vec![n, k]);
    let b = Tensor::from_i32(vec![n], (0..n).map(|_| rng.gen_range(-1000..1000)).collect()).unwrap();
    let graph = Graph {
        inputs: vec![TensorSpec::new(DType::I8, vec![m, k])],
        consts: vec![ConstSpec { name: "w".into(), spec: w.spec() }, ConstSpec { name: "b".into(), spec: b.spec() }],
        nodes: vec![Node {
            name: "fc".into(),
            op: Op::Linear { weight: 0, bias: Some(1), input_zp: -3 },
            inputs: vec![0],
        }],
        output: 1,
    };
    (Model::new(graph, vec![w, b]).unwrap(), vec![i8_tensor(rng, vec![m, k])])
}

/// `matmul` A [m, k] . B [k, n] of two activations.
fn matmul_model(rng: &mut ChaCha8Rng, m: usize, k: usize, n: usize) -> (Model, Vec<Tensor>) {
    let graph = Graph {
        inputs: vec![TensorSpec::new(DType::I8, vec![m, k]), TensorSpec::new(DType::I8, vec![k, n])],
        consts: vec![],
        nodes: vec![Node { name: "mm".into(), op: Op::MatMul { a_zp: 5, b_zp: -7 }, inputs: vec![0, 1] }],
        output: 2,
    };
    (Model::new(graph, vec![]).unwrap(), vec![i8_tensor(rng, vec![m, k]), i8_tensor(rng, vec![k, n])])
}

fn random_input(rng: &mut ChaCha8Rng, spec: &TensorSpec) -> Tensor {
    match spec.dtype {
        DType::I8 => i8_tensor(rng, spec.shape.clone()),
        DType::I32 => {
            let n = spec.numel();
            Tensor::from_i32(spec.shape.clone(), (0..n).map(|_| rng.gen_range(-40_000..40_000)).collect()).unwrap()
        }
    }
}

/// A one-node model of a weightless unary op.
fn unary_model(_rng: &mut ChaCha8Rng, shape: Vec<usize>, op: Op, dtype: DType) -> Model {
    let graph = Graph {
        inputs: vec![TensorSpec::new(dtype, shape)],
        consts: vec![],
        nodes: vec![Node { name: "op".into(), op, inputs: vec![0] }],
        output: 1,
    };
    Model::new(graph, vec![]).unwrap()
}

/// LayerNorm / RMSNorm over [128, 384] i32 with gamma and beta.
fn norm_model(rng: &mut ChaCha8Rng, layer: bool) -> Model {
    let n = 384;
    let gamma = Tensor::from_i32(vec![n], (0..n).map(|_| rng.gen_range(1..4000)).collect()).unwrap();
    let beta = Tensor::from_i32(vec![n], (0..n).map(|_| rng.gen_range(-1 << 20..1 << 20)).collect()).unwrap();
    let (g, b) = (0, Some(1));
    let op = if layer {
        Op::LayerNorm { gamma: g, beta: b, eps: 1000, shift: 20, out_zp: 0 }
    } else {
        Op::RmsNorm { gamma: g, beta: b, eps: 1000, shift: 20, out_zp: 0 }
    };
    let graph = Graph {
        inputs: vec![TensorSpec::new(DType::I32, vec![128, n])],
        consts: vec![
            ConstSpec { name: "gamma".into(), spec: gamma.spec() },
            ConstSpec { name: "beta".into(), spec: beta.spec() },
        ],
        nodes: vec![Node { name: "norm".into(), op, inputs: vec![0] }],
        output: 1,
    };
    Model::new(graph, vec![gamma, beta]).unwrap()
}

/// Run node 0 with or without dot4: (steps, seconds), checked against native.
fn measure(model: &Model, xs: &[Tensor], dot4: bool) -> (u64, f64) {
    let native = run_all(model, xs).unwrap().swap_remove(xs.len());
    let prog = compile_node_with(model, 0, dot4).unwrap();
    let ins: Vec<&Tensor> = xs.iter().collect();
    let run = prog.run(&ins, 1 << 40).unwrap();
    assert!(matches_native(&run, &native), "VM output differs from native");
    (run.steps, run.time.as_secs_f64())
}

/// A block linear `[1, k] -> [1, n]` (Q4_1 or Q8_0) with weights of GGUF-like magnitude
/// (scales about 2^14..2^19 at exponent 24) and stream activations with 14 fraction bits.
fn block_linear_model(rng: &mut ChaCha8Rng, q4: bool, n: usize, k: usize, act: ActBits) -> (Model, Vec<Tensor>) {
    let nb = k / 32;
    let scales = |rng: &mut ChaCha8Rng| {
        Tensor::from_i32(vec![n, nb], (0..n * nb).map(|_| rng.gen_range(1 << 14..1 << 19)).collect()).unwrap()
    };
    let (op, weights) = if q4 {
        let mins = Tensor::from_i32(vec![n, nb], (0..n * nb).map(|_| -rng.gen_range(0..1 << 22)).collect()).unwrap();
        (Op::LinearQ4_1 { qs: 0, d: 1, m: 2, exp: 24, act }, vec![i8_tensor(rng, vec![n, k / 2]), scales(rng), mins])
    } else {
        (Op::LinearQ8_0 { qs: 0, d: 1, exp: 24, act }, vec![i8_tensor(rng, vec![n, k]), scales(rng)])
    };
    let graph = Graph {
        inputs: vec![TensorSpec::new(DType::I32, vec![1, k])],
        consts: weights.iter().enumerate().map(|(i, t)| ConstSpec { name: format!("w{i}"), spec: t.spec() }).collect(),
        nodes: vec![Node { name: "fc".into(), op, inputs: vec![0] }],
        output: 1,
    };
    let x = Tensor::from_i32(vec![1, k], (0..k).map(|_| rng.gen_range(-(1 << 15)..1 << 15)).collect()).unwrap();
    (Model::new(graph, weights).unwrap(), vec![x])
}

/// The block-quantized linears of SmolLM2-135M, one row of activations (a decode step).
fn block_linears(rng: &mut ChaCha8Rng) {
    println!("\n## block-quantized linears (SmolLM2-135M sizes, one row)\n");
    println!(
        "| node | activations | MACs | steps | steps/MAC | VM time (s) | steps without dot4 | ratio | native time (ms) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let nodes = [
        ("Q8_0 tied output layer 576 -> 49152", false, 49152, 576),
        ("Q4_1 576 -> 576 (attn_q, attn_output)", true, 576, 576),
        ("Q4_1 576 -> 1536 (ffn_gate, ffn_up)", true, 1536, 576),
        ("Q4_1 1536 -> 576 (ffn_down)", true, 576, 1536),
    ];
    for (name, q4, n, k) in nodes {
        for act in [ActBits::I16, ActBits::I8] {
            let (model, xs) = block_linear_model(rng, q4, n, k, act);
            let t = Instant::now();
            run_all(&model, &xs).unwrap();
            let native = t.elapsed().as_secs_f64();
            let (steps, secs) = measure(&model, &xs, true);
            let (plain, _) = measure(&model, &xs, false);
            let macs = n * k;
            println!(
                "| {name} | {act:?} | {macs} | {steps} | {:.3} | {secs:.2} | {plain} | {:.2}x | {:.2} |",
                steps as f64 / macs as f64,
                plain as f64 / steps as f64,
                native * 1e3
            );
        }
    }
}

fn main() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    if std::env::args().nth(1).as_deref() == Some("block") {
        block_linears(&mut rng);
        return;
    }
    println!("## steps per MAC (int8 products)\n");
    println!("| node | MACs | steps with dot4 | steps/MAC | steps without dot4 | steps/MAC | ratio |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (kind, m, k, n) in
        [("linear", 64, 64, 64), ("linear", 128, 256, 256), ("matmul", 64, 64, 64), ("matmul", 128, 256, 256)]
    {
        let (model, xs) =
            if kind == "linear" { linear_model(&mut rng, m, k, n) } else { matmul_model(&mut rng, m, k, n) };
        let macs = (m * k * n) as f64;
        let (s1, _) = measure(&model, &xs, true);
        let (s0, _) = measure(&model, &xs, false);
        println!(
            "| {kind} {m}x{k} . {k}x{n} | {macs} | {s1} | {:.3} | {s0} | {:.3} | {:.2}x |",
            s1 as f64 / macs,
            s0 as f64 / macs,
            s0 as f64 / s1 as f64
        );
    }

    println!("\n## transformer-size nodes (128 tokens x 384 -> 1536)\n");
    println!("| node | MACs | steps | steps / 2^32 | VM time (s) | M steps/s |");
    println!("|---|---:|---:|---:|---:|---:|");
    for kind in ["linear", "matmul"] {
        let (model, xs) = if kind == "linear" {
            linear_model(&mut rng, 128, 384, 1536)
        } else {
            matmul_model(&mut rng, 128, 384, 1536)
        };
        let (steps, secs) = measure(&model, &xs, true);
        println!(
            "| {kind} [128, 384] -> [128, 1536] | {} | {steps} | {:.4} | {secs:.2} | {:.0} |",
            128 * 384 * 1536,
            steps as f64 / 2f64.powi(32),
            steps as f64 / secs / 1e6
        );
    }

    println!("\n## other ops at transformer sizes\n");
    println!("| node | elements | steps | steps/element | VM time (s) |");
    println!("|---|---:|---:|---:|---:|");
    let rows: Vec<(&str, Model, Vec<Tensor>)> = vec![
        ("layernorm i32 [128, 384]", norm_model(&mut rng, true), vec![]),
        ("rmsnorm i32 [128, 384]", norm_model(&mut rng, false), vec![]),
        (
            "softmax i8 [512, 128]",
            unary_model(
                &mut rng,
                vec![512, 128],
                Op::Softmax {
                    exp_table: (0..256)
                        .map(|d| ((65536.0 * (-(d as f64) * 0.05).exp()).round() as i32).max(1))
                        .collect(),
                },
                DType::I8,
            ),
            vec![],
        ),
        (
            "requantize i32 [128, 1536]",
            unary_model(
                &mut rng,
                vec![128, 1536],
                Op::Requantize {
                    axis: 0,
                    multipliers: vec![1_500_000_000],
                    shifts: vec![-9],
                    out_zp: 3,
                    act_min: -128,
                    act_max: 127,
                },
                DType::I32,
            ),
            vec![],
        ),
        (
            "transpose i8 [128, 12, 32] -> [12, 128, 32]",
            unary_model(&mut rng, vec![128, 12, 32], Op::Transpose { perm: vec![1, 0, 2] }, DType::I8),
            vec![],
        ),
    ];
    for (name, model, _) in rows {
        let spec = &model.graph().inputs[0];
        let xs = vec![random_input(&mut rng, spec)];
        let (steps, secs) = measure(&model, &xs, true);
        let n = spec.numel();
        println!("| {name} | {n} | {steps} | {:.1} | {secs:.2} |", steps as f64 / n as f64);
    }

    block_linears(&mut rng);

    println!("\n## digits models, every node (sample 0)\n");
    println!("| model | node | op | steps | VM time (ms) |");
    println!("|---|---:|---|---:|---:|");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/digits");
    for (bundle, data) in [("cnn.opml", "test_cnn.safetensors"), ("mlp.opml", "test_mlp.safetensors")] {
        let b = Bundle::from_bytes(&std::fs::read(dir.join(bundle)).unwrap()).unwrap();
        let ds = read_dataset(&std::fs::read(dir.join(data)).unwrap(), data, false).unwrap();
        let x = b.quantize_input(ds.sample(0)).unwrap();
        let slots = run_all(&b.model, std::slice::from_ref(&x)).unwrap();
        let g = b.model.graph();
        let mut total = 0u64;
        let t_all = Instant::now();
        for (j, node) in g.nodes.iter().enumerate() {
            let prog = compile_node(&b.model, j).unwrap();
            let ins: Vec<&Tensor> = node.inputs.iter().map(|&s| &slots[s]).collect();
            let run = prog.run(&ins, 1 << 40).unwrap();
            assert!(matches_native(&run, &slots[g.node_slot(j)]));
            total += run.steps;
            println!("| {bundle} | {j} | {} | {} | {:.3} |", node.op.name(), run.steps, run.time.as_secs_f64() * 1e3);
        }
        println!("| {bundle} | all | | {total} | {:.3} (incl. image build) |", t_all.elapsed().as_secs_f64() * 1e3);
    }
}
