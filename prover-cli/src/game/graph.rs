//! Phase 1 view: a native run of the whole graph, its slot tensors, trace and graph states
//! `S_0..S_n`; and lying views (one node's output replaced, later nodes re-run natively on
//! the lie so that the lie is coherent) for tests and drills.

use std::sync::Arc;

use opml_dnn::commit::tensor_commitment;
use opml_dnn::exec::{check_inputs, eval_node};
use opml_dnn::proofs::slot_proof;
use opml_dnn::trace::Trace;
use opml_dnn::{Model, Tensor};
use opml_merkle::Hash;

use crate::game::{GameError, View};

/// Every slot tensor of one run of a model and the trace over them.
#[derive(Clone, Debug)]
pub struct GraphView {
    model: Arc<Model>,
    slots: Vec<Tensor>,
    trace: Trace,
}

/// Run nodes `from..to` natively on `slots` (which hold the inputs and nodes `..from`).
fn run_nodes(model: &Model, slots: &mut Vec<Tensor>, from: usize, to: usize) -> Result<(), GameError> {
    let g = model.graph();
    for (j, node) in g.nodes.iter().enumerate().take(to).skip(from) {
        let ins: Vec<&Tensor> = node.inputs.iter().map(|&s| &slots[s]).collect();
        let out = eval_node(model, j, node, &ins, &model.specs()[g.node_slot(j)])?;
        slots.push(out);
    }
    Ok(())
}

/// `lie` can stand for node `node`'s output: the node exists and the tensor has its
/// output's dtype and shape.
fn check_lie(model: &Model, node: usize, lie: &Tensor) -> Result<(), GameError> {
    let g = model.graph();
    if node >= g.nodes.len() {
        return Err(GameError::Node { node, count: g.nodes.len() });
    }
    let want = &model.specs()[g.node_slot(node)];
    if &lie.spec() != want {
        return Err(GameError::Lie {
            node,
            msg: format!("is {} {:?}, the node outputs {} {:?}", lie.dtype(), lie.shape(), want.dtype, want.shape),
        });
    }
    Ok(())
}

impl GraphView {
    /// The honest view: run the model natively on `inputs`; `model_root` is the registered
    /// model commitment (recorded in the trace).
    pub fn honest(model: Arc<Model>, model_root: Hash, inputs: &[Tensor]) -> Result<Self, GameError> {
        check_inputs(&model, inputs)?;
        let mut slots = inputs.to_vec();
        run_nodes(&model, &mut slots, 0, model.graph().nodes.len())?;
        let trace = Trace::with_model_commitment(&model, model_root, &slots);
        Ok(GraphView { model, slots, trace })
    }

    /// A lying view: node `node`'s output is `lie` (same dtype and shape as the true one);
    /// every later node runs natively on it.
    pub fn lying(
        model: Arc<Model>,
        model_root: Hash,
        inputs: &[Tensor],
        node: usize,
        lie: Tensor,
    ) -> Result<Self, GameError> {
        check_lie(&model, node, &lie)?;
        check_inputs(&model, inputs)?;
        let mut slots = inputs.to_vec();
        run_nodes(&model, &mut slots, 0, node)?;
        Self::run_on_lie(model, model_root, slots, node, lie)
    }

    /// This view with node `node`'s output replaced by `lie` (same dtype and shape) and
    /// every later node re-run natively on it; the nodes before `node` are not run again.
    pub fn with_lie(&self, node: usize, lie: Tensor) -> Result<Self, GameError> {
        check_lie(&self.model, node, &lie)?;
        let slots = self.slots[..self.model.graph().node_slot(node)].to_vec();
        Self::run_on_lie(self.model.clone(), self.trace.model, slots, node, lie)
    }

