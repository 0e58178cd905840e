//! `opml chain ...` against anvil (from `contracts/node_modules`, installed by
//! `scripts/setup.sh`), with the forge-built contracts of `contracts/out`:
//!
//! * an honest submitter and a challenger who disputes the true claim each run
//!   `opml chain play` in their own process, concurrently: the submitter wins at the leaf;
//!   the claim then finalizes and the submitter withdraws both bonds less the burn;
//! * a lying submitter (a claim with a wrong output, every move sent from this test through
//!   alloy, its VM run forged at the halting step so that its handover passes) against
//!   `opml chain play --role challenger`, which reads the chain through a proxy whose logs
//!   lag one query behind its state (`common/late_logs.rs`): the challenger waits for each
//!   round's event and wins at the leaf;
//! * a lying submitter that never opens: the challenger's `play` calls `timeout` once the
//!   chain's time (moved with `evm_increaseTime` / `evm_mine`) passes the clock.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{BlockId, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy_sol_types::{SolCall, SolEvent};
use opml_cli::anvil::{Anvil, ANY_PORT, DEV_KEYS};
use opml_cli::game::abi::{revert_reason, to_b256, IOptimisticML};
use opml_cli::game::graph::flip_byte;
use opml_cli::game::strategy::defend;
use opml_cli::game::{Edit, GraphView, HandoverData, Tamper, VmView};
use opml_cli::gas::gas_with_margin;
use opml_compiler::compile_node;
use opml_compiler::layout::OUTPUT_BASE;
use opml_dnn::bundle::Bundle;
use opml_dnn::st::read_dataset;
use serde_json::Value;
use IOptimisticML::{EndReason, Phase, Side};

#[path = "common/chain.rs"]
mod chain;
#[path = "common/late_logs.rs"]
mod late_logs;
use chain::view;
use late_logs::LateLogs;

/// Anvil's default dev accounts 0..3 (from its well-known test mnemonic); test use only.
const KEYS: [&str; 4] = [DEV_KEYS[0], DEV_KEYS[1], DEV_KEYS[2], DEV_KEYS[3]];
const DEPLOYER: usize = 0;
const SUBMITTER: usize = 1;
const CHALLENGER: usize = 2;
const LIAR: usize = 3;

const CLOCK: u64 = 300;
const WINDOW: u64 = 600;
const SUBMITTER_BOND: u128 = 1_000_000_000_000_000;
const CHALLENGER_BOND: u128 = 400_000_000_000_000;
const BURN_BPS: u128 = 2_500;
const INDEX: &str = "1";

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

fn opml(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_opml"));
    c.args(args);
    c
}

