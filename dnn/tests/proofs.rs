//! Proofs for the game on real runs of the digits CNN and MLP: every slot, update and
//! descriptor proof verifies, and tampering with any part of a proof (a sibling, the index,
//! a value, a root) makes verification fail unless the tampered proof is itself the honest
//! proof of a true statement.

use std::path::PathBuf;
use std::sync::OnceLock;

use opml_dnn::bundle::Bundle;
use opml_dnn::commit::{graph_states, model_commitment, param_blob, tensor_commitment, NodeImage};
use opml_dnn::exec::run_all;
use opml_dnn::proofs::{
    descriptor_proof, slot_proof, slot_value, state_tree, update_proof, verify_descriptor_proof, verify_slot_proof,
    verify_update_proof, Descriptor,
};
use opml_dnn::st::read_dataset;
use opml_dnn::trace::Trace;
use opml_dnn::{DescriptorProof, Model, ProofError, SlotProof, Tensor, UpdateProof};
use opml_merkle::{bytes_root, keccak256, Hash};
use proptest::prelude::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/digits").join(name)
}

/// One real run: the model, every slot's tensor and the trace.
struct Run {
    model: Model,
    images: Vec<NodeImage>,
    slots: Vec<Tensor>,
    trace: Trace,
}

fn load(kind: &str, samples: usize) -> Vec<Run> {
    let b = Bundle::from_bytes(&std::fs::read(fixture(&format!("{kind}.opml"))).unwrap()).unwrap();
    let name = format!("test_{kind}.safetensors");
    let ds = read_dataset(&std::fs::read(fixture(&name)).unwrap(), &name, false).unwrap();
    (0..samples)
        .map(|i| {
            let x = b.quantize_input(ds.sample(i)).unwrap();
            let slots = run_all(&b.model, std::slice::from_ref(&x)).unwrap();
            let trace = Trace::with_model_commitment(&b.model, b.model_root().unwrap(), &slots);
            Run { model: b.model.clone(), images: b.node_images().to_vec(), slots, trace }
        })
        .collect()
}

fn runs() -> &'static [Run] {
    static RUNS: OnceLock<Vec<Run>> = OnceLock::new();
    RUNS.get_or_init(|| {
        let mut v = load("cnn", 2);
        v.extend(load("mlp", 2));
        v
    })
}

/// Every slot of every graph state, every update, every descriptor verifies, and holds the
/// values recomputed independently from the run's tensors.
#[test]
fn every_proof_of_real_runs_verifies() {
    for run in runs() {
        let (model, trace) = (&run.model, &run.trace);
        let g = model.graph();
        let (m, n, len) = (g.inputs.len(), g.nodes.len(), trace.slot_len);
        let commits: Vec<Hash> = run.slots.iter().map(tensor_commitment).collect();
        for i in 0..=n {
            for slot in 0..len as usize {
                let p = slot_proof(trace, i, slot).unwrap();
                let want = commits.get(slot).copied().filter(|_| slot < m + i).unwrap_or([0u8; 32]);
                assert_eq!(p.value, want, "S_{i} slot {slot}");
                assert!(verify_slot_proof(&trace.states[i], len, &p), "S_{i} slot {slot}");
            }
        }
        for i in 0..n {
            let p = update_proof(trace, i).unwrap();
            assert_eq!((p.slot as usize, p.old, p.new), (m + i, [0u8; 32], commits[m + i]));
            assert!(verify_update_proof(&trace.states[i], &trace.states[i + 1], len, &p), "S_{i} -> S_{}", i + 1);
        }
        let root = model_commitment(model, &run.images);
        assert_eq!(root, trace.model);
        for (k, node) in g.nodes.iter().enumerate() {
            let p = descriptor_proof(model, &run.images, k).unwrap();
            assert!(verify_descriptor_proof(&root, n as u32, &p), "node {k}");
            // The proven descriptor carries what the handover needs, checked field by field
            // against the model itself.
            let d = Descriptor::decode(&p.descriptor).unwrap();
            assert_eq!(d.op_tag, node.op.tag());
            assert_eq!(d.output_slot as usize, g.node_slot(k));
            assert_eq!(d.output_len as usize, model.specs()[g.node_slot(k)].byte_len());
            assert_eq!(d.image, run.images[k]);
            assert_eq!(d.param_root, bytes_root(&param_blob(model, k)));
            let inputs: Vec<(usize, usize)> = d.inputs.iter().map(|&(s, l)| (s as usize, l as usize)).collect();
            let want: Vec<(usize, usize)> = node.inputs.iter().map(|&s| (s, model.specs()[s].byte_len())).collect();
            assert_eq!(inputs, want);
            let weights: Vec<(Hash, u32)> = node
                .op
                .weights()
                .iter()
                .map(|&c| (tensor_commitment(&model.weights()[c]), model.weights()[c].to_le_bytes().len() as u32))
                .collect();
            assert_eq!(d.weights, weights);
            // The handover: node k's inputs are proven against S_k.
            for &s in &node.inputs {
                let sp = slot_proof(trace, k, s).unwrap();
                assert_eq!(sp.value, commits[s]);
                assert!(verify_slot_proof(&trace.states[k], len, &sp));
            }
        }
    }
}

