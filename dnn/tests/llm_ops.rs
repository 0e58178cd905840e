//! The transformer ops as graph nodes (`docs/spec/ops.md` §5, tags 21-29): each variant,
//! run as a one-node `Model` through the executor, gives exactly what its kernel in
//! `dnn::ops::llm` gives when called directly (the routing: operands, constants and
//! parameters reach the kernel in the right places), and a node with bad shapes or
//! parameters is refused when the model is built, naming the op.

use opml_dnn::exec::run_all;
use opml_dnn::ops::dims::RowDims;
use opml_dnn::ops::llm::attention::{attention, AttnDims};
use opml_dnn::ops::llm::blockq::{Q4_1, Q8_0};
use opml_dnn::ops::llm::qlinear::{embed_q8_0, linear_q4_1, linear_q8_0, ActBits, BlockDims};
use opml_dnn::ops::llm::rmsnorm::{rmsnorm_wide, RmsParams};
use opml_dnn::ops::llm::rope::{rope, rope_tables, RopeDims};
use opml_dnn::ops::llm::silu::swiglu;
use opml_dnn::ops::llm::token::{token_emit, token_select};
use opml_dnn::{ConstSpec, DType, Graph, Model, Node, Op, Tensor, TensorSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn graph(op: Op, inputs: &[TensorSpec], consts: &[TensorSpec]) -> Graph {
    Graph {
        inputs: inputs.to_vec(),
        consts: consts.iter().enumerate().map(|(i, s)| ConstSpec { name: format!("c{i}"), spec: s.clone() }).collect(),
        nodes: vec![Node { name: "n".into(), inputs: (0..inputs.len()).collect(), op }],
        output: inputs.len(),
    }
}

/// Run `op` as the only node of a model; its output slot.
fn run1(op: Op, inputs: Vec<Tensor>, consts: Vec<Tensor>) -> Tensor {
    let g = graph(
        op,
        &inputs.iter().map(Tensor::spec).collect::<Vec<_>>(),
        &consts.iter().map(Tensor::spec).collect::<Vec<_>>(),
    );
    let model = Model::new(g, consts).expect("valid node");
    run_all(&model, &inputs).expect("runs").pop().expect("output slot")
}

/// Whether a model with `op` as its only node is refused, and the message names the op.
fn refused(op: Op, inputs: &[TensorSpec], consts: Vec<Tensor>) -> bool {
    let name = op.name();
    let g = graph(op, inputs, &consts.iter().map(Tensor::spec).collect::<Vec<_>>());
    match Model::new(g, consts) {
        Ok(_) => false,
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(name), "error {msg:?} does not name {name}");
            true
        }
    }
}

fn i32s(shape: &[usize], v: Vec<i32>) -> Tensor {
    Tensor::from_i32(shape.to_vec(), v).unwrap()
}

fn i8s(shape: &[usize], v: Vec<i8>) -> Tensor {
    Tensor::from_i8(shape.to_vec(), v).unwrap()
}

fn spec(d: DType, shape: &[usize]) -> TensorSpec {
    TensorSpec::new(d, shape.to_vec())
}

fn rand_i32(rng: &mut ChaCha8Rng, n: usize, mag: i32) -> Vec<i32> {
    (0..n).map(|_| rng.gen_range(-mag..=mag)).collect()
}

fn rand_i8(rng: &mut ChaCha8Rng, n: usize) -> Vec<i8> {
    (0..n).map(|_| rng.gen()).collect()
}

/// Q4_1 weights `[n, k]` as graph constants: nibbles i8 `[n, k/2]`, scales and mins.
fn q4_1_consts(rng: &mut ChaCha8Rng, n: usize, k: usize) -> Vec<Tensor> {
    let b = n * k / 32;
    vec![
        i8s(&[n, k / 2], rand_i8(rng, n * k / 2)),
        i32s(&[n, k / 32], (0..b).map(|_| rng.gen_range(1 << 14..1 << 19)).collect()),
        i32s(&[n, k / 32], (0..b).map(|_| -rng.gen_range(0..1 << 22)).collect()),
    ]
}

fn q8_0_consts(rng: &mut ChaCha8Rng, n: usize, k: usize) -> Vec<Tensor> {
    vec![
        i8s(&[n, k], rand_i8(rng, n * k)),
        i32s(&[n, k / 32], (0..n * k / 32).map(|_| rng.gen_range(1 << 14..1 << 19)).collect()),
    ]
}

