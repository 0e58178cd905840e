//! The quantized model bundle: one file holding metadata (JSON), the graph (bincode) and
//! the weights (safetensors), plus an optional float reference. Layout in
//! `docs/spec/commitments.md` §Bundle.

use serde::{Deserialize, Serialize};

use crate::commit::{model_commitment, NodeImage};
use crate::error::{DnnError, Result};
use crate::graph::{Graph, Model};
use crate::quant::arch::Arch;
use crate::st;
use crate::tensor::{Tensor, TensorSpec};

/// Bundle file magic.
pub const BUNDLE_MAGIC: &[u8; 8] = b"OPMLBNDL";
/// Bundle format version.
pub const BUNDLE_VERSION: u32 = 1;

/// How raw float inputs become the int8 graph input:
/// `q = clamp(round((x * pre_scale + pre_shift) / scale) + zero_point, -128, 127)`,
/// rounding half away from zero, in f64.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputQuant {
    /// Shape of one raw sample.
    pub sample_shape: Vec<usize>,
    /// Normalisation scale folded into the model.
    pub pre_scale: f64,
    /// Normalisation shift folded into the model.
    pub pre_shift: f64,
    /// Quantization scale.
    pub scale: f64,
    /// Quantization zero point.
    pub zero_point: i32,
}

impl InputQuant {
    /// Quantize one raw sample.
    pub fn quantize(&self, x: &[f32]) -> Vec<i8> {
        x.iter()
            .map(|&v| {
                let r = (v as f64 * self.pre_scale + self.pre_shift) / self.scale;
                let q = r.round() + self.zero_point as f64; // f64::round: half away from zero
                q.clamp(-128.0, 127.0) as i8
            })
            .collect()
    }
}

/// Scale and zero point of the (int8) output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputQuant {
    /// Scale.
    pub scale: f64,
    /// Zero point.
    pub zero_point: i32,
}

/// Accuracy of the quantized model against its float original.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccuracyReport {
    /// Samples evaluated.
    pub samples: usize,
    /// Quantized top-1 accuracy (0..1).
    pub accuracy: f64,
    /// Float top-1 accuracy (0..1).
    pub float_accuracy: f64,
    /// Fraction of samples where both predict the same class.
    pub agreement: f64,
    /// Mean absolute difference of dequantized and float outputs.
    pub mean_abs_output_error: f64,
}

/// Bundle metadata (the JSON section).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Model name.
    pub name: String,
    /// Model commitment, 0x-prefixed hex (checked on load).
    pub model_commitment: String,
    /// Each node's VM image binding (kernel code and argument blob roots and lengths), as
    /// supplied by the compiler when the bundle was built; part of the model commitment.
    pub node_images: Vec<NodeImage>,
    /// Input quantization.
    pub input: InputQuant,
    /// Output quantization.
    pub output: OutputQuant,
    /// Float architecture, kept with the float reference weights.
    pub architecture: Option<Arch>,
    /// Calibration samples used.
    pub calibration_samples: usize,
    /// Report on the data given at quantization time.
    pub report: Option<AccuracyReport>,
}

/// A loaded bundle.
#[derive(Clone, Debug)]
pub struct Bundle {
    /// Metadata.
    pub meta: Metadata,
    /// The validated quantized model.
    pub model: Model,
    /// Float reference weights (safetensors bytes), if kept.
    pub float_weights: Option<Vec<u8>>,
}

