//! `opml demo`: the whole product loop on a fresh private devnet, checked.
//!
//! 1. a private anvil and a deployment with a short challenge window;
//! 2. the model registered; three watchers started in this process: an honest challenger,
//!    an honest submitter and a dishonest submitter (`--fault SPEC`, one or more);
//! 3. the claims: an honest one nobody disputes, one false claim per fault, and an honest
//!    one that a lying challenger disputes;
//! 4. the watchers act by themselves: each false claim is challenged and voided, the
//!    honest claim is defended and the lying challenger loses its bond, the honest claims
//!    finalize once their window closes, and every winner withdraws;
//! 5. a summary per claim and per dispute (phases, rounds, gas, wall time, bonds, the node
//!    each dispute isolated), a check that the contract paid out exactly what it took in,
//!    and a verdict. The exit status is 0 only if every outcome is the expected one.
//!
//! The model is a graph bundle (`.opml`: claims over input samples, by default the digits
//! CNN with one fault, `node:N/2`) or an LLM bundle (`.opmlllm`: claims over a whole greedy
//! generation from a few fixed short English prompts, by default with three faults: a
//! middle generated token, a middle layer's `ffn_up` node at that token's position, and one
//! step inside that node's VM run). An LLM claim's summary shows its prompt and the text it
//! claims, and each dispute names the node it isolated.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy_sol_types::{SolEvent, SolEventInterface};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use opml_cli::anvil::{Anvil, ANY_PORT};
use opml_cli::game::abi::{phase_name, reason_name, side_name, IOptimisticML};
use opml_cli::game::fault::{Fault, Run};
use opml_dnn::bundle::Bundle;
use opml_dnn::Tensor;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use crate::chain::client::Client;
use crate::chain::deploy::deploy_contracts;
use crate::chain::deployment::Deployment;
use crate::chain::event;
use crate::chain::play::{self, PlayOptions, Role};
use crate::chain::report::{unix_now, Reporter, Sink};
use crate::chain::workers::Workers;
use crate::claim_model::{ClaimModel, LlmClaims};
use crate::files::load_data;
use crate::sample::post_call;
use crate::watch::models::ModelStore;
use crate::watch::service::{Roles, WatchConfig, Watcher};

// The demo signs with anvil's dev keys 0..4 (`opml_cli::anvil::DEV_KEYS`; its chain is
// private and thrown away).
use opml_cli::anvil::DEV_KEYS;

/// The demo's actors (index into [`DEV_KEYS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Actor {
    Deployer = 0,
    Submitter = 1,
    Liar = 2,
    Challenger = 3,
    LyingChallenger = 4,
}

impl Actor {
    fn name(self) -> &'static str {
        match self {
            Actor::Deployer => "deployer",
            Actor::Submitter => "honest submitter",
            Actor::Liar => "dishonest submitter",
            Actor::Challenger => "honest challenger",
            Actor::LyingChallenger => "lying challenger",
        }
    }

    fn signer(self) -> PrivateKeySigner {
        DEV_KEYS[self as usize].parse().expect("the dev keys are valid keys")
    }

    const ALL: [Actor; 5] = [Actor::Deployer, Actor::Submitter, Actor::Liar, Actor::Challenger, Actor::LyingChallenger];
}

/// `opml demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Bundle to run: a graph bundle (`.opml`) or an LLM bundle (`.opmlllm`, claims over
    /// greedy generations from fixed prompts) [default: the digits CNN,
    /// fixtures/digits/cnn.opml of this source tree].
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Input samples of a graph bundle (safetensors, `inputs`), samples 0..2 are used
    /// [default: the digits test set for the digits CNN, else deterministic pseudo-random
    /// inputs].
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Where a dishonest claim lies, one false claim per --fault: output, node:K or
    /// step:K:S (K an index or a node's name), token:T (an LLM's generated token T)
    /// [default: node:N/2, a middle node; an LLM: token:T, node:posP.blk.L.ffn_up and
    /// step:posP.blk.L.ffn_up:S, T the middle generated token, P the position that emits
    /// it, L the middle layer, S the middle of that node's VM run].
    #[arg(long, value_name = "SPEC")]
    pub fault: Vec<Fault>,
    /// Tokens each LLM claim generates [default: the bundle's --max-new, at most 8].
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    /// Challenge window of the demo deployment, seconds (every claim lives this long).
    #[arg(long, default_value_t = 20)]
    pub window: u64,
    /// Dissection arity k.
    #[arg(long, default_value_t = 16)]
    pub arity: u64,
    /// Folder for the devnet's log and the watchers' data [default: a temporary folder].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print the watchers' events (to stderr).
    #[arg(long, short)]
    pub verbose: bool,
    /// Print one JSON object (`ok`, `problems`, `model`, `model_id`, `fault`, `faults`,
    /// `config`, `claims`, `games`, `accounts`, `conservation`, `challenge_latency_ms`,
    /// `seconds`; an LLM also `llm`, each claim's `prompt` and `text`, each game's
    /// `node_name`) instead of the tables.
    #[arg(long)]
    pub json: bool,
}

