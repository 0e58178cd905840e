//! `contracts/src/Handover.sol` (through `HandoverHarness`) against its Rust twins, on real
//! runs of every node of the digits CNN and MLP:
//!
//! * the pre-state hash the contract derives from region roots alone equals
//!   `ImageRoots::pre_state().hash()` and the real VM's initial state hash, for every node;
//!   random region sets give the same memory root, or both sides reject the layout;
//! * every slot, update and descriptor proof (`opml_dnn::proofs`) and every input, weight,
//!   output region and final-state proof (`opml_compiler::proofs`) of the real runs
//!   verifies on-chain, and each of many tampered variants (sibling, index, value, root,
//!   length, state flips) verifies on-chain exactly when it verifies in Rust.
//!
//! Gas per call (execution gas of calls answering true or a hash; revm, Prague rules) is
//! printed with `-- --nocapture`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use opml_compiler::binding::descriptor_image_roots;
use opml_compiler::compile_node;
use opml_compiler::layout::{input_addr, weight_addr, ImageRoots, RegionRoot, CODE_BASE, OUTPUT_BASE, PARAM_BASE};
use opml_compiler::proofs::{
    input_region_proof, output_region_proof, verify_final_state, verify_input_region, verify_region,
    verify_weight_region, weight_region_proof,
};
use opml_compiler::RegionProof;
use opml_contracts::{artifact_path, load_deployed_bytecode, selector, StepVerifier};
use opml_dnn::bundle::Bundle;
use opml_dnn::commit::{model_commitment, tensor_commitment, NodeImage};
use opml_dnn::exec::run_all;
use opml_dnn::proofs::Descriptor;
use opml_dnn::proofs::{
    descriptor_proof, slot_proof, update_proof, verify_descriptor_proof, verify_slot_proof, verify_update_proof,
};
use opml_dnn::st::read_dataset;
use opml_dnn::trace::Trace;
use opml_dnn::{DescriptorProof, Model, Tensor};
use opml_merkle::{keccak256, Hash};
use opml_vm::{RunEnd, State, Status};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

// ------------------------------------------------------------------ ABI encoding

/// One ABI value: a static word, `bytes`, a `bytes32[]`/`uint256[]`, or a tuple.
enum Tok {
    W([u8; 32]),
    B(Vec<u8>),
    A(Vec<[u8; 32]>),
    T(Vec<Tok>),
}

fn word(v: u64) -> Tok {
    let mut w = [0u8; 32];
    w[24..].copy_from_slice(&v.to_be_bytes());
    Tok::W(w)
}

fn hashes(h: &[Hash]) -> Tok {
    Tok::A(h.to_vec())
}

fn words(v: &[u64]) -> Tok {
    Tok::A(
        v.iter()
            .map(|&x| match word(x) {
                Tok::W(w) => w,
                _ => unreachable!("word() is a static word"),
            })
            .collect(),
    )
}

fn u256(v: usize) -> [u8; 32] {
    let mut w = [0u8; 32];
    w[24..].copy_from_slice(&(v as u64).to_be_bytes());
    w
}

/// Head/tail encoding of a tuple (every dynamic member behind an offset).
fn encode(toks: &[Tok]) -> Vec<u8> {
    let mut head = Vec::new();
    let mut tail = Vec::new();
    let head_len = 32 * toks.len();
    for t in toks {
        match t {
            Tok::W(w) => head.extend_from_slice(w),
            _ => {
                head.extend_from_slice(&u256(head_len + tail.len()));
                match t {
                    Tok::B(b) => {
                        tail.extend_from_slice(&u256(b.len()));
                        tail.extend_from_slice(b);
                        tail.resize(tail.len() + (32 - b.len() % 32) % 32, 0);
                    }
                    Tok::A(a) => {
                        tail.extend_from_slice(&u256(a.len()));
                        a.iter().for_each(|w| tail.extend_from_slice(w));
                    }
                    Tok::T(inner) => tail.extend_from_slice(&encode(inner)),
                    Tok::W(_) => unreachable!("static word handled above"),
                }
            }
        }
    }
    head.extend_from_slice(&tail);
    head
}

// ------------------------------------------------------------------ the harness

