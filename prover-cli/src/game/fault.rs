//! Deliberate faults, for tests and demos only: a submitter whose run of a claim lies
//! about one node, coherently, so that only the dispute game can expose it; and a
//! challenger that disputes true claims.
//!
//! A lying submitter can still play every move: its graph states run on natively from the
//! lie, and its VM run of the lying node ends in a state that holds the lie, so that its
//! handover passes and the lie is caught at one VM step:
//!
//! * `output` and `node:K`: one bit of the node's true output is flipped; the node's VM run
//!   is the honest one with the lie written over its output region at the halting step,
//!   where the game ends;
//! * `step:K:S`: the node's VM run is edited at step `S` and runs on from the edited
//!   machine; its output is what that run writes, and the game ends at step `S`.
//!
//! Either way the lie is chosen so that the model's final output changes: a lie that later
//! nodes absorb (a low bit lost in requantization, say) would leave the claim true, and no
//! challenger would dispute it.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use opml_compiler::layout::{input_addr, CODE_BASE, OUTPUT_BASE};
use opml_compiler::{compile_node, NodeProgram};
use opml_dnn::{Model, Tensor};
use opml_merkle::Hash;
use opml_vm::{Machine, Status};

use crate::game::vm::step_limit;
use crate::game::{Edit, GameError, GraphView, Tamper, VmView};

/// The bit that lies and memory edits flip in a byte: bit 6 moves an int8 value, or an
/// int32 through its top byte, far enough to survive requantization and pooling more often
/// than a low bit.
const BIT_FLIP: u8 = 0x40;
/// Most candidate lies an `output` or `node:K` fault tries (each re-runs the later nodes).
const MAX_LIES: usize = 64;
/// The bits a `step:K:S` register edit flips, in the order tried: bit 0 (a counter or an
/// accumulator off by one), then bit 2 (a word pointer moved by a word, still aligned).
const REGISTER_FLIPS: [u32; 2] = [1, 4];
/// A candidate tampered run must halt within this many times the honest run's steps (and
/// within `2^D`): an edit that makes a loop run away is skipped, not run out to `2^D`.
const RUN_BOUND_FACTOR: u64 = 2;

/// A deliberate fault (tests and demos only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// A wrong final output: the node that produces the model's output slot lies.
    Output,
    /// Node K's output is wrong; later nodes run natively on the lie.
    Node(usize),
    /// Node K's VM run is tampered at step S and runs on coherently; the graph carries
    /// the tampered run's output from node K on.
    Step {
        /// Node K.
        node: usize,
        /// Step S of the node's VM run.
        step: u64,
    },
    /// Generated token T of an LLM claim is wrong (later steps run on it): the argmax
    /// node of the step that emits it, found per claim (`ClaimModel::resolve` in the CLI).
    Token(usize),
    /// `node:NAME` or `step:NAME:S`: a node given by name, found in the model's graph
    /// before the run (`ClaimModel::resolve`).
    NamedNode {
        /// The node's name.
        name: String,
        /// Step S of its VM run (`step:NAME:S`), or none (`node:NAME`).
        step: Option<u64>,
    },
    /// A challenger that disputes true claims (no data of its own: it plays the honest view).
    ChallengeAll,
}

impl Fault {
    /// Whether a submitter carries this fault (every kind but `challenge-all`).
    pub fn is_submitter_fault(&self) -> bool {
        match self {
            Fault::Output | Fault::Node(_) | Fault::Step { .. } | Fault::Token(_) | Fault::NamedNode { .. } => true,
            Fault::ChallengeAll => false,
        }
    }
}

/// Whether a node field is a name rather than an index: it holds something other than
/// digits (and is not empty). `12x` is a name, as is `pos3.argmax`.
fn is_name(field: &str) -> bool {
    !field.is_empty() && !field.bytes().all(|b| b.is_ascii_digit()) && !field.starts_with(['-', '+', ' '])
}

/// A decimal number of the spec (digits only: no sign, no spaces), or why not.
fn number<T: FromStr>(field: &str, what: &str) -> Result<T, String> {
    if field.is_empty() {
        return Err(format!("{what} is missing"));
    }
    if !field.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} {field:?} is not a number"));
    }
    field.parse().map_err(|_| format!("{what} {field} is too large"))
}