fn bytes(t: &Tensor) -> Vec<u8> {
    t.as_i8().unwrap().iter().map(|&v| v as u8).collect()
}

#[test]
fn tags_and_names_are_the_spec_s() {
    let ops = [
        (Op::LinearQ4_1 { qs: 0, d: 1, m: 2, exp: 24, act: ActBits::I16 }, 21, "linear_q4_1", vec![0, 1, 2]),
        (Op::LinearQ8_0 { qs: 0, d: 1, exp: 24, act: ActBits::I8 }, 22, "linear_q8_0", vec![0, 1]),
        (Op::EmbedQ8_0 { qs: 0, d: 1, exp: 24, frac: 14 }, 23, "embed_q8_0", vec![0, 1]),
        (Op::RmsNormWide { gamma: 0, gamma_exp: 30, eps: 3, frac: 14, out_frac: 14 }, 24, "rmsnorm_wide", vec![0]),
        (Op::Rope { cos: 0, sin: 1, pos0: 3 }, 25, "rope", vec![0, 1]),
        (Op::SwiGlu { frac: 14 }, 26, "swiglu", vec![]),
        (Op::Attention { pos0: 3, frac: 14 }, 27, "attention", vec![]),
        (Op::TokenSelect { pos: 3, vocab: 100 }, 28, "token_select", vec![]),
        (Op::TokenEmit { pos: 3, max_prompt: 8, max_new: 4 }, 29, "token_emit", vec![]),
    ];
    for (op, tag, name, weights) in ops {
        assert_eq!((op.tag(), op.name(), op.weights()), (tag, name, weights));
        // The graph file stores ops with serde: the parameters survive a round trip.
        let back: Op = serde_json::from_str(&serde_json::to_string(&op).unwrap()).unwrap();
        assert_eq!(back, op);
    }
}

#[test]
fn block_linears_route_to_their_kernels() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (rows, k, n) = (3, 96, 5);
    for act in [ActBits::I8, ActBits::I16] {
        let x = rand_i32(&mut rng, 2 * rows * k, 1 << 18);
        let c = q4_1_consts(&mut rng, n, k);
        let op = Op::LinearQ4_1 { qs: 0, d: 1, m: 2, exp: 24, act };
        let got = run1(op, vec![i32s(&[2, rows, k], x.clone())], c.clone());
        assert_eq!(got.shape(), [2, rows, n]);
        let nib = bytes(&c[0]);
        let w = Q4_1 { qs: &nib, d: c[1].as_i32().unwrap(), m: c[2].as_i32().unwrap(), exp: 24 };
        let want = linear_q4_1(&x, w, BlockDims { rows: 2 * rows, k, n }, act).unwrap();
        assert_eq!(got.as_i32().unwrap(), want, "q4_1 {act:?}");

        let c = q8_0_consts(&mut rng, n, k);
        let op = Op::LinearQ8_0 { qs: 0, d: 1, exp: 20, act };
        let got = run1(op, vec![i32s(&[2, rows, k], x.clone())], c.clone());
        let w = Q8_0 { qs: c[0].as_i8().unwrap(), d: c[1].as_i32().unwrap(), exp: 20 };
        let want = linear_q8_0(&x, w, BlockDims { rows: 2 * rows, k, n }, act).unwrap();
        assert_eq!(got.as_i32().unwrap(), want, "q8_0 {act:?}");
    }
}

#[test]
fn embedding_routes_to_its_kernel_and_refuses_an_id_outside_the_table_at_run_time() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (vocab, k) = (7, 64);
    let c = q8_0_consts(&mut rng, vocab, k);
    let ids = vec![6, 0, 3, 3];
    let op = Op::EmbedQ8_0 { qs: 0, d: 1, exp: 24, frac: 14 };
    let got = run1(op.clone(), vec![i32s(&[2, 2], ids.clone())], c.clone());
    assert_eq!(got.shape(), [2, 2, k]);
    let w = Q8_0 { qs: c[0].as_i8().unwrap(), d: c[1].as_i32().unwrap(), exp: 24 };
    assert_eq!(got.as_i32().unwrap(), embed_q8_0(&ids, w, k, 14).unwrap());
    let g = graph(op, &[spec(DType::I32, &[1])], &c.iter().map(Tensor::spec).collect::<Vec<_>>());
    let model = Model::new(g, c).unwrap();
    assert!(run_all(&model, &[i32s(&[1], vec![7])]).is_err());
}

