//! `opml watch` against anvil, each watcher a real `opml` process:
//!
//! * eight claims posted within a few blocks (three deliberately false, at three different
//!   positions) with one challenger watcher and one submitter watcher: every false claim is
//!   voided, every true one finalized, every game ends at a VM step (no move missed its
//!   clock), every credit is withdrawn and the contract paid out what it took in;
//! * a challenger watcher killed with SIGKILL in the VM phase of its game and started again
//!   on the same data directory plays on and wins; a claim of a model it does not know is
//!   reported and skipped;
//! * an RPC outage of 20 s in the middle of two games (anvil stopped, then restarted from
//!   its saved state) crashes neither watcher and both games end correctly;
//! * bad input: unreachable RPC, missing or malformed key, another deployment's data
//!   directory, unknown claim and game, a malformed input file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider};
use opml_cli::anvil::{free_port, Anvil, ANY_PORT, DEV_KEYS};
use opml_cli::game::abi::IOptimisticML;
use serde_json::Value;
use IOptimisticML::{EndReason, Phase, Side};

#[path = "common/chain.rs"]
mod chain;
use chain::{provider, try_view, view, wait_until, Watcher};

/// Anvil's well-known dev keys (public test keys): deployer, submitter, challenger.
const KEYS: [&str; 3] = [DEV_KEYS[0], DEV_KEYS[1], DEV_KEYS[3]];
const DEPLOYER: usize = 0;
const SUBMITTER: usize = 1;
const CHALLENGER: usize = 2;
const CLOCK: u64 = 300;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(name: &str) -> String {
    root().join("fixtures/digits").join(name).to_str().unwrap().to_string()
}

fn opml(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_opml"));
    c.args(args).env("OPML_HOME", std::env::temp_dir().join("opml-watch-test-home"));
    c
}

fn run_ok(args: &[&str]) -> Output {
    let out = opml(args).output().unwrap();
    assert!(out.status.success(), "opml {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn run_json(args: &[&str]) -> Value {
    let out = run_ok(args);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("opml {args:?}: not JSON ({e})"))
}