/// `0x`-prefixed lower-case hex.
pub fn hex32(h: &[u8; 32]) -> String {
    let mut s = String::from("0x");
    for b in h {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Parse `0x` + 64 hex digits.
pub fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let h = s.strip_prefix("0x")?;
    if h.len() != 64 || !h.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&h[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn bad(msg: impl Into<String>) -> DnnError {
    DnnError::Format { kind: "bundle", msg: msg.into() }
}

impl Bundle {
    /// Encode the bundle.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let meta = serde_json::to_vec_pretty(&self.meta).map_err(|e| bad(e.to_string()))?;
        let graph = bincode::serialize(self.model.graph()).map_err(|e| bad(e.to_string()))?;
        let named: Vec<(String, Tensor)> = self
            .model
            .graph()
            .consts
            .iter()
            .zip(self.model.weights())
            .map(|(c, t)| (c.name.clone(), t.clone()))
            .collect();
        let weights = st::write_int(&named)?;
        let float = self.float_weights.clone().unwrap_or_default();
        let mut out = Vec::new();
        out.extend_from_slice(BUNDLE_MAGIC);
        out.extend_from_slice(&BUNDLE_VERSION.to_le_bytes());
        for sec in [&meta, &graph, &weights, &float] {
            out.extend_from_slice(&(sec.len() as u64).to_le_bytes());
            out.extend_from_slice(sec);
        }
        Ok(out)
    }

    /// Decode and validate a bundle (graph, weights, and the recorded model commitment).
    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        if b.len() < 12 || &b[..8] != BUNDLE_MAGIC {
            return Err(bad("missing OPMLBNDL header (not an opml bundle)"));
        }
        let version = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
        if version != BUNDLE_VERSION {
            return Err(bad(format!("version {version}, this build reads {BUNDLE_VERSION}")));
        }
        let mut pos = 12usize;
        let mut secs: Vec<&[u8]> = Vec::with_capacity(4);
        for name in ["metadata", "graph", "weights", "float reference"] {
            let len_bytes = b.get(pos..pos + 8).ok_or_else(|| bad(format!("truncated before section `{name}`")))?;
            let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes"));
            let start = pos + 8;
            let end = usize::try_from(len)
                .ok()
                .and_then(|l| start.checked_add(l))
                .filter(|&e| e <= b.len())
                .ok_or_else(|| bad(format!("section `{name}` of {len} bytes runs past the end")))?;
            secs.push(&b[start..end]);
            pos = end;
        }
        if pos != b.len() {
            return Err(bad(format!("{} trailing bytes", b.len() - pos)));
        }
        let meta: Metadata = serde_json::from_slice(secs[0]).map_err(|e| bad(format!("metadata: {e}")))?;
        let graph: Graph = bincode::deserialize(secs[1]).map_err(|e| bad(format!("graph: {e}")))?;
        let want: Vec<(String, crate::DType, Vec<usize>)> =
            graph.consts.iter().map(|c| (c.name.clone(), c.spec.dtype, c.spec.shape.clone())).collect();
        let weights = st::read_int(secs[2], "bundle weights", &want)?;
        let model = Model::new(graph, weights)?;
        let n = model.graph().nodes.len();
        if meta.node_images.len() != n {
            return Err(bad(format!("metadata has {} node_images, the graph has {n} nodes", meta.node_images.len())));
        }
        let root = hex32(&model_commitment(&model, &meta.node_images));
        if root != meta.model_commitment {
            return Err(bad(format!("model commitment {root} does not match metadata {}", meta.model_commitment)));
        }
        let float_weights = if secs[3].is_empty() { None } else { Some(secs[3].to_vec()) };
        Ok(Self { meta, model, float_weights })
    }

    /// The model commitment recorded in the metadata (checked against the graph and weights
    /// when the bundle was loaded or built).
    pub fn model_root(&self) -> Result<[u8; 32]> {
        parse_hex32(&self.meta.model_commitment)
            .ok_or_else(|| bad(format!("model_commitment `{}` is not 0x + 64 hex digits", self.meta.model_commitment)))
    }

    /// Each node's VM image binding, as committed.
    pub fn node_images(&self) -> &[NodeImage] {
        &self.meta.node_images
    }

    /// Quantize one raw float sample into the graph's (single) input tensor.
    pub fn quantize_input(&self, x: &[f32]) -> Result<Tensor> {
        let spec: &TensorSpec = self.model.graph().inputs.first().ok_or_else(|| bad("graph has no input"))?;
        if x.len() != spec.numel() {
            return Err(DnnError::Input {
                index: 0,
                msg: format!("sample has {} values, model input {:?} needs {}", x.len(), spec.shape, spec.numel()),
            });
        }
        Tensor::from_i8(spec.shape.clone(), self.meta.input.quantize(x))
    }
}
