//! Every kernel against the native executor: random shapes and values, the VM's output
//! bytes equal the native output bytes and the output region's subtree root equals the
//! native tensor commitment.

use opml_compiler::{compile_node, compile_node_with, matches_native};
use opml_dnn::exec::run_all;
use opml_dnn::graph::{ConstSpec, Graph, Model, Node, Op};
use opml_dnn::ops::elementwise::{QAddParams, QMulParams};
use opml_dnn::ops::llm::qlinear::ActBits;
use opml_dnn::ops::llm::token::{gen_len, prompt_len};
use opml_dnn::{DType, Tensor, TensorSpec};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const MAX_STEPS: u64 = 200_000_000;

fn rand_tensor(rng: &mut ChaCha8Rng, dtype: DType, shape: Vec<usize>) -> Tensor {
    let n: usize = shape.iter().product();
    match dtype {
        DType::I8 => Tensor::from_i8(shape, (0..n).map(|_| rng.gen::<i8>()).collect()).unwrap(),
        DType::I32 => {
            // Mix huge values (wrap-around) with small ones.
            let v =
                (0..n).map(|_| if rng.gen_bool(0.3) { rng.gen::<i32>() } else { rng.gen_range(-5000..5000) }).collect();
            Tensor::from_i32(shape, v).unwrap()
        }
    }
}

/// One-node model over `inputs`, with random constants of `consts` specs.
fn one_node(rng: &mut ChaCha8Rng, inputs: Vec<TensorSpec>, consts: Vec<TensorSpec>, op: Op) -> (Model, Vec<Tensor>) {
    let n_in = inputs.len();
    let weights: Vec<Tensor> = consts.iter().map(|s| rand_tensor(rng, s.dtype, s.shape.clone())).collect();
    let graph = Graph {
        inputs: inputs.clone(),
        consts: consts.iter().enumerate().map(|(i, s)| ConstSpec { name: format!("c{i}"), spec: s.clone() }).collect(),
        nodes: vec![Node { name: "n".into(), op, inputs: (0..n_in).collect() }],
        output: n_in,
    };
    let model = Model::new(graph, weights).unwrap();
    let xs = inputs.iter().map(|s| rand_tensor(rng, s.dtype, s.shape.clone())).collect();
    (model, xs)
}

/// Run node 0 natively and in the VM; compare bytes and commitments. Returns VM steps.
fn check(model: &Model, xs: &[Tensor]) -> Result<u64, TestCaseError> {
    let slots = run_all(model, xs).unwrap();
    let native = &slots[xs.len()];
    let prog = compile_node(model, 0).unwrap();
    let ins: Vec<&Tensor> = xs.iter().collect();
    // The pre-state computed from the region roots alone is the built machine's state.
    let mut m0 = prog.machine(&ins).unwrap();
    prop_assert_eq!(prog.roots(&ins).unwrap().pre_state().unwrap(), m0.state());
    let run = prog.run(&ins, MAX_STEPS).unwrap();
    prop_assert_eq!(run.output.to_le_bytes(), native.to_le_bytes());
    prop_assert!(matches_native(&run, native));
    Ok(run.steps)
}

fn i8s(shape: Vec<usize>) -> TensorSpec {
    TensorSpec::new(DType::I8, shape)
}

fn i32s(shape: Vec<usize>) -> TensorSpec {
    TensorSpec::new(DType::I32, shape)
}

