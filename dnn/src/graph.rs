//! Graph IR: nodes in topological order, one output each, weights as named constants.
//!
//! Slots: graph input `i` is slot `i`; node `j` writes slot `inputs.len() + j`.
//! Validation ([`Graph::infer_specs`]) checks every parameter, dtype and shape, so a
//! validated model never panics when run.

use serde::{Deserialize, Serialize};

use crate::error::{node_err, DnnError, Result};
pub use crate::ops::Op;
use crate::tensor::{checked_numel, Tensor, TensorSpec};

/// Index of a constant (weight) tensor in [`Graph::consts`].
pub type ConstId = usize;

/// A named constant's static type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConstSpec {
    /// Name (the safetensors key in a bundle).
    pub name: String,
    /// dtype and shape.
    pub spec: TensorSpec,
}

/// One node: an op reading slots, writing the next slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Human-readable name.
    pub name: String,
    /// Operation.
    pub op: Op,
    /// Input slots (each less than this node's output slot).
    pub inputs: Vec<usize>,
}

/// A model graph.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Graph {
    /// Graph inputs (slots `0..inputs.len()`).
    pub inputs: Vec<TensorSpec>,
    /// Constants.
    pub consts: Vec<ConstSpec>,
    /// Nodes in topological order.
    pub nodes: Vec<Node>,
    /// The slot holding the model output.
    pub output: usize,
}

impl Graph {
    /// Output slot of node `j`.
    pub fn node_slot(&self, j: usize) -> usize {
        self.inputs.len() + j
    }

    /// Number of slots (inputs + nodes).
    pub fn slot_count(&self) -> usize {
        self.inputs.len() + self.nodes.len()
    }

    /// Check the whole graph and return the spec of every slot.
    pub fn infer_specs(&self) -> Result<Vec<TensorSpec>> {
        if self.nodes.is_empty() {
            return Err(DnnError::Graph("graph has no nodes".into()));
        }
        let mut specs: Vec<TensorSpec> = self.inputs.clone();
        for (i, s) in specs.iter().enumerate() {
            if checked_numel(&s.shape).is_none() {
                return Err(DnnError::Graph(format!("input {i}: shape {:?} overflows", s.shape)));
            }
        }
        for (j, node) in self.nodes.iter().enumerate() {
            let slot = self.node_slot(j);
            for &inp in &node.inputs {
                if inp >= slot {
                    return Err(node_err(
                        j,
                        node.op.name(),
                        format!("input slot {inp} is not produced before this node (slot {slot})"),
                    ));
                }
            }
            let ins: Vec<&TensorSpec> = node.inputs.iter().map(|&s| &specs[s]).collect();
            let out = node.op.infer(&ins, &self.consts).map_err(|e| node_err(j, node.op.name(), e.0))?;
            if checked_numel(&out.shape).is_none() {
                return Err(node_err(j, node.op.name(), "output shape overflows"));
            }
            specs.push(out);
        }
        if self.output >= specs.len() {
            return Err(DnnError::Graph(format!("output slot {} does not exist", self.output)));
        }
        Ok(specs)
    }
}

/// A validated graph with its constant tensors.
#[derive(Clone, Debug)]
pub struct Model {
    graph: Graph,
    weights: Vec<Tensor>,
    specs: Vec<TensorSpec>,
}

impl Model {
    /// Validate `graph` and check that `weights` match its constants.
    pub fn new(graph: Graph, weights: Vec<Tensor>) -> Result<Self> {
        if weights.len() != graph.consts.len() {
            return Err(DnnError::Graph(format!(
                "{} weight tensors for {} constants",
                weights.len(),
                graph.consts.len()
            )));
        }
        for (c, w) in graph.consts.iter().zip(&weights) {
            if w.spec() != c.spec {
                return Err(DnnError::Tensor {
                    name: c.name.clone(),
                    msg: format!("is {} {:?}, graph expects {} {:?}", w.dtype(), w.shape(), c.spec.dtype, c.spec.shape),
                });
            }
        }
        let specs = graph.infer_specs()?;
        Ok(Self { graph, weights, specs })
    }

    /// The graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Constant tensors, indexed like `graph().consts`.
    pub fn weights(&self) -> &[Tensor] {
        &self.weights
    }

    /// Spec of every slot.
    pub fn specs(&self) -> &[TensorSpec] {
        &self.specs
    }

    /// Total number of constant elements (parameters).
    pub fn param_count(&self) -> usize {
        self.weights.iter().map(Tensor::numel).sum()
    }
}
