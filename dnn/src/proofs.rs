//! Proofs for the dispute game (`docs/spec/commitments.md` §Proofs for the game): slot
//! proofs against a graph state, update proofs between consecutive graph states, and
//! descriptor proofs against the model commitment.
//!
//! Each proof has a builder (from a [`Trace`] or a [`Model`]) and a pure `verify_*` twin
//! that uses only hashes and the proof's own fields: the computation the contract repeats.

use opml_merkle::{bytes_root, hash_pair, path_root, Hash};
use thiserror::Error;

use crate::commit::{descriptors, NodeImage, SlotTree, DESCRIPTOR_HEADER};
use crate::graph::Model;
use crate::trace::Trace;

/// Why a proof cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ProofError {
    /// A graph state index outside `0..=n`.
    #[error("graph state S_{index} does not exist: the trace has S_0..S_{last}")]
    State {
        /// Requested state.
        index: usize,
        /// Last state index (`n`).
        last: usize,
    },
    /// A slot outside the slot vector.
    #[error("slot {slot} is outside the slot vector of {len} slots")]
    Slot {
        /// Requested slot.
        slot: usize,
        /// Slot vector length.
        len: usize,
    },
    /// A node index outside the model.
    #[error("node {node} does not exist: the model has {count} nodes")]
    Node {
        /// Requested node.
        node: usize,
        /// Number of nodes.
        count: usize,
    },
    /// The trace does not hold together (lengths or recomputed states differ).
    #[error("trace: {0}")]
    Trace(String),
    /// A descriptor's bytes do not follow the descriptor layout.
    #[error("descriptor: {0}")]
    Descriptor(String),
}

/// Height of a tree over `len` leaves (`len` a power of two), or `None`.
fn height_of(len: u64) -> Option<usize> {
    len.is_power_of_two().then(|| len.trailing_zeros() as usize)
}

/// Slot `slot` of a graph state holds `value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotProof {
    /// Slot index.
    pub slot: u32,
    /// The slot's value (a tensor commitment, or 32 zero bytes if unproduced).
    pub value: Hash,
    /// Siblings from the slot up to the root (`log2(L)` of them).
    pub siblings: Vec<Hash>,
}

/// `S_{i+1}` equals `S_i` with only slot `slot` changed from `old` to `new`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateProof {
    /// The changed slot (`m + i` for the step from `S_i` to `S_{i+1}`).
    pub slot: u32,
    /// Value in `S_i`.
    pub old: Hash,
    /// Value in `S_{i+1}`.
    pub new: Hash,
    /// Siblings of the slot, equal in both states.
    pub siblings: Vec<Hash>,
}

/// Node `node`'s descriptor is leaf `node` under the model commitment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescriptorProof {
    /// Node index (topological order).
    pub node: u32,
    /// The exact descriptor bytes (`docs/spec/commitments.md` §Node descriptor).
    pub descriptor: Vec<u8>,
    /// Siblings of the descriptor root up to the model commitment.
    pub siblings: Vec<Hash>,
}

/// Check the trace's lengths and return `(m, n, L)`.
fn trace_shape(trace: &Trace) -> Result<(usize, usize, usize), ProofError> {
    let (m, n, len) = (trace.inputs.len(), trace.nodes.len(), trace.slot_len as usize);
    if trace.states.len() != n + 1 {
        return Err(ProofError::Trace(format!("{} graph states for {n} nodes (want {})", trace.states.len(), n + 1)));
    }
    if !len.is_power_of_two() || len < m + n {
        return Err(ProofError::Trace(format!("slot vector length {len} is not a power of two >= {}", m + n)));
    }
    Ok((m, n, len))
}

/// Value of `slot` in graph state `S_i` of a trace (zero if not yet produced or unused).
pub fn slot_value(trace: &Trace, i: usize, slot: usize) -> Result<Hash, ProofError> {
    let (m, n, len) = trace_shape(trace)?;
    if i > n {
        return Err(ProofError::State { index: i, last: n });
    }
    if slot >= len {
        return Err(ProofError::Slot { slot, len });
    }
    Ok(if slot < m {
        trace.inputs[slot]
    } else if slot < m + i {
        trace.nodes[slot - m]
    } else {
        [0u8; 32]
    })
}

/// The slot vector of graph state `S_i` (inputs and the outputs of nodes `1..i`), checked
/// against the trace's recorded `S_i`.
pub fn state_tree(trace: &Trace, i: usize) -> Result<SlotTree, ProofError> {
    let (_, n, len) = trace_shape(trace)?;
    if i > n {
        return Err(ProofError::State { index: i, last: n });
    }
    let mut tree = SlotTree::new(len);
    for (s, c) in trace.inputs.iter().chain(&trace.nodes[..i]).enumerate() {
        tree.set(s, *c);
    }
    if tree.root() != trace.states[i] {
        return Err(ProofError::Trace(format!("S_{i} recorded in the trace differs from its slots' root")));
    }
    Ok(tree)
}

/// Proof that slot `slot` of `S_i` holds its value.
pub fn slot_proof(trace: &Trace, i: usize, slot: usize) -> Result<SlotProof, ProofError> {
    let value = slot_value(trace, i, slot)?;
    let tree = state_tree(trace, i)?;
    Ok(SlotProof { slot: slot as u32, value, siblings: tree.path(slot) })
}

/// Whether `proof` shows that `state` (over `slot_len` slots) holds `proof.value` at
/// `proof.slot`.
pub fn verify_slot_proof(state: &Hash, slot_len: u32, proof: &SlotProof) -> bool {
    let Some(h) = height_of(slot_len as u64) else { return false };
    proof.slot < slot_len
        && proof.siblings.len() == h
        && path_root(&proof.value, proof.slot as u64, &proof.siblings) == *state
}

