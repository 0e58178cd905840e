//! Disputes over LLM claims on anvil, each watcher a real `opml` process, with
//! SmolLM2-135M-Instruct Q4_1 imported with small limits (`--max-prompt 8 --max-new 8`)
//! when `scripts/fetch_models.sh` has fetched it (each test prints why and passes without
//! it):
//!
//! * one challenger watcher and one lying submitter watcher; an honest claim finalizes
//!   after its window, and three false claims are voided with the challenger winning at
//!   one VM step: a lie about generated token T (the game isolates the argmax node of
//!   position `prompt_len - 1 + T`), a lie about a layer-15 node's output at a generated
//!   position (that node), and a lie inside that node's VM run at step S (that node, and
//!   the VM phase ends at step S). Per dispute it prints graph and VM rounds, gas per move,
//!   the largest calldata of any move and the wall time from challenge to game end, and
//!   bounds gas and calldata per move;
//! * bad input to `opml chain claim` on an LLM bundle (no anvil: a claim's request and
//!   fault are checked before the chain is reached).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use opml_cli::anvil::{Anvil, ANY_PORT, DEV_KEYS};
use opml_cli::game::abi::IOptimisticML;
use opml_compiler::compile_node;
use opml_dnn::exec::run_all;
use opml_importer::generation::INPUTS;
use opml_importer::{GenerationGraph, LlmBundle};
use serde_json::Value;
use IOptimisticML::{EndReason, Phase, Side};

#[path = "common/chain.rs"]
mod chain;
#[path = "common/smollm2.rs"]
mod smollm2;
use chain::{view, wait_until, Watcher};

/// Anvil's well-known dev keys (public test keys): deployer, submitter, challenger.
const KEYS: [&str; 3] = [DEV_KEYS[0], DEV_KEYS[1], DEV_KEYS[3]];
const DEPLOYER: usize = 0;
const SUBMITTER: usize = 1;
const CHALLENGER: usize = 2;
/// Each side's clock: far more than a move takes, so no game ends on a clock.
const CLOCK: u64 = 900;
/// The challenge window: long enough for the challenger to judge a claim (a generation
/// of 6 tokens, the quick path) under load, short enough to see the honest claim finalize.
const WINDOW: u64 = 40;
const PROMPT: &str = "The capital of France is";
const NEW: usize = 6;
/// The layer-15 node lied about, at the position that emits generated token `LIE_TOKEN`.
const LAYER_NODE: &str = "blk.15.ffn_up";
const LAYER_TOKEN: usize = 3;
/// The generated token lied about.
const LIE_TOKEN: usize = 2;
/// Gas bound per move: the contract's moves are a handful of storage writes and hashing,
/// the costliest being the handover (Merkle checks of the node's inputs, descriptor and
/// output region) and the one-step re-execution; 1 M is a generous ceiling under the
/// 30 M block gas limit.
const MAX_GAS_PER_MOVE: u64 = 1_000_000;
/// Calldata bound per move. No move carries a tensor; each is a few hashes and at most
/// one VM state. With `L` slots (this graph: under 2^14, so slot paths of at most 14
/// siblings) and a 2^32-byte VM memory (paths of at most 32):
/// * postStates: `k - 1 = 15` states, 480 bytes;
/// * pick, open: an index; the final graph state and its output slot's path (< 1 KiB);
/// * handover: the node's output commitment and its slot path, its descriptor and the
///   descriptor's path, each input's value and slot path (an LLM node has at most 4
///   inputs), the 173-byte final VM state and its output region's path: about
///   (14 * 6 + 6 + 32) * 32 + 173 bytes plus the descriptor, under 4.5 KiB;
/// * resolveStep: the 173-byte state and the memory proofs of one step (a few 32-sibling
///   paths), under 4 KiB.
///
/// So 8 KiB, whatever the node disputed (no move grows with its tensors).
const MAX_CALLDATA: usize = 8 * 1024;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn opml(home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_opml"));
    c.args(args).env("OPML_HOME", home);
    c
}

