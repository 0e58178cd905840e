//! Phase 2 view: one node's run in the VM over steps `[0, 2^D]`, recorded with checkpoints
//! so that the state hash at any step and the step witness at any step are cheap (a halted
//! machine is a fixed point: past its end, every step is the final state).
//!
//! A tampered view (for tests and drills) follows the honest run up to a step `t`, then
//! edits a register or memory bytes and runs on from the edited machine: every state from
//! `t` on comes from that machine, so the lie is coherent (attack (c)); an edit at the
//! halting step forges the final state.

use std::collections::HashMap;

use opml_compiler::layout::{CODE_BASE, OUTPUT_BASE};
use opml_compiler::proofs::output_region_proof;
use opml_compiler::{compile_node, NodeProgram};
use opml_dnn::Tensor;
use opml_merkle::Hash;
use opml_vm::{Checkpoints, Machine, State, Status, Witness};

use crate::game::{GameError, GraphView, View};

/// Steps between checkpoints.
pub const CHECKPOINT_EVERY: u64 = 1 << 14;
/// Largest VM depth `D` of the game contract.
pub const MAX_DEPTH: u32 = 48;

/// One change to a machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    /// Set register `reg` (1..=31) to `value`.
    Reg {
        /// Register index.
        reg: usize,
        /// New value.
        value: u32,
    },
    /// Overwrite memory at `addr` (outside the kernel code) with `bytes`.
    Bytes {
        /// Start address.
        addr: u32,
        /// New bytes.
        bytes: Vec<u8>,
    },
}

impl Edit {
    /// Apply the edit to `m` (a register outside `1..=31` is refused).
    pub fn apply(&self, m: &mut Machine) -> Result<(), GameError> {
        match self {
            Edit::Reg { reg, value } => {
                if !(1..32).contains(reg) {
                    return Err(GameError::Invalid(format!("register x{reg} cannot be edited")));
                }
                m.set_reg(*reg, *value);
            }
            Edit::Bytes { addr, bytes } => m.memory_mut().write_bytes(*addr, bytes),
        }
        Ok(())
    }
}

/// Edits applied to the machine when it reaches step `step` (or at its halting step if it
/// halts earlier).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tamper {
    /// Step at which the edits are made.
    pub step: u64,
    /// The edits.
    pub edits: Vec<Edit>,
}

/// A run recorded from its first step `from`.
#[derive(Debug)]
struct Segment {
    from: u64,
    ckpts: Checkpoints,
}

/// One node's VM run as a player sees it.
#[derive(Debug)]
pub struct VmView {
    prog: NodeProgram,
    depth: u32,
    /// Honest run, then at most one tampered continuation (later `from`).
    segments: Vec<Segment>,
    cache: HashMap<u64, Hash>,
}

/// `2^depth`, the last step of a VM dissection, for a depth the contract accepts.
pub fn step_limit(depth: u32) -> Result<u64, GameError> {
    if depth == 0 || depth > MAX_DEPTH {
        return Err(GameError::Invalid(format!("VM depth {depth} is outside 1..={MAX_DEPTH}")));
    }
    Ok(1u64 << depth)
}

fn record(m: &mut Machine, max_steps: u64) -> Result<Checkpoints, GameError> {
    Ok(Checkpoints::record(m, max_steps, CHECKPOINT_EVERY, |_| {})?)
}

impl VmView {
    /// The honest run of `prog` on `inputs`, bounded by `2^depth` steps.
    pub fn new(prog: &NodeProgram, inputs: &[&Tensor], depth: u32) -> Result<Self, GameError> {
        Self::tampered(prog, inputs, depth, None)
    }

    /// The honest run of node `node` as `graph` sees it: the node compiled from the
    /// graph's model, run on the graph's input tensors of the node.
    pub fn of_node(graph: &GraphView, node: usize, depth: u32) -> Result<Self, GameError> {
        let prog = compile_node(graph.model(), node)?;
        Self::new(&prog, &graph.node_inputs(node)?, depth)
    }