const IMAGE_ROOTS: &str = "(bytes32,uint256,bytes32,uint256,bytes32[],uint256[],bytes32[],uint256[],uint256)";

struct Harness {
    evm: StepVerifier,
    /// Execution gas of accepted calls, per function.
    gas: BTreeMap<String, Vec<u64>>,
}

impl Harness {
    fn load() -> Harness {
        let code =
            load_deployed_bytecode(&artifact_path("Handover.sol", "HandoverHarness")).unwrap_or_else(|e| panic!("{e}"));
        Harness { evm: StepVerifier::with_code(code), gas: BTreeMap::new() }
    }

    /// Call `signature` with `args`: `(Some(word), execution gas)` on success, `None` on
    /// revert.
    fn raw(&mut self, signature: &str, args: &[Tok]) -> (Option<[u8; 32]>, u64) {
        let mut cd = selector(signature).to_vec();
        cd.extend_from_slice(&encode(args));
        let (out, gas) = self.evm.call(&cd).unwrap_or_else(|e| panic!("{signature}: {e}"));
        (out.hash(), gas.execution)
    }

    fn record(&mut self, signature: &str, gas: u64) {
        let name = signature.split('(').next().unwrap_or(signature).to_string();
        self.gas.entry(name).or_default().push(gas);
    }

    /// Call a function returning a hash; `None` on revert. Gas of successful calls is
    /// recorded.
    fn call(&mut self, signature: &str, args: &[Tok]) -> Option<[u8; 32]> {
        let (out, gas) = self.raw(signature, args);
        if out.is_some() {
            self.record(signature, gas);
        }
        out
    }

    /// Call a verifier returning `bool` (a revert is a failure of the test). Gas of calls
    /// answering true (full verification, no early exit) is recorded.
    fn verify(&mut self, signature: &str, args: &[Tok]) -> bool {
        let (out, gas) = self.raw(signature, args);
        let w = out.unwrap_or_else(|| panic!("{signature} reverted"));
        assert!(w[..31].iter().all(|&b| b == 0) && w[31] <= 1, "{signature} returned a non-bool {w:?}");
        if w[31] == 1 {
            self.record(signature, gas);
        }
        w[31] == 1
    }

    fn slot(&mut self, state: &Hash, slot_len: u32, slot: u32, value: &Hash, sib: &[Hash]) -> bool {
        let args = [Tok::W(*state), word(slot_len as u64), word(slot as u64), Tok::W(*value), hashes(sib)];
        self.verify("verifySlotProof(bytes32,uint32,uint32,bytes32,bytes32[])", &args)
    }

    #[allow(clippy::too_many_arguments)]
    fn update(
        &mut self,
        pre: &Hash,
        post: &Hash,
        slot_len: u32,
        slot: u32,
        old: &Hash,
        new: &Hash,
        sib: &[Hash],
    ) -> bool {
        let args = [
            Tok::W(*pre),
            Tok::W(*post),
            word(slot_len as u64),
            word(slot as u64),
            Tok::W(*old),
            Tok::W(*new),
            hashes(sib),
        ];
        self.verify("verifyUpdateProof(bytes32,bytes32,uint32,uint32,bytes32,bytes32,bytes32[])", &args)
    }

    fn descriptor(&mut self, root: &Hash, count: u32, p: &DescriptorProof) -> bool {
        let args =
            [Tok::W(*root), word(count as u64), word(p.node as u64), Tok::B(p.descriptor.clone()), hashes(&p.siblings)];
        self.verify("verifyDescriptorProof(bytes32,uint32,uint32,bytes,bytes32[])", &args)
    }

    fn region(&mut self, root: &Hash, addr: u32, len: usize, commit: &Hash, sib: &[Hash]) -> bool {
        let args = [Tok::W(*root), word(addr as u64), word(len as u64), Tok::W(*commit), hashes(sib)];
        self.verify("verifyRegion(bytes32,uint32,uint256,bytes32,bytes32[])", &args)
    }

    fn input_or_weight(&mut self, input: bool, root: &Hash, i: usize, len: usize, commit: &Hash, sib: &[Hash]) -> bool {
        let args = [Tok::W(*root), word(i as u64), word(len as u64), Tok::W(*commit), hashes(sib)];
        let f = if input { "verifyInputRegion" } else { "verifyWeightRegion" };
        self.verify(&format!("{f}(bytes32,uint256,uint256,bytes32,bytes32[])"), &args)
    }