#[test]
fn builders_reject_out_of_range_and_inconsistent_traces() {
    let run = &runs()[0];
    let (trace, n) = (&run.trace, run.trace.nodes.len());
    let len = trace.slot_len as usize;
    assert_eq!(slot_proof(trace, n + 1, 0), Err(ProofError::State { index: n + 1, last: n }));
    assert_eq!(slot_proof(trace, 0, len), Err(ProofError::Slot { slot: len, len }));
    assert_eq!(update_proof(trace, n), Err(ProofError::State { index: n + 1, last: n }));
    assert_eq!(descriptor_proof(&run.model, &run.images, n), Err(ProofError::Node { node: n, count: n }));
    assert!(matches!(descriptor_proof(&run.model, &run.images[1..], 0), Err(ProofError::Trace(_))));
    let mut bad = trace.clone();
    bad.states[1][0] ^= 1;
    assert!(matches!(slot_proof(&bad, 1, 0), Err(ProofError::Trace(_))));
    assert!(matches!(update_proof(&bad, 0), Err(ProofError::Trace(_))));
    let mut short = trace.clone();
    short.states.pop();
    assert!(matches!(slot_proof(&short, 0, 0), Err(ProofError::Trace(_))));
}

#[test]
fn descriptor_decode_rejects_wrong_lengths() {
    let run = &runs()[0];
    let d = descriptor_proof(&run.model, &run.images, 0).unwrap().descriptor;
    assert!(Descriptor::decode(&d[..d.len() - 1]).is_err());
    assert!(Descriptor::decode(&d[..120]).is_err());
    // counts that claim one more input or weight than the bytes hold
    for at in [12, 16] {
        let mut more = d.clone();
        more[at] += 1;
        assert!(Descriptor::decode(&more).is_err(), "count at {at}");
    }
    let mut longer = d.clone();
    longer.push(0);
    assert!(Descriptor::decode(&longer).is_err());
}

/// Whether `p` states a true fact about `S_i`: its value is slot `p.slot`'s and its
/// siblings are that slot's path.
fn slot_statement_true(trace: &Trace, i: usize, p: &SlotProof) -> bool {
    let slot = p.slot as usize;
    slot < trace.slot_len as usize
        && slot_value(trace, i, slot).unwrap() == p.value
        && state_tree(trace, i).unwrap().path(slot) == p.siblings
}

fn update_statement_true(trace: &Trace, i: usize, p: &UpdateProof) -> bool {
    let slot = p.slot as usize;
    slot < trace.slot_len as usize
        && slot_value(trace, i, slot).unwrap() == p.old
        && slot_value(trace, i + 1, slot).unwrap() == p.new
        && state_tree(trace, i).unwrap().path(slot) == p.siblings
        && state_tree(trace, i + 1).unwrap().path(slot) == p.siblings
}

fn flip(h: &mut Hash, byte: usize, bit: u8) {
    h[byte % 32] ^= 1 << (bit % 8);
}

/// What to tamper with.
#[derive(Clone, Debug)]
enum Tamper {
    Sibling(usize),
    Index(u32),
    Value,
    Old,
    Root,
    PostRoot,
    Length,
    DropSibling,
    ExtraSibling,
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        any::<usize>().prop_map(Tamper::Sibling),
        any::<u32>().prop_map(Tamper::Index),
        Just(Tamper::Value),
        Just(Tamper::Old),
        Just(Tamper::Root),
        Just(Tamper::PostRoot),
        Just(Tamper::Length),
        Just(Tamper::DropSibling),
        Just(Tamper::ExtraSibling),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A tampered slot proof verifies only if it is the honest proof of a true statement
    /// (e.g. moving a zero slot's proof to a neighbouring zero slot); every change of a
    /// sibling, the value, the root or the vector length fails.
    #[test]
    fn tampered_slot_proofs_fail(r in any::<usize>(), i in any::<usize>(), s in any::<usize>(),
                                 t in tamper(), byte in any::<usize>(), bit in any::<u8>()) {
        let run = &runs()[r % runs().len()];
        let trace = &run.trace;
        let i = i % trace.states.len();
        let len = trace.slot_len;
        let mut p = slot_proof(trace, i, s % len as usize).unwrap();
        let mut root = trace.states[i];
        let mut vlen = len;
        let must_fail = match t {
            Tamper::Sibling(k) => { let k = k % p.siblings.len(); flip(&mut p.siblings[k], byte, bit); true }
            Tamper::Index(x) => {
                let x = x % len;
                prop_assume!(x != p.slot);
                p.slot = x;
                !slot_statement_true(trace, i, &p)
            }
            Tamper::Value | Tamper::Old => { flip(&mut p.value, byte, bit); true }
            Tamper::Root | Tamper::PostRoot => { flip(&mut root, byte, bit); true }
            Tamper::Length => { vlen = if bit % 2 == 0 { len * 2 } else { len / 2 }; true }
            Tamper::DropSibling => { p.siblings.pop(); true }
            Tamper::ExtraSibling => { p.siblings.push(keccak256(&[bit])); true }
        };
        prop_assert_eq!(verify_slot_proof(&root, vlen, &p), !must_fail);
    }

