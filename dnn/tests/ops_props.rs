//! Every op, run through the graph executor, against a naive plain-loop reference with the
//! semantics of `docs/spec/ops.md`, on random shapes and values biased to -128/127 and to
//! accumulator extremes.

use opml_dnn::exec::run;
use opml_dnn::ops::elementwise::{QAddParams, QMulParams};
use opml_dnn::{ConstSpec, DType, Graph, Model, Node, Op, Tensor, TensorSpec};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

// ---------------------------------------------------------------- helpers

fn run1(op: Op, inputs: Vec<Tensor>, consts: Vec<Tensor>) -> opml_dnn::Result<Tensor> {
    let graph = Graph {
        inputs: inputs.iter().map(Tensor::spec).collect(),
        consts: consts.iter().enumerate().map(|(i, t)| ConstSpec { name: format!("c{i}"), spec: t.spec() }).collect(),
        nodes: vec![Node { name: "n".into(), inputs: (0..inputs.len()).collect(), op }],
        output: inputs.len(),
    };
    let model = Model::new(graph, consts)?;
    run(&model, &inputs)
}

fn v8(r: &mut ChaCha8Rng) -> i8 {
    match r.gen_range(0..5) {
        0 => -128,
        1 => 127,
        _ => r.gen(),
    }
}

fn vec8(r: &mut ChaCha8Rng, n: usize) -> Vec<i8> {
    (0..n).map(|_| v8(r)).collect()
}

fn v32(r: &mut ChaCha8Rng) -> i32 {
    match r.gen_range(0..6) {
        0 => i32::MIN + r.gen_range(0..1000),
        1 => i32::MAX - r.gen_range(0..1000),
        2 => r.gen(),
        _ => r.gen_range(-100_000..100_000),
    }
}

fn vec32(r: &mut ChaCha8Rng, n: usize) -> Vec<i32> {
    (0..n).map(|_| v32(r)).collect()
}

fn zp(r: &mut ChaCha8Rng) -> i32 {
    v8(r) as i32
}

fn mult(r: &mut ChaCha8Rng) -> (i32, i32) {
    let m = match r.gen_range(0..6) {
        0 => 0,
        1 => i32::MAX,
        2 => 1 << 30,
        3 => r.gen_range(0..=i32::MAX),
        _ => r.gen_range(1 << 30..=i32::MAX),
    };
    let s = match r.gen_range(0..4) {
        0 => -31,
        1 => 30,
        _ => r.gen_range(-31..=30),
    };
    (m, s)
}

fn clamp_pair(r: &mut ChaCha8Rng) -> (i32, i32) {
    let a = zp(r);
    let b = zp(r);
    (a.min(b), a.max(b))
}

fn shape(r: &mut ChaCha8Rng, rank: usize, max: usize) -> Vec<usize> {
    (0..rank).map(|_| r.gen_range(1..=max)).collect()
}

fn shape_any(r: &mut ChaCha8Rng, max_rank: usize, max: usize) -> Vec<usize> {
    let rank = r.gen_range(1..=max_rank);
    shape(r, rank, max)
}

fn strides(s: &[usize]) -> Vec<usize> {
    let mut st = vec![1; s.len()];
    for i in (0..s.len().saturating_sub(1)).rev() {
        st[i] = st[i + 1] * s[i + 1];
    }
    st
}

fn unravel(mut i: usize, s: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; s.len()];
    for a in (0..s.len()).rev() {
        idx[a] = i % s[a];
        i /= s[a];
    }
    idx
}

fn ravel(idx: &[usize], s: &[usize]) -> usize {
    idx.iter().zip(strides(s)).map(|(i, st)| i * st).sum()
}

// ------------------------------------------------------ naive fixed point

/// floor((a*b + 2^30) / 2^31), the a = b = MIN case saturating.
fn srdhm_ref(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    ((a as i128 * b as i128 + (1 << 30)).div_euclid(1 << 31)) as i32
}

