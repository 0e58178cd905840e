//! Whole disputes between two game clients (`opml_cli::game`) over the forge-built
//! contracts (`ModelRegistry`, `OptimisticML`, `Step`) on an in-process chain (revm), with
//! real digits-model data: the CNN and MLP bundles of `fixtures/digits`, sample 0 of their
//! test sets, every graph state from native runs, every VM state from the compiled node
//! images, every step witness from the real VM.
//!
//! * honest submitter vs lying challenger: the submitter wins;
//! * lying submitter vs honest challenger: (a) lie in the final output, (b) lie in an
//!   intermediate node of each op kind, (c) lie inside a node's VM run (tampered memory or
//!   register mid-run, coherent afterwards), (d) bad handovers (wrong input slot proof,
//!   weight root not under the model root, final state not halted, final state not holding
//!   the claimed output) revert and lose by timeout, and a run with different weights loses
//!   at step 0 of phase 2;
//! * injected faults (`opml_cli::game::Run::dishonest`: `output`, `node:K`, `step:K:S`)
//!   lose at the leaf they aim at, after a handover the contract accepts;
//! * every handover is also checked in Rust (`HandoverData::check`): the contract accepts
//!   exactly when Rust does and names the same failed check;
//! * gas per move kind and per whole dispute on the largest digits node, for k = 2, 8, 16
//!   and vmDepth 32 (`-- --nocapture` prints the tables).
//!
//! Build the contracts first (`contracts/scripts/setup.sh`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use alloy_primitives::{address, Address, Bytes, B256, U256};
use alloy_sol_types::{SolCall, SolEvent, SolValue};
use opml_cli::game::abi::{model_id, revert_reason, to_b256, IModelRegistry, IOptimisticML};
use opml_cli::game::bisect::{narrow, worst_case_rounds};
use opml_cli::game::fault::find_tamper;
use opml_cli::game::graph::flip_byte;
use opml_cli::game::{strategy, Edit, Fault, GraphView, HandoverData, ModelShape, Run, Tamper, VmView};
use opml_compiler::layout::{input_addr, OUTPUT_BASE};
use opml_compiler::{compile_node, NodeProgram};
use opml_contracts::chain::{Chain, Receipt};
use opml_contracts::{artifact_path, CallGas};
use opml_dnn::bundle::Bundle;
use opml_dnn::commit::{slot_vector_len, tensor_commitment, NodeImage};
use opml_dnn::st::read_dataset;
use opml_dnn::{Model, Tensor};
use opml_merkle::{keccak256, Hash};
use IOptimisticML::{EndReason, Phase, Side};

const OWNER: Address = address!("0x00000000000000000000000000000000000000aa");
const SUBMITTER: Address = address!("0x0000000000000000000000000000000000005b17");
const CHALLENGER: Address = address!("0x000000000000000000000000000000000000c4a1");
const ANYONE: Address = address!("0x00000000000000000000000000000000000a0e0e");

const ETHER: u128 = 1_000_000_000_000_000_000;
const SUBMITTER_BOND: u128 = ETHER;
const CHALLENGER_BOND: u128 = ETHER / 2;
const BURN_BPS: u16 = 2_500;
const WINDOW: u64 = 86_400;
const CLOCK: u64 = 3_600;
/// Seconds each player thinks before a move.
const THINK: u64 = 30;

// ------------------------------------------------------------------ fixtures

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/digits").join(name)
}

struct Fixture {
    kind: &'static str,
    model: Arc<Model>,
    root: Hash,
    images: Vec<NodeImage>,
    input: Tensor,
    honest: GraphView,
}

fn fixtures() -> &'static [Fixture] {
    static F: OnceLock<Vec<Fixture>> = OnceLock::new();
    F.get_or_init(|| {
        ["cnn", "mlp"]
            .into_iter()
            .map(|kind| {
                let b = Bundle::from_bytes(&std::fs::read(fixture(&format!("{kind}.opml"))).unwrap()).unwrap();
                let name = format!("test_{kind}.safetensors");
                let ds = read_dataset(&std::fs::read(fixture(&name)).unwrap(), &name, false).unwrap();
                let input = b.quantize_input(ds.sample(0)).unwrap();
                let root = b.model_root().unwrap();
                let images = b.node_images().to_vec();
                let model = Arc::new(b.model);
                let honest = GraphView::honest(model.clone(), root, std::slice::from_ref(&input)).unwrap();
                Fixture { kind, model, root, images, input, honest }
            })
            .collect()
    })
}

fn fx(kind: &str) -> &'static Fixture {
    fixtures().iter().find(|f| f.kind == kind).expect("cnn or mlp")
}

// ------------------------------------------------------------------ players

/// How a player departs from the honest run.
#[derive(Clone, Debug)]
enum Lie {
    None,
    /// Node `node`'s output has one bit flipped; the node's VM view forges the final state
    /// (the honest run, with the lie written into the output region at the halting step):
    /// the `node:K` fault.
    Output {
        node: usize,
    },
    /// An injected fault (`Run::dishonest`).
    Injected(Fault),
    /// Node `node`'s output is its VM run with `tamper` applied (coherent afterwards).
    Vm {
        node: usize,
        tamper: Tamper,
    },
    /// Node `node` ran with one weight byte flipped (its image's pre-state differs).
    Weights {
        node: usize,
    },
    /// Node `node`'s output has one bit flipped, but the VM view is the honest run (its
    /// final state does not hold the claimed output).
    OutputHonestVm {
        node: usize,
    },
}

struct Player {
    graph: GraphView,
    lie: Lie,
    /// The node this player lies about.
    lying_node: Option<usize>,
    depth: u32,
    /// The lying VM view of the lie's node (built with the graph view).
    lying_vm: Option<VmView>,
}