    fn final_state(&mut self, hash: &Hash, encoded: &[u8], len: usize, commit: &Hash, sib: &[Hash]) -> bool {
        let args = [Tok::W(*hash), Tok::B(encoded.to_vec()), word(len as u64), Tok::W(*commit), hashes(sib)];
        self.verify("verifyFinalState(bytes32,bytes,uint256,bytes32,bytes32[])", &args)
    }

    fn image_call(&mut self, f: &str, r: &ImageRoots) -> Option<Hash> {
        let lens = |v: &[RegionRoot]| words(&v.iter().map(|x| x.len as u64).collect::<Vec<_>>());
        let roots = |v: &[RegionRoot]| hashes(&v.iter().map(|x| x.root).collect::<Vec<_>>());
        let tuple = Tok::T(vec![
            Tok::W(r.code.root),
            word(r.code.len as u64),
            Tok::W(r.params.root),
            word(r.params.len as u64),
            roots(&r.inputs),
            lens(&r.inputs),
            roots(&r.weights),
            lens(&r.weights),
            word(r.output_len as u64),
        ]);
        self.call(&format!("{f}({IMAGE_ROOTS})"), &[tuple])
    }

    fn node_pre_state(&mut self, descriptor: &[u8], input_roots: &[Hash]) -> Option<Hash> {
        self.call("nodePreStateHash(bytes,bytes32[])", &[Tok::B(descriptor.to_vec()), hashes(input_roots)])
    }

    fn print_gas(&self, what: &str) {
        for (f, g) in &self.gas {
            let (min, max) = (g.iter().min().unwrap_or(&0), g.iter().max().unwrap_or(&0));
            let mean = g.iter().sum::<u64>() / g.len().max(1) as u64;
            eprintln!("{what}: {f}: {} calls (true / hash), execution gas min {min} mean {mean} max {max}", g.len());
        }
    }
}

// ------------------------------------------------------------------ real runs

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/digits").join(name)
}

struct Run {
    kind: &'static str,
    model: Model,
    images: Vec<NodeImage>,
    slots: Vec<Tensor>,
    trace: Trace,
}

fn runs() -> &'static [Run] {
    static RUNS: OnceLock<Vec<Run>> = OnceLock::new();
    RUNS.get_or_init(|| {
        ["cnn", "mlp"]
            .into_iter()
            .map(|kind| {
                let b = Bundle::from_bytes(&std::fs::read(fixture(&format!("{kind}.opml"))).unwrap()).unwrap();
                let name = format!("test_{kind}.safetensors");
                let ds = read_dataset(&std::fs::read(fixture(&name)).unwrap(), &name, false).unwrap();
                let x = b.quantize_input(ds.sample(0)).unwrap();
                let slots = run_all(&b.model, std::slice::from_ref(&x)).unwrap();
                let trace = Trace::with_model_commitment(&b.model, b.model_root().unwrap(), &slots);
                let images = b.node_images().to_vec();
                Run { kind, model: b.model, images, slots, trace }
            })
            .collect()
    })
}

/// One node's VM run: image roots, pre-state, region proofs, final state.
struct NodeCase {
    name: String,
    roots: ImageRoots,
    /// The node's committed descriptor and its inputs' commitments (what the handover reads).
    descriptor: Vec<u8>,
    input_roots: Vec<Hash>,
    initial_hash: Hash,
    pre_root: Hash,
    /// (is input, index, commitment, proof) of each input and weight region of the pre-state.
    regions: Vec<(bool, usize, Hash, RegionProof)>,
    final_state: State,
    output: Hash,
    output_proof: RegionProof,
}

