//! `opml model import`, `opml generate` from a bundle and `opml lm eval` on
//! SmolLM2-135M-Instruct Q4_1, when `scripts/fetch_models.sh` has fetched it into
//! `.cache/models/` (each test prints why and passes without it).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use opml_dnn::bundle::hex32;
use opml_dnn::commit::tensor_commitment;
use opml_dnn::Tensor;
use serde_json::Value;

const GPL3: &str = "/usr/share/common-licenses/GPL-3";

#[path = "common/smollm2.rs"]
mod smollm2;
use smollm2::{json_ok, model, opml};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The model imported once with the default limits: (directory, bundle, import JSON).
fn imported() -> Option<&'static (tempfile::TempDir, PathBuf, Value)> {
    static B: OnceLock<Option<(tempfile::TempDir, PathBuf, Value)>> = OnceLock::new();
    B.get_or_init(|| {
        let m = model()?;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("smollm2.opmlllm");
        let v = json_ok(&["model", "import", s(&m), "-o", s(&out), "--json"]);
        Some((dir, out, v))
    })
    .as_ref()
}

/// `tensor_commitment` of ids as an i32 tensor, through `dnn`'s own tensor type.
fn ids_commitment(v: &Value) -> String {
    let ids: Vec<i32> = v.as_array().unwrap().iter().map(|t| t.as_i64().unwrap() as i32).collect();
    hex32(&tensor_commitment(&Tensor::from_i32(vec![ids.len()], ids).unwrap()))
}

fn generate(file: &Path, prompt: &str, n: &str) -> Value {
    json_ok(&["generate", s(file), "--prompt", prompt, "--max-new-tokens", n, "--json"])
}

#[test]
fn a_bundle_generates_the_gguf_tokens_and_commits_to_model_prompt_and_output() {
    let (Some(m), Some((_, bundle, import))) = (model(), imported()) else { return };
    assert_eq!(import["source"]["sha256"], "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53");
    assert_eq!((import["limits"]["max_prompt"].as_u64(), import["limits"]["max_new"].as_u64()), (Some(512), Some(256)));
    let (from_bundle, from_gguf) =
        (generate(bundle, "The capital of France is", "6"), generate(&m, "The capital of France is", "6"));
    assert_eq!(from_bundle["tokens"], from_gguf["tokens"]);
    assert!(from_bundle["text"].as_str().unwrap().contains("Paris"), "{from_bundle}");
    assert_eq!(from_bundle["model_commitment"], import["model_commitment"]);
    assert_eq!(from_gguf["model_commitment"], import["model_commitment"]);
    assert_eq!(from_bundle["input_commitment"], from_gguf["input_commitment"]);
    assert_eq!(from_bundle["output_commitment"].as_str().unwrap(), ids_commitment(&from_bundle["tokens"]));
    // One prompt token changed: another input commitment, the same model.
    let other = generate(bundle, "The capital of Spain is", "6");
    assert_eq!(other["prompt_tokens"], from_bundle["prompt_tokens"]);
    assert_ne!(other["input_commitment"], from_bundle["input_commitment"]);
    assert_eq!(other["model_commitment"], from_bundle["model_commitment"]);
    assert_ne!(other["tokens"], from_bundle["tokens"], "{other}");
    assert_ne!(other["output_commitment"], from_bundle["output_commitment"]);
}

#[test]
fn the_claim_limits_are_committed_and_enforced() {
    let (Some(m), Some((dir, _, import))) = (model(), imported()) else { return };
    let small = dir.path().join("small.opmlllm");
    let v = json_ok(&["model", "import", s(&m), "-o", s(&small), "--max-prompt", "64", "--max-new", "4", "--json"]);
    assert_ne!(v["model_commitment"], import["model_commitment"]);
    let out = opml(&["generate", s(&small), "--prompt", "Hello", "--max-new-tokens", "5"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("limits"), "{err}");
    let out = opml(&["model", "import", s(&m), "-o", s(&small), "--max-prompt", "8000", "--max-new", "500"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("context length 8192"), "{err}");
}

#[test]
fn a_truncated_or_corrupt_bundle_is_refused_naming_the_tensor() {
    let Some((dir, bundle, _)) = imported() else { return };
    let mut bytes = std::fs::read(bundle).unwrap();
    let bad = dir.path().join("bad.opmlllm");
    std::fs::write(&bad, &bytes[..bytes.len() - 1]).unwrap();
    let out = opml(&["generate", s(&bad), "--prompt", "Hello"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("truncated") && err.contains("tensor rope.sin"), "{err}");
    let n = bytes.len();
    bytes[n - 4_000_000] ^= 0x10;
    std::fs::write(&bad, &bytes).unwrap();
    let out = opml(&["generate", s(&bad), "--prompt", "Hello"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("commit") && err.contains("tensor "), "{err}");
}

#[test]
fn lm_eval_on_two_chunks_agrees_with_the_numpy_float_reference() {
    let (Some(m), Some((_, bundle, _))) = (model(), imported()) else { return };
    if !Path::new(GPL3).is_file() {
        eprintln!("skipping: {GPL3} is absent");
        return;
    }
    let fixture: Value =
        serde_json::from_str(include_str!("../../fixtures/llm/smollm2_float_ref_2chunks.json")).unwrap();
    let v = json_ok(&["lm", "eval", s(bundle), "--text", GPL3, "--max-chunks", "2", "--reference", s(&m), "--json"]);
    eprintln!("{v}");
    assert_eq!(v["tokens"], 7639);
    assert_eq!((v["chunks"].as_u64(), v["predictions"].as_u64()), (Some(2), Some(510)));
    let (ppl, fppl, want) = (
        v["perplexity"].as_f64().unwrap(),
        v["float_perplexity"].as_f64().unwrap(),
        fixture["perplexity"].as_f64().unwrap(),
    );
    // Two f32 forwards (numpy's BLAS and ours) differ only in summation order.
    assert!((fppl / want - 1.0).abs() < 1e-3, "Rust float {fppl}, numpy float {want}");
    assert!((ppl / fppl - 1.0).abs() < 0.01, "integer {ppl}, float {fppl}");
    assert!(v["top1_agreement"].as_f64().unwrap() >= 0.95, "{v}");
    // The reference must be the bundle's source.
    let out = opml(&["lm", "eval", s(bundle), "--text", GPL3, "--max-chunks", "1", "--reference", s(bundle)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("sha256"), "{err}");
}
