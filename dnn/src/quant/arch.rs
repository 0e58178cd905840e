//! Architecture description (JSON) of a float sequential model.

use serde::{Deserialize, Serialize};

use crate::error::{DnnError, Result};

/// Normalisation applied to raw inputs: `x * scale + shift`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalize {
    /// Multiplier.
    pub scale: f64,
    /// Offset.
    pub shift: f64,
}

fn one_one() -> [usize; 2] {
    [1, 1]
}

/// One layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Layer {
    /// 2-D convolution, weight `[OC, C, KH, KW]`, bias `[OC]`.
    Conv2d {
        /// Weight tensor name.
        weight: String,
        /// Bias tensor name.
        #[serde(default)]
        bias: Option<String>,
        /// Stride.
        #[serde(default = "one_one")]
        stride: [usize; 2],
        /// Symmetric padding (height, width).
        #[serde(default)]
        padding: [usize; 2],
    },
    /// Fully connected, weight `[N, K]`, bias `[N]`.
    Linear {
        /// Weight tensor name.
        weight: String,
        /// Bias tensor name.
        #[serde(default)]
        bias: Option<String>,
    },
    /// ReLU.
    Relu,
    /// Max pooling.
    Maxpool2d {
        /// Kernel.
        kernel: [usize; 2],
        /// Stride.
        stride: [usize; 2],
    },
    /// Average pooling.
    Avgpool2d {
        /// Kernel.
        kernel: [usize; 2],
        /// Stride.
        stride: [usize; 2],
    },
    /// Flatten all but the batch axis.
    Flatten,
    /// Logistic sigmoid (an int8 lookup table after quantization).
    Sigmoid,
    /// tanh (lookup table).
    Tanh,
    /// GELU, tanh form `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))` (lookup table).
    Gelu,
    /// SiLU `x * sigmoid(x)` (lookup table).
    Silu,
}

impl Layer {
    /// The float function of an element-wise activation layer, if this is one.
    pub fn activation(&self) -> Option<fn(f64) -> f64> {
        fn sigmoid(x: f64) -> f64 {
            1.0 / (1.0 + (-x).exp())
        }
        fn gelu(x: f64) -> f64 {
            0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
        }
        fn silu(x: f64) -> f64 {
            x * sigmoid(x)
        }
        match self {
            Layer::Sigmoid => Some(sigmoid),
            Layer::Tanh => Some(f64::tanh),
            Layer::Gelu => Some(gelu),
            Layer::Silu => Some(silu),
            _ => None,
        }
    }
}

/// A sequential float model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Arch {
    /// Model name.
    pub name: String,
    /// Shape of one sample (without the batch axis), e.g. `[1, 8, 8]` or `[64]`.
    pub input_shape: Vec<usize>,
    /// Optional normalisation of raw inputs.
    #[serde(default)]
    pub normalize: Option<Normalize>,
    /// Layers in order.
    pub layers: Vec<Layer>,
}

fn arch_err(field: impl Into<String>, msg: impl Into<String>) -> DnnError {
    DnnError::Arch { field: field.into(), msg: msg.into() }
}

impl Arch {
    /// Parse JSON, naming the offending field on error (`layers[3]` for an unknown op).
    pub fn from_json(text: &str) -> Result<Self> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| arch_err("<root>", format!("not JSON: {e}")))?;
        let obj = v.as_object().ok_or_else(|| arch_err("<root>", "must be an object"))?;
        for k in obj.keys() {
            if !["name", "input_shape", "normalize", "layers"].contains(&k.as_str()) {
                return Err(arch_err(k.clone(), "unknown field"));
            }
        }
        let name = obj
            .get("name")
            .and_then(|n| n.as_str())
            .ok_or_else(|| arch_err("name", "missing or not a string"))?
            .to_string();
        let input_shape: Vec<usize> =
            serde_json::from_value(obj.get("input_shape").cloned().ok_or_else(|| arch_err("input_shape", "missing"))?)
                .map_err(|e| arch_err("input_shape", e.to_string()))?;
        let normalize = match obj.get("normalize") {
            None | Some(serde_json::Value::Null) => None,
            Some(n) => Some(serde_json::from_value(n.clone()).map_err(|e| arch_err("normalize", e.to_string()))?),
        };
        let layers_v = obj
            .get("layers")
            .and_then(|l| l.as_array())
            .ok_or_else(|| arch_err("layers", "missing or not an array"))?;
        let mut layers = Vec::with_capacity(layers_v.len());
        for (i, l) in layers_v.iter().enumerate() {
            let layer: Layer =
                serde_json::from_value(l.clone()).map_err(|e| arch_err(format!("layers[{i}]"), e.to_string()))?;
            layers.push(layer);
        }
        if layers.is_empty() {
            return Err(arch_err("layers", "must not be empty"));
        }
        Ok(Self { name, input_shape, normalize, layers })
    }
}
