//! The digits MLP and CNN bundles and one quantized test sample each, for the unit tests.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use opml_dnn::bundle::Bundle;
use opml_dnn::commit::NodeImage;
use opml_dnn::st::read_dataset;
use opml_dnn::{Model, Tensor};
use opml_merkle::Hash;

use crate::game::GraphView;

pub(crate) struct Digits {
    pub model: Arc<Model>,
    pub root: Hash,
    pub images: Vec<NodeImage>,
    pub input: Tensor,
    pub honest: GraphView,
}

/// Bundle `fixtures/digits/{kind}.opml` and sample `sample` of its test set.
fn load(kind: &str, sample: usize) -> Digits {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/digits");
    let b = Bundle::from_bytes(&std::fs::read(dir.join(format!("{kind}.opml"))).unwrap()).unwrap();
    let name = format!("test_{kind}");
    let ds = read_dataset(&std::fs::read(dir.join(format!("{name}.safetensors"))).unwrap(), &name, false).unwrap();
    let input = b.quantize_input(ds.sample(sample)).unwrap();
    let root = b.model_root().unwrap();
    let images = b.node_images().to_vec();
    let model = Arc::new(b.model);
    let honest = GraphView::honest(model.clone(), root, std::slice::from_ref(&input)).unwrap();
    Digits { model, root, images, input, honest }
}

pub(crate) fn mlp() -> &'static Digits {
    static D: OnceLock<Digits> = OnceLock::new();
    D.get_or_init(|| load("mlp", 1))
}

pub(crate) fn cnn() -> &'static Digits {
    static D: OnceLock<Digits> = OnceLock::new();
    D.get_or_init(|| load("cnn", 0))
}