/// round(x / 2^e), ties away from zero.
fn rdbpot_ref(x: i32, e: u32) -> i32 {
    let d = 1i128 << e;
    let a = (x as i128).abs();
    let q = (2 * a + d) / (2 * d);
    (if x < 0 { -q } else { q }) as i32
}

fn mbqm_ref(x: i32, m: i32, s: i32) -> i32 {
    let left = s.max(0) as u32;
    let right = (-s).max(0) as u32;
    // The left shift wraps modulo 2^32.
    let xl = ((x as i64) << left) as i32;
    rdbpot_ref(srdhm_ref(xl, m), right)
}

fn round_div(a: i128, b: i128) -> i128 {
    let q = (2 * a.abs() + b) / (2 * b);
    if a < 0 {
        -q
    } else {
        q
    }
}

fn isqrt_ref(v: u128) -> u128 {
    // Binary search (a different algorithm from the library's).
    let (mut lo, mut hi) = (0u128, 1u128 << 64);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        match mid.checked_mul(mid) {
            Some(sq) if sq <= v => lo = mid,
            _ => hi = mid,
        }
    }
    lo
}

// --------------------------------------------------------------- props

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn linear_matches_naive(seed in any::<u64>()) {
        let r = &mut ChaCha8Rng::seed_from_u64(seed);
        let lead = shape_any(r, 2, 4);
        let k = r.gen_range(1..=70);
        let n = r.gen_range(1..=20);
        let m: usize = lead.iter().product();
        let x = vec8(r, m * k);
        let w = vec8(r, n * k);
        let has_bias = r.gen_bool(0.7);
        let b = vec32(r, n);
        let z = zp(r);
        let mut xs = lead.clone();
        xs.push(k);
        let mut consts = vec![Tensor::from_i8(vec![n, k], w.clone()).unwrap()];
        if has_bias {
            consts.push(Tensor::from_i32(vec![n], b.clone()).unwrap());
        }
        let op = Op::Linear { weight: 0, bias: has_bias.then_some(1), input_zp: z };
        let out = run1(op, vec![Tensor::from_i8(xs, x.clone()).unwrap()], consts).unwrap();
        let mut want = Vec::new();
        for i in 0..m {
            for j in 0..n {
                let mut acc: i64 = if has_bias { b[j] as i64 } else { 0 };
                for t in 0..k {
                    acc += (x[i * k + t] as i64 - z as i64) * w[j * k + t] as i64;
                }
                want.push(acc as i32);
            }
        }
        let mut os = lead.clone();
        os.push(n);
        prop_assert_eq!(out.shape(), os.as_slice());
        prop_assert_eq!(out.as_i32().unwrap(), want.as_slice());
    }

    #[test]
    fn matmul_matches_naive(seed in any::<u64>()) {
        let r = &mut ChaCha8Rng::seed_from_u64(seed);
        let batched = r.gen_bool(0.5);
        let bt = if batched { r.gen_range(1..=3) } else { 1 };
        let (m, k, n) = (r.gen_range(1..=9), r.gen_range(1..=40), r.gen_range(1..=9));
        let a = vec8(r, bt * m * k);
        let b = vec8(r, bt * k * n);
        let (za, zb) = (zp(r), zp(r));
        let (sa, sb) = if batched { (vec![bt, m, k], vec![bt, k, n]) } else { (vec![m, k], vec![k, n]) };
        let out = run1(
            Op::MatMul { a_zp: za, b_zp: zb },
            vec![Tensor::from_i8(sa, a.clone()).unwrap(), Tensor::from_i8(sb, b.clone()).unwrap()],
            vec![],
        ).unwrap();
        let mut want = Vec::new();
        for t in 0..bt {
            for i in 0..m {
                for j in 0..n {
                    let mut acc = 0i64;
                    for q in 0..k {
                        acc += (a[(t * m + i) * k + q] as i64 - za as i64) * (b[(t * k + q) * n + j] as i64 - zb as i64);
                    }
                    want.push(acc as i32);
                }
            }
        }
        prop_assert_eq!(out.as_i32().unwrap(), want.as_slice());
    }

    #[test]
    fn conv2d_matches_naive(seed in any::<u64>()) {
        let r = &mut ChaCha8Rng::seed_from_u64(seed);
        let (nb, c, h, w) = (r.gen_range(1..=2), r.gen_range(1..=4), r.gen_range(1..=9), r.gen_range(1..=9));
        let (oc, kh, kw) = (r.gen_range(1..=5), r.gen_range(1..=h.min(4)), r.gen_range(1..=w.min(4)));
        let stride = [r.gen_range(1..=3), r.gen_range(1..=3)];
        let pad = [r.gen_range(0..=2), r.gen_range(0..=2), r.gen_range(0..=2), r.gen_range(0..=2)];
        let x = vec8(r, nb * c * h * w);
        let wt = vec8(r, oc * c * kh * kw);
        let b = vec32(r, oc);
        let z = zp(r);
        let out = run1(
            Op::Conv2d { weight: 0, bias: Some(1), stride, padding: pad, input_zp: z },
            vec![Tensor::from_i8(vec![nb, c, h, w], x.clone()).unwrap()],
            vec![Tensor::from_i8(vec![oc, c, kh, kw], wt.clone()).unwrap(), Tensor::from_i32(vec![oc], b.clone()).unwrap()],
        ).unwrap();
        let oh = (h + pad[0] + pad[2] - kh) / stride[0] + 1;
        let ow = (w + pad[1] + pad[3] - kw) / stride[1] + 1;
        let mut want = Vec::new();
        for bi in 0..nb {
            for o in 0..oc {
                for y in 0..oh {
                    for xx in 0..ow {
                        let mut acc = b[o] as i64;
                        for ci in 0..c {
                            for i in 0..kh {
                                for j in 0..kw {
                                    let iy = (y * stride[0] + i) as i64 - pad[0] as i64;
                                    let ix = (xx * stride[1] + j) as i64 - pad[1] as i64;
                                    if iy >= 0 && iy < h as i64 && ix >= 0 && ix < w as i64 {
                                        let v = x[((bi * c + ci) * h + iy as usize) * w + ix as usize] as i64;
                                        acc += (v - z as i64) * wt[((o * c + ci) * kh + i) * kw + j] as i64;
                                    }
                                }
                            }
                        }
                        want.push(acc as i32);
                    }
                }
            }
        }
        prop_assert_eq!(out.shape(), &[nb, oc, oh, ow][..]);
        prop_assert_eq!(out.as_i32().unwrap(), want.as_slice());
    }

    #[test]
    fn pools_match_naive(seed in any::<u64>()) {
        let r = &mut ChaCha8Rng::seed_from_u64(seed);
        let (nb, c, h, w) = (r.gen_range(1..=2), r.gen_range(1..=3), r.gen_range(1..=8), r.gen_range(1..=8));
        let kernel = [r.gen_range(1..=h.min(3)), r.gen_range(1..=w.min(3))];
        let stride = [r.gen_range(1..=3), r.gen_range(1..=3)];
        let pad = [r.gen_range(0..kernel[0]), r.gen_range(0..kernel[1]), r.gen_range(0..kernel[0]), r.gen_range(0..kernel[1])];
        let x = vec8(r, nb * c * h * w);
        let t = Tensor::from_i8(vec![nb, c, h, w], x.clone()).unwrap();
        let mx = run1(Op::MaxPool2d { kernel, stride, padding: pad }, vec![t.clone()], vec![]).unwrap();
        let av = run1(Op::AvgPool2d { kernel, stride }, vec![t], vec![]).unwrap();
        let oh = (h + pad[0] + pad[2] - kernel[0]) / stride[0] + 1;
        let ow = (w + pad[1] + pad[3] - kernel[1]) / stride[1] + 1;
        let mut want_max = Vec::new();
        for p in 0..nb * c {
            for y in 0..oh {
                for xx in 0..ow {
                    let mut best: Option<i8> = None;
                    for i in 0..kernel[0] {
                        for j in 0..kernel[1] {
                            let iy = (y * stride[0] + i) as i64 - pad[0] as i64;
                            let ix = (xx * stride[1] + j) as i64 - pad[1] as i64;
                            if iy >= 0 && iy < h as i64 && ix >= 0 && ix < w as i64 {
                                let v = x[(p * h + iy as usize) * w + ix as usize];
                                best = Some(best.map_or(v, |b| b.max(v)));
                            }
                        }
                    }
                    want_max.push(best.unwrap());
                }
            }
        }
        prop_assert_eq!(mx.as_i8().unwrap(), want_max.as_slice());
        let (ah, aw) = ((h - kernel[0]) / stride[0] + 1, (w - kernel[1]) / stride[1] + 1);
        let mut want_avg = Vec::new();
        for p in 0..nb * c {
            for y in 0..ah {
                for xx in 0..aw {
                    let mut s = 0i128;
                    for i in 0..kernel[0] {
                        for j in 0..kernel[1] {
                            s += x[(p * h + y * stride[0] + i) * w + xx * stride[1] + j] as i128;
                        }
                    }
                    want_avg.push(round_div(s, (kernel[0] * kernel[1]) as i128) as i8);
                }
            }
        }
        prop_assert_eq!(av.as_i8().unwrap(), want_avg.as_slice());
    }

    #[test]
    fn add_qadd_qmul_match_naive(seed in any::<u64>()) {
        let r = &mut ChaCha8Rng::seed_from_u64(seed);
        let s = shape_any(r, 3, 6);
        let n: usize = s.iter().product();
        let (a32, b32) = (vec32(r, n), vec32(r, n));
        let out = run1(Op::Add, vec![Tensor::from_i32(s.clone(), a32.clone()).unwrap(), Tensor::from_i32(s.clone(), b32.clone()).unwrap()], vec![]).unwrap();
        let want: Vec<i32> = a32.iter().zip(&b32).map(|(&a, &b)| (a as i64 + b as i64) as i32).collect();
        prop_assert_eq!(out.as_i32().unwrap(), want.as_slice());

        let (a8, b8) = (vec8(r, n), vec8(r, n));
        let ((am, ash), (bm, bsh), (om, osh)) = (mult(r), mult(r), mult(r));
        let (lo, hi) = clamp_pair(r);
        let p = QAddParams { a_zp: zp(r), a_mult: am, a_shift: ash.min(0), b_zp: zp(r), b_mult: bm, b_shift: bsh.min(0), left_shift: r.gen_range(0..=20), out_mult: om, out_shift: osh, out_zp: zp(r), act_min: lo, act_max: hi };
        let ta = Tensor::from_i8(s.clone(), a8.clone()).unwrap();
        let tb = Tensor::from_i8(s.clone(), b8.clone()).unwrap();
        let out = run1(Op::QAdd(p), vec![ta.clone(), tb.clone()], vec![]).unwrap();
        let want: Vec<i8> = a8.iter().zip(&b8).map(|(&x, &y)| {
            let xa = (x as i32 - p.a_zp) * (1 << p.left_shift);
            let yb = (y as i32 - p.b_zp) * (1 << p.left_shift);
            let sum = (mbqm_ref(xa, p.a_mult, p.a_shift) as i64 + mbqm_ref(yb, p.b_mult, p.b_shift) as i64) as i32;
            (mbqm_ref(sum, p.out_mult, p.out_shift) as i64 + p.out_zp as i64).clamp(lo as i64, hi as i64) as i8
        }).collect();
        prop_assert_eq!(out.as_i8().unwrap(), want.as_slice());

        let (m, sh) = mult(r);
        let q = QMulParams { a_zp: zp(r), b_zp: zp(r), mult: m, shift: sh, out_zp: zp(r), act_min: lo, act_max: hi };
        let out = run1(Op::QMul(q), vec![ta, tb], vec![]).unwrap();
        let want: Vec<i8> = a8.iter().zip(&b8).map(|(&x, &y)| {
            let prod = (x as i32 - q.a_zp) * (y as i32 - q.b_zp);
            (mbqm_ref(prod, m, sh) as i64 + q.out_zp as i64).clamp(lo as i64, hi as i64) as i8
        }).collect();
        prop_assert_eq!(out.as_i8().unwrap(), want.as_slice());
    }

    #[test]
    fn requantize_matches_naive(seed in any::<u64>()) {
        let r = &mut ChaCha8Rng::seed_from_u64(seed);
        let s = shape_any(r, 4, 5);
        let n: usize = s.iter().product();
        let x = vec32(r, n);
        let axis = r.gen_range(0..s.len());
        let per_tensor = r.gen_bool(0.3);
        let ch = if per_tensor { 1 } else { s[axis] };
        // Half the cases pick small shifts and inputs so that results land inside the clamp
        // range (otherwise most outputs saturate and rounding goes unchecked).
        let realistic = r.gen_bool(0.5);
        let ms: Vec<(i32, i32)> = (0..ch).map(|_| {
            let (m, s) = mult(r);
            if realistic { (m.max(1 << 30), r.gen_range(-12..=0)) } else { (m, s) }
        }).collect();
        let x: Vec<i32> = if realistic {
            (0..n).map(|_| r.gen_range(-(1 << 19)..(1 << 19))).collect()
        } else {
            x
        };
        let (lo, hi) = if realistic { (-128, 127) } else { clamp_pair(r) };
        let z = zp(r);
        let out = run1(Op::Requantize {
            axis,
            multipliers: ms.iter().map(|m| m.0).collect(),
            shifts: ms.iter().map(|m| m.1).collect(),
            out_zp: z, act_min: lo, act_max: hi,
        }, vec![Tensor::from_i32(s.clone(), x.clone()).unwrap()], vec![]).unwrap();
        let want: Vec<i8> = (0..n).map(|i| {
            let c = if per_tensor { 0 } else { unravel(i, &s)[axis] };
            (mbqm_ref(x[i], ms[c].0, ms[c].1) as i64 + z as i64).clamp(lo as i64, hi as i64) as i8
        }).collect();
        prop_assert_eq!(out.as_i8().unwrap(), want.as_slice());
    }

    #[test]
    fn relu_lut_softmax_match_naive(seed in any::<u64>()) {
        let r = &mut ChaCha8Rng::seed_from_u64(seed);
        let s = shape_any(r, 3, 7);
        let n: usize = s.iter().product();
        let x = vec8(r, n);
        let t = Tensor::from_i8(s.clone(), x.clone()).unwrap();
        let z = zp(r);
        let out = run1(Op::Relu { zero_point: z }, vec![t.clone()], vec![]).unwrap();
        let want: Vec<i8> = x.iter().map(|&v| if (v as i32) < z { z as i8 } else { v }).collect();
        prop_assert_eq!(out.as_i8().unwrap(), want.as_slice());
        let x32 = vec32(r, n);
        let out = run1(Op::Relu { zero_point: 0 }, vec![Tensor::from_i32(s.clone(), x32.clone()).unwrap()], vec![]).unwrap();
        let want: Vec<i32> = x32.iter().map(|&v| if v < 0 { 0 } else { v }).collect();
        prop_assert_eq!(out.as_i32().unwrap(), want.as_slice());

        let table = vec8(r, 256);
        let out = run1(Op::Lut { table: table.clone() }, vec![t.clone()], vec![]).unwrap();
        let want: Vec<i8> = x.iter().map(|&v| table[(v as i16 + 128) as usize]).collect();
        prop_assert_eq!(out.as_i8().unwrap(), want.as_slice());

        let mut et: Vec<i32> = (0..256).map(|_| match r.gen_range(0..3) { 0 => 1 << 24, 1 => 0, _ => r.gen_range(0..=1 << 24) }).collect();
        et[0] = r.gen_range(1..=1 << 24);
        let out = run1(Op::Softmax { exp_table: et.clone() }, vec![t], vec![]).unwrap();
        let len = *s.last().unwrap();
        let mut want = Vec::new();
        for row in x.chunks(len) {
            let m = *row.iter().max().unwrap() as i32;
            let sum: i128 = row.iter().map(|&v| et[(m - v as i32) as usize] as i128).sum();
            for &v in row {
                let e = et[(m - v as i32) as usize] as i128;
                // floor(256 * e / sum + 1/2) - 128
                let q = (512 * e + sum).div_euclid(2 * sum) - 128;
                want.push(q.clamp(-128, 127) as i8);
            }
        }
        prop_assert_eq!(out.as_i8().unwrap(), want.as_slice());
    }

    #[test]
    fn norms_match_naive(seed in any::<u64>()) {
        let r = &mut ChaCha8Rng::seed_from_u64(seed);
        let s = shape_any(r, 3, 9);
        let c = *s.last().unwrap();
        let n: usize = s.iter().product();
        let wide = r.gen_bool(0.5);
        let x: Vec<i32> = if wide { vec32(r, n) } else { vec8(r, n).iter().map(|&v| v as i32).collect() };
        let t = if wide { Tensor::from_i32(s.clone(), x.clone()).unwrap() } else { Tensor::from_i8(s.clone(), x.iter().map(|&v| v as i8).collect()).unwrap() };
        let gamma = vec32(r, c);
        let beta = vec32(r, c);
        let eps = if r.gen_bool(0.5) { 0 } else { r.gen_range(0..1i64 << 40) };
        let shift = r.gen_range(0..=62u32);
        let z = zp(r);
        let consts = vec![Tensor::from_i32(vec![c], gamma.clone()).unwrap(), Tensor::from_i32(vec![c], beta.clone()).unwrap()];
        let ln = run1(Op::LayerNorm { gamma: 0, beta: Some(1), eps, shift, out_zp: z }, vec![t.clone()], consts.clone()).unwrap();
        let rms = run1(Op::RmsNorm { gamma: 0, beta: Some(1), eps, shift, out_zp: z }, vec![t], consts).unwrap();
        let emit = |zv: i128, i: usize| -> i8 {
            let y = zv * gamma[i] as i128 + beta[i] as i128;
            (round_div(y, 1i128 << shift) + z as i128).clamp(-128, 127) as i8
        };
        let (mut want_ln, mut want_rms) = (Vec::new(), Vec::new());
        for row in x.chunks(c) {
            let nn = c as i128;
            let mean_num: i128 = row.iter().map(|&v| v as i128).sum();
            let cs: Vec<i128> = row.iter().map(|&v| nn * v as i128 - mean_num).collect();
            let q: i128 = cs.iter().map(|v| v * v).sum();
            let d = isqrt_ref((q / nn + eps as i128) as u128) as i128;
            for (i, cv) in cs.iter().enumerate() {
                let zv = if d == 0 { 0 } else { round_div(cv * 65536, d) };
                want_ln.push(emit(zv, i));
            }
            let q2: i128 = row.iter().map(|&v| (v as i128) * (v as i128)).sum();
            let d2 = isqrt_ref((q2 / nn + eps as i128) as u128) as i128;
            for (i, &v) in row.iter().enumerate() {
                let zv = if d2 == 0 { 0 } else { round_div(v as i128 * 65536, d2) };
                want_rms.push(emit(zv, i));
            }
        }
        prop_assert_eq!(ln.as_i8().unwrap(), want_ln.as_slice());
        prop_assert_eq!(rms.as_i8().unwrap(), want_rms.as_slice());
    }

    #[test]
    fn data_movement_matches_naive(seed in any::<u64>()) {
        let r = &mut ChaCha8Rng::seed_from_u64(seed);
        let rank = r.gen_range(1..=4);
        let s = shape(r, rank, 5);
        let n: usize = s.iter().product();
        let x = vec32(r, n);
        let t = Tensor::from_i32(s.clone(), x.clone()).unwrap();

        // reshape
        let out = run1(Op::Reshape { shape: vec![n] }, vec![t.clone()], vec![]).unwrap();
        prop_assert_eq!(out.as_i32().unwrap(), x.as_slice());

        // transpose: scatter every input element to its permuted position
        let mut perm: Vec<usize> = (0..rank).collect();
        for i in (1..rank).rev() { perm.swap(i, r.gen_range(0..=i)); }
        let os: Vec<usize> = perm.iter().map(|&p| s[p]).collect();
        let out = run1(Op::Transpose { perm: perm.clone() }, vec![t.clone()], vec![]).unwrap();
        let mut want = vec![0i32; n];
        for (i, &v) in x.iter().enumerate() {
            let idx = unravel(i, &s);
            let oidx: Vec<usize> = perm.iter().map(|&p| idx[p]).collect();
            want[ravel(&oidx, &os)] = v;
        }
        prop_assert_eq!(out.as_i32().unwrap(), want.as_slice());

        // slice
        let starts: Vec<usize> = s.iter().map(|&d| r.gen_range(0..=d)).collect();
        let ends: Vec<usize> = s.iter().zip(&starts).map(|(&d, &st)| r.gen_range(st..=d)).collect();
        let out = run1(Op::Slice { starts: starts.clone(), ends: ends.clone() }, vec![t.clone()], vec![]).unwrap();
        let ss: Vec<usize> = starts.iter().zip(&ends).map(|(a, b)| b - a).collect();
        let want: Vec<i32> = (0..ss.iter().product::<usize>()).map(|i| {
            let idx: Vec<usize> = unravel(i, &ss).iter().zip(&starts).map(|(a, b)| a + b).collect();
            x[ravel(&idx, &s)]
        }).collect();
        prop_assert_eq!(out.shape(), ss.as_slice());
        prop_assert_eq!(out.as_i32().unwrap(), want.as_slice());

        // concat of i8 tensors along a random axis
        let axis = r.gen_range(0..rank);
        let parts: Vec<Vec<usize>> = (0..r.gen_range(1..=3)).map(|_| { let mut p = s.clone(); p[axis] = r.gen_range(1..=4); p }).collect();
        let datas: Vec<Vec<i8>> = parts.iter().map(|p| vec8(r, p.iter().product())).collect();
        let ins: Vec<Tensor> = parts.iter().zip(&datas).map(|(p, d)| Tensor::from_i8(p.clone(), d.clone()).unwrap()).collect();
        let out = run1(Op::Concat { axis }, ins, vec![]).unwrap();
        let mut cs = s.clone();
        cs[axis] = parts.iter().map(|p| p[axis]).sum();
        let want: Vec<i8> = (0..cs.iter().product::<usize>()).map(|i| {
            let mut idx = unravel(i, &cs);
            let mut k = 0;
            while idx[axis] >= parts[k][axis] { idx[axis] -= parts[k][axis]; k += 1; }
            datas[k][ravel(&idx, &parts[k])]
        }).collect();
        prop_assert_eq!(out.as_i8().unwrap(), want.as_slice());

        // gather
        let (v, d) = (r.gen_range(1..=10), r.gen_range(1..=6));
        let table = vec8(r, v * d);
        let idx: Vec<i32> = (0..r.gen_range(1..=8)).map(|_| r.gen_range(0..v as i32)).collect();
        let out = run1(Op::Gather { table: 0 }, vec![Tensor::from_i32(vec![idx.len()], idx.clone()).unwrap()], vec![Tensor::from_i8(vec![v, d], table.clone()).unwrap()]).unwrap();
        let want: Vec<i8> = idx.iter().flat_map(|&i| table[i as usize * d..(i as usize + 1) * d].to_vec()).collect();
        prop_assert_eq!(out.as_i8().unwrap(), want.as_slice());

        // argmax (first maximum on ties)
        let out = run1(Op::ArgMax, vec![t], vec![]).unwrap();
        let len = *s.last().unwrap();
        let want: Vec<i32> = x.chunks(len).map(|row| {
            let m = row.iter().max().unwrap();
            row.iter().position(|v| v == m).unwrap() as i32
        }).collect();
        prop_assert_eq!(out.as_i32().unwrap(), want.as_slice());
    }
}

