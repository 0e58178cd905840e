//! `opml game ...` end to end: whole disputes on the digits CNN where every move an honest
//! party makes is the calldata printed by the command line, sent to the forge-built
//! contracts on an in-process chain (revm; `contracts/out` from `scripts/setup.sh`).

use std::path::PathBuf;
use std::process::Command;

use alloy_primitives::{Address, B256, U256};
use alloy_sol_types::{SolCall, SolValue};
use opml_cli::game::abi::IOptimisticML;
use opml_contracts::chain::Chain;
use serde_json::Value;

const SUBMITTER: Address = Address::repeat_byte(0x5b);
const CHALLENGER: Address = Address::repeat_byte(0xc1);
const K: u64 = 16;
const DEPTH: u32 = 32;
const CLOCK: u64 = 3600;
const SUBMITTER_BOND: u64 = 1_000_000;
const CHALLENGER_BOND: u64 = 400_000;
/// A quarter of a loser's bond is burnt (the game requires a non-zero burn share).
const BURN_BPS: u16 = 2_500;

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/digits").join(name).to_str().unwrap().to_string()
}

/// `opml game <args> <bundle> --input <test data> --index 3`, parsed.
fn game(args: &[&str]) -> Value {
    let (bundle, input) = (fixture("cnn.opml"), fixture("test_cnn.safetensors"));
    let mut all = vec!["game", args[0], &bundle, "--input", &input, "--index", "3"];
    all.extend_from_slice(&args[1..]);
    let out = Command::new(env!("CARGO_BIN_EXE_opml")).args(&all).output().expect("run opml");
    assert!(out.status.success(), "opml {all:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string").trim_start_matches("0x")).expect("hex")
}

fn hash(v: &Value) -> B256 {
    B256::from_slice(&bytes(v))
}

struct Deployment {
    chain: Chain,
    registry: Address,
    game: Address,
}

fn deploy() -> Deployment {
    let mut chain = Chain::new();
    for a in [SUBMITTER, CHALLENGER] {
        chain.set_balance(a, U256::from(10u64.pow(18)));
    }
    let (step, _) = chain.deploy_artifact(SUBMITTER, "Step.sol", "Step", &[], &[]).unwrap();
    let (registry, _) = chain.deploy_artifact(SUBMITTER, "ModelRegistry.sol", "ModelRegistry", &[], &[]).unwrap();
    let cfg = IOptimisticML::Config {
        arity: K,
        vmDepth: DEPTH as u64,
        challengeWindow: 3600,
        clock: CLOCK,
        requestTimeout: 7200,
        callbackGas: 100_000,
        submitterBond: SUBMITTER_BOND as u128,
        challengerBond: CHALLENGER_BOND as u128,
        burnBps: BURN_BPS,
    };
    let args = (registry, step, cfg).abi_encode_params();
    let (game, _) = chain.deploy_artifact(SUBMITTER, "OptimisticML.sol", "OptimisticML", &args, &[]).unwrap();
    Deployment { chain, registry, game }
}

impl Deployment {
    /// Send `calldata` (hex from the CLI, or encoded here) and require success.
    fn send(&mut self, from: Address, to: Address, value: u64, calldata: &[u8], what: &str) {
        let r = self.chain.call(from, to, U256::from(value), calldata).unwrap();
        assert!(r.ok(), "{what} reverted: {:?}", r.reverted);
    }

    fn view(&mut self) -> IOptimisticML::GameView {
        let r =
            self.chain.view(CHALLENGER, self.game, &IOptimisticML::gameOfCall { gameId: U256::from(1) }.abi_encode());
        IOptimisticML::gameOfCall::abi_decode_returns(&r.unwrap().output).unwrap()
    }

    /// Register the model and post the CLI's claim; challenge it; the submitter opens.
    fn claim_challenge_open(&mut self) {
        let c = game(&["claim"]);
        let (registry, game_addr) = (self.registry, self.game);
        self.send(SUBMITTER, registry, 0, &bytes(&c["register_calldata"]), "register");
        self.send(SUBMITTER, game_addr, SUBMITTER_BOND, &bytes(&c["post_claim_calldata"]), "postClaim");
        let ch = IOptimisticML::challengeCall { claimId: U256::from(1) }.abi_encode();
        self.send(CHALLENGER, game_addr, CHALLENGER_BOND, &ch, "challenge");
        let o = game(&["open", "--game", "1"]);
        self.send(SUBMITTER, game_addr, 0, &bytes(&o["calldata"]), "open");
        assert_eq!(self.view().hashHi, hash(&o["final_graph_state"]));
    }

    fn lo_hi(&mut self) -> (String, String) {
        let v = self.view();
        (v.lo.to_string(), v.hi.to_string())
    }
}

