//! Errors of the game client.

use thiserror::Error;

/// Why a view, a proof or a move could not be built.
#[derive(Debug, Error)]
pub enum GameError {
    /// The native executor rejected a run.
    #[error("native run: {0}")]
    Dnn(#[from] opml_dnn::DnnError),
    /// A graph-level proof could not be built.
    #[error("graph proof: {0}")]
    Proof(#[from] opml_dnn::ProofError),
    /// A node could not be compiled or run in the VM.
    #[error("node image: {0}")]
    Compile(#[from] opml_compiler::CompileError),
    /// A VM region proof could not be built.
    #[error("region proof: {0}")]
    Region(#[from] opml_compiler::RegionProofError),
    /// Checkpoints could not be recorded.
    #[error("checkpoints: {0}")]
    Checkpoint(#[from] opml_vm::CheckpointError),
    /// A node index outside the model.
    #[error("node {node} does not exist: the model has {count} nodes")]
    Node {
        /// Requested node.
        node: usize,
        /// Number of nodes.
        count: usize,
    },
    /// A graph state index outside `0..=n`.
    #[error("graph state S_{index} does not exist: the view has S_0..S_{last}")]
    State {
        /// Requested state.
        index: u64,
        /// Last state index.
        last: u64,
    },
    /// A replacement tensor that does not fit its slot.
    #[error("lie for node {node}: {msg}")]
    Lie {
        /// Node.
        node: usize,
        /// What is wrong.
        msg: String,
    },
    /// A fault spec that does not parse.
    #[error("fault spec {spec:?}: {why} (the forms are output, node:K, step:K:S, token:T and challenge-all)")]
    FaultSpec {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        why: String,
    },
    /// A fault that cannot be injected into this run.
    #[error("fault {fault}: {why}")]
    FaultUnfit {
        /// The fault, as its spec.
        fault: String,
        /// Why it does not fit.
        why: String,
    },
    /// A bad argument (interval, arity, state count, depth).
    #[error("{0}")]
    Invalid(String),
}
