//! Outputs and every commitment are identical for 1, 2 and 8 threads, over random models
//! and inputs; commitments and graph states follow their definitions.

mod common;

use opml_dnn::commit::{
    descriptor_roots, graph_states, model_commitment, padded_root, slot_vector_len, tensor_commitment, SlotTree,
};
use opml_dnn::exec::run_all;
use opml_dnn::ops::elementwise::QAddParams;
use opml_dnn::trace::Trace;
use opml_dnn::{ConstSpec, DType, Graph, Model, Node, Op, Tensor, TensorSpec};
use opml_merkle::{bytes_root, leaves_root, verify_path, Hash};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn rq(r: &mut ChaCha8Rng, ch: usize, relu: bool) -> Op {
    let zp = r.gen_range(-128..=127);
    Op::Requantize {
        axis: 1,
        multipliers: (0..ch).map(|_| r.gen_range(1 << 30..=i32::MAX)).collect(),
        shifts: (0..ch).map(|_| r.gen_range(-14..=-6)).collect(),
        out_zp: zp,
        act_min: if relu { zp } else { -128 },
        act_max: 127,
    }
}

struct Builder {
    g: Graph,
    w: Vec<Tensor>,
}

impl Builder {
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
}

fn rand8(r: &mut ChaCha8Rng, n: usize) -> Vec<i8> {
    (0..n).map(|_| r.gen()).collect()
}

/// A random CNN (conv, requantize, residual qadd, pool, linear, layernorm, softmax) or MLP.
fn random_model(seed: u64) -> (Model, Tensor) {
    let r = &mut ChaCha8Rng::seed_from_u64(seed);
    let big = r.gen_bool(0.3);
    let (c, h) = if big { (8, 32) } else { (r.gen_range(1..=4), r.gen_range(4..=12)) };
    let batch = r.gen_range(1..=2);
    let input = TensorSpec::new(DType::I8, vec![batch, c, h, h]);
    let mut b =
        Builder { g: Graph { inputs: vec![input.clone()], consts: vec![], nodes: vec![], output: 0 }, w: vec![] };
    let x = Tensor::from_i8(input.shape.clone(), rand8(r, input.numel())).unwrap();
    let oc = if big { 16 } else { r.gen_range(1..=8) };
    let wt = b.konst(Tensor::from_i8(vec![oc, c, 3, 3], rand8(r, oc * c * 9)).unwrap());
    let bias = b.konst(Tensor::from_i32(vec![oc], (0..oc).map(|_| r.gen_range(-5000..5000)).collect()).unwrap());
    let s = b.push(
        Op::Conv2d {
            weight: wt,
            bias: Some(bias),
            stride: [1, 1],
            padding: [1, 1, 1, 1],
            input_zp: r.gen_range(-128..=127),
        },
        vec![0],
    );
    let a = b.push(rq(r, oc, true), vec![s]);
    // Residual: a second conv of the same shape, added back.
    let wt2 = b.konst(Tensor::from_i8(vec![oc, oc, 3, 3], rand8(r, oc * oc * 9)).unwrap());
    let s2 =
        b.push(Op::Conv2d { weight: wt2, bias: None, stride: [1, 1], padding: [1, 1, 1, 1], input_zp: 0 }, vec![a]);
    let a2 = b.push(rq(r, oc, false), vec![s2]);
    let p = QAddParams {
        a_zp: 0,
        a_mult: 1 << 30,
        a_shift: 0,
        b_zp: 3,
        b_mult: 1_500_000_000,
        b_shift: 0,
        left_shift: 20,
        out_mult: 1 << 30,
        out_shift: -19,
        out_zp: -5,
        act_min: -128,
        act_max: 127,
    };
    let sum = b.push(Op::QAdd(p), vec![a, a2]);
    let pooled = if r.gen_bool(0.5) {
        b.push(Op::MaxPool2d { kernel: [2, 2], stride: [2, 2], padding: [0, 0, 0, 0] }, vec![sum])
    } else {
        b.push(Op::AvgPool2d { kernel: [2, 2], stride: [2, 2] }, vec![sum])
    };
    let feat = oc * (h / 2) * (h / 2);
    let flat = b.push(Op::Reshape { shape: vec![batch, feat] }, vec![pooled]);
    let n = r.gen_range(2..=12);
    let lw = b.konst(Tensor::from_i8(vec![n, feat], rand8(r, n * feat)).unwrap());
    let lin = b.push(Op::Linear { weight: lw, bias: None, input_zp: r.gen_range(-128..=127) }, vec![flat]);
    let gamma = b.konst(Tensor::from_i32(vec![n], (0..n).map(|_| r.gen_range(-1000..1000)).collect()).unwrap());
    let ln = b.push(Op::LayerNorm { gamma, beta: None, eps: 1, shift: 16, out_zp: 0 }, vec![lin]);
    let et: Vec<i32> = (0..256).map(|i| ((1 << 16) as f64 * (-(i as f64) / 16.0).exp()).round() as i32).collect();
    let sm = b.push(Op::Softmax { exp_table: et }, vec![ln]);
    let _am = b.push(Op::ArgMax, vec![sm]);
    b.g.output = sm;
    (Model::new(b.g, b.w).unwrap(), x)
}