fn zp() -> impl Strategy<Value = i32> {
    -128i32..=127
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn linear(seed in any::<u64>(), lead in proptest::collection::vec(1usize..4, 0..3), k in 0usize..70, n in 1usize..20, bias in any::<bool>(), izp in zp()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut shape = lead.clone();
        shape.push(k);
        let mut consts = vec![i8s(vec![n, k])];
        if bias { consts.push(i32s(vec![n])); }
        let op = Op::Linear { weight: 0, bias: bias.then_some(1), input_zp: izp };
        let (m, xs) = one_node(&mut rng, vec![i8s(shape)], consts, op);
        check(&m, &xs)?;
    }

    #[test]
    fn linear_without_dot4_gives_the_same_bits(seed in any::<u64>(), k in 1usize..50, n in 1usize..10, izp in zp()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let op = Op::Linear { weight: 0, bias: Some(1), input_zp: izp };
        let (m, xs) = one_node(&mut rng, vec![i8s(vec![3, k])], vec![i8s(vec![n, k]), i32s(vec![n])], op);
        let with = compile_node(&m, 0).unwrap().run(&[&xs[0]], MAX_STEPS).unwrap();
        let without = compile_node_with(&m, 0, false).unwrap().run(&[&xs[0]], MAX_STEPS).unwrap();
        prop_assert_eq!(&with.output, &without.output);
        let native = &run_all(&m, &xs).unwrap()[1];
        prop_assert!(matches_native(&without, native));
    }

    #[test]
    fn matmul(seed in any::<u64>(), batch in proptest::option::of(1usize..4), mm in 1usize..8, k in 0usize..40, n in 1usize..9, azp in zp(), bzp in zp()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (sa, sb) = match batch {
            Some(t) => (vec![t, mm, k], vec![t, k, n]),
            None => (vec![mm, k], vec![k, n]),
        };
        let (m, xs) = one_node(&mut rng, vec![i8s(sa), i8s(sb)], vec![], Op::MatMul { a_zp: azp, b_zp: bzp });
        check(&m, &xs)?;
    }

    #[test]
    fn conv2d(seed in any::<u64>(), nb in 1usize..3, c in 1usize..4, h in 1usize..8, w in 1usize..8, o in 1usize..5,
              kh in 1usize..4, kw in 1usize..4, s in (1usize..3, 1usize..3), pad in (0usize..2, 0usize..2, 0usize..2, 0usize..2),
              bias in any::<bool>(), izp in zp()) {
        let padding = [pad.0, pad.1, pad.2, pad.3];
        prop_assume!(h + pad.0 + pad.2 >= kh && w + pad.1 + pad.3 >= kw);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut consts = vec![i8s(vec![o, c, kh, kw])];
        if bias { consts.push(i32s(vec![o])); }
        let op = Op::Conv2d { weight: 0, bias: bias.then_some(1), stride: [s.0, s.1], padding, input_zp: izp };
        let (m, xs) = one_node(&mut rng, vec![i8s(vec![nb, c, h, w])], consts, op);
        check(&m, &xs)?;
    }

    #[test]
    fn maxpool2d(seed in any::<u64>(), nc in (1usize..3, 1usize..4), h in 1usize..9, w in 1usize..9, k in (1usize..4, 1usize..4),
                 s in (1usize..3, 1usize..3), pad in (0usize..3, 0usize..3, 0usize..3, 0usize..3)) {
        let padding = [pad.0 % k.0, pad.1 % k.1, pad.2 % k.0, pad.3 % k.1];
        prop_assume!(h + padding[0] + padding[2] >= k.0 && w + padding[1] + padding[3] >= k.1);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let op = Op::MaxPool2d { kernel: [k.0, k.1], stride: [s.0, s.1], padding };
        let (m, xs) = one_node(&mut rng, vec![i8s(vec![nc.0, nc.1, h, w])], vec![], op);
        check(&m, &xs)?;
    }

    #[test]
    fn avgpool2d(seed in any::<u64>(), nc in (1usize..3, 1usize..4), h in 1usize..9, w in 1usize..9, k in (1usize..4, 1usize..4), s in (1usize..3, 1usize..3)) {
        prop_assume!(h >= k.0 && w >= k.1);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let op = Op::AvgPool2d { kernel: [k.0, k.1], stride: [s.0, s.1] };
        let (m, xs) = one_node(&mut rng, vec![i8s(vec![nc.0, nc.1, h, w])], vec![], op);
        check(&m, &xs)?;
    }

    #[test]
    fn requantize(seed in any::<u64>(), shape in proptest::collection::vec(1usize..6, 1..4), per_channel in any::<bool>(), axis_pick in any::<usize>(),
                  out_zp in zp(), lo in zp(), hi in zp()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let axis = axis_pick % shape.len();
        let ch = if per_channel { shape[axis] } else { 1 };
        // 2^30 and 3 * 2^29 (0.5, 0.75) make exact ties of SRDHM and RDBPOT common.
        let multipliers: Vec<i32> = (0..ch)
            .map(|_| match rng.gen_range(0..4) {
                0 => 1 << 30,
                1 => 3 << 29,
                2 => rng.gen_range(0..i32::MAX),
                _ => rng.gen_range(1 << 30..i32::MAX),
            })
            .collect();
        let shifts: Vec<i32> = (0..ch).map(|_| if rng.gen_bool(0.5) { rng.gen_range(-31..=30) } else { rng.gen_range(-12..=2) }).collect();
        let (act_min, act_max) = (lo.min(hi), lo.max(hi));
        let op = Op::Requantize { axis, multipliers, shifts, out_zp, act_min, act_max };
        let (m, xs) = one_node(&mut rng, vec![i32s(shape)], vec![], op);
        check(&m, &xs)?;
    }

    /// Small inputs, multipliers 0.5 / 0.75 and small right shifts, no clamping: exact
    /// rounding ties on every other element.
    #[test]
    fn requantize_ties(seed in any::<u64>(), mult in prop_oneof![Just(1i32 << 30), Just(3i32 << 29)], shift in -3i32..=1, out_zp in -20i32..20) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let op = Op::Requantize { axis: 0, multipliers: vec![mult], shifts: vec![shift], out_zp, act_min: -128, act_max: 127 };
        let (m, mut xs) = one_node(&mut rng, vec![i32s(vec![256])], vec![], op);
        xs[0] = Tensor::from_i32(vec![256], (0..256).map(|_| rng.gen_range(-150..150)).collect()).unwrap();
        check(&m, &xs)?;
    }

    #[test]
    fn relu(seed in any::<u64>(), shape in proptest::collection::vec(0usize..9, 1..4), wide in any::<bool>(), zero_point in zp()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let spec = if wide { i32s(shape) } else { i8s(shape) };
        let (m, xs) = one_node(&mut rng, vec![spec], vec![], Op::Relu { zero_point });
        check(&m, &xs)?;
    }

    #[test]
    fn add(seed in any::<u64>(), shape in proptest::collection::vec(0usize..9, 1..4)) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (m, xs) = one_node(&mut rng, vec![i32s(shape.clone()), i32s(shape)], vec![], Op::Add);
        check(&m, &xs)?;
    }

    #[test]
    fn lut(seed in any::<u64>(), shape in proptest::collection::vec(0usize..9, 1..4)) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let table: Vec<i8> = (0..256).map(|_| rng.gen()).collect();
        let (m, xs) = one_node(&mut rng, vec![i8s(shape)], vec![], Op::Lut { table });
        check(&m, &xs)?;
    }

    #[test]
    fn reshape(seed in any::<u64>(), a in 1usize..7, b in 1usize..7, c in 1usize..5, wide in any::<bool>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let spec = if wide { i32s(vec![a, b, c]) } else { i8s(vec![a, b, c]) };
        let (m, xs) = one_node(&mut rng, vec![spec], vec![], Op::Reshape { shape: vec![a * b * c] });
        check(&m, &xs)?;
    }

    #[test]
    fn argmax(seed in any::<u64>(), lead in proptest::collection::vec(0usize..5, 0..3), len in 1usize..12, wide in any::<bool>(), small in any::<bool>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut shape = lead;
        shape.push(len);
        let spec = if wide { i32s(shape) } else { i8s(shape) };
        let (m, mut xs) = one_node(&mut rng, vec![spec], vec![], Op::ArgMax);
        if small {
            // Few distinct values: ties must resolve to the first maximum.
            let t = &xs[0];
            let v: Vec<i32> = t.to_i32_vec().iter().map(|v| v.rem_euclid(3)).collect();
            xs[0] = match t.dtype() {
                DType::I8 => Tensor::from_i8(t.shape().to_vec(), v.iter().map(|&x| x as i8).collect()).unwrap(),
                DType::I32 => Tensor::from_i32(t.shape().to_vec(), v).unwrap(),
            };
        }
        check(&m, &xs)?;
    }

    #[test]
    fn qadd(seed in any::<u64>(), shape in proptest::collection::vec(0usize..7, 1..4), zps in (zp(), zp(), zp()), lr in (zp(), zp()),
            left_shift in 0u32..=20, shifts in (-25i32..=2, -25i32..=2, -31i32..=2)) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut mult = || if rng.gen_bool(0.2) { 1 << 30 } else { rng.gen_range(1 << 30..i32::MAX) };
        let p = QAddParams {
            a_zp: zps.0, a_mult: mult(), a_shift: shifts.0, b_zp: zps.1, b_mult: mult(), b_shift: shifts.1,
            left_shift, out_mult: mult(), out_shift: shifts.2, out_zp: zps.2, act_min: lr.0.min(lr.1), act_max: lr.0.max(lr.1),
        };
        let (m, xs) = one_node(&mut rng, vec![i8s(shape.clone()), i8s(shape)], vec![], Op::QAdd(p));
        check(&m, &xs)?;
    }

    #[test]
    fn qmul(seed in any::<u64>(), shape in proptest::collection::vec(0usize..7, 1..4), zps in (zp(), zp(), zp()), lr in (zp(), zp()), shift in -20i32..=3) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mult = if rng.gen_bool(0.2) { 1 << 30 } else { rng.gen_range(1 << 30..i32::MAX) };
        let p = QMulParams { a_zp: zps.0, b_zp: zps.1, mult, shift, out_zp: zps.2, act_min: lr.0.min(lr.1), act_max: lr.0.max(lr.1) };
        let (m, xs) = one_node(&mut rng, vec![i8s(shape.clone()), i8s(shape)], vec![], Op::QMul(p));
        check(&m, &xs)?;
    }

    #[test]
    fn transpose(seed in any::<u64>(), shape in proptest::collection::vec(0usize..5, 0..5), wide in any::<bool>(), key in any::<u64>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut perm: Vec<usize> = (0..shape.len()).collect();
        // A key-dependent permutation.
        for i in (1..perm.len()).rev() { perm.swap(i, (key as usize >> (i % 16)) % (i + 1)); }
        let spec = if wide { i32s(shape) } else { i8s(shape) };
        let (m, xs) = one_node(&mut rng, vec![spec], vec![], Op::Transpose { perm });
        check(&m, &xs)?;
    }

    #[test]
    fn slice(seed in any::<u64>(), shape in proptest::collection::vec(1usize..6, 1..5), wide in any::<bool>(), cuts in proptest::collection::vec((any::<usize>(), any::<usize>()), 5)) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (mut starts, mut ends) = (vec![], vec![]);
        for (d, &(p, q)) in shape.iter().zip(&cuts) {
            let (a, b) = (p % (d + 1), q % (d + 1));
            starts.push(a.min(b));
            ends.push(a.max(b));
        }
        let spec = if wide { i32s(shape) } else { i8s(shape) };
        let (m, xs) = one_node(&mut rng, vec![spec], vec![], Op::Slice { starts, ends });
        check(&m, &xs)?;
    }

    #[test]
    fn concat(seed in any::<u64>(), shape in proptest::collection::vec(1usize..5, 1..4), axis_pick in any::<usize>(), sizes in proptest::collection::vec(0usize..4, 1..4), wide in any::<bool>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let axis = axis_pick % shape.len();
        let specs: Vec<TensorSpec> = sizes.iter().map(|&k| {
            let mut s = shape.clone();
            s[axis] = k;
            if wide { i32s(s) } else { i8s(s) }
        }).collect();
        let (m, xs) = one_node(&mut rng, specs, vec![], Op::Concat { axis });
        check(&m, &xs)?;
    }

    #[test]
    fn gather(seed in any::<u64>(), idx_shape in proptest::collection::vec(0usize..5, 1..3), v in 1usize..9, d in 0usize..7, wide in any::<bool>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let table = if wide { i32s(vec![v, d]) } else { i8s(vec![v, d]) };
        let (m, mut xs) = one_node(&mut rng, vec![i32s(idx_shape.clone())], vec![table], Op::Gather { table: 0 });
        let n: usize = idx_shape.iter().product();
        xs[0] = Tensor::from_i32(idx_shape, (0..n).map(|_| rng.gen_range(0..v as i32)).collect()).unwrap();
        check(&m, &xs)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Random tables (including large entries, so that row sums pass 2^32) and rows up to
    /// 600 long; a narrow input range makes many equal elements and ties.
    #[test]
    fn softmax(seed in any::<u64>(), lead in proptest::collection::vec(1usize..4, 0..2), len in 1usize..600, big in any::<bool>(), narrow in any::<bool>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut exp_table: Vec<i32> = (0..256).map(|_| if big { rng.gen_range(0..=1 << 24) } else { rng.gen_range(0..70_000) }).collect();
        exp_table[0] = exp_table[0].max(1);
        let mut shape = lead;
        shape.push(len);
        let (m, mut xs) = one_node(&mut rng, vec![i8s(shape.clone())], vec![], Op::Softmax { exp_table });
        if narrow {
            let n: usize = shape.iter().product();
            xs[0] = Tensor::from_i8(shape, (0..n).map(|_| rng.gen_range(-3..3)).collect()).unwrap();
        }
        check(&m, &xs)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Both norms on i8 and i32 inputs; `small` keeps the values in a narrow range so the
    /// outputs are not all saturated, otherwise full-range i32 rows stress the 128-bit path.
    #[test]
    fn norms(seed in any::<u64>(), rows in 1usize..3, n in prop_oneof![1usize..12, 250usize..300], wide in any::<bool>(), small in any::<bool>(), layer in any::<bool>(),
             beta in any::<bool>(), eps in prop_oneof![Just(0i64), 0i64..1000, Just(1i64 << 62)], shift in prop_oneof![0u32..=20, Just(62u32)], out_zp in zp()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let spec = if wide { i32s(vec![rows, n]) } else { i8s(vec![rows, n]) };
        let mut consts = vec![i32s(vec![n])];
        if beta { consts.push(i32s(vec![n])); }
        let (gamma, beta) = (0, beta.then_some(1));
        let op = if layer { Op::LayerNorm { gamma, beta, eps, shift, out_zp } } else { Op::RmsNorm { gamma, beta, eps, shift, out_zp } };
        let (m, mut xs) = one_node(&mut rng, vec![spec], consts, op);
        if small {
            let v: Vec<i32> = (0..rows * n).map(|_| rng.gen_range(-100..100)).collect();
            xs[0] = if wide { Tensor::from_i32(vec![rows, n], v).unwrap() } else { Tensor::from_i8(vec![rows, n], v.iter().map(|&x| x as i8).collect()).unwrap() };
        }
        check(&m, &xs)?;
    }
}

/// An index outside the table makes the native executor fail; the kernel exits with 1.
#[test]
fn gather_rejects_out_of_range_indices() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (m, _) = one_node(&mut rng, vec![i32s(vec![3])], vec![i8s(vec![4, 2])], Op::Gather { table: 0 });
    for bad in [4, -1] {
        let xs = vec![Tensor::from_i32(vec![3], vec![0, bad, 1]).unwrap()];
        assert!(run_all(&m, &xs).is_err());
        let err = compile_node(&m, 0).unwrap().run(&[&xs[0]], MAX_STEPS).unwrap_err();
        assert!(err.to_string().contains("code 1"), "{err}");
    }
}

