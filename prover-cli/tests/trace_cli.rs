//! `opml trace diff` on real traces of the digits CNN: one written by `opml infer --trace`,
//! the other a lying run built here with the game library (one node's output altered, the
//! later nodes run on from it). The expected node, slot and hashes come from the library's
//! views and from `opml model inspect`, not from the command under test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use opml_cli::game::graph::flip_byte;
use opml_cli::game::GraphView;
use opml_dnn::bundle::{hex32, Bundle};
use opml_dnn::st::read_dataset;
use serde_json::Value;

/// The node the lie is told at (the digits CNN has 9 nodes).
const LYING_NODE: usize = 4;

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/digits").join(name).to_str().unwrap().to_string()
}

fn opml(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_opml")).args(args).output().unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `opml infer` of the digits CNN on test sample `index`, its trace written to `out`.
fn infer_trace(model: &str, index: &str, out: &Path) {
    let (bundle, input) = (fixture(&format!("{model}.opml")), fixture(&format!("test_{model}.safetensors")));
    let o = opml(&["infer", &bundle, "--input", &input, "--index", index, "--trace", path(out)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `opml trace diff <args> --json`: exit code and parsed output.
fn diff(args: &[&str]) -> (i32, Value) {
    let mut all = vec!["trace", "diff"];
    all.extend_from_slice(args);
    all.push("--json");
    let o = opml(&all);
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("opml {all:?}: not JSON ({e}); stderr {}", String::from_utf8_lossy(&o.stderr)));
    (o.status.code().unwrap(), v)
}

/// The honest and the lying view of the CNN on test sample 0.
fn views() -> (GraphView, GraphView) {
    let bundle = Bundle::from_bytes(&std::fs::read(fixture("cnn.opml")).unwrap()).unwrap();
    let ds = read_dataset(&std::fs::read(fixture("test_cnn.safetensors")).unwrap(), "test_cnn", false).unwrap();
    let x = bundle.quantize_input(ds.sample(0)).unwrap();
    let model = Arc::new(bundle.model.clone());
    let root = bundle.model_root().unwrap();
    let honest = GraphView::honest(model.clone(), root, std::slice::from_ref(&x)).unwrap();
    let lie = flip_byte(honest.node_output(LYING_NODE).unwrap(), 3).unwrap();
    let lying = GraphView::lying(model, root, std::slice::from_ref(&x), LYING_NODE, lie).unwrap();
    (honest, lying)
}

#[test]
fn diff_names_the_lying_node_and_the_state_it_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (mine, theirs) = (dir.path().join("mine.trace"), dir.path().join("theirs.trace"));
    infer_trace("cnn", "0", &mine);
    let (honest, lying) = views();
    assert_eq!(std::fs::read(&mine).unwrap(), honest.trace().to_bytes(), "infer and the library trace alike");
    std::fs::write(&theirs, lying.trace().to_bytes()).unwrap();

    let (code, v) = diff(&[path(&mine), path(&theirs)]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["verdict"], "differ");
    // Node K writes S_{K+1} (docs/spec/commitments.md); its slot follows the one input.
    assert_eq!((v["node"].as_u64(), v["state"].as_u64(), v["slot"].as_u64()), (Some(4), Some(5), Some(1 + 4)));
    let (h, l) = (honest.trace(), lying.trace());
    assert_eq!(v["agreed_state"], hex32(&h.states[LYING_NODE]));
    assert_eq!(v["state_a"], hex32(&h.states[LYING_NODE + 1]));
    assert_eq!(v["state_b"], hex32(&l.states[LYING_NODE + 1]));
    assert_eq!(v["output_a"], hex32(&h.nodes[LYING_NODE]));
    assert_eq!(v["output_b"], hex32(&l.nodes[LYING_NODE]));
    assert_eq!(v["op"], Value::Null, "no bundle, no op");

    // With the bundle, the node's name and op as `opml model inspect` gives them.
    let (code, v) = diff(&[path(&mine), path(&theirs), "--bundle", &fixture("cnn.opml")]);
    assert_eq!(code, 1);
    let o = opml(&["model", "inspect", &fixture("cnn.opml"), "--json"]);
    let inspect: Value = serde_json::from_slice(&o.stdout).unwrap();
    let node = &inspect["nodes"][LYING_NODE];
    assert_eq!((&v["op"], &v["name"]), (&node["op"], &node["name"]));

    // The other way round, the same place.
    let (code, v) = diff(&[path(&theirs), path(&mine)]);
    assert_eq!((code, v["node"].as_u64(), v["state_a"].clone()), (1, Some(4), Value::from(hex32(&l.states[5]))));

    // The human report names the node and the state.
    let o = opml(&["trace", "diff", path(&mine), path(&theirs)]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("first difference: S_5, written by node 4"), "{text}");
}

#[test]
fn the_same_run_twice_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.trace"), dir.path().join("b.trace"));
    infer_trace("cnn", "0", &a);
    infer_trace("cnn", "0", &b);
    let (code, v) = diff(&[path(&a), path(&b)]);
    assert_eq!((code, v["verdict"].as_str(), v["states"].as_u64()), (0, Some("agree"), Some(9 + 1)));
    let o = opml(&["trace", "diff", path(&a), path(&b)]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "traces agree on S_0..S_9");
}

#[test]
fn other_inputs_or_another_model_are_not_comparable() {
    let dir = tempfile::tempdir().unwrap();
    let (a, other_input, other_model) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    infer_trace("cnn", "0", &a);
    infer_trace("cnn", "1", &other_input);
    infer_trace("mlp", "0", &other_model);
    let (code, v) = diff(&[path(&a), path(&other_input)]);
    assert_eq!((code, v["verdict"].as_str(), v["reason"].as_str()), (2, Some("not_comparable"), Some("inputs")));
    let (code, v) = diff(&[path(&a), path(&other_model)]);
    assert_eq!((code, v["reason"].as_str()), (2, Some("model")));
}

#[test]
fn bad_files_are_named_with_exit_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.trace");
    infer_trace("cnn", "0", &good);
    let garbage = dir.path().join("garbage.trace");
    std::fs::write(&garbage, b"not a trace").unwrap();
    let missing = dir.path().join("missing.trace");
    // A trace whose last state was altered: the file no longer holds together.
    let forged = dir.path().join("forged.trace");
    let mut bytes = std::fs::read(&good).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&forged, bytes).unwrap();
    for (bad, says) in [
        (&garbage, "not a trace file"),
        (&missing, "reading trace file"),
        (&forged, "inconsistent trace: S_9 is not the root"),
    ] {
        let o = opml(&["trace", "diff", path(&good), path(bad)]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(path(bad)) && err.contains(says), "{err}");
    }
    // A bundle of another model cannot name the traces' nodes.
    let lying = dir.path().join("lying.trace");
    std::fs::write(&lying, views().1.trace().to_bytes()).unwrap();
    let o = opml(&["trace", "diff", path(&good), path(&lying), "--bundle", &fixture("mlp.opml")]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.code() == Some(2) && err.contains("mlp.opml has model commitment"), "{err}");
}