/// Run `opml <args>`, require success, parse its JSON.
fn run_json(args: &[&str]) -> Value {
    let out = opml(args).output().unwrap();
    assert!(out.status.success(), "opml {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("opml {args:?}: not JSON ({e})"))
}

/// Wait for children with a deadline (all killed past it); each must succeed. On a
/// failure, every child's stderr is shown.
fn finish_all(children: Vec<(Child, &str)>, limit: Duration) -> Vec<Output> {
    let start = Instant::now();
    let mut children = children;
    loop {
        let done = children.iter_mut().all(|(c, _)| c.try_wait().unwrap().is_some());
        if done || start.elapsed() > limit {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut outs = Vec::new();
    let mut report = String::new();
    let mut ok = true;
    for (mut c, what) in children {
        let late = c.try_wait().unwrap().is_none();
        if late {
            let _ = c.kill();
        }
        let out = c.wait_with_output().unwrap();
        let status = if late { format!("still running after {limit:?}") } else { format!("{}", out.status) };
        ok &= !late && out.status.success();
        report += &format!("\n--- {what}: {status}\n{}", String::from_utf8_lossy(&out.stderr));
        outs.push(out);
    }
    assert!(ok, "{report}");
    outs
}

fn finish(c: Child, what: &str, limit: Duration) -> Output {
    finish_all(vec![(c, what)], limit).pop().unwrap()
}

fn deploy(a: &Anvil, dir: &Path) -> (String, Value) {
    let file = dir.join("deployment.json").to_str().unwrap().to_string();
    let (clock, window) = (CLOCK.to_string(), WINDOW.to_string());
    let (sb, cb, burn) = (SUBMITTER_BOND.to_string(), CHALLENGER_BOND.to_string(), BURN_BPS.to_string());
    #[rustfmt::skip]
    let v = run_json(&[
        "chain", "deploy", "--rpc", &a.url(), "--key", KEYS[DEPLOYER], "--out", &file, "--clock", &clock,
        "--window", &window, "--submitter-bond", &sb, "--challenger-bond", &cb, "--burn-bps", &burn, "--json",
    ]);
    let on_disk: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(on_disk, v);
    assert_eq!(v["chain_id"], 31337);
    assert_eq!(v["config"]["clock"], CLOCK);
    (file, v)
}

fn provider(a: &Anvil, key: usize) -> (DynProvider, Address) {
    let s: PrivateKeySigner = KEYS[key].parse().unwrap();
    let from = s.address();
    (
        ProviderBuilder::default()
            .with_gas_estimation()
            .with_simple_nonce_management()
            .fetch_chain_id()
            .wallet(EthereumWallet::from(s))
            .connect_http(a.url().parse().unwrap())
            .erased(),
        from,
    )
}

fn addr(v: &Value) -> Address {
    v.as_str().unwrap().parse().unwrap()
}

async fn send<C: SolCall>(
    p: &DynProvider,
    to: Address,
    call: &C,
    value: u128,
) -> alloy::rpc::types::TransactionReceipt {
    let tx = TransactionRequest::default().with_to(to).with_input(call.abi_encode()).with_value(U256::from(value));
    // The limit the CLI sends with: a move mined a second after its estimate pays more gas.
    let estimate = p.estimate_gas(tx.clone()).await.unwrap_or_else(|e| panic!("{}: {}", C::SIGNATURE, reason(&e)));
    let tx = tx.with_gas_limit(gas_with_margin(estimate));
    let r = p.send_transaction(tx.clone()).await.unwrap_or_else(|e| panic!("{}: {e}", C::SIGNATURE));
    let r = r.get_receipt().await.unwrap();
    if !r.status() {
        // Replay it on the state its block started from (anvil mines one transaction a
        // block) for the contract's reason.
        let before = r.block_number.map_or(BlockId::latest(), |n| BlockId::number(n.saturating_sub(1)));
        let why = match p.call(tx).block(before).await {
            Err(e) => reason(&e),
            Ok(_) => format!("no revert when replayed (out of gas? used {} of {estimate} estimated)", r.gas_used),
        };
        panic!("{} reverted: {why}", C::SIGNATURE);
    }
    r
}

/// The decoded revert of an RPC error, else the error.
fn reason(e: &alloy::transports::TransportError) -> String {
    e.as_error_resp().and_then(|e| e.as_revert_data()).map_or_else(|| e.to_string(), |d| revert_reason(&d))
}

/// Move the chain's time on by `secs` and mine a block.
async fn warp(p: &DynProvider, secs: u64) {
    let _: Value = p.raw_request("evm_increaseTime".into(), (secs,)).await.unwrap();
    let _: Value = p.raw_request("evm_mine".into(), ()).await.unwrap();
}

fn play(file: &str, game: &str, role: &str, key: usize) -> Child {
    play_sample(file, game, role, key, INDEX)
}

fn play_sample(file: &str, game: &str, role: &str, key: usize, index: &str) -> Child {
    play_with(file, game, role, key, index, &[])
}

fn play_with(file: &str, game: &str, role: &str, key: usize, index: &str, extra: &[&str]) -> Child {
    let (bundle, input) = (fixture("mlp.opml"), fixture("test_mlp.safetensors"));
    #[rustfmt::skip]
    let mut args = vec![
        "chain", "play", game, "--role", role, &bundle, "--input", &input, "--index", index,
        "--deployment", file, "--key", KEYS[key], "--poll-ms", "100", "--json",
    ];
    args.extend_from_slice(extra);
    opml(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

fn burn(x: u128) -> u128 {
    x * BURN_BPS / 10_000
}

#[tokio::test(flavor = "current_thread")]
async fn honest_submitter_beats_a_challenger_of_a_true_claim() {
    let dir = tempfile::tempdir().unwrap();
    let a = anvil(dir.path());
    let (file, d) = deploy(&a, dir.path());
    let (bundle, input) = (fixture("mlp.opml"), fixture("test_mlp.safetensors"));
    #[rustfmt::skip]
    let c = run_json(&[
        "chain", "claim", &bundle, "--input", &input, "--index", INDEX, "--deployment", &file,
        "--key", KEYS[SUBMITTER], "--json",
    ]);
    assert_eq!(c["claim"], 1);
    assert!(c["register_tx"].is_string(), "the first claim registers the model: {c}");
    // Registering again is a no-op.
    let r = run_json(&["chain", "register", &bundle, "--deployment", &file, "--key", KEYS[SUBMITTER], "--json"]);
    assert_eq!((r["model_id"].clone(), r["tx"].clone()), (c["model_id"].clone(), Value::Null));
    // Finalizing inside the window is refused, with the decoded revert.
    let out = opml(&["chain", "finalize", "1", "--deployment", &file, "--key", KEYS[SUBMITTER]]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("WindowOpen"), "{err}");
    let g = run_json(&["chain", "challenge", "1", "--deployment", &file, "--key", KEYS[CHALLENGER], "--json"]);
    assert_eq!(g["game"], 1);

    // Another sample is not the claim's input: play refuses it.
    let out = play_sample(&file, "1", "submitter", SUBMITTER, "2").wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("not the claim's input"), "{err}");

    let sub = play(&file, "1", "submitter", SUBMITTER);
    let ch = play(&file, "1", "challenger", CHALLENGER);
    let limit = Duration::from_secs(90);
    let mut outs = finish_all(vec![(sub, "play --role submitter"), (ch, "play --role challenger")], limit);
    let (ch, sub) = (outs.pop().unwrap(), outs.pop().unwrap());
    let (s, c): (Value, Value) =
        (serde_json::from_slice(&sub.stdout).unwrap(), serde_json::from_slice(&ch.stdout).unwrap());
    assert_eq!(
        (s["winner"].as_str(), s["reason"].as_str(), s["won"].as_bool()),
        (Some("submitter"), Some("step"), Some(true))
    );
    assert_eq!((c["winner"].as_str(), c["won"].as_bool()), (Some("submitter"), Some(false)));
    assert!(String::from_utf8_lossy(&ch.stderr).contains("disputes a true claim"));
    let progress = String::from_utf8_lossy(&sub.stderr);
    assert!(progress.contains("phase steps") && progress.contains("handover node"), "{progress}");

    // The game as `show` reports it, checked against the chain through alloy.
    let shown = run_json(&["chain", "show", "1", "--deployment", &file, "--json"]);
    let (p, _) = provider(&a, DEPLOYER);
    let game = addr(&d["game"]);
    let gv = view(&p, game, &IOptimisticML::gameOfCall { gameId: U256::from(1) }).await;
    assert_eq!((gv.phase, gv.winner, gv.endReason), (Phase::Ended, Side::Submitter, EndReason::Step));
    assert_eq!(shown["winner"], "submitter");
    let names: Vec<&str> = shown["events"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    let count = |n: &str| names.iter().filter(|x| **x == n).count();
    assert_eq!(names.first(), Some(&"Challenged"));
    assert_eq!(names.last(), Some(&"GameEnded"));
    assert_eq!((count("Opened"), count("HandedOver"), count("StepResolved")), (1, 1, 1));
    assert_eq!(count("StatesPosted"), count("Picked"));
    // The digits MLP has 6 nodes: one graph round ([0, 6] in 6 pieces at k = 16), then
    // 2^32 steps at k = 16: exactly 32 / 4 = 8 VM rounds.
    assert_eq!(count("Picked"), 1 + 8, "{names:?}");

    // After the window the claim finalizes; the submitter withdraws both bonds less the burn.
    warp(&p, WINDOW).await;
    let f = run_json(&["chain", "finalize", "1", "--deployment", &file, "--key", KEYS[DEPLOYER], "--json"]);
    assert_eq!(f["claim"], 1);
    let w = run_json(&["chain", "withdraw", "--deployment", &file, "--key", KEYS[SUBMITTER], "--json"]);
    let want = SUBMITTER_BOND + CHALLENGER_BOND - burn(CHALLENGER_BOND);
    assert_eq!(w["amount"].as_str().unwrap(), want.to_string());
    let out = opml(&["chain", "withdraw", "--deployment", &file, "--key", KEYS[CHALLENGER]]).output().unwrap();
    assert!(!out.status.success(), "the losing challenger has nothing to withdraw");
}

/// The lying submitter's run: the model's last node output with one bit flipped, and that
/// node's VM run forged at its halting step to hold the lie.
struct Liar {
    bundle: Bundle,
    graph: GraphView,
    node: usize,
    vm: VmView,
}

fn liar(depth: u32) -> Liar {
    let bundle = Bundle::from_bytes(&std::fs::read(fixture("mlp.opml")).unwrap()).unwrap();
    let ds = read_dataset(&std::fs::read(fixture("test_mlp.safetensors")).unwrap(), "test_mlp", false).unwrap();
    let x = bundle.quantize_input(ds.sample(INDEX.parse().unwrap())).unwrap();
    let model = Arc::new(bundle.model.clone());
    let root = bundle.model_root().unwrap();
    let honest = GraphView::honest(model.clone(), root, std::slice::from_ref(&x)).unwrap();
    let node = honest.node_count() - 1;
    let lie = flip_byte(honest.node_output(node).unwrap(), 5).unwrap();
    let graph = GraphView::lying(model.clone(), root, std::slice::from_ref(&x), node, lie.clone()).unwrap();
    let prog = compile_node(&model, node).unwrap();
    let ins = honest.node_inputs(node).unwrap();
    let end = VmView::new(&prog, &ins, depth).unwrap().end_step();
    let forge = Tamper { step: end, edits: vec![Edit::Bytes { addr: OUTPUT_BASE, bytes: lie.to_le_bytes() }] };
    let vm = VmView::tampered(&prog, &ins, depth, Some(&forge)).unwrap();
    Liar { bundle, graph, node, vm }
}

/// Post the liar's claim (the model is registered by the CLI first); its claim id.
async fn lying_claim(p: &DynProvider, game: Address, l: &Liar, file: &str) -> U256 {
    let r = run_json(&["chain", "register", &fixture("mlp.opml"), "--deployment", file, "--key", KEYS[LIAR], "--json"]);
    let call = IOptimisticML::postClaimCall {
        modelId: r["model_id"].as_str().unwrap().parse().unwrap(),
        requestId: U256::ZERO,
        inputCommitments: to_b256(&l.graph.trace().inputs),
        inputBytes: Bytes::from(l.graph.slots()[0].to_le_bytes()),
        output: Bytes::from(l.graph.output().to_le_bytes()),
        outputCommitment: l.graph.output_commitment().into(),
    };
    let rc = send(p, game, &call, SUBMITTER_BOND).await;
    let e = rc.inner.logs().iter().find_map(|x| IOptimisticML::ClaimPosted::decode_log_data(x.data()).ok()).unwrap();
    e.claimId
}

#[tokio::test(flavor = "current_thread")]
async fn honest_challenger_beats_a_lying_submitter() {
    let dir = tempfile::tempdir().unwrap();
    let a = anvil(dir.path());
    let (file, d) = deploy(&a, dir.path());
    let game = addr(&d["game"]);
    let depth = d["config"]["vm_depth"].as_u64().unwrap() as u32;
    let k = d["config"]["arity"].as_u64().unwrap();
    let (p, _) = provider(&a, LIAR);
    let mut l = liar(depth);
    let claim = lying_claim(&p, game, &l, &file).await;
    let g = run_json(&[
        "chain",
        "challenge",
        &claim.to_string(),
        "--deployment",
        &file,
        "--key",
        KEYS[CHALLENGER],
        "--json",
    ]);
    let id = U256::from(g["game"].as_u64().unwrap());
    // The challenger reads the chain through a proxy whose logs lag one query behind its
    // state: it must wait for each round's StatesPosted event instead of giving up.
    let late = LateLogs::start(a.url().trim_start_matches("http://").parse().unwrap());
    let mut ch = play_with(&file, &id.to_string(), "challenger", CHALLENGER, INDEX, &["--rpc", &late.url()]);

    // The liar plays every submitter move from this test until the game ends.
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < Duration::from_secs(90), "the game did not end within 90 s");
        let gv = view(&p, game, &IOptimisticML::gameOfCall { gameId: id }).await;
        if gv.phase != Phase::Ended && ch.try_wait().unwrap().is_some() {
            let out = ch.wait_with_output().unwrap();
            panic!("the challenger's play stopped mid-game: {}", String::from_utf8_lossy(&out.stderr));
        }
        let mine = gv.turn == Side::Submitter;
        match (gv.phase, gv.pending) {
            (Phase::Ended, _) => break,
            (Phase::Open, _) => {
                let (sn, sibs) = l.graph.open().unwrap();
                let c =
                    IOptimisticML::openCall { gameId: id, finalGraphState: sn.into(), outputSiblings: to_b256(&sibs) };
                send(&p, game, &c, 0).await;
            }
            (Phase::Graph, false) if mine => {
                let states = defend(&mut l.graph, gv.lo, gv.hi, k).unwrap();
                send(&p, game, &IOptimisticML::postStatesCall { gameId: id, states: to_b256(&states) }, 0).await;
            }
            (Phase::Handover, _) => {
                assert_eq!(gv.lo as usize, l.node, "the challenger isolates the lying node");
                let h = HandoverData::build(&l.graph, l.bundle.node_images(), l.node, &l.vm).unwrap();
                send(&p, game, &IOptimisticML::handoverCall { gameId: id, p: (&h).into() }, 0).await;
            }
            (Phase::Steps, false) if mine => {
                let states = defend(&mut l.vm, gv.lo, gv.hi, k).unwrap();
                send(&p, game, &IOptimisticML::postStatesCall { gameId: id, states: to_b256(&states) }, 0).await;
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let out = finish(ch, "play --role challenger", Duration::from_secs(30));
    let c: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (c["winner"].as_str(), c["reason"].as_str(), c["won"].as_bool()),
        (Some("challenger"), Some("step"), Some(true))
    );
    let gv = view(&p, game, &IOptimisticML::gameOfCall { gameId: id }).await;
    assert_eq!((gv.phase, gv.winner, gv.endReason), (Phase::Ended, Side::Challenger, EndReason::Step));
    assert_eq!(gv.lo, l.vm.end_step() - 1, "the leaf is the forged halting step");
    assert!(late.held_back() > 0, "the proxy held back no log: the lag was not exercised");
    let cv = view(&p, game, &IOptimisticML::claimOfCall { claimId: claim }).await;
    assert!(cv.voided);

    // A second lie whose submitter never opens: the challenger's play times it out once
    // the chain's clock is past the submitter's.
    let claim2 = lying_claim(&p, game, &l, &file).await;
    let g = run_json(&[
        "chain",
        "challenge",
        &claim2.to_string(),
        "--deployment",
        &file,
        "--key",
        KEYS[CHALLENGER],
        "--json",
    ]);
    let id2 = g["game"].as_u64().unwrap().to_string();
    let ch = play(&file, &id2, "challenger", CHALLENGER);
    tokio::time::sleep(Duration::from_millis(300)).await;
    warp(&p, CLOCK + 1).await;
    let out = finish(ch, "play --role challenger (timeout)", Duration::from_secs(30));
    let c: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((c["winner"].as_str(), c["reason"].as_str()), (Some("challenger"), Some("timeout")));
    assert!(String::from_utf8_lossy(&out.stderr).contains("calling timeout"));

    // Two won games: both bonds back plus both submitter bonds less the burn.
    let w = run_json(&["chain", "withdraw", "--deployment", &file, "--key", KEYS[CHALLENGER], "--json"]);
    let want = 2 * (CHALLENGER_BOND + SUBMITTER_BOND - burn(SUBMITTER_BOND));
    assert_eq!(w["amount"].as_str().unwrap(), want.to_string());
}
