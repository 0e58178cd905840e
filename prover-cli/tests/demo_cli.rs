//! `opml demo` end to end on its private anvil, for a lie in the final output, in a middle
//! node and inside one node's VM run: the JSON it prints is read from the chain by the
//! demo; this test checks it against outcomes and bond movements derived here by hand
//! from the contract's rules (docs/spec/protocol.md §Settlement).
//!
//! Also the LLM demo on SmolLM2-135M-Instruct Q4_1 (when `scripts/fetch_models.sh` has
//! fetched it; without it the test prints why and passes): three lies in one run, a
//! generated token, a middle layer's node and one step inside that node.

use std::process::Command;

use serde_json::Value;

#[path = "common/smollm2.rs"]
mod smollm2;

fn demo(fault: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_opml")).args(["demo", "--fault", fault, "--json"]).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("demo --fault {fault}: not JSON ({e}); stderr:\n{}", String::from_utf8_lossy(&out.stderr))
    });
    assert!(
        out.status.success() && v["ok"] == true,
        "demo --fault {fault}: {v:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    v
}

fn wei(v: &Value) -> u128 {
    v.as_str().unwrap().parse().unwrap()
}

/// Claims, games, bonds and conservation of one demo run.
fn check(v: &Value, leaf_node: u64) {
    let statuses: Vec<&str> = v["claims"].as_array().unwrap().iter().map(|c| c["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["finalized", "voided", "finalized"], "{v:#}");
    let games = v["games"].as_array().unwrap();
    assert_eq!(games.len(), 2, "{v:#}");
    // The honest challenger on the false claim 2, the lying challenger on claim 3 (in the
    // order their challenges were mined).
    let on = |claim: u64| games.iter().find(|g| g["claim"].as_u64() == Some(claim)).unwrap();
    let (caught, defended) = (on(2), on(3));
    assert_eq!(
        (caught["challenger"].as_str(), caught["winner"].as_str()),
        (Some("honest challenger"), Some("challenger"))
    );
    assert_eq!(
        (defended["challenger"].as_str(), defended["winner"].as_str()),
        (Some("lying challenger"), Some("submitter"))
    );
    for g in games {
        assert_eq!(g["reason"], "step", "every game ends at one VM step: {g}");
        assert!(g["gas"].as_u64().unwrap() > 0 && g["vm_rounds"].as_u64().unwrap() >= 1);
        assert_eq!(g["graph_rounds"].as_u64(), Some(1), "9 nodes at k = 16: one graph round");
    }
    assert_eq!(caught["node"].as_u64(), Some(leaf_node), "the dispute isolates the lying node");
    let Ledger { sb, cb, bps } = Ledger::of(v);
    let burn = |x: u128| x * bps / 10_000;
    let acct = |name: &str| account(v, name);
    // Honest submitter: two bonds back, plus the lying challenger's bond less the burn.
    assert_eq!(acct("honest submitter"), (2 * sb, 2 * sb + cb - burn(cb)));
    assert_eq!(acct("dishonest submitter"), (sb, 0));
    // Honest challenger: its bond back plus the liar's bond less the burn.
    assert_eq!(acct("honest challenger"), (cb, cb + sb - burn(sb)));
    assert_eq!(acct("lying challenger"), (cb, 0));
    let c = &v["conservation"];
    assert_eq!(wei(&c["balance"]), 0, "everything paid out");
    assert_eq!(wei(&c["total_in"]), 3 * sb + 2 * cb);
    assert_eq!(wei(&c["total_out"]), 3 * sb + 2 * cb);
}

#[test]
fn a_false_final_output_is_voided() {
    // The digits CNN's output comes from its last node, 8.
    check(&demo("output"), 8);
}

#[test]
fn a_false_middle_node_is_voided() {
    check(&demo("node:4"), 4);
}

#[test]
fn a_tampered_vm_step_is_voided_at_that_step() {
    let v = demo("step:3:30000");
    check(&v, 3);
    let games = v["games"].as_array().unwrap();
    let caught = games.iter().find(|g| g["claim"].as_u64() == Some(2)).unwrap();
    let leaf = caught["leaf_step"].as_u64().unwrap();
    assert_eq!(leaf, 29_999, "the leaf is the step into the tampered state 30000");
}

/// The LLM demo's prompts, as the demo states them (docs of `opml demo`): the first honest
/// claim's, the false claims', the disputed honest claim's.
const PROMPTS: [&str; 3] = ["The capital of France is", "Once upon a time, there was", "One, two, three, four,"];

#[test]
fn llm_demo_on_smollm2_voids_each_lie() {
    let Some(gguf) = smollm2::model() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("smollm2.opmlllm");
    let b = bundle.to_str().unwrap();
    smollm2::json_ok(&[
        "model",
        "import",
        gguf.to_str().unwrap(),
        "-o",
        b,
        "--max-prompt",
        "8",
        "--max-new",
        "8",
        "--json",
    ]);
    let out = smollm2::opml(&["demo", "--model", b, "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("demo: not JSON ({e}); stderr:\n{}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success() && v["ok"] == true, "demo: {v:#}\n{}", String::from_utf8_lossy(&out.stderr));

    // What each prompt makes the model say, by `opml generate` (the quick path) on the bundle.
    let generate =
        |prompt: &str| smollm2::json_ok(&["generate", b, "--prompt", prompt, "--max-new-tokens", "8", "--json"]);
    let honest: Vec<Value> = PROMPTS.iter().map(|p| generate(p)).collect();
    let p = honest[1]["prompt_tokens"].as_u64().unwrap();
    assert!(p <= 8, "every prompt fits --max-prompt 8 uncut: {}", honest[1]);
    // SmolLM2 has 30 layers: the middle one is 15; the middle of 8 generated tokens is
    // token 4, emitted by the step at position p - 1 + 4.
    let pos = p - 1 + 4;
    let node = format!("pos{pos}.blk.15.ffn_up");
    let faults: Vec<&str> = v["faults"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert_eq!(faults.len(), 3, "{v:#}");
    assert_eq!((faults[0], faults[1]), ("token:4", format!("node:{node}").as_str()));
    let step: u64 = faults[2].strip_prefix(&format!("step:{node}:")).expect("step:NODE:S").parse().unwrap();

    // Claims: 1 honest, 2..4 false (one per fault), 5 honest and disputed by the liar.
    let claims = v["claims"].as_array().unwrap();
    let statuses: Vec<&str> = claims.iter().map(|c| c["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["finalized", "voided", "voided", "voided", "finalized"], "{v:#}");
    let prompt_of = [0, 1, 1, 1, 2];
    for (c, &i) in claims.iter().zip(&prompt_of) {
        assert_eq!(c["prompt"], PROMPTS[i], "{c}");
    }
    // The honest claims claim what the model says; the token lie changes token 4 (and
    // what follows from it), so its text differs from the honest one.
    assert_eq!(claims[0]["text"], honest[0]["text"]);
    assert_eq!(claims[4]["text"], honest[2]["text"]);
    assert_ne!(claims[1]["text"], honest[1]["text"]);

    let games = v["games"].as_array().unwrap();
    assert_eq!(games.len(), 4, "{v:#}");
    let on = |claim: u64| games.iter().find(|g| g["claim"].as_u64() == Some(claim)).unwrap();
    for claim in 2..=4 {
        let g = on(claim);
        assert_eq!((g["challenger"].as_str(), g["winner"].as_str()), (Some("honest challenger"), Some("challenger")));
    }
    let defended = on(5);
    assert_eq!(
        (defended["challenger"].as_str(), defended["winner"].as_str()),
        (Some("lying challenger"), Some("submitter"))
    );
    for g in games {
        assert_eq!(g["reason"], "step", "every game ends at one VM step: {g}");
        assert!(g["gas"].as_u64().unwrap() > 0 && g["vm_rounds"].as_u64().unwrap() >= 1, "{g}");
        assert!(g["graph_rounds"].as_u64().unwrap() >= 2, "thousands of nodes at k = 16: {g}");
    }
    assert_eq!(on(2)["node_name"], format!("pos{pos}.argmax"), "the token lie is the argmax emitting token 4");
    assert_eq!(on(3)["node_name"], node.as_str(), "the node lie is isolated by name");
    assert_eq!(on(4)["node_name"], node.as_str(), "the step lie is inside that node");
    assert_eq!(on(4)["leaf_step"].as_u64(), Some(step - 1), "the leaf is the step into the tampered state");

    let Ledger { sb, cb, bps } = Ledger::of(&v);
    let burn = |x: u128| x * bps / 10_000;
    let acct = |name: &str| account(&v, name);
    assert_eq!(acct("honest submitter"), (2 * sb, 2 * sb + cb - burn(cb)));
    assert_eq!(acct("dishonest submitter"), (3 * sb, 0));
    assert_eq!(acct("honest challenger"), (3 * cb, 3 * (cb + sb - burn(sb))));
    assert_eq!(acct("lying challenger"), (cb, 0));
    let c = &v["conservation"];
    assert_eq!(wei(&c["balance"]), 0, "everything paid out");
    assert_eq!(wei(&c["total_in"]), 5 * sb + 4 * cb);
    assert_eq!(wei(&c["total_out"]), 5 * sb + 4 * cb);
}

/// The demo's bonds and burn rate, from its JSON `config`.
struct Ledger {
    sb: u128,
    cb: u128,
    bps: u128,
}

impl Ledger {
    fn of(v: &Value) -> Self {
        let cfg = &v["config"];
        Ledger {
            sb: wei(&cfg["submitter_bond"]),
            cb: wei(&cfg["challenger_bond"]),
            bps: cfg["burn_bps"].as_u64().unwrap() as u128,
        }
    }
}

/// What account `name` posted and withdrew, from the demo's JSON `accounts`.
fn account(v: &Value, name: &str) -> (u128, u128) {
    let a = v["accounts"].as_array().unwrap().iter().find(|a| a["account"] == name).unwrap();
    (wei(&a["posted"]), wei(&a["withdrawn"]))
}
