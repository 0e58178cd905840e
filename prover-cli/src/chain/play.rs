//! `opml chain play`: one side of one game, played from one's own run until the game ends.
//!
//! Each poll reads `gameOf`. When the side to move has used up its clock (by the latest
//! block's time), `timeout` is sent. When it is this side's turn, its move is computed with
//! the game client (`opml_cli::game`) and sent:
//!
//! * submitter: `open`, `postStates` (graph states, then the isolated node's VM state
//!   hashes), `handover`; at the leaf it resolves the step itself when its own witness
//!   proves its post-state (anyone may resolve);
//! * challenger: `pick` among the states of the round's `StatesPosted` event (checked
//!   against the stored hash), and `resolveStep` at the leaf when its own VM run shows that
//!   the submitter's post-state `hashHi` is wrong (otherwise it lets its clock run out).
//!
//! A move that reverts is an error, unless the game moved on meanwhile (the other side or
//! a third party acted first).

use std::time::Duration;

use alloy::primitives::{keccak256, Address, B256, U256};
use alloy_sol_types::SolEvent;
use anyhow::{anyhow, bail, Context, Result};
use clap::ValueEnum;
use opml_cli::game::abi::{to_b256, IOptimisticML};
use opml_cli::game::strategy::{defend, pick};
use opml_cli::game::{GraphView, HandoverData, View, VmView};
use opml_dnn::bundle::{hex32, Bundle};
use IOptimisticML::{GameView, Phase, Side};

use super::client::Client;
use super::deployment::Deployment;

/// Which side this process plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// The claim's submitter: defends its states.
    Submitter,
    /// The game's challenger: picks the first disputed piece, resolves the leaf.
    Challenger,
}

impl Role {
    /// The contract's side of this role.
    pub fn side(self) -> Side {
        match self {
            Role::Submitter => Side::Submitter,
            Role::Challenger => Side::Challenger,
        }
    }
}

/// Name of a side.
pub fn side_name(s: Side) -> &'static str {
    match s {
        Side::Submitter => "submitter",
        _ => "challenger",
    }
}

/// Name of a game-end reason.
pub fn reason_name(r: u8) -> &'static str {
    match r {
        0 => "timeout",
        1 => "step",
        2 => "abandoned",
        _ => "unknown",
    }
}

/// How a game ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub winner: Side,
    pub reason: u8,
    /// Moves this process sent (including timeout / abandon).
    pub sent: u32,
}

/// One player: its run, its VM view of the isolated node, the game's parameters.
struct Player<'a> {
    c: &'a Client,
    game: Address,
    id: U256,
    from_block: u64,
    role: Role,
    bundle: Bundle,
    graph: GraphView,
    k: u64,
    depth: u32,
    vm: Option<(u32, VmView)>,
    sent: u32,
    /// Whether the submitter said why it does not resolve the leaf.
    told_leaf: bool,
}

/// What one poll did.
enum Acted {
    /// A transaction was mined.
    Sent,
    /// Nothing to do now.
    Wait,
}

