//! Float -> int8 quantization: architecture description, float reference executor,
//! calibration and lowering to the integer graph.

pub mod arch;
pub mod float;
pub mod lower;