fn weights_flipped(prog: &NodeProgram) -> NodeProgram {
    let mut p = prog.clone();
    let w = p.weights.first().expect("a node with weights").clone();
    p.weights[0] = flip_byte(&w, 3).unwrap();
    p
}

impl Player {
    fn new(f: &Fixture, lie: Lie, depth: u32) -> Player {
        let inputs = std::slice::from_ref(&f.input);
        let honest_out = |node: usize| f.honest.node_output(node).unwrap().clone();
        let vm_of = |node: usize, prog: &NodeProgram, tamper: Option<&Tamper>| {
            let ins = f.honest.node_inputs(node).unwrap();
            VmView::tampered(prog, &ins, depth, tamper).unwrap()
        };
        let lying = |node: usize, t: Tensor| GraphView::lying(f.model.clone(), f.root, inputs, node, t).unwrap();
        let injected = |fault: &Fault| Run::dishonest(f.model.clone(), f.root, inputs, fault, depth).unwrap();
        let (graph, lying_vm) = match &lie {
            Lie::None => (f.honest.clone(), None),
            Lie::Output { node } | Lie::OutputHonestVm { node } => {
                let run = injected(&Fault::Node(*node));
                let vm = if matches!(lie, Lie::Output { .. }) {
                    run.vm_view(*node).unwrap()
                } else {
                    vm_of(*node, &compile_node(&f.model, *node).unwrap(), None)
                };
                (run.graph().clone(), Some((*node, vm)))
            }
            Lie::Injected(fault) => {
                let run = injected(fault);
                let node = run.lying_node().expect("a submitter fault lies about a node");
                (run.graph().clone(), Some((node, run.vm_view(node).unwrap())))
            }
            Lie::Vm { node, tamper } => {
                let prog = compile_node(&f.model, *node).unwrap();
                let vm = vm_of(*node, &prog, Some(tamper));
                assert!(vm.exited_ok(), "{} node {node}: the tampered run must still exit with 0", f.kind);
                let out = vm.output().unwrap();
                assert_ne!(out, honest_out(*node), "{} node {node}: the tamper must change the output", f.kind);
                (lying(*node, out), Some((*node, vm)))
            }
            Lie::Weights { node } => {
                let prog = weights_flipped(&compile_node(&f.model, *node).unwrap());
                let vm = vm_of(*node, &prog, None);
                assert!(vm.exited_ok());
                let out = vm.output().unwrap();
                assert_ne!(out, honest_out(*node), "{} node {node}: other weights must change the output", f.kind);
                (lying(*node, out), Some((*node, vm)))
            }
        };
        let lying_node = lying_vm.as_ref().map(|(node, _)| *node);
        let lying_vm = lying_vm.map(|(_, vm)| vm);
        Player { graph, lie, lying_node, depth, lying_vm }
    }

    /// This player's VM view of node `node` (taken out of the player for the game).
    fn vm(&mut self, node: usize) -> VmView {
        if self.lying_node == Some(node) {
            if let Some(vm) = self.lying_vm.take() {
                return vm;
            }
        }
        VmView::of_node(&self.graph, node, self.depth).unwrap()
    }
}

// ------------------------------------------------------------------ the chain

fn b(h: &Hash) -> B256 {
    B256::from(*h)
}

fn config(k: u64, depth: u32) -> IOptimisticML::Config {
    IOptimisticML::Config {
        arity: k,
        vmDepth: depth as u64,
        challengeWindow: WINDOW,
        clock: CLOCK,
        requestTimeout: 7 * WINDOW,
        callbackGas: 200_000,
        submitterBond: SUBMITTER_BOND,
        challengerBond: CHALLENGER_BOND,
        burnBps: BURN_BPS,
    }
}

/// Move kinds, for the gas tables.
const MOVES: [&str; 10] = [
    "postClaim",
    "challenge",
    "open",
    "postStates (graph)",
    "pick (graph)",
    "handover",
    "postStates (steps)",
    "pick (steps)",
    "resolveStep",
    "timeout",
];

struct Deployment {
    chain: Chain,
    game: Address,
    registry: Address,
    model_id: B256,
    shape: ModelShape,
    k: u64,
    depth: u32,
    gas: BTreeMap<&'static str, Vec<CallGas>>,
}

impl Deployment {
    fn new(f: &Fixture, k: u64, depth: u32) -> Deployment {
        let mut chain = Chain::new();
        for a in [OWNER, SUBMITTER, CHALLENGER, ANYONE] {
            chain.set_balance(a, U256::from(100 * ETHER));
        }
        let (step, _) = chain.deploy_artifact(OWNER, "Step.sol", "Step", &[], &[]).unwrap_or_else(|e| panic!("{e}"));
        let (registry, _) = chain.deploy_artifact(OWNER, "ModelRegistry.sol", "ModelRegistry", &[], &[]).unwrap();
        let args = (registry, step, config(k, depth)).abi_encode_params();
        let (game, _) = chain.deploy_artifact(OWNER, "OptimisticML.sol", "OptimisticML", &args, &[]).unwrap();
        let g = f.model.graph();
        let shape = ModelShape {
            root: f.root,
            node_count: g.nodes.len() as u32,
            input_count: g.inputs.len() as u32,
            slot_count: slot_vector_len(&f.model) as u32,
        };
        let mut d = Deployment { chain, game, registry, model_id: B256::ZERO, shape, k, depth, gas: BTreeMap::new() };
        let output_len = f.model.specs()[g.output].byte_len() as u32;
        let input_lens: Vec<u32> = g.inputs.iter().map(|s| s.byte_len() as u32).collect();
        let call = IModelRegistry::registerCall {
            root: b(&f.root),
            nodeCount: shape.node_count,
            inputLens: input_lens.clone(),
            slotCount: shape.slot_count,
            outputSlot: g.output as u32,
            outputLen: output_len,
            uri: format!("fixtures/digits/{}.opml", f.kind),
        };
        let r = d.chain.call(OWNER, registry, U256::ZERO, &call.abi_encode()).unwrap();
        assert!(r.ok(), "register: {}", why(&r));
        d.model_id = IModelRegistry::registerCall::abi_decode_returns(&r.output).unwrap();
        // The client's twin of ModelRegistry.modelId gives the id the registry returned.
        let twin = model_id(b(&f.root), shape.node_count, &input_lens, shape.slot_count, g.output as u32, output_len);
        assert_eq!(twin, d.model_id, "opml_cli::game::abi::model_id and ModelRegistry.modelId differ");
        d
    }

