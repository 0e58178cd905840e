//! The fixed vector set `fixtures/step-vectors/vectors.json`:
//!
//! * every vector's post-state hash is re-derived here independently of the VM code: from
//!   unicorn (`vm/tests/oracle/unicorn_oracle.py`, mode `seq`) for every instruction unicorn
//!   models, and from the spec's rules for faults, halted states, `ecall` and `dot4`;
//! * the Rust witness-only step and the contract (revm) both return that hash.
//!
//! The forge test `contracts/test/StepVectors.t.sol` runs the same file through the contract.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use opml_merkle::{hash_pair, keccak256, zero_hash, Hash};
use serde_json::{json, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load_vectors() -> Vec<Value> {
    let path = root().join("fixtures/step-vectors/vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let vectors = doc["vectors"].as_array().expect("vectors array").clone();
    assert_eq!(doc["count"].as_u64(), Some(vectors.len() as u64), "count field");
    vectors
}

fn bytes(v: &Value, field: &str) -> Vec<u8> {
    let s = v[field].as_str().unwrap_or_else(|| panic!("vector field {field} missing"));
    hex::decode(s.trim_start_matches("0x")).unwrap_or_else(|e| panic!("vector field {field}: {e}"))
}

#[test]
fn vectors_agree_with_the_rust_step_and_the_contract() {
    let mut v = common::verifier();
    let vectors = load_vectors();
    assert!(vectors.len() >= 100, "only {} vectors", vectors.len());
    for vec in &vectors {
        let name = vec["name"].as_str().expect("name");
        let (state, proof) = (bytes(vec, "state"), bytes(vec, "proof"));
        let expected: [u8; 32] = bytes(vec, "post_state_hash").try_into().expect("32-byte hash");
        assert_eq!(opml_vm::step::step(&state, &proof).as_ref().ok(), Some(&expected), "{name}: Rust step");
        assert_eq!(common::assert_same(&mut v, &state, &proof, name), Some(expected), "{name}: contract");
    }
}

// ---------------------------------------------------------------------------------------
// Independent re-derivation of the post-state (no opml-vm code below).
// ---------------------------------------------------------------------------------------

/// The fields of a 173-byte state encoding (docs/spec/vm.md §7), parsed by hand.
#[derive(Clone, Debug)]
struct Pre {
    root: Hash,
    pc: u32,
    step: u64,
    status: u8,
    exit: u32,
    regs: [u32; 32],
}

fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}

fn parse_state(s: &[u8]) -> Pre {
    assert_eq!(s.len(), 173);
    let mut regs = [0u32; 32];
    for (i, r) in regs.iter_mut().enumerate().skip(1) {
        *r = be32(s, 49 + 4 * (i - 1));
    }
    Pre {
        root: s[..32].try_into().expect("root"),
        pc: be32(s, 32),
        step: u64::from_be_bytes(s[36..44].try_into().expect("step")),
        status: s[44],
        exit: be32(s, 45),
        regs,
    }
}

fn encode(p: &Pre) -> Vec<u8> {
    let mut out = Vec::with_capacity(173);
    out.extend_from_slice(&p.root);
    out.extend_from_slice(&p.pc.to_be_bytes());
    out.extend_from_slice(&p.step.to_be_bytes());
    out.push(p.status);
    out.extend_from_slice(&p.exit.to_be_bytes());
    for r in &p.regs[1..] {
        out.extend_from_slice(&r.to_be_bytes());
    }
    out
}

/// The leaves and siblings a proof carries (docs/spec/vm.md §8), parsed by hand.
struct Paths {
    fetch_leaf: Hash,
    fetch_siblings: Vec<Hash>,
    data: Option<(Hash, Vec<Hash>)>,
}

fn read_path(proof: &[u8], at: &mut usize, levels: usize) -> Vec<Hash> {
    let mask = be32(proof, *at);
    *at += 4;
    (0..levels)
        .map(|l| {
            if mask >> l & 1 == 1 {
                *zero_hash(l)
            } else {
                let h: Hash = proof[*at..*at + 32].try_into().expect("sibling");
                *at += 32;
                h
            }
        })
        .collect()
}

fn parse_proof(proof: &[u8], pc: u32, mem_addr: Option<u32>) -> Paths {
    let mut at = 32;
    let fetch_leaf: Hash = proof[..32].try_into().expect("fetch leaf");
    let fetch_siblings = read_path(proof, &mut at, 27);
    let mut data = None;
    if at < proof.len() {
        let addr = mem_addr.expect("a data part needs a data address");
        let join = (32 - ((pc >> 5) ^ (addr >> 5)).leading_zeros()) as usize;
        let leaf: Hash = proof[at..at + 32].try_into().expect("data leaf");
        at += 32;
        data = Some((leaf, read_path(proof, &mut at, join - 1)));
    }
    assert_eq!(at, proof.len(), "proof not consumed");
    Paths { fetch_leaf, fetch_siblings, data }
}

fn root_of(leaf: &Hash, index: u32, siblings: &[Hash]) -> Hash {
    let mut node = *leaf;
    for (l, s) in siblings.iter().enumerate() {
        node = if index >> l & 1 == 0 { hash_pair(&node, s) } else { hash_pair(s, &node) };
    }
    node
}

/// The full 27 siblings of the data leaf (shared upper siblings, the fetch path's node at
/// the joining level).
fn data_siblings(paths: &Paths, pc: u32, addr: u32) -> Vec<Hash> {
    let Some((_, own)) = &paths.data else { return paths.fetch_siblings.clone() };
    let join = own.len() + 1;
    let fetch_node = root_of(&paths.fetch_leaf, pc >> 5, &paths.fetch_siblings[..join - 1]);
    let mut sibs = own.clone();
    sibs.push(fetch_node);
    sibs.extend_from_slice(&paths.fetch_siblings[join..]);
    let _ = addr;
    sibs
}

fn sext8(x: u32) -> i32 {
    x as u8 as i8 as i32
}

/// A unicorn case and how to turn its answer into the post-state.
struct OracleCase {
    index: usize,
    pre: Pre,
    data: Option<(u32, Hash, Vec<Hash>)>,
}

/// Run cases (JSON values) through the unicorn oracle, one answer per case.
fn run_oracle(cases: &[Value]) -> Vec<Value> {
    let script = root().join("vm/tests/oracle/unicorn_oracle.py");
    let mut child = Command::new(python())
        .arg(&script)
        .arg("seq")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} (the project venv with unicorn, made by scripts/setup.sh; or set OPML_PYTHON): {e}",
                python().display()
            )
        });
    let input: String = cases.iter().map(|c| c.to_string() + "\n").collect();
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write cases");
    let out = child.wait_with_output().expect("oracle output");
    assert!(out.status.success(), "{} failed: {}", script.display(), String::from_utf8_lossy(&out.stderr));
    let answers: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("oracle JSON line"))
        .collect();
    assert_eq!(answers.len(), cases.len(), "one oracle answer per case");
    answers
}

