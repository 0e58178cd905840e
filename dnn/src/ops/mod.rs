//! Kernels of every op over plain slices. Semantics: `docs/spec/ops.md`.

pub mod conv;
pub mod elementwise;
pub mod matmul;
pub mod norm;
pub mod pool;
pub mod shape;
pub mod softmax;
