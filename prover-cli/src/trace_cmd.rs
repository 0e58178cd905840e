//! `opml trace diff A B`: where two trace files (`opml infer --trace`) of one model and one
//! input part: the first differing graph state, the node that wrote it, both output
//! commitments and both states. Exit status as `cmp`: 0 the traces agree, 1 they differ,
//! 2 they cannot be compared (other model or inputs) or a file is bad.

#[path = "trace/compare.rs"]
mod compare;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use opml_dnn::bundle::hex32;
use opml_dnn::trace::Trace;
use serde_json::{json, Value};

use crate::files::load_bundle;
use crate::output::output;
use compare::{check, compare, FirstDifference, Verdict};

const AGREE: u8 = 0;
const DIFFER: u8 = 1;
const TROUBLE: u8 = 2;

/// Trace subcommands.
#[derive(Debug, Subcommand)]
pub enum TraceCommand {
    /// Compare two traces: the first differing graph state S_i and node i - 1 (exit 0 agree, 1 differ, 2 not comparable).
    Diff(DiffArgs),
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// A trace file (e.g. your own run).
    pub a: PathBuf,
    /// Another trace file of the same model and input (e.g. the submitter's).
    pub b: PathBuf,
    /// The model's bundle, to name the node and its op.
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

pub fn run(cmd: TraceCommand) -> Result<ExitCode> {
    match cmd {
        TraceCommand::Diff(a) => Ok(match diff(&a) {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(TROUBLE)
            }
        }),
    }
}

/// Read a trace file and check it.
fn load(path: &Path) -> Result<Trace> {
    let bytes = std::fs::read(path).with_context(|| format!("reading trace file {}", path.display()))?;
    let t = Trace::from_bytes(&bytes)
        .with_context(|| format!("{}: not a trace file (written by `opml infer --trace`)", path.display()))?;
    if let Err(why) = check(&t) {
        bail!("{}: inconsistent trace: {why}", path.display());
    }
    Ok(t)
}

/// The node's name and op from the bundle, which must be the traces' model.
fn describe_node(path: &Path, model: &[u8; 32], node: usize) -> Result<(String, &'static str)> {
    let b = load_bundle(path)?;
    let root = b.model_root().with_context(|| format!("bundle {}", path.display()))?;
    if &root != model {
        bail!("bundle {} has model commitment {}, the traces {}", path.display(), hex32(&root), hex32(model));
    }
    let n = b.model.graph().nodes.get(node).with_context(|| format!("bundle {} has no node {node}", path.display()))?;
    Ok((n.name.clone(), n.op.name()))
}

fn diff(a: &DiffArgs) -> Result<u8> {
    let (ta, tb) = (load(&a.a)?, load(&a.b)?);
    let (na, nb) = (a.a.display(), a.b.display());
    match compare(&ta, &tb) {
        Verdict::Models { a: ma, b: mb } => {
            let v =
                json!({ "verdict": "not_comparable", "reason": "model", "model_a": hex32(&ma), "model_b": hex32(&mb) });
            let human = format!(
                "not comparable: the traces are of different models ({na}: {}, {nb}: {})",
                hex32(&ma),
                hex32(&mb)
            );
            output(a.json, v, human);
            Ok(TROUBLE)
        }
        Verdict::Inputs { input, a: ia, b: ib } => {
            let v = json!({ "verdict": "not_comparable", "reason": "inputs", "input": input,
                            "input_a": hex32(&ia), "input_b": hex32(&ib), "model": hex32(&ta.model) });
            let human = format!(
                "not comparable: the traces are of different inputs (input {input}: {na}: {}, {nb}: {})",
                hex32(&ia),
                hex32(&ib)
            );
            output(a.json, v, human);
            Ok(TROUBLE)
        }
        Verdict::Agree { states } => {
            let v = json!({ "verdict": "agree", "model": hex32(&ta.model), "states": states,
                            "final_state": hex32(&ta.final_state()) });
            output(a.json, v, format!("traces agree on S_0..S_{}", states - 1));
            Ok(AGREE)
        }
        Verdict::Differ(d) => {
            let named = a.bundle.as_deref().map(|p| describe_node(p, &ta.model, d.node)).transpose()?;
            let (v, human) = report(&d, named.as_ref(), (&na.to_string(), &nb.to_string()));
            output(a.json, v, human);
            Ok(DIFFER)
        }
    }
}

fn report(d: &FirstDifference, named: Option<&(String, &str)>, (na, nb): (&str, &str)) -> (Value, String) {
    let v = json!({
        "verdict": "differ",
        "state": d.state,
        "node": d.node,
        "slot": d.slot,
        "name": named.map(|n| n.0.clone()),
        "op": named.map(|n| n.1),
        "agreed_state": hex32(&d.agreed),
        "state_a": hex32(&d.state_a),
        "state_b": hex32(&d.state_b),
        "output_a": hex32(&d.output_a),
        "output_b": hex32(&d.output_b),
        "differing_nodes": d.differing_nodes,
    });
    let what = match named {
        Some((name, op)) => format!("node {} ({name}, op {op}), output slot {}", d.node, d.slot),
        None => format!("node {}, output slot {} (pass --bundle to name its op)", d.node, d.slot),
    };
    let human = format!(
        "first difference: S_{i}, written by {what}\n\
         agreed  S_{} {}\n\
         {na}: S_{i} {}, node output {}\n\
         {nb}: S_{i} {}, node output {}\n\
         {} node output(s) differ in all",
        d.state - 1,
        hex32(&d.agreed),
        hex32(&d.state_a),
        hex32(&d.output_a),
        hex32(&d.state_b),
        hex32(&d.output_b),
        d.differing_nodes,
        i = d.state,
    );
    (v, human)
}