    /// `slots` (inputs and nodes `..node`), then `lie` as node `node`'s output, then the
    /// later nodes run on it.
    fn run_on_lie(
        model: Arc<Model>,
        model_root: Hash,
        mut slots: Vec<Tensor>,
        node: usize,
        lie: Tensor,
    ) -> Result<Self, GameError> {
        slots.push(lie);
        run_nodes(&model, &mut slots, node + 1, model.graph().nodes.len())?;
        let trace = Trace::with_model_commitment(&model, model_root, &slots);
        Ok(GraphView { model, slots, trace })
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Every slot tensor (inputs, then each node's output).
    pub fn slots(&self) -> &[Tensor] {
        &self.slots
    }

    /// The trace (slot commitments and graph states).
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// Number of nodes `n`.
    pub fn node_count(&self) -> usize {
        self.trace.nodes.len()
    }

    /// Number of graph inputs `m`.
    pub fn input_count(&self) -> usize {
        self.trace.inputs.len()
    }

    /// Graph state `S_i`.
    pub fn state(&self, i: usize) -> Result<Hash, GameError> {
        self.trace.states.get(i).copied().ok_or(GameError::State { index: i as u64, last: self.node_count() as u64 })
    }

    /// Node `j`'s input tensors, in the node's input order.
    pub fn node_inputs(&self, j: usize) -> Result<Vec<&Tensor>, GameError> {
        let g = self.model.graph();
        let node = g.nodes.get(j).ok_or(GameError::Node { node: j, count: g.nodes.len() })?;
        Ok(node.inputs.iter().map(|&s| &self.slots[s]).collect())
    }

    /// Node `j`'s output tensor.
    pub fn node_output(&self, j: usize) -> Result<&Tensor, GameError> {
        let g = self.model.graph();
        if j >= g.nodes.len() {
            return Err(GameError::Node { node: j, count: g.nodes.len() });
        }
        Ok(&self.slots[g.node_slot(j)])
    }

    /// The model's output tensor.
    pub fn output(&self) -> &Tensor {
        &self.slots[self.model.graph().output]
    }

    /// Commitment of the model's output.
    pub fn output_commitment(&self) -> Hash {
        tensor_commitment(self.output())
    }

    /// The submitter's opening move: `S_n` and the siblings proving that its output slot
    /// holds the output commitment.
    pub fn open(&self) -> Result<(Hash, Vec<Hash>), GameError> {
        let n = self.node_count();
        let p = slot_proof(&self.trace, n, self.model.graph().output)?;
        Ok((self.state(n)?, p.siblings))
    }
}

impl View for GraphView {
    fn hash_at(&mut self, point: u64) -> Result<Hash, GameError> {
        self.state(usize::try_from(point).unwrap_or(usize::MAX))
            .map_err(|_| GameError::State { index: point, last: self.node_count() as u64 })
    }
}

/// `t` with one bit of byte `byte` (modulo its length) flipped: a lie of the same shape.
pub fn flip_byte(t: &Tensor, byte: usize) -> Result<Tensor, GameError> {
    let mut b = t.to_le_bytes();
    if b.is_empty() {
        return Err(GameError::Invalid("cannot alter an empty tensor".into()));
    }
    let i = byte % b.len();
    b[i] ^= 1;
    Ok(Tensor::from_le_bytes(t.dtype(), t.shape().to_vec(), &b)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::testdata::mlp;
    use opml_dnn::exec::run_all;
    use opml_dnn::proofs::verify_slot_proof;
    use opml_dnn::SlotProof;

    #[test]
    fn honest_view_is_the_native_trace() {
        let d = mlp();
        let slots = run_all(&d.model, std::slice::from_ref(&d.input)).unwrap();
        let trace = Trace::with_model_commitment(&d.model, d.root, &slots);
        let mut v = d.honest.clone();
        for i in 0..=v.node_count() {
            assert_eq!(v.hash_at(i as u64).unwrap(), trace.states[i]);
        }
        assert!(v.hash_at(v.node_count() as u64 + 1).is_err());
        let (s_n, siblings) = v.open().unwrap();
        let slot = d.model.graph().output as u32;
        let p = SlotProof { slot, value: v.output_commitment(), siblings };
        assert!(verify_slot_proof(&s_n, trace.slot_len, &p));
    }

    #[test]
    fn lying_view_agrees_before_the_lie_and_differs_after() {
        let d = mlp();
        let n = d.honest.node_count();
        for j in 0..n {
            let lie = flip_byte(d.honest.node_output(j).unwrap(), 7).unwrap();
            let v = GraphView::lying(d.model.clone(), d.root, std::slice::from_ref(&d.input), j, lie.clone()).unwrap();
            for i in 0..=n {
                let same = v.state(i).unwrap() == d.honest.state(i).unwrap();
                assert_eq!(same, i <= j, "node {j}: S_{i}");
            }
            assert_eq!(v.node_output(j).unwrap(), &lie);
            // Earlier nodes untouched; the node inputs of later nodes are the lying slots.
            for k in 0..j {
                assert_eq!(v.node_output(k).unwrap(), d.honest.node_output(k).unwrap());
            }
        }
        let wrong = Tensor::from_i8(vec![1], vec![0]).unwrap();
        let e = GraphView::lying(d.model.clone(), d.root, std::slice::from_ref(&d.input), 0, wrong).unwrap_err();
        assert!(e.to_string().contains("lie for node 0"), "{e}");
        let t = d.honest.node_output(0).unwrap().clone();
        assert!(GraphView::lying(d.model.clone(), d.root, std::slice::from_ref(&d.input), n, t).is_err());
    }
}
