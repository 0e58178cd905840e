//! The watcher's loop: one pass every poll interval rebuilds what it needs from the chain
//! (new `ClaimPosted` / `Challenged` events since the last block read, claim and game
//! states, credits) and acts:
//!
//! * challenger: judge every new claim of a known model by re-running it from the input
//!   bytes the chain holds; challenge the ones it disagrees with (never one it agrees
//!   with, unless `--dishonest challenge-all`) and play each game to its end;
//! * submitter: defend every game opened against this account's claims, finalize its
//!   claims once their window closes, withdraw its credits.
//!
//! Each game runs in its own task; CPU work (model runs, VM runs) goes through the shared
//! bounded [`Workers`], so a slow node never holds up the moves of other games. A task that
//! fails (an RPC outage, say) is started again on a later pass from the chain's state; a
//! pass that fails is retried with backoff. State that must survive a kill is in the
//! data directory ([`super::datadir`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256};
use alloy_sol_types::SolEvent;
use anyhow::{anyhow, Context, Result};
use opml_cli::game::abi::{reason_name, side_name, IOptimisticML};
use opml_cli::game::fault::{Fault, Run};
use opml_dnn::commit::tensor_commitment;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::claims::{claim_inputs, decode, defended_run, honest_run, ClaimRecord, Followed, GameRecord, Verdict};
use super::datadir::{DataDir, Identity, WatchState};
use super::models::ModelStore;
use crate::chain::client::Client;
use crate::chain::deployment::Deployment;
use crate::chain::event;
use crate::chain::play::{self, Outcome, PlayOptions, Role};
use crate::chain::report::{unix_now, Reporter};
use crate::chain::workers::Workers;

/// Longest wait between retries after a failed pass or game task.
const MAX_BACKOFF: Duration = Duration::from_secs(4);

/// Which roles a watcher plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Roles {
    pub challenger: bool,
    pub submitter: bool,
}

/// A watcher's settings.
#[derive(Clone, Debug)]
pub struct WatchConfig {
    pub roles: Roles,
    /// Deliberate faults (tests and demos): submitter faults it defends false claims
    /// with, `challenge-all` for a challenger that disputes true claims.
    pub faults: Vec<Fault>,
    pub poll: Duration,
    pub max_concurrency: usize,
    pub data_dir: PathBuf,
}

/// One running game task.
struct Task {
    role: Role,
    handle: JoinHandle<Result<Outcome>>,
}

/// A watcher over one deployment for one account.
pub struct Watcher {
    c: Client,
    game: Address,
    from_block: u64,
    me: Address,
    cfg: WatchConfig,
    depth: u32,
    models: Arc<ModelStore>,
    dir: DataDir,
    state: WatchState,
    workers: Workers,
    report: Reporter,
    tasks: HashMap<u64, Task>,
    /// Games whose task failed: not started again before this instant.
    retry_at: HashMap<u64, (Instant, Duration)>,
    /// Honest runs of judged claims, reused by their games (dropped when settled).
    runs: HashMap<u64, Arc<Run>>,
    /// When each claim was first seen (for the challenge latency).
    seen: HashMap<u64, Instant>,
    check_credits: bool,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("game", &self.game)
            .field("me", &self.me)
            .field("roles", &self.cfg.roles)
            .finish()
    }
}

/// A short hex form of a hash for log lines.
fn short(h: &B256) -> String {
    let s = h.to_string();
    format!("{}…{}", &s[..10], &s[s.len() - 4..])
}

impl Watcher {
    /// A watcher of deployment `d` signing with `c`'s key, with its data directory opened
    /// (refused when it belongs to another deployment or account).
    pub async fn new(
        c: Client,
        d: &Deployment,
        cfg: WatchConfig,
        models: ModelStore,
        report: Reporter,
    ) -> Result<Watcher> {
        let me = c.from()?;
        let chain_id = c.chain_id().await?;
        let config = c.view(d.game, &IOptimisticML::configCall {}).await?;
        let depth = u32::try_from(config.vmDepth).map_err(|_| anyhow!("vmDepth {} out of range", config.vmDepth))?;
        let block_hash = c.block_hash(d.block).await?;
        let identity = Identity { chain_id, game: d.game, block: d.block, block_hash, account: me };
        let (dir, state) = DataDir::open(&cfg.data_dir, &identity)?;
        let workers = Workers::new(cfg.max_concurrency);
        Ok(Watcher {
            c,
            game: d.game,
            from_block: d.block,
            me,
            cfg,
            depth,
            models: Arc::new(models),
            dir,
            state,
            workers,
            report,
            tasks: HashMap::new(),
            retry_at: HashMap::new(),
            runs: HashMap::new(),
            seen: HashMap::new(),
            check_credits: true,
        })
    }

