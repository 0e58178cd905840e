//! One side of one game, played from one's own run until the game ends (`opml chain play`
//! and every game task of `opml watch`).
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
//! The run (`Run`: honest, or deliberately false under `--dishonest`) is the player's
//! belief. VM runs, state hashing and witnesses run on the shared [`Workers`], so that a
//! slow node never holds up the moves of other games in the same process.
//!
//! A move that reverts is an error, unless the game moved on meanwhile (the other side or
//! a third party acted first) or the revert is a clock race.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{keccak256, Address, B256, U256};
use alloy_sol_types::{SolCall, SolEvent};
use anyhow::{anyhow, bail, Context, Result};
use clap::ValueEnum;
use opml_cli::game::abi::{phase_name, side_name, to_b256, IOptimisticML, Revert};
use opml_cli::game::fault::Run;
use opml_cli::game::strategy::{defend, pick};
use opml_cli::game::{GameError, GraphView, HandoverData, View, VmView};
use opml_dnn::bundle::hex32;
use opml_dnn::commit::NodeImage;
use opml_merkle::Hash;
use serde_json::json;
use IOptimisticML::{GameView, Phase, Side};

use super::client::{reverted_with, Client};
use super::report::Reporter;
use super::workers::Workers;

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

/// How a game ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub winner: Side,
    pub reason: IOptimisticML::EndReason,
    /// Moves this process sent (including timeout / abandon).
    pub sent: u32,
    /// Gas used by the moves this process sent.
    pub gas: u64,
}

/// A graph view as a [`View`] without a mutable borrow of the shared run (graph states are
/// plain look-ups).
struct States<'a>(&'a GraphView);

impl View for States<'_> {
    fn hash_at(&mut self, point: u64) -> Result<Hash, GameError> {
        let last = self.0.node_count() as u64;
        self.0.state(usize::try_from(point).unwrap_or(usize::MAX)).map_err(|_| GameError::State { index: point, last })
    }
}

/// How long the pending round's `StatesPosted` event may stay out of `eth_getLogs` after
/// `gameOf` shows the round. A node may serve a block's state before its logs: anvil 1.7
/// commits a mined block's state before it publishes the block (in a stress run, 37 of
/// 6,003 reads saw a storage write whose log was not yet returned). Within this time the
/// challenger waits and polls again; after it, the missing event is an error.
const LOG_LAG: Duration = Duration::from_secs(30);

/// Since when the event of a pending round (its hash) has been looked for in vain.
#[derive(Debug, Default)]
struct Unseen(Option<(B256, Instant)>);

impl Unseen {
    /// The event of the round with pending hash `hash` was not found at `now`: whether to
    /// keep waiting for it (false once it has been missing for [`LOG_LAG`]).
    fn keep_waiting(&mut self, hash: B256, now: Instant) -> bool {
        let since = match self.0 {
            Some((h, t)) if h == hash => t,
            _ => {
                self.0 = Some((hash, now));
                now
            }
        };
        now.saturating_duration_since(since) < LOG_LAG
    }

    /// The event was found.
    fn clear(&mut self) {
        self.0 = None;
    }
}

/// What one poll did.
enum Acted {
    /// A transaction was mined.
    Sent,
    /// Nothing to do now.
    Wait,
}

/// One player: its run, its VM view of the isolated node, the game's parameters.
struct Player<'a> {
    c: &'a Client,
    game: Address,
    id: U256,
    from_block: u64,
    role: Role,
    images: Arc<Vec<NodeImage>>,
    run: Arc<Run>,
    k: u64,
    vm: Option<(u32, VmView)>,
    workers: Workers,
    report: Reporter,
    sent: u32,
    gas: u64,
    /// Whether the submitter said why it does not resolve the leaf.
    told_leaf: bool,
    /// The pending round whose `StatesPosted` event the challenger has not found yet.
    unseen: Unseen,
}