fn node_cases() -> &'static [NodeCase] {
    static CASES: OnceLock<Vec<NodeCase>> = OnceLock::new();
    CASES.get_or_init(|| {
        let mut out = Vec::new();
        for run in runs() {
            let g = run.model.graph();
            for (j, node) in g.nodes.iter().enumerate() {
                let name = format!("{} node {j} ({})", run.kind, node.op.name());
                let prog = compile_node(&run.model, j).unwrap();
                let ins: Vec<&Tensor> = node.inputs.iter().map(|&s| &run.slots[s]).collect();
                let roots = prog.roots(&ins).unwrap();
                let mut m = prog.machine(&ins).unwrap();
                let initial_hash = m.state_hash();
                let pre_root = m.mem_root();
                let mut regions = Vec::new();
                for (i, t) in ins.iter().enumerate() {
                    let p = input_region_proof(m.memory_mut(), i, t.spec().byte_len()).unwrap();
                    regions.push((true, i, tensor_commitment(t), p));
                }
                for (i, t) in prog.weights.iter().enumerate() {
                    let p = weight_region_proof(m.memory_mut(), i, t.spec().byte_len()).unwrap();
                    regions.push((false, i, tensor_commitment(t), p));
                }
                assert_eq!(m.run(1 << 32), RunEnd::Halted, "{name}");
                let final_state = m.state();
                let output_proof = output_region_proof(m.memory_mut(), prog.output.byte_len()).unwrap();
                let output = tensor_commitment(&run.slots[g.node_slot(j)]);
                let descriptor = descriptor_proof(&run.model, &run.images, j).unwrap().descriptor;
                let input_roots = ins.iter().map(|t| tensor_commitment(t)).collect();
                out.push(NodeCase {
                    name,
                    roots,
                    descriptor,
                    input_roots,
                    initial_hash,
                    pre_root,
                    regions,
                    final_state,
                    output,
                    output_proof,
                });
            }
        }
        out
    })
}

fn flip(h: &mut Hash, rng: &mut ChaCha8Rng) {
    h[rng.gen_range(0..32)] ^= 1 << rng.gen_range(0..8);
}

/// Tamper with a sibling list: flip one, drop one, or add one.
fn tamper_siblings(sib: &mut Vec<Hash>, rng: &mut ChaCha8Rng) {
    match rng.gen_range(0..3) {
        0 if !sib.is_empty() => {
            let k = rng.gen_range(0..sib.len());
            flip(&mut sib[k], rng);
        }
        1 => {
            sib.pop();
        }
        _ => sib.push(keccak256(&[rng.gen::<u8>()])),
    }
}

// ------------------------------------------------------------------ tests

#[test]
fn pre_state_of_every_node_matches_the_compiler_and_the_vm() {
    let mut h = Harness::load();
    let cases = node_cases();
    assert!(cases.len() >= 10, "{} nodes", cases.len());
    for c in cases {
        let want = c.roots.pre_state().unwrap().hash();
        assert_eq!(want, c.initial_hash, "{}: compiler pre-state vs VM", c.name);
        assert_eq!(h.image_call("memoryRoot", &c.roots), Some(c.pre_root), "{}: memory root", c.name);
        assert_eq!(h.image_call("preStateHash", &c.roots), Some(want), "{}: pre-state hash", c.name);
        // The handover's derivation: from the committed descriptor and the input commitments.
        assert_eq!(h.node_pre_state(&c.descriptor, &c.input_roots), Some(want), "{}: from descriptor", c.name);
    }
    h.print_gas("pre-state, every digits node");
}

/// `nodePreStateHash` of tampered descriptors (a byte flipped, cut, lengthened) and input
/// root lists equals the Rust twin (`Descriptor::decode` + `descriptor_image_roots` +
/// `pre_state`), or both reject.
#[test]
fn node_pre_state_of_tampered_descriptors_agrees_with_rust() {
    let mut h = Harness::load();
    let mut rng = ChaCha8Rng::seed_from_u64(0x9e5);
    let (mut accepted, mut rejected) = (0, 0);
    for c in node_cases() {
        for _ in 0..30 {
            let (mut d, mut ins) = (c.descriptor.clone(), c.input_roots.clone());
            match rng.gen_range(0..5) {
                0 | 1 => {
                    // a header or length field (the first 28 bytes and the u32 lengths) or any byte
                    let b = if rng.gen() { rng.gen_range(0..28) } else { rng.gen_range(0..d.len()) };
                    d[b] ^= 1 << rng.gen_range(0..8);
                }
                2 => {
                    if rng.gen() {
                        d.pop();
                    } else {
                        d.push(rng.gen());
                    }
                }
                3 => {
                    if rng.gen() {
                        ins.pop();
                    } else {
                        ins.push(keccak256(&[rng.gen::<u8>()]));
                    }
                }
                _ => {
                    if let Some(r) = ins.first_mut() {
                        flip(r, &mut rng);
                    }
                }
            }
            let rust = Descriptor::decode(&d)
                .ok()
                .and_then(|dd| descriptor_image_roots(&dd, &ins).ok())
                .and_then(|r| r.pre_state().ok())
                .map(|s| s.hash());
            assert_eq!(h.node_pre_state(&d, &ins), rust, "{}", c.name);
            if rust.is_some() {
                accepted += 1;
            } else {
                rejected += 1;
            }
        }
    }
    assert!(accepted > 100 && rejected > 100, "accepted {accepted} rejected {rejected}");
}