#[test]
fn gather_out_of_range_is_an_error_not_a_panic() {
    let err = run1(
        Op::Gather { table: 0 },
        vec![Tensor::from_i32(vec![1], vec![5]).unwrap()],
        vec![Tensor::from_i8(vec![2, 2], vec![0; 4]).unwrap()],
    )
    .unwrap_err();
    assert!(err.to_string().contains("index 5"), "{err}");
}

#[test]
fn invalid_parameters_are_rejected_at_validation() {
    let t = Tensor::from_i32(vec![2], vec![1, 2]).unwrap();
    let bad =
        Op::Requantize { axis: 0, multipliers: vec![-1], shifts: vec![0], out_zp: 0, act_min: -128, act_max: 127 };
    assert!(run1(bad, vec![t.clone()], vec![]).unwrap_err().to_string().contains("multiplier"));
    let bad = Op::Requantize {
        axis: 0,
        multipliers: vec![1 << 30],
        shifts: vec![31],
        out_zp: 0,
        act_min: -128,
        act_max: 127,
    };
    assert!(run1(bad, vec![t.clone()], vec![]).is_err());
    let bad = Op::Softmax { exp_table: vec![0; 256] };
    assert!(run1(bad, vec![Tensor::from_i8(vec![2], vec![1, 2]).unwrap()], vec![]).is_err());
    let w = Tensor::from_i8(vec![3, 4], vec![0; 12]).unwrap();
    let err = run1(
        Op::Linear { weight: 0, bias: None, input_zp: 0 },
        vec![Tensor::from_i8(vec![1, 5], vec![0; 5]).unwrap()],
        vec![w],
    )
    .unwrap_err();
    assert!(err.to_string().contains("weight shape"), "{err}");
    let _ = DType::I8;
    let _ = TensorSpec::new(DType::I8, vec![1]);
}

#[test]
fn linear_accumulator_wraps_past_i32() {
    // (x - zp) * w = (-128 - 127) * -128 = 32640 per term; 70,000 terms exceed 2^31.
    let k = 70_000;
    let x = vec![-128i8; k];
    let w: Vec<i8> = (0..2 * k).map(|i| if i < k { -128 } else { 127 }).collect();
    let out = run1(
        Op::Linear { weight: 0, bias: Some(1), input_zp: 127 },
        vec![Tensor::from_i8(vec![1, k], x).unwrap()],
        vec![Tensor::from_i8(vec![2, k], w).unwrap(), Tensor::from_i32(vec![2], vec![i32::MAX, i32::MIN]).unwrap()],
    )
    .unwrap();
    let want0 = (i32::MAX as i64 + 32_640 * k as i64) as i32; // wraps (hand: 2^31-1 + 2,284,800,000)
    let want1 = (i32::MIN as i64 + (-255 * 127) * k as i64) as i32;
    assert_eq!(out.as_i32().unwrap(), &[want0, want1]);
    assert_eq!(want0, (2_147_483_647i64 + 2_284_800_000 - 4_294_967_296) as i32);
}