/// Proof of the step from `S_i` to `S_{i+1}` (`i < n`): slot `m + i` changes from zero to
/// node `i`'s output commitment, nothing else changes.
pub fn update_proof(trace: &Trace, i: usize) -> Result<UpdateProof, ProofError> {
    let (m, n, _) = trace_shape(trace)?;
    if i >= n {
        return Err(ProofError::State { index: i + 1, last: n });
    }
    let slot = m + i;
    let old = slot_value(trace, i, slot)?;
    let new = slot_value(trace, i + 1, slot)?;
    let siblings = state_tree(trace, i)?.path(slot);
    // The siblings are shared: S_{i+1} must be reached from the same path.
    if path_root(&new, slot as u64, &siblings) != trace.states[i + 1] {
        return Err(ProofError::Trace(format!("S_{} recorded in the trace differs from its slots' root", i + 1)));
    }
    Ok(UpdateProof { slot: slot as u32, old, new, siblings })
}

/// Whether `proof` shows that `post` equals `pre` (both over `slot_len` slots) with only
/// slot `proof.slot` changed from `proof.old` to `proof.new`. The contract additionally
/// requires `proof.slot = m + i` and `proof.old` = zero.
pub fn verify_update_proof(pre: &Hash, post: &Hash, slot_len: u32, proof: &UpdateProof) -> bool {
    let Some(h) = height_of(slot_len as u64) else { return false };
    proof.slot < slot_len
        && proof.siblings.len() == h
        && path_root(&proof.old, proof.slot as u64, &proof.siblings) == *pre
        && path_root(&proof.new, proof.slot as u64, &proof.siblings) == *post
}

/// Proof that node `node`'s descriptor is leaf `node` of the model commitment
/// (`images`: each node's VM image binding, as committed).
pub fn descriptor_proof(model: &Model, images: &[NodeImage], node: usize) -> Result<DescriptorProof, ProofError> {
    let count = model.graph().nodes.len();
    if node >= count {
        return Err(ProofError::Node { node, count });
    }
    if images.len() != count {
        return Err(ProofError::Trace(format!("{} node images for {count} nodes", images.len())));
    }
    let descriptors = descriptors(model, images);
    let mut level: Vec<Hash> = descriptors.iter().map(|d| bytes_root(d)).collect();
    level.resize(count.next_power_of_two(), [0u8; 32]);
    let mut siblings = Vec::new();
    let mut i = node;
    while level.len() > 1 {
        siblings.push(level[i ^ 1]);
        level = level.chunks_exact(2).map(|p| hash_pair(&p[0], &p[1])).collect();
        i /= 2;
    }
    Ok(DescriptorProof { node: node as u32, descriptor: descriptors[node].clone(), siblings })
}

/// Whether `proof` shows that the model with commitment `model_root` and `node_count` nodes
/// has `proof.descriptor` as node `proof.node`'s descriptor.
pub fn verify_descriptor_proof(model_root: &Hash, node_count: u32, proof: &DescriptorProof) -> bool {
    let Some(h) = height_of((node_count.max(1) as u64).next_power_of_two()) else { return false };
    proof.node < node_count
        && proof.siblings.len() == h
        && path_root(&bytes_root(&proof.descriptor), proof.node as u64, &proof.siblings) == *model_root
}

/// The fields of a node descriptor, decoded from its bytes (what the contract reads after a
/// descriptor proof).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// Op tag (`docs/spec/ops.md`).
    pub op_tag: u32,
    /// Output slot.
    pub output_slot: u32,
    /// Output tensor length in bytes.
    pub output_len: u32,
    /// The kernel code and argument blob of the node's VM image.
    pub image: NodeImage,
    /// `bytes_root` of the parameter blob.
    pub param_root: Hash,
    /// Weight tensor commitments and byte lengths, in the op's order.
    pub weights: Vec<(Hash, u32)>,
    /// Input slots and byte lengths, in the node's input order.
    pub inputs: Vec<(u32, u32)>,
}

impl Descriptor {
    /// Decode descriptor bytes, checking that the length matches the counts.
    pub fn decode(b: &[u8]) -> Result<Self, ProofError> {
        if b.len() < DESCRIPTOR_HEADER {
            return Err(ProofError::Descriptor(format!(
                "{} bytes, the fixed header alone is {DESCRIPTOR_HEADER}",
                b.len()
            )));
        }
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let (a, w) = (u32_at(12) as u64, u32_at(16) as u64);
        let want = DESCRIPTOR_HEADER as u64 + 36 * w + 8 * a;
        if want != b.len() as u64 {
            return Err(ProofError::Descriptor(format!(
                "{} bytes, but {a} inputs and {w} weights need {want}",
                b.len()
            )));
        }
        let hash_at = |o: usize| -> Hash { b[o..o + 32].try_into().expect("32 bytes") };
        let (a, w) = (a as usize, w as usize);
        let wbase = DESCRIPTOR_HEADER;
        let ibase = wbase + 36 * w;
        Ok(Self {
            op_tag: u32_at(0),
            output_slot: u32_at(4),
            output_len: u32_at(8),
            image: NodeImage {
                code_len: u32_at(20),
                args_len: u32_at(24),
                code_root: hash_at(28),
                args_root: hash_at(60),
            },
            param_root: hash_at(92),
            weights: (0..w).map(|k| (hash_at(wbase + 36 * k), u32_at(wbase + 36 * k + 32))).collect(),
            inputs: (0..a).map(|k| (u32_at(ibase + 8 * k), u32_at(ibase + 8 * k + 4))).collect(),
        })
    }
}