#[test]
fn rmsnorm_rope_swiglu_and_attention_route_to_their_kernels() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (seq, heads, kv_heads, hd, pos0) = (3, 4, 2, 8, 2);
    // RMSNorm over rows of 32 (input 18 fraction bits, output 14).
    let x = rand_i32(&mut rng, seq * 32, 1 << 20);
    let gamma = rand_i32(&mut rng, 32, 1 << 30);
    let op = Op::RmsNormWide { gamma: 0, gamma_exp: 30, eps: 77, frac: 18, out_frac: 14 };
    let got = run1(op, vec![i32s(&[seq, 32], x.clone())], vec![i32s(&[32], gamma.clone())]);
    let p = RmsParams { frac: 18, out_frac: 14, gamma_exp: 30, eps: 77 };
    assert_eq!(got.as_i32().unwrap(), rmsnorm_wide(&x, &gamma, RowDims { rows: seq, len: 32 }, &p).unwrap());

    // RoPE at positions pos0.. of a 9-position table (sin and cos are not swapped).
    let (cos, sin) = rope_tables(9, hd, 10_000.0);
    let x = rand_i32(&mut rng, seq * heads * hd, 1 << 20);
    let tables = vec![i32s(&[9, hd / 2], cos.clone()), i32s(&[9, hd / 2], sin.clone())];
    let got = run1(Op::Rope { cos: 0, sin: 1, pos0 }, vec![i32s(&[seq, heads, hd], x.clone())], tables);
    let want = rope(&x, &cos, &sin, RopeDims { seq, heads, head_dim: hd, pos0 }).unwrap();
    assert_eq!(got.as_i32().unwrap(), want);

    // SwiGLU: gate first, up second (not symmetric).
    let (g, u) = (rand_i32(&mut rng, 40, 1 << 17), rand_i32(&mut rng, 40, 1 << 17));
    let got = run1(Op::SwiGlu { frac: 14 }, vec![i32s(&[5, 8], g.clone()), i32s(&[5, 8], u.clone())], vec![]);
    assert_eq!(got.as_i32().unwrap(), swiglu(&g, &u, 14).unwrap());
    assert_ne!(swiglu(&g, &u, 14).unwrap(), swiglu(&u, &g, 14).unwrap());

    // Attention over a cache of pos0 + seq positions, q, k, v in that order.
    let ctx = pos0 + seq;
    let q = rand_i32(&mut rng, seq * heads * hd, 1 << 15);
    let k = rand_i32(&mut rng, ctx * kv_heads * hd, 1 << 15);
    let v = rand_i32(&mut rng, ctx * kv_heads * hd, 1 << 15);
    let ins = vec![
        i32s(&[seq, heads, hd], q.clone()),
        i32s(&[ctx, kv_heads, hd], k.clone()),
        i32s(&[ctx, kv_heads, hd], v.clone()),
    ];
    let got = run1(Op::Attention { pos0, frac: 14 }, ins, vec![]);
    let d = AttnDims { seq, heads, kv_heads, head_dim: hd, ctx, pos0 };
    assert_eq!(got.as_i32().unwrap(), attention(&q, &k, &v, d, 14).unwrap());
    assert_ne!(attention(&q, &v, &k, d, 14).unwrap(), attention(&q, &k, &v, d, 14).unwrap());
}