impl Player<'_> {
    fn vm(&mut self, node: u32) -> Result<&mut VmView> {
        if self.vm.as_ref().map(|(n, _)| *n) != Some(node) {
            eprintln!("[game {}] running node {node} in the VM (depth {})", self.id, self.depth);
            let v = VmView::of_node(&self.graph, node as usize, self.depth)
                .with_context(|| format!("running node {node} in the VM"))?;
            self.vm = Some((node, v));
        }
        Ok(&mut self.vm.as_mut().expect("just set").1)
    }

    /// The states of the pending round, from its `StatesPosted` event.
    async fn posted_states(&self, g: &GameView) -> Result<Vec<B256>> {
        let logs = self
            .c
            .logs(self.game, vec![IOptimisticML::StatesPosted::SIGNATURE_HASH], Some(self.id), self.from_block)
            .await?;
        for log in logs.iter().rev() {
            let e = IOptimisticML::StatesPosted::decode_log_data(log.data())
                .map_err(|e| anyhow!("undecodable StatesPosted log in tx {:?}: {e}", log.transaction_hash))?;
            let packed: Vec<u8> = e.states.iter().flat_map(|s| s.0).collect();
            if (e.lo, e.hi) == (g.lo, g.hi) && keccak256(&packed) == g.pendingHash {
                return Ok(e.states);
            }
        }
        bail!(
            "game {}: no StatesPosted event for [{}, {}] matches the pending hash {}",
            self.id,
            g.lo,
            g.hi,
            g.pendingHash
        )
    }

    async fn send<C: alloy_sol_types::SolCall>(&mut self, call: &C, what: &str) -> Result<()> {
        let r = self.c.send_call(self.game, call, U256::ZERO, what).await?;
        self.sent += 1;
        eprintln!("[game {}] {what}: tx {} (gas {})", self.id, r.transaction_hash, r.gas_used);
        Ok(())
    }

    /// This side's move in state `g` (its turn).
    async fn my_move(&mut self, g: &GameView) -> Result<Acted> {
        let (id, lo, hi, k) = (self.id, g.lo, g.hi, self.k);
        match (g.phase, g.pending, self.role) {
            (Phase::Open, _, Role::Submitter) => {
                let (sn, sibs) = self.graph.open()?;
                let call =
                    IOptimisticML::openCall { gameId: id, finalGraphState: sn.into(), outputSiblings: to_b256(&sibs) };
                self.send(&call, &format!("open (S_n {})", hex32(&sn))).await?;
            }
            (Phase::Graph, false, Role::Submitter) => {
                let states = defend(&mut self.graph, lo, hi, k)?;
                let call = IOptimisticML::postStatesCall { gameId: id, states: to_b256(&states) };
                self.send(&call, &format!("postStates graph [{lo}, {hi}] ({} states)", states.len())).await?;
            }
            (Phase::Graph, true, Role::Challenger) => {
                if self.graph.hash_at(lo)? != g.hashLo.0 {
                    eprintln!("[game {id}] warning: my S_{lo} differs from the agreed hashLo {}", g.hashLo);
                }
                let states = self.posted_states(g).await?;
                let mine: Vec<[u8; 32]> = states.iter().map(|s| s.0).collect();
                let i = pick(&mut self.graph, lo, hi, k, &mine)?;
                let call = IOptimisticML::pickCall { gameId: id, index: U256::from(i), states };
                self.send(&call, &format!("pick graph [{lo}, {hi}] piece {i}")).await?;
            }
            (Phase::Handover, _, Role::Submitter) => {
                let node = u32::try_from(lo).map_err(|_| anyhow!("handover node {lo} out of range"))?;
                let depth = self.depth;
                let vm = self.vm(node)?;
                if !vm.exited_ok() {
                    bail!(
                        "node {node}'s VM run did not exit with code 0 within 2^{depth} steps: no handover is possible"
                    );
                }
                let vm = &self.vm.as_ref().expect("built above").1;
                let d = HandoverData::build(&self.graph, self.bundle.node_images(), node as usize, vm)?;
                let call = IOptimisticML::handoverCall { gameId: id, p: (&d).into() };
                self.send(&call, &format!("handover node {node}")).await?;
            }
            (Phase::Steps, false, Role::Submitter) => {
                let vm = self.vm(g.node)?;
                let states = defend(vm, lo, hi, k)?;
                let call = IOptimisticML::postStatesCall { gameId: id, states: to_b256(&states) };
                self.send(&call, &format!("postStates node {} steps [{lo}, {hi}]", g.node)).await?;
            }
            (Phase::Steps, true, Role::Challenger) => {
                let node = g.node;
                let vm = self.vm(node)?;
                if vm.hash_at(lo)? != g.hashLo.0 {
                    eprintln!(
                        "[game {id}] warning: my VM state at step {lo} of node {node} differs from hashLo {}",
                        g.hashLo
                    );
                }
                let states = self.posted_states(g).await?;
                let mine: Vec<[u8; 32]> = states.iter().map(|s| s.0).collect();
                let vm = self.vm(node)?;
                let i = pick(vm, lo, hi, k, &mine)?;
                let call = IOptimisticML::pickCall { gameId: id, index: U256::from(i), states };
                self.send(&call, &format!("pick node {node} steps [{lo}, {hi}] piece {i}")).await?;
            }
            (Phase::Leaf, _, Role::Challenger) => {
                let node = g.node;
                let vm = self.vm(node)?;
                if vm.hash_at(hi)? == g.hashHi.0 {
                    // The submitter's post-state is right: resolving would hand it the win.
                    return Ok(Acted::Wait);
                }
                let w = vm.step_witness(lo);
                if keccak256(&w.state[..]) != g.hashLo {
                    bail!(
                        "leaf [{lo}, {hi}] of node {node}: my state at step {lo} does not hash to the agreed hashLo {}",
                        g.hashLo
                    );
                }
                let call = IOptimisticML::resolveStepCall {
                    gameId: id,
                    state: w.state.to_vec().into(),
                    proof: w.proof.into(),
                };
                self.send(&call, &format!("resolveStep node {node} step {lo}")).await?;
            }
            _ => return Ok(Acted::Wait),
        }
        Ok(Acted::Sent)
    }

    /// The submitter at the leaf (the challenger's turn; anyone may resolve): resolve when
    /// its own witness proves the post-state `hashHi`.
    async fn submitter_resolves(&mut self, g: &GameView) -> Result<Acted> {
        let (lo, node) = (g.lo, g.node);
        let vm = self.vm(node)?;
        let w = vm.step_witness(lo);
        if keccak256(&w.state[..]) != g.hashLo || B256::from(w.post_state_hash) != g.hashHi {
            if !self.told_leaf {
                eprintln!(
                    "[game {}] my step {lo} of node {node} does not prove hashHi: waiting for the challenger",
                    self.id
                );
                self.told_leaf = true;
            }
            return Ok(Acted::Wait);
        }
        let call =
            IOptimisticML::resolveStepCall { gameId: self.id, state: w.state.to_vec().into(), proof: w.proof.into() };
        self.send(&call, &format!("resolveStep node {node} step {lo}")).await?;
        Ok(Acted::Sent)
    }
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Open => "open",
        Phase::Graph => "graph",
        Phase::Handover => "handover",
        Phase::Steps => "steps",
        Phase::Leaf => "leaf",
        Phase::Ended => "ended",
        _ => "invalid",
    }
}

