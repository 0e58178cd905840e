//! `opml demo` end to end on its private anvil, for a lie in the final output, in a middle
//! node and inside one node's VM run: the JSON it prints is read from the chain by the
//! demo; this test checks it against outcomes and bond movements derived here by hand
//! from the contract's rules (docs/spec/protocol.md §Settlement).

use std::process::Command;

use serde_json::Value;

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
    let cfg = &v["config"];
    let (sb, cb, bps) =
        (wei(&cfg["submitter_bond"]), wei(&cfg["challenger_bond"]), cfg["burn_bps"].as_u64().unwrap() as u128);
    let burn = |x: u128| x * bps / 10_000;
    let acct = |name: &str| {
        let a = v["accounts"].as_array().unwrap().iter().find(|a| a["account"] == name).unwrap();
        (wei(&a["posted"]), wei(&a["withdrawn"]))
    };
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
