//! The canonical ABI encoding of `step(bytes,bytes)`.

use revm::primitives::keccak256;

/// The Solidity signature of the step verifier.
pub const STEP_SIGNATURE: &str = "step(bytes,bytes)";

/// The 4-byte selector of a function signature.
pub fn selector(signature: &str) -> [u8; 4] {
    let h = keccak256(signature.as_bytes());
    [h[0], h[1], h[2], h[3]]
}

fn push_word(out: &mut Vec<u8>, v: usize) {
    let mut w = [0u8; 32];
    w[24..].copy_from_slice(&(v as u64).to_be_bytes());
    out.extend_from_slice(&w);
}

fn push_padded(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(bytes);
    out.resize(out.len() + (32 - bytes.len() % 32) % 32, 0);
}

/// Calldata of `step(state, proof)` in the canonical ABI encoding (the only encoding the
/// contract accepts): selector, the two head offsets, then each argument's length word and
/// its bytes zero-padded to a multiple of 32.
pub fn encode_step_call(state: &[u8], proof: &[u8]) -> Vec<u8> {
    let state_padded = state.len().div_ceil(32) * 32;
    let mut out = Vec::with_capacity(4 + 64 + 32 + state_padded + 32 + proof.len() + 32);
    out.extend_from_slice(&selector(STEP_SIGNATURE));
    push_word(&mut out, 0x40);
    push_word(&mut out, 0x40 + 32 + state_padded);
    push_word(&mut out, state.len());
    push_padded(&mut out, state);
    push_word(&mut out, proof.len());
    push_padded(&mut out, proof);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_selector_is_the_published_one() {
        // The ERC-20 `transfer(address,uint256)` selector, as published.
        assert_eq!(selector("transfer(address,uint256)"), [0xa9, 0x05, 0x9c, 0xbb]);
    }

    #[test]
    fn step_call_layout_matches_the_contract_constants() {
        let state = [0xabu8; 173];
        let proof = [0xcdu8; 37];
        let cd = encode_step_call(&state, &proof);
        // Offsets the contract hard-codes: state at 0x64, proof length at 0x124.
        assert_eq!(cd[4 + 31], 0x40);
        assert_eq!(&cd[0x24 + 30..0x24 + 32], &[0x01, 0x20]);
        assert_eq!(cd[0x44 + 31], 173);
        assert_eq!(&cd[0x64..0x64 + 173], &state[..]);
        assert!(cd[0x64 + 173..0x124].iter().all(|&b| b == 0));
        assert_eq!(cd[0x124 + 31], 37);
        assert_eq!(&cd[0x144..0x144 + 37], &proof[..]);
        assert_eq!(cd.len(), 0x144 + 64);
    }
}