const CLOCK: u64 = 300;
const SUBMITTER_BOND: u128 = 1_000_000_000_000_000_000;
const CHALLENGER_BOND: u128 = 500_000_000_000_000_000;
const BURN_BPS: u16 = 2_500;
/// The VM depth D of the demo deployment (and of its runs).
const VM_DEPTH: u32 = 32;

/// The prompts of an LLM demo's claims: the first honest claim's, the false claims'
/// (all of them: a watcher lying with several faults must be able to apply each to every
/// false claim), the disputed honest claim's. Each is cut to the bundle's --max-prompt.
const PROMPTS: [&str; 3] = ["The capital of France is", "Once upon a time, there was", "One, two, three, four,"];
/// Tokens an LLM claim generates when the bundle allows more and --max-new-tokens is absent.
const DEFAULT_NEW_TOKENS: usize = 8;

fn default_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/digits/cnn.opml")
}

fn default_input() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/digits/test_cnn.safetensors")
}

/// Three inputs for the model: samples 0..2 of a data file, or deterministic
/// pseudo-random values of the model's input type.
fn inputs(b: &Bundle, model: &Path, input: Option<&Path>) -> Result<Vec<Tensor>> {
    let file = match input {
        Some(p) => Some(p.to_path_buf()),
        None if model == default_model() => Some(default_input()),
        None => None,
    };
    if let Some(f) = file {
        let data = load_data(&f, false)?;
        if data.len() < 3 {
            bail!("{}: the demo needs 3 samples, the file has {}", f.display(), data.len());
        }
        return (0..3)
            .map(|i| b.quantize_input(data.sample(i)).with_context(|| format!("{} sample {i}", f.display())))
            .collect();
    }
    let g = b.model.graph();
    if g.inputs.len() != 1 {
        bail!(
            "the demo posts claims with their input bytes on-chain: the model must have one input, it has {}",
            g.inputs.len()
        );
    }
    let spec = &b.model.specs()[0];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..3)
        .map(|_| {
            let bytes: Vec<u8> = (0..spec.byte_len())
                .map(|_| {
                    // splitmix64: a fixed, portable stream.
                    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
                    let mut z = x;
                    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                    (z ^ (z >> 31)) as u8
                })
                .collect();
            Ok(Tensor::from_le_bytes(spec.dtype, spec.shape.clone(), &bytes)?)
        })
        .collect()
}

/// The inputs of one kind of claim (the first honest one, the false ones, the disputed
/// honest one), and an LLM claim's prompt.
struct Request {
    inputs: Vec<Tensor>,
    prompt: Option<String>,
}

/// The three requests: a graph bundle's samples 0..2, or an LLM's [`PROMPTS`] with `new`
/// tokens to generate.
fn requests(m: &ClaimModel, model: &Path, a: &DemoArgs) -> Result<[Request; 3]> {
    let Some(l) = m.llm() else {
        if a.max_new_tokens.is_some() {
            bail!("--max-new-tokens applies to an LLM bundle (.opmlllm); {} is a graph bundle", model.display());
        }
        let b = m.bundle().expect("a graph bundle");
        let xs = inputs(b, model, a.input.as_deref())?;
        let [x0, x1, x2]: [Tensor; 3] = xs.try_into().map_err(|_| anyhow!("the demo takes 3 samples"))?;
        let r = |x| Request { inputs: vec![x], prompt: None };
        return Ok([r(x0), r(x1), r(x2)]);
    };
    if a.input.is_some() {
        bail!("--input applies to a graph bundle; {} is an LLM bundle (its claims use fixed prompts)", model.display());
    }
    let limits = l.graph.limits;
    let new = a.max_new_tokens.unwrap_or(limits.max_new.min(DEFAULT_NEW_TOKENS));
    if new == 0 || new > limits.max_new {
        bail!(
            "--max-new-tokens {new}: {} generates 1..={} tokens (its --max-new at import)",
            model.display(),
            limits.max_new
        );
    }
    let request = |text: &str| -> Result<Request> {
        let mut ids = l.tokenizer.encode(text)?;
        ids.truncate(limits.max_prompt);
        let prompt = l.tokenizer.decode(&ids, false)?;
        Ok(Request { inputs: l.graph.inputs(&ids, new)?, prompt: Some(prompt) })
    };
    Ok([request(PROMPTS[0])?, request(PROMPTS[1])?, request(PROMPTS[2])?])
}

