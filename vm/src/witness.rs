//! Step witnesses: the calldata `(state, proof)` of the on-chain `step` for the next step
//! of a machine (docs/spec/vm.md §8).

use opml_merkle::{zero_hash, Hash};

use crate::interp::Machine;
use crate::isa::{access_width, decode, Status};
use crate::memory::{LeafProof, TREE_DEPTH};

/// The witness of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witness {
    /// Step number of the pre-state.
    pub step: u64,
    /// 173-byte packed pre-state.
    pub state: Vec<u8>,
    /// Memory proofs the step needs.
    pub proof: Vec<u8>,
    /// Hash of the post-state, from full execution.
    pub post_state_hash: Hash,
}

/// Append a path over levels `0..levels`: mask, then the non-zero siblings.
fn encode_path(out: &mut Vec<u8>, siblings: &[Hash; TREE_DEPTH], levels: usize) {
    let mut mask = 0u32;
    for (l, sib) in siblings.iter().enumerate().take(levels) {
        if sib == zero_hash(l) {
            mask |= 1 << l;
        }
    }
    out.extend_from_slice(&mask.to_be_bytes());
    for (l, sib) in siblings.iter().enumerate().take(levels) {
        if mask >> l & 1 == 0 {
            out.extend_from_slice(sib);
        }
    }
}

/// The data address a load or store at the current pc would access, when it passes the
/// alignment check (so the step needs a data proof).
fn data_access(m: &Machine, insn: u32) -> Option<u32> {
    let op = decode(insn);
    let width = access_width(op.kind)?;
    let addr = m.regs[op.rs1 as usize].wrapping_add(op.imm);
    (addr & (width - 1) == 0).then_some(addr)
}

impl Machine {
    /// The proof bytes for the next step from the current state.
    pub fn step_proof(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.status != Status::Running || self.pc & 3 != 0 {
            return out;
        }
        let pc = self.pc;
        let fetch: LeafProof = self.memory_mut().proof(pc);
        out.extend_from_slice(&fetch.leaf);
        encode_path(&mut out, &fetch.siblings, TREE_DEPTH);
        let insn = self.memory().read_u32(pc);
        if let Some(addr) = data_access(self, insn) {
            let join = (32 - ((pc >> 5) ^ (addr >> 5)).leading_zeros()) as usize;
            if join > 0 {
                let data = self.memory_mut().proof(addr);
                out.extend_from_slice(&data.leaf);
                encode_path(&mut out, &data.siblings, join - 1);
            }
        }
        out
    }

    /// The witness of the next step, then take that step.
    pub fn step_with_witness(&mut self) -> Witness {
        let step = self.step;
        let state = self.state().encode().to_vec();
        let proof = self.step_proof();
        self.step();
        Witness { step, state, proof, post_state_hash: self.state_hash() }
    }
}
