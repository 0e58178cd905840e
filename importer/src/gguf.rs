//! A GGUF file as this crate reads it: typed metadata look-ups whose errors name the key,
//! the tensor table as plain descriptors, and tensor payloads by name.
//!
//! The container is parsed by `gguf-rs-lib`, which checks the header, bounds metadata sizes,
//! rejects duplicate keys and tensor names, and checks that every tensor's range is aligned
//! and lies inside the file before any payload is read. Nothing of its API leaks out of this
//! module except its error type, wrapped in [`ImportError::Gguf`].

use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek};
use std::path::Path;

use gguf_rs_lib::format::metadata::MetadataValue;
use gguf_rs_lib::reader::file_reader::GGUFFileReader;
use gguf_rs_lib::tensor::TensorType;

use crate::error::{ImportError, Result};

/// The element type of a tensor, as far as this import distinguishes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TensorKind {
    /// float32 values.
    F32,
    /// ggml Q8_0: blocks of 32 int8 values with one f16 scale.
    Q8_0,
    /// ggml Q4_1: blocks of 32 unsigned 4-bit values with an f16 scale and an f16 minimum.
    Q4_1,
    /// Any other ggml type (named as ggml names it); read by no model this crate imports.
    Other(&'static str),
}

impl TensorKind {
    fn of(t: TensorType) -> Self {
        match t {
            TensorType::F32 => Self::F32,
            TensorType::Q8_0 => Self::Q8_0,
            TensorType::Q4_1 => Self::Q4_1,
            other => Self::Other(other.name()),
        }
    }

    /// The ggml name (`F32`, `Q8_0`, `Q4_1`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "F32",
            Self::Q8_0 => "Q8_0",
            Self::Q4_1 => "Q4_1",
            Self::Other(name) => name,
        }
    }
}

impl std::fmt::Display for TensorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One entry of the tensor table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorDesc {
    /// The GGUF name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions in GGUF (ggml `ne`) order: the first is the fastest-varying, so a matrix of
    /// `rows` rows of `cols` values is `[cols, rows]`.
    pub dims: Vec<u64>,
    /// Element type.
    pub kind: TensorKind,
}

impl TensorDesc {
    /// Number of elements.
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// An open GGUF file: header, metadata and tensor table parsed; payloads read on demand.
#[derive(Debug)]
pub struct GgufFile<R> {
    reader: GGUFFileReader<R>,
}

impl GgufFile<BufReader<File>> {
    /// Open and parse the file at `path` (metadata and tensor table; no payload is read).
    pub fn open(path: &Path) -> Result<Self> {
        Self::new(BufReader::new(File::open(path)?))
    }
}

impl GgufFile<Cursor<Vec<u8>>> {
    /// Parse a GGUF file held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::new(Cursor::new(bytes))
    }
}

impl<R: Read + Seek> GgufFile<R> {
    /// Parse a GGUF stream.
    pub fn new(source: R) -> Result<Self> {
        Ok(Self { reader: GGUFFileReader::new(source)? })
    }

    /// GGUF format version.
    pub fn version(&self) -> u32 {
        self.reader.header().version
    }

    /// Number of metadata entries.
    pub fn metadata_len(&self) -> usize {
        self.reader.metadata().len()
    }

    fn value(&self, key: &str) -> Result<&MetadataValue> {
        self.reader.metadata().get(key).ok_or_else(|| ImportError::MissingKey { key: key.to_string() })
    }

    /// Whether the metadata holds `key`.
    pub fn has(&self, key: &str) -> bool {
        self.reader.metadata().contains_key(key)
    }

    /// An unsigned integer (any unsigned GGUF width), as `usize`.
    pub fn usize(&self, key: &str) -> Result<usize> {
        let v = self.value(key)?;
        v.as_u64().and_then(|x| usize::try_from(x).ok()).ok_or_else(|| type_error(key, "an unsigned integer", v))
    }

    /// A float (f32 or f64 in the file), as `f32`. An f64 is narrowed; every key this crate
    /// reads is written as f32 by llama.cpp's converter.
    pub fn f32(&self, key: &str) -> Result<f32> {
        let v = self.value(key)?;
        match v {
            MetadataValue::F32(x) => Ok(*x),
            MetadataValue::F64(x) => Ok(*x as f32),
            _ => Err(type_error(key, "a float", v)),
        }
    }

    /// A boolean.
    pub fn bool(&self, key: &str) -> Result<bool> {
        let v = self.value(key)?;
        v.as_bool().ok_or_else(|| type_error(key, "a boolean", v))
    }

    /// A string.
    pub fn str(&self, key: &str) -> Result<&str> {
        let v = self.value(key)?;
        v.as_str().ok_or_else(|| type_error(key, "a string", v))
    }

    /// An array of strings.
    pub fn str_array(&self, key: &str) -> Result<Vec<&str>> {
        self.array(key, "an array of strings", MetadataValue::as_str)
    }

    /// An array of signed integers (any signed GGUF width), as `i32`.
    pub fn i32_array(&self, key: &str) -> Result<Vec<i32>> {
        self.array(key, "an array of 32-bit signed integers", |v| v.as_i64().and_then(|x| i32::try_from(x).ok()))
    }

    fn array<'a, T>(
        &'a self,
        key: &str,
        expected: &'static str,
        each: impl Fn(&'a MetadataValue) -> Option<T>,
    ) -> Result<Vec<T>> {
        let v = self.value(key)?;
        let MetadataValue::Array(a) = v else { return Err(type_error(key, expected, v)) };
        a.values.iter().map(|x| each(x).ok_or_else(|| type_error(key, expected, x))).collect()
    }

    /// The tensor table, in file order.
    pub fn tensors(&self) -> Vec<TensorDesc> {
        self.reader
            .tensor_infos()
            .iter()
            .map(|t| TensorDesc {
                name: t.name().to_string(),
                dims: t.shape().dims().to_vec(),
                kind: TensorKind::of(t.tensor_type()),
            })
            .collect()
    }

    /// The payload of tensor `name`, as stored (blocks for quantized types, little-endian
    /// values otherwise).
    pub fn tensor_bytes(&mut self, name: &str) -> Result<Vec<u8>> {
        if self.reader.get_tensor_info(name).is_none() {
            return Err(ImportError::MissingTensor { name: name.to_string() });
        }
        let data =
            self.reader.load_tensor_data(name)?.ok_or_else(|| ImportError::MissingTensor { name: name.to_string() })?;
        Ok(data.into_owned())
    }
}

fn type_error(key: &str, expected: &'static str, got: &MetadataValue) -> ImportError {
    let got = match got {
        MetadataValue::Array(a) => format!("an array of {:?}", a.element_type),
        other => format!("{:?}", other.value_type()),
    };
    ImportError::KeyType { key: key.to_string(), expected, got }
}
