//! `opml model ...` and `opml infer` end to end on the committed digits fixtures.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/digits").join(name)
}

fn opml(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_opml")).args(args).output().expect("run opml")
}

fn json_ok(args: &[&str]) -> Value {
    let out = opml(args);
    assert!(out.status.success(), "opml {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn eval_prints_quantized_and_float_accuracy_within_one_point() {
    let v =
        json_ok(&["model", "eval", p(&fixture("cnn.opml")), "--data", p(&fixture("test_cnn.safetensors")), "--json"]);
    let acc = v["accuracy"].as_f64().unwrap();
    let facc = v["float_accuracy"].as_f64().unwrap();
    assert!(facc > 0.9 && (acc - facc).abs() <= 0.01, "{v}");
    assert_eq!(v["samples"], 540);
    let human = opml(&["model", "eval", p(&fixture("mlp.opml")), "--data", p(&fixture("test_mlp.safetensors"))]);
    let s = String::from_utf8(human.stdout).unwrap();
    assert!(s.contains("quantized accuracy") && s.contains("float accuracy"), "{s}");
}

#[test]
fn inspect_lists_nodes_in_order_with_the_model_commitment() {
    let v = json_ok(&["model", "inspect", p(&fixture("cnn.opml")), "--json"]);
    let nodes = v["nodes"].as_array().unwrap();
    let ops: Vec<&str> = nodes.iter().map(|n| n["op"].as_str().unwrap()).collect();
    assert_eq!(
        ops,
        ["conv2d", "requantize", "maxpool2d", "conv2d", "requantize", "maxpool2d", "reshape", "linear", "requantize"]
    );
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(n["index"], i);
    }
    // conv1 8x1x3x3 + 8, conv2 16x8x3x3 + 16, fc 10x64 + 10
    assert_eq!(v["parameters"], 72 + 8 + 1152 + 16 + 640 + 10);
    let inf = json_ok(&["infer", p(&fixture("cnn.opml")), "--input", p(&fixture("test_cnn.safetensors")), "--json"]);
    assert_eq!(v["model_commitment"], inf["model_commitment"]);
}

#[test]
fn infer_gives_the_same_bits_and_commitments_for_1_2_8_threads_and_writes_the_trace() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen: Vec<Value> = Vec::new();
    for t in ["1", "2", "8"] {
        let trace = dir.path().join(format!("t{t}.trace"));
        let mut v = json_ok(&[
            "infer",
            p(&fixture("cnn.opml")),
            "--input",
            p(&fixture("test_cnn.safetensors")),
            "--index",
            "5",
            "--threads",
            t,
            "--trace",
            trace.to_str().unwrap(),
            "--json",
        ]);
        let bytes = std::fs::read(&trace).unwrap();
        // Layout: 52-byte header, 1 input commitment, S_0, then 9 x (commitment, S_i).
        assert_eq!(bytes.len(), 52 + 32 + 32 + 9 * 64);
        assert_eq!(&bytes[..8], b"OPMLTRC1");
        let last = format!("0x{}", hex::encode(&bytes[bytes.len() - 32..]));
        assert_eq!(v["final_state"].as_str().unwrap(), last);
        let out_c = format!("0x{}", hex::encode(&bytes[bytes.len() - 64..bytes.len() - 32]));
        assert_eq!(v["output_commitment"].as_str().unwrap(), out_c);
        v.as_object_mut().unwrap().remove("timing_ms");
        v.as_object_mut().unwrap().remove("trace_file");
        seen.push(v);
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0], seen[2]);
    assert_eq!(seen[0]["argmax"], seen[0]["label"]);
}

#[test]
fn quantize_reproduces_the_committed_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cnn.opml");
    let v = json_ok(&[
        "model",
        "quantize",
        "--weights",
        p(&fixture("cnn.safetensors")),
        "--arch",
        p(&fixture("cnn.json")),
        "--calib",
        p(&fixture("calib_cnn.safetensors")),
        "--eval",
        p(&fixture("test_cnn.safetensors")),
        "-o",
        out.to_str().unwrap(),
        "--json",
    ]);
    let committed = json_ok(&["model", "inspect", p(&fixture("cnn.opml")), "--json"]);
    assert_eq!(v["model_commitment"], committed["model_commitment"]);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(fixture("cnn.opml")).unwrap());
}

