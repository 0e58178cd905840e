//! Claims and games as the chain holds them: records built from the `ClaimPosted` and
//! `Challenged` events, and one's own run of a claim rebuilt from the input bytes the
//! chain holds (never from a local file).

use alloy::primitives::{Address, Bytes, B256};
use alloy::rpc::types::Log;
use alloy_sol_types::SolEvent;
use anyhow::{anyhow, bail, Result};
use opml_cli::game::abi::IOptimisticML;
use opml_cli::game::fault::{Fault, Run};
use opml_dnn::commit::tensor_commitment;
use opml_dnn::Tensor;
use serde::{Deserialize, Serialize};

use super::models::StoredModel;

/// What a watcher concluded about a claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Verdict {
    /// This watcher's run gives the claimed output.
    Agree,
    /// This watcher's run gives another output (its commitment).
    Disagree { mine: B256 },
    /// The model is not in the model store.
    UnknownModel,
    /// The chain does not hold the input bytes: nobody but the requester can check it.
    InputUnavailable,
    /// The input bytes do not form the model's input (length or commitment).
    BadInput { why: String },
}

impl Verdict {
    /// The short name used in log lines.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Agree => "agree",
            Verdict::Disagree { .. } => "disagree",
            Verdict::UnknownModel => "unknown model",
            Verdict::InputUnavailable => "cannot be checked: input not available",
            Verdict::BadInput { .. } => "cannot be checked: bad input bytes",
        }
    }
}

/// A claim as posted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRecord {
    pub id: u64,
    pub block: u64,
    pub model_id: B256,
    pub submitter: Address,
    pub input_commitments: Vec<B256>,
    pub input_bytes: Bytes,
    pub output_commitment: B256,
    pub deadline: u64,
    /// This watcher's verdict, once checked (challenger role).
    #[serde(default)]
    pub verdict: Option<Verdict>,
    /// Finalized or voided (seen on chain): nothing more to do.
    #[serde(default)]
    pub settled: bool,
}

/// A game as opened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GameRecord {
    pub id: u64,
    pub claim: u64,
    pub challenger: Address,
    pub block: u64,
    /// Ended on chain (seen by this watcher).
    #[serde(default)]
    pub ended: bool,
}

/// A game-contract event this watcher follows.
#[derive(Debug)]
pub enum Followed {
    Claim(ClaimRecord),
    Game(GameRecord),
    /// `GameEnded` of this game id.
    Ended(u64),
}

/// Decode one log of the game contract (`ClaimPosted`, `Challenged` or `GameEnded`; others
/// are `None`).
pub fn decode(log: &Log) -> Result<Option<Followed>> {
    let block = log.block_number.unwrap_or_default();
    let topic = log.topics().first().copied();
    let bad = |e: alloy_sol_types::Error| anyhow!("undecodable log in tx {:?}: {e}", log.transaction_hash);
    if topic == Some(IOptimisticML::ClaimPosted::SIGNATURE_HASH) {
        let e = IOptimisticML::ClaimPosted::decode_log(&log.inner).map_err(bad)?.data;
        return Ok(Some(Followed::Claim(ClaimRecord {
            id: e.claimId.to::<u64>(),
            block,
            model_id: e.modelId,
            submitter: e.submitter,
            input_commitments: e.inputCommitments,
            input_bytes: e.inputBytes,
            output_commitment: e.outputCommitment,
            deadline: e.deadline,
            verdict: None,
            settled: false,
        })));
    }
    if topic == Some(IOptimisticML::Challenged::SIGNATURE_HASH) {
        let e = IOptimisticML::Challenged::decode_log(&log.inner).map_err(bad)?.data;
        return Ok(Some(Followed::Game(GameRecord {
            id: e.gameId.to::<u64>(),
            claim: e.claimId.to::<u64>(),
            challenger: e.challenger,
            block,
            ended: false,
        })));
    }
    if topic == Some(IOptimisticML::GameEnded::SIGNATURE_HASH) {
        let e = IOptimisticML::GameEnded::decode_log(&log.inner).map_err(bad)?.data;
        return Ok(Some(Followed::Ended(e.gameId.to::<u64>())));
    }
    Ok(None)
}

