//! The error type of the crate.

use thiserror::Error;

/// Everything that can go wrong building, loading or running a model.
#[derive(Debug, Error)]
pub enum DnnError {
    /// A tensor's data does not fit its shape or dtype.
    #[error("tensor `{name}`: {msg}")]
    Tensor {
        /// Tensor name (or a description of where it came from).
        name: String,
        /// What is wrong.
        msg: String,
    },
    /// A graph node is ill-formed (bad parameters, shapes or dtypes).
    #[error("node {node} ({op}): {msg}")]
    Node {
        /// Index of the node in topological order.
        node: usize,
        /// Op name.
        op: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// The graph as a whole is ill-formed.
    #[error("graph: {0}")]
    Graph(String),
    /// A safetensors file is malformed or holds the wrong tensors.
    #[error("safetensors {file}: {msg}")]
    Safetensors {
        /// File (or section) name.
        file: String,
        /// What is wrong.
        msg: String,
    },
    /// The architecture description is malformed.
    #[error("architecture field `{field}`: {msg}")]
    Arch {
        /// JSON path of the offending field.
        field: String,
        /// What is wrong.
        msg: String,
    },
    /// A bundle or trace file is malformed.
    #[error("{kind}: {msg}")]
    Format {
        /// "bundle" or "trace".
        kind: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// An input given at run time does not match the graph.
    #[error("input {index}: {msg}")]
    Input {
        /// Graph input index.
        index: usize,
        /// What is wrong.
        msg: String,
    },
}

/// Result alias of the crate.
pub type Result<T> = std::result::Result<T, DnnError>;

pub(crate) fn node_err(node: usize, op: &'static str, msg: impl Into<String>) -> DnnError {
    DnnError::Node { node, op, msg: msg.into() }
}
