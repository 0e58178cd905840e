//! safetensors reading and writing with errors that name the file and tensor.

use std::collections::{BTreeMap, HashMap};

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::error::{DnnError, Result};
use crate::tensor::{DType, Tensor};

/// A float32 tensor read from a safetensors file.
#[derive(Clone, Debug, PartialEq)]
pub struct F32Tensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

fn st_err(file: &str, msg: impl Into<String>) -> DnnError {
    DnnError::Safetensors { file: file.into(), msg: msg.into() }
}

fn parse<'a>(bytes: &'a [u8], file: &str) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes).map_err(|e| st_err(file, format!("malformed: {e}")))
}

/// Read every tensor of a file as float32 (each must be F32).
pub fn read_f32_all(bytes: &[u8], file: &str) -> Result<BTreeMap<String, F32Tensor>> {
    let st = parse(bytes, file)?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(st_err(file, format!("tensor `{name}` is {:?}, expected F32", view.dtype())));
        }
        let data = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        out.insert(name, F32Tensor { shape: view.shape().to_vec(), data });
    }
    Ok(out)
}

/// An evaluation / inference data file: `inputs` (F32, N x ...) and optional `labels`
/// (I64, N).
#[derive(Clone, Debug, PartialEq)]
pub struct DataSet {
    /// Shape of `inputs` (first axis is the sample).
    pub shape: Vec<usize>,
    /// `inputs`, row-major.
    pub inputs: Vec<f32>,
    /// `labels`, if present.
    pub labels: Option<Vec<i64>>,
}

impl DataSet {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.shape.first().copied().unwrap_or(0)
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Shape of one sample.
    pub fn sample_shape(&self) -> &[usize] {
        self.shape.get(1..).unwrap_or(&[])
    }

    /// Values of sample `i`.
    pub fn sample(&self, i: usize) -> &[f32] {
        let n: usize = self.sample_shape().iter().product();
        &self.inputs[i * n..(i + 1) * n]
    }
}

/// Read a data file; `need_labels` makes a missing `labels` tensor an error.
pub fn read_dataset(bytes: &[u8], file: &str, need_labels: bool) -> Result<DataSet> {
    let st = parse(bytes, file)?;
    let inputs = st.tensor("inputs").map_err(|_| st_err(file, "missing tensor `inputs` (float32, N x input shape)"))?;
    if inputs.dtype() != Dtype::F32 {
        return Err(st_err(file, format!("tensor `inputs` is {:?}, expected F32", inputs.dtype())));
    }
    if inputs.shape().is_empty() {
        return Err(st_err(file, "tensor `inputs` must have a sample axis"));
    }
    let shape = inputs.shape().to_vec();
    let data: Vec<f32> = inputs.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let labels = match st.tensor("labels") {
        Ok(l) => {
            if l.dtype() != Dtype::I64 {
                return Err(st_err(file, format!("tensor `labels` is {:?}, expected I64", l.dtype())));
            }
            if l.shape() != [shape[0]] {
                return Err(st_err(
                    file,
                    format!("tensor `labels` has shape {:?}, expected [{}]", l.shape(), shape[0]),
                ));
            }
            Some(l.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
        }
        Err(_) if need_labels => return Err(st_err(file, "missing tensor `labels` (int64, N)")),
        Err(_) => None,
    };
    for (name, _) in st.tensors() {
        if name != "inputs" && name != "labels" {
            return Err(st_err(file, format!("unexpected tensor `{name}` (want `inputs`, `labels`)")));
        }
    }
    Ok(DataSet { shape, inputs: data, labels })
}

fn st_dtype(d: DType) -> Dtype {
    match d {
        DType::I8 => Dtype::I8,
        DType::I32 => Dtype::I32,
    }
}

/// Serialize named integer tensors.
pub fn write_int(tensors: &[(String, Tensor)]) -> Result<Vec<u8>> {
    let bytes: Vec<(String, DType, Vec<usize>, Vec<u8>)> =
        tensors.iter().map(|(n, t)| (n.clone(), t.dtype(), t.shape().to_vec(), t.to_le_bytes())).collect();
    let mut views = Vec::with_capacity(bytes.len());
    for (n, d, s, b) in &bytes {
        let v =
            TensorView::new(st_dtype(*d), s.clone(), b).map_err(|e| st_err("<write>", format!("tensor `{n}`: {e}")))?;
        views.push((n.clone(), v));
    }
    safetensors::serialize(views, None).map_err(|e| st_err("<write>", e.to_string()))
}

/// Serialize named float32 tensors.
pub fn write_f32(tensors: &BTreeMap<String, F32Tensor>) -> Result<Vec<u8>> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.shape.clone(), t.data.iter().flat_map(|v| v.to_le_bytes()).collect()))
        .collect();
    let mut views = Vec::with_capacity(bytes.len());
    for (n, s, b) in &bytes {
        let v =
            TensorView::new(Dtype::F32, s.clone(), b).map_err(|e| st_err("<write>", format!("tensor `{n}`: {e}")))?;
        views.push((n.clone(), v));
    }
    safetensors::serialize(views, None).map_err(|e| st_err("<write>", e.to_string()))
}

/// Read named integer tensors with the given expected (name, dtype, shape) list; missing,
/// extra or mismatched tensors are errors naming the tensor.
pub fn read_int(bytes: &[u8], file: &str, want: &[(String, DType, Vec<usize>)]) -> Result<Vec<Tensor>> {
    let st = parse(bytes, file)?;
    let present: HashMap<String, TensorView<'_>> = st.tensors().into_iter().collect();
    let mut out = Vec::with_capacity(want.len());
    for (name, dtype, shape) in want {
        let v = present.get(name).ok_or_else(|| st_err(file, format!("missing tensor `{name}`")))?;
        if v.dtype() != st_dtype(*dtype) || v.shape() != shape.as_slice() {
            return Err(st_err(
                file,
                format!("tensor `{name}` is {:?} {:?}, expected {dtype} {shape:?}", v.dtype(), v.shape()),
            ));
        }
        out.push(Tensor::from_le_bytes(*dtype, shape.clone(), v.data())?);
    }
    if let Some(extra) = present.keys().find(|k| !want.iter().any(|w| &w.0 == *k)) {
        return Err(st_err(file, format!("extra tensor `{extra}` not in the graph")));
    }
    Ok(out)
}