fn python() -> PathBuf {
    std::env::var_os("OPML_PYTHON").map(PathBuf::from).unwrap_or_else(|| root().join(".venv/bin/python"))
}

#[test]
fn every_vector_hash_is_rederived_from_unicorn_or_the_spec_rules() {
    let vectors = load_vectors();
    let mut expected: Vec<Option<Hash>> = vec![None; vectors.len()];
    let mut oracle: Vec<OracleCase> = Vec::new();
    let mut cases = String::new();
    for (i, vec) in vectors.iter().enumerate() {
        let case = vec["case"].as_str().expect("case");
        let (state, proof) = (bytes(vec, "state"), bytes(vec, "proof"));
        let pre = parse_state(&state);
        let mut post = pre.clone();
        post.step = pre.step.wrapping_add(1);
        if let Some(status) = case.strip_prefix("halted:") {
            assert_eq!(pre.status.to_string(), status);
            expected[i] = Some(keccak256(&state));
            continue;
        }
        if let Some(code) = case.strip_prefix("fault:") {
            // A fault changes only status, exit code and step.
            post.status = 2;
            post.exit = code.parse().expect("fault code");
            expected[i] = Some(keccak256(&encode(&post)));
            continue;
        }
        let paths = parse_proof(&proof, pre.pc, vec["mem_addr"].as_u64().map(|a| a as u32));
        let o = (pre.pc & 31) as usize;
        let insn = u32::from_le_bytes(paths.fetch_leaf[o..o + 4].try_into().expect("insn"));
        match case {
            "instruction:Ecall" => {
                let (a0, a2, a7) = (pre.regs[10], pre.regs[12], pre.regs[17]);
                match a7 {
                    93 => {
                        post.status = 1;
                        post.exit = a0;
                    }
                    64 => {
                        assert!(a0 == 1 || a0 == 2, "{case}: fd {a0}");
                        post.regs[10] = a2;
                    }
                    _ => panic!("{case}: a7 = {a7} is not a syscall"),
                }
                post.pc = pre.pc.wrapping_add(4);
                expected[i] = Some(keccak256(&encode(&post)));
            }
            "instruction:Dot4" => {
                assert_eq!(insn & 0xfe00_707f, 0x0000_000b, "{case}: not a dot4 word");
                let (rd, rs1, rs2) =
                    ((insn >> 7 & 31) as usize, (insn >> 15 & 31) as usize, (insn >> 20 & 31) as usize);
                let (a, b) = (pre.regs[rs1], pre.regs[rs2]);
                let sum: i32 = (0..4).map(|k| sext8(a >> (8 * k)) * sext8(b >> (8 * k))).sum();
                if rd != 0 {
                    post.regs[rd] = pre.regs[rd].wrapping_add(sum as u32);
                }
                post.pc = pre.pc.wrapping_add(4);
                expected[i] = Some(keccak256(&encode(&post)));
            }
            _ => {
                let mut mem = Vec::new();
                let mut data = None;
                if let Some(addr) = vec["mem_addr"].as_u64().map(|a| a as u32) {
                    let leaf = paths.data.as_ref().map(|d| d.0).unwrap_or(paths.fetch_leaf);
                    mem.push(json!({"base": addr & !31, "hex": hex::encode(leaf)}));
                    data = Some((addr, leaf, data_siblings(&paths, pre.pc, addr)));
                    assert_eq!(
                        root_of(&leaf, addr >> 5, &data.as_ref().expect("data").2),
                        pre.root,
                        "{case}: data path"
                    );
                }
                let line = json!({
                    "id": oracle.len(),
                    "code_base": pre.pc,
                    "code": hex::encode(insn.to_le_bytes()),
                    "mem": mem,
                    "regs": pre.regs,
                    "max_insns": 1,
                });
                cases.push_str(&line.to_string());
                cases.push('\n');
                oracle.push(OracleCase { index: i, pre, data });
            }
        }
    }
    assert!(oracle.len() >= 80, "only {} vectors go to unicorn", oracle.len());

    // Run unicorn on all instruction vectors at once. Unicorn fetches at the next pc even
    // with count = 1, so a case that stops with an unmapped fetch at X (a jump target) runs
    // again with the word at X mapped; its final pc is then X.
    let mut lines: Vec<Value> = cases.lines().map(|l| serde_json::from_str(l).expect("case")).collect();
    let mut answers = run_oracle(&lines);
    for (line, ans) in lines.iter_mut().zip(answers.iter_mut()) {
        let err = ans["error"].as_str().unwrap_or("");
        if let Some(at) = err.strip_prefix("Invalid memory fetch (UC_ERR_FETCH_UNMAPPED) near pc=0x") {
            let next = u32::from_str_radix(at, 16).expect("pc in error");
            line["mem"].as_array_mut().expect("mem").push(json!({"base": next & !3, "hex": "00000000"}));
            *ans = run_oracle(std::slice::from_ref(line)).remove(0);
            assert_eq!(ans["pc"].as_u64(), Some(next as u64), "unicorn stopped elsewhere on rerun");
        }
    }
    assert_eq!(answers.len(), oracle.len(), "one oracle answer per case");
    for (c, ans) in oracle.iter().zip(&answers) {
        let name = vectors[c.index]["name"].as_str().expect("name");
        assert!(ans["error"].is_null(), "{name}: unicorn error {}", ans["error"]);
        assert_eq!(ans["insns"].as_u64(), Some(1), "{name}: unicorn ran {} instructions", ans["insns"]);
        let mut post = c.pre.clone();
        post.step = c.pre.step.wrapping_add(1);
        post.pc = ans["pc"].as_u64().expect("pc") as u32;
        for (r, v) in post.regs.iter_mut().zip(ans["regs"].as_array().expect("regs")) {
            *r = v.as_u64().expect("reg") as u32;
        }
        post.regs[0] = 0;
        if let Some((addr, _old, sibs)) = &c.data {
            let new: Hash = hex::decode(ans["mem"][0]["hex"].as_str().expect("mem hex"))
                .expect("hex")
                .try_into()
                .expect("32 bytes");
            post.root = root_of(&new, addr >> 5, sibs);
        }
        expected[c.index] = Some(keccak256(&encode(&post)));
    }

    for (vec, exp) in vectors.iter().zip(&expected) {
        let name = vec["name"].as_str().expect("name");
        let exp = exp.unwrap_or_else(|| panic!("{name}: no independent derivation"));
        assert_eq!(hex::encode(exp), hex::encode(bytes(vec, "post_state_hash")), "{name}: post-state hash");
    }
}