/// The model inputs a claim's input bytes stand for (every input's bytes one after the other,
/// in slot order, as the registry checks them), each checked against the model's input spec
/// and the claim's commitment. `Err(verdict)` when they cannot be checked.
pub fn claim_inputs(model: &StoredModel, c: &ClaimRecord) -> Result<Vec<Tensor>, Verdict> {
    let g = model.model().graph();
    if c.input_bytes.is_empty() {
        return Err(Verdict::InputUnavailable);
    }
    if c.input_commitments.len() != g.inputs.len() {
        let why = format!("{} input commitments, the model has {} inputs", c.input_commitments.len(), g.inputs.len());
        return Err(Verdict::BadInput { why });
    }
    let want: usize = g.inputs.iter().map(|s| s.byte_len()).sum();
    if c.input_bytes.len() != want {
        let specs: Vec<String> = g.inputs.iter().map(|s| format!("{s:?}")).collect();
        let why = format!("{} input bytes, the model's inputs {} have {want}", c.input_bytes.len(), specs.join(", "));
        return Err(Verdict::BadInput { why });
    }
    let mut inputs = Vec::with_capacity(g.inputs.len());
    let mut at = 0;
    for (i, (spec, commitment)) in g.inputs.iter().zip(&c.input_commitments).enumerate() {
        let bytes = &c.input_bytes[at..at + spec.byte_len()];
        at += spec.byte_len();
        let t = Tensor::from_le_bytes(spec.dtype, spec.shape.clone(), bytes)
            .map_err(|e| Verdict::BadInput { why: format!("input {i}: {e}") })?;
        if B256::from(tensor_commitment(&t)) != *commitment {
            return Err(Verdict::BadInput { why: format!("input {i}: its bytes do not hash to its commitment") });
        }
        inputs.push(t);
    }
    Ok(inputs)
}

/// The honest run of a claim's inputs.
pub fn honest_run(model: &StoredModel, inputs: &[Tensor], depth: u32) -> Result<Run> {
    Ok(Run::honest(model.model().clone(), model.root(), inputs, depth)?)
}

/// The run of a submitter lying as `fault` says (resolved against the claim's inputs).
pub fn dishonest_run(model: &StoredModel, inputs: &[Tensor], fault: &Fault, depth: u32) -> Result<Run> {
    let f = model.resolve(fault, inputs)?;
    Ok(Run::dishonest(model.model().clone(), model.root(), inputs, &f, depth)?)
}

