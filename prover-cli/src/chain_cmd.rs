//! `opml chain ...`: the dispute game on a real chain through alloy (HTTP JSON-RPC, a
//! local signer): deploy the contracts, register a model, post and challenge claims,
//! play a whole game as the submitter or the challenger, finalize, withdraw, inspect.
//! Every move comes from the off-chain game client (`opml_cli::game`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy_sol_types::{SolEvent, SolEventInterface};
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use opml_cli::game::abi::{IModelRegistry, IOptimisticML};
use opml_cli::game::Fault;
use serde_json::json;

use std::sync::Arc;

use opml_cli::game::abi::{reason_name, side_name};
use opml_cli::game::Run;
use opml_dnn::bundle::hex32;
use opml_dnn::Tensor;

use crate::chain::client::Client;
use crate::chain::deploy::{deploy_contracts, ConfigArgs, CHAIN_DEFAULTS};
use crate::chain::deployment::{self, Deployment};
use crate::chain::play::{self, PlayOptions, Role};
use crate::chain::report::{Reporter, Sink};
use crate::chain::signer::KeyArgs;
use crate::chain::workers::Workers;
use crate::chain::{connect, event, Conn};
use crate::claim_model::{ClaimModel, LlmClaims};
use crate::output::output;
use crate::sample::{post_call, run_of, sample_input, RunArgs};

/// Chain subcommands.
#[derive(Debug, Subcommand)]
pub enum ChainCommand {
    /// Deploy Step, ModelRegistry and OptimisticML (forge artifacts) and write the deployment file.
    Deploy(DeployArgs),
    /// Register a bundle's model in the registry (no-op if it is registered).
    Register(RegisterArgs),
    /// Post a claim with the submitter bond (registers the model if needed): one input sample
    /// of a graph bundle, or the greedy generation of a prompt by an LLM bundle.
    Claim(ClaimArgs),
    /// Challenge a claim with the challenger bond: opens a game.
    Challenge(IdArgs),
    /// Finalize a claim after its window (no open game): its output becomes readable.
    Finalize(IdArgs),
    /// Withdraw this account's credits (won bonds, finalized bonds, fees).
    Withdraw(Conn),
    /// A game's state (gameOf) and its events.
    Show(IdArgs),
    /// Play one side of a game until it ends, computing every move from your own run.
    Play(PlayArgs),
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// JSON-RPC URL.
    #[arg(long, default_value = "http://127.0.0.1:8545")]
    pub rpc: String,
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Where to write the deployment file.
    #[arg(long, default_value = deployment::LOCAL_DEPLOYMENT)]
    pub out: PathBuf,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// Bundle path (a graph bundle, or an LLM bundle: its generation graph).
    pub bundle: PathBuf,
    /// Metadata URI stored with the model.
    #[arg(long, default_value = "")]
    pub uri: String,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Debug, Args)]
pub struct ClaimArgs {
    /// Bundle path: a graph bundle (`.opml`, with --input) or an LLM bundle (`.opmlllm`,
    /// with --prompt).
    pub bundle: PathBuf,
    /// Input file of a graph bundle (safetensors with `inputs`, float32 N x input shape).
    #[arg(long, conflicts_with = "prompt")]
    pub input: Option<PathBuf>,
    /// Which sample of the input file.
    #[arg(long, default_value_t = 0, requires = "input")]
    pub index: usize,
    /// The prompt of an LLM bundle: the claim binds its tokens and every generated token.
    #[arg(long)]
    pub prompt: Option<String>,
    /// Wrap the prompt in the model's chat template (one user turn).
    #[arg(long, requires = "prompt")]
    pub chat: bool,
    /// Tokens to generate [default: the bundle's limit].
    #[arg(long, requires = "prompt")]
    pub max_new_tokens: Option<usize>,
    /// Request id the claim answers (0: none).
    #[arg(long, default_value_t = 0)]
    pub request: u64,
    /// Metadata URI if the model has to be registered.
    #[arg(long, default_value = "")]
    pub uri: String,
    /// FAULT INJECTION, for tests and demos only: post a deliberately false claim (its bond
    /// is at risk). SPEC: `output` (a wrong final output), `node:K` (node K's output is
    /// wrong, later nodes run on it), `step:K:S` (node K's VM run is tampered at step S),
    /// K an index or a node's name (`pos40.blk.15.ffn_up`); an LLM claim also takes
    /// `token:T` (generated token T is wrong, later tokens follow from it).
    #[arg(long, value_name = "SPEC")]
    pub dishonest: Option<Fault>,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// Claim id (challenge, finalize) or game id (show).
    pub id: u64,
    #[command(flatten)]
    pub conn: Conn,
}

