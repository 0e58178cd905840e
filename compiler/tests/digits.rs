//! Every node of the digits CNN and MLP runs in the VM bit-exact with the native executor,
//! and the image root computed from commitments equals the VM's memory root and pre-state.

use std::path::PathBuf;

use opml_compiler::binding::{check_images, descriptor_image_roots, model_commitment, node_images};
use opml_compiler::{compile_node, matches_native};
use opml_dnn::bundle::Bundle;
use opml_dnn::commit::tensor_commitment;
use opml_dnn::exec::run_all;
use opml_dnn::proofs::{descriptor_proof, Descriptor};
use opml_dnn::st::read_dataset;
use opml_dnn::Tensor;
use opml_merkle::bytes_root;

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
            // ... and so does the one a contract derives from the committed descriptor and
            // the input commitments (the handover).
            let d = Descriptor::decode(&descriptor_proof(&b.model, b.node_images(), j).unwrap().descriptor).unwrap();
            let input_roots: Vec<_> = ins.iter().map(|t| tensor_commitment(t)).collect();
            let from_descriptor = descriptor_image_roots(&d, &input_roots).unwrap();
            assert_eq!(from_descriptor, roots, "{bundle} node {j}: descriptor image");
            assert_eq!(from_descriptor.pre_state().unwrap().hash(), m.state().hash(), "{bundle} node {j}");
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

/// The committed bundles bind this build's kernels: their recorded node images are the
/// code and argument roots of the compiled nodes, and the recorded model commitment is the
/// one the compiler computes.
#[test]
fn committed_bundles_bind_this_builds_kernels() {
    for bundle in ["cnn.opml", "mlp.opml"] {
        let b = Bundle::from_bytes(&std::fs::read(fixture(bundle)).unwrap()).unwrap();
        check_images(&b.model, b.node_images()).unwrap();
        assert_eq!(model_commitment(&b.model).unwrap(), b.model_root().unwrap(), "{bundle}");
        for (j, im) in node_images(&b.model).unwrap().iter().enumerate() {
            let p = compile_node(&b.model, j).unwrap();
            assert_eq!((im.code_root, im.code_len as usize), (bytes_root(&p.code), p.code.len()), "{bundle} {j}");
            assert_eq!((im.args_root, im.args_len as usize), (bytes_root(&p.params), p.params.len()), "{bundle} {j}");
        }
        // A bundle bound to other kernels is refused with the node named.
        let mut other = b.node_images().to_vec();
        other[1].code_root[0] ^= 1;
        let e = check_images(&b.model, &other).unwrap_err().to_string();
        assert!(e.contains("node 1") && e.contains("kernel code"), "{e}");
        let e = check_images(&b.model, &other[1..]).unwrap_err().to_string();
        assert!(e.contains("node images recorded"), "{e}");
    }
}

/// A descriptor with a different number of input roots than inputs is refused.
#[test]
fn descriptor_image_roots_checks_the_input_count() {
    let b = Bundle::from_bytes(&std::fs::read(fixture("cnn.opml")).unwrap()).unwrap();
    let d = Descriptor::decode(&descriptor_proof(&b.model, b.node_images(), 0).unwrap().descriptor).unwrap();
    assert!(descriptor_image_roots(&d, &[]).is_err());
    assert!(descriptor_image_roots(&d, &[[0; 32], [0; 32]]).is_err());
}