fn pool(n: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn same_bits_and_commitments_for_1_2_8_threads(seed in any::<u64>()) {
        let (model, x) = random_model(seed);
        let mut results = Vec::new();
        for t in [1, 2, 8] {
            let res = pool(t).install(|| {
                let slots = run_all(&model, std::slice::from_ref(&x)).unwrap();
                let images = common::images(&model);
                let root = model_commitment(&model, &images);
                let trace = Trace::with_model_commitment(&model, root, &slots);
                (slots, trace, root)
            });
            results.push(res);
        }
        prop_assert_eq!(&results[0], &results[1]);
        prop_assert_eq!(&results[0], &results[2]);
    }
}

#[test]
fn graph_states_match_a_from_scratch_root_and_paths_verify() {
    let (model, x) = random_model(7);
    let slots = run_all(&model, &[x]).unwrap();
    let trace = Trace::with_model_commitment(&model, [0; 32], &slots);
    let len = slot_vector_len(&model);
    assert!(len.is_power_of_two() && len >= slots.len());
    let commits: Vec<Hash> = slots.iter().map(|t| bytes_root(&t.to_le_bytes())).collect();
    let m = model.graph().inputs.len();
    for i in 0..=model.graph().nodes.len() {
        let mut v = vec![[0u8; 32]; len];
        v[..m + i].copy_from_slice(&commits[..m + i]);
        assert_eq!(trace.states[i], leaves_root(&v), "S_{i}");
    }
    // S_{i+1} differs from S_i in exactly node i+1's slot: a path for that slot proves both.
    let mut tree = SlotTree::new(len);
    for (i, c) in commits.iter().enumerate() {
        let before = tree.root();
        let path = tree.path(i);
        assert!(verify_path(&before, &[0u8; 32], i as u64, &path));
        tree.set(i, *c);
        assert!(verify_path(&tree.root(), c, i as u64, &path));
    }
    assert_eq!(graph_states(len, &commits[..m], &commits[m..]), trace.states);
}

#[test]
fn tensor_commitment_is_the_root_of_the_little_endian_bytes() {
    // One leaf: the raw bytes, zero padded (hand-derived).
    let t = Tensor::from_i32(vec![2], vec![1, -2]).unwrap();
    let mut leaf = [0u8; 32];
    leaf[..8].copy_from_slice(&[1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff]);
    assert_eq!(tensor_commitment(&t), leaf);
    let t8 = Tensor::from_i8(vec![40], (0..40).map(|i| i as i8 - 20).collect()).unwrap();
    let bytes: Vec<u8> = (0..40).map(|i| (i as i8 - 20) as u8).collect();
    assert_eq!(tensor_commitment(&t8), bytes_root(&bytes));
}

#[test]
fn model_commitment_binds_weights_params_wiring_and_images() {
    let (model, _) = random_model(3);
    let commit = |m: &Model| model_commitment(m, &common::images(m));
    let images = common::images(&model);
    let base = model_commitment(&model, &images);
    assert_eq!(base, padded_root(&descriptor_roots(&model, &images)));
    // A changed kernel code root or argument blob length of one node.
    for j in 0..images.len() {
        let mut im = images.clone();
        im[j].code_root[0] ^= 1;
        assert_ne!(model_commitment(&model, &im), base, "code root of node {j}");
        let mut im = images.clone();
        im[j].args_len += 1;
        assert_ne!(model_commitment(&model, &im), base, "args length of node {j}");
    }
    // A changed weight element.
    let mut w = model.weights().to_vec();
    let d = w[0].to_i32_vec();
    let mut d8: Vec<i8> = d.iter().map(|&v| v as i8).collect();
    d8[0] = d8[0].wrapping_add(1);
    w[0] = Tensor::from_i8(w[0].shape().to_vec(), d8).unwrap();
    let m2 = Model::new(model.graph().clone(), w).unwrap();
    assert_ne!(commit(&m2), base);
    // A changed parameter.
    let mut g = model.graph().clone();
    if let Op::Conv2d { input_zp, .. } = &mut g.nodes[0].op {
        *input_zp = if *input_zp == 0 { 1 } else { 0 };
    }
    assert_ne!(commit(&Model::new(g, model.weights().to_vec()).unwrap()), base);
}

#[test]
fn trace_file_round_trips_and_rejects_garbage() {
    let (model, x) = random_model(11);
    let slots = run_all(&model, &[x]).unwrap();
    let trace = Trace::with_model_commitment(&model, [0; 32], &slots);
    let bytes = trace.to_bytes();
    assert_eq!(bytes.len(), 52 + 32 + 32 + 64 * model.graph().nodes.len());
    assert_eq!(Trace::from_bytes(&bytes).unwrap(), trace);
    assert!(Trace::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    let mut bad = bytes.clone();
    bad[0] = b'X';
    assert!(Trace::from_bytes(&bad).is_err());
    assert_eq!(trace.final_state(), *trace.states.last().unwrap());
}

#[test]
fn hex_round_trip() {
    let h: Hash = std::array::from_fn(|i| (i * 7) as u8);
    assert_eq!(opml_dnn::bundle::parse_hex32(&opml_dnn::bundle::hex32(&h)), Some(h));
    assert_eq!(opml_dnn::bundle::parse_hex32("0x12"), None);
}
