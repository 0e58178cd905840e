//! Native CPU executor (rayon inside each kernel; the same bits for any thread count).
//! It walks the graph; each op's evaluation is [`crate::ops::Op`]'s.

use crate::error::{node_err, DnnError, Result};
use crate::graph::{Model, Node};
use crate::tensor::{Tensor, TensorSpec};

/// Check run-time inputs against the graph's input specs.
pub fn check_inputs(model: &Model, inputs: &[Tensor]) -> Result<()> {
    let want = &model.graph().inputs;
    if inputs.len() != want.len() {
        return Err(DnnError::Input {
            index: inputs.len().min(want.len()),
            msg: format!("model takes {} inputs, got {}", want.len(), inputs.len()),
        });
    }
    for (i, (t, s)) in inputs.iter().zip(want).enumerate() {
        if &t.spec() != s {
            return Err(DnnError::Input {
                index: i,
                msg: format!("is {} {:?}, model expects {} {:?}", t.dtype(), t.shape(), s.dtype, s.shape),
            });
        }
    }
    Ok(())
}

/// Run the model and return every slot (inputs first, then each node's output).
///
/// Runs on the current rayon pool; wrap in `ThreadPool::install` to pick the thread count.
pub fn run_all(model: &Model, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    check_inputs(model, inputs)?;
    let mut slots: Vec<Tensor> = inputs.to_vec();
    for (j, node) in model.graph().nodes.iter().enumerate() {
        let ins: Vec<&Tensor> = node.inputs.iter().map(|&s| &slots[s]).collect();
        let spec = &model.specs()[model.graph().node_slot(j)];
        let out = eval_node(model, j, node, &ins, spec)?;
        slots.push(out);
    }
    Ok(slots)
}

/// Run the model and return only its output slot.
pub fn run(model: &Model, inputs: &[Tensor]) -> Result<Tensor> {
    let out = model.graph().output;
    let mut slots = run_all(model, inputs)?;
    Ok(slots.swap_remove(out))
}

/// Evaluate one node on validated inputs.
pub fn eval_node(model: &Model, j: usize, node: &Node, ins: &[&Tensor], spec: &TensorSpec) -> Result<Tensor> {
    let data = node.op.eval(ins, model.weights()).map_err(|e| node_err(j, node.op.name(), e.0))?;
    Tensor::new(spec.shape.clone(), data).map_err(|e| node_err(j, node.op.name(), e.to_string()))
}