impl FromStr for Fault {
    type Err = GameError;

    /// `output`, `node:K`, `step:K:S`, `token:T` or `challenge-all`; K is a node's index
    /// or its name (names hold no ':').
    fn from_str(spec: &str) -> Result<Self, GameError> {
        let bad = |why: String| GameError::FaultSpec { spec: spec.to_string(), why };
        let mut fields = spec.split(':');
        let kind = fields.next().unwrap_or_default();
        let args: Vec<&str> = fields.collect();
        match (kind, args.as_slice()) {
            ("output", []) => Ok(Fault::Output),
            ("challenge-all", []) => Ok(Fault::ChallengeAll),
            ("node", [k]) if is_name(k) => Ok(Fault::NamedNode { name: k.to_string(), step: None }),
            ("node", [k]) => Ok(Fault::Node(number(k, "node K").map_err(bad)?)),
            ("step", [k, s]) if is_name(k) => {
                Ok(Fault::NamedNode { name: k.to_string(), step: Some(number(s, "step S").map_err(bad)?) })
            }
            ("step", [k, s]) => {
                Ok(Fault::Step { node: number(k, "node K").map_err(bad)?, step: number(s, "step S").map_err(bad)? })
            }
            ("token", [t]) => Ok(Fault::Token(number(t, "token T").map_err(bad)?)),
            ("token", _) => Err(bad(format!("token:T takes 1 field, got {}", args.len()))),
            ("output" | "challenge-all", _) => Err(bad(format!("{kind} takes no ':' fields"))),
            ("node", _) => Err(bad(format!("node:K takes 1 field, got {}", args.len()))),
            ("step", _) => Err(bad(format!("step:K:S takes 2 fields, got {}", args.len()))),
            (other, _) => Err(bad(format!("unknown fault kind {other:?}"))),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Output => write!(f, "output"),
            Fault::Node(k) => write!(f, "node:{k}"),
            Fault::Step { node, step } => write!(f, "step:{node}:{step}"),
            Fault::Token(t) => write!(f, "token:{t}"),
            Fault::NamedNode { name, step: None } => write!(f, "node:{name}"),
            Fault::NamedNode { name, step: Some(s) } => write!(f, "step:{name}:{s}"),
            Fault::ChallengeAll => write!(f, "challenge-all"),
        }
    }
}

/// How the lying node's VM run is presented.
#[derive(Clone, Debug)]
enum LyingVm {
    /// The honest run with this output written over its output region at its halting step.
    Forged(Tensor),
    /// The run edited at one step, running on from the edited machine.
    Tampered(Tamper),
}

/// The node a run lies about, and its VM run.
#[derive(Clone, Debug)]
struct LyingNode {
    node: usize,
    vm: LyingVm,
}

/// One party's run of a claim: the graph view it stands by, and how it runs any node in
/// the VM (honestly, or, for the lying node, a VM run whose final state holds the lie so
/// that its handover passes and the lie is caught only at one VM step).
#[derive(Clone, Debug)]
pub struct Run {
    graph: GraphView,
    depth: u32,
    fault: Option<Fault>,
    lie: Option<LyingNode>,
}

impl Run {
    /// The honest run of `inputs`; VM runs are bounded by `2^depth` steps.
    pub fn honest(model: Arc<Model>, model_root: Hash, inputs: &[Tensor], depth: u32) -> Result<Run, GameError> {
        step_limit(depth)?;
        Ok(Run { graph: GraphView::honest(model, model_root, inputs)?, depth, fault: None, lie: None })
    }

