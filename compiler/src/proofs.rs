//! Region proofs for the dispute game's handover (`docs/spec/commitments.md` §Proofs for the
//! game): that a VM memory root holds, at a region of the node image
//! (`docs/spec/node-image.md`), a subtree whose root is a given commitment.
//!
//! A region of `len` bytes at a window start occupies the memory subtree of height
//! `k = region_height(len)` at index `(addr >> 5) >> k` of level `k`; its proof is the
//! `27 - k` siblings from that subtree up to the memory root. Builders read a real machine's
//! memory; the `verify_*` twins use only hashes (what the contract repeats).

use opml_merkle::{bytes_root, keccak256, path_root, Hash};
use opml_vm::{Memory, State, Status};
use thiserror::Error;

use crate::layout::{
    input_addr, padded_bytes, region_height, weight_addr, MAX_INPUTS, MAX_WEIGHTS, OUTPUT_BASE, TENSOR_WINDOW,
    TREE_HEIGHT,
};

/// Why a region proof cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RegionProofError {
    /// The region does not fit a tensor window (or the index names no window).
    #[error("{what} region: {msg}")]
    Region {
        /// "input i", "weight i", "output" or the address.
        what: String,
        /// What is wrong.
        msg: String,
    },
}

/// A memory subtree and its path to the memory root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionProof {
    /// Start address of the region (aligned to its padded size).
    pub addr: u32,
    /// Byte length of the region (fixes the subtree height).
    pub len: usize,
    /// Root of the region's subtree in this memory (the tensor commitment when it holds it).
    pub root: Hash,
    /// Siblings from the subtree up to the memory root (`27 - k` of them).
    pub siblings: Vec<Hash>,
}

/// Height and index of the subtree of a `len`-byte region at `addr`, if `addr` is aligned to
/// the region's padded size and the region fits a tensor window.
fn subtree_of(addr: u32, len: usize) -> Option<(usize, u64)> {
    let padded = padded_bytes(len) as u64;
    if padded > TENSOR_WINDOW as u64 || !(addr as u64).is_multiple_of(padded) {
        return None;
    }
    let k = region_height(len);
    Some((k, ((addr as u64) >> 5) >> k))
}

/// Proof of the `len`-byte region at `addr` in `mem` (the region's root is read from memory).
pub fn region_proof(mem: &mut Memory, addr: u32, len: usize) -> Result<RegionProof, RegionProofError> {
    let Some((k, _)) = subtree_of(addr, len) else {
        return Err(RegionProofError::Region {
            what: format!("{addr:#010x}"),
            msg: format!("{len} bytes pad to {} bytes: not aligned or larger than a tensor window", padded_bytes(len)),
        });
    };
    let root = bytes_root(&mem.read_bytes(addr, padded_bytes(len)));
    let leaf = mem.proof(addr);
    Ok(RegionProof { addr, len, root, siblings: leaf.siblings[k..TREE_HEIGHT].to_vec() })
}

/// Whether `mem_root` holds a subtree with root `commitment` for the `len`-byte region at
/// `addr` (aligned to its padded size, at most one tensor window), given its siblings.
pub fn verify_region(mem_root: &Hash, addr: u32, len: usize, commitment: &Hash, siblings: &[Hash]) -> bool {
    let Some((k, index)) = subtree_of(addr, len) else { return false };
    siblings.len() == TREE_HEIGHT - k && path_root(commitment, index, siblings) == *mem_root
}

/// Proof of the output region (`OUTPUT_BASE`, `output_len` bytes).
pub fn output_region_proof(mem: &mut Memory, output_len: usize) -> Result<RegionProof, RegionProofError> {
    region_proof(mem, OUTPUT_BASE, output_len).map_err(|e| rename(e, "output".into()))
}

/// Whether `mem_root` holds `commitment` in the output region of `output_len` bytes.
pub fn verify_output_region(mem_root: &Hash, output_len: usize, commitment: &Hash, siblings: &[Hash]) -> bool {
    verify_region(mem_root, OUTPUT_BASE, output_len, commitment, siblings)
}

/// Proof of input region `i` (`len` bytes).
pub fn input_region_proof(mem: &mut Memory, i: usize, len: usize) -> Result<RegionProof, RegionProofError> {
    if i >= MAX_INPUTS {
        return Err(RegionProofError::Region {
            what: format!("input {i}"),
            msg: format!("at most {MAX_INPUTS} inputs"),
        });
    }
    region_proof(mem, input_addr(i), len).map_err(|e| rename(e, format!("input {i}")))
}

/// Whether `mem_root` holds `commitment` in input region `i` of `len` bytes.
pub fn verify_input_region(mem_root: &Hash, i: usize, len: usize, commitment: &Hash, siblings: &[Hash]) -> bool {
    i < MAX_INPUTS && verify_region(mem_root, input_addr(i), len, commitment, siblings)
}

/// Proof of weight region `i` (`len` bytes).
pub fn weight_region_proof(mem: &mut Memory, i: usize, len: usize) -> Result<RegionProof, RegionProofError> {
    if i >= MAX_WEIGHTS {
        return Err(RegionProofError::Region {
            what: format!("weight {i}"),
            msg: format!("at most {MAX_WEIGHTS} weights"),
        });
    }
    region_proof(mem, weight_addr(i), len).map_err(|e| rename(e, format!("weight {i}")))
}

/// Whether `mem_root` holds `commitment` in weight region `i` of `len` bytes.
pub fn verify_weight_region(mem_root: &Hash, i: usize, len: usize, commitment: &Hash, siblings: &[Hash]) -> bool {
    i < MAX_WEIGHTS && verify_region(mem_root, weight_addr(i), len, commitment, siblings)
}

/// The handover's final-state check: `encoded` is the state whose hash is `state_hash`, it
/// has exited with code 0, and its memory holds `commitment` in the output region of
/// `output_len` bytes.
pub fn verify_final_state(
    state_hash: &Hash,
    encoded: &[u8],
    output_len: usize,
    commitment: &Hash,
    siblings: &[Hash],
) -> bool {
    if keccak256(encoded) != *state_hash {
        return false;
    }
    let Ok(state) = State::decode(encoded) else { return false };
    state.status == Status::Exited
        && state.exit_code == 0
        && verify_output_region(&state.mem_root, output_len, commitment, siblings)
}

fn rename(e: RegionProofError, what: String) -> RegionProofError {
    match e {
        RegionProofError::Region { msg, .. } => RegionProofError::Region { what, msg },
    }
}