#[test]
fn bad_shapes_and_parameters_are_refused_when_the_model_is_built() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let x = [spec(DType::I32, &[2, 64])];
    let q4 = || q4_1_consts(&mut ChaCha8Rng::seed_from_u64(5), 3, 64);
    let lin4 = |exp| Op::LinearQ4_1 { qs: 0, d: 1, m: 2, exp, act: ActBits::I8 };
    assert!(!refused(lin4(24), &x, q4()));
    assert!(refused(lin4(63), &x, q4()), "exponent above 62");
    assert!(refused(lin4(24), &[spec(DType::I32, &[2, 96])], q4()), "k mismatch");
    assert!(refused(lin4(24), &[spec(DType::I8, &[2, 64])], q4()), "i8 input");
    assert!(refused(Op::LinearQ4_1 { qs: 0, d: 1, m: 3, exp: 24, act: ActBits::I8 }, &x, q4()), "no const 3");
    let mut swapped = q4();
    swapped.swap(0, 1);
    assert!(refused(lin4(24), &x, swapped), "scales where nibbles go");
    let k48 = vec![i8s(&[3, 24], vec![0; 72]), i32s(&[3, 1], vec![1; 3]), i32s(&[3, 1], vec![0; 3])];
    assert!(refused(lin4(24), &[spec(DType::I32, &[2, 48])], k48), "k not whole blocks");

    let q8 = q8_0_consts(&mut rng, 3, 64);
    let lin8 = |exp| Op::LinearQ8_0 { qs: 0, d: 1, exp, act: ActBits::I16 };
    assert!(!refused(lin8(24), &x, q8.clone()));
    assert!(refused(lin8(63), &x, q8.clone()));
    assert!(refused(lin8(24), &[x[0].clone(), x[0].clone()], q8.clone()), "two inputs");
    let embed = |exp, frac| Op::EmbedQ8_0 { qs: 0, d: 1, exp, frac };
    let ids = [spec(DType::I32, &[4])];
    assert!(!refused(embed(24, 31), &ids, q8.clone()));
    assert!(refused(embed(24, 32), &ids, q8.clone()), "frac above 31");
    assert!(refused(embed(63, 14), &ids, q8.clone()), "exponent above 62");
    assert!(refused(embed(24, 14), &[spec(DType::I8, &[4])], q8), "i8 ids");

    let gamma = || vec![i32s(&[64], vec![1 << 30; 64])];
    let rms = |frac, out_frac, eps| Op::RmsNormWide { gamma: 0, gamma_exp: 30, eps, frac, out_frac };
    assert!(!refused(rms(14, 14, 0), &x, gamma()));
    assert!(refused(rms(32, 14, 0), &x, gamma()), "frac above 31");
    assert!(refused(rms(14, 75, 0), &x, gamma()), "out_frac above frac + 30 + gamma_exp");
    assert!(refused(rms(14, 14, -1), &x, gamma()), "negative eps");
    assert!(refused(rms(14, 14, 0), &[spec(DType::I32, &[2, 32])], gamma()), "gamma length");

    let (cos, sin) = rope_tables(4, 8, 10_000.0);
    let tables = || vec![i32s(&[4, 4], cos.clone()), i32s(&[4, 4], sin.clone())];
    let rope_op = |pos0| Op::Rope { cos: 0, sin: 1, pos0 };
    assert!(!refused(rope_op(1), &[spec(DType::I32, &[3, 2, 8])], tables()));
    assert!(refused(rope_op(2), &[spec(DType::I32, &[3, 2, 8])], tables()), "positions past the table");
    assert!(refused(rope_op(0), &[spec(DType::I32, &[3, 2, 6])], tables()), "head dim / 2 != table width");
    assert!(refused(rope_op(0), &[spec(DType::I32, &[6, 8])], tables()), "rank 2");

    let two = [spec(DType::I32, &[5, 8]), spec(DType::I32, &[5, 8])];
    assert!(!refused(Op::SwiGlu { frac: 31 }, &two, vec![]));
    assert!(refused(Op::SwiGlu { frac: 32 }, &two, vec![]), "frac above 31");
    assert!(refused(Op::SwiGlu { frac: 14 }, &[two[0].clone(), spec(DType::I32, &[8, 5])], vec![]), "shapes differ");
    assert!(refused(Op::SwiGlu { frac: 14 }, &two[..1], vec![]), "one input");

    let qkv = |seq, ctx, kvh| {
        [spec(DType::I32, &[seq, 4, 8]), spec(DType::I32, &[ctx, kvh, 8]), spec(DType::I32, &[ctx, kvh, 8])]
    };
    let attn = |pos0, frac| Op::Attention { pos0, frac };
    assert!(!refused(attn(2, 14), &qkv(3, 5, 2), vec![]));
    assert!(refused(attn(3, 14), &qkv(3, 5, 2), vec![]), "queries past the cache");
    assert!(refused(attn(2, 32), &qkv(3, 5, 2), vec![]), "frac above 31");
    assert!(refused(attn(2, 14), &qkv(3, 5, 3), vec![]), "kv heads do not divide heads");
    let mut mismatched = qkv(3, 5, 2);
    mismatched[2] = spec(DType::I32, &[4, 2, 8]);
    assert!(refused(attn(0, 14), &mismatched, vec![]), "k and v differ");
}

