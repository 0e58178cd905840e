//! `opml infer`: the honest path (native inference with input/output commitments) and,
//! on request, the full trace of the dispute path.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use opml_dnn::bundle::hex32;
use opml_dnn::commit::io_commitments;
use opml_dnn::exec::run_all;
use opml_dnn::trace::Trace;
use serde_json::json;

use crate::files::{load_bundle, load_data};

/// `opml infer`.
#[derive(Debug, Args)]
pub struct InferArgs {
    /// Bundle path.
    pub bundle: PathBuf,
    /// Input file (safetensors with `inputs`, float32 N x input shape).
    #[arg(long)]
    pub input: PathBuf,
    /// Which sample of the batch to run.
    #[arg(long, default_value_t = 0)]
    pub index: usize,
    /// Write the full trace (per-node commitments and graph states) to this file.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run inference.
pub fn run(a: InferArgs) -> Result<ExitCode> {
    crate::threads::pool(a.threads)?.install(|| infer(&a)).map(|()| ExitCode::SUCCESS)
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn infer(a: &InferArgs) -> Result<()> {
    let b = load_bundle(&a.bundle)?;
    let data = load_data(&a.input, false)?;
    if a.index >= data.len() {
        bail!("--index {} out of range: {} has {} samples", a.index, a.input.display(), data.len());
    }
    if data.sample_shape() != b.meta.input.sample_shape.as_slice() {
        bail!(
            "{}: samples have shape {:?}, the model takes {:?}",
            a.input.display(),
            data.sample_shape(),
            b.meta.input.sample_shape
        );
    }
    let x = b.quantize_input(data.sample(a.index))?;

    // Honest path: inference, then commitments to the input and output only.
    let t0 = Instant::now();
    let slots = run_all(&b.model, std::slice::from_ref(&x))?;
    let infer_ms = ms(t0);
    let out = &slots[b.model.graph().output];
    let t1 = Instant::now();
    let io = io_commitments(std::slice::from_ref(&x), out);
    let io_ms = ms(t1);

    // Dispute path: every tensor committed, graph states S_0..S_n.
    let t2 = Instant::now();
    let root = b.model_root()?; // verified against the graph when the bundle was loaded
    let trace = Trace::with_model_commitment(&b.model, root, &slots);
    let trace_ms = ms(t2);
    let hashed: usize = slots.iter().map(|t| t.spec().byte_len()).sum();
    if let Some(p) = &a.trace {
        std::fs::write(p, trace.to_bytes()).with_context(|| format!("writing {}", p.display()))?;
    }
    let values = out.to_i32_vec();
    let class = values.iter().enumerate().fold(0, |best, (i, v)| if *v > values[best] { i } else { best });
    let label = data.labels.as_ref().map(|l| l[a.index]);
    if a.json {
        let v = json!({
            "index": a.index,
            "output": { "dtype": out.dtype().name(), "shape": out.shape(), "values": values },
            "argmax": class,
            "label": label,
            "model_commitment": hex32(&root),
            "input_commitment": hex32(&io.inputs[0]),
            "output_commitment": hex32(&io.output),
            "final_state": hex32(&trace.final_state()),
            "nodes": b.model.graph().nodes.len(),
            "trace_file": a.trace.as_ref().map(|p| p.display().to_string()),
            "timing_ms": { "inference": infer_ms, "io_commitments": io_ms, "trace": trace_ms },
            "trace_bytes_hashed": hashed,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("output            {} {:?} {:?}", out.dtype(), out.shape(), values);
        match label {
            Some(l) => println!("argmax            {class} (label {l})"),
            None => println!("argmax            {class}"),
        }
        println!("model commitment  {}", hex32(&root));
        println!("input commitment  {}", hex32(&io.inputs[0]));
        println!("output commitment {}", hex32(&io.output));
        println!("final state S_{:<3} {}", b.model.graph().nodes.len(), hex32(&trace.final_state()));
        println!(
            "timing            inference {infer_ms:.3} ms, io commitments {io_ms:.3} ms, trace {trace_ms:.3} ms ({hashed} bytes)"
        );
        if let Some(p) = &a.trace {
            println!("trace written to  {}", p.display());
        }
    }
    Ok(())
}
