//! DNN benchmarks (`cargo bench -p opml-benches --bench dnn`), reported in
//! `docs/benchmarks.md` § DNN:
//! * the digits CNN and two synthetic models (a CNN and an MLP of tens of millions of
//!   MACs): plain inference, the honest path (inference + input/output commitments), and
//!   full trace generation (every tensor committed + graph states), with throughput in
//!   bytes of tensor data hashed;
//! * int8 matmul (GMAC/s).

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use opml_compiler::binding::model_commitment;
use opml_dnn::bundle::Bundle;
use opml_dnn::commit::io_commitments;
use opml_dnn::exec::run_all;
use opml_dnn::ops::dims::MatDims;
use opml_dnn::ops::matmul::gemm_nt_i8;
use opml_dnn::trace::Trace;
use opml_dnn::{ConstSpec, DType, Graph, Model, Node, Op, Tensor, TensorSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn rand8(r: &mut ChaCha8Rng, n: usize) -> Vec<i8> {
    (0..n).map(|_| r.gen()).collect()
}

struct Builder {
    g: Graph,
    w: Vec<Tensor>,
    r: ChaCha8Rng,
}

impl Builder {
    fn new(input: TensorSpec) -> Self {
        Self {
            g: Graph { inputs: vec![input], consts: vec![], nodes: vec![], output: 0 },
            w: vec![],
            r: ChaCha8Rng::seed_from_u64(1),
        }
    }
    fn push(&mut self, op: Op, inputs: Vec<usize>) -> usize {
        let n = self.g.nodes.len();
        self.g.nodes.push(Node { name: format!("n{n}"), op, inputs });
        self.g.inputs.len() + n
    }
    fn konst(&mut self, t: Tensor) -> usize {
        self.g.consts.push(ConstSpec { name: format!("c{}", self.w.len()), spec: t.spec() });
        self.w.push(t);
        self.w.len() - 1
    }
    fn weight(&mut self, shape: Vec<usize>) -> usize {
        let n = shape.iter().product();
        let v = rand8(&mut self.r, n);
        self.konst(Tensor::from_i8(shape, v).unwrap())
    }
    fn requant(&mut self, ch: usize, x: usize, relu: bool) -> usize {
        let op = Op::Requantize {
            axis: 1,
            multipliers: vec![1 << 30; ch],
            shifts: vec![-10; ch],
            out_zp: -20,
            act_min: if relu { -20 } else { -128 },
            act_max: 127,
        };
        self.push(op, vec![x])
    }
    fn finish(mut self, out: usize) -> (Model, Tensor) {
        self.g.output = out;
        let spec = self.g.inputs[0].clone();
        let x = Tensor::from_i8(spec.shape.clone(), rand8(&mut self.r, spec.numel())).unwrap();
        (Model::new(self.g, self.w).unwrap(), x)
    }
}

/// A small VGG-style CNN on a 3 x 64 x 64 input: conv(3->32), conv(32->32), maxpool,
/// conv(32->64), maxpool, linear(16384->256), linear(256->10): about 64 M MACs.
fn synthetic_cnn() -> (Model, Tensor) {
    let mut b = Builder::new(TensorSpec::new(DType::I8, vec![1, 3, 64, 64]));
    let mut cur = 0;
    let conv = |b: &mut Builder, cur: usize, cin: usize, cout: usize| {
        let w = b.weight(vec![cout, cin, 3, 3]);
        let c =
            b.push(Op::Conv2d { weight: w, bias: None, stride: [1, 1], padding: [1; 4], input_zp: -128 }, vec![cur]);
        b.requant(cout, c, true)
    };
    cur = conv(&mut b, cur, 3, 32);
    cur = conv(&mut b, cur, 32, 32);
    cur = b.push(Op::MaxPool2d { kernel: [2, 2], stride: [2, 2], padding: [0; 4] }, vec![cur]);
    cur = conv(&mut b, cur, 32, 64);
    cur = b.push(Op::MaxPool2d { kernel: [2, 2], stride: [2, 2], padding: [0; 4] }, vec![cur]);
    let f = b.push(Op::Reshape { shape: vec![1, 64 * 16 * 16] }, vec![cur]);
    let w3 = b.weight(vec![256, 64 * 16 * 16]);
    let l1 = b.push(Op::Linear { weight: w3, bias: None, input_zp: -128 }, vec![f]);
    let a3 = b.requant(256, l1, true);
    let w4 = b.weight(vec![10, 256]);
    let l2 = b.push(Op::Linear { weight: w4, bias: None, input_zp: -128 }, vec![a3]);
    let out = b.requant(10, l2, false);
    b.finish(out)
}

/// The same as [`synthetic_cnn`] but with a 16-channel input (64 KiB): an input-heavy
/// model where hashing the input is a larger share of the honest path.
fn synthetic_cnn_wide_input() -> (Model, Tensor) {
    let mut b = Builder::new(TensorSpec::new(DType::I8, vec![1, 16, 64, 64]));
    let w1 = b.weight(vec![32, 16, 3, 3]);
    let c1 = b.push(Op::Conv2d { weight: w1, bias: None, stride: [1, 1], padding: [1; 4], input_zp: -128 }, vec![0]);
    let a1 = b.requant(32, c1, true);
    let w2 = b.weight(vec![32, 32, 3, 3]);
    let c2 = b.push(Op::Conv2d { weight: w2, bias: None, stride: [1, 1], padding: [1; 4], input_zp: -128 }, vec![a1]);
    let a2 = b.requant(32, c2, true);
    let p = b.push(Op::MaxPool2d { kernel: [2, 2], stride: [2, 2], padding: [0; 4] }, vec![a2]);
    let f = b.push(Op::Reshape { shape: vec![1, 32 * 32 * 32] }, vec![p]);
    let w3 = b.weight(vec![256, 32 * 32 * 32]);
    let l1 = b.push(Op::Linear { weight: w3, bias: None, input_zp: -128 }, vec![f]);
    let a3 = b.requant(256, l1, true);
    let w4 = b.weight(vec![10, 256]);
    let l2 = b.push(Op::Linear { weight: w4, bias: None, input_zp: -128 }, vec![a3]);
    let out = b.requant(10, l2, false);
    b.finish(out)
}

/// 1024 -> 4096 -> 4096 -> 1024, batch 1: about 25 M MACs.
fn synthetic_mlp() -> (Model, Tensor) {
    let mut b = Builder::new(TensorSpec::new(DType::I8, vec![1, 1024]));
    let mut cur = 0;
    for (k, n) in [(1024, 4096), (4096, 4096), (4096, 1024)] {
        let w = b.weight(vec![n, k]);
        let l = b.push(Op::Linear { weight: w, bias: None, input_zp: -128 }, vec![cur]);
        cur = b.requant(n, l, true);
    }
    b.finish(cur)
}

fn digits_cnn() -> (Model, Tensor) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/digits");
    let b = Bundle::from_bytes(&std::fs::read(dir.join("cnn.opml")).unwrap()).unwrap();
    let data =
        opml_dnn::st::read_dataset(&std::fs::read(dir.join("test_cnn.safetensors")).unwrap(), "t", false).unwrap();
    let x = b.quantize_input(data.sample(0)).unwrap();
    (b.model, x)
}

