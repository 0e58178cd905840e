//! Gas of `step` for named vectors of `fixtures/step-vectors/vectors.json` (revm, Prague
//! rules), to compare with `contracts/scripts/anvil_gas.sh` on a real node.
//!
//! ```text
//! cargo run -p opml-contracts --example vector_gas -- instruction:Add#0 instruction:Lw#0
//! ```

use std::path::Path;

use opml_contracts::StepVerifier;

fn hex_field(v: &serde_json::Value, field: &str) -> Result<Vec<u8>, String> {
    let s = v[field].as_str().ok_or(format!("vector field {field} missing"))?;
    hex::decode(s.trim_start_matches("0x")).map_err(|e| format!("vector field {field}: {e}"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/step-vectors/vectors.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let doc: serde_json::Value = serde_json::from_str(&text)?;
    let vectors = doc["vectors"].as_array().ok_or("no vectors array")?;
    let mut v = StepVerifier::load()?;
    println!("| vector | calldata B | exec gas | tx gas |");
    println!("|---|---:|---:|---:|");
    for name in std::env::args().skip(1) {
        let vec = vectors.iter().find(|x| x["name"] == name.as_str()).ok_or(format!("no vector {name}"))?;
        let (_, gas) = v.step(&hex_field(vec, "state")?, &hex_field(vec, "proof")?)?;
        println!("| {name} | {} | {} | {} |", gas.calldata_bytes, gas.execution, gas.transaction);
    }
    Ok(())
}
