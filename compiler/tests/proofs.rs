//! Region proofs on the real VM states of every node of the digits CNN and MLP: the final
//! state (after the kernel exits) holds the native output's commitment at the output
//! region, the pre-state holds each input and weight commitment at its region, and
//! tampering with a sibling, the address, the length, the commitment, the root or the
//! final state makes verification fail.

use std::path::PathBuf;
use std::sync::OnceLock;

use opml_compiler::compile_node;
use opml_compiler::layout::{input_addr, region_height, weight_addr, CODE_BASE, OUTPUT_BASE, PARAM_BASE, SCRATCH_BASE};
use opml_compiler::proofs::{
    input_region_proof, output_region_proof, region_proof, verify_final_state, verify_input_region,
    verify_output_region, verify_region, verify_weight_region, weight_region_proof,
};
use opml_compiler::{RegionProof, RegionProofError};
use opml_dnn::bundle::Bundle;
use opml_dnn::commit::tensor_commitment;
use opml_dnn::exec::run_all;
use opml_dnn::st::read_dataset;
use opml_dnn::Tensor;
use opml_merkle::{keccak256, zero_hash, Hash};
use opml_vm::{RunEnd, State, Status};
use proptest::prelude::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/digits").join(name)
}

/// Every image window a region can start at.
fn window_bases() -> Vec<u32> {
    let mut v = vec![CODE_BASE, PARAM_BASE, SCRATCH_BASE, OUTPUT_BASE];
    v.extend((0..8).map(input_addr));
    v.extend((0..3).map(weight_addr));
    v
}

/// One node's real run: proofs against the pre-state and the final state, and the honest
/// proof at every window of the final state (for the output's length), to judge tampered
/// addresses.
#[derive(Debug)]
struct NodeCase {
    name: String,
    pre_root: Hash,
    final_state: State,
    output: Hash,
    output_proof: RegionProof,
    /// Output region proof in the pre-state (a zero subtree).
    pre_output: RegionProof,
    /// (commitment, proof) of each input region in the pre-state.
    inputs: Vec<(Hash, RegionProof)>,
    /// (commitment, proof) of each weight region in the pre-state.
    weights: Vec<(Hash, RegionProof)>,
    /// Honest proof at every window base of the final state, at the output's length.
    at_windows: Vec<RegionProof>,
}

fn cases_of(kind: &str) -> Vec<NodeCase> {
    let b = Bundle::from_bytes(&std::fs::read(fixture(&format!("{kind}.opml"))).unwrap()).unwrap();
    let name = format!("test_{kind}.safetensors");
    let ds = read_dataset(&std::fs::read(fixture(&name)).unwrap(), &name, false).unwrap();
    let x = b.quantize_input(ds.sample(0)).unwrap();
    let slots = run_all(&b.model, std::slice::from_ref(&x)).unwrap();
    let g = b.model.graph();
    let mut out = Vec::new();
    for (j, node) in g.nodes.iter().enumerate() {
        let prog = compile_node(&b.model, j).unwrap();
        let ins: Vec<&Tensor> = node.inputs.iter().map(|&s| &slots[s]).collect();
        let mut m = prog.machine(&ins).unwrap();
        let pre_root = m.mem_root();
        assert_eq!(pre_root, prog.roots(&ins).unwrap().memory_root().unwrap(), "{kind} node {j}: image root");
        let inputs = ins
            .iter()
            .enumerate()
            .map(|(i, t)| (tensor_commitment(t), input_region_proof(m.memory_mut(), i, t.spec().byte_len()).unwrap()))
            .collect();
        let weights = prog
            .weights
            .iter()
            .enumerate()
            .map(|(i, t)| (tensor_commitment(t), weight_region_proof(m.memory_mut(), i, t.spec().byte_len()).unwrap()))
            .collect();
        let pre_output = output_region_proof(m.memory_mut(), prog.output.byte_len()).unwrap();
        assert_eq!(m.run(1 << 32), RunEnd::Halted, "{kind} node {j}");
        let final_state = m.state();
        let len = prog.output.byte_len();
        let output_proof = output_region_proof(m.memory_mut(), len).unwrap();
        let at_windows = window_bases().into_iter().map(|a| region_proof(m.memory_mut(), a, len).unwrap()).collect();
        out.push(NodeCase {
            name: format!("{kind} node {j} ({})", node.op.name()),
            pre_root,
            final_state,
            output: tensor_commitment(&slots[g.node_slot(j)]),
            output_proof,
            pre_output,
            inputs,
            weights,
            at_windows,
        });
    }
    out
}