    /// A submitter's lie; `ChallengeAll` is an error (a challenger fault). Errors name the
    /// node / step when out of range.
    pub fn dishonest(
        model: Arc<Model>,
        model_root: Hash,
        inputs: &[Tensor],
        fault: &Fault,
        depth: u32,
    ) -> Result<Run, GameError> {
        let unfit = |why: String| GameError::FaultUnfit { fault: fault.to_string(), why };
        step_limit(depth)?;
        let honest = GraphView::honest(model, model_root, inputs)?;
        let n = honest.node_count();
        let node = match fault {
            Fault::ChallengeAll => {
                return Err(unfit("a challenger's fault: a submitter lies with output, node:K or step:K:S".into()))
            }
            Fault::Token(_) | Fault::NamedNode { .. } => {
                return Err(unfit("a generation's token or a node by name is resolved against the model first".into()))
            }
            Fault::Output => output_node(honest.model())
                .ok_or_else(|| unfit("the model's output is one of its inputs: no node produces it".into()))?,
            Fault::Node(node) | Fault::Step { node, .. } => *node,
        };
        if node >= n {
            return Err(unfit(format!("there is no node {node}: the model has nodes 0..={}", n.saturating_sub(1))));
        }
        let (graph, vm) = match fault {
            Fault::Step { step, .. } => {
                let prog = compile_node(honest.model(), node)?;
                let probe = Probe::new(&prog, &honest.node_inputs(node)?, depth, *step)?;
                let changes_output = |out: Tensor| -> Result<Option<GraphView>, GameError> {
                    let g = honest.with_lie(node, out)?;
                    Ok((g.output() != honest.output()).then_some(g))
                };
                let found = probe.first_effective(&prog, step_edits(&prog, &probe.at), changes_output)?;
                let (tamper, graph) = found.ok_or_else(|| {
                    unfit(format!(
                        "no candidate edit at step {step} of node {node} (its output bytes, its inputs' last bytes, \
                         its registers) exits with 0 within {} steps and changes the model's output; try another \
                         step",
                        probe.bound
                    ))
                })?;
                (graph, LyingVm::Tampered(tamper))
            }
            Fault::Output | Fault::Node(_) | Fault::ChallengeAll | Fault::Token(_) | Fault::NamedNode { .. } => {
                let (graph, lie) = output_lie(&honest, node)?.ok_or_else(|| {
                    unfit(format!(
                        "no single-bit change of node {node}'s output (bit 6 of its last {MAX_LIES} bytes) changes \
                         the model's output"
                    ))
                })?;
                (graph, LyingVm::Forged(lie))
            }
        };
        Ok(Run { graph, depth, fault: Some(fault.clone()), lie: Some(LyingNode { node, vm }) })
    }

    /// The graph view this party stands by.
    pub fn graph(&self) -> &GraphView {
        &self.graph
    }

    /// The graph view, mutably (a view caches as it is asked).
    pub fn graph_mut(&mut self) -> &mut GraphView {
        &mut self.graph
    }

    /// The injected fault (None when honest).
    pub fn fault(&self) -> Option<&Fault> {
        self.fault.as_ref()
    }

    /// The node whose output this run falsifies (None when honest).
    pub fn lying_node(&self) -> Option<usize> {
        self.lie.as_ref().map(|l| l.node)
    }

    /// The VM depth `D`.
    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// Node `node`'s VM view as this party presents it (honest for every node but the lying one).
    pub fn vm_view(&self, node: usize) -> Result<VmView, GameError> {
        match &self.lie {
            Some(l) if l.node == node => {
                let prog = compile_node(self.graph.model(), node)?;
                let ins = self.graph.node_inputs(node)?;
                match &l.vm {
                    LyingVm::Forged(lie) => VmView::forged(&prog, &ins, self.depth, lie),
                    LyingVm::Tampered(t) => VmView::tampered(&prog, &ins, self.depth, Some(t)),
                }
            }
            _ => VmView::of_node(&self.graph, node, self.depth),
        }
    }
}

/// The first lie about node `node`'s output that changes the model's output: bit 6 of its
/// last byte flipped, else of the byte before, ... (the last byte of a little-endian
/// element is its most significant); the lying graph and the lie.
fn output_lie(honest: &GraphView, node: usize) -> Result<Option<(GraphView, Tensor)>, GameError> {
    let truth = honest.node_output(node)?;
    let bytes = truth.to_le_bytes();
    for i in (0..bytes.len()).rev().take(MAX_LIES) {
        let mut b = bytes.clone();
        b[i] ^= BIT_FLIP;
        let lie = Tensor::from_le_bytes(truth.dtype(), truth.shape().to_vec(), &b)?;
        let g = honest.with_lie(node, lie.clone())?;
        if g.output() != honest.output() {
            return Ok(Some((g, lie)));
        }
    }
    Ok(None)
}

