//! What binds a node's VM image to the model commitment (`docs/spec/commitments.md`
//! §Node descriptor): each node's kernel code and argument blob roots and lengths
//! ([`NodeImage`]), supplied to the DNN library's commitment through [`KernelBinder`], and
//! the pre-state a contract derives from a proven descriptor and its proven input slots
//! ([`descriptor_image_roots`], the Rust twin of `Handover.nodePreStateHash`).

use opml_dnn::commit::{model_commitment as commit_model, ImageBinder, NodeImage};
use opml_dnn::proofs::Descriptor;
use opml_dnn::Model;
use opml_merkle::{bytes_root, Hash};

use crate::error::CompileError;
use crate::layout::{ImageRoots, RegionRoot};
use crate::node::compile_node;

/// The image binding of node `j`: its kernel's code and its argument blob.
pub fn node_image(model: &Model, j: usize) -> Result<NodeImage, CompileError> {
    let p = compile_node(model, j)?;
    let len = |b: &[u8], what: &str| {
        u32::try_from(b.len()).map_err(|_| CompileError::Layout {
            node: j,
            op: p.op,
            msg: format!("{what} of {} bytes exceeds 32-bit lengths", b.len()),
        })
    };
    Ok(NodeImage {
        code_root: bytes_root(&p.code),
        code_len: len(&p.code, "kernel code")?,
        args_root: bytes_root(&p.params),
        args_len: len(&p.params, "argument blob")?,
    })
}

/// The image binding of every node, in topological order.
pub fn node_images(model: &Model) -> Result<Vec<NodeImage>, CompileError> {
    (0..model.graph().nodes.len()).map(|j| node_image(model, j)).collect()
}

/// The model commitment with this build's kernels and argument blobs.
pub fn model_commitment(model: &Model) -> Result<Hash, CompileError> {
    Ok(commit_model(model, &node_images(model)?))
}

/// Check that `recorded` (a bundle's node images) are the images this build compiles:
/// otherwise the recorded model commitment would not match the VM images a dispute runs.
pub fn check_images(model: &Model, recorded: &[NodeImage]) -> Result<(), CompileError> {
    let fresh = node_images(model)?;
    if fresh.len() != recorded.len() {
        return Err(CompileError::Binding(format!(
            "{} node images recorded for {} nodes",
            recorded.len(),
            fresh.len()
        )));
    }
    for (j, (f, r)) in fresh.iter().zip(recorded).enumerate() {
        if f != r {
            let what =
                if f.code_root != r.code_root || f.code_len != r.code_len { "kernel code" } else { "argument blob" };
            return Err(CompileError::Binding(format!(
                "node {j}: the recorded {what} root differs from this build's; the bundle was built with \
                 other kernels (re-run `opml model quantize` to rebind it)"
            )));
        }
    }
    Ok(())
}

/// The compiler as the DNN library's [`ImageBinder`].
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelBinder;

impl ImageBinder for KernelBinder {
    fn node_images(&self, model: &Model) -> Result<Vec<NodeImage>, String> {
        node_images(model).map_err(|e| e.to_string())
    }
}

/// The image's region roots as a contract derives them at the handover: code, argument
/// blob, weights and lengths from a proven descriptor, the input commitments from proven
/// slots of the agreed graph state (`input_roots[i]` for the descriptor's input `i`).
/// Twin of `Handover.nodePreStateHash` (`pre_state()?.hash()` of the result).
pub fn descriptor_image_roots(d: &Descriptor, input_roots: &[Hash]) -> Result<ImageRoots, CompileError> {
    if input_roots.len() != d.inputs.len() {
        return Err(CompileError::Binding(format!(
            "{} input roots for a descriptor with {} inputs",
            input_roots.len(),
            d.inputs.len()
        )));
    }
    let region = |root: Hash, len: u32| RegionRoot { root, len: len as usize };
    Ok(ImageRoots {
        code: region(d.image.code_root, d.image.code_len),
        params: region(d.image.args_root, d.image.args_len),
        inputs: d.inputs.iter().zip(input_roots).map(|(&(_, len), &root)| region(root, len)).collect(),
        weights: d.weights.iter().map(|&(root, len)| region(root, len)).collect(),
        output_len: d.output_len as usize,
    })
}