/// Activations of `n` values for the block linears: the edges of the 16-bit record forms
/// (`mag` 33: scale 1, values at +-32639, +-32640, +-32767), full-range i32 (the limits
/// included), or magnitudes below `2^mag`, with whole blocks of zeros now and then.
fn stream(rng: &mut ChaCha8Rng, n: usize, mag: u32) -> Vec<i32> {
    const EDGES: [i32; 7] = [32639, -32639, 32640, -32640, 32767, -32767, 0];
    let mut v: Vec<i32> = (0..n)
        .map(|_| match mag {
            33.. if rng.gen_bool(0.2) => EDGES[rng.gen_range(0..EDGES.len())],
            33.. => rng.gen_range(-300..300),
            32 => [i32::MIN, i32::MAX, rng.gen()][rng.gen_range(0..3)],
            31 => rng.gen(),
            _ => rng.gen_range(-(1 << mag)..=1 << mag),
        })
        .collect();
    for b in v.chunks_mut(32) {
        if rng.gen_bool(0.15) {
            b.fill(0);
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Both block linears, both activation widths: random leading shapes, rows of one to
    /// five blocks (or 66, past one 64-block chunk), exponents 0..=62 (1 often: rounding
    /// ties), scales and mins below `2^dmag` or over the whole i32 range with its limits,
    /// activations from a few bits to the i32 limits and at the edges of the 16-bit record
    /// forms.
    #[test]
    fn block_linears(seed in any::<u64>(), lead in proptest::collection::vec(1usize..3, 0..3), blocks in prop_oneof![4 => 1usize..6, 1 => Just(66usize)],
                     n in 1usize..6, exp in prop_oneof![0u32..=62, Just(62u32), Just(24u32), Just(1u32)], wide in any::<bool>(), q4 in any::<bool>(),
                     mag in prop_oneof![3 => 0u32..=32, 1 => Just(33u32)], dmag in prop_oneof![0u32..=20, Just(31u32)]) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let k = 32 * blocks;
        let mut shape = lead.clone();
        shape.push(k);
        let act = if wide { ActBits::I16 } else { ActBits::I8 };
        let scales = |rng: &mut ChaCha8Rng| {
            let v = (0..n * blocks)
                .map(|_| match dmag {
                    31.. => [i32::MIN, i32::MAX, rng.gen()][rng.gen_range(0..3)],
                    _ => rng.gen_range(-(1 << dmag)..=1 << dmag),
                })
                .collect();
            Tensor::from_i32(vec![n, blocks], v).unwrap()
        };
        let (op, weights) = if q4 {
            let qs = Tensor::from_i8(vec![n, k / 2], (0..n * k / 2).map(|_| rng.gen()).collect()).unwrap();
            (Op::LinearQ4_1 { qs: 0, d: 1, m: 2, exp, act }, vec![qs, scales(&mut rng), scales(&mut rng)])
        } else {
            let qs = Tensor::from_i8(vec![n, k], (0..n * k).map(|_| rng.gen()).collect()).unwrap();
            (Op::LinearQ8_0 { qs: 0, d: 1, exp, act }, vec![qs, scales(&mut rng)])
        };
        let m = model_with(i32s(shape.clone()), weights, op);
        let numel = shape.iter().product();
        check(&m, &[Tensor::from_i32(shape, stream(&mut rng, numel, mag)).unwrap()])?;
    }

    /// The Q8_0 embedding: ids of any shape, every exponent and fraction-bit count (left
    /// shifts, right shifts up to 62), scales over the whole i32 range.
    #[test]
    fn embed_q8_0(seed in any::<u64>(), ids_shape in proptest::collection::vec(0usize..4, 1..3), v in 1usize..6, blocks in 1usize..4,
                  exp in 0u32..=62, frac in 0u32..=31) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let k = 32 * blocks;
        let op = Op::EmbedQ8_0 { qs: 0, d: 1, exp, frac };
        let (m, mut xs) = one_node(&mut rng, vec![i32s(ids_shape.clone())], vec![i8s(vec![v, k]), i32s(vec![v, blocks])], op);
        let count = ids_shape.iter().product();
        xs[0] = Tensor::from_i32(ids_shape, (0..count).map(|_| rng.gen_range(0..v as i32)).collect()).unwrap();
        check(&m, &xs)?;
    }
}