/// The node that writes the model's output slot.
fn output_node(model: &Model) -> Option<usize> {
    let g = model.graph();
    (0..g.nodes.len()).find(|&j| g.node_slot(j) == g.output)
}

/// A node's honest VM run seen from step `S`: the machine there, its output, and the step
/// by which a tampered run must halt.
struct Probe {
    at: Machine,
    output: Tensor,
    bound: u64,
}

impl Probe {
    /// Run `prog` on `inputs` (at most `2^depth` steps); `step` must be below the end step.
    fn new(prog: &NodeProgram, inputs: &[&Tensor], depth: u32, step: u64) -> Result<Probe, GameError> {
        let unfit =
            |why: String| GameError::FaultUnfit { fault: Fault::Step { node: prog.node, step }.to_string(), why };
        let limit = step_limit(depth)?;
        let mut at = prog.machine(inputs)?;
        at.run(step.min(limit));
        let mut fin = at.clone();
        fin.run(limit - at.step);
        if !fin.is_halted() {
            return Err(unfit(format!("node {} runs past 2^{depth} steps", prog.node)));
        }
        let end = fin.step;
        if step >= end {
            return Err(unfit(format!("node {}'s VM run ends at step {end}: S must be below it", prog.node)));
        }
        let output = prog.read_output(&fin)?.0;
        Ok(Probe { at, output, bound: end.saturating_mul(RUN_BOUND_FACTOR).min(limit) })
    }

    /// The first of `edits` that, made at the probe's step, lets the run exit with code 0
    /// by the bound with an output other than the honest one that `accept` takes (`Some`):
    /// the tamper and what `accept` made of the output.
    fn first_effective<T>(
        &self,
        prog: &NodeProgram,
        edits: impl IntoIterator<Item = Edit>,
        mut accept: impl FnMut(Tensor) -> Result<Option<T>, GameError>,
    ) -> Result<Option<(Tamper, T)>, GameError> {
        for e in edits {
            let mut m = self.at.clone();
            e.apply(&mut m)?;
            // As `VmView::tampered` does: an edit of the code must be decoded anew.
            m.cache_code(CODE_BASE, prog.code.len() as u32);
            m.run(self.bound - m.step);
            if m.status == Status::Exited && m.exit_code == 0 {
                let out = prog.read_output(&m)?.0;
                if out != self.output {
                    if let Some(t) = accept(out)? {
                        return Ok(Some((Tamper { step: self.at.step, edits: vec![e] }, t)));
                    }
                }
            }
        }
        Ok(None)
    }
}

/// The first of `edits` that, made at step `step` of `prog`'s run on `inputs`, lets the run
/// exit with code 0 within twice the honest run's steps (and `2^depth`) with another output;
/// None when no edit does. `step` must be below the honest run's end step.
pub fn find_tamper(
    prog: &NodeProgram,
    inputs: &[&Tensor],
    depth: u32,
    step: u64,
    edits: impl IntoIterator<Item = Edit>,
) -> Result<Option<Tamper>, GameError> {
    let probe = Probe::new(prog, inputs, depth, step)?;
    Ok(probe.first_effective(prog, edits, |_| Ok(Some(())))?.map(|(t, ())| t))
}