    /// The honest run of `prog` on `inputs` with `output` written over its output region at
    /// its halting step: the final state holds `output`, so a lie about the node's output
    /// passes the handover and is caught only at that one step.
    pub fn forged(prog: &NodeProgram, inputs: &[&Tensor], depth: u32, output: &Tensor) -> Result<Self, GameError> {
        if output.spec() != prog.output {
            return Err(GameError::Lie {
                node: prog.node,
                msg: format!(
                    "is {} {:?}, the node outputs {} {:?}",
                    output.dtype(),
                    output.shape(),
                    prog.output.dtype,
                    prog.output.shape
                ),
            });
        }
        let limit = step_limit(depth)?;
        let mut m = prog.machine(inputs)?;
        m.run(limit);
        if !m.is_halted() {
            return Err(GameError::Invalid(format!("node {} runs past 2^{depth} steps", prog.node)));
        }
        let forge =
            Tamper { step: m.step, edits: vec![Edit::Bytes { addr: OUTPUT_BASE, bytes: output.to_le_bytes() }] };
        Self::tampered(prog, inputs, depth, Some(&forge))
    }

    /// The run of `prog` on `inputs` with `tamper` applied (none: the honest run).
    pub fn tampered(
        prog: &NodeProgram,
        inputs: &[&Tensor],
        depth: u32,
        tamper: Option<&Tamper>,
    ) -> Result<Self, GameError> {
        let limit = step_limit(depth)?;
        let mut m = prog.machine(inputs)?;
        let mut segments = vec![Segment { from: 0, ckpts: record(&mut m, limit)? }];
        if let Some(t) = tamper {
            if t.step > limit {
                return Err(GameError::Invalid(format!("tamper step {} is past 2^{depth}", t.step)));
            }
            let mut m = prog.machine(inputs)?;
            m.run(t.step);
            let from = t.step;
            for e in &t.edits {
                e.apply(&mut m)?;
            }
            m.cache_code(CODE_BASE, prog.code.len() as u32);
            let rest = limit - m.step;
            segments.push(Segment { from, ckpts: record(&mut m, rest)? });
        }
        Ok(VmView { prog: prog.clone(), depth, segments, cache: HashMap::new() })
    }

    /// The node program.
    pub fn program(&self) -> &NodeProgram {
        &self.prog
    }

    /// The VM depth `D` (points run over `[0, 2^D]`).
    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// The machine at step `step` (past the end: the final machine).
    pub fn machine_at(&self, step: u64) -> Machine {
        let s = step.min(1u64 << self.depth);
        let seg = self.segments.iter().rev().find(|g| g.from <= s).expect("the honest run starts at 0");
        seg.ckpts.restore(s)
    }

    /// The final machine (at step `2^D`, or where it halted).
    pub fn final_machine(&self) -> Machine {
        self.machine_at(1u64 << self.depth)
    }

    /// The final state.
    pub fn final_state(&self) -> State {
        self.final_machine().state()
    }

    /// Hash of the state at `step`.
    pub fn state_hash_at(&mut self, step: u64) -> Hash {
        let s = step.min(1u64 << self.depth);
        if let Some(h) = self.cache.get(&s) {
            return *h;
        }
        let h = self.machine_at(s).state_hash();
        self.cache.insert(s, h);
        h
    }

    /// The witness of the step from `step` to `step + 1`: the 173-byte pre-state and the
    /// proof bytes for `Step.step`, with the post-state hash.
    pub fn step_witness(&self, step: u64) -> Witness {
        self.machine_at(step).step_with_witness()
    }

    /// Whether the run exited with code 0.
    pub fn exited_ok(&self) -> bool {
        let m = self.final_machine();
        m.status == Status::Exited && m.exit_code == 0
    }

    /// The output tensor read from the final machine's output region.
    pub fn output(&self) -> Result<Tensor, GameError> {
        Ok(self.prog.read_output(&self.final_machine())?.0)
    }

    /// The siblings of the output region in the final state's memory (for the handover's
    /// final-state check).
    pub fn output_region_siblings(&self) -> Result<Vec<Hash>, GameError> {
        let mut m = self.final_machine();
        Ok(output_region_proof(m.memory_mut(), self.prog.output.byte_len())?.siblings)
    }

    /// The step at which the final machine stopped.
    pub fn end_step(&self) -> u64 {
        self.final_machine().step
    }
}