#[test]
fn random_images_agree_with_image_roots() {
    let mut h = Harness::load();
    let mut rng = ChaCha8Rng::seed_from_u64(0x1a_0e);
    let len = |rng: &mut ChaCha8Rng, window: usize| -> usize {
        match rng.gen_range(0..6) {
            0 => 0,
            1 => window,
            2 => window + rng.gen_range(1..64),
            3 => rng.gen_range(0..64),
            _ => rng.gen_range(0..window / 16 + 1),
        }
    };
    let (mut ok, mut rejected) = (0, 0);
    for _ in 0..300 {
        let region = |rng: &mut ChaCha8Rng, window: usize| RegionRoot { root: rng.gen(), len: len(rng, window) };
        let roots = ImageRoots {
            code: region(&mut rng, 1 << 20),
            params: region(&mut rng, 1 << 20),
            inputs: (0..rng.gen_range(0..10)).map(|_| region(&mut rng, 1 << 28)).collect(),
            weights: (0..rng.gen_range(0..5)).map(|_| region(&mut rng, 1 << 28)).collect(),
            output_len: len(&mut rng, 1 << 28),
        };
        let want = roots.pre_state().ok().map(|s| s.hash());
        assert_eq!(h.image_call("preStateHash", &roots), want, "{roots:?}");
        assert_eq!(h.image_call("memoryRoot", &roots), roots.memory_root().ok(), "{roots:?}");
        if want.is_some() {
            ok += 1;
        } else {
            rejected += 1;
        }
    }
    assert!(ok > 30 && rejected > 30, "{ok} valid images, {rejected} rejected");
}

#[test]
fn slot_and_update_proofs_agree_with_rust() {
    let mut h = Harness::load();
    let mut rng = ChaCha8Rng::seed_from_u64(5107);
    let (mut tampered, mut tampered_true) = (0, 0);
    for run in runs() {
        let t = &run.trace;
        let n = t.nodes.len();
        for i in 0..=n {
            for slot in 0..t.slot_len as usize {
                let p = slot_proof(t, i, slot).unwrap();
                assert!(verify_slot_proof(&t.states[i], t.slot_len, &p));
                assert!(
                    h.slot(&t.states[i], t.slot_len, p.slot, &p.value, &p.siblings),
                    "{} S_{i} slot {slot}",
                    run.kind
                );
                // A tampered variant.
                let (mut p, mut state, mut len) = (p, t.states[i], t.slot_len);
                match rng.gen_range(0..5) {
                    0 => tamper_siblings(&mut p.siblings, &mut rng),
                    1 => p.slot = rng.gen_range(0..2 * t.slot_len),
                    2 => flip(&mut p.value, &mut rng),
                    3 => flip(&mut state, &mut rng),
                    _ => len = [t.slot_len * 2, t.slot_len / 2, t.slot_len + 1, 0][rng.gen_range(0..4)],
                }
                let rust = verify_slot_proof(&state, len, &p);
                assert_eq!(h.slot(&state, len, p.slot, &p.value, &p.siblings), rust, "{} S_{i} slot {slot}", run.kind);
                tampered += 1;
                tampered_true += rust as usize;
            }
        }
        for i in 0..n {
            let p = update_proof(t, i).unwrap();
            let (pre, post) = (t.states[i], t.states[i + 1]);
            assert!(verify_update_proof(&pre, &post, t.slot_len, &p));
            assert!(h.update(&pre, &post, t.slot_len, p.slot, &p.old, &p.new, &p.siblings), "{} step {i}", run.kind);
            for _ in 0..20 {
                let (mut p, mut pre, mut post, mut len) = (p.clone(), pre, post, t.slot_len);
                match rng.gen_range(0..7) {
                    0 => tamper_siblings(&mut p.siblings, &mut rng),
                    1 => p.slot = rng.gen_range(0..2 * t.slot_len),
                    2 => flip(&mut p.old, &mut rng),
                    3 => flip(&mut p.new, &mut rng),
                    4 => flip(&mut pre, &mut rng),
                    5 => flip(&mut post, &mut rng),
                    _ => len = [t.slot_len * 2, t.slot_len / 2, t.slot_len + 1, 0][rng.gen_range(0..4)],
                }
                let rust = verify_update_proof(&pre, &post, len, &p);
                assert_eq!(
                    h.update(&pre, &post, len, p.slot, &p.old, &p.new, &p.siblings),
                    rust,
                    "{} step {i}",
                    run.kind
                );
                tampered += 1;
                tampered_true += rust as usize;
            }
        }
    }
    eprintln!("{tampered} tampered slot/update proofs, {tampered_true} still true statements");
    h.print_gas("slot and update proofs");
}

