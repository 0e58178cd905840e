//! A node's VM program: kernel code, argument blob and the image built from the node's
//! input and weight tensors; running it and reading the output back.

use std::time::{Duration, Instant};

use opml_dnn::commit::tensor_commitment;
use opml_dnn::{Model, Tensor, TensorSpec};
use opml_merkle::{bytes_root, Hash};
use opml_vm::{Machine, RunEnd, Status};

use crate::error::CompileError;
use crate::kernels::KernelId;
use crate::layout::{
    initial_regs, input_addr, padded_bytes, weight_addr, ImageRoots, RegionRoot, CODE_BASE, OUTPUT_BASE, PARAM_BASE,
};
use crate::lower::lower;

/// Everything needed to run node `node` of a model in the VM.
#[derive(Clone, Debug)]
pub struct NodeProgram {
    /// Node index.
    pub node: usize,
    /// Op name.
    pub op: &'static str,
    /// Kernel.
    pub kernel: KernelId,
    /// Kernel code (placed at [`CODE_BASE`]).
    pub code: Vec<u8>,
    /// Argument blob (placed at [`PARAM_BASE`]).
    pub params: Vec<u8>,
    /// Specs of the node's inputs.
    pub inputs: Vec<TensorSpec>,
    /// The node's weight tensors, in descriptor order.
    pub weights: Vec<Tensor>,
    /// Spec of the output.
    pub output: TensorSpec,
}

/// Compile node `j` of `model` (with `dot4`).
pub fn compile_node(model: &Model, j: usize) -> Result<NodeProgram, CompileError> {
    compile_node_with(model, j, true)
}

/// Compile node `j`; `dot4 = false` builds the int8 product kernels without the custom
/// instruction (measurements only: their code roots differ from the real kernels').
pub fn compile_node_with(model: &Model, j: usize, dot4: bool) -> Result<NodeProgram, CompileError> {
    let g = model.graph();
    let node = g.nodes.get(j).ok_or_else(|| CompileError::Tensor {
        node: j,
        msg: format!("the model has {} nodes (0..{})", g.nodes.len(), g.nodes.len()),
    })?;
    let low = lower(model, j)?;
    Ok(NodeProgram {
        node: j,
        op: node.op.name(),
        kernel: low.kernel,
        code: low.kernel.code_with(dot4)?,
        params: low.args_bytes(),
        inputs: node.inputs.iter().map(|&s| model.specs()[s].clone()).collect(),
        weights: node.op.weights().iter().map(|&c| model.weights()[c].clone()).collect(),
        output: model.specs()[g.node_slot(j)].clone(),
    })
}

/// Result of running a node in the VM.
#[derive(Clone, Debug)]
pub struct NodeRun {
    /// The output tensor read from the output region.
    pub output: Tensor,
    /// Root of the output region's memory subtree (equals the output's commitment when
    /// the padding is zero).
    pub output_root: Hash,
    /// Steps taken.
    pub steps: u64,
    /// Wall time of the run (fast mode, no hashing).
    pub time: Duration,
}

impl NodeProgram {
    /// `bytes_root` of the kernel code and of the argument blob: with the weight and input
    /// commitments, what a node descriptor must bind for the contract to derive the image.
    pub fn code_and_param_roots(&self) -> (Hash, Hash) {
        (bytes_root(&self.code), bytes_root(&self.params))
    }

    fn check_inputs(&self, inputs: &[&Tensor]) -> Result<(), CompileError> {
        if inputs.len() != self.inputs.len() {
            return Err(CompileError::Tensor {
                node: self.node,
                msg: format!("takes {} inputs, got {}", self.inputs.len(), inputs.len()),
            });
        }
        for (i, (t, s)) in inputs.iter().zip(&self.inputs).enumerate() {
            if &t.spec() != s {
                return Err(CompileError::Tensor {
                    node: self.node,
                    msg: format!("input {i} is {} {:?}, want {} {:?}", t.dtype(), t.shape(), s.dtype, s.shape),
                });
            }
        }
        Ok(())
    }

    /// The region roots of the image for these inputs (the pre-state's ingredients).
    pub fn roots(&self, inputs: &[&Tensor]) -> Result<ImageRoots, CompileError> {
        self.check_inputs(inputs)?;
        let region = |b: &[u8]| RegionRoot { root: bytes_root(b), len: b.len() };
        let tensor = |t: &Tensor| RegionRoot { root: tensor_commitment(t), len: t.spec().byte_len() };
        Ok(ImageRoots {
            code: region(&self.code),
            params: region(&self.params),
            inputs: inputs.iter().map(|t| tensor(t)).collect(),
            weights: self.weights.iter().map(tensor).collect(),
            output_len: self.output.byte_len(),
        })
    }

    /// The node's initial machine: image written, fixed registers, `pc = CODE_BASE`, and
    /// the kernel pre-decoded.
    pub fn machine(&self, inputs: &[&Tensor]) -> Result<Machine, CompileError> {
        let roots = self.roots(inputs)?;
        roots.placed().map_err(|e| CompileError::Layout { node: self.node, op: self.op, msg: e.0 })?;
        let mut m = Machine::new();
        let mem = m.memory_mut();
        mem.write_bytes(CODE_BASE, &self.code);
        mem.write_bytes(PARAM_BASE, &self.params);
        for (i, t) in inputs.iter().enumerate() {
            mem.write_bytes(input_addr(i), &t.to_le_bytes());
        }
        for (i, t) in self.weights.iter().enumerate() {
            mem.write_bytes(weight_addr(i), &t.to_le_bytes());
        }
        for (i, v) in initial_regs().iter().enumerate() {
            m.set_reg(i, *v);
        }
        m.set_pc(CODE_BASE);
        m.cache_code(CODE_BASE, self.code.len() as u32);
        Ok(m)
    }

    /// Read the output tensor and its region's subtree root from a finished machine.
    pub fn read_output(&self, m: &Machine) -> Result<(Tensor, Hash), CompileError> {
        let len = self.output.byte_len();
        let bytes = m.memory().read_bytes(OUTPUT_BASE, padded_bytes(len));
        let t = Tensor::from_le_bytes(self.output.dtype, self.output.shape.clone(), &bytes[..len])?;
        Ok((t, bytes_root(&bytes)))
    }

    /// Run the node to completion (at most `max_steps`); the kernel must exit with 0.
    pub fn run(&self, inputs: &[&Tensor], max_steps: u64) -> Result<NodeRun, CompileError> {
        let mut m = self.machine(inputs)?;
        let t0 = Instant::now();
        let end = m.run(max_steps);
        let time = t0.elapsed();
        if end == RunEnd::StepLimit {
            return Err(CompileError::Run { node: self.node, msg: format!("still running after {max_steps} steps") });
        }
        if m.status != Status::Exited || m.exit_code != 0 {
            return Err(CompileError::Run {
                node: self.node,
                msg: format!("halted with status {:?}, code {} at pc {:#x}", m.status, m.exit_code, m.pc),
            });
        }
        let (output, output_root) = self.read_output(&m)?;
        Ok(NodeRun { output, output_root, steps: m.step, time })
    }
}

/// Whether a VM run matches the native output bit for bit (bytes and commitment).
pub fn matches_native(run: &NodeRun, native: &Tensor) -> bool {
    run.output == *native && run.output_root == tensor_commitment(native)
}
