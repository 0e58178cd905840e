//! The real model: quantize the committed float digits CNN and MLP and check accuracy.

mod common;

use std::path::PathBuf;

use opml_dnn::bundle::Bundle;
use opml_dnn::commit::model_commitment;
use opml_dnn::quant::arch::Arch;
use opml_dnn::quant::float::FloatModel;
use opml_dnn::quant::lower::{float_reference, quantize, report};
use opml_dnn::st::{read_dataset, read_f32_all};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/digits").join(name)
}

fn build(kind: &str) -> Bundle {
    let wbytes = std::fs::read(fixture(&format!("{kind}.safetensors"))).unwrap();
    let arch = Arch::from_json(&std::fs::read_to_string(fixture(&format!("{kind}.json"))).unwrap()).unwrap();
    let float = FloatModel::new(arch, read_f32_all(&wbytes, "w").unwrap()).unwrap();
    let calib =
        read_dataset(&std::fs::read(fixture(&format!("calib_{kind}.safetensors"))).unwrap(), "c", false).unwrap();
    let test = read_dataset(&std::fs::read(fixture(&format!("test_{kind}.safetensors"))).unwrap(), "t", true).unwrap();
    quantize(&float, &calib, Some(wbytes), Some(&test), &common::ParamBinder).unwrap()
}

#[test]
fn digits_cnn_quantized_within_one_point_of_float() {
    let b = build("cnn");
    let r = b.meta.report.clone().unwrap();
    eprintln!("cnn: {r:?}");
    assert_eq!(r.samples, 540);
    assert!(r.float_accuracy > 0.9, "float model trained badly: {r:?}");
    assert!((r.accuracy - r.float_accuracy).abs() <= 0.01, "{r:?}");
}

#[test]
fn digits_mlp_quantized_close_to_float() {
    let b = build("mlp");
    let r = b.meta.report.clone().unwrap();
    eprintln!("mlp: {r:?}");
    assert!(r.float_accuracy > 0.9, "{r:?}");
    assert!((r.accuracy - r.float_accuracy).abs() <= 0.02, "{r:?}");
}

#[test]
fn bundle_round_trips_and_report_recomputes() {
    let b = build("cnn");
    let bytes = b.to_bytes().unwrap();
    let back = Bundle::from_bytes(&bytes).unwrap();
    assert_eq!(back.meta, b.meta);
    assert_eq!(back.model.graph(), b.model.graph());
    assert_eq!(back.model.weights(), b.model.weights());
    let float = float_reference(&back).unwrap().unwrap();
    let test = read_dataset(&std::fs::read(fixture("test_cnn.safetensors")).unwrap(), "t", true).unwrap();
    assert_eq!(report(&back, &float, &test).unwrap(), b.meta.report.unwrap());
}

#[test]
fn committed_bundles_match_a_fresh_quantization() {
    for kind in ["cnn", "mlp"] {
        let path = fixture(&format!("{kind}.opml"));
        let committed = Bundle::from_bytes(&std::fs::read(&path).unwrap()).unwrap();
        let fresh = build(kind);
        // The commitment also binds the compiler's node images (checked against a fresh
        // quantization through the CLI in prover-cli/tests/model_cli.rs); here: the same
        // graph and weights, and the recorded commitment holds for the recorded images.
        assert_eq!(committed.model.graph(), fresh.model.graph(), "{kind}");
        assert_eq!(committed.model.weights(), fresh.model.weights(), "{kind}");
        let images = committed.node_images();
        assert_eq!(committed.model_root().unwrap(), model_commitment(&committed.model, images), "{kind}");
        let mut other = images.to_vec();
        other[0].args_root[31] ^= 1;
        assert_ne!(committed.model_root().unwrap(), model_commitment(&committed.model, &other), "{kind}");
    }
}