/// The run a submitter defends claim `c` with: its honest run when that gives the claimed
/// output, else the first of its deliberate `faults` that does; an error when none does
/// (the claim is not one this account can defend).
pub fn defended_run(model: &StoredModel, c: &ClaimRecord, faults: &[Fault], depth: u32) -> Result<Run> {
    let x = claim_inputs(model, c).map_err(|v| anyhow!("claim {}: {}", c.id, v.name()))?;
    if B256::from(tensor_commitment(&model.output(&x)?)) == c.output_commitment {
        return honest_run(model, &x, depth);
    }
    for f in faults.iter().filter(|f| f.is_submitter_fault()) {
        let run = dishonest_run(model, &x, f, depth)?;
        if B256::from(run.graph().output_commitment()) == c.output_commitment {
            return Ok(run);
        }
    }
    let tried = if faults.is_empty() {
        String::new()
    } else {
        format!(" nor any of --dishonest {}", faults.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(", "))
    };
    bail!(
        "claim {}: neither my honest run{tried} gives its output commitment {} (a claim posted with --dishonest \
         SPEC is defended only by a watcher started with the same --dishonest SPEC)",
        c.id,
        c.output_commitment
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::models::ModelStore;
    use opml_dnn::st::read_dataset;
    use std::path::Path;
    use std::sync::Arc;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/digits").join(name)
    }

    /// The MLP, and a claim record of its test sample 1 with the given input bytes.
    fn mlp_claim(bytes: Option<Vec<u8>>) -> (Arc<StoredModel>, ClaimRecord, Tensor) {
        let mut store = ModelStore::default();
        let id = store.add(&fixture("mlp.opml")).unwrap();
        let m = store.get(&id).unwrap();
        let data = std::fs::read(fixture("test_mlp.safetensors")).unwrap();
        let ds = read_dataset(&data, "test_mlp", false).unwrap();
        let x = m.bundle().unwrap().quantize_input(ds.sample(1)).unwrap();
        let c = ClaimRecord {
            id: 7,
            block: 1,
            model_id: id,
            submitter: Address::ZERO,
            input_commitments: vec![B256::from(tensor_commitment(&x))],
            input_bytes: Bytes::from(bytes.unwrap_or_else(|| x.to_le_bytes())),
            output_commitment: B256::ZERO,
            deadline: 0,
            verdict: None,
            settled: false,
        };
        (m, c, x)
    }

    #[test]
    fn the_input_comes_from_the_claims_bytes_checked_against_its_commitment() {
        let (m, c, x) = mlp_claim(None);
        assert_eq!(claim_inputs(&m, &c).unwrap(), [x]);
        // No bytes on-chain: nobody but the requester can check the claim.
        let (m, c, _) = mlp_claim(Some(Vec::new()));
        assert_eq!(claim_inputs(&m, &c).unwrap_err(), Verdict::InputUnavailable);
        // The MLP's input is i8 [1, 64]: 64 bytes.
        let (m, c, _) = mlp_claim(Some(vec![0; 63]));
        match claim_inputs(&m, &c).unwrap_err() {
            Verdict::BadInput { why } => assert!(why.starts_with("63 input bytes") && why.contains("have 64"), "{why}"),
            v => panic!("{v:?}"),
        }
        let (m, c, x) = mlp_claim(None);
        let mut other = x.to_le_bytes();
        other[0] ^= 1;
        let c = ClaimRecord { input_bytes: Bytes::from(other), ..c };
        match claim_inputs(&m, &c).unwrap_err() {
            Verdict::BadInput { why } => {
                assert!(why.contains("input 0: its bytes do not hash to its commitment"), "{why}")
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn a_submitter_defends_with_the_run_that_gives_its_claimed_output() {
        let (m, c, x) = mlp_claim(None);
        let honest = honest_run(&m, std::slice::from_ref(&x), 20).unwrap();
        let fault: Fault = "node:2".parse().unwrap();
        let lie = Run::dishonest(m.model().clone(), m.root(), &[x], &fault, 20).unwrap();
        let true_claim = ClaimRecord { output_commitment: B256::from(honest.graph().output_commitment()), ..c.clone() };
        let false_claim = ClaimRecord { output_commitment: B256::from(lie.graph().output_commitment()), ..c.clone() };
        assert!(defended_run(&m, &true_claim, std::slice::from_ref(&fault), 20).unwrap().fault().is_none());
        assert_eq!(defended_run(&m, &false_claim, std::slice::from_ref(&fault), 20).unwrap().fault(), Some(&fault));
        let e = defended_run(&m, &false_claim, &[], 20).unwrap_err().to_string();
        assert!(e.contains("neither my honest run gives its output commitment"), "{e}");
        let e = defended_run(&m, &false_claim, &["output".parse().unwrap()], 20).unwrap_err().to_string();
        assert!(e.contains("nor any of --dishonest output"), "{e}");
    }
}

#[cfg(test)]
mod event_tests {
    use super::*;
    use alloy::primitives::{LogData, U256};
    use alloy_sol_types::SolEvent;

    /// A `GameEnded` log is followed (a watcher catching up marks such games ended instead
    /// of re-running their claims), other events of the contract are not.
    #[test]
    fn game_ended_logs_name_their_game() {
        let ended = IOptimisticML::GameEnded {
            gameId: U256::from(7),
            winner: IOptimisticML::Side::Challenger,
            reason: IOptimisticML::EndReason::Step,
        };
        let log = |data: LogData| Log {
            inner: alloy::primitives::Log { address: Address::ZERO, data },
            ..Default::default()
        };
        match decode(&log(ended.encode_log_data())).unwrap() {
            Some(Followed::Ended(7)) => {}
            other => panic!("GameEnded decoded as {other:?}"),
        }
        let voided = IOptimisticML::ClaimVoided { claimId: U256::from(3), gameId: U256::from(7) };
        assert!(decode(&log(voided.encode_log_data())).unwrap().is_none());
    }
}
