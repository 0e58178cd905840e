//! Activations quantized into int8 lookup tables track their float originals.

mod common;

use std::collections::BTreeMap;

use opml_dnn::exec::run;
use opml_dnn::quant::arch::Arch;
use opml_dnn::quant::float::FloatModel;
use opml_dnn::quant::lower::quantize;
use opml_dnn::st::{DataSet, F32Tensor};
use opml_dnn::Op;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn model(act: &str) -> FloatModel {
    let arch = format!(
        r#"{{"name":"lut","input_shape":[16],"layers":[
        {{"op":"linear","weight":"a.w","bias":"a.b"}},{{"op":"{act}"}},
        {{"op":"linear","weight":"b.w","bias":"b.b"}}]}}"#
    );
    let r = &mut ChaCha8Rng::seed_from_u64(5);
    let mut w = BTreeMap::new();
    let mut t = |name: &str, shape: Vec<usize>, r: &mut ChaCha8Rng| {
        let n = shape.iter().product();
        w.insert(name.to_string(), F32Tensor { shape, data: (0..n).map(|_| r.gen_range(-0.5f32..0.5)).collect() });
    };
    t("a.w", vec![24, 16], r);
    t("a.b", vec![24], r);
    t("b.w", vec![8, 24], r);
    t("b.b", vec![8], r);
    FloatModel::new(Arch::from_json(&arch).unwrap(), w).unwrap()
}

#[test]
fn lut_activations_match_float_within_quantization_error() {
    let r = &mut ChaCha8Rng::seed_from_u64(9);
    let n = 200;
    let data =
        DataSet { shape: vec![n, 16], inputs: (0..n * 16).map(|_| r.gen_range(-2f32..2.0)).collect(), labels: None };
    for act in ["sigmoid", "tanh", "gelu", "silu"] {
        let f = model(act);
        let b = quantize(&f, &data, None, None, &common::ParamBinder).unwrap();
        assert!(b.model.graph().nodes.iter().any(|n| matches!(n.op, Op::Lut { .. })), "{act}: no LUT node");
        let (mut err, mut range) = (0f64, 0f64);
        for i in 0..n {
            let x = b.quantize_input(data.sample(i)).unwrap();
            let q = run(&b.model, &[x]).unwrap().to_i32_vec();
            let fo = f.forward(data.sample(i)).pop().unwrap();
            for (a, y) in q.iter().zip(&fo) {
                let deq = (*a - b.meta.output.zero_point) as f64 * b.meta.output.scale;
                err = err.max((deq - *y as f64).abs());
                range = range.max((*y as f64).abs());
            }
        }
        // A handful of int8 steps of the output range.
        assert!(err < 0.06 * range, "{act}: max error {err} vs output range {range}");
    }
}