fn run_json(home: &Path, args: &[&str]) -> Value {
    let out = opml(home, args).output().unwrap();
    assert!(out.status.success(), "opml {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("opml {args:?}: not JSON ({e})"))
}

/// Run `opml <args>` (no chain needed), require failure; its stderr.
fn run_err(args: &[&str]) -> String {
    let out: Output = smollm2::opml(args);
    assert!(!out.status.success(), "opml {args:?} should fail: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// SmolLM2 imported once with `--max-prompt 8 --max-new 8`: (directory, the model store
/// folder holding the bundle, the bundle).
fn imported() -> Option<&'static (tempfile::TempDir, PathBuf, PathBuf)> {
    static B: OnceLock<Option<(tempfile::TempDir, PathBuf, PathBuf)>> = OnceLock::new();
    B.get_or_init(|| {
        let m = smollm2::model()?;
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("models");
        std::fs::create_dir_all(&store).unwrap();
        let out = store.join("smol.opmlllm");
        let t = Instant::now();
        smollm2::json_ok(&["model", "import", s(&m), "-o", s(&out), "--max-prompt", "8", "--max-new", "8", "--json"]);
        eprintln!("import: {:.1} s", t.elapsed().as_secs_f64());
        Some((dir, store, out))
    })
    .as_ref()
}

/// What the test expects of the disputes, from the bundle's own generation graph.
struct Expected {
    /// The prompt's tokens.
    prompt_len: usize,
    /// The argmax node of the position that emits generated token `t`.
    token_node: Box<dyn Fn(usize) -> (usize, String)>,
    /// The layer node lied about: its name and index.
    layer: (String, usize),
    /// Its VM run's length, honest.
    layer_steps: u64,
}

fn expected(bundle: &Path) -> Expected {
    let b = LlmBundle::read(bundle).unwrap();
    let (tok, limits) = (b.tokenizer().unwrap(), b.limits());
    let ids = tok.encode(PROMPT).unwrap();
    let llama = b.into_model().unwrap();
    let g = GenerationGraph::new(&llama, limits).unwrap();
    let pos = g.position_of_token(ids.len(), LAYER_TOKEN);
    let name = format!("pos{pos}.{LAYER_NODE}");
    let node = g.node_named(&name).unwrap_or_else(|| panic!("no node {name}"));
    let inputs = g.inputs(&ids, NEW).unwrap();
    let slots = run_all(&g.model, &inputs).unwrap();
    let gr = g.model.graph();
    let ins: Vec<_> = gr.nodes[node].inputs.iter().map(|&s| &slots[s]).collect();
    let layer_steps = compile_node(&g.model, node).unwrap().run(&ins, 1 << 32).unwrap().steps;
    let names: Vec<String> = gr.nodes.iter().map(|n| n.name.clone()).collect();
    let next: Vec<usize> = g.steps.iter().map(|s| s.slots.next - INPUTS).collect();
    let prompt_len = ids.len();
    let token_node = Box::new(move |t: usize| {
        let j = next[prompt_len - 1 + t];
        (j, names[j].clone())
    });
    Expected { prompt_len, token_node, layer: (name, node), layer_steps }
}

/// A watcher process (`opml watch --role ROLE` with anvil dev key `key`, polling every
/// 100 ms); its event lines go to `home/ROLE.log`.
fn watcher(home: &Path, file: &str, key: usize, role: &str, models: &Path, data: &Path, extra: &[&str]) -> Watcher {
    #[rustfmt::skip]
    let mut args = vec![
        "watch", "--role", role, "--models", s(models), "--data-dir", s(data),
        "--deployment", file, "--key", KEYS[key], "--json", "--poll-ms", "100",
    ];
    args.extend_from_slice(extra);
    Watcher::spawn(opml(home, &args), home.join(format!("{role}.log")))
}

/// The calldata length of transaction `tx` (`eth_getTransactionByHash`).
async fn calldata_len(p: &DynProvider, tx: &str) -> usize {
    let t: Value = p.raw_request("eth_getTransactionByHash".into(), (tx.to_string(),)).await.unwrap();
    let input = t["input"].as_str().unwrap_or_else(|| panic!("tx {tx}: no input in {t}"));
    (input.len() - 2) / 2
}

/// One dispute's figures.
struct Figures {
    what: String,
    graph_rounds: u64,
    vm_rounds: u64,
    moves: usize,
    max_gas: u64,
    total_gas: u64,
    max_calldata: usize,
    largest_move: String,
    kinds: String,
    wall_s: f64,
}

/// The event `event` of game `game` in `events` (the first).
fn event<'a>(events: &'a [Value], event: &str, game: u64) -> Option<&'a Value> {
    events.iter().find(|v| v["event"] == event && v["game"] == game)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_lies_about_a_token_a_node_and_a_vm_step_are_voided_and_the_truth_finalizes() {
    let Some((_, store, bundle)) = imported() else { return };
    let t0 = Instant::now();
    let want = expected(bundle);
    eprintln!(
        "expected: prompt {} tokens; {} is node {} ({} VM steps); {:.1} s",
        want.prompt_len,
        want.layer.0,
        want.layer.1,
        want.layer_steps,
        t0.elapsed().as_secs_f64()
    );
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let anvil = Anvil::spawn(ANY_PORT, None, &h.join("anvil.log")).unwrap();
    let url = anvil.url();
    let file = h.join("deployment.json").to_str().unwrap().to_string();
    let (clock, window) = (CLOCK.to_string(), WINDOW.to_string());
    #[rustfmt::skip]
    let d = run_json(h, &[
        "chain", "deploy", "--rpc", &url, "--key", KEYS[DEPLOYER], "--out", &file, "--clock", &clock,
        "--window", &window, "--json",
    ]);
    let game: Address = d["game"].as_str().unwrap().parse().unwrap();
    let token = format!("token:{LIE_TOKEN}");
    let node = format!("node:{}", want.layer.0);
    let step_at = want.layer_steps / 2;
    let step = format!("step:{}:{step_at}", want.layer.0);
    let faults = [token.as_str(), node.as_str(), step.as_str()];
    let sub_args: Vec<&str> = faults.iter().flat_map(|f| ["--dishonest", *f]).collect();
    let sub = watcher(h, &file, SUBMITTER, "submitter", store, &h.join("sub"), &sub_args);
    let ch = watcher(h, &file, CHALLENGER, "challenger", store, &h.join("ch"), &[]);
    let why = || format!("\n--- submitter\n{}\n--- challenger\n{}", sub.text(), ch.text());
    let p = ProviderBuilder::default().connect_http(url.parse().unwrap()).erased();
    let new = NEW.to_string();
    let claim = |dishonest: Option<&str>| {
        #[rustfmt::skip]
        let mut args = vec![
            "chain", "claim", s(bundle), "--prompt", PROMPT, "--max-new-tokens", &new, "--deployment", &file,
            "--key", KEYS[SUBMITTER], "--json",
        ];
        args.extend(dishonest.iter().flat_map(|f| ["--dishonest", *f]));
        let t = Instant::now();
        let v = run_json(h, &args);
        eprintln!("claim {} ({dishonest:?}) posted in {:.1} s", v["claim"], t.elapsed().as_secs_f64());
        assert_eq!(v["generation"]["prompt_tokens"].as_u64(), Some(want.prompt_len as u64), "{v}");
        assert_eq!(v["generation"]["new_tokens"].as_u64(), Some(NEW as u64), "{v}");
        assert_eq!(v["dishonest"].as_str(), dishonest, "{v}");
        v
    };

    // The honest claim first: its window runs while the false ones are disputed.
    let honest = claim(None);
    let honest_id = honest["claim"].as_u64().unwrap();
    assert!(honest["generation"]["text"].as_str().unwrap().contains("Paris"), "{honest}");

    // The false claims one at a time, so that each dispute's wall time is its own.
    let (token_node, token_name) = (want.token_node)(LIE_TOKEN);
    assert_eq!(token_name, format!("pos{}.argmax", want.prompt_len - 1 + LIE_TOKEN));
    let layer = || (want.layer.1, want.layer.0.clone());
    let cases = [
        (faults[0], LIE_TOKEN, (token_node, token_name)),
        (faults[1], LAYER_TOKEN, layer()),
        (faults[2], LAYER_TOKEN, layer()),
    ];
    let mut table = Vec::new();
    for (fault, first_wrong, (node, name)) in cases {
        let c = claim(Some(fault));
        let id = c["claim"].as_u64().unwrap();
        assert_ne!(c["output_commitment"], honest["output_commitment"], "{fault}: the lie changes the output");
        // The tokens before the lie's position are the true ones; the one it emits is not.
        let (lie, truth) =
            (c["generation"]["tokens"].as_array().unwrap(), honest["generation"]["tokens"].as_array().unwrap());
        assert_eq!(lie[..first_wrong], truth[..first_wrong], "{fault}: {lie:?} / {truth:?}");
        assert_ne!(lie[first_wrong], truth[first_wrong], "{fault}: {lie:?} / {truth:?}");
        // The game on this claim, then its end.
        let game_id = {
            let mut g = None;
            wait_until(
                Duration::from_secs(90),
                || {
                    g = ch
                        .events()
                        .iter()
                        .find(|v| v["event"] == "challenge" && v["claim"] == id)
                        .map(|v| v["game"].as_u64().unwrap());
                    std::future::ready(g.is_some())
                },
                &why,
            )
            .await;
            g.unwrap()
        };
        wait_until(
            Duration::from_secs(300),
            || std::future::ready(event(&ch.events(), "game_end", game_id).is_some()),
            &why,
        )
        .await;
        let v = view(&p, game, &IOptimisticML::claimOfCall { claimId: U256::from(id) }).await;
        assert!(v.voided && !v.finalized, "{fault}: claim {id} voided{}", why());
        let g = view(&p, game, &IOptimisticML::gameOfCall { gameId: U256::from(game_id) }).await;
        assert_eq!(
            (g.phase, g.winner, g.endReason),
            (Phase::Ended, Side::Challenger, EndReason::Step),
            "{fault}{}",
            why()
        );
        assert_eq!(g.node as usize, node, "{fault}: the game isolates {name}{}", why());
        if fault == faults[2] {
            // The tampered state is the one at step S: the step disputed is S - 1 -> S.
            assert_eq!(
                (g.lo, g.hi),
                (step_at - 1, step_at),
                "{fault}: the VM phase ends at the tampered step{}",
                why()
            );
        }
        table.push(figures(&p, fault, &name, game_id, &ch, &sub).await);
    }

    // The honest claim: judged true, never challenged, finalized once its window is over.
    wait_until(
        Duration::from_secs(WINDOW + 120),
        || async { view(&p, game, &IOptimisticML::claimOfCall { claimId: U256::from(honest_id) }).await.finalized },
        &why,
    )
    .await;
    let ev = ch.events();
    assert!(
        ev.iter().any(|v| v["event"] == "verdict" && v["claim"] == honest_id && v["verdict"] == "agree"),
        "{}",
        why()
    );
    assert!(!ev.iter().any(|v| v["event"] == "challenge" && v["claim"] == honest_id));
    let n = view(&p, game, &IOptimisticML::gameCountCall {}).await.to::<u64>();
    assert_eq!(n, 3, "one game per false claim");

    eprintln!(
        "\n{:<44} {:>6} {:>6} {:>6} {:>10} {:>11} {:>10} {:>8}",
        "dispute", "graph", "vm", "moves", "max gas", "total gas", "max bytes", "wall s"
    );
    for f in &table {
        eprintln!(
            "{:<44} {:>6} {:>6} {:>6} {:>10} {:>11} {:>10} {:>8.1}   (largest: {})",
            f.what,
            f.graph_rounds,
            f.vm_rounds,
            f.moves,
            f.max_gas,
            f.total_gas,
            f.max_calldata,
            f.wall_s,
            f.largest_move
        );
        eprintln!("    {}", f.kinds);
    }
    for f in &table {
        assert!(f.max_gas < MAX_GAS_PER_MOVE, "{}: a move used {} gas", f.what, f.max_gas);
        assert!(
            f.max_calldata < MAX_CALLDATA,
            "{}: {} has {} bytes of calldata",
            f.what,
            f.largest_move,
            f.max_calldata
        );
    }
    eprintln!("test wall time {:.1} s", t0.elapsed().as_secs_f64());
}

/// Rounds, gas and calldata per move, wall time of game `game_id` from the watchers' logs.
async fn figures(p: &DynProvider, fault: &str, name: &str, game_id: u64, ch: &Watcher, sub: &Watcher) -> Figures {
    let (ce, se) = (ch.events(), sub.events());
    let rounds = |phase: &str| {
        ce.iter()
            .filter(|v| v["event"] == "phase" && v["game"] == game_id && v["phase"] == phase)
            .filter_map(|v| v["round"].as_u64())
            .max()
            .unwrap_or(0)
    };
    let moves: Vec<&Value> = ce.iter().chain(&se).filter(|v| v["event"] == "move" && v["game"] == game_id).collect();
    assert!(!moves.is_empty(), "{fault}: moves of game {game_id}");
    let (mut max_calldata, mut largest_move) = (0, String::new());
    // Per kind of move (its first word): count, most calldata, most gas.
    let mut kinds: std::collections::BTreeMap<String, (usize, usize, u64)> = Default::default();
    for m in &moves {
        let n = calldata_len(p, m["tx"].as_str().unwrap()).await;
        let what = m["move"].as_str().unwrap_or_default();
        if n > max_calldata {
            (max_calldata, largest_move) = (n, what.to_string());
        }
        let k = kinds.entry(what.split(' ').next().unwrap_or_default().to_string()).or_default();
        *k = (k.0 + 1, k.1.max(n), k.2.max(m["gas"].as_u64().unwrap()));
    }
    let kinds = kinds.iter().map(|(k, (n, b, g))| format!("{k} x{n}: <= {b} bytes, <= {g} gas")).collect::<Vec<_>>();
    let gas: Vec<u64> = moves.iter().map(|m| m["gas"].as_u64().unwrap()).collect();
    let ts = |e: &str| {
        event(&ce, e, game_id).and_then(|v| v["ts"].as_f64()).unwrap_or_else(|| panic!("{e} of game {game_id}"))
    };
    Figures {
        what: if fault.contains(name) { fault.to_string() } else { format!("{fault} ({name})") },
        graph_rounds: rounds("graph"),
        vm_rounds: rounds("steps"),
        moves: moves.len(),
        max_gas: gas.iter().copied().max().unwrap(),
        total_gas: gas.iter().sum(),
        max_calldata,
        largest_move,
        kinds: kinds.join("; "),
        wall_s: ts("game_end") - ts("challenge"),
    }
}

#[test]
fn bad_llm_claims_are_refused_before_the_chain_is_reached() {
    let Some((_, _, bundle)) = imported() else { return };
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // No chain: every refusal below comes before the deployment file is read.
    let nowhere = h.join("no-deployment.json");
    let claim = |extra: &[&str]| {
        let mut args = vec!["chain", "claim", s(bundle), "--deployment", s(&nowhere), "--key", KEYS[SUBMITTER]];
        args.extend_from_slice(extra);
        run_err(&args)
    };
    let e = claim(&[]);
    assert!(e.contains("is an LLM bundle: pass --prompt TEXT"), "{e}");
    let long = "one two three four five six seven eight nine ten eleven twelve";
    let e = claim(&["--prompt", long]);
    assert!(e.contains("takes prompts of 1..=8 tokens (its --max-prompt at import)"), "{e}");
    let e = claim(&["--prompt", PROMPT, "--max-new-tokens", "0"]);
    assert!(
        e.contains("--max-new-tokens 0: ") && e.contains("generates 1..=8 tokens (its --max-new at import)"),
        "{e}"
    );
    let e = claim(&["--prompt", PROMPT, "--max-new-tokens", "9"]);
    assert!(e.contains("--max-new-tokens 9: ") && e.contains("generates 1..=8 tokens"), "{e}");
    let e = claim(&["--prompt", PROMPT, "--max-new-tokens", "4", "--dishonest", "token:4"]);
    assert!(e.contains("--dishonest token:4: the claim generates 4 tokens, so T is one of 0..=3"), "{e}");
    let e = claim(&["--prompt", PROMPT, "--dishonest", "node:pos99.argmax"]);
    assert!(e.contains("the model has no node named \"pos99.argmax\""), "{e}");
    let e = claim(&["--prompt", PROMPT, "--dishonest", "token:x"]);
    assert!(e.contains("token T \"x\" is not a number"), "{e}");
    // `chain play` reads an LLM claim's input from the chain only.
    let e = run_err(&[
        "chain",
        "play",
        "1",
        "--role",
        "challenger",
        s(bundle),
        "--input",
        s(bundle),
        "--deployment",
        s(&nowhere),
        "--key",
        KEYS[SUBMITTER],
    ]);
    assert!(e.contains("is an LLM bundle: its claims' inputs are the prompt and lengths the chain holds"), "{e}");
    // A graph bundle takes --input, not --prompt; token:T is for LLM claims.
    let digits = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/digits");
    let (mlp, data) = (digits.join("mlp.opml"), digits.join("test_mlp.safetensors"));
    let graph = |extra: &[&str]| {
        let mut args = vec!["chain", "claim", s(&mlp), "--deployment", s(&nowhere), "--key", KEYS[SUBMITTER]];
        args.extend_from_slice(extra);
        run_err(&args)
    };
    let e = graph(&["--prompt", PROMPT]);
    assert!(e.contains("is a graph bundle: pass --input FILE [--index I], not --prompt"), "{e}");
    let e = graph(&["--input", s(&data), "--dishonest", "token:1"]);
    assert!(e.contains("token:T applies to an LLM bundle's generations only"), "{e}");
}
