//! Shared test support: an image binder for tests of the DNN library alone (the real one is
//! the compiler's `KernelBinder`, which this crate cannot depend on). It binds each node to
//! a code root per op kind and an argument root over the node's parameter blob, so the
//! commitments it gives still change with every op, parameter and shape.
#![allow(dead_code)]

use opml_dnn::commit::{param_blob, ImageBinder, NodeImage};
use opml_dnn::Model;
use opml_merkle::{bytes_root, keccak256};

/// Binds node `j` to `keccak256(op name)` and `bytes_root(param_blob(j))`.
pub struct ParamBinder;

impl ImageBinder for ParamBinder {
    fn node_images(&self, model: &Model) -> Result<Vec<NodeImage>, String> {
        Ok((0..model.graph().nodes.len()).map(|j| image(model, j)).collect())
    }
}

/// The image [`ParamBinder`] gives node `j`.
pub fn image(model: &Model, j: usize) -> NodeImage {
    let name = model.graph().nodes[j].op.name();
    let blob = param_blob(model, j);
    NodeImage {
        code_root: keccak256(name.as_bytes()),
        code_len: name.len() as u32,
        args_root: bytes_root(&blob),
        args_len: blob.len() as u32,
    }
}

/// Every node's image under [`ParamBinder`].
pub fn images(model: &Model) -> Vec<NodeImage> {
    ParamBinder.node_images(model).expect("infallible")
}