#[derive(Debug, Args)]
pub struct PlayArgs {
    /// Game id.
    pub game: u64,
    /// Which side this key plays.
    #[arg(long, value_enum)]
    pub role: Role,
    /// Bundle path (the claim's model).
    pub bundle: PathBuf,
    /// Input file (safetensors with `inputs`) [default: the input bytes the claim posted on-chain].
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Which sample of the input file.
    #[arg(long, default_value_t = 0, requires = "input")]
    pub index: usize,
    /// Milliseconds between polls of the game.
    #[arg(long, default_value_t = 1_000)]
    pub poll_ms: u64,
    /// FAULT INJECTION (tests and demos): play deliberately wrong. Submitter: `output`,
    /// `node:K` or `step:K:S` (the run the false claim was posted from); challenger:
    /// `challenge-all` (dispute a claim one agrees with, without the warning).
    #[arg(long, value_name = "SPEC")]
    pub dishonest: Option<Fault>,
    #[command(flatten)]
    pub conn: Conn,
}

pub fn run(cmd: ChainCommand) -> Result<ExitCode> {
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
    rt.block_on(async move {
        match cmd {
            ChainCommand::Deploy(a) => deploy(a).await,
            ChainCommand::Register(a) => register(a).await,
            ChainCommand::Claim(a) => claim(a).await,
            ChainCommand::Challenge(a) => challenge(a).await,
            ChainCommand::Finalize(a) => finalize(a).await,
            ChainCommand::Withdraw(a) => withdraw(a).await,
            ChainCommand::Show(a) => show(a).await,
            ChainCommand::Play(a) => play_cmd(a).await,
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn deploy(a: DeployArgs) -> Result<()> {
    let c = Client::connect(&a.rpc, Some(a.keys.signer()?))?;
    let d = deploy_contracts(&c, &a.rpc, a.config.config(&CHAIN_DEFAULTS)).await?;
    d.save(&a.out)?;
    let v = serde_json::to_value(&d)?;
    output(
        a.json,
        v,
        format!(
            "deployed on chain {} at block {}: OptimisticML {}, ModelRegistry {}, Step {}\n\
             wrote {}",
            d.chain_id,
            d.block,
            d.game,
            d.registry,
            d.step,
            a.out.display()
        ),
    );
    Ok(())
}

/// Register `call` unless its model is registered; the tx hash when one was sent.
async fn ensure_registered(
    c: &Client,
    d: &Deployment,
    call: &IModelRegistry::registerCall,
    id: alloy::primitives::B256,
) -> Result<Option<String>> {
    match c.try_view(d.registry, &IModelRegistry::getCall { id }).await? {
        Ok(_) => Ok(None),
        Err(why) if why.is_unknown_model() => {
            let r = c.send_call(d.registry, call, U256::ZERO, "register").await?;
            let e: IModelRegistry::ModelRegistered = event(&r, "register")?;
            if e.modelId != id {
                bail!("register: tx {} registered model {}, expected {id}", r.transaction_hash, e.modelId);
            }
            Ok(Some(r.transaction_hash.to_string()))
        }
        Err(why) => bail!("get({id}) on the registry {}: reverted {why}", d.registry),
    }
}

async fn register(a: RegisterArgs) -> Result<()> {
    let (c, d) = connect(&a.conn, true).await?;
    let m = ClaimModel::load(&a.bundle)?;
    let (call, id) = m.registration(&a.uri);
    let tx = ensure_registered(&c, &d, &call, id).await?;
    let mut human = match &tx {
        Some(tx) => format!("registered model {id} (tx {tx})"),
        None => format!("model {id} is already registered"),
    };
    let mut v = json!({ "model_id": id.to_string(), "tx": tx, "nodes": call.nodeCount });
    if let Some(l) = m.llm() {
        let lim = l.graph.limits;
        human += &format!(
            "\n  the generations of LLM bundle {} (commitment {}): {} nodes, prompts of up to {} tokens, up to {} \
             generated",
            a.bundle.display(),
            hex32(&l.bundle_commitment),
            call.nodeCount,
            lim.max_prompt,
            lim.max_new
        );
        v["llm"] = json!({
            "bundle_commitment": hex32(&l.bundle_commitment),
            "max_prompt": lim.max_prompt,
            "max_new": lim.max_new,
        });
    }
    output(a.conn.json, v, human);
    Ok(())
}

async fn claim(a: ClaimArgs) -> Result<()> {
    if let Some(f) = a.dishonest.as_ref().filter(|f| !f.is_submitter_fault()) {
        bail!(
            "--dishonest {f} is a challenger's fault (for a challenger that disputes true claims); \
             a claim takes --dishonest output, node:K, step:K:S or token:T"
        );
    }
    // The request and the fault are checked before the chain is reached.
    let m = ClaimModel::load(&a.bundle)?;
    let inputs = claim_request(&m, &a)?;
    let fault = a.dishonest.as_ref().map(|f| m.resolve(f, &inputs)).transpose()?;
    let (c, d) = connect(&a.conn, true).await?;
    let cfg = c.view(d.game, &IOptimisticML::configCall {}).await?;
    let depth =
        u32::try_from(cfg.vmDepth).with_context(|| format!("the game's vmDepth {} is too large", cfg.vmDepth))?;
    let out = match &fault {
        None => m.output(&inputs)?,
        Some(f) => Run::dishonest(m.model().clone(), m.root(), &inputs, f, depth)?.graph().output().clone(),
    };
    let (register, model_id) = m.registration(&a.uri);
    let post = post_call(model_id, &inputs, &out, a.request);
    let reg_tx = ensure_registered(&c, &d, &register, model_id).await?;
    let r = c.send_call(d.game, &post, U256::from(cfg.submitterBond), "postClaim").await?;
    let e: IOptimisticML::ClaimPosted = event(&r, "postClaim")?;
    if let Some(f) = &a.dishonest {
        eprintln!("FAULT INJECTION (--dishonest {f}): claim {} is deliberately false; its bond is at risk", e.claimId);
    }
    let generation = m.llm().map(|l| generation_json(l, &inputs, &out)).transpose()?;
    let v = json!({
        "claim": e.claimId.to::<u64>(),
        "model_id": model_id.to_string(),
        "output_commitment": e.outputCommitment.to_string(),
        "deadline": e.deadline,
        "bond": cfg.submitterBond.to_string(),
        "tx": r.transaction_hash.to_string(),
        "register_tx": reg_tx,
        "dishonest": a.dishonest.as_ref().map(Fault::to_string),
        "generation": generation,
    });
    let mut human = format!(
        "claim {} posted (tx {}): model {}, output commitment {}, challenge window until {}",
        e.claimId, r.transaction_hash, model_id, e.outputCommitment, e.deadline
    );
    if let Some(g) = &generation {
        human += &format!(
            "\n  prompt {} tokens, {} generated: {:?}",
            g["prompt_tokens"],
            g["new_tokens"],
            g["text"].as_str().unwrap_or_default()
        );
    }
    output(a.conn.json, v, human);
    Ok(())
}

async fn challenge(a: IdArgs) -> Result<()> {
    let (c, d) = connect(&a.conn, true).await?;
    let cfg = c.view(d.game, &IOptimisticML::configCall {}).await?;
    let call = IOptimisticML::challengeCall { claimId: U256::from(a.id) };
    let r = c.send_call(d.game, &call, U256::from(cfg.challengerBond), "challenge").await?;
    let e: IOptimisticML::Challenged = event(&r, "challenge")?;
    let v = json!({
        "game": e.gameId.to::<u64>(),
        "claim": a.id,
        "bond": cfg.challengerBond.to_string(),
        "tx": r.transaction_hash.to_string(),
    });
    output(a.conn.json, v, format!("game {} opened against claim {} (tx {})", e.gameId, a.id, r.transaction_hash));
    Ok(())
}

async fn finalize(a: IdArgs) -> Result<()> {
    let (c, d) = connect(&a.conn, true).await?;
    let r =
        c.send_call(d.game, &IOptimisticML::finalizeCall { claimId: U256::from(a.id) }, U256::ZERO, "finalize").await?;
    let e: IOptimisticML::ClaimFinalized = event(&r, "finalize")?;
    let v = json!({ "claim": a.id, "output_commitment": e.outputCommitment.to_string(), "tx": r.transaction_hash.to_string() });
    output(
        a.conn.json,
        v,
        format!("claim {} finalized (tx {}): output commitment {}", a.id, r.transaction_hash, e.outputCommitment),
    );
    Ok(())
}

async fn withdraw(a: Conn) -> Result<()> {
    let (c, d) = connect(&a, true).await?;
    let me = c.from()?;
    let credit = c.view(d.game, &IOptimisticML::creditsCall { account: me }).await?;
    if credit.is_zero() {
        bail!("nothing to withdraw: credits({me}) is 0");
    }
    let r = c.send_call(d.game, &IOptimisticML::withdrawCall {}, U256::ZERO, "withdraw").await?;
    let e: IOptimisticML::Withdrawn = event(&r, "withdraw")?;
    let v = json!({ "account": me.to_string(), "amount": e.amount.to_string(), "tx": r.transaction_hash.to_string() });
    output(a.json, v, format!("withdrew {} wei to {me} (tx {})", e.amount, r.transaction_hash));
    Ok(())
}

/// Name and fields of a game event.
fn describe(e: &IOptimisticML::IOptimisticMLEvents) -> (&'static str, String) {
    use IOptimisticML::IOptimisticMLEvents as E;
    match e {
        E::Challenged(x) => ("Challenged", format!("claim {} challenger {} s0 {}", x.claimId, x.challenger, x.s0)),
        E::Opened(x) => ("Opened", format!("final graph state {}", x.finalGraphState)),
        E::StatesPosted(x) => ("StatesPosted", format!("[{}, {}] {} states", x.lo, x.hi, x.states.len())),
        E::Picked(x) => ("Picked", format!("piece {} -> [{}, {}]", x.index, x.lo, x.hi)),
        E::HandedOver(x) => {
            ("HandedOver", format!("node {} pre-state {} final state {}", x.node, x.preStateHash, x.finalStateHash))
        }
        E::StepResolved(x) => ("StepResolved", format!("step {} post-state {}", x.step, x.postStateHash)),
        E::GameEnded(x) => ("GameEnded", format!("{} won ({})", side_name(x.winner), reason_name(x.reason))),
        _ => ("other", format!("{e:?}")),
    }
}

async fn show(a: IdArgs) -> Result<()> {
    let (c, d) = connect(&a.conn, false).await?;
    let id = U256::from(a.id);
    let g = match c.try_view(d.game, &IOptimisticML::gameOfCall { gameId: id }).await? {
        Ok(g) => g,
        Err(why) => bail!("game {id}: gameOf reverted {why}"),
    };
    let sigs = vec![
        IOptimisticML::Challenged::SIGNATURE_HASH,
        IOptimisticML::Opened::SIGNATURE_HASH,
        IOptimisticML::StatesPosted::SIGNATURE_HASH,
        IOptimisticML::Picked::SIGNATURE_HASH,
        IOptimisticML::HandedOver::SIGNATURE_HASH,
        IOptimisticML::StepResolved::SIGNATURE_HASH,
        IOptimisticML::GameEnded::SIGNATURE_HASH,
    ];
    let logs = c.logs(d.game, sigs, Some(id), d.block).await?;
    let mut events = Vec::new();
    let mut lines = Vec::new();
    for l in &logs {
        let e = IOptimisticML::IOptimisticMLEvents::decode_raw_log(l.topics(), &l.data().data)
            .map_err(|e| anyhow!("undecodable log in tx {:?}: {e}", l.transaction_hash))?;
        let (name, text) = describe(&e);
        let (block, tx) = (l.block_number.unwrap_or_default(), l.transaction_hash.unwrap_or_default());
        lines.push(format!("  block {block} {name}: {text} (tx {tx})"));
        events.push(json!({ "block": block, "tx": tx.to_string(), "event": name, "fields": format!("{e:?}") }));
    }
    let phase = format!("{:?}", g.phase);
    let v = json!({
        "game": a.id,
        "claim": g.claimId.to::<u64>(),
        "submitter": g.submitter.to_string(),
        "challenger": g.challenger.to_string(),
        "phase": phase,
        "turn": side_name(g.turn),
        "pending": g.pending,
        "lo": g.lo,
        "hi": g.hi,
        "hash_lo": g.hashLo.to_string(),
        "hash_hi": g.hashHi.to_string(),
        "node": g.node,
        "submitter_clock": g.submitterClock,
        "challenger_clock": g.challengerClock,
        "last_move": g.lastMove,
        "winner": (g.phase == IOptimisticML::Phase::Ended).then(|| side_name(g.winner)),
        "end_reason": (g.phase == IOptimisticML::Phase::Ended).then(|| reason_name(g.endReason)),
        "events": events,
    });
    let status = if g.phase == IOptimisticML::Phase::Ended {
        format!("ended: {} won ({})", side_name(g.winner), reason_name(g.endReason))
    } else {
        format!("phase {phase}, [{}, {}], {} to move", g.lo, g.hi, side_name(g.turn))
    };
    let human = format!(
        "game {} on claim {}: {status}\n  submitter {} ({} s left), challenger {} ({} s left)\n{}",
        a.id,
        g.claimId,
        g.submitter,
        g.submitterClock,
        g.challenger,
        g.challengerClock,
        lines.join("\n")
    );
    output(a.conn.json, v, human);
    Ok(())
}

/// The run of game `game`'s claim from the input bytes its `ClaimPosted` event holds.
async fn run_from_chain(
    c: &Client,
    d: &Deployment,
    game: u64,
    bundle: &Path,
    fault: Option<&Fault>,
    depth: u32,
) -> Result<(Arc<ClaimModel>, Run)> {
    let g = c.view(d.game, &IOptimisticML::gameOfCall { gameId: U256::from(game) }).await?;
    let logs = c.logs(d.game, vec![IOptimisticML::ClaimPosted::SIGNATURE_HASH], Some(g.claimId), d.block).await?;
    let claim = match logs.first().map(crate::watch::claims::decode).transpose()?.flatten() {
        Some(crate::watch::claims::Followed::Claim(cl)) => cl,
        _ => bail!("claim {} of game {game}: no ClaimPosted event found from block {}", g.claimId, d.block),
    };
    let mut store = crate::watch::models::ModelStore::default();
    let id = store.add(bundle)?;
    if id != claim.model_id {
        bail!(
            "{} is model {id}; claim {} is for model {}: pass the claim's bundle",
            bundle.display(),
            claim.id,
            claim.model_id
        );
    }
    let model = store.get(&id).expect("just added");
    let x = crate::watch::claims::claim_inputs(&model, &claim)
        .map_err(|v| anyhow!("claim {}: {}: pass the input with --input FILE --index I", claim.id, v.name()))?;
    let run = match fault {
        None => crate::watch::claims::honest_run(&model, &x, depth)?,
        Some(f) => crate::watch::claims::dishonest_run(&model, &x, f, depth)?,
    };
    Ok((model, run))
}

async fn play_cmd(a: PlayArgs) -> Result<()> {
    if a.input.is_some() && crate::claim_model::is_llm_bundle(&a.bundle)? {
        bail!(
            "{} is an LLM bundle: its claims' inputs are the prompt and lengths the chain holds; drop --input",
            a.bundle.display()
        );
    }
    let (c, d) = connect(&a.conn, true).await?;
    let cfg = c.view(d.game, &IOptimisticML::configCall {}).await?;
    let depth = u32::try_from(cfg.vmDepth).map_err(|_| anyhow!("vmDepth {} out of range", cfg.vmDepth))?;
    let fault = match (&a.dishonest, a.role) {
        (Some(f), Role::Submitter) if !f.is_submitter_fault() => {
            bail!("--dishonest {f} is a challenger's fault: the submitter takes output, node:K or step:K:S")
        }
        (Some(f), Role::Challenger) if f.is_submitter_fault() => {
            bail!("--dishonest {f} is a submitter's fault: the challenger takes challenge-all")
        }
        (Some(f), Role::Submitter) => Some(f),
        _ => None,
    };
    if let Some(f) = &a.dishonest {
        eprintln!("FAULT INJECTION (--dishonest {f}): this {} plays deliberately wrong", side_name(a.role.side()));
    }
    let (images, run) = match &a.input {
        Some(input) => {
            let (b, run) =
                run_of(&RunArgs { bundle: a.bundle.clone(), input: input.clone(), index: a.index }, fault, depth)?;
            (Arc::new(b.node_images().to_vec()), run)
        }
        None => {
            let (m, run) = run_from_chain(&c, &d, a.game, &a.bundle, fault, depth).await?;
            (m.images().clone(), run)
        }
    };
    let o = PlayOptions { role: a.role, poll: Duration::from_millis(a.poll_ms.max(10)) };
    // Progress for a person on stderr; `--json` is the result object on stdout.
    let report = Reporter::new(false, Sink::Stderr);
    let out = play::play(&c, d.game, d.block, U256::from(a.game), images, Arc::new(run), &o, &Workers::new(1), &report)
        .await?;
    let won = out.winner == a.role.side();
    let me: Address = c.from()?;
    let v = json!({
        "game": a.game,
        "role": side_name(a.role.side()),
        "account": me.to_string(),
        "winner": side_name(out.winner),
        "reason": reason_name(out.reason),
        "won": won,
        "transactions": out.sent,
        "gas": out.gas,
        "dishonest": a.dishonest.as_ref().map(|f| f.to_string()),
    });
    let human = format!(
        "game {} ended: the {} won ({}); this {} {} ({} transactions sent)",
        a.game,
        side_name(out.winner),
        reason_name(out.reason),
        side_name(a.role.side()),
        if won { "won" } else { "lost" },
        out.sent
    );
    output(a.conn.json, v, human);
    Ok(())
}

/// The inputs of a claim: a graph bundle's input sample, or an LLM bundle's prompt (its
/// tokens, through the chat template with `--chat`) and the tokens to generate.
fn claim_request(m: &ClaimModel, a: &ClaimArgs) -> Result<Vec<Tensor>> {
    let name = a.bundle.display();
    match (m.llm(), &a.prompt, &a.input) {
        (Some(l), Some(text), _) => {
            let ids = if a.chat { l.tokenizer.chat_prompt(text)? } else { l.tokenizer.encode(text)? };
            let limits = l.graph.limits;
            if ids.is_empty() || ids.len() > limits.max_prompt {
                bail!(
                    "--prompt is {} tokens; {name} takes prompts of 1..={} tokens (its --max-prompt at import)",
                    ids.len(),
                    limits.max_prompt
                );
            }
            let new = a.max_new_tokens.unwrap_or(limits.max_new);
            if new == 0 || new > limits.max_new {
                bail!(
                    "--max-new-tokens {new}: {name} generates 1..={} tokens (its --max-new at import)",
                    limits.max_new
                );
            }
            Ok(l.graph.inputs(&ids, new)?)
        }
        (Some(_), None, _) => bail!("{name} is an LLM bundle: pass --prompt TEXT"),
        (None, _, Some(input)) => {
            let b = m.bundle().expect("not an LLM bundle");
            Ok(vec![sample_input(b, input, a.index)?])
        }
        (None, Some(_), _) => bail!("{name} is a graph bundle: pass --input FILE [--index I], not --prompt"),
        (None, None, None) => bail!("{name} is a graph bundle: pass --input FILE [--index I]"),
    }
}

/// What an LLM claim says in words: prompt length, generated ids and their text.
fn generation_json(l: &LlmClaims, inputs: &[Tensor], output: &Tensor) -> Result<serde_json::Value> {
    let (prompt, new) = l.graph.effective(inputs)?;
    let ids: Vec<u32> = output.as_i32().unwrap_or_default()[..new].iter().map(|&t| t.max(0) as u32).collect();
    let text = l.tokenizer.decode(&ids, false)?;
    Ok(json!({ "prompt_tokens": prompt.len(), "new_tokens": new, "tokens": ids, "text": text }))
}
