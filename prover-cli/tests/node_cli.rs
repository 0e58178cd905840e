//! `opml node run | witness` end to end on the digits fixtures.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/digits").join(name).display().to_string()
}

fn opml(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_opml")).args(args).output().expect("run opml")
}

fn json_ok(args: &[&str]) -> Value {
    let out = opml(args);
    assert!(out.status.success(), "opml {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

fn unhex(s: &str) -> Vec<u8> {
    let s = s.trim_start_matches("0x");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Every node of both models matches, and its VM output commitment equals the per-node
/// commitment in the trace written by `opml infer` (the native executor's path).
#[test]
fn every_digits_node_matches_the_native_trace() {
    let dir = tempfile::tempdir().unwrap();
    for (bundle, data, nodes) in [("cnn.opml", "test_cnn.safetensors", 9usize), ("mlp.opml", "test_mlp.safetensors", 6)]
    {
        let (b, d) = (fixture(bundle), fixture(data));
        let trace = dir.path().join(format!("{bundle}.trace"));
        let t = trace.display().to_string();
        json_ok(&["infer", &b, "--input", &d, "--index", "2", "--trace", &t, "--json"]);
        let tr = std::fs::read(&trace).unwrap();
        let m = u32::from_le_bytes(tr[40..44].try_into().unwrap()) as usize;
        let n = u32::from_le_bytes(tr[44..48].try_into().unwrap()) as usize;
        assert_eq!(n, nodes, "{bundle}: node count");
        for k in 0..n {
            let v = json_ok(&["node", "run", &b, "--input", &d, "--index", "2", "--node", &k.to_string(), "--json"]);
            assert_eq!(v["match"], Value::Bool(true), "{bundle} node {k}: {v}");
            assert!(v["steps"].as_u64().unwrap() > 10);
            let off = 84 + 32 * m + 64 * k;
            assert_eq!(unhex(v["output_commitment"].as_str().unwrap()), tr[off..off + 32], "{bundle} node {k}");
        }
    }
}

/// A witness verifies with the witness-only step, chains from the node's pre-state, and has
/// the fields of `opml vm witness`.
#[test]
fn witnesses_verify_and_start_from_the_pre_state() {
    let (b, d) = (fixture("mlp.opml"), fixture("test_mlp.safetensors"));
    let run = json_ok(&["node", "run", &b, "--input", &d, "--node", "0", "--json"]);
    let steps = run["steps"].as_u64().unwrap();
    let w0 = json_ok(&["node", "witness", &b, "--input", &d, "--node", "0", "--step", "0", "--json"]);
    let state0 = unhex(w0["state"].as_str().unwrap());
    assert_eq!(opml_merkle::keccak256(&state0).to_vec(), unhex(run["pre_state_hash"].as_str().unwrap()));
    for s in [0, 1, steps / 2, steps - 1, steps + 5] {
        let w = json_ok(&["node", "witness", &b, "--input", &d, "--node", "0", "--step", &s.to_string(), "--json"]);
        let state = unhex(w["state"].as_str().unwrap());
        let proof = unhex(w["proof"].as_str().unwrap());
        let post = opml_vm::step(&state, &proof).expect("witness verifies");
        assert_eq!(post.to_vec(), unhex(w["post_state_hash"].as_str().unwrap()), "step {s}");
        assert_eq!(w["step"].as_u64().unwrap(), s.min(steps), "step {s}");
    }
}

#[test]
fn bad_node_arguments_fail_with_clear_errors() {
    let (b, d) = (fixture("mlp.opml"), fixture("test_mlp.safetensors"));
    let out = opml(&["node", "run", &b, "--input", &d, "--node", "6"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--node 6 out of range"));
    let out = opml(&["node", "run", &b, "--input", &d, "--index", "100000", "--node", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--index 100000 out of range"));
}