/// The block linears without `dot4` (measurements only) give the same bits.
#[test]
fn block_linears_without_dot4_give_the_same_bits() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for (q4, act) in [(true, ActBits::I8), (true, ActBits::I16), (false, ActBits::I8), (false, ActBits::I16)] {
        let (op, consts) = if q4 {
            (
                Op::LinearQ4_1 { qs: 0, d: 1, m: 2, exp: 30, act },
                vec![i8s(vec![3, 32]), i32s(vec![3, 2]), i32s(vec![3, 2])],
            )
        } else {
            (Op::LinearQ8_0 { qs: 0, d: 1, exp: 30, act }, vec![i8s(vec![3, 64]), i32s(vec![3, 2])])
        };
        let (m, mut xs) = one_node(&mut rng, vec![i32s(vec![2, 64])], consts, op);
        xs[0] = Tensor::from_i32(vec![2, 64], stream(&mut rng, 128, 31)).unwrap();
        let without = compile_node_with(&m, 0, false).unwrap().run(&[&xs[0]], MAX_STEPS).unwrap();
        assert!(matches_native(&without, &run_all(&m, &xs).unwrap()[1]), "{q4} {act:?}");
    }
}

/// An id outside the table makes the native executor fail; the kernel exits with 1.
#[test]
fn embed_q8_0_rejects_out_of_range_ids() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let op = Op::EmbedQ8_0 { qs: 0, d: 1, exp: 24, frac: 14 };
    let (m, _) = one_node(&mut rng, vec![i32s(vec![3])], vec![i8s(vec![4, 32]), i32s(vec![4, 1])], op);
    for bad in [4, -1, i32::MIN] {
        let xs = vec![Tensor::from_i32(vec![3], vec![0, bad, 1]).unwrap()];
        assert!(run_all(&m, &xs).is_err());
        let err = compile_node(&m, 0).unwrap().run(&[&xs[0]], MAX_STEPS).unwrap_err();
        assert!(err.to_string().contains("code 1"), "{err}");
    }
}

