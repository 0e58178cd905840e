//! The handover proof (`OptimisticML.handover`): once phase 1 isolates node `lo`, the
//! submitter proves that `S_{lo+1}` is `S_lo` with node `lo`'s output slot set, that the
//! node's descriptor is under the model root, what its input slots hold in `S_lo`, and that
//! its claimed final VM state exited with code 0 holding the output.
//!
//! [`HandoverData::build`] assembles the fields from a player's views; [`HandoverData::check`]
//! repeats the contract's checks in the contract's order with the Rust `verify_*` twins and
//! returns the phase-2 interval ends (node pre-state hash, final state hash) it would set.

use opml_compiler::binding::descriptor_image_roots;
use opml_compiler::proofs::verify_final_state;
use opml_dnn::commit::NodeImage;
use opml_dnn::proofs::{
    descriptor_proof, slot_proof, update_proof, verify_descriptor_proof, verify_slot_proof, verify_update_proof,
    Descriptor,
};
use opml_dnn::{DescriptorProof, UpdateProof};
use opml_merkle::{keccak256, Hash};

use crate::game::{GameError, GraphView, VmView};

/// The fields of `OptimisticML.HandoverProof`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandoverData {
    /// Node `lo`'s output commitment (new value of slot `m + lo`).
    pub output: Hash,
    /// Siblings of slot `m + lo`, shared by `S_lo` and `S_{lo+1}`.
    pub update_siblings: Vec<Hash>,
    /// Node `lo`'s descriptor bytes.
    pub descriptor: Vec<u8>,
    /// Siblings of the descriptor root under the model root.
    pub descriptor_siblings: Vec<Hash>,
    /// Value of each descriptor input slot in `S_lo`, in descriptor order.
    pub input_values: Vec<Hash>,
    /// Siblings of each input slot in `S_lo`.
    pub input_siblings: Vec<Vec<Hash>>,
    /// The 173-byte final VM state.
    pub final_state: Vec<u8>,
    /// Siblings of the output region in the final state's memory.
    pub output_region_siblings: Vec<Hash>,
}

/// What the contract registered for the model (the parts the handover needs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelShape {
    /// Model commitment.
    pub root: Hash,
    /// Number of nodes `n`.
    pub node_count: u32,
    /// Number of graph inputs `m`.
    pub input_count: u32,
    /// Slot vector length `L`.
    pub slot_count: u32,
}

/// Which of the contract's handover checks fails (named as the contract's errors).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The update proof from `hashLo` to `hashHi` fails.
    #[error("BadUpdateProof")]
    BadUpdateProof,
    /// The descriptor is not leaf `lo` of the model root.
    #[error("BadDescriptorProof")]
    BadDescriptorProof,
    /// The descriptor does not decode.
    #[error("BadDescriptor({0})")]
    BadDescriptor(usize),
    /// The descriptor's output slot is not `m + lo`.
    #[error("WrongOutputSlot")]
    WrongOutputSlot,
    /// Input values or sibling lists do not match the descriptor's input count.
    #[error("InputCountMismatch")]
    InputCountMismatch,
    /// Input `i`'s slot proof fails.
    #[error("BadInputProof({0})")]
    BadInputProof(usize),
    /// The final state is not exited with 0 holding the output.
    #[error("BadFinalState")]
    BadFinalState,
    /// The descriptor's regions cannot form an image.
    #[error("image layout: {0}")]
    Layout(String),
}

impl HandoverData {
    /// The handover of node `node` from a player's graph view, the committed node images
    /// and its VM view of that node.
    pub fn build(graph: &GraphView, images: &[NodeImage], node: usize, vm: &VmView) -> Result<Self, GameError> {
        let trace = graph.trace();
        let up = update_proof(trace, node)?;
        let dp = descriptor_proof(graph.model(), images, node)?;
        let desc = Descriptor::decode(&dp.descriptor)?;
        let mut input_values = Vec::with_capacity(desc.inputs.len());
        let mut input_siblings = Vec::with_capacity(desc.inputs.len());
        for &(slot, _) in &desc.inputs {
            let p = slot_proof(trace, node, slot as usize)?;
            input_values.push(p.value);
            input_siblings.push(p.siblings);
        }
        Ok(HandoverData {
            output: up.new,
            update_siblings: up.siblings,
            descriptor: dp.descriptor,
            descriptor_siblings: dp.siblings,
            input_values,
            input_siblings,
            final_state: vm.final_state().encode().to_vec(),
            output_region_siblings: vm.output_region_siblings()?,
        })
    }

