//! `opml node ...`: run one graph node in the fraud-proof VM from the natively computed
//! inputs, compare with the native output, and produce that node's step witnesses.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use opml_compiler::{compile_node, matches_native, NodeProgram};
use opml_dnn::bundle::{hex32, Bundle};
use opml_dnn::commit::tensor_commitment;
use opml_dnn::exec::run_all;
use opml_dnn::Tensor;
use serde_json::json;

use crate::output::print_witness;
use crate::sample::load_sample;

/// Process exit status of `opml node run` when the VM output differs from the native one.
const EXIT_MISMATCH: u8 = 2;

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Run node K in the VM from the natively computed inputs and compare its output with
    /// the native output (exit status 2 if they differ).
    Run(NodeRunArgs),
    /// Show the witness of step S -> S+1 of node K's VM run (same fields as `opml vm witness`).
    Witness(NodeWitnessArgs),
}

/// Which node of which run.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Bundle path.
    pub bundle: PathBuf,
    /// Input file (safetensors with `inputs`, float32 N x input shape).
    #[arg(long)]
    pub input: PathBuf,
    /// Which sample of the batch to run.
    #[arg(long, default_value_t = 0)]
    pub index: usize,
    /// Node index (0-based, topological order).
    #[arg(long)]
    pub node: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct NodeRunArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    /// Give up after this many VM steps.
    #[arg(long, default_value_t = 1 << 34)]
    pub max_steps: u64,
}

#[derive(Debug, Args)]
pub struct NodeWitnessArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    /// Step number.
    #[arg(long)]
    pub step: u64,
}

pub fn run(cmd: NodeCommand) -> Result<ExitCode> {
    match cmd {
        NodeCommand::Run(a) => run_node(a),
        NodeCommand::Witness(a) => witness(a),
    }
}

/// The bundle, the compiled node, its native inputs and its native output.
fn prepare(a: &NodeArgs) -> Result<(Bundle, NodeProgram, Vec<Tensor>, Tensor)> {
    let (b, x) = load_sample(&a.bundle, &a.input, a.index)?;
    let g = b.model.graph();
    if a.node >= g.nodes.len() {
        bail!(
            "--node {} out of range: {} has {} nodes (0..{})",
            a.node,
            a.bundle.display(),
            g.nodes.len(),
            g.nodes.len()
        );
    }
    let mut slots = run_all(&b.model, std::slice::from_ref(&x))?;
    let prog = compile_node(&b.model, a.node).with_context(|| format!("compiling node {}", a.node))?;
    let ins: Vec<Tensor> = g.nodes[a.node].inputs.iter().map(|&s| slots[s].clone()).collect();
    let native = slots.swap_remove(g.node_slot(a.node));
    Ok((b, prog, ins, native))
}

fn run_node(a: NodeRunArgs) -> Result<ExitCode> {
    let (_b, prog, ins, native) = prepare(&a.node)?;
    let refs: Vec<&Tensor> = ins.iter().collect();
    let roots = prog.roots(&refs)?;
    let pre = roots.pre_state().map_err(|e| anyhow::anyhow!("node {}: {e}", prog.node))?;
    let run = prog.run(&refs, a.max_steps)?;
    let ok = matches_native(&run, &native);
    let secs = run.time.as_secs_f64();
    let (code_root, param_root) = prog.code_and_param_roots();
    if a.node.json {
        let v = json!({
            "node": prog.node,
            "op": prog.op,
            "kernel": prog.kernel.name(),
            "match": ok,
            "steps": run.steps,
            "time_ms": secs * 1e3,
            "steps_per_second": run.steps as f64 / secs.max(1e-9),
            "output_commitment": hex32(&run.output_root),
            "native_output_commitment": hex32(&tensor_commitment(&native)),
            "output": { "dtype": native.dtype().name(), "shape": native.shape() },
            "code_root": hex32(&code_root),
            "param_root": hex32(&param_root),
            "image_root": hex32(&pre.mem_root),
            "pre_state_hash": hex32(&pre.hash()),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("node              {} ({}, kernel {})", prog.node, prog.op, prog.kernel.name());
        println!("match             {ok}");
        println!("steps             {}", run.steps);
        println!("time              {:.3} ms ({:.1} M steps/s)", secs * 1e3, run.steps as f64 / secs.max(1e-9) / 1e6);
        println!("output commitment {}", hex32(&run.output_root));
        println!("native commitment {}", hex32(&tensor_commitment(&native)));
        println!("image root        {}", hex32(&pre.mem_root));
        println!("pre-state hash    {}", hex32(&pre.hash()));
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(EXIT_MISMATCH) })
}

fn witness(a: NodeWitnessArgs) -> Result<ExitCode> {
    let (_b, prog, ins, _native) = prepare(&a.node)?;
    let refs: Vec<&Tensor> = ins.iter().collect();
    let mut m = prog.machine(&refs)?;
    // A halted machine is a fixed point, so a step past the end has a (trivial) witness.
    m.run(a.step);
    print_witness(&m.step_with_witness(), a.node.json)?;
    Ok(ExitCode::SUCCESS)
}