/// A one-node model over `x` with the given weights (built, not random).
fn model_with(x: TensorSpec, weights: Vec<Tensor>, op: Op) -> Model {
    let graph = Graph {
        inputs: vec![x],
        consts: weights.iter().enumerate().map(|(i, t)| ConstSpec { name: format!("w{i}"), spec: t.spec() }).collect(),
        nodes: vec![Node { name: "n".into(), op, inputs: vec![0] }],
        output: 1,
    };
    Model::new(graph, weights).unwrap()
}

/// A one-node model over `inputs` with the given constants.
fn node_with(inputs: Vec<TensorSpec>, weights: Vec<Tensor>, op: Op) -> Model {
    let n_in = inputs.len();
    let graph = Graph {
        inputs,
        consts: weights.iter().enumerate().map(|(i, w)| ConstSpec { name: format!("c{i}"), spec: w.spec() }).collect(),
        nodes: vec![Node { name: "n".into(), op, inputs: (0..n_in).collect() }],
        output: n_in,
    };
    Model::new(graph, weights).unwrap()
}

/// Wide-stream values: a mix of full-range words, the i32 extremes, and small or
/// medium magnitudes (`mode` picks the mix: 0 everything, 1 small, 2 extremes only,
/// 3 medium, as a transformer's residual stream, 4 tiny: -2..=2).
fn wide_values(rng: &mut ChaCha8Rng, n: usize, mode: u8) -> Vec<i32> {
    const EDGES: [i32; 6] = [i32::MIN, i32::MIN + 1, -1, 0, 1, i32::MAX];
    (0..n)
        .map(|_| match (mode, rng.gen_range(0..4)) {
            (0, 0) | (0, 1) => rng.gen(),
            (0, 2) | (2, _) => EDGES[rng.gen_range(0..EDGES.len())],
            (1, _) => rng.gen_range(-300..300),
            (4, _) => rng.gen_range(-2..=2),
            _ => rng.gen_range(-(1 << 22)..1 << 22),
        })
        .collect()
}

fn wide_tensor(rng: &mut ChaCha8Rng, shape: Vec<usize>, mode: u8) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_i32(shape, wide_values(rng, n, mode)).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every parameter across its whole range (`out_frac` anywhere in `0..=frac + 30 +
    /// gamma_exp`, so output shifts 0..=123), epsilon 0, small and up to `i64::MAX`, rows
    /// of random, extreme, small, tiny (mean squares 0, 1, 2: the largest inverses, up to
    /// 2^61) or all-zero values, gains with the i32 extremes.
    #[test]
    fn rmsnorm_wide(seed in any::<u64>(), lead in proptest::collection::vec(0usize..3, 0..2), n in prop_oneof![1usize..40, 570usize..580],
                    frac in 0u32..=31, gamma_exp in 0u32..=62, out_pick in any::<u32>(), eps_pick in 0u8..5, mode in 0u8..6, gmode in 0u8..4) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let out_frac = out_pick % (frac + 30 + gamma_exp + 1);
        let eps = match eps_pick { 0 | 4 => 0, 1 => rng.gen_range(0..100_000), 2 => rng.gen_range(0..=i64::MAX), _ => i64::MAX };
        let mut shape = lead;
        shape.push(n);
        let gamma = wide_tensor(&mut rng, vec![n], gmode);
        let op = Op::RmsNormWide { gamma: 0, gamma_exp, eps, frac, out_frac };
        let m = node_with(vec![i32s(shape.clone())], vec![gamma], op);
        // Mode 5: all-zero rows.
        let x = if mode == 5 { Tensor::from_i32(shape.clone(), vec![0; shape.iter().product()]).unwrap() } else { wide_tensor(&mut rng, shape, mode) };
        check(&m, &[x])?;
    }

    /// Random shapes, positions and tables (random words, extremes, or all `-2^31` with
    /// inputs all `-2^31`: the one sum that leaves i64).
    #[test]
    fn rope(seed in any::<u64>(), seq in 0usize..4, heads in 0usize..4, half in 0usize..6, extra in 0usize..4, mode in 0u8..4, tmode in 0u8..4) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let positions = seq + extra;
        let pos0 = if positions > seq { rng.gen_range(0..=positions - seq) } else { 0 };
        let table = |rng: &mut ChaCha8Rng| match tmode {
            3 => Tensor::from_i32(vec![positions, half], vec![i32::MIN; positions * half]).unwrap(),
            _ => wide_tensor(rng, vec![positions, half], tmode),
        };
        let (cos, sin) = (table(&mut rng), table(&mut rng));
        let m = node_with(vec![i32s(vec![seq, heads, 2 * half])], vec![cos, sin], Op::Rope { cos: 0, sin: 1, pos0 });
        let x = if tmode == 3 && mode == 3 {
            Tensor::from_i32(vec![seq, heads, 2 * half], vec![i32::MIN; seq * heads * 2 * half]).unwrap()
        } else {
            wide_tensor(&mut rng, vec![seq, heads, 2 * half], mode)
        };
        check(&m, &[x])?;
    }

    /// Every fraction-bit count, shapes with zero elements, gates and ups from every mix.
    #[test]
    fn swiglu(seed in any::<u64>(), shape in proptest::collection::vec(0usize..9, 1..4), frac in 0u32..=31, gmode in 0u8..4, umode in 0u8..4) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let m = node_with(vec![i32s(shape.clone()), i32s(shape.clone())], vec![], Op::SwiGlu { frac });
        let (g, u) = (wide_tensor(&mut rng, shape.clone(), gmode), wide_tensor(&mut rng, shape, umode));
        check(&m, &[g, u])?;
    }
}