    /// Run passes until `stop` turns true (or its sender is dropped); then stop every game
    /// task and save the state.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<()> {
        let roles = match (self.cfg.roles.challenger, self.cfg.roles.submitter) {
            (true, true) => "challenger and submitter",
            (true, false) => "challenger",
            (false, _) => "submitter",
        };
        let models: Vec<String> =
            self.models.list().iter().map(|(id, p)| format!("{} ({})", short(id), p.display())).collect();
        self.report.event(
            "start",
            json!({
                "account": self.me.to_string(),
                "roles": roles,
                "game_contract": self.game.to_string(),
                "rpc": self.c.rpc(),
                "models": self.models.list().iter().map(|(id, p)| json!({"id": id.to_string(), "path": p.display().to_string()})).collect::<Vec<_>>(),
                "next_block": self.state.next_block,
                "faults": self.cfg.faults.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
            }),
            format!(
                "watching OptimisticML {} at {} as {roles} {} from block {}; models: {}",
                self.game,
                self.c.rpc(),
                self.me,
                self.state.next_block,
                if models.is_empty() { "none".to_string() } else { models.join(", ") }
            ),
        );
        // A kill between a game's end and the removal of its cache leaves the folder behind.
        for id in self.dir.cached_games() {
            if self.state.games.get(&id).is_none_or(|g| g.ended) {
                self.dir.drop_game_cache(id)?;
            }
        }
        if self.models.is_empty() {
            self.report.event(
                "warning",
                json!({ "message": "the model store is empty" }),
                "warning: the model store is empty: every claim will be skipped (pass --models DIR)",
            );
        }
        for f in &self.cfg.faults {
            self.report.event(
                "fault_injection",
                json!({ "fault": f.to_string() }),
                format!("FAULT INJECTION (--dishonest {f}): this watcher plays deliberately wrong"),
            );
        }
        let mut backoff = Duration::from_millis(500);
        let mut down_since: Option<Instant> = None;
        loop {
            if *stop.borrow() {
                break;
            }
            match self.pass().await {
                Ok(()) => {
                    if let Some(t) = down_since.take() {
                        let secs = t.elapsed().as_secs_f64();
                        self.report.event(
                            "rpc_ok",
                            json!({ "rpc": self.c.rpc(), "down_seconds": secs }),
                            format!("RPC {} answers again after {secs:.1} s: resuming", self.c.rpc()),
                        );
                    }
                    backoff = Duration::from_millis(500);
                    tokio::select! {
                        _ = tokio::time::sleep(self.cfg.poll) => {}
                        _ = stop.changed() => {}
                    }
                }
                Err(e) => {
                    if down_since.is_none() {
                        down_since = Some(Instant::now());
                    }
                    self.report.event(
                        "pass_error",
                        json!({ "error": format!("{e:#}"), "retry_in_ms": backoff.as_millis() as u64 }),
                        format!("pass failed: {e:#}; retrying in {:.1} s", backoff.as_secs_f64()),
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        for (_, t) in self.tasks.drain() {
            t.handle.abort();
        }
        self.dir.save(&self.state)?;
        self.report.event("stop", json!({}), "stopped");
        Ok(())
    }

    /// One pass.
    async fn pass(&mut self) -> Result<()> {
        self.read_events().await?;
        self.reap().await;
        if self.cfg.roles.challenger {
            self.judge_new_claims().await?;
            self.challenge_disputed().await?;
        }
        self.start_games();
        if self.cfg.roles.submitter {
            self.finalize_mine().await?;
        }
        if self.check_credits {
            self.withdraw().await?;
        }
        Ok(())
    }

    /// New claims and games from the events since the last block read.
    async fn read_events(&mut self) -> Result<()> {
        let latest = self.c.block_number().await?;
        if latest < self.state.next_block {
            return Ok(());
        }
        let sigs = [
            IOptimisticML::ClaimPosted::SIGNATURE_HASH,
            IOptimisticML::Challenged::SIGNATURE_HASH,
            IOptimisticML::GameEnded::SIGNATURE_HASH,
        ];
        let logs = self.c.logs_between(self.game, &sigs, self.state.next_block, latest).await?;
        for log in &logs {
            match decode(log)? {
                Some(Followed::Claim(c)) if !self.state.claims.contains_key(&c.id) => self.new_claim(c),
                Some(Followed::Game(g)) if !self.state.games.contains_key(&g.id) => self.new_game(g),
                // A game that ended before this watcher played it (a catch-up from an
                // older block, a restart on a new data dir): nothing to play. A game this
                // watcher is playing ends through its task.
                Some(Followed::Ended(id)) if !self.tasks.contains_key(&id) => {
                    if let Some(g) = self.state.games.get_mut(&id) {
                        g.ended = true;
                    }
                }
                _ => {}
            }
        }
        self.state.next_block = latest + 1;
        self.dir.save(&self.state)
    }

    fn model_name(&self, id: &B256) -> String {
        match self.models.get(id) {
            Some(m) => format!("{} ({})", short(id), m.path.file_name().unwrap_or_default().to_string_lossy()),
            None => format!("{} (not in the model store)", short(id)),
        }
    }

    fn new_claim(&mut self, c: ClaimRecord) {
        self.seen.insert(c.id, Instant::now());
        self.report.event(
            "claim",
            json!({
                "claim": c.id,
                "block": c.block,
                "model_id": c.model_id.to_string(),
                "submitter": c.submitter.to_string(),
                "output_commitment": c.output_commitment.to_string(),
                "deadline": c.deadline,
                "mine": c.submitter == self.me,
            }),
            format!(
                "claim {}: model {} by {}{}, window until {} (about {} s from now)",
                c.id,
                self.model_name(&c.model_id),
                c.submitter,
                if c.submitter == self.me { " (mine)" } else { "" },
                c.deadline,
                c.deadline.saturating_sub(unix_now() as u64)
            ),
        );
        self.state.claims.insert(c.id, c);
    }

    fn new_game(&mut self, g: GameRecord) {
        let mine = g.challenger == self.me
            || self.state.claims.get(&g.claim).is_some_and(|c| c.submitter == self.me && self.cfg.roles.submitter);
        self.report.event(
            "game",
            json!({ "game": g.id, "claim": g.claim, "challenger": g.challenger.to_string(), "mine": mine }),
            format!(
                "game {} opened on claim {} by {}{}",
                g.id,
                g.claim,
                g.challenger,
                if mine { " (mine)" } else { "" }
            ),
        );
        self.state.games.insert(g.id, g);
    }

    /// Judge every claim not judged yet (not this account's own).
    async fn judge_new_claims(&mut self) -> Result<()> {
        let todo: Vec<u64> = self
            .state
            .claims
            .values()
            .filter(|c| c.verdict.is_none() && c.submitter != self.me && !c.settled)
            .map(|c| c.id)
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        let now = self.c.now().await?;
        // Every claim is re-run at once on the workers: one slow model does not hold up the
        // verdicts (and challenges) of the others.
        let mut runs = tokio::task::JoinSet::new();
        for id in todo {
            let c = self.state.claims[&id].clone();
            if now >= c.deadline {
                // Past its window nothing can be done about it: not worth a run.
                self.settle(id);
                continue;
            }
            let (models, workers) = (self.models.clone(), self.workers.clone());
            runs.spawn(async move {
                let v = judge(&models, &workers, &c).await;
                (c, v)
            });
        }
        while let Some(done) = runs.join_next().await {
            let (c, judged) = done.map_err(|e| anyhow!("a claim's re-run stopped: {e}"))?;
            let (verdict, run) = judged?;
            self.record_verdict(&c, verdict, run)?;
        }
        Ok(())
    }

    fn record_verdict(&mut self, c: &ClaimRecord, verdict: Verdict, run: Option<Arc<Run>>) -> Result<()> {
        let id = c.id;
        let (human, extra) = match &verdict {
            Verdict::Agree => ("agree: my output is the claimed one".to_string(), json!(null)),
            Verdict::Disagree { mine } => (
                format!("DISAGREE: claimed output commitment {}, mine is {mine}", c.output_commitment),
                json!(mine.to_string()),
            ),
            Verdict::UnknownModel => ("skipped: unknown model (not in --models)".to_string(), json!(null)),
            Verdict::InputUnavailable => {
                ("cannot be checked: input not available on-chain (skipped)".to_string(), json!(null))
            }
            Verdict::BadInput { why } => (format!("cannot be checked: {why} (skipped)"), json!(null)),
        };
        self.report.event(
            "verdict",
            json!({ "claim": id, "verdict": verdict.name(), "mine": extra, "model_id": c.model_id.to_string() }),
            format!("claim {id}: {human}"),
        );
        if let Some(r) = run {
            self.runs.insert(id, r);
        }
        if let Some(rec) = self.state.claims.get_mut(&id) {
            rec.verdict = Some(verdict);
        }
        self.dir.save(&self.state)
    }

    fn challenges_all(&self) -> bool {
        self.cfg.faults.contains(&Fault::ChallengeAll)
    }

    /// Whether this account has a game on claim `id`.
    fn my_game_on(&self, id: u64) -> bool {
        self.state.games.values().any(|g| g.claim == id && g.challenger == self.me)
    }

    /// Challenge every claim this watcher disputes, inside its window, once.
    async fn challenge_disputed(&mut self) -> Result<()> {
        let all = self.challenges_all();
        let todo: Vec<u64> = self
            .state
            .claims
            .values()
            .filter(|c| !c.settled && c.submitter != self.me && !self.my_game_on(c.id))
            .filter(|c| match &c.verdict {
                Some(Verdict::Disagree { .. }) => true,
                Some(Verdict::Agree) => all,
                _ => false,
            })
            .map(|c| c.id)
            .collect();
        if todo.is_empty() {
            return Ok(());
        }
        let now = self.c.now().await?;
        for id in todo {
            let deadline = self.state.claims[&id].deadline;
            let view = self.c.view(self.game, &IOptimisticML::claimOfCall { claimId: U256::from(id) }).await?;
            if view.voided || view.finalized || now >= deadline {
                let why = if view.voided {
                    "voided"
                } else if view.finalized {
                    "finalized"
                } else {
                    "its window has closed"
                };
                self.report.event(
                    "skip",
                    json!({ "claim": id, "why": why }),
                    format!("claim {id}: not challenged: {why}"),
                );
                self.settle(id);
                continue;
            }
            self.challenge(id).await?;
        }
        Ok(())
    }

    async fn challenge(&mut self, id: u64) -> Result<()> {
        let cfg = self.c.view(self.game, &IOptimisticML::configCall {}).await?;
        let call = IOptimisticML::challengeCall { claimId: U256::from(id) };
        let r = self.c.send_call(self.game, &call, U256::from(cfg.challengerBond), "challenge").await?;
        let e = event::<IOptimisticML::Challenged>(&r, "challenge")?;
        let latency = self.seen.get(&id).map(|t| t.elapsed().as_millis() as u64);
        let game = e.gameId.to::<u64>();
        self.report.event(
            "challenge",
            json!({
                "claim": id,
                "game": game,
                "tx": r.transaction_hash.to_string(),
                "gas": r.gas_used,
                "bond": cfg.challengerBond.to_string(),
                "ms_since_seen": latency,
            }),
            format!("claim {id}: challenged, game {game} (tx {}, gas {})", r.transaction_hash, r.gas_used),
        );
        let rec = GameRecord {
            id: game,
            claim: id,
            challenger: self.me,
            block: r.block_number.unwrap_or_default(),
            ended: false,
        };
        self.state.games.insert(game, rec);
        self.dir.save(&self.state)?;
        self.start_games();
        Ok(())
    }

    /// The role this account plays in game `g`, if any (and if this watcher plays it).
    fn my_role(&self, g: &GameRecord) -> Option<Role> {
        if g.challenger == self.me && self.cfg.roles.challenger {
            return Some(Role::Challenger);
        }
        let c = self.state.claims.get(&g.claim)?;
        (c.submitter == self.me && self.cfg.roles.submitter).then_some(Role::Submitter)
    }

    /// Start a task for every game of this account that is not ended and has none.
    fn start_games(&mut self) {
        let now = Instant::now();
        let todo: Vec<(GameRecord, Role)> = self
            .state
            .games
            .values()
            .filter(|g| !g.ended && !self.tasks.contains_key(&g.id))
            .filter(|g| self.retry_at.get(&g.id).is_none_or(|(t, _)| now >= *t))
            .filter_map(|g| self.my_role(g).map(|r| (g.clone(), r)))
            .collect();
        for (g, role) in todo {
            self.start_game(g, role);
        }
    }

    fn start_game(&mut self, g: GameRecord, role: Role) {
        let Some(claim) = self.state.claims.get(&g.claim).cloned() else {
            self.report.event(
                "skip",
                json!({ "game": g.id, "why": "unknown claim" }),
                format!("game {}: its claim {} was not seen: cannot play", g.id, g.claim),
            );
            self.give_up(g.id);
            return;
        };
        let Some(model) = self.models.get(&claim.model_id) else {
            self.report.event(
                "skip",
                json!({ "game": g.id, "why": "unknown model" }),
                format!("game {}: model {} is not in the model store: cannot play", g.id, short(&claim.model_id)),
            );
            self.give_up(g.id);
            return;
        };
        let cached = if role == Role::Challenger { self.runs.get(&g.claim).cloned() } else { None };
        let (c, workers, depth, faults) = (self.c.clone(), self.workers.clone(), self.depth, self.cfg.faults.clone());
        let (game, from_block, id) = (self.game, self.from_block, g.id);
        let report = self.report.clone();
        let cache = self.dir.game_cache(id);
        let opts = PlayOptions { role, poll: self.cfg.poll };
        self.report.event(
            "play",
            json!({ "game": id, "claim": g.claim, "role": side_name(role.side()) }),
            format!("game {id}: playing the {} of claim {}", side_name(role.side()), g.claim),
        );
        let handle = tokio::spawn(async move {
            let run = match cached {
                Some(r) => r,
                None => {
                    let m = model.clone();
                    let run = workers
                        .run(move || match role {
                            Role::Submitter => defended_run(&m, &claim, &faults, depth),
                            Role::Challenger => {
                                let x = claim_inputs(&m, &claim)
                                    .map_err(|v| anyhow!("claim {}: {}", claim.id, v.name()))?;
                                honest_run(&m, &x, depth)
                            }
                        })
                        .await??;
                    Arc::new(run)
                }
            };
            // The game's cache: the trace of the run this account stands by.
            let cache = cache?;
            std::fs::write(cache.join("trace.bin"), run.graph().trace().to_bytes())
                .with_context(|| format!("writing {}", cache.join("trace.bin").display()))?;
            let meta =
                json!({ "game": id, "role": side_name(role.side()), "fault": run.fault().map(|f| f.to_string()) });
            std::fs::write(cache.join("run.json"), meta.to_string() + "\n")
                .with_context(|| format!("writing {}", cache.join("run.json").display()))?;
            play::play(&c, game, from_block, U256::from(id), model.images().clone(), run, &opts, &workers, &report)
                .await
        });
        self.tasks.insert(id, Task { role, handle });
    }

    /// Collect the game tasks that finished.
    async fn reap(&mut self) {
        let done: Vec<u64> = self.tasks.iter().filter(|(_, t)| t.handle.is_finished()).map(|(id, _)| *id).collect();
        for id in done {
            let t = self.tasks.remove(&id).expect("listed above");
            // A finished task's join resolves at once.
            let res = match t.handle.await {
                Ok(r) => r,
                Err(e) => Err(anyhow!("game task stopped: {e}")),
            };
            match res {
                Ok(out) => self.game_ended(id, t.role, &out),
                Err(e) => {
                    let (_, prev) = self.retry_at.get(&id).copied().unwrap_or((Instant::now(), Duration::ZERO));
                    let wait = (prev * 2).clamp(Duration::from_millis(500), MAX_BACKOFF);
                    self.retry_at.insert(id, (Instant::now() + wait, wait));
                    self.report.event(
                        "game_error",
                        json!({ "game": id, "error": format!("{e:#}"), "retry_in_ms": wait.as_millis() as u64 }),
                        format!("game {id}: {e:#}; playing on from the chain's state in {:.1} s", wait.as_secs_f64()),
                    );
                }
            }
        }
    }

    fn game_ended(&mut self, id: u64, role: Role, out: &Outcome) {
        let won = out.winner == role.side();
        let claim = self.state.games.get(&id).map(|g| g.claim).unwrap_or_default();
        self.report.event(
            "game_end",
            json!({
                "game": id,
                "claim": claim,
                "role": side_name(role.side()),
                "winner": side_name(out.winner),
                "reason": reason_name(out.reason),
                "won": won,
                "transactions": out.sent,
                "gas": out.gas,
            }),
            format!(
                "game {id} ended: the {} won ({}); this {} {} ({} transactions, {} gas)",
                side_name(out.winner),
                reason_name(out.reason),
                side_name(role.side()),
                if won { "won" } else { "lost" },
                out.sent,
                out.gas
            ),
        );
        if let Some(g) = self.state.games.get_mut(&id) {
            g.ended = true;
        }
        self.retry_at.remove(&id);
        if let Err(e) = self.dir.drop_game_cache(id) {
            self.report.event("warning", json!({ "message": format!("{e:#}") }), format!("warning: {e:#}"));
        }
        self.check_credits = true;
        let _ = self.dir.save(&self.state);
    }

    /// Nothing this watcher can do for game `id`: stop trying (it stays on chain).
    fn give_up(&mut self, id: u64) {
        if let Some(r) = self.state.games.get_mut(&id) {
            r.ended = true;
        }
    }

    fn settle(&mut self, id: u64) {
        if let Some(c) = self.state.claims.get_mut(&id) {
            c.settled = true;
        }
        self.runs.remove(&id);
    }

    /// Finalize this account's claims whose window has closed and that have no open game.
    async fn finalize_mine(&mut self) -> Result<()> {
        let mine = self.state.claims.values().any(|c| c.submitter == self.me && !c.settled);
        if !mine {
            return Ok(());
        }
        let now = self.c.now().await?;
        let due: Vec<u64> = self
            .state
            .claims
            .values()
            .filter(|c| c.submitter == self.me && !c.settled && now >= c.deadline)
            .map(|c| c.id)
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        for id in due {
            let v = self.c.view(self.game, &IOptimisticML::claimOfCall { claimId: U256::from(id) }).await?;
            if v.voided || v.finalized {
                let status = if v.voided { "voided" } else { "finalized" };
                self.report.event(
                    "claim_settled",
                    json!({ "claim": id, "status": status }),
                    format!("claim {id}: {status}"),
                );
                self.settle(id);
                continue;
            }
            if v.openGames > 0 {
                continue;
            }
            let call = IOptimisticML::finalizeCall { claimId: U256::from(id) };
            let r = self.c.send_call(self.game, &call, U256::ZERO, "finalize").await?;
            self.report.event(
                "finalize",
                json!({ "claim": id, "tx": r.transaction_hash.to_string(), "gas": r.gas_used }),
                format!("claim {id}: finalized (tx {}, gas {})", r.transaction_hash, r.gas_used),
            );
            self.settle(id);
            self.check_credits = true;
        }
        self.dir.save(&self.state)
    }

    /// Withdraw this account's credits, if any.
    async fn withdraw(&mut self) -> Result<()> {
        let credit = self.c.view(self.game, &IOptimisticML::creditsCall { account: self.me }).await?;
        if !credit.is_zero() {
            let r = self.c.send_call(self.game, &IOptimisticML::withdrawCall {}, U256::ZERO, "withdraw").await?;
            self.report.event(
                "payout",
                json!({ "account": self.me.to_string(), "amount": credit.to_string(), "tx": r.transaction_hash.to_string(), "gas": r.gas_used, "at": unix_now() }),
                format!("withdrew {credit} wei to {} (tx {}, gas {})", self.me, r.transaction_hash, r.gas_used),
            );
        }
        self.check_credits = false;
        Ok(())
    }
}

/// Re-run claim `c` from its on-chain input: the verdict, and the run when there is one.
async fn judge(models: &ModelStore, workers: &Workers, c: &ClaimRecord) -> Result<(Verdict, Option<Arc<Run>>)> {
    let Some(model) = models.get(&c.model_id) else { return Ok((Verdict::UnknownModel, None)) };
    let input = match claim_inputs(&model, c) {
        Ok(x) => x,
        Err(v) => return Ok((v, None)),
    };
    // The quick path (an LLM: the prompt batched, only the claimed tokens); the whole
    // graph and its trace are computed only for a game.
    let out = workers.run(move || model.output(&input)).await??;
    let mine = B256::from(tensor_commitment(&out));
    let v = if mine == c.output_commitment { Verdict::Agree } else { Verdict::Disagree { mine } };
    Ok((v, None))
}
