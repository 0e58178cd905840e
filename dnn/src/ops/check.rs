//! The error of an op's rule, and the checks the rules share.

use thiserror::Error;

use crate::tensor::{DType, TensorSpec};

/// Why a node's inputs or parameters do not fit its op (the checker adds the node and op),
/// or why an op cannot run on the values it was given.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct OpError(pub String);

/// Result of an op's rule.
pub type OpResult<T> = std::result::Result<T, OpError>;

/// An [`OpError`] with this message.
pub(crate) fn bad(msg: impl Into<String>) -> OpError {
    OpError(msg.into())
}

/// Require `s` to have dtype `d`; `what` names the operand in the message.
pub(crate) fn want(s: &TensorSpec, d: DType, what: &str) -> OpResult<()> {
    if s.dtype != d {
        return Err(bad(format!("{what} must be {d}, got {}", s.dtype)));
    }
    Ok(())
}

/// Whether `v` is an int8 value (zero points, clamps).
pub(crate) fn i8_range(v: i32) -> bool {
    (-128..=127).contains(&v)
}

/// Whether `[min, max]` is a non-empty int8 clamp.
pub(crate) fn clamp_range(min: i32, max: i32) -> bool {
    i8_range(min) && i8_range(max) && min <= max
}

/// Require two operands of one shape (element-wise binary ops).
pub(crate) fn same_shape(a: &TensorSpec, b: &TensorSpec) -> OpResult<()> {
    if a.shape != b.shape {
        return Err(bad(format!("shapes {:?} and {:?} differ", a.shape, b.shape)));
    }
    Ok(())
}