#[test]
fn bad_inputs_fail_with_errors_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let arch = dir.path().join("bad.json");
    let text = std::fs::read_to_string(fixture("cnn.json")).unwrap().replace("\"relu\"", "\"swish\"");
    std::fs::write(&arch, text).unwrap();
    let out = opml(&[
        "model",
        "quantize",
        "--weights",
        p(&fixture("cnn.safetensors")),
        "--arch",
        arch.to_str().unwrap(),
        "--calib",
        p(&fixture("calib_cnn.safetensors")),
        "-o",
        dir.path().join("x.opml").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("layers[1]") && err.contains("swish"), "{err}");

    // MLP weights against the CNN architecture: a missing tensor is named.
    let out = opml(&[
        "model",
        "quantize",
        "--weights",
        p(&fixture("mlp.safetensors")),
        "--arch",
        p(&fixture("cnn.json")),
        "--calib",
        p(&fixture("calib_cnn.safetensors")),
        "-o",
        dir.path().join("y.opml").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("conv1.weight"), "{err}");

    let out =
        opml(&["infer", p(&fixture("cnn.opml")), "--input", p(&fixture("test_cnn.safetensors")), "--index", "100000"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--index 100000"), "{err}");

    // MLP-shaped data into the CNN.
    let out = opml(&["model", "eval", p(&fixture("cnn.opml")), "--data", p(&fixture("test_mlp.safetensors"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("[64]"), "{err}");

    let out = opml(&["model", "inspect", p(&fixture("cnn.json"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("OPMLBNDL"), "{err}");
}

/// A bundle whose recorded node images are not this build's kernels (its commitment is
/// self-consistent, so the DNN library loads it) is refused, naming the node and the fix.
#[test]
fn bundles_bound_to_other_kernels_are_refused() {
    use opml_dnn::bundle::{hex32, Bundle};
    use opml_dnn::commit::model_commitment;
    let mut b = Bundle::from_bytes(&std::fs::read(fixture("mlp.opml")).unwrap()).unwrap();
    b.meta.node_images[2].code_root[0] ^= 1;
    b.meta.model_commitment = hex32(&model_commitment(&b.model, &b.meta.node_images));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rebound.opml");
    std::fs::write(&path, b.to_bytes().unwrap()).unwrap();
    Bundle::from_bytes(&std::fs::read(&path).unwrap()).unwrap();
    let out = opml(&["model", "inspect", p(&path)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rebound.opml") && err.contains("node 2") && err.contains("opml model quantize"), "{err}");
}

/// `opml model gguf-info` on SmolLM2-135M-Instruct Q4_1, when `scripts/fetch_models.sh` has
/// fetched it (CI's setup does): the configuration, tensor counts and tokenizer it reports.
#[test]
fn gguf_info_reports_smollm2s_config_tensors_and_tokenizer() {
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf");
    if !model.is_file() {
        eprintln!("skipping: {} is absent (run scripts/fetch_models.sh)", model.display());
        return;
    }
    let v = json_ok(&["model", "gguf-info", p(&model), "--json"]);
    let c = &v["config"];
    assert_eq!((c["layers"].as_u64(), c["hidden"].as_u64(), c["ffn"].as_u64()), (Some(30), Some(576), Some(1536)));
    assert_eq!((c["heads"].as_u64(), c["kv_heads"].as_u64(), c["head_dim"].as_u64()), (Some(9), Some(3), Some(64)));
    assert_eq!((c["vocab"].as_u64(), c["rope_base"].as_f64()), (Some(49152), Some(100_000.0)));
    assert_eq!(v["tensors_by_type"], serde_json::json!({"Q4_1": 210, "Q8_0": 1, "F32": 61}));
    assert_eq!((v["tied_output"].as_bool(), v["parameters"].as_u64()), (Some(true), Some(134_515_008)));
    let t = &v["tokenizer"];
    assert_eq!(
        (t["tokens"].as_u64(), t["merges"].as_u64(), t["pre"].as_str()),
        (Some(49152), Some(48900), Some("smollm"))
    );
    assert_eq!((t["bos"].as_u64(), t["eos"].as_u64()), (Some(1), Some(2)));
    let human = String::from_utf8(opml(&["model", "gguf-info", p(&model)]).stdout).unwrap();
    assert!(human.contains("30 layers, hidden 576") && human.contains("Q4_1 210"), "{human}");
}

#[test]
fn gguf_info_names_the_file_it_cannot_import() {
    let out = opml(&["model", "gguf-info", p(&fixture("cnn.json"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("cnn.json") && err.contains("not a valid GGUF file"), "{err}");
    let out = opml(&["model", "gguf-info", "no/such/model.gguf"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("no/such/model.gguf"), "{err}");
}
