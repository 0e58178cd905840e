//! The digits MLP bundle and one quantized test sample, for the unit tests.

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

pub(crate) fn mlp() -> &'static Digits {
    static D: OnceLock<Digits> = OnceLock::new();
    D.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/digits");
        let b = Bundle::from_bytes(&std::fs::read(dir.join("mlp.opml")).unwrap()).unwrap();
        let ds = read_dataset(&std::fs::read(dir.join("test_mlp.safetensors")).unwrap(), "test_mlp", false).unwrap();
        let input = b.quantize_input(ds.sample(1)).unwrap();
        let root = b.model_root().unwrap();
        let images = b.node_images().to_vec();
        let model = Arc::new(b.model);
        let honest = GraphView::honest(model.clone(), root, std::slice::from_ref(&input)).unwrap();
        Digits { model, root, images, input, honest }
    })
}
