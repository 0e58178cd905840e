//! `opml chain claim --dishonest SPEC` against anvil (from `contracts/node_modules`,
//! installed by `scripts/setup.sh`), with the forge-built contracts of `contracts/out`:
//! the posted claim carries the lie of the library's `Run::dishonest` (its output
//! commitment on-chain), is labelled loudly on stderr and in the JSON, and specs that
//! do not fit a claim are refused before anything is posted.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy_sol_types::SolCall;
use opml_cli::anvil::{Anvil, ANY_PORT, DEV_KEYS};
use opml_cli::game::abi::IOptimisticML;
use opml_cli::game::{Fault, GraphView, Run, VmView};
use opml_dnn::bundle::Bundle;
use opml_dnn::st::read_dataset;
use opml_dnn::Tensor;
use opml_merkle::Hash;
use serde_json::Value;

/// Anvil's default dev accounts 0 and 1 (from its well-known test mnemonic); test use only.
const KEYS: [&str; 2] = [DEV_KEYS[0], DEV_KEYS[1]];
const DEPLOYER: usize = 0;
const SUBMITTER: usize = 1;
const INDEX: usize = 1;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(name: &str) -> String {
    root().join("fixtures/digits").join(name).to_str().unwrap().to_string()
}

/// A fresh anvil logging to `dir` (stopped when dropped).
fn anvil(dir: &Path) -> Anvil {
    Anvil::spawn(ANY_PORT, None, &dir.join("anvil.log"))
        .unwrap_or_else(|e| panic!("{e} (is anvil installed? scripts/setup.sh installs it)"))
}

fn opml(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_opml")).args(args).output().unwrap()
}

/// Run `opml <args>`, require success; its JSON and its stderr.
fn run_json(args: &[&str]) -> (Value, String) {
    let out = opml(args);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "opml {args:?}: {err}");
    (serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("opml {args:?}: not JSON ({e})")), err)
}

/// Run `opml <args>`, require failure; its stderr.
fn run_err(args: &[&str]) -> String {
    let out = opml(args);
    assert!(!out.status.success(), "opml {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The digits MLP and sample `INDEX` of its test set, as the CLI quantizes it.
fn sample() -> (Bundle, Tensor) {
    let bundle = Bundle::from_bytes(&std::fs::read(fixture("mlp.opml")).unwrap()).unwrap();
    let ds = read_dataset(&std::fs::read(fixture("test_mlp.safetensors")).unwrap(), "test_mlp", false).unwrap();
    let x = bundle.quantize_input(ds.sample(INDEX)).unwrap();
    (bundle, x)
}

/// The output commitment of the library's run of the sample with `fault` (None: honest).
fn library_commitment(fault: Option<&Fault>, depth: u32) -> Hash {
    let (b, x) = sample();
    let (model, root) = (Arc::new(b.model.clone()), b.model_root().unwrap());
    let run = match fault {
        None => Run::honest(model, root, &[x], depth),
        Some(f) => Run::dishonest(model, root, &[x], f, depth),
    };
    run.unwrap().graph().output_commitment()
}

#[tokio::test(flavor = "current_thread")]
async fn a_dishonest_claim_posts_the_library_runs_lie_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let a = anvil(dir.path());
    let file = dir.path().join("deployment.json").to_str().unwrap().to_string();
    let (d, _) = run_json(&["chain", "deploy", "--rpc", &a.url(), "--key", KEYS[DEPLOYER], "--out", &file, "--json"]);
    let depth = d["config"]["vm_depth"].as_u64().unwrap() as u32;
    let game: Address = d["game"].as_str().unwrap().parse().unwrap();
    let p = ProviderBuilder::new().connect_http(a.url().parse().unwrap());
    let on_chain = |id: u64| {
        let call = IOptimisticML::claimOfCall { claimId: U256::from(id) };
        let p = &p;
        async move {
            let tx = TransactionRequest::default().with_to(game).with_input(call.abi_encode());
            IOptimisticML::claimOfCall::abi_decode_returns(&p.call(tx).await.unwrap()).unwrap().outputCommitment
        }
    };
    let (bundle, input, index) = (fixture("mlp.opml"), fixture("test_mlp.safetensors"), INDEX.to_string());
    #[rustfmt::skip]
    let claim = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "chain", "claim", &bundle, "--input", &input, "--index", &index, "--deployment", &file,
            "--key", KEYS[SUBMITTER], "--json",
        ].iter().map(|s| s.to_string()).collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let honest = library_commitment(None, depth);

    // node:2 (MLP node 2, a linear node in the middle): the lie of `Run::dishonest`.
    let node = Fault::Node(2);
    let lie = library_commitment(Some(&node), depth);
    assert_ne!(lie, honest);
    let (c, err) = run_json(&refs(&claim(&["--dishonest", "node:2"])));
    assert_eq!((c["claim"].as_u64(), c["dishonest"].as_str()), (Some(1), Some("node:2")));
    assert!(
        err.contains("FAULT INJECTION (--dishonest node:2): claim 1 is deliberately false; its bond is at risk"),
        "{err}"
    );
    assert_eq!(on_chain(1).await, B256::from(lie));
    assert_eq!(c["output_commitment"].as_str().unwrap(), B256::from(lie).to_string());

    // Specs that do not fit a claim are refused before anything is posted.
    let err = run_err(&refs(&claim(&["--dishonest", "challenge-all"])));
    assert!(err.contains("--dishonest challenge-all is a challenger's fault"), "{err}");
    let err = run_err(&refs(&claim(&["--dishonest", "nodes:1"])));
    assert!(err.contains("fault spec \"nodes:1\": unknown fault kind \"nodes\""), "{err}");
    let err = run_err(&refs(&claim(&["--dishonest", "node:6"])));
    assert!(err.contains("fault node:6: there is no node 6: the model has nodes 0..=5"), "{err}");

    // step:2:S at the middle of node 2's run: the lie of that tampered run (claim 2, so
    // none of the refused specs posted a claim).
    let (b, x) = sample();
    let h = GraphView::honest(Arc::new(b.model.clone()), b.model_root().unwrap(), &[x]).unwrap();
    let s = VmView::of_node(&h, 2, depth).unwrap().end_step() / 2;
    let step = Fault::Step { node: 2, step: s };
    let lie = library_commitment(Some(&step), depth);
    assert_ne!(lie, honest);
    let spec = step.to_string();
    let (c, err) = run_json(&refs(&claim(&["--dishonest", &spec])));
    assert_eq!((c["claim"].as_u64(), c["dishonest"].as_str()), (Some(2), Some(spec.as_str())));
    assert!(err.contains(&format!("FAULT INJECTION (--dishonest {spec}): claim 2")), "{err}");
    assert_eq!(on_chain(2).await, B256::from(lie));

    // Without --dishonest: the honest output, no label.
    let (c, err) = run_json(&refs(&claim(&[])));
    assert_eq!((c["claim"].as_u64(), &c["dishonest"]), (Some(3), &Value::Null));
    assert!(!err.contains("FAULT INJECTION"), "{err}");
    assert_eq!(on_chain(3).await, B256::from(honest));
}