    /// A tampered update proof fails: a sibling, the slot, the old or new value, either root,
    /// or the vector length.
    #[test]
    fn tampered_update_proofs_fail(r in any::<usize>(), i in any::<usize>(), t in tamper(),
                                   byte in any::<usize>(), bit in any::<u8>(), new_side in any::<bool>()) {
        let run = &runs()[r % runs().len()];
        let trace = &run.trace;
        let i = i % trace.nodes.len();
        let len = trace.slot_len;
        let mut p = update_proof(trace, i).unwrap();
        let (mut pre, mut post) = (trace.states[i], trace.states[i + 1]);
        let mut vlen = len;
        let must_fail = match t {
            Tamper::Sibling(k) => { let k = k % p.siblings.len(); flip(&mut p.siblings[k], byte, bit); true }
            Tamper::Index(x) => {
                let x = x % len;
                prop_assume!(x != p.slot);
                p.slot = x;
                !update_statement_true(trace, i, &p)
            }
            Tamper::Value => { flip(&mut p.new, byte, bit); true }
            Tamper::Old => { flip(&mut p.old, byte, bit); true }
            Tamper::Root => { flip(&mut pre, byte, bit); true }
            Tamper::PostRoot => {
                // Either a corrupted S_{i+1}, or S_{i+1} replaced by S_i itself (a claim
                // that the node changed nothing).
                if new_side { flip(&mut post, byte, bit); true } else { post = pre; p.new != p.old }
            }
            Tamper::Length => { vlen = if bit % 2 == 0 { len * 2 } else { len / 2 }; true }
            Tamper::DropSibling => { p.siblings.pop(); true }
            Tamper::ExtraSibling => { p.siblings.push(keccak256(&[bit])); true }
        };
        prop_assert_eq!(verify_update_proof(&pre, &post, vlen, &p), !must_fail);
    }

    /// A tampered descriptor proof fails: a sibling, the node index, a descriptor byte,
    /// the model root, or the node count.
    #[test]
    fn tampered_descriptor_proofs_fail(r in any::<usize>(), k in any::<usize>(), t in tamper(),
                                       byte in any::<usize>(), bit in any::<u8>()) {
        let run = &runs()[r % runs().len()];
        let n = run.trace.nodes.len() as u32;
        let mut p: DescriptorProof = descriptor_proof(&run.model, &run.images, k % n as usize).unwrap();
        let mut root = run.trace.model;
        let mut count = n;
        let must_fail = match t {
            Tamper::Sibling(k) => { let k = k % p.siblings.len(); flip(&mut p.siblings[k], byte, bit); true }
            Tamper::Index(x) => {
                let x = x % n;
                prop_assume!(x != p.node);
                p.node = x;
                descriptor_proof(&run.model, &run.images, x as usize).unwrap() != p
            }
            Tamper::Value | Tamper::Old => {
                let b = byte % p.descriptor.len();
                p.descriptor[b] ^= 1 << (bit % 8);
                true
            }
            Tamper::Root | Tamper::PostRoot => { flip(&mut root, byte, bit); true }
            Tamper::Length => {
                // A node count with another padded height, or one that excludes the node.
                count = if bit % 2 == 0 { 2 * n.next_power_of_two() } else { p.node };
                true
            }
            Tamper::DropSibling => { p.siblings.pop(); true }
            Tamper::ExtraSibling => { p.siblings.push(keccak256(&[bit])); true }
        };
        prop_assert_eq!(verify_descriptor_proof(&root, count, &p), !must_fail);
    }

    /// On random slot vectors (an independent oracle: the graph states of
    /// `commit::graph_states`), every slot and update proof verifies.
    #[test]
    fn random_traces_prove_every_slot(m in 1usize..4, n in 1usize..12, seed in any::<u64>()) {
        let h = |k: u64| keccak256(&(seed ^ k).to_le_bytes());
        let inputs: Vec<Hash> = (0..m as u64).map(h).collect();
        let nodes: Vec<Hash> = (100..100 + n as u64).map(h).collect();
        let len = (m + n).next_power_of_two();
        let states = graph_states(len, &inputs, &nodes);
        let trace = Trace { model: [0; 32], slot_len: len as u32, inputs, nodes, states };
        for i in 0..=n {
            for s in 0..len {
                let p = slot_proof(&trace, i, s).unwrap();
                prop_assert!(verify_slot_proof(&trace.states[i], len as u32, &p));
            }
        }
        for i in 0..n {
            let p = update_proof(&trace, i).unwrap();
            prop_assert!(verify_update_proof(&trace.states[i], &trace.states[i + 1], len as u32, &p));
        }
    }
}