impl View for VmView {
    fn hash_at(&mut self, point: u64) -> Result<Hash, GameError> {
        Ok(self.state_hash_at(point))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::testdata::mlp;

    /// The state hash after `s` steps of a plain run (no checkpoints, no view).
    fn plain(prog: &NodeProgram, ins: &[&Tensor], s: u64) -> Hash {
        let mut m = prog.machine(ins).unwrap();
        m.run(s);
        m.state_hash()
    }

    #[test]
    fn states_and_witnesses_match_a_plain_run_and_halt_is_a_fixed_point() {
        let d = mlp();
        let node = 3;
        let prog = compile_node(&d.model, node).unwrap();
        let ins = d.honest.node_inputs(node).unwrap();
        let mut v = VmView::of_node(&d.honest, node, 20).unwrap();
        let end = v.end_step();
        assert!(end > CHECKPOINT_EVERY / 16 && v.exited_ok());
        assert_eq!(&v.output().unwrap(), d.honest.node_output(node).unwrap(), "VM output = native output");
        let final_hash = plain(&prog, &ins, end);
        for s in [0, 1, 37, end / 2, end - 1, end, end + 5, 1 << 20, u64::MAX] {
            let want = if s >= end { final_hash } else { plain(&prog, &ins, s) };
            assert_eq!(v.state_hash_at(s), want, "step {s}");
        }
        for s in [0, 5, end - 1, end] {
            let w = v.step_witness(s);
            assert_eq!(opml_merkle::keccak256(&w.state), v.state_hash_at(s));
            assert_eq!(w.post_state_hash, v.state_hash_at(s + 1), "step {s}");
        }
        assert_eq!(v.final_state().hash(), final_hash);
    }

    #[test]
    fn a_tamper_changes_every_state_from_its_step() {
        let d = mlp();
        let node = 1;
        let prog = compile_node(&d.model, node).unwrap();
        let ins = d.honest.node_inputs(node).unwrap();
        let mut honest = VmView::new(&prog, &ins, 16).unwrap();
        let t = honest.end_step() / 2;
        let old = honest.machine_at(t).regs[9];
        let tamper = Tamper { step: t, edits: vec![Edit::Reg { reg: 9, value: old ^ 0x100 }] };
        let mut v = VmView::tampered(&prog, &ins, 16, Some(&tamper)).unwrap();
        assert_eq!(v.machine_at(t).regs[9], old ^ 0x100);
        for s in [0, 1, t - 1] {
            assert_eq!(v.state_hash_at(s), honest.state_hash_at(s), "step {s}");
        }
        // The edited state differs (later states may converge again if x9 is overwritten).
        assert_ne!(v.state_hash_at(t), honest.state_hash_at(t));
        let mut m = honest.machine_at(t);
        m.set_reg(9, old ^ 0x100);
        assert_eq!(v.state_hash_at(t + 1), {
            m.step();
            m.state_hash()
        });
        // A memory edit at the halting step forges only the final state.
        let end = honest.end_step();
        let forge = Tamper { step: end, edits: vec![Edit::Bytes { addr: 0xF000_0000, bytes: vec![9] }] };
        let mut f = VmView::tampered(&prog, &ins, 16, Some(&forge)).unwrap();
        assert_eq!(f.state_hash_at(end - 1), honest.state_hash_at(end - 1));
        assert_ne!(f.state_hash_at(end), honest.state_hash_at(end));
        assert_eq!(f.state_hash_at(1 << 16), f.state_hash_at(end));
    }

    #[test]
    fn bad_depths_and_tampers_are_rejected() {
        let d = mlp();
        let prog = compile_node(&d.model, 5).unwrap();
        let ins = d.honest.node_inputs(5).unwrap();
        assert!(VmView::new(&prog, &ins, 0).is_err());
        assert!(VmView::new(&prog, &ins, MAX_DEPTH + 1).is_err());
        let late = Tamper { step: (1 << 10) + 1, edits: vec![] };
        assert!(VmView::tampered(&prog, &ins, 10, Some(&late)).is_err());
        let x0 = Tamper { step: 3, edits: vec![Edit::Reg { reg: 0, value: 1 }] };
        assert!(VmView::tampered(&prog, &ins, 10, Some(&x0)).is_err());
    }
}