/// The generation links take 2 operands at position 0 and 3 after it (`prev`, `gen`),
/// reach their kernels with the operands in order, and refuse operands of other shapes.
#[test]
fn generation_links_route_and_check_their_operands() {
    let select = |pos| Op::TokenSelect { pos, vocab: 100 };
    let emit = |pos| Op::TokenEmit { pos, max_prompt: 8, max_new: 4 };
    let (prompt, lengths) = (vec![5, 150, 7, -2], vec![3, 2]);
    let (p, l, one) = (i32s(&[4], prompt.clone()), i32s(&[2], lengths.clone()), |v| i32s(&[1], vec![v]));
    for (pos, prev) in [(0, 9), (1, 9), (2, 9), (3, 42), (3, 100)] {
        let mut ins = vec![p.clone(), l.clone()];
        let prev_in = (pos > 0).then_some([prev]);
        if pos > 0 {
            ins.push(one(prev));
        }
        let want = token_select(&prompt, &lengths, prev_in.as_ref().map(|v| &v[..]), pos, 100).unwrap();
        assert_eq!(run1(select(pos), ins, vec![]).as_i32().unwrap(), [want], "select at {pos}");
    }
    let gen = vec![-1, -2, -3, -4];
    for pos in [0, 1, 2, 3, 4] {
        let mut ins = vec![l.clone(), one(77)];
        if pos > 0 {
            ins.insert(0, i32s(&[4], gen.clone()));
        }
        let want = token_emit((pos > 0).then_some(&gen[..]), &lengths, &[77], pos, 8, 4).unwrap();
        assert_eq!(run1(emit(pos), ins, vec![]).as_i32().unwrap(), want, "emit at {pos}");
    }

    let v = |n: usize| spec(DType::I32, &[n]);
    assert!(!refused(select(0), &[v(4), v(2)], vec![]));
    assert!(!refused(select(1), &[v(4), v(2), v(1)], vec![]));
    assert!(refused(select(0), &[v(4), v(2), v(1)], vec![]), "prev at position 0");
    assert!(refused(select(1), &[v(4), v(2)], vec![]), "no prev after position 0");
    assert!(refused(select(7), &[v(4), v(2), v(1), v(1)], vec![]), "four operands");
    assert!(refused(select(0), &[v(4), v(3)], vec![]), "lengths of 3");
    assert!(refused(select(1), &[v(4), v(2), v(2)], vec![]), "prev of 2");
    assert!(refused(select(0), &[spec(DType::I32, &[2, 2]), v(2)], vec![]), "rank-2 prompt");
    assert!(refused(select(0), &[spec(DType::I8, &[4]), v(2)], vec![]), "i8 prompt");
    assert!(refused(Op::TokenSelect { pos: 0, vocab: 0 }, &[v(4), v(2)], vec![]), "empty vocabulary");
    assert!(!refused(emit(0), &[v(2), v(1)], vec![]));
    assert!(!refused(emit(1), &[v(4), v(2), v(1)], vec![]));
    assert!(refused(emit(0), &[v(4), v(2), v(1)], vec![]), "gen at position 0");
    assert!(refused(emit(1), &[v(2), v(1)], vec![]), "no gen after position 0");
    assert!(refused(emit(7), &[v(2), v(1)], vec![]), "no gen at position 7");
    assert!(refused(emit(1), &[v(5), v(2), v(1)], vec![]), "gen longer than max_new");
    assert!(refused(emit(1), &[v(4), v(2), v(2)], vec![]), "next of 2");
    assert!(refused(Op::TokenEmit { pos: 0, max_prompt: 8, max_new: 0 }, &[v(2), v(1)], vec![]), "max_new 0");
    assert!(refused(Op::TokenEmit { pos: 0, max_prompt: 0, max_new: 4 }, &[v(2), v(1)], vec![]), "max_prompt 0");
}