    /// The contract's checks for node `lo` between `hash_lo = S_lo` and `hash_hi = S_{lo+1}`,
    /// in its order: `Ok((node pre-state hash, final state hash))` — the phase-2 interval
    /// ends — or the first failing check.
    pub fn check(
        &self,
        model: &ModelShape,
        lo: u32,
        hash_lo: &Hash,
        hash_hi: &Hash,
    ) -> Result<(Hash, Hash), Rejection> {
        let slot = model.input_count + lo;
        let up = UpdateProof { slot, old: [0u8; 32], new: self.output, siblings: self.update_siblings.clone() };
        if !verify_update_proof(hash_lo, hash_hi, model.slot_count, &up) {
            return Err(Rejection::BadUpdateProof);
        }
        let dp = DescriptorProof {
            node: lo,
            descriptor: self.descriptor.clone(),
            siblings: self.descriptor_siblings.clone(),
        };
        if !verify_descriptor_proof(&model.root, model.node_count, &dp) {
            return Err(Rejection::BadDescriptorProof);
        }
        let desc = Descriptor::decode(&self.descriptor).map_err(|_| Rejection::BadDescriptor(self.descriptor.len()))?;
        if desc.output_slot != slot {
            return Err(Rejection::WrongOutputSlot);
        }
        if self.input_values.len() != desc.inputs.len() || self.input_siblings.len() != desc.inputs.len() {
            return Err(Rejection::InputCountMismatch);
        }
        for (i, ((&(s, _), value), siblings)) in
            desc.inputs.iter().zip(&self.input_values).zip(&self.input_siblings).enumerate()
        {
            let p = opml_dnn::SlotProof { slot: s, value: *value, siblings: siblings.clone() };
            if !verify_slot_proof(hash_lo, model.slot_count, &p) {
                return Err(Rejection::BadInputProof(i));
            }
        }
        let final_hash = keccak256(&self.final_state);
        if !verify_final_state(
            &final_hash,
            &self.final_state,
            desc.output_len as usize,
            &self.output,
            &self.output_region_siblings,
        ) {
            return Err(Rejection::BadFinalState);
        }
        let roots = descriptor_image_roots(&desc, &self.input_values).map_err(|e| Rejection::Layout(e.to_string()))?;
        let pre = roots.pre_state().map_err(|e| Rejection::Layout(e.0))?.hash();
        Ok((pre, final_hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::testdata::mlp;
    use opml_compiler::compile_node;
    use opml_dnn::commit::slot_vector_len;

    #[test]
    fn honest_handovers_pass_and_each_tampered_field_is_named() {
        let d = mlp();
        let g = d.model.graph();
        let shape = ModelShape {
            root: d.root,
            node_count: g.nodes.len() as u32,
            input_count: g.inputs.len() as u32,
            slot_count: slot_vector_len(&d.model) as u32,
        };
        for node in 0..g.nodes.len() {
            let prog = compile_node(&d.model, node).unwrap();
            let ins = d.honest.node_inputs(node).unwrap();
            let vm = VmView::new(&prog, &ins, 20).unwrap();
            let h = HandoverData::build(&d.honest, &d.images, node, &vm).unwrap();
            let (lo, hi) = (d.honest.state(node).unwrap(), d.honest.state(node + 1).unwrap());
            let (pre, fin) = h.check(&shape, node as u32, &lo, &hi).unwrap();
            // The pre-state derived from hashes alone is the real VM's initial state.
            assert_eq!(pre, prog.machine(&ins).unwrap().state_hash(), "node {node}");
            assert_eq!(fin, vm.final_state().hash());
            let bad = |f: &dyn Fn(&mut HandoverData)| {
                let mut x = h.clone();
                f(&mut x);
                x.check(&shape, node as u32, &lo, &hi).unwrap_err()
            };
            assert_eq!(bad(&|x| x.update_siblings[0][0] ^= 1), Rejection::BadUpdateProof);
            assert_eq!(bad(&|x| x.output[3] ^= 1), Rejection::BadUpdateProof);
            assert_eq!(bad(&|x| x.descriptor[0] ^= 1), Rejection::BadDescriptorProof);
            assert_eq!(bad(&|x| x.descriptor_siblings.clear()), Rejection::BadDescriptorProof);
            assert_eq!(bad(&|x| x.input_values[0][31] ^= 1), Rejection::BadInputProof(0));
            assert_eq!(bad(&|x| x.input_siblings[0].pop().map(drop).unwrap()), Rejection::BadInputProof(0));
            assert_eq!(bad(&|x| x.input_values.push([0; 32])), Rejection::InputCountMismatch);
            assert_eq!(bad(&|x| x.final_state[44] = 0), Rejection::BadFinalState);
            assert_eq!(bad(&|x| x.output_region_siblings[0][0] ^= 1), Rejection::BadFinalState);
            // Another node's lo: the update proof no longer fits.
            let other = (node as u32 + 1) % shape.node_count;
            assert!(h.check(&shape, other, &lo, &hi).is_err());
        }
    }
}