/// A line of progress for a game state.
fn progress(id: U256, g: &GameView, round: u32) -> String {
    let to_move = if g.phase == Phase::Ended { "nobody".to_string() } else { side_name(g.turn).to_string() };
    let round = if matches!(g.phase, Phase::Graph | Phase::Steps) { format!(" round {round}") } else { String::new() };
    let interval = match g.phase {
        Phase::Open | Phase::Ended => String::new(),
        Phase::Steps | Phase::Leaf => format!(" node {} steps [{}, {}]", g.node, g.lo, g.hi),
        _ => format!(" graph [{}, {}]", g.lo, g.hi),
    };
    format!(
        "[game {id}] phase {}{interval}{round}, {to_move} to move (clocks: submitter {} s, challenger {} s)",
        phase_name(g.phase),
        g.submitterClock,
        g.challengerClock
    )
}

/// Settings of one `play`.
#[derive(Debug)]
pub struct PlayOptions {
    pub role: Role,
    pub poll: Duration,
}

/// Play `role` in game `id` until it ends.
pub async fn play(
    c: &Client,
    d: &Deployment,
    id: U256,
    bundle: Bundle,
    graph: GraphView,
    o: &PlayOptions,
) -> Result<Outcome> {
    let cfg = c.view(d.game, &IOptimisticML::configCall {}).await?;
    let depth = u32::try_from(cfg.vmDepth).map_err(|_| anyhow!("vmDepth {} out of range", cfg.vmDepth))?;
    let mut p = Player {
        c,
        game: d.game,
        id,
        from_block: d.block,
        role: o.role,
        bundle,
        graph,
        k: cfg.arity,
        depth,
        vm: None,
        sent: 0,
        told_leaf: false,
    };
    let me = c.from()?;
    let first = c.view(d.game, &IOptimisticML::gameOfCall { gameId: id }).await?;
    let party = if o.role == Role::Submitter { first.submitter } else { first.challenger };
    if party != me {
        bail!("game {id}: the {} is {party}, not this key's account {me}", side_name(o.role.side()));
    }
    // The run must be the claim's: same input state S_0; the output tells the sides apart.
    let claim = c.view(d.game, &IOptimisticML::claimOfCall { claimId: first.claimId }).await?;
    let (s0, out) = (p.graph.state(0)?, p.graph.output_commitment());
    if claim.inputState.0 != s0 {
        bail!(
            "claim {}: its input state S_0 is {}, this run's is {}: not the claim's input (check --input and --index)",
            first.claimId,
            claim.inputState,
            hex32(&s0)
        );
    }
    match (o.role, claim.outputCommitment.0 == out) {
        (Role::Submitter, false) => bail!(
            "claim {}: its output commitment is {}, this run's is {}: not the claim's model or input",
            first.claimId,
            claim.outputCommitment,
            hex32(&out)
        ),
        (Role::Challenger, true) => eprintln!(
            "[game {id}] warning: claim {}'s output is this run's output: this challenge disputes a true claim",
            first.claimId
        ),
        _ => {}
    }
    let mut last: Option<(u8, u64, u64, bool)> = None;
    let mut round = 0u32;
    let mut told_waiting = false;
    let mut last_warning = String::new();
    loop {
        let g = c.view(d.game, &IOptimisticML::gameOfCall { gameId: id }).await?;
        let key = (g.phase as u8, g.lo, g.hi, g.pending);
        if last != Some(key) {
            // A round of a level: one interval of the graph or the steps phase.
            let level = |k: Option<(u8, u64, u64, bool)>| k.map(|k| (k.0, k.1, k.2));
            if matches!(g.phase, Phase::Graph | Phase::Steps) && level(last) != level(Some(key)) {
                round = if last.map(|l| l.0) == Some(g.phase as u8) { round + 1 } else { 1 };
            }
            eprintln!("{}", progress(id, &g, round));
            last = Some(key);
            told_waiting = false;
        }
        if g.phase == Phase::Ended {
            return Ok(Outcome { winner: g.winner, reason: g.endReason, sent: p.sent });
        }
        let claim = c.view(d.game, &IOptimisticML::claimOfCall { claimId: g.claimId }).await?;
        let attempt = if claim.voided {
            eprintln!("[game {id}] claim {} was voided by another game: abandoning this one", g.claimId);
            p.send(&IOptimisticML::abandonCall { gameId: id }, "abandon").await.map(|_| Acted::Sent)
        } else {
            let now = c.now().await?;
            let remaining = if g.turn == Side::Submitter { g.submitterClock } else { g.challengerClock };
            if now > g.lastMove.saturating_add(remaining) {
                eprintln!("[game {id}] the {}'s clock has run out: calling timeout", side_name(g.turn));
                p.send(&IOptimisticML::timeoutCall { gameId: id }, "timeout").await.map(|_| Acted::Sent)
            } else if g.turn == o.role.side() {
                p.my_move(&g).await
            } else if o.role == Role::Submitter && g.phase == Phase::Leaf {
                p.submitter_resolves(&g).await
            } else {
                Ok(Acted::Wait)
            }
        };
        match attempt {
            Ok(Acted::Sent) => continue,
            Ok(Acted::Wait) => {
                if !told_waiting && g.turn == o.role.side() && g.phase == Phase::Leaf {
                    eprintln!(
                        "[game {id}] the submitter's post-state at step {} is right: not resolving (the game ends on \
                         the challenger's clock)",
                        g.hi
                    );
                }
                told_waiting = true;
            }
            Err(e) => {
                // Fatal unless the game moved on while the move was being made.
                let now = c.view(d.game, &IOptimisticML::gameOfCall { gameId: id }).await?;
                let moved = (now.phase as u8, now.lo, now.hi, now.pending) != key;
                if !moved {
                    let clock_out =
                        format!("{e:#}").contains("ClockRunOut") || format!("{e:#}").contains("ClockNotRunOut");
                    if !clock_out {
                        return Err(e.context(format!("game {id}, {}", progress(id, &g, round))));
                    }
                }
                let w = format!("{e:#}");
                if w != last_warning {
                    eprintln!("[game {id}] warning: {w}");
                    last_warning = w;
                }
            }
        }
        tokio::time::sleep(o.poll).await;
    }
}