fn cases() -> &'static [NodeCase] {
    static CASES: OnceLock<Vec<NodeCase>> = OnceLock::new();
    CASES.get_or_init(|| {
        let mut v = cases_of("cnn");
        v.extend(cases_of("mlp"));
        v
    })
}

#[test]
fn every_region_proof_of_real_runs_verifies() {
    for c in cases() {
        let st = &c.final_state;
        assert_eq!((st.status, st.exit_code), (Status::Exited, 0), "{}", c.name);
        let p = &c.output_proof;
        // The output region read from the VM's final memory is the native output's
        // commitment (an independent computation: the native executor's tensor).
        assert_eq!(p.root, c.output, "{}", c.name);
        assert!(verify_output_region(&st.mem_root, p.len, &c.output, &p.siblings), "{}", c.name);
        assert!(verify_final_state(&st.hash(), &st.encode(), p.len, &c.output, &p.siblings), "{}", c.name);
        for (i, (commit, p)) in c.inputs.iter().enumerate() {
            assert_eq!(p.root, *commit, "{} input {i}", c.name);
            assert!(verify_input_region(&c.pre_root, i, p.len, commit, &p.siblings), "{} input {i}", c.name);
        }
        for (i, (commit, p)) in c.weights.iter().enumerate() {
            assert_eq!(p.root, *commit, "{} weight {i}", c.name);
            assert!(verify_weight_region(&c.pre_root, i, p.len, commit, &p.siblings), "{} weight {i}", c.name);
        }
        // The output window is zero in the pre-state: the claimed output is there only
        // if its bytes are all zero (then the statement is true).
        let pre = &c.pre_output;
        assert_eq!(pre.root, *zero_hash(region_height(pre.len)));
        assert!(verify_output_region(&c.pre_root, pre.len, &pre.root, &pre.siblings));
        assert_eq!(
            verify_output_region(&c.pre_root, p.len, &c.output, &pre.siblings),
            c.output == pre.root,
            "{}",
            c.name
        );
    }
}

#[test]
fn builders_reject_bad_regions() {
    let mut mem = opml_vm::Memory::new();
    assert!(matches!(input_region_proof(&mut mem, 8, 32), Err(RegionProofError::Region { .. })));
    assert!(matches!(weight_region_proof(&mut mem, 3, 32), Err(RegionProofError::Region { .. })));
    // Larger than a 256 MiB window, or not aligned to its padded size.
    assert!(output_region_proof(&mut mem, (1 << 28) + 1).is_err());
    assert!(region_proof(&mut mem, OUTPUT_BASE + 32, 64).is_err());
    assert!(region_proof(&mut mem, OUTPUT_BASE + 64, 64).is_ok());
    // The verifiers refuse the same shapes outright.
    let z = *zero_hash(0);
    assert!(!verify_input_region(&mem.root(), 8, 32, &z, &[z; 27]));
    assert!(!verify_weight_region(&mem.root(), 3, 32, &z, &[z; 27]));
    assert!(!verify_region(&mem.root(), OUTPUT_BASE + 32, 64, &z, &[z; 26]));
}

/// What to tamper with.
#[derive(Clone, Debug)]
enum Tamper {
    Sibling(usize),
    Address(usize),
    /// A length of another subtree height.
    Length(bool),
    Commitment,
    Root,
    DropSibling,
    ExtraSibling,
    /// A field of the final state: status running / faulted, exit code, memory root, pc.
    State(u8),
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        any::<usize>().prop_map(Tamper::Sibling),
        any::<usize>().prop_map(Tamper::Address),
        any::<bool>().prop_map(Tamper::Length),
        Just(Tamper::Commitment),
        Just(Tamper::Root),
        Just(Tamper::DropSibling),
        Just(Tamper::ExtraSibling),
        any::<u8>().prop_map(Tamper::State),
    ]
}

