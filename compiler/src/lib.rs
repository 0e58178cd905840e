//! The opml compiler: lowers each DNN graph node to a VM kernel (RV32IM + `dot4`), a kernel
//! argument blob and a node image whose memory root follows from commitments alone
//! (`docs/spec/node-image.md`).

pub mod asm;
pub mod binding;
pub mod error;
pub mod kernels;
pub mod layout;
pub mod lower;
pub mod node;
pub mod proofs;

pub use error::CompileError;
pub use kernels::KernelId;
pub use node::{compile_node, compile_node_with, matches_native, NodeProgram, NodeRun};
pub use proofs::{RegionProof, RegionProofError};
