//! `opml game ...`: every move of the dispute game computed off-chain from one's own run
//! (`docs/spec/protocol.md`), printed as JSON with the contract calldata ready to send
//! (`cast send <game> <calldata>`). No chain access: the chain's state (interval, posted
//! states, game id) comes in as arguments.

use std::process::ExitCode;

use alloy_primitives::{Bytes, U256};
use alloy_sol_types::SolCall;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use opml_cli::game::abi::{to_b256, IOptimisticML};
use opml_cli::game::bisect::{inner_points, narrow, parts};
use opml_cli::game::strategy::{defend, pick};
use opml_cli::game::{GraphView, HandoverData, VmView};
use opml_compiler::compile_node;
use opml_dnn::bundle::{hex32, parse_hex32, Bundle};
use opml_merkle::Hash;
use serde_json::{json, Value};

use crate::output::hex;
use crate::sample;

/// Game subcommands.
#[derive(Debug, Subcommand)]
pub enum GameCommand {
    /// The model's registration and the claim of this run: `register` and `postClaim` data.
    Claim(ClaimArgs),
    /// Submitter's first move: the final graph state S_n and its output-slot proof.
    Open(GameRunArgs),
    /// Defender's move: its hashes at the inner points of [lo, hi] (graph states, or with
    /// --node the VM state hashes of that node's run).
    States(StatesArgs),
    /// Challenger's move: the sub-interval of [lo, hi] to pick, given the posted states.
    Pick(PickArgs),
    /// Submitter's handover for the isolated node: update, descriptor, input-slot and
    /// final-state proofs.
    Handover(NodeMoveArgs),
    /// The leaf: the witness of step T -> T+1 of the node's VM run, for `resolveStep`.
    Step(StepArgs),
}