fn run_err(args: &[&str]) -> String {
    let out = opml(args).output().unwrap();
    assert!(!out.status.success(), "opml {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// A deployment on `url` with a `window`-second challenge window; the deployment file.
fn deploy(url: &str, dir: &Path, window: u64) -> String {
    let file = dir.join("deployment.json").to_str().unwrap().to_string();
    let (clock, window) = (CLOCK.to_string(), window.to_string());
    #[rustfmt::skip]
    run_json(&[
        "chain", "deploy", "--rpc", url, "--key", KEYS[DEPLOYER], "--out", &file, "--clock", &clock,
        "--window", &window, "--json",
    ]);
    file
}

/// A model store holding the given fixtures.
fn models(dir: &Path, names: &[&str]) -> String {
    let m = dir.join("models");
    std::fs::create_dir_all(&m).unwrap();
    for n in names {
        std::fs::copy(fixture(n), m.join(n)).unwrap();
    }
    m.to_str().unwrap().to_string()
}

/// A watcher process (`opml watch --role ROLE` with anvil dev key `key`, polling every
/// 100 ms unless `extra` says otherwise); its event lines go to `log`.
fn watcher(file: &str, key: usize, role: &str, models: &str, data: &Path, extra: &[&str], log: PathBuf) -> Watcher {
    let data = data.to_str().unwrap();
    #[rustfmt::skip]
    let mut args = vec![
        "watch", "--role", role, "--models", models, "--data-dir", data,
        "--deployment", file, "--key", KEYS[key], "--json",
    ];
    if !extra.contains(&"--poll-ms") {
        args.extend(["--poll-ms", "100"]);
    }
    args.extend_from_slice(extra);
    Watcher::spawn(opml(&args), log)
}

/// The logs of watchers, for a failure message (read when it is shown).
fn logs(paths: &[(&str, PathBuf)]) -> impl Fn() -> String {
    let paths: Vec<(String, PathBuf)> = paths.iter().map(|(n, p)| (n.to_string(), p.clone())).collect();
    move || {
        paths.iter().map(|(n, p)| format!("\n--- {n}\n{}", std::fs::read_to_string(p).unwrap_or_default())).collect()
    }
}

fn game_address(file: &str) -> Address {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    v["game"].as_str().unwrap().parse().unwrap()
}

fn address_of(key: usize) -> Address {
    KEYS[key].parse::<alloy::signers::local::PrivateKeySigner>().unwrap().address()
}

/// Post a claim of `bundle` on test sample `index` (deliberately false under `dishonest`).
fn claim(file: &str, bundle: &str, data: &str, index: usize, dishonest: Option<&str>) -> u64 {
    let (b, d, i) = (fixture(bundle), fixture(data), index.to_string());
    let mut args = vec!["chain", "claim", &b, "--input", &d, "--index", &i, "--deployment", file];
    args.extend(["--key", KEYS[SUBMITTER], "--json"]);
    if let Some(s) = dishonest {
        args.extend(["--dishonest", s]);
    }
    run_json(&args)["claim"].as_u64().unwrap()
}

async fn settled(p: &DynProvider, game: Address, claims: &[u64]) -> bool {
    for &id in claims {
        let v = view(p, game, &IOptimisticML::claimOfCall { claimId: U256::from(id) }).await;
        if !(v.finalized || v.voided) {
            return false;
        }
    }
    true
}

async fn credits_zero(p: &DynProvider, game: Address, keys: &[usize]) -> bool {
    for &k in keys {
        let c = view(p, game, &IOptimisticML::creditsCall { account: address_of(k) }).await;
        if !c.is_zero() {
            return false;
        }
    }
    true
}

/// Every game of the deployment: (claim, winner, reason).
async fn games(p: &DynProvider, game: Address) -> Vec<(u64, Side, EndReason, Phase)> {
    let n = view(p, game, &IOptimisticML::gameCountCall {}).await.to::<u64>();
    let mut v = Vec::new();
    for id in 1..=n {
        let g = view(p, game, &IOptimisticML::gameOfCall { gameId: U256::from(id) }).await;
        v.push((g.claimId.to::<u64>(), g.winner, g.endReason, g.phase));
    }
    v
}

async fn conserved(p: &DynProvider, game: Address) {
    let bal = p.get_balance(game).await.unwrap();
    let tin = view(p, game, &IOptimisticML::totalInCall {}).await;
    let tout = view(p, game, &IOptimisticML::totalOutCall {}).await;
    assert_eq!(bal, tin - tout, "balance == totalIn - totalOut");
}

const STEP_REASON: EndReason = EndReason::Step;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_claims_every_lie_voided_every_truth_finalized() {
    let dir = tempfile::tempdir().unwrap();
    let anvil = Anvil::spawn(ANY_PORT, None, &dir.path().join("anvil.log")).unwrap();
    let url = anvil.url();
    let file = deploy(&url, dir.path(), 60);
    let store = models(dir.path(), &["mlp.opml"]);
    let faults = ["output", "node:2", "step:0:300"];
    #[rustfmt::skip]
    let sub_args = ["--dishonest", faults[0], "--dishonest", faults[1], "--dishonest", faults[2]];
    let mut sub =
        watcher(&file, SUBMITTER, "submitter", &store, &dir.path().join("sub"), &sub_args, dir.path().join("sub.log"));
    let mut ch =
        watcher(&file, CHALLENGER, "challenger", &store, &dir.path().join("ch"), &[], dir.path().join("ch.log"));
    // Eight claims, one after the other (one block each); false ones at 1, 4 and 6.
    let plan: [Option<&str>; 8] = [None, Some(faults[0]), None, None, Some(faults[1]), None, Some(faults[2]), None];
    let mut ids = Vec::new();
    for (i, f) in plan.iter().enumerate() {
        ids.push(claim(&file, "mlp.opml", "test_mlp.safetensors", i, *f));
    }
    let p = provider(&url);
    let game = game_address(&file);
    let why = logs(&[("submitter", sub.log()), ("challenger", ch.log())]);
    wait_until(Duration::from_secs(240), || settled(&p, game, &ids), &why).await;
    wait_until(Duration::from_secs(30), || credits_zero(&p, game, &[SUBMITTER, CHALLENGER]), &why).await;
    for (id, f) in ids.iter().zip(plan) {
        let v = view(&p, game, &IOptimisticML::claimOfCall { claimId: U256::from(*id) }).await;
        assert_eq!((v.voided, v.finalized), (f.is_some(), f.is_none()), "claim {id} ({f:?}){}", why());
    }
    let gs = games(&p, game).await;
    assert_eq!(gs.len(), 3, "one game per false claim, none on a true one: {gs:?}");
    for (claim, winner, reason, phase) in &gs {
        assert_eq!(*phase, Phase::Ended);
        assert_eq!((*winner, *reason), (Side::Challenger, STEP_REASON), "game on claim {claim}: no clock ran out");
        assert!(plan[ids.iter().position(|x| x == claim).unwrap()].is_some());
    }
    conserved(&p, game).await;
    assert_eq!(ch.count("verdict"), 8);
    assert_eq!(ch.count("challenge"), 3);
    assert!(sub.alive() && ch.alive(), "watchers keep running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenger_killed_in_the_vm_phase_resumes_and_wins() {
    let dir = tempfile::tempdir().unwrap();
    let anvil = Anvil::spawn(ANY_PORT, None, &dir.path().join("anvil.log")).unwrap();
    let url = anvil.url();
    let file = deploy(&url, dir.path(), 60);
    let (all, mlp_only) = (models(&dir.path().join("a"), &["mlp.opml", "cnn.opml"]), models(dir.path(), &["mlp.opml"]));
    let fault = "step:0:300";
    let _sub = watcher(
        &file,
        SUBMITTER,
        "submitter",
        &all,
        &dir.path().join("sub"),
        &["--dishonest", fault],
        dir.path().join("sub.log"),
    );
    let data = dir.path().join("ch");
    // A slow challenger (one move a second) keeps the game in its VM phase long enough to be
    // killed there.
    let slow = ["--poll-ms", "1000"];
    let mut first = watcher(&file, CHALLENGER, "challenger", &mlp_only, &data, &slow, dir.path().join("ch1.log"));
    let lie = claim(&file, "mlp.opml", "test_mlp.safetensors", 3, Some(fault));
    let unknown = claim(&file, "cnn.opml", "test_cnn.safetensors", 0, None);
    let p = provider(&url);
    let game = game_address(&file);
    let why = logs(&[("first challenger", first.log())]);
    wait_until(
        Duration::from_secs(120),
        || async {
            let g = try_view(&p, game, &IOptimisticML::gameOfCall { gameId: U256::from(1) }).await;
            g.is_some_and(|g| g.phase == Phase::Steps)
        },
        why,
    )
    .await;
    assert!(data.join("games/1/trace.bin").is_file(), "the game's cache is on disk while it runs");
    first.kill9();
    let events = first.events();
    assert!(
        events.iter().any(|v| v["event"] == "verdict" && v["claim"] == unknown && v["verdict"] == "unknown model"),
        "a claim of an unknown model is reported: {}",
        first.text()
    );
    let mut second = watcher(&file, CHALLENGER, "challenger", &mlp_only, &data, &[], dir.path().join("ch2.log"));
    let why = logs(&[("second challenger", second.log())]);
    let both = [lie, unknown];
    wait_until(Duration::from_secs(180), || settled(&p, game, &both), why).await;
    let gs = games(&p, game).await;
    assert_eq!(gs, vec![(lie, Side::Challenger, STEP_REASON, Phase::Ended)], "{}", second.text());
    let v = view(&p, game, &IOptimisticML::claimOfCall { claimId: U256::from(unknown) }).await;
    assert!(v.finalized, "the claim of the model the challenger does not know is left alone");
    assert_eq!(second.count("challenge"), 0, "the restarted watcher does not challenge again");
    assert!(second.count("game_end") == 1 && second.alive());
    wait_until(Duration::from_secs(10), || async { !data.join("games/1").exists() }, || "cache not deleted".into())
        .await;
    // `opml chain play` reads the claim's input from the chain, and refuses a bundle that is
    // not the claim's model.
    #[rustfmt::skip]
    let e = run_err(&["chain", "play", "1", "--role", "challenger", &fixture("cnn.opml"), "--deployment", &file, "--key", KEYS[CHALLENGER]]);
    assert!(e.contains(&format!("claim {lie} is for model")), "{e}");
}

/// A free port below Linux's ephemeral range (32768..): while nothing listens on a port in
/// that range, a client retrying to connect to it can be given that same port as its own
/// source port and connect to itself, holding the port that anvil must take back.
fn port_outside_the_ephemeral_range() -> u16 {
    // A different starting point on every call (time-based), so that a retry tries elsewhere.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let start = (nanos % 12_000) as u16;
    (0..12_000u16)
        .map(|i| 20_000 + (start + i) % 12_000)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port in 20000..32000")
}

/// Start anvil again on `port` from its saved state (retrying while the port is released).
fn restart(port: u16, state: &Path, log: &Path) -> Anvil {
    let start = Instant::now();
    loop {
        match Anvil::spawn(port, Some(state), log) {
            Ok(a) => return a,
            Err(e) if start.elapsed() < Duration::from_secs(20) => {
                eprintln!("anvil restart on port {port}: {e}; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => panic!("anvil did not restart on port {port}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rpc_outage_of_20_s_mid_game_is_survived() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let (port, anvil) = (0..20)
        .find_map(|_| {
            let port = port_outside_the_ephemeral_range();
            Anvil::spawn(port, Some(&state), &dir.path().join("anvil.log")).ok().map(|a| (port, a))
        })
        .expect("anvil on a port below the ephemeral range");
    let url = anvil.url();
    let file = deploy(&url, dir.path(), 120);
    let store = models(dir.path(), &["mlp.opml"]);
    let extra = ["--dishonest", "output", "--dishonest", "node:2"];
    let mut sub =
        watcher(&file, SUBMITTER, "submitter", &store, &dir.path().join("sub"), &extra, dir.path().join("sub.log"));
    let mut ch =
        watcher(&file, CHALLENGER, "challenger", &store, &dir.path().join("ch"), &[], dir.path().join("ch.log"));
    let ids = [
        claim(&file, "mlp.opml", "test_mlp.safetensors", 0, Some("output")),
        claim(&file, "mlp.opml", "test_mlp.safetensors", 1, Some("node:2")),
    ];
    let p = provider(&url);
    let game = game_address(&file);
    let why = logs(&[("submitter", sub.log()), ("challenger", ch.log())]);
    wait_until(
        Duration::from_secs(60),
        || async { view(&p, game, &IOptimisticML::gameCountCall {}).await.to::<u64>() >= 1 },
        &why,
    )
    .await;
    anvil.stop().unwrap();
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(sub.alive() && ch.alive(), "neither watcher exits while the RPC is away");
    let _anvil = restart(port, &state, &dir.path().join("anvil2.log"));
    wait_until(Duration::from_secs(180), || settled(&p, game, &ids), &why).await;
    for id in ids {
        let v = view(&p, game, &IOptimisticML::claimOfCall { claimId: U256::from(id) }).await;
        assert!(v.voided, "claim {id}{}", why());
    }
    let gs = games(&p, game).await;
    assert_eq!(gs.len(), 2, "{gs:?}");
    assert!(gs.iter().all(|g| (g.1, g.2) == (Side::Challenger, STEP_REASON)), "{gs:?}{}", why());
    assert!(sub.alive() && ch.alive());
    assert!(ch.count("pass_error") + ch.count("game_error") > 0, "the outage was seen{}", why());
    assert!(ch.count("rpc_ok") > 0, "and its end{}", why());
}

#[test]
fn bad_input_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let anvil = Anvil::spawn(ANY_PORT, None, &dir.path().join("anvil.log")).unwrap();
    let file = deploy(&anvil.url(), dir.path(), 60);
    let store = models(dir.path(), &["mlp.opml"]);
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    // Missing and malformed keys.
    let e = opml(&["watch", "--role", "challenger", "--models", &store, "--data-dir", d, "--deployment", &file])
        .env_remove("OPML_KEY")
        .output()
        .unwrap();
    assert!(!e.status.success());
    assert!(String::from_utf8_lossy(&e.stderr).contains("no signer"), "{}", String::from_utf8_lossy(&e.stderr));
    #[rustfmt::skip]
    let e = run_err(&["watch", "--role", "challenger", "--models", &store, "--data-dir", d, "--deployment", &file, "--key", "0x12"]);
    assert!(e.contains("not a private key"), "{e}");
    // Unreachable RPC.
    let dead = format!("http://127.0.0.1:{}", free_port().unwrap());
    #[rustfmt::skip]
    let e = run_err(&["watch", "--role", "challenger", "--models", &store, "--data-dir", d, "--deployment", &file, "--rpc", &dead, "--key", KEYS[CHALLENGER]]);
    assert!(e.contains(&dead), "names the URL: {e}");
    // A data directory written for another deployment.
    let other = tempfile::tempdir().unwrap();
    let file2 = deploy(&anvil.url(), other.path(), 60);
    let mut w = watcher(&file, CHALLENGER, "challenger", &store, &data, &[], dir.path().join("w.log"));
    let start = Instant::now();
    while !data.join("state.json").exists() {
        assert!(start.elapsed() < Duration::from_secs(30), "{}", w.text());
        std::thread::sleep(Duration::from_millis(100));
    }
    w.kill9();
    #[rustfmt::skip]
    let e = run_err(&["watch", "--role", "challenger", "--models", &store, "--data-dir", d, "--deployment", &file2, "--key", KEYS[CHALLENGER]]);
    assert!(e.contains("use another --data-dir"), "{e}");
    // A fault for the wrong role, a models path that is not a folder.
    #[rustfmt::skip]
    let e = run_err(&["watch", "--role", "challenger", "--dishonest", "node:1", "--deployment", &file, "--key", KEYS[CHALLENGER]]);
    assert!(e.contains("submitter's fault"), "{e}");
    #[rustfmt::skip]
    let e = run_err(&["watch", "--role", "challenger", "--models", &fixture("mlp.opml"), "--deployment", &file, "--key", KEYS[CHALLENGER]]);
    assert!(e.contains("not a folder"), "{e}");
    // Unknown claim and game.
    let e = run_err(&["chain", "challenge", "99", "--deployment", &file, "--key", KEYS[CHALLENGER]]);
    assert!(e.contains("UnknownClaim"), "{e}");
    let e = run_err(&["chain", "show", "99", "--deployment", &file]);
    assert!(e.contains("UnknownGame"), "{e}");
    // A malformed input file.
    let bad = dir.path().join("bad.safetensors");
    std::fs::write(&bad, b"not a safetensors file").unwrap();
    let (b, bad) = (fixture("mlp.opml"), bad.to_str().unwrap().to_string());
    let e = run_err(&["chain", "claim", &b, "--input", &bad, "--deployment", &file, "--key", KEYS[SUBMITTER]]);
    assert!(e.contains("bad.safetensors"), "names the file: {e}");
}