#[test]
fn descriptor_proofs_agree_with_rust() {
    let mut h = Harness::load();
    let mut rng = ChaCha8Rng::seed_from_u64(0xde5c);
    for run in runs() {
        let root = model_commitment(&run.model, &run.images);
        let count = run.model.graph().nodes.len() as u32;
        for k in 0..count as usize {
            let p = descriptor_proof(&run.model, &run.images, k).unwrap();
            assert!(verify_descriptor_proof(&root, count, &p));
            assert!(h.descriptor(&root, count, &p), "{} node {k}", run.kind);
            for _ in 0..25 {
                let (mut p, mut root, mut count) = (p.clone(), root, count);
                match rng.gen_range(0..7) {
                    0 => tamper_siblings(&mut p.siblings, &mut rng),
                    1 => p.node = rng.gen_range(0..2 * count),
                    2 => {
                        let b = rng.gen_range(0..p.descriptor.len());
                        p.descriptor[b] ^= 1 << rng.gen_range(0..8);
                    }
                    3 => {
                        if rng.gen() {
                            p.descriptor.pop();
                        } else {
                            p.descriptor.push(0);
                        }
                    }
                    4 => flip(&mut root, &mut rng),
                    5 => count = rng.gen_range(0..2 * count + 2),
                    _ => {
                        // Another node's honest proof with this node's index.
                        let other =
                            descriptor_proof(&run.model, &run.images, rng.gen_range(0..count as usize)).unwrap();
                        p.descriptor = other.descriptor;
                    }
                }
                let rust = verify_descriptor_proof(&root, count, &p);
                assert_eq!(h.descriptor(&root, count, &p), rust, "{} node {k}: {p:?}", run.kind);
            }
        }
    }
    h.print_gas("descriptor proofs");
}