/// The default faults: a graph bundle's middle node; an LLM's middle generated token T of
/// the false claims' `inputs`, the middle layer's `ffn_up` at the position P that emits
/// it, and the middle step of that node's VM run (in `honest`, a run of the same graph).
fn default_faults(m: &ClaimModel, inputs: &[Tensor], honest: &Run) -> Result<Vec<Fault>> {
    let Some(l) = m.llm() else {
        return Ok(vec![Fault::Node(m.model().graph().nodes.len() / 2)]);
    };
    let (prompt, new) = l.graph.effective(inputs)?;
    let t = new / 2;
    let pos = l.graph.position_of_token(prompt.len(), t);
    let name = format!("pos{pos}.blk.{}.ffn_up", l.llama.config().layers / 2);
    let node = l.graph.node_named(&name).ok_or_else(|| anyhow!("the generation graph has no node {name}"))?;
    let end = honest.vm_view(node)?.end_step();
    Ok(vec![
        Fault::Token(t),
        Fault::NamedNode { name: name.clone(), step: None },
        Fault::NamedNode { name, step: Some(end / 2) },
    ])
}

/// What the demo expects of each claim.
#[derive(Clone, Debug)]
struct DemoClaim {
    id: u64,
    by: Actor,
    kind: String,
    expected: &'static str,
    posted_at: f64,
    /// An LLM claim's prompt and the text it claims.
    generation: Option<(String, String)>,
}

/// The text of the tokens an LLM claim over `inputs` says were generated.
fn claimed_text(l: &LlmClaims, inputs: &[Tensor], output: &Tensor) -> Result<String> {
    let (_, new) = l.graph.effective(inputs)?;
    let ids: Vec<u32> = output.as_i32().unwrap_or_default().iter().take(new).map(|&t| t.max(0) as u32).collect();
    Ok(l.tokenizer.decode(&ids, false)?)
}

/// Run the demo.
pub fn run(a: DemoArgs) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    rt.block_on(demo(a))
}