fn flip(h: &mut Hash, byte: usize, bit: u8) {
    h[byte % 32] ^= 1 << (bit % 8);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The final-state output check fails under any tampering, except a moved address whose
    /// honest proof is the very same (commitment, siblings) — a true statement.
    #[test]
    fn tampered_final_state_proofs_fail(c in any::<usize>(), t in tamper(), byte in any::<usize>(), bit in any::<u8>()) {
        let c = &cases()[c % cases().len()];
        let mut st = c.final_state.clone();
        let mut hash = st.hash();
        let mut encoded = st.encode().to_vec();
        let mut commit = c.output;
        let mut siblings = c.output_proof.siblings.clone();
        let mut len = c.output_proof.len;
        let mut addr = OUTPUT_BASE;
        let must_fail = match t {
            Tamper::Sibling(k) => { let k = k % siblings.len(); flip(&mut siblings[k], byte, bit); true }
            Tamper::Address(w) => {
                let bases = window_bases();
                let w = w % bases.len();
                prop_assume!(bases[w] != OUTPUT_BASE);
                addr = bases[w];
                let honest = &c.at_windows[w];
                !(honest.root == commit && honest.siblings == siblings)
            }
            Tamper::Length(up) => {
                let k = region_height(len);
                prop_assume!(up || k > 0);
                len = if up { 32usize << (k + 1) } else { 32usize << (k - 1) };
                true
            }
            Tamper::Commitment => { flip(&mut commit, byte, bit); true }
            Tamper::Root => { flip(&mut hash, byte, bit); true }
            Tamper::DropSibling => { siblings.pop(); true }
            Tamper::ExtraSibling => { siblings.push(keccak256(&[bit])); true }
            Tamper::State(f) => {
                match f % 4 {
                    0 => { st.status = Status::Running; st.exit_code = 0; }
                    1 => { st.status = Status::Faulted; st.exit_code = 1; }
                    2 => { st.exit_code = 1 + bit as u32; }
                    _ => { flip(&mut st.mem_root, byte, bit); }
                }
                // A consistent (hash, encoding) pair of a state that is not a success
                // holding the output.
                encoded = st.encode().to_vec();
                hash = st.hash();
                true
            }
        };
        let ok = if addr == OUTPUT_BASE {
            verify_final_state(&hash, &encoded, len, &commit, &siblings)
        } else {
            verify_region(&State::decode(&encoded).unwrap().mem_root, addr, len, &commit, &siblings)
        };
        prop_assert_eq!(ok, !must_fail, "{}", c.name);
    }

    /// Input and weight region proofs of the pre-state fail when a sibling, the region
    /// index, the commitment or the root changes.
    #[test]
    fn tampered_input_and_weight_proofs_fail(c in any::<usize>(), which in any::<usize>(), t in 0u8..5,
                                             byte in any::<usize>(), bit in any::<u8>()) {
        let c = &cases()[c % cases().len()];
        let all: Vec<(bool, usize, &(Hash, RegionProof))> = c.inputs.iter().enumerate().map(|(i, p)| (true, i, p))
            .chain(c.weights.iter().enumerate().map(|(i, p)| (false, i, p))).collect();
        let (is_input, i, (commit, p)) = all[which % all.len()];
        let (mut commit, mut siblings, mut root, mut i) = (*commit, p.siblings.clone(), c.pre_root, i);
        match t {
            0 => { let k = byte % siblings.len(); flip(&mut siblings[k], byte, bit); }
            1 => i = (i + 1 + bit as usize % 2) % if is_input { 8 } else { 3 },
            2 => flip(&mut commit, byte, bit),
            3 => flip(&mut root, byte, bit),
            _ => { siblings.pop(); }
        }
        let ok = if is_input {
            verify_input_region(&root, i, p.len, &commit, &siblings)
        } else {
            verify_weight_region(&root, i, p.len, &commit, &siblings)
        };
        prop_assert!(!ok, "{}: tamper {} of {} {}", c.name, t, if is_input { "input" } else { "weight" }, i);
    }
}
