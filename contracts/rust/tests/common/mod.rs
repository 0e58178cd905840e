//! Shared helpers of the differential tests.

#![allow(dead_code)]

use opml_contracts::{StepOutcome, StepVerifier};

/// The forge-built verifier; panics with the loader's message (which names the setup
/// script) when the contracts were not built.
pub fn verifier() -> StepVerifier {
    match StepVerifier::load() {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

/// Run one witness through both implementations and require the same answer: both accept
/// with the same post-state hash, or both reject. Returns the common hash, if accepted.
pub fn assert_same(v: &mut StepVerifier, state: &[u8], proof: &[u8], what: &str) -> Option<[u8; 32]> {
    let rust = opml_vm::step::step(state, proof);
    let (evm, _gas) = v.step(state, proof).unwrap_or_else(|e| panic!("{what}: EVM could not run the call: {e}"));
    match (&rust, &evm) {
        (Ok(r), StepOutcome::Accepted(e)) => {
            assert_eq!(hex::encode(r), hex::encode(e), "{what}: post-state hashes differ");
            Some(*r)
        }
        (Err(_), StepOutcome::Reverted(_)) => None,
        _ => panic!(
            "{what}: Rust and EVM disagree: rust = {rust:?}, evm = {evm:?}\nstate = {}\nproof = {}",
            hex::encode(state),
            hex::encode(proof)
        ),
    }
}