fn macs(m: &Model) -> u64 {
    let g = m.graph();
    g.nodes
        .iter()
        .enumerate()
        .map(|(j, n)| {
            let out = &m.specs()[g.node_slot(j)];
            match &n.op {
                Op::Conv2d { weight, .. } | Op::Linear { weight, .. } => {
                    let w = &g.consts[*weight].spec.shape;
                    (out.numel() * w[1..].iter().product::<usize>()) as u64
                }
                _ => 0,
            }
        })
        .sum()
}

fn models(c: &mut Criterion) {
    for (name, (model, x)) in [
        ("digits_cnn", digits_cnn()),
        ("synthetic_cnn", synthetic_cnn()),
        ("synthetic_cnn_wide_input", synthetic_cnn_wide_input()),
        ("synthetic_mlp", synthetic_mlp()),
    ] {
        let slots = run_all(&model, std::slice::from_ref(&x)).unwrap();
        let bytes: usize = slots.iter().map(|t| t.spec().byte_len()).sum();
        let root = model_commitment(&model).unwrap();
        eprintln!(
            "{name}: {} nodes, {:.1} M MACs, {bytes} bytes of tensors in the trace",
            model.graph().nodes.len(),
            macs(&model) as f64 / 1e6
        );
        let mut g = c.benchmark_group(format!("dnn/{name}"));
        g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
        g.bench_function("inference", |b| b.iter(|| run_all(&model, std::slice::from_ref(&x)).unwrap()));
        g.bench_function("honest_path_inference_plus_io_commitments", |b| {
            b.iter(|| {
                let s = run_all(&model, std::slice::from_ref(&x)).unwrap();
                io_commitments(std::slice::from_ref(&x), &s[model.graph().output])
            })
        });
        g.bench_function("io_commitments_only", |b| {
            b.iter(|| io_commitments(std::slice::from_ref(&x), &slots[model.graph().output]))
        });
        g.throughput(Throughput::Bytes(bytes as u64));
        g.bench_function("trace_from_slots", |b| b.iter(|| Trace::with_model_commitment(&model, root, &slots)));
        g.bench_function("trace_inference_plus_all_commitments", |b| {
            b.iter(|| {
                let s = run_all(&model, std::slice::from_ref(&x)).unwrap();
                Trace::with_model_commitment(&model, root, &s)
            })
        });
        g.finish();
    }
}

fn matmul(c: &mut Criterion) {
    let mut r = ChaCha8Rng::seed_from_u64(2);
    let mut g = c.benchmark_group("dnn/int8_matmul");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    for (m, n, k) in [(256usize, 1024usize, 1024usize), (1, 4096, 4096)] {
        let a = rand8(&mut r, m * k);
        let bm = rand8(&mut r, n * k);
        g.throughput(Throughput::Elements((m * n * k) as u64));
        g.bench_with_input(BenchmarkId::from_parameter(format!("{m}x{k}x{n}")), &(), |b, _| {
            b.iter(|| gemm_nt_i8(&a, &bm, MatDims { batch: 1, m, k, n }))
        });
    }
    g.finish();
}

/// The shared tree alone (`opml_merkle::bytes_root`) on 4 MiB, on 1 and 2 threads: the
/// ceiling for trace generation on this machine.
fn tree(c: &mut Criterion) {
    let data: Vec<u8> = (0..4 << 20).map(|i: u32| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    let mut g = c.benchmark_group("dnn/bytes_root_4MiB");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Bytes(data.len() as u64));
    for t in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
        g.bench_with_input(BenchmarkId::new("threads", t), &(), |b, _| {
            b.iter(|| pool.install(|| opml_merkle::bytes_root(&data)))
        });
    }
    g.finish();
}

criterion_group!(benches, models, matmul, tree);
criterion_main!(benches);