/// An honest submitter, every move from `opml game`, against a challenger who disputes a
/// true claim and always picks the last piece: the dispute runs through both phases to
/// the leaf, where the CLI's step witness proves the submitter right.
#[test]
fn cli_moves_defend_a_true_claim_through_both_phases() {
    let mut d = deploy();
    let game_addr = d.game;
    d.claim_challenge_open();
    let mut node_arg: Vec<String> = Vec::new();
    let mut rounds = 0;
    loop {
        let v = d.view();
        match v.phase {
            IOptimisticML::Phase::Graph | IOptimisticML::Phase::Steps => {
                let (lo, hi) = d.lo_hi();
                let mut args = vec!["states", "--lo", &lo, "--hi", &hi, "--game", "1"];
                args.extend(node_arg.iter().map(String::as_str));
                let s = game(&args);
                d.send(SUBMITTER, game_addr, 0, &bytes(&s["calldata"]), "postStates");
                let states: Vec<B256> = s["states"].as_array().unwrap().iter().map(hash).collect();
                let last = U256::from(states.len());
                let p = IOptimisticML::pickCall { gameId: U256::from(1), index: last, states }.abi_encode();
                d.send(CHALLENGER, game_addr, 0, &p, "pick");
                rounds += 1;
            }
            IOptimisticML::Phase::Handover => {
                let node = v.lo.to_string();
                let h = game(&["handover", "--node", &node, "--game", "1"]);
                d.send(SUBMITTER, game_addr, 0, &bytes(&h["calldata"]), "handover");
                let after = d.view();
                assert_eq!(after.hashHi, hash(&h["final_state_hash"]));
                assert_eq!(after.node as u64, v.lo);
                node_arg = vec!["--node".into(), node];
            }
            IOptimisticML::Phase::Leaf => {
                let step = v.lo.to_string();
                let mut args = vec!["step", "--step", &step, "--game", "1"];
                args.extend(node_arg.iter().map(String::as_str));
                let w = game(&args);
                assert_eq!(hash(&w["state_hash"]), v.hashLo);
                d.send(CHALLENGER, game_addr, 0, &bytes(&w["calldata"]), "resolveStep");
            }
            IOptimisticML::Phase::Ended => break,
            IOptimisticML::Phase::Open | IOptimisticML::Phase::__Invalid => panic!("unexpected phase {:?}", v.phase),
        }
    }
    let v = d.view();
    assert_eq!(v.winner, IOptimisticML::Side::Submitter);
    assert_eq!(v.endReason, IOptimisticML::EndReason::Step, "won at the step");
    // ceil(log16(9)) = 1 graph round, 32 / 4 = 8 step rounds.
    assert_eq!(rounds, 1 + 8);
    let credit = d.chain.view(SUBMITTER, game_addr, &IOptimisticML::creditsCall { account: SUBMITTER }.abi_encode());
    let credit = U256::from_be_slice(&credit.unwrap().output);
    let burn = CHALLENGER_BOND * u64::from(BURN_BPS) / 10_000;
    assert_eq!(credit, U256::from(CHALLENGER_BOND - burn), "the challenger's bond less the burn");
}

/// A submitter posting forged intermediate graph states (from node 4 on) meets an honest
/// challenger whose every pick comes from `opml game pick`: the picks isolate node 3 -> 4,
/// the first forged state, and the liar, unable to hand over, loses on time.
#[test]
fn cli_picks_isolate_the_first_forged_graph_state() {
    let mut d = deploy();
    let game_addr = d.game;
    d.claim_challenge_open();
    let forged = |p: u64, h: B256| if p >= 4 { alloy_primitives::keccak256(h) } else { h };
    while d.view().phase == IOptimisticML::Phase::Graph {
        let (lo, hi) = d.lo_hi();
        let honest = game(&["states", "--lo", &lo, "--hi", &hi]);
        let points: Vec<u64> = honest["points"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap()).collect();
        let states: Vec<B256> =
            honest["states"].as_array().unwrap().iter().zip(&points).map(|(h, &p)| forged(p, hash(h))).collect();
        let post = IOptimisticML::postStatesCall { gameId: U256::from(1), states: states.clone() }.abi_encode();
        d.send(SUBMITTER, game_addr, 0, &post, "postStates");
        let list: Vec<String> = states.iter().map(|h| format!("{h}")).collect();
        let list = list.join(",");
        let p = game(&["pick", "--lo", &lo, "--hi", &hi, "--states", &list, "--game", "1"]);
        d.send(CHALLENGER, game_addr, 0, &bytes(&p["calldata"]), "pick");
        let v = d.view();
        assert_eq!((v.lo, v.hi), (p["lo"].as_u64().unwrap(), p["hi"].as_u64().unwrap()));
    }
    let v = d.view();
    assert_eq!(v.phase, IOptimisticML::Phase::Handover);
    assert_eq!((v.lo, v.hi), (3, 4), "the first forged state is S_4");
    d.chain.warp(CLOCK + 1);
    let t = IOptimisticML::timeoutCall { gameId: U256::from(1) }.abi_encode();
    d.send(CHALLENGER, game_addr, 0, &t, "timeout");
    assert_eq!(d.view().winner, IOptimisticML::Side::Challenger);
}

/// Bad arguments are refused with the argument named.
#[test]
fn game_commands_reject_bad_intervals_and_states() {
    let (bundle, input) = (fixture("cnn.opml"), fixture("test_cnn.safetensors"));
    let run = |extra: &[&str]| {
        let mut all = vec!["game", extra[0], &bundle, "--input", &input];
        all.extend_from_slice(&extra[1..]);
        let out = Command::new(env!("CARGO_BIN_EXE_opml")).args(&all).output().unwrap();
        assert!(!out.status.success(), "{all:?} succeeded");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    assert!(run(&["states", "--lo", "3", "--hi", "4"]).contains("no inner point"));
    assert!(run(&["states", "--lo", "0", "--hi", "10"]).contains("past the end"));
    assert!(run(&["states", "--lo", "0", "--hi", "9", "-k", "1"]).contains("--arity"));
    assert!(run(&["pick", "--lo", "0", "--hi", "9", "--states", "0x12"]).contains("--states"));
    let one = format!("0x{}", "ab".repeat(32));
    assert!(run(&["pick", "--lo", "0", "--hi", "9", "--states", &one]).contains("inner points"));
    assert!(run(&["handover", "--node", "9"]).contains("--node 9 out of range"));
    assert!(run(&["step", "--node", "0", "--step", "4294967296"]).contains("past the last step"));
}
