//! Deterministic integer DNN library: tensors, graph IR, ops, the native CPU executor,
//! commitments and traces, and float -> int8 quantization.
//!
//! Every op has one integer meaning (`docs/spec/ops.md`); commitments and the trace layout
//! are in `docs/spec/commitments.md`. All reductions are integer (wrapping where they can
//! overflow), so results are the same for any thread count.

pub mod bundle;
pub mod commit;
pub mod error;
pub mod exec;
pub mod fixed;
pub mod graph;
pub mod ops;
pub mod proofs;
pub mod quant;
pub mod st;
pub mod tensor;
pub mod trace;

pub use error::{DnnError, Result};
pub use graph::{ConstSpec, Graph, Model, Node, Op};
pub use proofs::{DescriptorProof, ProofError, SlotProof, UpdateProof};
pub use tensor::{DType, Data, Tensor, TensorSpec};
