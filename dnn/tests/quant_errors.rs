//! Bad quantization inputs get clear errors naming the tensor or field.

use std::collections::BTreeMap;

use opml_dnn::bundle::Bundle;
use opml_dnn::quant::arch::Arch;
use opml_dnn::quant::float::FloatModel;
use opml_dnn::st::{read_dataset, read_f32_all, write_f32, F32Tensor};

const ARCH: &str = r#"{"name":"t","input_shape":[4],"layers":[
  {"op":"linear","weight":"fc.weight","bias":"fc.bias"},{"op":"relu"}]}"#;

fn weights() -> BTreeMap<String, F32Tensor> {
    let mut w = BTreeMap::new();
    w.insert("fc.weight".into(), F32Tensor { shape: vec![3, 4], data: vec![0.5; 12] });
    w.insert("fc.bias".into(), F32Tensor { shape: vec![3], data: vec![0.1; 3] });
    w
}

fn err_of(arch: &str, w: BTreeMap<String, F32Tensor>) -> String {
    match Arch::from_json(arch) {
        Err(e) => e.to_string(),
        Ok(a) => FloatModel::new(a, w).unwrap_err().to_string(),
    }
}

#[test]
fn good_inputs_load() {
    FloatModel::new(Arch::from_json(ARCH).unwrap(), weights()).unwrap();
}

#[test]
fn missing_tensor_is_named() {
    let mut w = weights();
    w.remove("fc.bias");
    let e = err_of(ARCH, w);
    assert!(e.contains("fc.bias") && e.contains("missing"), "{e}");
}

#[test]
fn extra_tensor_is_named() {
    let mut w = weights();
    w.insert("stray".into(), F32Tensor { shape: vec![1], data: vec![0.0] });
    let e = err_of(ARCH, w);
    assert!(e.contains("stray") && e.contains("extra"), "{e}");
}

#[test]
fn shape_mismatch_is_named() {
    let mut w = weights();
    w.insert("fc.weight".into(), F32Tensor { shape: vec![3, 5], data: vec![0.0; 15] });
    let e = err_of(ARCH, w);
    assert!(e.contains("fc.weight") && e.contains("[3, 5]"), "{e}");
}

#[test]
fn unknown_op_names_the_layer() {
    let arch = ARCH.replace(r#"{"op":"relu"}"#, r#"{"op":"mish"}"#);
    let e = err_of(&arch, weights());
    assert!(e.contains("layers[1]") && e.contains("mish"), "{e}");
}

#[test]
fn unknown_field_is_named() {
    let arch = ARCH.replace(r#""bias":"fc.bias""#, r#""bias":"fc.bias","strid":[1,1]"#);
    let e = err_of(&arch, weights());
    assert!(e.contains("layers[0]") && e.contains("strid"), "{e}");
}

#[test]
fn dtype_mismatch_is_named() {
    // Build a file with an F64 tensor by hand (header + data).
    let header = r#"{"fc.weight":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&1.0f64.to_le_bytes());
    let e = read_f32_all(&bytes, "w.safetensors").unwrap_err().to_string();
    assert!(e.contains("w.safetensors") && e.contains("fc.weight") && e.contains("F64"), "{e}");
}

#[test]
fn malformed_safetensors_is_reported_with_the_file() {
    let e = read_f32_all(b"\x05\x00\x00\x00\x00\x00\x00\x00{bad", "w.safetensors").unwrap_err().to_string();
    assert!(e.contains("w.safetensors") && e.contains("malformed"), "{e}");
    let e = read_dataset(b"nonsense", "d.safetensors", true).unwrap_err().to_string();
    assert!(e.contains("d.safetensors"), "{e}");
}

#[test]
fn data_file_needs_inputs_and_labels() {
    let mut t = BTreeMap::new();
    t.insert("inputs".to_string(), F32Tensor { shape: vec![2, 4], data: vec![0.0; 8] });
    let bytes = write_f32(&t).unwrap();
    let e = read_dataset(&bytes, "d", true).unwrap_err().to_string();
    assert!(e.contains("labels"), "{e}");
    assert_eq!(read_dataset(&bytes, "d", false).unwrap().len(), 2);
    t.clear();
    t.insert("x".to_string(), F32Tensor { shape: vec![2], data: vec![0.0; 2] });
    let e = read_dataset(&write_f32(&t).unwrap(), "d", false).unwrap_err().to_string();
    assert!(e.contains("inputs"), "{e}");
}

#[test]
fn corrupt_bundles_are_rejected() {
    assert!(Bundle::from_bytes(b"not a bundle").unwrap_err().to_string().contains("OPMLBNDL"));
    let mut b = b"OPMLBNDL".to_vec();
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&1000u64.to_le_bytes());
    assert!(Bundle::from_bytes(&b).unwrap_err().to_string().contains("metadata"));
}