async fn demo(a: DemoArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let tmp;
    let dir = match &a.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir().context("creating a temporary folder")?;
            tmp.path().to_path_buf()
        }
    };
    let model_path = a.model.clone().unwrap_or_else(default_model);
    if let Some(f) = a.fault.iter().find(|f| !f.is_submitter_fault()) {
        bail!("--fault {f}: the demo's dishonest claims take output, node:K, step:K:S or token:T");
    }
    let m = Arc::new(ClaimModel::load(&model_path)?);
    let n = m.model().graph().nodes.len();
    let [first, lies, last] = requests(&m, &model_path, &a)?;
    // The honest run the lying challenger stands by, on the last claim.
    let lying_run = Run::honest(m.model().clone(), m.root(), &last.inputs, VM_DEPTH)?;
    let faults = if a.fault.is_empty() { default_faults(&m, &lies.inputs, &lying_run)? } else { a.fault.clone() };
    let fault_list = faults.iter().map(Fault::to_string).collect::<Vec<_>>().join(", ");
    let say = |s: String| {
        if !a.json {
            println!("{s}");
        }
    };
    let plural = if faults.len() == 1 { "" } else { "s" };
    say(format!(
        "opml demo: model {} ({n} nodes), fault{plural} {fault_list}, window {} s",
        model_path.display(),
        a.window
    ));

    // 1. A private devnet and a deployment.
    let anvil = Anvil::spawn(ANY_PORT, None, &dir.join("anvil.log"))?;
    let url = anvil.url();
    let client = |who: Actor| Client::connect(&url, Some(who.signer()));
    let deployer = client(Actor::Deployer)?;
    let cfg = IOptimisticML::Config {
        arity: a.arity,
        vmDepth: u64::from(VM_DEPTH),
        challengeWindow: a.window,
        clock: CLOCK,
        requestTimeout: 3_600,
        callbackGas: 200_000,
        submitterBond: SUBMITTER_BOND,
        challengerBond: CHALLENGER_BOND,
        burnBps: BURN_BPS,
    };
    let d = deploy_contracts(&deployer, &url, cfg.clone()).await?;
    say(format!(
        "devnet {url}: OptimisticML {} (k = {}, D = {VM_DEPTH}, window {} s, clock {CLOCK} s)",
        d.game, a.arity, a.window
    ));

    // 2. The model and the watchers.
    let (reg, model_id) = m.registration("opml demo");
    deployer.send_call(d.registry, &reg, U256::ZERO, "register").await?;
    say(format!("registered model {model_id}"));
    let (events_tx, mut events) = mpsc::unbounded_channel::<Value>();
    let sink = if a.verbose { Sink::Stderr } else { Sink::Quiet };
    let base = Reporter::new(false, sink).tapped(events_tx.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut watchers = Vec::new();
    for (who, roles, faults) in [
        (Actor::Challenger, Roles { challenger: true, submitter: false }, vec![]),
        (Actor::Submitter, Roles { challenger: false, submitter: true }, vec![]),
        (Actor::Liar, Roles { challenger: false, submitter: true }, faults.clone()),
    ] {
        let mut store = ModelStore::default();
        store.insert_shared(m.clone())?;
        let wcfg = WatchConfig {
            roles,
            faults,
            poll: Duration::from_millis(100),
            max_concurrency: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            data_dir: dir.join("watch").join(who.name().replace(' ', "-")),
        };
        let w = Watcher::new(client(who)?, &d, wcfg, store, base.named(who.name())).await?;
        watchers.push(tokio::spawn(w.run(stop_rx.clone())));
    }

    // 3. The claims: honest, one false claim per fault, honest (the lying challenger's).
    let mut claims = Vec::new();
    let mut plan = vec![(Actor::Submitter, None, &first, "finalized")];
    plan.extend(faults.iter().map(|f| (Actor::Liar, Some(f), &lies, "voided")));
    plan.push((Actor::Submitter, None, &last, "finalized"));
    for (who, f, req, expected) in plan {
        let x = &req.inputs;
        let output = match f {
            None => m.output(x)?,
            Some(f) => {
                let f = m.resolve(f, x)?;
                Run::dishonest(m.model().clone(), m.root(), x, &f, VM_DEPTH)?.graph().output().clone()
            }
        };
        let post = post_call(model_id, x, &output, 0);
        // Taken before sending: the watcher may challenge before this process has polled
        // the claim's receipt, so the latency below is an upper bound.
        let posted_at = unix_now();
        let r = client(who)?.send_call(d.game, &post, U256::from(SUBMITTER_BOND), "postClaim").await?;
        let e = event::<IOptimisticML::ClaimPosted>(&r, "postClaim")?;
        let id = e.claimId.to::<u64>();
        let kind = match f {
            None => "honest".to_string(),
            Some(f) => format!("false ({f})"),
        };
        let generation = match (m.llm(), &req.prompt) {
            (Some(l), Some(p)) => Some((p.clone(), claimed_text(l, x, &output)?)),
            _ => None,
        };
        match &generation {
            Some((p, t)) => say(format!("claim {id}: {kind}, posted by the {}: {p:?} -> {t:?}", who.name())),
            None => say(format!("claim {id}: {kind}, posted by the {}", who.name())),
        }
        claims.push(DemoClaim { id, by: who, kind, expected, posted_at, generation });
    }

    // 4. The lying challenger disputes the last (true) claim and plays it.
    let liar_ch = client(Actor::LyingChallenger)?;
    let true_claim = claims.last().expect("claims").id;
    let r = liar_ch
        .send_call(
            d.game,
            &IOptimisticML::challengeCall { claimId: U256::from(true_claim) },
            U256::from(CHALLENGER_BOND),
            "challenge",
        )
        .await?;
    let e = event::<IOptimisticML::Challenged>(&r, "challenge")?;
    let lying_game = e.gameId;
    say(format!("game {lying_game}: the lying challenger disputes true claim {true_claim}"));
    let _ = events_tx
        .send(json!({ "ts": unix_now(), "event": "challenge", "game": lying_game.to::<u64>(), "claim": true_claim }));
    let lying_report = base.named(Actor::LyingChallenger.name());
    let lying_run = Arc::new(lying_run);
    let (lb, dg, db) = (m.images().clone(), d.game, d.block);
    let lying = tokio::spawn(async move {
        let o = PlayOptions { role: Role::Challenger, poll: Duration::from_millis(100) };
        play::play(&liar_ch, dg, db, lying_game, lb, lying_run, &o, &Workers::new(1), &lying_report).await
    });

    // 5. Wait for every outcome (or the time limit).
    let reader = Client::connect(&url, None)?;
    let limit = Duration::from_secs(a.window + 2 * CLOCK);
    let mut log: Vec<Value> = Vec::new();
    let settled = loop {
        while let Ok(v) = events.try_recv() {
            log.push(v);
        }
        if started.elapsed() > limit {
            break false;
        }
        if all_settled(&reader, &d, &claims).await? {
            break true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = stop_tx.send(true);
    for w in watchers {
        match w.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: a watcher stopped with an error: {e:#}"),
            Err(e) => eprintln!("warning: a watcher task failed: {e}"),
        }
    }
    let lying_out = lying.await.map_err(|e| anyhow!("the lying challenger's task failed: {e}"))?;
    // Every actor has stopped: what they reported is in the channel.
    while let Ok(v) = events.try_recv() {
        log.push(v);
    }

    // 6. The summary, from the chain.
    let summary = summarize(&reader, &d, &cfg, &m, &claims, &log).await?;
    let mut problems: Vec<String> = Vec::new();
    if !settled {
        problems.push(format!("not every claim settled within {} s", limit.as_secs()));
    }
    if let Err(e) = &lying_out {
        problems.push(format!("the lying challenger's play failed: {e:#}"));
    }
    problems.extend(summary.problems.iter().cloned());
    let ok = problems.is_empty();
    let seconds = started.elapsed().as_secs_f64();
    if a.json {
        let mut v = json!({
            "ok": ok,
            "problems": problems,
            "model": model_path.display().to_string(),
            "model_id": model_id.to_string(),
            "fault": fault_list,
            "faults": faults.iter().map(Fault::to_string).collect::<Vec<_>>(),
            "config": { "arity": cfg.arity, "vm_depth": cfg.vmDepth, "window": cfg.challengeWindow, "clock": cfg.clock,
                        "submitter_bond": cfg.submitterBond.to_string(), "challenger_bond": cfg.challengerBond.to_string(),
                        "burn_bps": cfg.burnBps },
            "claims": summary.claims,
            "games": summary.games,
            "accounts": summary.accounts,
            "conservation": summary.conservation,
            "challenge_latency_ms": summary.latency_ms,
            "seconds": seconds,
        });
        if let Some(l) = m.llm() {
            let (prompt, new) = l.graph.effective(&lies.inputs)?;
            v["llm"] = json!({
                "max_prompt": l.graph.limits.max_prompt,
                "max_new": l.graph.limits.max_new,
                "new_tokens": new,
                "layers": l.llama.config().layers,
                "false_prompt_tokens": prompt.len(),
            });
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", summary.text);
        println!("total wall time {seconds:.1} s");
        if ok {
            println!("demo passed: every outcome is the expected one");
        } else {
            println!("demo FAILED:");
            for p in &problems {
                println!("  - {p}");
            }
        }
    }
    drop(anvil);
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Whether every claim is finalized or voided and every credit withdrawn.
async fn all_settled(c: &Client, d: &Deployment, claims: &[DemoClaim]) -> Result<bool> {
    for cl in claims {
        let v = c.view(d.game, &IOptimisticML::claimOfCall { claimId: U256::from(cl.id) }).await?;
        if !(v.finalized || v.voided) {
            return Ok(false);
        }
    }
    let games = c.view(d.game, &IOptimisticML::gameCountCall {}).await?;
    for id in 1..=games.to::<u64>() {
        let g = c.view(d.game, &IOptimisticML::gameOfCall { gameId: U256::from(id) }).await?;
        if g.phase != IOptimisticML::Phase::Ended {
            return Ok(false);
        }
    }
    for who in [Actor::Submitter, Actor::Challenger] {
        let credit = c.view(d.game, &IOptimisticML::creditsCall { account: who.signer().address() }).await?;
        if !credit.is_zero() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The summary tables, the JSON and the problems found.
struct Summary {
    claims: Vec<Value>,
    games: Vec<Value>,
    accounts: Vec<Value>,
    conservation: Value,
    latency_ms: Option<f64>,
    text: String,
    problems: Vec<String>,
}

fn eth(wei: U256) -> String {
    let w: u128 = wei.to();
    format!("{}.{:04}", w / 1_000_000_000_000_000_000, (w % 1_000_000_000_000_000_000) / 100_000_000_000_000)
}

async fn summarize(
    c: &Client,
    d: &Deployment,
    cfg: &IOptimisticML::Config,
    m: &ClaimModel,
    claims: &[DemoClaim],
    log: &[Value],
) -> Result<Summary> {
    let mut problems = Vec::new();
    let mut text = String::new();
    let actor_of = |a: Address| Actor::ALL.into_iter().find(|x| x.signer().address() == a);
    let name_of = |a: Address| actor_of(a).map(|x| x.name().to_string()).unwrap_or_else(|| a.to_string());

    // Claims.
    let kw = claims.iter().map(|c| c.kind.len()).max().unwrap_or(0).max(18);
    text += &format!("\nclaims\n  claim  submitter            {:<kw$} status      expected\n", "kind");
    let mut claim_json = Vec::new();
    for cl in claims {
        let v = c.view(d.game, &IOptimisticML::claimOfCall { claimId: U256::from(cl.id) }).await?;
        let status = if v.finalized {
            "finalized"
        } else if v.voided {
            "voided"
        } else {
            "active"
        };
        if status != cl.expected {
            problems.push(format!("claim {} ({}) is {status}, expected {}", cl.id, cl.kind, cl.expected));
        }
        text += &format!("  {:<6} {:<20} {:<kw$} {:<11} {}\n", cl.id, cl.by.name(), cl.kind, status, cl.expected);
        let mut j = json!({ "claim": cl.id, "submitter": cl.by.name(), "kind": cl.kind, "status": status, "expected": cl.expected });
        if let Some((prompt, claimed)) = &cl.generation {
            text += &format!("         prompt {prompt:?} -> claimed {claimed:?}\n");
            j["prompt"] = json!(prompt);
            j["text"] = json!(claimed);
        }
        claim_json.push(j);
    }

    // Games: events with this game id, their transactions' gas, wall time from the watchers' events.
    let count = c.view(d.game, &IOptimisticML::gameCountCall {}).await?.to::<u64>();
    let sigs = vec![
        IOptimisticML::Challenged::SIGNATURE_HASH,
        IOptimisticML::Opened::SIGNATURE_HASH,
        IOptimisticML::StatesPosted::SIGNATURE_HASH,
        IOptimisticML::Picked::SIGNATURE_HASH,
        IOptimisticML::HandedOver::SIGNATURE_HASH,
        IOptimisticML::StepResolved::SIGNATURE_HASH,
        IOptimisticML::GameEnded::SIGNATURE_HASH,
    ];
    text += "\ngames\n  game  claim  challenger          winner      reason  rounds graph+vm  node  leaf step  gas        seconds  bonds\n";
    let mut game_json = Vec::new();
    let burn = |x: u128| x * u128::from(cfg.burnBps) / 10_000;
    for id in 1..=count {
        let g = c.view(d.game, &IOptimisticML::gameOfCall { gameId: U256::from(id) }).await?;
        let logs = c.logs(d.game, sigs.clone(), Some(U256::from(id)), d.block).await?;
        let (mut graph_rounds, mut vm_rounds, mut leaf, mut txs, mut phases) =
            (0u32, 0u32, None, Vec::new(), Vec::new());
        for l in &logs {
            let e = IOptimisticML::IOptimisticMLEvents::decode_raw_log(l.topics(), &l.data().data)
                .map_err(|e| anyhow!("undecodable log of game {id}: {e}"))?;
            use IOptimisticML::IOptimisticMLEvents as E;
            match &e {
                E::Picked(p) if p.phase == IOptimisticML::Phase::Graph => graph_rounds += 1,
                E::Picked(p) if p.phase == IOptimisticML::Phase::Steps => vm_rounds += 1,
                E::StepResolved(s) => leaf = Some(s.step),
                _ => {}
            }
            let level = |p: IOptimisticML::Phase| if p == IOptimisticML::Phase::Graph { "graph" } else { "steps" };
            let name = match &e {
                E::Challenged(_) => "challenge",
                E::Opened(_) => "open",
                E::StatesPosted(x) => level(x.phase),
                E::Picked(x) => level(x.phase),
                E::HandedOver(_) => "handover",
                E::StepResolved(_) => "leaf",
                E::GameEnded(_) => "end",
                _ => "other",
            };
            if phases.last() != Some(&name) {
                phases.push(name);
            }
            if let Some(h) = l.transaction_hash {
                if !txs.contains(&h) {
                    txs.push(h);
                }
            }
        }
        let mut gas = 0u64;
        for h in &txs {
            gas += c.receipt(*h).await?.gas_used;
        }
        let (start, end) = game_times(log, id);
        let secs = match (start, end) {
            (Some(s), Some(e)) => Some(e - s),
            _ => None,
        };
        let winner = side_name(g.winner);
        let ended = g.phase == IOptimisticML::Phase::Ended;
        let challenger = name_of(g.challenger);
        let expected_winner =
            if actor_of(g.challenger) == Some(Actor::LyingChallenger) { "submitter" } else { "challenger" };
        if !ended {
            problems.push(format!("game {id} did not end (phase {})", phase_name(g.phase)));
        } else if winner != expected_winner || reason_name(g.endReason) != "step" {
            problems.push(format!(
                "game {id}: the {winner} won by {}, expected the {expected_winner} by step",
                reason_name(g.endReason)
            ));
        }
        let bonds = if winner == "submitter" {
            format!(
                "{} -> submitter {} ETH, burnt {}",
                challenger,
                eth(U256::from(cfg.challengerBond - burn(cfg.challengerBond))),
                eth(U256::from(burn(cfg.challengerBond)))
            )
        } else {
            format!(
                "submitter -> challenger {} ETH (+ own bond back), burnt {}",
                eth(U256::from(cfg.submitterBond - burn(cfg.submitterBond))),
                eth(U256::from(burn(cfg.submitterBond)))
            )
        };
        text += &format!(
            "  {:<5} {:<6} {:<19} {:<11} {:<7} {:>5}+{:<9} {:<5} {:<10} {:<10} {:<8} {bonds}\n",
            id,
            g.claimId,
            challenger,
            if ended { winner } else { "-" },
            if ended { reason_name(g.endReason) } else { "-" },
            graph_rounds,
            vm_rounds,
            g.node,
            leaf.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            gas,
            secs.map(|s| format!("{s:.1}")).unwrap_or_else(|| "-".into()),
        );
        text += &format!("        phases: {}\n", phases.join(" -> "));
        let node_name = m.llm().and(m.model().graph().nodes.get(g.node as usize)).map(|x| x.name.clone());
        if m.llm().is_some() {
            text += &format!("        isolated {}\n", m.node_label(g.node as usize));
        }
        let mut j = json!({
            "game": id,
            "claim": g.claimId.to::<u64>(),
            "challenger": challenger,
            "winner": if ended { Some(winner) } else { None },
            "reason": if ended { Some(reason_name(g.endReason)) } else { None },
            "rounds": graph_rounds + vm_rounds,
            "graph_rounds": graph_rounds,
            "vm_rounds": vm_rounds,
            "node": g.node,
            "leaf_step": leaf,
            "transactions": txs.len(),
            "gas": gas,
            "seconds": secs,
            "phases": phases,
        });
        if let Some(name) = node_name {
            j["node_name"] = json!(name);
        }
        game_json.push(j);
    }

    // Accounts: bonds posted (claims, challenges) and what each withdrew.
    let mut deposited: BTreeMap<Actor, u128> = BTreeMap::new();
    for cl in claims {
        *deposited.entry(cl.by).or_default() += cfg.submitterBond;
    }
    for id in 1..=count {
        let g = c.view(d.game, &IOptimisticML::gameOfCall { gameId: U256::from(id) }).await?;
        if let Some(a) = actor_of(g.challenger) {
            *deposited.entry(a).or_default() += cfg.challengerBond;
        }
    }
    let wlogs = c.logs(d.game, vec![IOptimisticML::Withdrawn::SIGNATURE_HASH], None, d.block).await?;
    let mut withdrawn: BTreeMap<Actor, u128> = BTreeMap::new();
    for l in &wlogs {
        let e =
            IOptimisticML::Withdrawn::decode_log_data(l.data()).map_err(|e| anyhow!("undecodable Withdrawn: {e}"))?;
        if let Some(a) = actor_of(e.account) {
            *withdrawn.entry(a).or_default() += e.amount.to::<u128>();
        }
    }
    text += "\nbonds (ETH)\n  account              posted    withdrawn  net\n";
    let mut accounts = Vec::new();
    for a in [Actor::Submitter, Actor::Liar, Actor::Challenger, Actor::LyingChallenger] {
        let (p, w) = (deposited.get(&a).copied().unwrap_or(0), withdrawn.get(&a).copied().unwrap_or(0));
        let net = w as i128 - p as i128;
        text += &format!(
            "  {:<20} {:<9} {:<10} {}{}\n",
            a.name(),
            eth(U256::from(p)),
            eth(U256::from(w)),
            if net < 0 { "-" } else { "+" },
            eth(U256::from(net.unsigned_abs()))
        );
        accounts.push(json!({ "account": a.name(), "address": a.signer().address().to_string(), "posted": p.to_string(), "withdrawn": w.to_string() }));
    }

    // Conservation: balance == totalIn - totalOut, and nothing left once all is settled.
    let balance = c.balance(d.game).await?;
    let total_in = c.view(d.game, &IOptimisticML::totalInCall {}).await?;
    let total_out = c.view(d.game, &IOptimisticML::totalOutCall {}).await?;
    let posted: u128 = deposited.values().sum();
    if balance != total_in - total_out {
        problems.push(format!("conservation: balance {balance} != totalIn {total_in} - totalOut {total_out}"));
    }
    if total_in != U256::from(posted) {
        problems.push(format!("totalIn {total_in} != the bonds posted {posted}"));
    }
    text += &format!(
        "\nconservation: balance {} ETH = totalIn {} - totalOut {} (burnt and paid out)\n",
        eth(balance),
        eth(total_in),
        eth(total_out)
    );
    let latency_ms = challenge_latency(log, claims);
    if let Some(ms) = latency_ms {
        text += &format!(
            "challenge latency: at most {ms:.0} ms from sending the false claim to the watcher's challenge receipt\n"
        );
    }
    Ok(Summary {
        claims: claim_json,
        games: game_json,
        accounts,
        conservation: json!({ "balance": balance.to_string(), "total_in": total_in.to_string(), "total_out": total_out.to_string() }),
        latency_ms,
        text,
        problems,
    })
}

/// When game `id` started (its challenge, or the first event naming it) and ended, by the
/// events of the in-process actors.
fn game_times(log: &[Value], id: u64) -> (Option<f64>, Option<f64>) {
    let of = |v: &Value| v.get("game").and_then(Value::as_u64) == Some(id);
    let ts = |v: &Value| v.get("ts").and_then(Value::as_f64);
    let start = log.iter().filter(|v| of(v)).filter_map(ts).reduce(f64::min);
    let end = log
        .iter()
        .filter(|v| of(v) && v.get("event").and_then(Value::as_str) == Some("game_end"))
        .filter_map(ts)
        .reduce(f64::min);
    (start, end)
}

/// Milliseconds from sending the false claim to the honest challenger's challenge receipt
/// (an upper bound of the latency from `ClaimPosted` to the challenge).
fn challenge_latency(log: &[Value], claims: &[DemoClaim]) -> Option<f64> {
    let false_claim = claims.iter().find(|c| c.by == Actor::Liar)?;
    let t = log
        .iter()
        .filter(|v| v.get("event").and_then(Value::as_str) == Some("challenge"))
        .filter(|v| v.get("claim").and_then(Value::as_u64) == Some(false_claim.id))
        .filter_map(|v| v.get("ts").and_then(Value::as_f64))
        .reduce(f64::min)?;
    Some((t - false_claim.posted_at) * 1000.0)
}
