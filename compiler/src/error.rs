//! Errors of the compiler.

use thiserror::Error;

/// Everything that can go wrong lowering a node or building its image.
#[derive(Debug, Error)]
pub enum CompileError {
    /// The assembler rejected a kernel (a compiler bug, reported with the instruction).
    #[error("assembler: {0}")]
    Asm(String),
    /// The node cannot be laid out in the image (too large, too many inputs).
    #[error("node {node} ({op}): {msg}")]
    Layout {
        /// Node index.
        node: usize,
        /// Op name.
        op: &'static str,
        /// What does not fit.
        msg: String,
    },
    /// The tensors handed to the image do not match the node.
    #[error("node {node}: {msg}")]
    Tensor {
        /// Node index.
        node: usize,
        /// What does not match.
        msg: String,
    },
    /// The kernel did not exit with 0.
    #[error("node {node}: VM run failed: {msg}")]
    Run {
        /// Node index.
        node: usize,
        /// What happened.
        msg: String,
    },
    /// A model's recorded image binding does not match this build, or a descriptor does
    /// not match the data given with it.
    #[error("binding: {0}")]
    Binding(String),
    /// Error from the DNN library.
    #[error(transparent)]
    Dnn(#[from] opml_dnn::DnnError),
}