/// The candidate edits of a `step:K:S` fault, in the order tried, made on the machine `at`
/// at step S:
/// 1. bit 6 of the last, then of the first non-zero byte of the output region (values
///    already written; a little-endian element's last non-zero byte is its most significant);
/// 2. bit 6 of the last byte of each input (what a kernel reads last, so likely still unread);
/// 3. bit 0 of each register x1..x31, then bit 2 of each.
fn step_edits(prog: &NodeProgram, at: &Machine) -> Vec<Edit> {
    let mem = at.memory();
    let flip = |addr: u32| Edit::Bytes { addr, bytes: vec![mem.read_u8(addr) ^ BIT_FLIP] };
    let out = mem.read_bytes(OUTPUT_BASE, prog.output.byte_len());
    let (first, last) = (out.iter().position(|&b| b != 0), out.iter().rposition(|&b| b != 0));
    let mut edits: Vec<Edit> =
        last.into_iter().chain(first.filter(|f| Some(*f) != last)).map(|i| flip(OUTPUT_BASE + i as u32)).collect();
    for (i, spec) in prog.inputs.iter().enumerate() {
        if let Some(last) = spec.byte_len().checked_sub(1) {
            edits.push(flip(input_addr(i) + last as u32));
        }
    }
    for bit in REGISTER_FLIPS {
        edits.extend((1..32).map(|reg| Edit::Reg { reg, value: at.regs[reg] ^ bit }));
    }
    edits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::testdata::{cnn, mlp, Digits};
    use crate::game::View;

    const DEPTH: u32 = 20;

    fn dishonest(d: &Digits, fault: &Fault) -> Result<Run, GameError> {
        Run::dishonest(d.model.clone(), d.root, std::slice::from_ref(&d.input), fault, DEPTH)
    }

    /// The honest VM run of node `node`.
    fn honest_vm(d: &Digits, node: usize) -> VmView {
        VmView::of_node(&d.honest, node, DEPTH).unwrap()
    }

    /// Graph states agree with the honest run's up to `S_node` and differ from `S_{node+1}`
    /// on, and the model's output is false.
    fn assert_diverges_after(d: &Digits, run: &Run, node: usize) {
        for i in 0..=d.honest.node_count() {
            let same = run.graph().state(i).unwrap() == d.honest.state(i).unwrap();
            assert_eq!(same, i <= node, "node {node}: S_{i}");
        }
        assert_ne!(run.graph().output_commitment(), d.honest.output_commitment(), "node {node}: the output");
    }

    fn bits_differing(a: &Tensor, b: &Tensor) -> u32 {
        a.to_le_bytes().iter().zip(b.to_le_bytes()).map(|(x, y)| (x ^ y).count_ones()).sum()
    }

    #[test]
    fn specs_parse_print_and_round_trip() {
        let cases = [
            ("output", Fault::Output),
            ("node:0", Fault::Node(0)),
            ("node:3", Fault::Node(3)),
            ("step:2:1000", Fault::Step { node: 2, step: 1000 }),
            ("step:0:0", Fault::Step { node: 0, step: 0 }),
            ("challenge-all", Fault::ChallengeAll),
        ];
        for (spec, fault) in cases {
            assert_eq!(spec.parse::<Fault>().unwrap(), fault, "{spec}");
            assert_eq!(fault.to_string(), spec);
            assert_eq!(fault.is_submitter_fault(), spec != "challenge-all");
        }
        let big = Fault::Step { node: usize::MAX, step: u64::MAX };
        assert_eq!(big.to_string().parse::<Fault>().unwrap(), big);
    }

    #[test]
    fn bad_specs_are_quoted_with_the_forms() {
        let cases = [
            ("node:", "node K is missing"),
            ("node:-1", "not a number"),
            ("node:+1", "not a number"),
            ("node: 1", "not a number"),
            ("node:1:2", "node:K takes 1 field, got 2"),
            ("step:1", "step:K:S takes 2 fields, got 1"),
            ("step:1:2:3", "step:K:S takes 2 fields, got 3"),
            ("step:1:", "step S is missing"),
            ("step:1:y", "step S \"y\" is not a number"),
            ("step:1:99999999999999999999", "step S 99999999999999999999 is too large"),
            ("nodes:1", "unknown fault kind \"nodes\""),
            ("Output", "unknown fault kind \"Output\""),
            ("", "unknown fault kind \"\""),
            ("output:1", "output takes no ':' fields"),
            ("challenge-all:", "challenge-all takes no ':' fields"),
        ];
        for (spec, why) in cases {
            let e = spec.parse::<Fault>().unwrap_err().to_string();
            assert!(e.starts_with(&format!("fault spec {spec:?}: ")), "{spec}: {e}");
            assert!(e.contains(why), "{spec}: {e}");
            assert!(e.contains("output, node:K, step:K:S, token:T and challenge-all"), "{spec}: {e}");
        }
    }

    #[test]
    fn llm_specs_parse_print_and_round_trip() {
        let named = |name: &str, step| Fault::NamedNode { name: name.to_string(), step };
        let cases = [
            ("token:0", Fault::Token(0)),
            ("token:7", Fault::Token(7)),
            ("node:pos9.argmax", named("pos9.argmax", None)),
            ("node:pos4.blk.15.ffn_up", named("pos4.blk.15.ffn_up", None)),
            // Anything but digits is a name.
            ("node:12x", named("12x", None)),
            ("node:x", named("x", None)),
            ("step:pos4.blk.15.ffn_up:1000", named("pos4.blk.15.ffn_up", Some(1000))),
            ("step:pos0.token:0", named("pos0.token", Some(0))),
        ];
        for (spec, fault) in cases {
            assert_eq!(spec.parse::<Fault>().unwrap(), fault, "{spec}");
            assert_eq!(fault.to_string(), spec);
            assert!(fault.is_submitter_fault(), "{spec}");
        }
        // An index stays an index.
        assert_eq!("node:12".parse::<Fault>().unwrap(), Fault::Node(12));
        assert_eq!("step:12:3".parse::<Fault>().unwrap(), Fault::Step { node: 12, step: 3 });
    }

    #[test]
    fn bad_llm_specs_are_quoted_with_the_forms() {
        let cases = [
            ("token:", "token T is missing"),
            ("token:x", "token T \"x\" is not a number"),
            ("token:-1", "token T \"-1\" is not a number"),
            ("token:99999999999999999999999", "token T 99999999999999999999999 is too large"),
            ("token", "token:T takes 1 field, got 0"),
            ("token:1:2", "token:T takes 1 field, got 2"),
            ("step:pos4.blk.15.ffn_up", "step:K:S takes 2 fields, got 1"),
            ("step:pos4.blk.15.ffn_up:", "step S is missing"),
            ("step:pos4.blk.15.ffn_up:z", "step S \"z\" is not a number"),
            ("node:pos4:ffn_up", "node:K takes 1 field, got 2"),
        ];
        for (spec, why) in cases {
            let e = spec.parse::<Fault>().unwrap_err().to_string();
            assert!(e.starts_with(&format!("fault spec {spec:?}: ")), "{spec}: {e}");
            assert!(e.contains(why), "{spec}: {e}");
            assert!(e.contains("token:T"), "{spec}: {e}");
        }
    }

    /// `token:T` and nodes by name depend on the model and the claim: the library's run
    /// takes them only once resolved to a node index.
    #[test]
    fn unresolved_token_and_named_faults_are_refused() {
        let d = mlp();
        let faults = [
            Fault::Token(2),
            Fault::NamedNode { name: "fc2".into(), step: None },
            Fault::NamedNode { name: "fc2".into(), step: Some(10) },
        ];
        for fault in faults {
            let e = dishonest(d, &fault).unwrap_err().to_string();
            assert!(e.starts_with(&format!("fault {fault}: ")), "{fault}: {e}");
            assert!(e.contains("resolved against the model first"), "{fault}: {e}");
        }
    }

    #[test]
    fn runs_can_move_between_threads() {
        fn send_sync_static<T: Send + Sync + 'static>() {}
        send_sync_static::<Run>();
        send_sync_static::<Fault>();
    }

    #[test]
    fn an_honest_run_is_the_honest_graph_and_vm() {
        let d = mlp();
        let run = Run::honest(d.model.clone(), d.root, std::slice::from_ref(&d.input), DEPTH).unwrap();
        assert_eq!((run.fault(), run.lying_node(), run.depth()), (None, None, DEPTH));
        assert_eq!(run.graph().trace().states, d.honest.trace().states);
        let mut vm = run.vm_view(2).unwrap();
        let mut want = honest_vm(d, 2);
        assert_eq!(vm.state_hash_at(1 << DEPTH), want.state_hash_at(1 << DEPTH));
        assert!(Run::honest(d.model.clone(), d.root, std::slice::from_ref(&d.input), 0).is_err());
    }

    /// `node:K` on a middle node of each digits model: one bit of the node's output flipped,
    /// later nodes run on it, and the node's VM run forged at its halting step to hold it.
    #[test]
    fn a_node_lie_is_coherent_after_its_node_and_its_vm_run_holds_the_lie() {
        for (d, node) in [(mlp(), 2usize), (cnn(), 4)] {
            let n = d.honest.node_count();
            let run = dishonest(d, &Fault::Node(node)).unwrap();
            assert_eq!((run.fault(), run.lying_node()), (Some(&Fault::Node(node)), Some(node)));
            assert_diverges_after(d, &run, node);
            let lie = run.graph().node_output(node).unwrap();
            assert_eq!(bits_differing(lie, d.honest.node_output(node).unwrap()), 1);
            // Later nodes run natively on the lie.
            let from_lie = GraphView::lying(d.model.clone(), d.root, std::slice::from_ref(&d.input), node, lie.clone());
            assert_eq!(from_lie.unwrap().trace().states, run.graph().trace().states);

            let mut vm = run.vm_view(node).unwrap();
            let mut honest = honest_vm(d, node);
            let end = honest.end_step();
            assert!(vm.exited_ok());
            assert_eq!(&vm.output().unwrap(), lie, "the final state holds the lie");
            assert_eq!(vm.end_step(), end);
            for s in [0, end / 2, end - 1] {
                assert_eq!(vm.state_hash_at(s), honest.state_hash_at(s), "step {s}");
            }
            assert_ne!(vm.state_hash_at(end), honest.state_hash_at(end));
            // Every other node runs honestly on the run's own graph: before the lie as the
            // honest party does; after it on the lie, ending with the graph's output.
            for j in (0..n).filter(|&j| j != node && j.abs_diff(node) <= 2) {
                let mut v = run.vm_view(j).unwrap();
                assert!(v.exited_ok(), "node {j}");
                assert_eq!(&v.output().unwrap(), run.graph().node_output(j).unwrap(), "node {j}");
                if j < node {
                    let mut h = honest_vm(d, j);
                    assert_eq!(v.state_hash_at(1 << DEPTH), h.state_hash_at(1 << DEPTH), "node {j}");
                }
            }
        }
    }

    #[test]
    fn an_output_lie_is_told_by_the_node_that_writes_the_output() {
        let d = cnn();
        let run = dishonest(d, &Fault::Output).unwrap();
        let g = d.model.graph();
        let node = run.lying_node().unwrap();
        assert_eq!(g.node_slot(node), g.output);
        assert_diverges_after(d, &run, node);
        assert_eq!(bits_differing(run.graph().output(), d.honest.output()), 1);
        assert_ne!(run.graph().output_commitment(), d.honest.output_commitment());
        let vm = run.vm_view(node).unwrap();
        assert!(vm.exited_ok());
        assert_eq!(&vm.output().unwrap(), run.graph().output());
    }

    /// `step:K:S` at several steps of a middle node of each digits model: the VM run agrees
    /// with the honest one before S, differs from S on, exits with 0, and its output is the
    /// graph's node K output.
    #[test]
    fn a_step_tamper_departs_at_its_step_and_the_graph_carries_its_output() {
        for (d, node) in [(mlp(), 2usize), (cnn(), 4), (cnn(), 6)] {
            let mut honest = honest_vm(d, node);
            let end = honest.end_step();
            for step in [1, end / 3, end / 2, end - 2] {
                let fault = Fault::Step { node, step };
                let run = dishonest(d, &fault).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(run.lying_node(), Some(node));
                let mut vm = run.vm_view(node).unwrap();
                assert!(vm.exited_ok(), "{fault}");
                for s in [0, step / 2, step - 1] {
                    assert_eq!(vm.state_hash_at(s), honest.state_hash_at(s), "{fault}: step {s}");
                }
                for s in [step, step + 1, vm.end_step(), 1 << DEPTH] {
                    assert_ne!(vm.state_hash_at(s), honest.state_hash_at(s), "{fault}: step {s}");
                }
                let out = vm.output().unwrap();
                assert_eq!(&out, run.graph().node_output(node).unwrap(), "{fault}");
                assert_ne!(&out, d.honest.node_output(node).unwrap(), "{fault}");
                assert_diverges_after(d, &run, node);
            }
        }
    }

    #[test]
    fn faults_out_of_range_or_for_the_wrong_side_are_refused() {
        let d = mlp();
        let n = d.honest.node_count();
        let end = honest_vm(d, 1).end_step();
        let cases = [
            (Fault::Node(n), format!("fault node:{n}: there is no node {n}: the model has nodes 0..={}", n - 1)),
            (Fault::Step { node: n + 3, step: 1 }, format!("there is no node {}", n + 3)),
            (Fault::Step { node: 1, step: end }, format!("node 1's VM run ends at step {end}: S must be below it")),
            (Fault::Step { node: 1, step: u64::MAX }, format!("fault step:1:{}: node 1's VM run ends", u64::MAX)),
            (Fault::ChallengeAll, "fault challenge-all: a challenger's fault".to_string()),
        ];
        for (fault, want) in cases {
            let e = dishonest(d, &fault).unwrap_err().to_string();
            assert!(e.contains(&want), "{fault}: {e}");
        }
        // A node that does not halt within 2^D steps cannot be tampered.
        let short = Run::dishonest(
            d.model.clone(),
            d.root,
            std::slice::from_ref(&d.input),
            &Fault::Step { node: 1, step: 1 },
            4,
        );
        assert!(short.unwrap_err().to_string().contains("node 1 runs past 2^4 steps"));
    }

    #[test]
    fn find_tamper_takes_the_first_edit_that_changes_the_output() {
        let d = mlp();
        // MLP node 2 is a linear node: it reads every input byte, and at step 1 (after its
        // first instruction) it has read none of them.
        let prog = compile_node(&d.model, 2).unwrap();
        let ins = d.honest.node_inputs(2).unwrap();
        let step = 1;
        // x0 edits are refused; a no-op edit (x31 set to its own value) does not change the output.
        let x31 = honest_vm(d, 2).machine_at(step).regs[31];
        let same = Edit::Reg { reg: 31, value: x31 };
        assert!(find_tamper(&prog, &ins, DEPTH, step, [Edit::Reg { reg: 0, value: 1 }]).is_err());
        assert_eq!(find_tamper(&prog, &ins, DEPTH, step, [same.clone()]).unwrap(), None);
        let last = input_addr(0) + prog.inputs[0].byte_len() as u32 - 1;
        let input = Edit::Bytes { addr: last, bytes: vec![ins[0].to_le_bytes().last().unwrap() ^ 0x40] };
        let t = find_tamper(&prog, &ins, DEPTH, step, [same, input.clone()]).unwrap().unwrap();
        assert_eq!(t, Tamper { step, edits: vec![input] });
        let vm = VmView::tampered(&prog, &ins, DEPTH, Some(&t)).unwrap();
        assert!(vm.exited_ok() && &vm.output().unwrap() != d.honest.node_output(2).unwrap());
    }

    #[test]
    fn a_forged_run_needs_a_tensor_of_the_node_output() {
        let d = mlp();
        let prog = compile_node(&d.model, 1).unwrap();
        let ins = d.honest.node_inputs(1).unwrap();
        let wrong = Tensor::from_i8(vec![1], vec![0]).unwrap();
        let e = VmView::forged(&prog, &ins, DEPTH, &wrong).unwrap_err().to_string();
        assert!(e.contains("lie for node 1"), "{e}");
        let mut v = VmView::forged(&prog, &ins, DEPTH, d.honest.node_output(1).unwrap()).unwrap();
        // Forging the true output leaves the final state the honest one.
        assert_eq!(v.hash_at(1 << DEPTH).unwrap(), honest_vm(d, 1).state_hash_at(1 << DEPTH));
    }
}