#[test]
fn region_and_final_state_proofs_agree_with_rust() {
    let mut h = Harness::load();
    let mut rng = ChaCha8Rng::seed_from_u64(0x0e61);
    let bases: Vec<u32> = [CODE_BASE, PARAM_BASE, OUTPUT_BASE]
        .into_iter()
        .chain((0..9).map(input_addr))
        .chain((0..4).map(weight_addr))
        .collect();
    let (mut tampered, mut tampered_true) = (0, 0);
    for c in node_cases() {
        // Input and weight regions of the pre-state.
        for (is_input, i, commit, p) in &c.regions {
            assert_eq!(p.root, *commit, "{}", c.name);
            let rust = if *is_input { verify_input_region } else { verify_weight_region };
            assert!(rust(&c.pre_root, *i, p.len, commit, &p.siblings));
            assert!(h.input_or_weight(*is_input, &c.pre_root, *i, p.len, commit, &p.siblings), "{}", c.name);
            assert!(h.region(&c.pre_root, p.addr, p.len, commit, &p.siblings), "{}", c.name);
            for _ in 0..6 {
                let (mut root, mut i, mut len, mut commit, mut sib) =
                    (c.pre_root, *i, p.len, *commit, p.siblings.clone());
                let mut addr = p.addr;
                match rng.gen_range(0..6) {
                    0 => tamper_siblings(&mut sib, &mut rng),
                    1 => i = rng.gen_range(0..10),
                    2 => len = [len * 2, len / 2, len + 32, (1 << 28) + 1, 0][rng.gen_range(0..5)],
                    3 => flip(&mut commit, &mut rng),
                    4 => flip(&mut root, &mut rng),
                    _ => addr = if rng.gen() { bases[rng.gen_range(0..bases.len())] } else { rng.gen() },
                }
                let want = rust(&root, i, len, &commit, &sib);
                assert_eq!(h.input_or_weight(*is_input, &root, i, len, &commit, &sib), want, "{}", c.name);
                let want_at = verify_region(&root, addr, len, &commit, &sib);
                assert_eq!(h.region(&root, addr, len, &commit, &sib), want_at, "{} at {addr:#x}", c.name);
                tampered += 2;
                tampered_true += want as usize + want_at as usize;
            }
        }
        // The final state and its output region.
        let st = &c.final_state;
        assert_eq!((st.status, st.exit_code), (Status::Exited, 0), "{}", c.name);
        let p = &c.output_proof;
        assert_eq!(p.root, c.output, "{}", c.name);
        assert!(verify_final_state(&st.hash(), &st.encode(), p.len, &c.output, &p.siblings));
        assert!(h.final_state(&st.hash(), &st.encode(), p.len, &c.output, &p.siblings), "{}", c.name);
        assert!(h.region(&st.mem_root, OUTPUT_BASE, p.len, &c.output, &p.siblings), "{}", c.name);
        for _ in 0..30 {
            let mut st = st.clone();
            let (mut len, mut commit, mut sib) = (p.len, c.output, p.siblings.clone());
            let mut rehash = true;
            let mut encoded = st.encode().to_vec();
            let mut hash = st.hash();
            match rng.gen_range(0..8) {
                0 => tamper_siblings(&mut sib, &mut rng),
                1 => len = [len * 2, len / 2, len + 32, (1 << 28) + 1, 0][rng.gen_range(0..5)],
                2 => flip(&mut commit, &mut rng),
                3 => {
                    flip(&mut hash, &mut rng);
                    rehash = false;
                }
                4 => {
                    st.status = Status::Running;
                    st.exit_code = 0;
                }
                5 => {
                    st.status = Status::Faulted;
                    st.exit_code = rng.gen_range(0..4);
                }
                6 => st.exit_code = rng.gen(),
                _ => {
                    // A raw byte flip of the encoding (maybe non-canonical), or a wrong length.
                    match rng.gen_range(0..3) {
                        0 => {
                            let b = rng.gen_range(0..encoded.len());
                            encoded[b] ^= 1 << rng.gen_range(0..8);
                        }
                        1 => encoded.push(0),
                        _ => {
                            encoded.pop();
                        }
                    }
                    hash = keccak256(&encoded);
                    rehash = false;
                }
            }
            if rehash {
                encoded = st.encode().to_vec();
                hash = keccak256(&encoded);
            }
            let want = verify_final_state(&hash, &encoded, len, &commit, &sib);
            assert_eq!(h.final_state(&hash, &encoded, len, &commit, &sib), want, "{}", c.name);
            tampered += 1;
            tampered_true += want as usize;
        }
    }
    eprintln!("{tampered} tampered region/final-state proofs, {tampered_true} still true statements");
    h.print_gas("region and final-state proofs");
}

#[test]
fn input_and_weight_addresses_are_the_layouts() {
    // The harness's window arithmetic against the layout constants, past the valid indices
    // too: the i-th input/weight check equals the plain region check at the layout address.
    let mut h = Harness::load();
    let c = &node_cases()[0];
    let (_, _, commit, p) = &c.regions[0];
    for i in 0..12 {
        for input in [true, false] {
            let max = if input { 8 } else { 3 };
            let at = if i < max {
                verify_region(
                    &c.pre_root,
                    if input { input_addr(i) } else { weight_addr(i) },
                    p.len,
                    commit,
                    &p.siblings,
                )
            } else {
                false
            };
            assert_eq!(h.input_or_weight(input, &c.pre_root, i, p.len, commit, &p.siblings), at, "input {input} {i}");
        }
    }
}