/// Which run (a bundle and one input sample) and which game.
#[derive(Debug, Args)]
pub struct GameRunArgs {
    #[command(flatten)]
    pub sample: sample::RunArgs,
    /// Game id: when given, the output includes the calldata of the move.
    #[arg(long)]
    pub game: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ClaimArgs {
    #[command(flatten)]
    pub run: GameRunArgs,
    /// Request id the claim answers (0: none).
    #[arg(long, default_value_t = 0)]
    pub request: u64,
    /// Metadata URI for the registration.
    #[arg(long, default_value = "")]
    pub uri: String,
}

/// The interval being dissected and at which level.
#[derive(Debug, Args)]
pub struct IntervalArgs {
    /// Low end of the interval (a graph-state index, or a VM step with --node).
    #[arg(long)]
    pub lo: u64,
    /// High end of the interval.
    #[arg(long)]
    pub hi: u64,
    /// The deployment's arity k.
    #[arg(short = 'k', long = "arity", default_value_t = 16)]
    pub arity: u64,
    /// VM level: the node isolated by the graph level.
    #[arg(long)]
    pub node: Option<usize>,
    /// The deployment's VM depth D (phase 2 runs over [0, 2^D]).
    #[arg(long, default_value_t = 32)]
    pub depth: u32,
}

#[derive(Debug, Args)]
pub struct StatesArgs {
    #[command(flatten)]
    pub run: GameRunArgs,
    #[command(flatten)]
    pub interval: IntervalArgs,
}

#[derive(Debug, Args)]
pub struct PickArgs {
    #[command(flatten)]
    pub run: GameRunArgs,
    #[command(flatten)]
    pub interval: IntervalArgs,
    /// The defender's posted states (0x hashes, comma separated, in point order).
    #[arg(long, value_delimiter = ',')]
    pub states: Vec<String>,
}

#[derive(Debug, Args)]
pub struct NodeMoveArgs {
    #[command(flatten)]
    pub run: GameRunArgs,
    /// The isolated node (the graph level's final lo).
    #[arg(long)]
    pub node: usize,
    /// The deployment's VM depth D.
    #[arg(long, default_value_t = 32)]
    pub depth: u32,
}

#[derive(Debug, Args)]
pub struct StepArgs {
    #[command(flatten)]
    pub node: NodeMoveArgs,
    /// The agreed step T of the leaf [T, T+1].
    #[arg(long)]
    pub step: u64,
}

pub fn run(cmd: GameCommand) -> Result<ExitCode> {
    let v = match cmd {
        GameCommand::Claim(a) => claim(&a)?,
        GameCommand::Open(a) => open(&a)?,
        GameCommand::States(a) => states(&a)?,
        GameCommand::Pick(a) => pick_cmd(&a)?,
        GameCommand::Handover(a) => handover(&a)?,
        GameCommand::Step(a) => step(&a)?,
    };
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(ExitCode::SUCCESS)
}

/// The bundle and the honest graph view of one input sample.
fn graph_view(a: &GameRunArgs) -> Result<(Bundle, GraphView)> {
    sample::graph_view(&a.sample)
}

/// The VM view of node `node` of a graph view.
fn vm_view(b: &Bundle, g: &GraphView, node: usize, depth: u32) -> Result<VmView> {
    let n = b.model.graph().nodes.len();
    if node >= n {
        bail!("--node {node} out of range: the model has {n} nodes (0..{n})");
    }
    let prog = compile_node(&b.model, node).with_context(|| format!("compiling node {node}"))?;
    let ins = g.node_inputs(node)?;
    VmView::new(&prog, &ins, depth).with_context(|| format!("running node {node} in the VM"))
}

fn hashes(v: &[Hash]) -> Vec<String> {
    v.iter().map(hex32).collect()
}

fn calldata(call: impl SolCall) -> String {
    hex(&call.abi_encode())
}

/// Add `calldata` to `v` when a game id was given.
fn with_calldata(mut v: Value, game: Option<u64>, call: impl FnOnce(U256) -> String) -> Value {
    if let Some(id) = game {
        v["calldata"] = json!(call(U256::from(id)));
    }
    v
}

fn claim(a: &ClaimArgs) -> Result<Value> {
    let (b, g) = graph_view(&a.run)?;
    let c = sample::claim_data(&b, &g, a.request, &a.uri)?;
    let r = &c.register;
    Ok(json!({
        "model_commitment": hex32(&b.model_root()?),
        "node_count": r.nodeCount,
        "input_lens": r.inputLens,
        "slot_count": r.slotCount,
        "output_slot": r.outputSlot,
        "output_len": r.outputLen,
        "model_id": format!("{}", c.model_id),
        "register_calldata": calldata(c.register.clone()),
        "input_commitments": hashes(&g.trace().inputs),
        "input_bytes": hex(&c.post.inputBytes),
        "output": hex(&c.post.output),
        "output_commitment": hex32(&g.output_commitment()),
        "s0": hex32(&g.state(0)?),
        "post_claim_calldata": calldata(c.post),
    }))
}

fn open(a: &GameRunArgs) -> Result<Value> {
    let (_b, g) = graph_view(a)?;
    let (sn, sib) = g.open()?;
    let v = json!({ "final_graph_state": hex32(&sn), "output_siblings": hashes(&sib) });
    Ok(with_calldata(v, a.game, |id| {
        calldata(IOptimisticML::openCall { gameId: id, finalGraphState: sn.into(), outputSiblings: to_b256(&sib) })
    }))
}

/// Check the interval against the level it is at.
fn check_interval(i: &IntervalArgs, graph_nodes: usize) -> Result<()> {
    if i.arity < 2 {
        bail!("--arity {} must be at least 2", i.arity);
    }
    if i.lo + 1 >= i.hi {
        bail!("[--lo {}, --hi {}] has no inner point to dissect (need hi > lo + 1)", i.lo, i.hi);
    }
    let top = match i.node {
        None => graph_nodes as u64,
        Some(_) => {
            if !(1..=48).contains(&i.depth) {
                bail!("--depth {} is outside 1..=48", i.depth);
            }
            1u64 << i.depth
        }
    };
    if i.hi > top {
        bail!("--hi {} is past the end of the interval [0, {top}]", i.hi);
    }
    Ok(())
}

fn states(a: &StatesArgs) -> Result<Value> {
    let (b, mut g) = graph_view(&a.run)?;
    let i = &a.interval;
    check_interval(i, g.node_count())?;
    let states = match i.node {
        None => defend(&mut g, i.lo, i.hi, i.arity)?,
        Some(node) => defend(&mut vm_view(&b, &g, node, i.depth)?, i.lo, i.hi, i.arity)?,
    };
    let v = json!({
        "level": if i.node.is_some() { "steps" } else { "graph" },
        "points": inner_points(i.lo, i.hi, i.arity),
        "states": hashes(&states),
    });
    Ok(with_calldata(v, a.run.game, |id| {
        calldata(IOptimisticML::postStatesCall { gameId: id, states: to_b256(&states) })
    }))
}

fn pick_cmd(a: &PickArgs) -> Result<Value> {
    let (b, mut g) = graph_view(&a.run)?;
    let i = &a.interval;
    check_interval(i, g.node_count())?;
    let posted: Vec<Hash> = a
        .states
        .iter()
        .map(|s| parse_hex32(s.trim()).with_context(|| format!("--states: `{s}` is not 0x + 64 hex digits")))
        .collect::<Result<_>>()?;
    let want = parts(i.lo, i.hi, i.arity) - 1;
    if posted.len() as u64 != want {
        bail!(
            "--states has {} hashes, [{}, {}] with arity {} has {want} inner points",
            posted.len(),
            i.lo,
            i.hi,
            i.arity
        );
    }
    let index = match i.node {
        None => pick(&mut g, i.lo, i.hi, i.arity, &posted)?,
        Some(node) => pick(&mut vm_view(&b, &g, node, i.depth)?, i.lo, i.hi, i.arity, &posted)?,
    };
    let (lo, hi) = narrow(i.lo, i.hi, i.arity, index).context("pick outside the interval")?;
    let v = json!({ "index": index, "lo": lo, "hi": hi });
    Ok(with_calldata(v, a.run.game, |id| {
        calldata(IOptimisticML::pickCall { gameId: id, index: U256::from(index), states: to_b256(&posted) })
    }))
}

fn handover(a: &NodeMoveArgs) -> Result<Value> {
    let (b, g) = graph_view(&a.run)?;
    let vm = vm_view(&b, &g, a.node, a.depth)?;
    if !vm.exited_ok() {
        bail!("node {}'s VM run did not exit with code 0 within 2^{} steps: no handover is possible", a.node, a.depth);
    }
    let d = HandoverData::build(&g, b.node_images(), a.node, &vm)?;
    let v = json!({
        "node": a.node,
        "output": hex32(&d.output),
        "update_siblings": hashes(&d.update_siblings),
        "descriptor": hex(&d.descriptor),
        "descriptor_siblings": hashes(&d.descriptor_siblings),
        "input_values": hashes(&d.input_values),
        "input_siblings": d.input_siblings.iter().map(|s| hashes(s)).collect::<Vec<_>>(),
        "final_state": hex(&d.final_state),
        "final_state_hash": hex32(&opml_merkle::keccak256(&d.final_state)),
        "output_region_siblings": hashes(&d.output_region_siblings),
        "end_step": vm.end_step(),
    });
    Ok(with_calldata(v, a.run.game, |id| calldata(IOptimisticML::handoverCall { gameId: id, p: (&d).into() })))
}

fn step(a: &StepArgs) -> Result<Value> {
    let (b, g) = graph_view(&a.node.run)?;
    let vm = vm_view(&b, &g, a.node.node, a.node.depth)?;
    if a.step >= 1u64 << a.node.depth {
        bail!("--step {} is past the last step 2^{} - 1", a.step, a.node.depth);
    }
    let w = vm.step_witness(a.step);
    let state = w.state.to_vec();
    let v = json!({
        "step": a.step,
        "state": hex(&state),
        "state_hash": hex32(&opml_merkle::keccak256(&state)),
        "proof": hex(&w.proof),
        "post_state_hash": hex32(&w.post_state_hash),
    });
    Ok(with_calldata(v, a.node.run.game, |id| {
        calldata(IOptimisticML::resolveStepCall { gameId: id, state: Bytes::from(state), proof: Bytes::from(w.proof) })
    }))
}
