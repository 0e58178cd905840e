//! One's own run of a claim, shared by `opml infer`, `opml node`, `opml game` and
//! `opml chain`: the bundle and one quantized input sample, the honest graph view, and what
//! `register` and `postClaim` take from them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use alloy::primitives::{Bytes, B256, U256};
use anyhow::{bail, Result};
use clap::Args;
use opml_cli::game::abi::{to_b256, IModelRegistry, IOptimisticML};
use opml_cli::game::{Fault, GraphView, Run};
use opml_dnn::bundle::Bundle;
use opml_dnn::commit::tensor_commitment;
use opml_dnn::Tensor;
use opml_merkle::Hash;

use crate::claim_model::registration_of;
use crate::files::{load_bundle, load_data};

/// Which run: a bundle and one input sample.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Bundle path.
    pub bundle: PathBuf,
    /// Input file (safetensors with `inputs`, float32 N x input shape).
    #[arg(long)]
    pub input: PathBuf,
    /// Which sample of the batch.
    #[arg(long, default_value_t = 0)]
    pub index: usize,
}

/// The bundle at `bundle` and sample `index` of the input file `input`, quantized into the
/// model's input tensor (errors name the file and the out-of-range index or wrong shape).
pub fn load_sample(bundle: &Path, input: &Path, index: usize) -> Result<(Bundle, Tensor)> {
    let b = load_bundle(bundle)?;
    let x = sample_input(&b, input, index)?;
    Ok((b, x))
}

/// Sample `index` of the input file `input`, quantized into bundle `b`'s input tensor.
pub fn sample_input(b: &Bundle, input: &Path, index: usize) -> Result<Tensor> {
    let data = load_data(input, false)?;
    if index >= data.len() {
        bail!("--index {index} out of range: {} has {} samples", input.display(), data.len());
    }
    if data.sample_shape() != b.meta.input.sample_shape.as_slice() {
        bail!(
            "{}: samples have shape {:?}, the model takes {:?}",
            input.display(),
            data.sample_shape(),
            b.meta.input.sample_shape
        );
    }
    Ok(b.quantize_input(data.sample(index))?)
}

/// The bundle and the honest graph view of one input sample.
pub fn graph_view(a: &RunArgs) -> Result<(Bundle, GraphView)> {
    let (b, x) = load_sample(&a.bundle, &a.input, a.index)?;
    let view = GraphView::honest(Arc::new(b.model.clone()), b.model_root()?, &[x])?;
    Ok((b, view))
}

/// The bundle and one's run of one input sample: honest, or lying as `fault` says (for
/// tests and demos); VM runs are bounded by `2^depth` steps, the game's `vmDepth`.
pub fn run_of(a: &RunArgs, fault: Option<&Fault>, depth: u32) -> Result<(Bundle, Run)> {
    let (b, x) = load_sample(&a.bundle, &a.input, a.index)?;
    let (model, root) = (Arc::new(b.model.clone()), b.model_root()?);
    let run = match fault {
        None => Run::honest(model, root, &[x], depth)?,
        Some(f) => Run::dishonest(model, root, &[x], f, depth)?,
    };
    Ok((b, run))
}

/// The registration of the model and the claim of a graph view.
#[derive(Debug, Clone)]
pub struct ClaimData {
    pub register: IModelRegistry::registerCall,
    pub model_id: B256,
    pub post: IOptimisticML::postClaimCall,
}

/// The registration of bundle `b`'s model and its id.
pub fn registration(b: &Bundle, uri: &str) -> Result<(IModelRegistry::registerCall, B256)> {
    Ok(registration_of(&b.model, b.model_root()?, uri))
}

/// `register` and `postClaim` (answering `request`, 0 for none) for the view `g` of
/// bundle `b`.
pub fn claim_data(b: &Bundle, g: &GraphView, request: u64, uri: &str) -> Result<ClaimData> {
    let (register, model_id) = registration(b, uri)?;
    let post = post_call(model_id, &g.slots()[..g.input_count()], g.output(), request);
    Ok(ClaimData { register, model_id, post })
}

/// `postClaim` of model `model_id` over `inputs` with `output` (answering `request`, 0 for
/// none), every input's bytes published.
pub fn post_call(model_id: B256, inputs: &[Tensor], output: &Tensor, request: u64) -> IOptimisticML::postClaimCall {
    // Every input's bytes, in slot order (the registry checks each against its commitment).
    let input_bytes: Vec<u8> = inputs.iter().flat_map(|t| t.to_le_bytes()).collect();
    let commitments: Vec<Hash> = inputs.iter().map(tensor_commitment).collect();
    IOptimisticML::postClaimCall {
        modelId: model_id,
        requestId: U256::from(request),
        inputCommitments: to_b256(&commitments),
        inputBytes: Bytes::from(input_bytes),
        output: Bytes::from(output.to_le_bytes()),
        outputCommitment: tensor_commitment(output).into(),
    }
}