/// SmolLM2's RoPE tables (8192 positions, head dim 64, base 100000), built once.
static SMOLLM2_TABLES: std::sync::LazyLock<(Tensor, Tensor)> = std::sync::LazyLock::new(|| {
    let (cos, sin) = opml_dnn::ops::llm::rope::rope_tables(8192, 64, 100_000.0);
    let table = |v: Vec<i32>| Tensor::from_i32(vec![8192, 32], v).unwrap();
    (table(cos), table(sin))
});

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// The model's real tables at random positions anywhere in 0..8192, q- and k-like
    /// head counts, stream values of every mix.
    #[test]
    fn rope_with_smollm2_tables(seed in any::<u64>(), seq in 1usize..4, heads in prop_oneof![Just(3usize), Just(9usize), 1usize..4], pos_pick in any::<usize>(), mode in 0u8..5) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let pos0 = pos_pick % (8192 - seq + 1);
        let (cos, sin) = SMOLLM2_TABLES.clone();
        let m = node_with(vec![i32s(vec![seq, heads, 64])], vec![cos, sin], Op::Rope { cos: 0, sin: 1, pos0 });
        check(&m, &[wide_tensor(&mut rng, vec![seq, heads, 64], mode)])?;
    }
}

/// SmolLM2-135M's sizes and formats (`F = 14`, gains with exponent 30, `eps = fix(1e-5,
/// 28)`): RMSNorm over rows of 576, RoPE of the 9 query heads and 3 key heads at positions
/// up to 8191 with the model's real tables, SwiGLU over the 1536 FFN channels.
#[test]
fn smollm2_sized_rows_match_the_native() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let frac = 14;
    let gamma = Tensor::from_i32(vec![576], (0..576).map(|_| rng.gen_range(1 << 27..=1 << 30)).collect()).unwrap();
    let op = Op::RmsNormWide { gamma: 0, gamma_exp: 30, eps: 2684, frac, out_frac: frac };
    let m = node_with(vec![i32s(vec![3, 576])], vec![gamma], op);
    check(&m, &[wide_tensor(&mut rng, vec![3, 576], 3)]).unwrap();
    let (cos, sin) = &*SMOLLM2_TABLES;
    for (seq, heads, pos0) in [(1, 9, 8191), (1, 3, 8191), (2, 3, 8190), (4, 9, 8188)] {
        let op = Op::Rope { cos: 0, sin: 1, pos0 };
        let m = node_with(vec![i32s(vec![seq, heads, 64])], vec![cos.clone(), sin.clone()], op);
        check(&m, &[wide_tensor(&mut rng, vec![seq, heads, 64], 3)]).unwrap();
    }
    let m = node_with(vec![i32s(vec![1, 1536]), i32s(vec![1, 1536])], vec![], Op::SwiGlu { frac });
    check(&m, &[wide_tensor(&mut rng, vec![1, 1536], 3), wide_tensor(&mut rng, vec![1, 1536], 3)]).unwrap();
}

/// The longest row the rule accepts (2^20): all `-2^31` (the largest sum of squares,
/// 2^82) with epsilon `i64::MAX`, and a lone `-2^31` among zeros (the largest product
/// `|x| INV |gamma|`, near 2^102) with `F = 31`; shifts chosen so that the outputs are
/// neither all zero nor all saturated.
#[test]
fn rmsnorm_wide_at_the_longest_row() {
    let n = 1 << 20;
    let cases = [
        (vec![i32::MIN; n], i64::MAX, 31, 62, 123 - 80),
        ((0..n).map(|i| if i == 7 { i32::MIN } else { 0 }).collect::<Vec<_>>(), 0, 31, 62, 123 - 75),
    ];
    for (x, eps, frac, gamma_exp, out_frac) in cases {
        let gamma =
            Tensor::from_i32(vec![n], (0..n).map(|i| if i % 2 == 0 { i32::MIN } else { i32::MAX }).collect()).unwrap();
        let op = Op::RmsNormWide { gamma: 0, gamma_exp, eps, frac, out_frac };
        let m = node_with(vec![i32s(vec![1, n])], vec![gamma], op);
        let x = Tensor::from_i32(vec![1, n], x).unwrap();
        let native = run_all(&m, std::slice::from_ref(&x)).unwrap()[1].to_i32_vec();
        assert!(native.iter().any(|&v| v != 0 && v != i32::MIN && v != i32::MAX), "{:?}", &native[..8]);
        check(&m, &[x]).unwrap();
    }
}

/// Attention operands of one family: 0 fixed-point values of a few units (`±4 << frac`,
/// capped at i32), 1 any i32 (scores saturate, most weights underflow to 0), 2 only the
/// extremes and their neighbours, 3 tiny values (equal scores, exact halves in every
/// rounding), 4 zeros (uniform weights).
fn attention_values(rng: &mut ChaCha8Rng, n: usize, family: u32, frac: u32) -> Vec<i32> {
    let mag = (4i64 << frac).min(i32::MAX as i64) as i32;
    let extremes = [i32::MIN, i32::MIN + 1, i32::MAX, i32::MAX - 1, 0, 1, -1];
    (0..n)
        .map(|_| match family {
            0 => rng.gen_range(-mag..=mag),
            1 => rng.gen(),
            2 => extremes[rng.gen_range(0..extremes.len())],
            3 => rng.gen_range(-3..=3),
            _ => 0,
        })
        .collect()
}

