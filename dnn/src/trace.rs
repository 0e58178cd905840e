//! The full trace (dispute path): per-node output commitments and graph states, and its
//! file layout (`docs/spec/commitments.md` §Trace file).

use opml_merkle::Hash;
use rayon::prelude::*;

use crate::commit::{graph_states, slot_vector_len, tensor_commitment};
use crate::error::{DnnError, Result};
use crate::graph::Model;
use crate::tensor::Tensor;

/// Trace file magic.
pub const TRACE_MAGIC: &[u8; 8] = b"OPMLTRC1";

/// Per-node output commitments and graph states of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    /// Model commitment.
    pub model: Hash,
    /// Length of the slot vector (a power of two).
    pub slot_len: u32,
    /// Commitment of each graph input.
    pub inputs: Vec<Hash>,
    /// Commitment of each node's output, in topological order.
    pub nodes: Vec<Hash>,
    /// Graph states `S_0..S_n` (`nodes.len() + 1` entries).
    pub states: Vec<Hash>,
}

impl Trace {
    /// Compute the trace from every slot of a run (as returned by [`crate::exec::run_all`])
    /// under the model commitment `model_root` (`commit::model_commitment`, or a bundle's
    /// recorded one). Tensors are hashed in parallel.
    pub fn with_model_commitment(model: &Model, model_root: Hash, slots: &[Tensor]) -> Self {
        let commits: Vec<Hash> = slots.par_iter().map(tensor_commitment).collect();
        let m = model.graph().inputs.len();
        let slot_len = slot_vector_len(model);
        let states = graph_states(slot_len, &commits[..m], &commits[m..]);
        Self {
            model: model_root,
            slot_len: slot_len as u32,
            inputs: commits[..m].to_vec(),
            nodes: commits[m..].to_vec(),
            states,
        }
    }

    /// Final graph state `S_n`.
    pub fn final_state(&self) -> Hash {
        *self.states.last().expect("at least S_0")
    }

    /// Encode (layout in `docs/spec/commitments.md`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(60 + 32 * (self.inputs.len() + 2 * self.nodes.len() + 1));
        out.extend_from_slice(TRACE_MAGIC);
        out.extend_from_slice(&self.model);
        out.extend_from_slice(&(self.inputs.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.nodes.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.slot_len.to_le_bytes());
        for c in &self.inputs {
            out.extend_from_slice(c);
        }
        out.extend_from_slice(&self.states[0]);
        for (c, s) in self.nodes.iter().zip(&self.states[1..]) {
            out.extend_from_slice(c);
            out.extend_from_slice(s);
        }
        out
    }

    /// Decode, checking the magic and the length.
    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        let bad = |msg: String| DnnError::Format { kind: "trace", msg };
        if b.len() < 52 || &b[..8] != TRACE_MAGIC {
            return Err(bad("missing OPMLTRC1 header".into()));
        }
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let model: Hash = b[8..40].try_into().expect("32 bytes");
        let (ni, nn, slot_len) = (u32_at(40) as usize, u32_at(44) as usize, u32_at(48));
        let want = 52usize
            .checked_add(ni.saturating_mul(32))
            .and_then(|v| v.checked_add(32))
            .and_then(|v| v.checked_add(nn.saturating_mul(64)));
        if want != Some(b.len()) {
            return Err(bad(format!("{} bytes, but {ni} inputs and {nn} nodes need {want:?}", b.len())));
        }
        if !slot_len.is_power_of_two() || (slot_len as usize) < ni + nn {
            return Err(bad(format!("slot vector length {slot_len} is not a power of two >= {}", ni + nn)));
        }
        let h = |o: usize| -> Hash { b[o..o + 32].try_into().expect("32 bytes") };
        let inputs = (0..ni).map(|i| h(52 + 32 * i)).collect();
        let base = 52 + 32 * ni;
        let mut states = vec![h(base)];
        let mut nodes = Vec::with_capacity(nn);
        for j in 0..nn {
            nodes.push(h(base + 32 + 64 * j));
            states.push(h(base + 64 + 64 * j));
        }
        Ok(Self { model, slot_len, inputs, nodes, states })
    }
}
