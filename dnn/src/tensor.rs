//! Dense integer tensors (row-major) and their byte encoding.

use serde::{Deserialize, Serialize};

use crate::error::{DnnError, Result};

/// Element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DType {
    /// Signed 8-bit.
    I8,
    /// Signed 32-bit.
    I32,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I32 => 4,
        }
    }

    /// Lower-case name (`i8`, `i32`).
    pub fn name(self) -> &'static str {
        match self {
            DType::I8 => "i8",
            DType::I32 => "i32",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Static type of a tensor: dtype and shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TensorSpec {
    /// Element type.
    pub dtype: DType,
    /// Shape (row-major; the last axis is contiguous).
    pub shape: Vec<usize>,
}

impl TensorSpec {
    /// Build a spec.
    pub fn new(dtype: DType, shape: Vec<usize>) -> Self {
        Self { dtype, shape }
    }

    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Bytes of the encoded tensor.
    pub fn byte_len(&self) -> usize {
        self.numel() * self.dtype.size()
    }
}

/// Element storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Data {
    /// i8 elements.
    I8(Vec<i8>),
    /// i32 elements.
    I32(Vec<i32>),
}

/// A dense row-major tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Data,
}

/// Number of elements of `shape`, or `None` if the product overflows.
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

impl Tensor {
    /// Build a tensor, checking that `data` has exactly as many elements as `shape` needs.
    pub fn new(shape: Vec<usize>, data: Data) -> Result<Self> {
        let len = match &data {
            Data::I8(v) => v.len(),
            Data::I32(v) => v.len(),
        };
        match checked_numel(&shape) {
            Some(n) if n == len => Ok(Self { shape, data }),
            _ => Err(DnnError::Tensor {
                name: "<new>".into(),
                msg: format!("shape {shape:?} does not hold {len} elements"),
            }),
        }
    }

    /// An i8 tensor.
    pub fn from_i8(shape: Vec<usize>, v: Vec<i8>) -> Result<Self> {
        Self::new(shape, Data::I8(v))
    }

    /// An i32 tensor.
    pub fn from_i32(shape: Vec<usize>, v: Vec<i32>) -> Result<Self> {
        Self::new(shape, Data::I32(v))
    }

    /// All-zero tensor of a spec.
    pub fn zeros(spec: &TensorSpec) -> Self {
        let n = spec.numel();
        let data = match spec.dtype {
            DType::I8 => Data::I8(vec![0; n]),
            DType::I32 => Data::I32(vec![0; n]),
        };
        Self { shape: spec.shape.clone(), data }
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        match self.data {
            Data::I8(_) => DType::I8,
            Data::I32(_) => DType::I32,
        }
    }

    /// Shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Spec (dtype and shape).
    pub fn spec(&self) -> TensorSpec {
        TensorSpec::new(self.dtype(), self.shape.clone())
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        match &self.data {
            Data::I8(v) => v.len(),
            Data::I32(v) => v.len(),
        }
    }

    /// Storage.
    pub fn data(&self) -> &Data {
        &self.data
    }

    /// The i8 elements, if this is an i8 tensor.
    pub fn as_i8(&self) -> Option<&[i8]> {
        match &self.data {
            Data::I8(v) => Some(v),
            Data::I32(_) => None,
        }
    }

    /// The i32 elements, if this is an i32 tensor.
    pub fn as_i32(&self) -> Option<&[i32]> {
        match &self.data {
            Data::I32(v) => Some(v),
            Data::I8(_) => None,
        }
    }

    /// Elements widened to i32 (any dtype).
    pub fn to_i32_vec(&self) -> Vec<i32> {
        match &self.data {
            Data::I8(v) => v.iter().map(|&x| x as i32).collect(),
            Data::I32(v) => v.clone(),
        }
    }

    /// Same data, new shape (element count must match).
    pub fn reshaped(self, shape: Vec<usize>) -> Result<Self> {
        Self::new(shape, self.data)
    }

    /// Row-major little-endian bytes (the committed encoding).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        match &self.data {
            Data::I8(v) => v.iter().map(|&x| x as u8).collect(),
            Data::I32(v) => {
                let mut out = Vec::with_capacity(v.len() * 4);
                for x in v {
                    out.extend_from_slice(&x.to_le_bytes());
                }
                out
            }
        }
    }

    /// Decode row-major little-endian bytes.
    pub fn from_le_bytes(dtype: DType, shape: Vec<usize>, bytes: &[u8]) -> Result<Self> {
        let n = checked_numel(&shape).unwrap_or(usize::MAX);
        if n.checked_mul(dtype.size()) != Some(bytes.len()) {
            return Err(DnnError::Tensor {
                name: "<bytes>".into(),
                msg: format!("{} bytes do not encode a {dtype} tensor of shape {shape:?}", bytes.len()),
            });
        }
        let data = match dtype {
            DType::I8 => Data::I8(bytes.iter().map(|&b| b as i8).collect()),
            DType::I32 => {
                Data::I32(bytes.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
            }
        };
        Self::new(shape, data)
    }
}