impl Player<'_> {
    /// Run `f` on this player's VM view of `node` (built on first use, on a worker).
    async fn with_vm<T: Send + 'static>(
        &mut self,
        node: u32,
        f: impl FnOnce(&mut VmView) -> Result<T, GameError> + Send + 'static,
    ) -> Result<T> {
        let cached = self.vm.take().filter(|(n, _)| *n == node).map(|(_, v)| v);
        if cached.is_none() {
            self.report.event(
                "vm_run",
                json!({ "game": self.id.to::<u64>(), "node": node }),
                format!("game {}: running node {node} in the VM", self.id),
            );
        }
        let run = self.run.clone();
        let (view, out) = self
            .workers
            .run(move || -> Result<(VmView, Result<T, GameError>), GameError> {
                let mut v = match cached {
                    Some(v) => v,
                    None => run.vm_view(node as usize)?,
                };
                let out = f(&mut v);
                Ok((v, out))
            })
            .await?
            .with_context(|| format!("running node {node} in the VM"))?;
        self.vm = Some((node, view));
        Ok(out?)
    }

    /// The states of the pending round, from its `StatesPosted` event; `None` while the
    /// event is not visible yet (see [`LOG_LAG`]).
    async fn posted_states(&mut self, g: &GameView) -> Result<Option<Vec<B256>>> {
        let logs = self
            .c
            .logs(self.game, vec![IOptimisticML::StatesPosted::SIGNATURE_HASH], Some(self.id), self.from_block)
            .await?;
        for log in logs.iter().rev() {
            let e = IOptimisticML::StatesPosted::decode_log_data(log.data())
                .map_err(|e| anyhow!("undecodable StatesPosted log in tx {:?}: {e}", log.transaction_hash))?;
            let packed: Vec<u8> = e.states.iter().flat_map(|s| s.0).collect();
            if (e.lo, e.hi) == (g.lo, g.hi) && keccak256(&packed) == g.pendingHash {
                self.unseen.clear();
                return Ok(Some(e.states));
            }
        }
        if self.unseen.keep_waiting(g.pendingHash, Instant::now()) {
            return Ok(None);
        }
        bail!(
            "game {}: no StatesPosted event for [{}, {}] matches the pending hash {} (looked for {} s from block {})",
            self.id,
            g.lo,
            g.hi,
            g.pendingHash,
            LOG_LAG.as_secs(),
            self.from_block
        )
    }

    async fn send<C: SolCall>(&mut self, call: &C, what: &str) -> Result<()> {
        let r = self.c.send_call(self.game, call, U256::ZERO, what).await?;
        self.sent += 1;
        self.gas += r.gas_used;
        self.report.event(
            "move",
            json!({
                "game": self.id.to::<u64>(),
                "role": side_name(self.role.side()),
                "move": what,
                "tx": r.transaction_hash.to_string(),
                "gas": r.gas_used,
            }),
            format!("game {}: {what}: tx {} (gas {})", self.id, r.transaction_hash, r.gas_used),
        );
        Ok(())
    }

    fn warn(&self, msg: String) {
        self.report.event("warning", json!({ "game": self.id.to::<u64>(), "message": msg }), format!("warning: {msg}"));
    }

    /// This side's move in state `g` (its turn).
    async fn my_move(&mut self, g: &GameView) -> Result<Acted> {
        let (id, lo, hi, k) = (self.id, g.lo, g.hi, self.k);
        match (g.phase, g.pending, self.role) {
            (Phase::Open, _, Role::Submitter) => {
                let (sn, sibs) = self.run.graph().open()?;
                let call =
                    IOptimisticML::openCall { gameId: id, finalGraphState: sn.into(), outputSiblings: to_b256(&sibs) };
                self.send(&call, &format!("open (S_n {})", hex32(&sn))).await?;
            }
            (Phase::Graph, false, Role::Submitter) => {
                let states = defend(&mut States(self.run.graph()), lo, hi, k)?;
                let call = IOptimisticML::postStatesCall { gameId: id, states: to_b256(&states) };
                self.send(&call, &format!("postStates graph [{lo}, {hi}] ({} states)", states.len())).await?;
            }
            (Phase::Graph, true, Role::Challenger) => {
                if self.run.graph().state(lo as usize)? != g.hashLo.0 {
                    self.warn(format!("my S_{lo} differs from the agreed hashLo {}", g.hashLo));
                }
                let Some(states) = self.posted_states(g).await? else { return Ok(Acted::Wait) };
                let mine: Vec<[u8; 32]> = states.iter().map(|s| s.0).collect();
                let i = pick(&mut States(self.run.graph()), lo, hi, k, &mine)?;
                let call = IOptimisticML::pickCall { gameId: id, index: U256::from(i), states };
                self.send(&call, &format!("pick graph [{lo}, {hi}] piece {i}")).await?;
            }
            (Phase::Handover, _, Role::Submitter) => {
                let node = u32::try_from(lo).map_err(|_| anyhow!("handover node {lo} out of range"))?;
                let (run, images, depth) = (self.run.clone(), self.images.clone(), self.run.depth());
                let d = self
                    .with_vm(node, move |vm| {
                        if !vm.exited_ok() {
                            return Err(GameError::Invalid(format!(
                                "node {node}'s VM run did not exit with code 0 within 2^{depth} steps: no handover \
                                 is possible"
                            )));
                        }
                        HandoverData::build(run.graph(), &images, node as usize, vm)
                    })
                    .await?;
                let call = IOptimisticML::handoverCall { gameId: id, p: (&d).into() };
                self.send(&call, &format!("handover node {node}")).await?;
            }
            (Phase::Steps, false, Role::Submitter) => {
                let states = self.with_vm(g.node, move |vm| defend(vm, lo, hi, k)).await?;
                let call = IOptimisticML::postStatesCall { gameId: id, states: to_b256(&states) };
                self.send(&call, &format!("postStates node {} steps [{lo}, {hi}]", g.node)).await?;
            }
            (Phase::Steps, true, Role::Challenger) => {
                let node = g.node;
                let Some(states) = self.posted_states(g).await? else { return Ok(Acted::Wait) };
                let mine: Vec<[u8; 32]> = states.iter().map(|s| s.0).collect();
                let (mine_lo, i) = self
                    .with_vm(node, move |vm| {
                        let at_lo = vm.hash_at(lo)?;
                        Ok((at_lo, pick(vm, lo, hi, k, &mine)?))
                    })
                    .await?;
                if mine_lo != g.hashLo.0 {
                    self.warn(format!("my VM state at step {lo} of node {node} differs from hashLo {}", g.hashLo));
                }
                let call = IOptimisticML::pickCall { gameId: id, index: U256::from(i), states };
                self.send(&call, &format!("pick node {node} steps [{lo}, {hi}] piece {i}")).await?;
            }
            (Phase::Leaf, _, Role::Challenger) => {
                let node = g.node;
                let (at_hi, w) = self.with_vm(node, move |vm| Ok((vm.hash_at(hi)?, vm.step_witness(lo)))).await?;
                if at_hi == g.hashHi.0 {
                    // The submitter's post-state is right: resolving would hand it the win.
                    return Ok(Acted::Wait);
                }
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
            // The other side's turn, or no move left.
            (Phase::Open | Phase::Handover, _, Role::Challenger)
            | (Phase::Graph | Phase::Steps, false, Role::Challenger)
            | (Phase::Graph | Phase::Steps, true, Role::Submitter)
            | (Phase::Leaf, _, Role::Submitter)
            | (Phase::Ended | Phase::__Invalid, _, _) => return Ok(Acted::Wait),
        }
        Ok(Acted::Sent)
    }

    /// The submitter at the leaf (the challenger's turn; anyone may resolve): resolve when
    /// its own witness proves the post-state `hashHi`.
    async fn submitter_resolves(&mut self, g: &GameView) -> Result<Acted> {
        let (lo, node) = (g.lo, g.node);
        let w = self.with_vm(node, move |vm| Ok(vm.step_witness(lo))).await?;
        if keccak256(&w.state[..]) != g.hashLo || B256::from(w.post_state_hash) != g.hashHi {
            if !self.told_leaf {
                self.report.event(
                    "waiting",
                    json!({ "game": self.id.to::<u64>(), "node": node, "step": lo }),
                    format!(
                        "game {}: my step {lo} of node {node} does not prove hashHi: waiting for the challenger",
                        self.id
                    ),
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

/// The phase event of a game state.
fn progress(report: &Reporter, id: U256, g: &GameView, round: u32) {
    let to_move = if g.phase == Phase::Ended { "nobody" } else { side_name(g.turn) };
    let round_text =
        if matches!(g.phase, Phase::Graph | Phase::Steps) { format!(" round {round}") } else { String::new() };
    let interval = match g.phase {
        Phase::Open | Phase::Ended => String::new(),
        Phase::Steps | Phase::Leaf => format!(" node {} steps [{}, {}]", g.node, g.lo, g.hi),
        Phase::Graph | Phase::Handover | Phase::__Invalid => format!(" [{}, {}]", g.lo, g.hi),
    };
    report.event(
        "phase",
        json!({
            "game": id.to::<u64>(),
            "phase": phase_name(g.phase),
            "lo": g.lo,
            "hi": g.hi,
            "node": g.node,
            "round": round,
            "to_move": to_move,
            "submitter_clock": g.submitterClock,
            "challenger_clock": g.challengerClock,
        }),
        format!(
            "game {id}: phase {}{interval}{round_text}, {to_move} to move (clocks: submitter {} s, challenger {} s)",
            phase_name(g.phase),
            g.submitterClock,
            g.challengerClock
        ),
    );
}

/// Settings of one game's play.
#[derive(Debug, Clone)]
pub struct PlayOptions {
    pub role: Role,
    pub poll: Duration,
}

/// Check that `run` is the run of game `id`'s claim for `role`: the same input state S_0,
/// and (for the submitter) the claimed output. A challenger whose run agrees with the
/// claim is warned (it disputes a true claim).
async fn check_run(c: &Client, game: Address, id: U256, role: Role, run: &Run, report: &Reporter) -> Result<()> {
    let me = c.from()?;
    let first = c.view(game, &IOptimisticML::gameOfCall { gameId: id }).await?;
    let party = if role == Role::Submitter { first.submitter } else { first.challenger };
    if party != me {
        bail!("game {id}: the {} is {party}, not this key's account {me}", side_name(role.side()));
    }
    let claim = c.view(game, &IOptimisticML::claimOfCall { claimId: first.claimId }).await?;
    let (s0, out) = (run.graph().state(0)?, run.graph().output_commitment());
    if claim.inputState.0 != s0 {
        bail!(
            "claim {}: its input state S_0 is {}, this run's is {}: not the claim's input (check --input and --index)",
            first.claimId,
            claim.inputState,
            hex32(&s0)
        );
    }
    match (role, claim.outputCommitment.0 == out) {
        (Role::Submitter, false) => bail!(
            "claim {}: its output commitment is {}, this run's is {}: not the claim's model or input{}",
            first.claimId,
            claim.outputCommitment,
            hex32(&out),
            if run.fault().is_some() { "" } else { " (a deliberately false claim needs the same --dishonest SPEC)" }
        ),
        (Role::Challenger, true) => report.event(
            "warning",
            json!({ "game": id.to::<u64>(), "claim": first.claimId.to::<u64>(), "message": "disputes a true claim" }),
            format!(
                "game {id}: warning: claim {}'s output is this run's output: this challenge disputes a true claim",
                first.claimId
            ),
        ),
        _ => {}
    }
    Ok(())
}

/// Play `o.role` in game `id` until it ends.
#[allow(clippy::too_many_arguments)]
pub async fn play(
    c: &Client,
    game: Address,
    from_block: u64,
    id: U256,
    images: Arc<Vec<NodeImage>>,
    run: Arc<Run>,
    o: &PlayOptions,
    workers: &Workers,
    report: &Reporter,
) -> Result<Outcome> {
    let cfg = c.view(game, &IOptimisticML::configCall {}).await?;
    if u64::from(run.depth()) != cfg.vmDepth {
        bail!("this run's VM depth is {}, the game's vmDepth is {}", run.depth(), cfg.vmDepth);
    }
    check_run(c, game, id, o.role, &run, report).await?;
    let mut p = Player {
        c,
        game,
        id,
        from_block,
        role: o.role,
        images,
        run,
        k: cfg.arity,
        vm: None,
        workers: workers.clone(),
        report: report.clone(),
        sent: 0,
        gas: 0,
        told_leaf: false,
        unseen: Unseen::default(),
    };
    let mut last: Option<(u8, u64, u64, bool)> = None;
    let mut round = 0u32;
    let mut told_waiting = false;
    let mut last_warning = String::new();
    loop {
        let g = c.view(game, &IOptimisticML::gameOfCall { gameId: id }).await?;
        let key = (g.phase as u8, g.lo, g.hi, g.pending);
        if last != Some(key) {
            // A round of a level: one interval of the graph or the steps phase.
            let level = |k: Option<(u8, u64, u64, bool)>| k.map(|k| (k.0, k.1, k.2));
            if matches!(g.phase, Phase::Graph | Phase::Steps) && level(last) != level(Some(key)) {
                round = if last.map(|l| l.0) == Some(g.phase as u8) { round + 1 } else { 1 };
            }
            progress(report, id, &g, round);
            last = Some(key);
            told_waiting = false;
        }
        if g.phase == Phase::Ended {
            return Ok(Outcome { winner: g.winner, reason: g.endReason, sent: p.sent, gas: p.gas });
        }
        let claim = c.view(game, &IOptimisticML::claimOfCall { claimId: g.claimId }).await?;
        let attempt = if claim.voided {
            p.report.event(
                "abandon",
                json!({ "game": id.to::<u64>(), "claim": g.claimId.to::<u64>() }),
                format!("game {id}: claim {} was voided by another game: abandoning this one", g.claimId),
            );
            p.send(&IOptimisticML::abandonCall { gameId: id }, "abandon").await.map(|_| Acted::Sent)
        } else {
            let now = c.now().await?;
            let remaining = if g.turn == Side::Submitter { g.submitterClock } else { g.challengerClock };
            if now > g.lastMove.saturating_add(remaining) {
                p.report.event(
                    "clock_out",
                    json!({ "game": id.to::<u64>(), "side": side_name(g.turn) }),
                    format!("game {id}: the {}'s clock has run out: calling timeout", side_name(g.turn)),
                );
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
                    p.report.event(
                        "waiting",
                        json!({ "game": id.to::<u64>(), "step": g.hi }),
                        format!(
                            "game {id}: the submitter's post-state at step {} is right: not resolving (the game ends \
                             on the challenger's clock)",
                            g.hi
                        ),
                    );
                }
                told_waiting = true;
            }
            Err(e) => {
                // Fatal unless the game moved on while the move was being made.
                let now = c.view(game, &IOptimisticML::gameOfCall { gameId: id }).await?;
                let moved = (now.phase as u8, now.lo, now.hi, now.pending) != key;
                let text = format!("{e:#}");
                let clock_race = reverted_with(&e, Revert::is_clock_race);
                if !(moved || clock_race) {
                    return Err(e.context(format!("game {id}, phase {}", phase_name(g.phase))));
                }
                if text != last_warning {
                    p.warn(text.clone());
                    last_warning = text;
                }
            }
        }
        tokio::time::sleep(o.poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_event_is_awaited_for_log_lag_per_round() {
        let (a, b) = (B256::repeat_byte(0xaa), B256::repeat_byte(0xbb));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut u = Unseen::default();
        assert!(u.keep_waiting(a, at(0)));
        assert!(u.keep_waiting(a, at(29)));
        assert!(!u.keep_waiting(a, at(30)), "30 s after the first miss the event is missing for good");
        // Another round starts its own wait.
        assert!(u.keep_waiting(b, at(31)));
        assert!(u.keep_waiting(b, at(60)));
        assert!(!u.keep_waiting(b, at(61)));
        // A found event ends the wait: the same round missed later waits afresh.
        u.clear();
        assert!(u.keep_waiting(b, at(100)));
        assert!(!u.keep_waiting(b, at(130)));
    }
}