/// A one-node attention model with q `[seq, heads, hd]`, k, v `[ctx, kv_heads, hd]`, and
/// its operands drawn from the families `fam` (q, k, v).
fn attention_case(
    rng: &mut ChaCha8Rng,
    (seq, heads, kv_heads, hd, ctx): (usize, usize, usize, usize, usize),
    pos0: usize,
    frac: u32,
    fam: [u32; 3],
) -> (Model, Vec<Tensor>) {
    let (qs, ks) = (vec![seq, heads, hd], vec![ctx, kv_heads, hd]);
    let (m, _) =
        one_node(rng, vec![i32s(qs.clone()), i32s(ks.clone()), i32s(ks.clone())], vec![], Op::Attention { pos0, frac });
    let xs = [(qs, fam[0]), (ks.clone(), fam[1]), (ks, fam[2])]
        .into_iter()
        .map(|(shape, f)| {
            let n = shape.iter().product();
            Tensor::from_i32(shape, attention_values(rng, n, f, frac)).unwrap()
        })
        .collect();
    (m, xs)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Causal GQA attention: the prompt case (`pos0 = 0`), the decode case (one query at the
    /// last cache position) and queries anywhere in a longer cache, group sizes 1 and 3
    /// among others, head dims with and without a whole number of unrolled steps, every
    /// fraction width, and operand families from realistic to the i32 limits.
    #[test]
    fn attention(seed in any::<u64>(), case in 0u32..3, seq in 1usize..5, kv in 1usize..3, group in prop_oneof![Just(1usize), Just(3), 2usize..5],
                 hd in prop_oneof![1usize..10, Just(16), Just(64)], extra in 0usize..6, spare in 0usize..2,
                 frac in prop_oneof![Just(16u32), 0u32..=31], fam in (0u32..5, 0u32..5, 0u32..5)) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (seq, pos0, ctx) = match case {
            0 => (seq + 1, 0, seq + 1 + spare),
            1 => (1, extra, extra + 1),
            _ => (seq, extra, extra + seq + spare),
        };
        let dims = (seq, kv * group, kv, hd, ctx);
        let (m, xs) = attention_case(&mut rng, dims, pos0, frac, [fam.0, fam.1, fam.2]);
        check(&m, &xs)?;
    }
}

/// One decode step of SmolLM2-135M's attention (9 query heads over 3 cache heads of 64
/// channels) at position 199 of a 200-long cache, with activations of a few units in
/// 16 fraction bits.
#[test]
fn attention_smollm2_decode_at_ctx_200() {
    let mut rng = ChaCha8Rng::seed_from_u64(135);
    let (m, xs) = attention_case(&mut rng, (1, 9, 3, 64, 200), 199, 16, [0, 0, 0]);
    let steps = check(&m, &xs).unwrap();
    eprintln!("SmolLM2 attention, decode at ctx 200: {steps} VM steps");
}

/// Equal scores over `T` positions give weights `floor(2^30 / T + 1/2)`, whose sum passes
/// 2^30 for `T = 5` among others: values all at an i32 limit then round past it and the
/// output saturates (both signs), while an exact half (`T = 2`, odd values) rounds away
/// from zero.
#[test]
fn attention_weights_summing_past_one_saturate_at_both_limits() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for ctx in 1..=8 {
        for fill in [i32::MIN, i32::MAX, -3, 3] {
            let (m, mut xs) = attention_case(&mut rng, (1, 2, 1, 4, ctx), ctx - 1, 16, [4, 0, 0]);
            xs[2] = Tensor::from_i32(vec![ctx, 1, 4], vec![fill; ctx * 4]).unwrap();
            check(&m, &xs).unwrap();
            xs[2] = Tensor::from_i32(
                vec![ctx, 1, 4],
                (0..ctx * 4).map(|i| fill - (i as i32 % 2) * fill.signum()).collect(),
            )
            .unwrap();
            check(&m, &xs).unwrap();
        }
    }
}

/// Degenerate sizes run (no queries, no heads), and a cache too long for the scratch row
/// is refused by the compiler instead of building an image.
#[test]
fn attention_edge_sizes() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    for (dims, pos0) in [((0, 3, 1, 4, 2), 2), ((2, 0, 1, 4, 3), 1), ((1, 3, 3, 1, 1), 0)] {
        let (m, xs) = attention_case(&mut rng, dims, pos0, 16, [0, 0, 0]);
        check(&m, &xs).unwrap();
    }
    let ctx = 1 << 27;
    let op = Op::Attention { pos0: ctx - 1, frac: 16 };
    let graph = Graph {
        inputs: vec![i32s(vec![1, 1, 1]), i32s(vec![ctx, 1, 1]), i32s(vec![ctx, 1, 1])],
        consts: vec![],
        nodes: vec![Node { name: "n".into(), op, inputs: vec![0, 1, 2] }],
        output: 3,
    };
    let err = compile_node(&Model::new(graph, vec![]).unwrap(), 0).unwrap_err();
    assert!(err.to_string().contains("do not fit"), "{err}");
}

/// A long cache of equal scores (`S = 3000 * 2^30`, about 2^41.6): every weight comes from
/// the row's reciprocal at a large divisor, and the value sums reach 2^61 in magnitude
/// (all values `i32::MIN`) or mix full-range and extreme values.
#[test]
fn attention_long_cache_of_equal_scores() {
    let mut rng = ChaCha8Rng::seed_from_u64(3000);
    for fam in [1, 2] {
        let (m, mut xs) = attention_case(&mut rng, (1, 2, 1, 3, 3000), 2999, 16, [4, 1, fam]);
        check(&m, &xs).unwrap();
        xs[2] = Tensor::from_i32(vec![3000, 1, 3], vec![i32::MIN; 9000]).unwrap();
        check(&m, &xs).unwrap();
    }
}

/// A length word of the generation links: in range, just past `cap`, or an extreme.
fn token_len(rng: &mut ChaCha8Rng, cap: usize) -> i32 {
    const EDGES: [i32; 5] = [i32::MIN, -1, 0, 1, i32::MAX];
    match rng.gen_range(0..5) {
        0 => EDGES[rng.gen_range(0..EDGES.len())],
        1 => rng.gen(),
        2 => cap as i32 + rng.gen_range(1..4),
        _ => rng.gen_range(0..=cap as i32),
    }
}

/// A token id: in the vocabulary, at its edges, negative, or anything.
fn token_id(rng: &mut ChaCha8Rng, vocab: usize) -> i32 {
    let v = vocab as i32;
    let edges = [i32::MIN, -1, 0, v - 1, v, i32::MAX];
    match rng.gen_range(0..4) {
        0 => edges[rng.gen_range(0..edges.len())],
        1 => rng.gen(),
        _ => rng.gen_range(0..v),
    }
}

/// A position around the boundary `edge` (`pick`: 0 position 0, 1 below the edge, 2 at it,
/// 3 just past it, 4 past it by up to 100, 5 huge: `i32::MAX`, `u32::MAX`, above 2^32).
fn token_pos(rng: &mut ChaCha8Rng, edge: usize, pick: u8) -> usize {
    match pick {
        0 => 0,
        1 => rng.gen_range(0..edge.max(1)),
        2 => edge,
        3 => edge + 1,
        4 => edge + rng.gen_range(0..100),
        _ => [i32::MAX as usize, u32::MAX as usize, (1 << 32) + 5][rng.gen_range(0..3)],
    }
}

