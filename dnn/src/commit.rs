//! Commitments (DESIGN §4, `docs/spec/commitments.md`): tensors, node descriptors, the model,
//! and graph states over the slot vector. Every root uses the one tree of `opml-merkle`.

use opml_merkle::{bytes_root, hash_pair, leaves_root, Hash};
use rayon::prelude::*;
use serde::Serialize;

use crate::graph::{Model, Op};
use crate::tensor::{Tensor, TensorSpec};

/// Commitment of a tensor: `bytes_root` of its row-major little-endian bytes.
pub fn tensor_commitment(t: &Tensor) -> Hash {
    bytes_root(&t.to_le_bytes())
}

#[derive(Serialize)]
struct ParamBlob<'a> {
    op: &'a Op,
    inputs: Vec<&'a TensorSpec>,
    output: &'a TensorSpec,
}

/// Parameter blob of node `j`: bincode (v1, default options) of the op with its
/// parameters, the input specs and the output spec.
pub fn param_blob(model: &Model, j: usize) -> Vec<u8> {
    let g = model.graph();
    let node = &g.nodes[j];
    let blob = ParamBlob {
        op: &node.op,
        inputs: node.inputs.iter().map(|&s| &model.specs()[s]).collect(),
        output: &model.specs()[g.node_slot(j)],
    };
    bincode::serialize(&blob).expect("serializing plain data to memory cannot fail")
}

/// Commitments of every constant tensor (parallel).
pub fn weight_roots(model: &Model) -> Vec<Hash> {
    model.weights().par_iter().map(tensor_commitment).collect()
}

/// Descriptor bytes of node `j` (layout in `docs/spec/commitments.md`):
/// tag u32 | output slot u32 | input count u32 | weight count u32 | param root |
/// weight roots | input slots (u32 each), all little-endian.
pub fn descriptor_bytes(model: &Model, j: usize, weight_roots: &[Hash]) -> Vec<u8> {
    let g = model.graph();
    let node = &g.nodes[j];
    let ws = node.op.weights();
    let mut d = Vec::with_capacity(48 + 32 * ws.len() + 4 * node.inputs.len());
    d.extend_from_slice(&node.op.tag().to_le_bytes());
    d.extend_from_slice(&(g.node_slot(j) as u32).to_le_bytes());
    d.extend_from_slice(&(node.inputs.len() as u32).to_le_bytes());
    d.extend_from_slice(&(ws.len() as u32).to_le_bytes());
    d.extend_from_slice(&bytes_root(&param_blob(model, j)));
    for w in ws {
        d.extend_from_slice(&weight_roots[w]);
    }
    for &s in &node.inputs {
        d.extend_from_slice(&(s as u32).to_le_bytes());
    }
    d
}

/// Root of every node descriptor, in topological order.
pub fn descriptor_roots(model: &Model) -> Vec<Hash> {
    let wr = weight_roots(model);
    (0..model.graph().nodes.len()).into_par_iter().map(|j| bytes_root(&descriptor_bytes(model, j, &wr))).collect()
}

/// Root over `leaves` zero-padded to the next power of two (at least one leaf).
pub fn padded_root(leaves: &[Hash]) -> Hash {
    let n = leaves.len().max(1).next_power_of_two();
    let mut v = leaves.to_vec();
    v.resize(n, [0u8; 32]);
    leaves_root(&v)
}

/// Model commitment: root over the descriptor roots (zero-padded to a power of two).
pub fn model_commitment(model: &Model) -> Hash {
    padded_root(&descriptor_roots(model))
}

/// Length of the slot vector: the next power of two of `inputs + nodes`.
pub fn slot_vector_len(model: &Model) -> usize {
    model.graph().slot_count().next_power_of_two()
}

/// The slot vector with every tree level cached, updated one slot at a time.
#[derive(Clone, Debug)]
pub struct SlotTree {
    levels: Vec<Vec<Hash>>,
}

impl SlotTree {
    /// All-zero slot vector of `len` (a power of two) slots.
    pub fn new(len: usize) -> Self {
        assert!(len.is_power_of_two(), "slot vector length must be a power of two");
        let mut levels = vec![vec![[0u8; 32]; len]];
        while levels.last().expect("non-empty").len() > 1 {
            let prev = levels.last().expect("non-empty");
            let next: Vec<Hash> = prev.chunks_exact(2).map(|p| hash_pair(&p[0], &p[1])).collect();
            levels.push(next);
        }
        Self { levels }
    }

    /// Set a slot's value and update its path to the root.
    pub fn set(&mut self, slot: usize, value: Hash) {
        let mut i = slot;
        self.levels[0][i] = value;
        for h in 1..self.levels.len() {
            let l = i & !1;
            let v = hash_pair(&self.levels[h - 1][l], &self.levels[h - 1][l + 1]);
            i /= 2;
            self.levels[h][i] = v;
        }
    }

    /// Current root (the graph state).
    pub fn root(&self) -> Hash {
        self.levels.last().expect("non-empty")[0]
    }

    /// The sibling path of a slot (bottom-up), for proofs against the state.
    pub fn path(&self, slot: usize) -> Vec<Hash> {
        let mut i = slot;
        let mut out = Vec::new();
        for h in 0..self.levels.len() - 1 {
            out.push(self.levels[h][i ^ 1]);
            i /= 2;
        }
        out
    }
}

/// Graph states `S_0..S_n` from the input commitments and every node's output commitment.
pub fn graph_states(slot_len: usize, inputs: &[Hash], nodes: &[Hash]) -> Vec<Hash> {
    let mut tree = SlotTree::new(slot_len);
    for (i, c) in inputs.iter().enumerate() {
        tree.set(i, *c);
    }
    let mut states = Vec::with_capacity(nodes.len() + 1);
    states.push(tree.root());
    for (j, c) in nodes.iter().enumerate() {
        tree.set(inputs.len() + j, *c);
        states.push(tree.root());
    }
    states
}

/// The honest path's commitments: inputs and output only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoCommitments {
    /// Commitment of each graph input.
    pub inputs: Vec<Hash>,
    /// Commitment of the output tensor.
    pub output: Hash,
}

/// Commit to the inputs and the output.
pub fn io_commitments(inputs: &[Tensor], output: &Tensor) -> IoCommitments {
    IoCommitments { inputs: inputs.iter().map(tensor_commitment).collect(), output: tensor_commitment(output) }
}
