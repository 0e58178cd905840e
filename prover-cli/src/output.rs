//! How commands print: JSON for scripts (`--json`) or lines for people, hex, step witnesses.

use anyhow::Result;
use serde_json::{json, Value};

/// Print `v` as JSON, or `human` otherwise.
pub fn output(json: bool, v: Value, human: String) {
    if json {
        println!("{}", serde_json::to_string_pretty(&v).expect("JSON values serialize"));
    } else {
        println!("{human}");
    }
}

/// `0x`-prefixed lower-case hex.
pub fn hex(b: &[u8]) -> String {
    format!("0x{}", ::hex::encode(b))
}

/// Print a step witness: `state` and `proof` are the calldata of the Solidity `step`.
pub fn print_witness(w: &opml_vm::Witness, as_json: bool) -> Result<()> {
    if as_json {
        let j = json!({
            "step": w.step,
            "state": hex(&w.state),
            "proof": hex(&w.proof),
            "post_state_hash": hex(&w.post_state_hash),
            "state_bytes": w.state.len(),
            "proof_bytes": w.proof.len(),
        });
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else {
        println!("step            {}", w.step);
        println!("state           {}", hex(&w.state));
        println!("proof           {}", hex(&w.proof));
        println!("post_state_hash {}", hex(&w.post_state_hash));
        println!("calldata        {} + {} bytes", w.state.len(), w.proof.len());
    }
    Ok(())
}