    fn send<C: SolCall>(&mut self, from: Address, value: u128, call: &C) -> Receipt {
        self.chain.call(from, self.game, U256::from(value), &call.abi_encode()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A move that must succeed; its gas is recorded under `kind`.
    fn ok<C: SolCall>(&mut self, kind: &'static str, from: Address, value: u128, call: &C) -> (C::Return, Receipt) {
        let r = self.send(from, value, call);
        if let Some(data) = &r.reverted {
            panic!("{kind} reverted: {}", revert_reason(data));
        }
        self.gas.entry(kind).or_default().push(r.gas);
        (C::abi_decode_returns(&r.output).unwrap(), r)
    }

    fn view<C: SolCall>(&mut self, call: &C) -> C::Return {
        let r = self.chain.view(ANYONE, self.game, &call.abi_encode()).unwrap();
        assert!(r.ok(), "view reverted: {}", why(&r));
        C::abi_decode_returns(&r.output).unwrap()
    }

    fn game_of(&mut self, id: U256) -> IOptimisticML::GameView {
        self.view(&IOptimisticML::gameOfCall { gameId: id })
    }

    fn claim_of(&mut self, id: U256) -> IOptimisticML::ClaimView {
        self.view(&IOptimisticML::claimOfCall { claimId: id })
    }

    fn credits(&mut self, a: Address) -> u128 {
        self.view(&IOptimisticML::creditsCall { account: a }).to::<u128>()
    }

    fn post_claim(&mut self, f: &Fixture, graph: &GraphView) -> U256 {
        let call = IOptimisticML::postClaimCall {
            modelId: self.model_id,
            requestId: U256::ZERO,
            inputCommitments: vec![b(&tensor_commitment(&f.input))],
            inputBytes: Bytes::from(f.input.to_le_bytes()),
            output: Bytes::from(graph.output().to_le_bytes()),
            outputCommitment: b(&graph.output_commitment()),
        };
        self.ok("postClaim", SUBMITTER, SUBMITTER_BOND, &call).0
    }

    fn challenge(&mut self, claim: U256) -> U256 {
        self.ok("challenge", CHALLENGER, CHALLENGER_BOND, &IOptimisticML::challengeCall { claimId: claim }).0
    }

    /// Contract balance equals everything accepted minus everything sent.
    fn assert_conservation(&mut self) {
        let total_in = self.view(&IOptimisticML::totalInCall {});
        let total_out = self.view(&IOptimisticML::totalOutCall {});
        assert_eq!(self.chain.balance(self.game), total_in - total_out, "conservation");
    }
}

/// The decoded revert of a receipt (empty if it succeeded).
fn why(r: &Receipt) -> String {
    r.reverted.as_ref().map(|d| revert_reason(d)).unwrap_or_default()
}

fn events<E: SolEvent>(r: &Receipt) -> Vec<E> {
    r.logs.iter().filter_map(|l| E::decode_log_data(&l.data).ok()).collect()
}

// ------------------------------------------------------------------ one game

#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// Resolved at a VM step.
    Step { winner: Side, node: u32, step: u64 },
    /// The handover reverted with this error; the submitter lost on time.
    BadHandover(String),
}

struct Played {
    end: End,
    graph_rounds: u32,
    vm_rounds: u32,
}

/// One dissection level: the defender posts, the challenger picks, until one unit is left;
/// the mirror of `[lo, hi]` and its end hashes is checked against `gameOf` every round.
#[allow(clippy::too_many_arguments)]
fn dissect(
    d: &mut Deployment,
    id: U256,
    steps: bool,
    def: &mut impl opml_cli::game::View,
    ch: &mut impl opml_cli::game::View,
    mut lo: u64,
    mut hi: u64,
    mut hash_lo: Hash,
    mut hash_hi: Hash,
) -> (u64, Hash, Hash, u32) {
    let k = d.k;
    let (post_kind, pick_kind) =
        if steps { ("postStates (steps)", "pick (steps)") } else { ("postStates (graph)", "pick (graph)") };
    let mut rounds = 0;
    while hi - lo > 1 {
        d.chain.warp(THINK);
        let states = strategy::defend(def, lo, hi, k).unwrap();
        let (_, r) =
            d.ok(post_kind, SUBMITTER, 0, &IOptimisticML::postStatesCall { gameId: id, states: to_b256(&states) });
        let posted = events::<IOptimisticML::StatesPosted>(&r);
        assert_eq!(posted.len(), 1);
        assert_eq!((posted[0].lo, posted[0].hi), (lo, hi));
        let on_chain_points = d.view(&IOptimisticML::pointsCall { gameId: id });
        assert_eq!(on_chain_points, opml_cli::game::bisect::points(lo, hi, k), "points of [{lo}, {hi}]");
        d.chain.warp(THINK);
        let i = strategy::pick(ch, lo, hi, k, &states).unwrap();
        d.ok(
            pick_kind,
            CHALLENGER,
            0,
            &IOptimisticML::pickCall { gameId: id, index: U256::from(i), states: to_b256(&states) },
        );
        let (nlo, nhi) = narrow(lo, hi, k, i).unwrap();
        let parts = on_chain_points.len() as u64 - 1;
        let new_lo = if i == 0 { hash_lo } else { states[i as usize - 1] };
        let new_hi = if i == parts - 1 { hash_hi } else { states[i as usize] };
        (lo, hi, hash_lo, hash_hi) = (nlo, nhi, new_lo, new_hi);
        let g = d.game_of(id);
        assert_eq!((g.lo, g.hi, g.hashLo, g.hashHi), (lo, hi, b(&hash_lo), b(&hash_hi)), "round {rounds}, pick {i}");
        // The challenger's invariant: it agrees with the low end and disputes the high end.
        assert_eq!(ch.hash_at(lo).unwrap(), hash_lo);
        rounds += 1;
    }
    (lo, hash_lo, hash_hi, rounds)
}

/// Play game `id` to its end. `edit` changes the submitter's handover proof (attack (d)).
fn play(
    d: &mut Deployment,
    f: &Fixture,
    id: U256,
    sub: &mut Player,
    ch: &mut Player,
    edit: Option<&dyn Fn(&mut HandoverData)>,
) -> Played {
    // Open: S_n and the proof that it holds the claimed output.
    d.chain.warp(THINK);
    let (s_n, sibs) = sub.graph.open().unwrap();
    d.ok(
        "open",
        SUBMITTER,
        0,
        &IOptimisticML::openCall { gameId: id, finalGraphState: b(&s_n), outputSiblings: to_b256(&sibs) },
    );
    let s_0 = sub.graph.state(0).unwrap();
    let claim = d.game_of(id).claimId;
    assert_eq!(d.claim_of(claim).inputState, b(&s_0), "S_0 computed on-chain");
    // Phase 1.
    let n = d.shape.node_count as u64;
    let (node, hash_lo, hash_hi, graph_rounds) = dissect(d, id, false, &mut sub.graph, &mut ch.graph, 0, n, s_0, s_n);
    assert_eq!(d.game_of(id).phase, Phase::Handover);
    // Handover.
    d.chain.warp(THINK);
    let mut sub_vm = sub.vm(node as usize);
    let mut data = HandoverData::build(&sub.graph, &f.images, node as usize, &sub_vm).unwrap();
    if let Some(e) = edit {
        e(&mut data);
    }
    let rust = data.check(&d.shape, node as u32, &hash_lo, &hash_hi);
    let proof = IOptimisticML::HandoverProof::from(&data);
    let r = d.send(SUBMITTER, 0, &IOptimisticML::handoverCall { gameId: id, p: proof });
    let (pre, fin) = match (&r.reverted, &rust) {
        (None, Ok(ends)) => {
            d.gas.entry("handover").or_default().push(r.gas);
            let h = events::<IOptimisticML::HandedOver>(&r);
            assert_eq!((h[0].preStateHash, h[0].finalStateHash), (b(&ends.0), b(&ends.1)));
            *ends
        }
        (Some(rev), Err(why)) => {
            let name = why.to_string();
            let name = name.split('(').next().unwrap();
            let reason = revert_reason(rev);
            assert!(reason.starts_with(name), "contract reverted {reason}, Rust rejected {why}");
            // The submitter cannot hand over: it loses on time.
            d.chain.warp(CLOCK + 1);
            let (_, r) = d.ok("timeout", ANYONE, 0, &IOptimisticML::timeoutCall { gameId: id });
            let ended = events::<IOptimisticML::GameEnded>(&r);
            assert_eq!((ended[0].winner, ended[0].reason), (Side::Challenger, EndReason::Timeout));
            return Played { end: End::BadHandover(reason), graph_rounds, vm_rounds: 0 };
        }
        (got, want) => panic!("handover: contract {:?}, Rust {want:?}", got.as_ref().map(|x| revert_reason(x))),
    };
    // The honest challenger's node pre-state is the contract's.
    let mut ch_vm = ch.vm(node as usize);
    if ch.lying_node != Some(node as usize) || !matches!(ch.lie, Lie::Weights { .. }) {
        assert_eq!(ch_vm.state_hash_at(0), pre, "the challenger's VM view starts at the contract's pre-state");
    }
    // Phase 2.
    let hi = 1u64 << d.depth;
    let (step, state_lo, _, vm_rounds) = dissect(d, id, true, &mut sub_vm, &mut ch_vm, 0, hi, pre, fin);
    assert_eq!(d.game_of(id).phase, Phase::Leaf);
    // Leaf: the challenger re-executes the agreed step on-chain.
    d.chain.warp(THINK);
    let w = ch_vm.step_witness(step);
    assert_eq!(keccak256(&w.state), state_lo);
    let call = IOptimisticML::resolveStepCall { gameId: id, state: w.state.into(), proof: w.proof.into() };
    let (_, r) = d.ok("resolveStep", CHALLENGER, 0, &call);
    let resolved = events::<IOptimisticML::StepResolved>(&r);
    assert_eq!((resolved[0].step, resolved[0].postStateHash), (step, b(&w.post_state_hash)));
    let ended = events::<IOptimisticML::GameEnded>(&r);
    assert_eq!(ended[0].reason, EndReason::Step);
    Played { end: End::Step { winner: ended[0].winner, node: node as u32, step }, graph_rounds, vm_rounds }
}

/// A whole claim: post, challenge, play, then check the game's winner, the credits, the
/// claim's status and the payouts.
fn dispute(
    kind: &str,
    k: u64,
    depth: u32,
    sub_lie: Lie,
    ch_lie: Lie,
    edit: Option<&dyn Fn(&mut HandoverData)>,
) -> (Played, Deployment) {
    let f = fx(kind);
    let mut d = Deployment::new(f, k, depth);
    let mut sub = Player::new(f, sub_lie.clone(), depth);
    let mut ch = Player::new(f, ch_lie.clone(), depth);
    let claim = d.post_claim(f, &sub.graph);
    let id = d.challenge(claim);
    let burnt_before = d.chain.balance(Address::ZERO);
    let played = play(&mut d, f, id, &mut sub, &mut ch, edit);
    let winner = match &played.end {
        End::Step { winner, .. } => *winner,
        End::BadHandover(_) => Side::Challenger,
    };
    let g = d.game_of(id);
    assert_eq!((g.phase, g.winner), (Phase::Ended, winner));
    let burn = |bond: u128| bond * BURN_BPS as u128 / 10_000;
    let burnt = d.chain.balance(Address::ZERO) - burnt_before;
    let loser_bond = if winner == Side::Submitter { CHALLENGER_BOND } else { SUBMITTER_BOND };
    assert_eq!(burnt, U256::from(burn(loser_bond)), "the loser's bond share is burnt at once");
    let c = d.claim_of(claim);
    if winner == Side::Submitter {
        assert!(!c.voided && !c.finalized && c.openGames == 0, "{c:?}");
        assert_eq!(d.credits(SUBMITTER), CHALLENGER_BOND - burn(CHALLENGER_BOND));
        assert_eq!(d.credits(CHALLENGER), 0);
        // Finalize after the window: the output becomes readable, the bond comes back.
        d.chain.warp(WINDOW);
        d.ok("finalize", ANYONE, 0, &IOptimisticML::finalizeCall { claimId: claim });
        let res = d.view(&IOptimisticML::resultCall { claimId: claim });
        assert!(res.finalized);
        // the result names what it answers: the model and keccak256 of the input commitments
        assert_eq!(res.modelId, d.model_id);
        assert_eq!(res.inputsHash, b(&keccak256(&tensor_commitment(&f.input))));
        assert!(res.inputsPublished, "the claim carried its input bytes");
        assert_eq!(res.outputCommitment, b(&sub.graph.output_commitment()));
        assert_eq!(res.output.to_vec(), sub.graph.output().to_le_bytes());
        assert_eq!(d.credits(SUBMITTER), SUBMITTER_BOND + CHALLENGER_BOND - burn(CHALLENGER_BOND));
    } else {
        assert!(c.voided && !c.finalized, "{c:?}");
        assert_eq!(d.credits(CHALLENGER), CHALLENGER_BOND + SUBMITTER_BOND - burn(SUBMITTER_BOND));
        assert_eq!(d.credits(SUBMITTER), 0);
        d.chain.warp(WINDOW);
        let r = d.send(ANYONE, 0, &IOptimisticML::finalizeCall { claimId: claim });
        let why = revert_reason(r.reverted.as_deref().expect("a voided claim cannot be finalized"));
        assert!(why.starts_with("ClaimVoidedError"), "{why}");
        assert!(!d.view(&IOptimisticML::resultCall { claimId: claim }).finalized);
    }
    // Pull payments: each party withdraws its credit.
    for who in [SUBMITTER, CHALLENGER] {
        let credit = d.credits(who);
        if credit > 0 {
            let before = d.chain.balance(who);
            d.ok("withdraw", who, 0, &IOptimisticML::withdrawCall {});
            assert_eq!(d.chain.balance(who) - before, U256::from(credit));
            assert_eq!(d.credits(who), 0);
        }
    }
    d.assert_conservation();
    assert_eq!(d.chain.balance(d.game), U256::ZERO, "everything paid out");
    (played, d)
}

fn expect_step_win(p: &Played, winner: Side, node: usize) {
    match &p.end {
        End::Step { winner: w, node: n, .. } => {
            assert_eq!((*w, *n as usize), (winner, node), "winner and disputed node");
        }
        End::BadHandover(r) => panic!("the handover was rejected ({r}), expected a step resolution"),
    }
}

// ------------------------------------------------------------------ tests

#[test]
fn registry_holds_the_bundles_commitments_and_the_interface_matches_the_artifacts() {
    for f in fixtures() {
        // The bundle's recorded commitment is what this build's compiler derives.
        assert_eq!(opml_compiler::binding::model_commitment(&f.model).unwrap(), f.root, "{}", f.kind);
        let mut d = Deployment::new(f, 8, 20);
        let call = IModelRegistry::getCall { id: d.model_id };
        let r = d.chain.view(ANYONE, d.registry, &call.abi_encode()).unwrap();
        let m = IModelRegistry::getCall::abi_decode_returns(&r.output).unwrap();
        assert_eq!((m.root, m.nodeCount, m.owner), (b(&f.root), d.shape.node_count, OWNER));
        assert_eq!(d.view(&IOptimisticML::configCall {}), config(8, 20));
    }
    // Every function and event of the sol! interface exists in forge's ABI.
    let path = artifact_path("OptimisticML.sol", "OptimisticML");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let methods = json["methodIdentifiers"].as_object().expect("methodIdentifiers");
    for sig in IOptimisticML::IOptimisticMLCalls::SIGNATURES {
        assert!(methods.contains_key(*sig), "OptimisticML has no function {sig}");
    }
    let abi_events: Vec<String> = json["abi"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "event")
        .map(|e| {
            let types: Vec<&str> =
                e["inputs"].as_array().unwrap().iter().map(|i| i["type"].as_str().unwrap()).collect();
            format!("{}({})", e["name"].as_str().unwrap(), types.join(","))
        })
        .collect();
    for sig in IOptimisticML::IOptimisticMLEvents::SIGNATURES {
        assert!(abi_events.iter().any(|e| e == sig), "OptimisticML has no event {sig}");
    }
    let path = artifact_path("ModelRegistry.sol", "ModelRegistry");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for sig in IModelRegistry::IModelRegistryCalls::SIGNATURES {
        assert!(json["methodIdentifiers"].get(*sig).is_some(), "ModelRegistry has no function {sig}");
    }
}

/// Issue 11 item 1 on the digits CNN (a 64-byte input): input bytes shorter than the
/// registered input, which commit as one raw leaf, are refused (before, node 0's pre-state
/// would read that leaf as the root of a 64-byte region nobody knows, and the claim could not
/// be challenged); a claim without input bytes is accepted but marked as not published.
#[test]
fn inputs_are_bound_to_the_registered_length_and_unpublished_ones_are_marked() {
    let f = fx("cnn");
    let mut d = Deployment::new(f, 8, 20);
    let bytes = f.input.to_le_bytes();
    assert_eq!(bytes.len(), 64, "the CNN's input is i8 [1, 1, 8, 8]");
    let (model, output) = (d.model_id, f.honest.output());
    let post = |input_bytes: Vec<u8>, commitment: Hash| IOptimisticML::postClaimCall {
        modelId: model,
        requestId: U256::ZERO,
        inputCommitments: vec![b(&commitment)],
        inputBytes: Bytes::from(input_bytes),
        output: Bytes::from(output.to_le_bytes()),
        outputCommitment: b(&f.honest.output_commitment()),
    };
    let short = bytes[..16].to_vec();
    let r = d.send(SUBMITTER, SUBMITTER_BOND, &post(short.clone(), opml_merkle::bytes_root(&short)));
    let why = revert_reason(r.reverted.as_deref().expect("16 bytes for a 64-byte input are refused"));
    assert_eq!(why, "WrongInputLength(WrongInputLength { given: 16, expected: 64 })");
    let unpublished = d.ok("postClaim", SUBMITTER, SUBMITTER_BOND, &post(Vec::new(), tensor_commitment(&f.input))).0;
    assert!(!d.claim_of(unpublished).inputsPublished, "no bytes: marked");
    let published = d.post_claim(f, &f.honest);
    assert!(d.claim_of(published).inputsPublished, "the client publishes the bytes");
    d.assert_conservation();
}

#[test]
fn honest_submitter_beats_lying_challengers() {
    // CNN: the challenger believes another conv2d output; MLP: another final output.
    let (p, _) = dispute("cnn", 8, 20, Lie::None, Lie::Output { node: 3 }, None);
    expect_step_win(&p, Side::Submitter, 3);
    let (p, _) = dispute("mlp", 4, 18, Lie::None, Lie::Output { node: 5 }, None);
    expect_step_win(&p, Side::Submitter, 5);
    // A challenger whose own VM run of MLP node 2 is tampered mid-run: the game ends at
    // the step where its view first departs, which the contract re-executes honestly.
    let f = fx("mlp");
    let tamper = mid_run_tamper(f, 2, mid_run_edits(f, 2));
    let (p, _) = dispute("mlp", 8, 20, Lie::None, Lie::Vm { node: 2, tamper: tamper.clone() }, None);
    expect_step_win(&p, Side::Submitter, 2);
    match p.end {
        End::Step { step, .. } => assert_eq!(step + 1, tamper.step),
        End::BadHandover(_) => unreachable!(),
    }
}

#[test]
fn a_silent_challenger_loses_on_time() {
    let f = fx("cnn");
    let mut d = Deployment::new(f, 4, 20);
    let claim = d.post_claim(f, &f.honest);
    let id = d.challenge(claim);
    let (s_n, sibs) = f.honest.open().unwrap();
    let open = IOptimisticML::openCall { gameId: id, finalGraphState: b(&s_n), outputSiblings: to_b256(&sibs) };
    d.ok("open", SUBMITTER, 0, &open);
    let mut v = f.honest.clone();
    let states = strategy::defend(&mut v, 0, 9, 4).unwrap();
    d.ok("postStates (graph)", SUBMITTER, 0, &IOptimisticML::postStatesCall { gameId: id, states: to_b256(&states) });
    // Not yet out of time; then the challenger's whole clock passes without a pick.
    d.chain.warp(CLOCK);
    let r = d.send(ANYONE, 0, &IOptimisticML::timeoutCall { gameId: id });
    assert!(why(&r).starts_with("ClockNotRunOut"), "{}", why(&r));
    d.chain.warp(1);
    let (_, r) = d.ok("timeout", ANYONE, 0, &IOptimisticML::timeoutCall { gameId: id });
    let ended = events::<IOptimisticML::GameEnded>(&r);
    assert_eq!((ended[0].winner, ended[0].reason), (Side::Submitter, EndReason::Timeout));
    assert_eq!(d.credits(SUBMITTER), CHALLENGER_BOND - CHALLENGER_BOND * BURN_BPS as u128 / 10_000);
    // A late pick is refused.
    let pick = IOptimisticML::pickCall { gameId: id, index: U256::ZERO, states: to_b256(&states) };
    assert!(!d.send(CHALLENGER, 0, &pick).ok());
    d.assert_conservation();
}

#[test]
fn a_lie_in_the_final_output_loses() {
    let (p, _) = dispute("cnn", 16, 20, Lie::Output { node: 8 }, Lie::None, None);
    expect_step_win(&p, Side::Challenger, 8);
    let (p, _) = dispute("mlp", 2, 17, Lie::Output { node: 5 }, Lie::None, None);
    expect_step_win(&p, Side::Challenger, 5);
}

#[test]
fn a_lie_in_an_intermediate_node_of_each_op_kind_loses() {
    // CNN: conv2d, requantize, maxpool2d, reshape, linear; MLP: linear, requantize.
    let cases = [
        ("cnn", 0usize, 2u64),
        ("cnn", 1, 8),
        ("cnn", 2, 16),
        ("cnn", 6, 3),
        ("cnn", 7, 8),
        ("mlp", 2, 8),
        ("mlp", 3, 2),
    ];
    let mut kinds = std::collections::BTreeSet::new();
    for (kind, node, k) in cases {
        let (p, _) = dispute(kind, k, 17, Lie::Output { node }, Lie::None, None);
        expect_step_win(&p, Side::Challenger, node);
        kinds.insert(fx(kind).model.graph().nodes[node].op.name());
    }
    // Every op kind of both models was lied about.
    for f in fixtures() {
        for n in &f.model.graph().nodes {
            assert!(kinds.contains(n.op.name()), "no lie about a {} node", n.op.name());
        }
    }
}

/// A run of node `node` tampered at the middle of its run by the first of `edits` that
/// still exits with 0 and changes the output.
fn mid_run_tamper(f: &Fixture, node: usize, edits: Vec<Edit>) -> Tamper {
    let prog = compile_node(&f.model, node).unwrap();
    let ins = f.honest.node_inputs(node).unwrap();
    let end = VmView::new(&prog, &ins, 20).unwrap().end_step();
    find_tamper(&prog, &ins, 20, end / 2, edits)
        .unwrap()
        .unwrap_or_else(|| panic!("{} node {node}: no candidate tamper changes the output", f.kind))
}

/// Candidate mid-run memory edits of node `node`: words of the output region (written
/// early, never again) and the last words of input 0 (not read yet).
fn output_and_input_edits(f: &Fixture, node: usize) -> Vec<Edit> {
    let n_in = f.honest.node_inputs(node).unwrap()[0].spec().byte_len() as u32;
    (0..8)
        .map(|i| Edit::Bytes { addr: OUTPUT_BASE + 4 * i, bytes: vec![0x55; 4] })
        .chain((1..8).map(|i| Edit::Bytes { addr: input_addr(0) + n_in - 4 * i, bytes: vec![0x40, 0, 0, 0] }))
        .collect()
}

/// Candidate mid-run edits of node `node`: memory words, then each register (flipped bit)
/// as it is at the middle of the run.
fn mid_run_edits(f: &Fixture, node: usize) -> Vec<Edit> {
    let prog = compile_node(&f.model, node).unwrap();
    let ins = f.honest.node_inputs(node).unwrap();
    let vm = VmView::new(&prog, &ins, 20).unwrap();
    let regs = vm.machine_at(vm.end_step() / 2).regs;
    let regs = (5..32).map(|r| Edit::Reg { reg: r, value: regs[r] ^ 1 });
    output_and_input_edits(f, node).into_iter().chain(regs).collect()
}

#[test]
fn a_lie_inside_a_vm_run_loses_at_the_tampered_step() {
    let f = fx("cnn");
    // Requantize node 4: a memory word changed mid-run.
    let mem = mid_run_tamper(f, 4, output_and_input_edits(f, 4));
    let (p, _) = dispute("cnn", 8, 20, Lie::Vm { node: 4, tamper: mem.clone() }, Lie::None, None);
    expect_step_win(&p, Side::Challenger, 4);
    match p.end {
        End::Step { step, .. } => assert_eq!(step + 1, mem.step, "resolved at the tampered step"),
        End::BadHandover(_) => unreachable!(),
    }
    // MLP linear node 4: a register of the running kernel changed (a pointer or counter).
    let f = fx("mlp");
    let prog = compile_node(&f.model, 4).unwrap();
    let ins = f.honest.node_inputs(4).unwrap();
    let end = VmView::new(&prog, &ins, 20).unwrap().end_step();
    let regs = VmView::new(&prog, &ins, 20).unwrap().machine_at(end / 2).regs;
    let reg = mid_run_tamper(
        f,
        4,
        (5..32)
            .flat_map(|r| {
                [Edit::Reg { reg: r, value: regs[r] ^ 1 }, Edit::Reg { reg: r, value: regs[r].wrapping_add(4) }]
            })
            .collect(),
    );
    let (p, _) = dispute("mlp", 16, 20, Lie::Vm { node: 4, tamper: reg.clone() }, Lie::None, None);
    expect_step_win(&p, Side::Challenger, 4);
    match p.end {
        End::Step { step, .. } => assert_eq!(step + 1, reg.step),
        End::BadHandover(_) => unreachable!(),
    }
}

/// The faults `opml chain claim --dishonest` injects, played by the submitter against an
/// honest challenger on the digits CNN: each handover is accepted, and the game ends at
/// the leaf the fault aims at (the forged halting step of the lying node, or `[S-1, S]`).
#[test]
fn injected_faults_lose_at_the_leaf_they_aim_at() {
    let f = fx("cnn");
    let depth = 20;
    let g = f.model.graph();
    let end_of = |node: usize| VmView::of_node(&f.honest, node, depth).unwrap().end_step();
    let out_node = (0..g.nodes.len()).find(|&j| g.node_slot(j) == g.output).unwrap();
    // Middle nodes: requantize node 4 lies about its output; conv2d node 3 is tampered at a
    // step a third of the way through its run.
    let step = end_of(3) / 3;
    let cases = [
        (Fault::Output, out_node, end_of(out_node)),
        (Fault::Node(4), 4, end_of(4)),
        (Fault::Step { node: 3, step }, 3, step),
    ];
    for (fault, node, leaf_hi) in cases {
        let (p, _) = dispute("cnn", 8, depth, Lie::Injected(fault.clone()), Lie::None, None);
        expect_step_win(&p, Side::Challenger, node);
        match p.end {
            End::Step { step, .. } => assert_eq!((step, step + 1), (leaf_hi - 1, leaf_hi), "{fault}: the leaf"),
            End::BadHandover(_) => unreachable!(),
        }
    }
}

#[test]
fn bad_handovers_revert_and_lose_on_time() {
    let f = fx("cnn");
    // Node 7 (linear: inputs and weights). The submitter lies about its output.
    let node = 7;
    let lie = Lie::Output { node };
    // (1) an input slot value that is not in S_lo.
    let wrong_input: &dyn Fn(&mut HandoverData) = &|h| h.input_values[0][0] ^= 1;
    // (2) a weight root changed in the descriptor: no longer under the model root.
    let wrong_weight: &dyn Fn(&mut HandoverData) = &|h| h.descriptor[124] ^= 1;
    // (3) a final state that has not halted (the honest run's state at step 100).
    let prog = compile_node(&f.model, node).unwrap();
    let ins = f.honest.node_inputs(node).unwrap();
    let mut running = VmView::new(&prog, &ins, 20).unwrap().machine_at(100);
    let running_state = running.state().encode().to_vec();
    let running_sibs =
        opml_compiler::proofs::output_region_proof(running.memory_mut(), prog.output.byte_len()).unwrap().siblings;
    let not_halted: &dyn Fn(&mut HandoverData) = &|h| {
        h.final_state = running_state.clone();
        h.output_region_siblings = running_sibs.clone();
    };
    for (edit, want) in
        [(wrong_input, "BadInputProof"), (wrong_weight, "BadDescriptorProof"), (not_halted, "BadFinalState")]
    {
        let (p, _) = dispute("cnn", 8, 20, lie.clone(), Lie::None, Some(edit));
        match p.end {
            End::BadHandover(r) => assert!(r.starts_with(want), "{r}, want {want}"),
            e => panic!("expected a rejected handover ({want}), got {e:?}"),
        }
    }
    // (4) the honest final state, which does not hold the claimed (lying) output.
    let (p, _) = dispute("mlp", 8, 20, Lie::OutputHonestVm { node: 2 }, Lie::None, None);
    match p.end {
        End::BadHandover(r) => assert!(r.starts_with("BadFinalState"), "{r}"),
        e => panic!("expected BadFinalState, got {e:?}"),
    }
}

#[test]
fn a_run_with_other_weights_loses_at_step_zero() {
    let (p, _) = dispute("cnn", 8, 20, Lie::Weights { node: 0 }, Lie::None, None);
    expect_step_win(&p, Side::Challenger, 0);
    match p.end {
        End::Step { step, .. } => assert_eq!(step, 0, "the image's pre-state already differs"),
        End::BadHandover(_) => unreachable!(),
    }
}

#[test]
fn gas_of_worst_case_disputes_on_the_largest_node() {
    let f = fx("cnn");
    // The largest digits node: most VM steps.
    let steps: Vec<u64> = (0..f.model.graph().nodes.len())
        .map(|j| {
            let prog = compile_node(&f.model, j).unwrap();
            VmView::new(&prog, &f.honest.node_inputs(j).unwrap(), 20).unwrap().end_step()
        })
        .collect();
    let node = (0..steps.len()).max_by_key(|&j| steps[j]).unwrap();
    let op = f.model.graph().nodes[node].op.name();
    let depth = 32;
    eprintln!(
        "\nworst-case disputes: cnn node {node} ({op}, {} steps), vmDepth {depth}; a lie in the node's VM run \
         (a memory word or register tampered mid-run); gas from revm (Prague), tx = transaction gas incl. 21000 + calldata",
        steps[node]
    );
    // The tamper: the first of these memory words or registers, changed at the middle of the
    // run, that changes the node's output.
    let tamper = mid_run_tamper(f, node, mid_run_edits(f, node));
    eprintln!("tamper: {tamper:?}");
    for k in [2u64, 8, 16] {
        let (p, d) = dispute("cnn", k, depth, Lie::Vm { node, tamper: tamper.clone() }, Lie::None, None);
        expect_step_win(&p, Side::Challenger, node);
        let n = f.model.graph().nodes.len() as u64;
        assert!(p.graph_rounds <= worst_case_rounds(0, n, k));
        assert_eq!(p.vm_rounds, worst_case_rounds(0, 1 << depth, k), "VM rounds with k = {k}");
        eprintln!(
            "\nk = {k}: {} graph rounds (worst case for {n} nodes: {}), {} VM rounds",
            p.graph_rounds,
            worst_case_rounds(0, n, k),
            p.vm_rounds
        );
        eprintln!("| move | calls | calldata B (max) | exec gas mean | exec gas max | tx gas mean | tx gas max | tx gas sum |");
        eprintln!("|---|---:|---:|---:|---:|---:|---:|---:|");
        let mut total = 0u64;
        for kind in MOVES {
            let Some(g) = d.gas.get(kind) else { continue };
            let sum: u64 = g.iter().map(|x| x.transaction).sum();
            if kind != "postClaim" {
                total += sum;
            }
            let exec: Vec<u64> = g.iter().map(|x| x.execution).collect();
            eprintln!(
                "| {kind} | {} | {} | {} | {} | {} | {} | {sum} |",
                g.len(),
                g.iter().map(|x| x.calldata_bytes).max().unwrap(),
                exec.iter().sum::<u64>() / g.len() as u64,
                exec.iter().max().unwrap(),
                sum / g.len() as u64,
                g.iter().map(|x| x.transaction).max().unwrap(),
            );
        }
        eprintln!("whole dispute (challenge .. resolveStep), transaction gas: {total}");
    }
}
