//! Commitments (`docs/spec/commitments.md`): tensors, node descriptors, the model,
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

/// What a node descriptor binds of the node's VM image (`docs/spec/node-image.md`): the
/// kernel's machine code and the argument blob, each by its `bytes_root` and byte length.
/// The compiler supplies these ([`ImageBinder`]); the DNN library only records them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NodeImage {
    /// `bytes_root` of the kernel code placed at address 0.
    #[serde(with = "hex_hash")]
    pub code_root: Hash,
    /// Kernel code length in bytes.
    pub code_len: u32,
    /// `bytes_root` of the argument blob placed at `0x0010_0000`.
    #[serde(with = "hex_hash")]
    pub args_root: Hash,
    /// Argument blob length in bytes.
    pub args_len: u32,
}

/// Supplies the VM image binding of every node of a model (implemented by the compiler,
/// which owns the kernels and argument blobs; the DNN library cannot depend on it).
pub trait ImageBinder {
    /// One [`NodeImage`] per node, in topological order, or why the model cannot be bound
    /// (an op the compiler cannot lower, a region too large for its window).
    fn node_images(&self, model: &Model) -> std::result::Result<Vec<NodeImage>, String>;
}

/// `0x`-hex (de)serialization of 32-byte hashes in JSON metadata.
mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::bundle::hex32(h))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        crate::bundle::parse_hex32(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not 0x + 64 hex digits")))
    }
}

/// Length of the fixed part of a descriptor (before the weight and input entries).
pub const DESCRIPTOR_HEADER: usize = 124;

/// Descriptor bytes of node `j` (layout in `docs/spec/commitments.md`), all integers
/// little-endian `u32`: tag | output slot | output length | input count | weight count |
/// code length | args length | code root | args root | param root | per weight: root,
/// length | per input: slot, length.
pub fn descriptor_bytes(model: &Model, j: usize, weight_roots: &[Hash], image: &NodeImage) -> Vec<u8> {
    let g = model.graph();
    let node = &g.nodes[j];
    let ws = node.op.weights();
    let specs = model.specs();
    let out_slot = g.node_slot(j);
    let mut d = Vec::with_capacity(DESCRIPTOR_HEADER + 36 * ws.len() + 8 * node.inputs.len());
    for v in [
        node.op.tag(),
        out_slot as u32,
        specs[out_slot].byte_len() as u32,
        node.inputs.len() as u32,
        ws.len() as u32,
        image.code_len,
        image.args_len,
    ] {
        d.extend_from_slice(&v.to_le_bytes());
    }
    d.extend_from_slice(&image.code_root);
    d.extend_from_slice(&image.args_root);
    d.extend_from_slice(&bytes_root(&param_blob(model, j)));
    for w in ws {
        d.extend_from_slice(&weight_roots[w]);
        d.extend_from_slice(&(model.weights()[w].spec().byte_len() as u32).to_le_bytes());
    }
    for &s in &node.inputs {
        d.extend_from_slice(&(s as u32).to_le_bytes());
        d.extend_from_slice(&(specs[s].byte_len() as u32).to_le_bytes());
    }
    d
}

/// Every node descriptor, in topological order (`images[j]` binds node `j`'s VM image).
///
/// # Panics
/// If `images` does not have one entry per node.
pub fn descriptors(model: &Model, images: &[NodeImage]) -> Vec<Vec<u8>> {
    let n = model.graph().nodes.len();
    assert_eq!(images.len(), n, "one node image per node");
    let wr = weight_roots(model);
    (0..n).into_par_iter().map(|j| descriptor_bytes(model, j, &wr, &images[j])).collect()
}

/// Root of every node descriptor, in topological order.
pub fn descriptor_roots(model: &Model, images: &[NodeImage]) -> Vec<Hash> {
    descriptors(model, images).par_iter().map(|d| bytes_root(d)).collect()
}

/// Root over `leaves` zero-padded to the next power of two (at least one leaf).
pub fn padded_root(leaves: &[Hash]) -> Hash {
    let n = leaves.len().max(1).next_power_of_two();
    let mut v = leaves.to_vec();
    v.resize(n, [0u8; 32]);
    leaves_root(&v)
}

/// Model commitment: root over the descriptor roots (zero-padded to a power of two).
pub fn model_commitment(model: &Model, images: &[NodeImage]) -> Hash {
    padded_root(&descriptor_roots(model, images))
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