/// A one-node model of a generation link over `ins` (the arity follows `pos`); VM steps.
fn check_token(op: Op, ins: Vec<Tensor>) -> Result<u64, TestCaseError> {
    let m = node_with(ins.iter().map(Tensor::spec).collect(), vec![], op);
    check(&m, &ins)
}

fn select_case(prompt: Vec<i32>, lengths: [i32; 2], prev: i32, pos: usize, vocab: usize) -> Result<u64, TestCaseError> {
    let mut ins = vec![
        Tensor::from_i32(vec![prompt.len()], prompt).unwrap(),
        Tensor::from_i32(vec![2], lengths.to_vec()).unwrap(),
    ];
    if pos > 0 {
        ins.push(Tensor::from_i32(vec![1], vec![prev]).unwrap());
    }
    check_token(Op::TokenSelect { pos, vocab }, ins)
}

fn emit_case(gen: Vec<i32>, lengths: [i32; 2], next: i32, pos: usize, max_prompt: usize) -> Result<u64, TestCaseError> {
    let max_new = gen.len();
    let mut ins =
        vec![Tensor::from_i32(vec![2], lengths.to_vec()).unwrap(), Tensor::from_i32(vec![1], vec![next]).unwrap()];
    if pos > 0 {
        ins.insert(0, Tensor::from_i32(vec![max_new], gen).unwrap());
    }
    check_token(Op::TokenEmit { pos, max_prompt, max_new }, ins)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// `token_select` on prompts of 1..=40 tokens, lengths anywhere (clamped), ids inside
    /// and outside the vocabulary, positions around the clamped prompt length `n` and `P`.
    #[test]
    fn token_select(seed in any::<u64>(), p in 1usize..=40, vocab in prop_oneof![1usize..50, Just(i32::MAX as usize)],
                    pick in 0u8..6, at_p in any::<bool>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let prompt: Vec<i32> = (0..p).map(|_| token_id(&mut rng, vocab)).collect();
        let lengths = [token_len(&mut rng, p), rng.gen()];
        let n = prompt_len(&lengths, p);
        let pos = token_pos(&mut rng, if at_p { p } else { n }, pick);
        select_case(prompt, lengths, token_id(&mut rng, vocab), pos, vocab)?;
    }

    /// `token_emit` with `max_new` of 1..=70, lengths anywhere (clamped), positions around
    /// both edges of the window (`j = 0`, `j = g`) and beyond, any `gen` and `next` words.
    #[test]
    fn token_emit(seed in any::<u64>(), max_prompt in 1usize..=40, max_new in 1usize..=70, pick in 0u8..6, at_end in any::<bool>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let gen = wide_values(&mut rng, max_new, 0);
        let lengths = [token_len(&mut rng, max_prompt), token_len(&mut rng, max_new)];
        let (n, g) = (prompt_len(&lengths, max_prompt), gen_len(&lengths, max_new));
        let edge = if at_end { n - 1 + g } else { n - 1 };
        let pos = token_pos(&mut rng, edge, pick);
        emit_case(gen, lengths, rng.gen(), pos, max_prompt)?;
    }
}

/// The exact boundaries against hand-derived values: a prompt of `n = 3` tokens (of
/// `P = 5`) and `g = 2` tokens to generate. `token_select` reads the prompt at `pos = n - 1`
/// and `prev` from `pos = n`; `token_emit` writes `j = 0` at `pos = n - 1`, `j = g - 1` at
/// `pos = n`, and nothing at `j = g` or before the window.
#[test]
fn token_links_at_the_window_edges() {
    let (prompt, lengths) = (vec![10, 11, 12, 13, 14], [3, 2]);
    let run = |op: Op, ins: Vec<Tensor>| {
        let m = node_with(ins.iter().map(Tensor::spec).collect(), vec![], op);
        check(&m, &ins).unwrap();
        let prog = compile_node(&m, 0).unwrap();
        let run = prog.run(&ins.iter().collect::<Vec<_>>(), MAX_STEPS).unwrap();
        run.output.as_i32().unwrap().to_vec()
    };
    let l = Tensor::from_i32(vec![2], lengths.to_vec()).unwrap();
    let one = |v: i32| Tensor::from_i32(vec![1], vec![v]).unwrap();
    let p = Tensor::from_i32(vec![5], prompt).unwrap();
    for (pos, want) in [(0, 10), (2, 12), (3, 99), (4, 99), (5, 99)] {
        let mut ins = vec![p.clone(), l.clone()];
        if pos > 0 {
            ins.push(one(99));
        }
        assert_eq!(run(Op::TokenSelect { pos, vocab: 100 }, ins), [want], "select at {pos}");
    }
    let gen = Tensor::from_i32(vec![3], vec![-1, -2, -3]).unwrap();
    for (pos, want) in [(1, [-1, -2, -3]), (2, [7, -2, -3]), (3, [-1, 7, -3]), (4, [-1, -2, -3])] {
        let op = Op::TokenEmit { pos, max_prompt: 5, max_new: 3 };
        assert_eq!(run(op, vec![gen.clone(), l.clone(), one(7)]), want, "emit at {pos}");
    }
    // Position 0 with a one-token prompt is j = 0; a longer prompt starts no window there.
    let op = Op::TokenEmit { pos: 0, max_prompt: 5, max_new: 3 };
    assert_eq!(run(op.clone(), vec![Tensor::from_i32(vec![2], vec![1, 1]).unwrap(), one(7)]), [7, 0, 0]);
    assert_eq!(run(op, vec![l.clone(), one(7)]), [0, 0, 0]);
}

/// Steps of the two links at `P = 32`, `max_new = 64`, mid-generation.
#[test]
fn token_link_steps() {
    let mut rng = ChaCha8Rng::seed_from_u64(32);
    let prompt: Vec<i32> = (0..32).map(|_| rng.gen_range(0..1000)).collect();
    let select = select_case(prompt, [20, 40], 5, 30, 1000).unwrap();
    let emit = emit_case(vec![0; 64], [20, 40], 5, 30, 32).unwrap();
    eprintln!("token_select: {select} steps, token_emit: {emit} steps");
    assert!(select < 50 && emit < 64 * 6 + 50, "{select} / {emit}");
}
