//! Every node of the digits CNN and MLP runs in the VM bit-exact with the native executor,
//! and the image root computed from commitments equals the VM's memory root and pre-state.

use std::path::PathBuf;

use opml_compiler::{compile_node, matches_native};
use opml_dnn::bundle::Bundle;
use opml_dnn::exec::run_all;
use opml_dnn::st::read_dataset;
use opml_dnn::Tensor;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/digits").join(name)
}

fn check_model(bundle: &str, data: &str, samples: usize) {
    let b = Bundle::from_bytes(&std::fs::read(fixture(bundle)).unwrap()).unwrap();
    let bytes = std::fs::read(fixture(data)).unwrap();
    let ds = read_dataset(&bytes, data, false).unwrap();
    for i in 0..samples.min(ds.len()) {
        let x = b.quantize_input(ds.sample(i)).unwrap();
        let slots = run_all(&b.model, std::slice::from_ref(&x)).unwrap();
        let g = b.model.graph();
        for (j, node) in g.nodes.iter().enumerate() {
            let prog = compile_node(&b.model, j).unwrap();
            let ins: Vec<&Tensor> = node.inputs.iter().map(|&s| &slots[s]).collect();
            // The pre-state from commitments alone equals the built machine's state.
            let roots = prog.roots(&ins).unwrap();
            let mut m = prog.machine(&ins).unwrap();
            assert_eq!(roots.pre_state().unwrap(), m.state(), "{bundle} node {j}: pre-state");
            let run = prog.run(&ins, 1 << 32).unwrap();
            assert!(
                matches_native(&run, &slots[g.node_slot(j)]),
                "{bundle} sample {i} node {j} ({}) differs",
                node.op.name()
            );
        }
    }
}

#[test]
fn digits_cnn_every_node_bit_exact() {
    check_model("cnn.opml", "test_cnn.safetensors", 3);
}

#[test]
fn digits_mlp_every_node_bit_exact() {
    check_model("mlp.opml", "test_mlp.safetensors", 3);
}
