//! `opml model ...`: quantize float models into bundles, inspect and evaluate bundles, read
//! already-quantized language models (GGUF).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use opml_compiler::binding::KernelBinder;
use opml_dnn::bundle::hex32;
use opml_dnn::commit::{slot_vector_len, weight_roots};
use opml_dnn::quant::arch::Arch;
use opml_dnn::quant::float::{argmax_f32, FloatModel};
use opml_dnn::quant::lower::{float_reference, predict, quantize};
use opml_dnn::st::read_f32_all;
use opml_importer::{LlamaGguf, LlamaTokenizer};
use rayon::prelude::*;
use serde_json::json;

use crate::files::{load_bundle, load_data, read};
use crate::output::output;

/// Model subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Quantize float32 safetensors + architecture JSON into an int8 bundle (.opml).
    Quantize(QuantizeArgs),
    /// Show a bundle's graph, shapes, parameter count and model commitment.
    Inspect(InspectArgs),
    /// Accuracy of a bundle (and of its float reference, if kept) on labelled data.
    Eval(EvalArgs),
    /// Read a GGUF language model as the import does (Llama architecture): configuration,
    /// tensors by type, parameters, tokenizer and chat template, each checked.
    GgufInfo(GgufInfoArgs),
    /// Import a GGUF language model into an LLM bundle: its quantized values as shipped, the
    /// block scales in fixed point, tokenizer, claim limits, every tensor committed.
    Import(ImportArgs),
}

/// `opml model import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// GGUF file (Llama architecture; Q4_1 / Q8_0 linears, Q8_0 embedding).
    pub file: PathBuf,
    /// Output bundle path.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Longest prompt (tokens) a claim over this model may use.
    #[arg(long, default_value_t = opml_importer::bundle::DEFAULT_MAX_PROMPT)]
    pub max_prompt: usize,
    /// Most tokens a claim over this model may generate.
    #[arg(long, default_value_t = opml_importer::bundle::DEFAULT_MAX_NEW)]
    pub max_new: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `opml model quantize`.
#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// Float32 weights (safetensors).
    #[arg(long)]
    pub weights: PathBuf,
    /// Architecture description (JSON).
    #[arg(long)]
    pub arch: PathBuf,
    /// Calibration inputs (safetensors with `inputs`, float32 N x input shape).
    #[arg(long)]
    pub calib: PathBuf,
    /// Labelled data (`inputs`, `labels`) for the accuracy report stored in the bundle.
    #[arg(long)]
    pub eval: Option<PathBuf>,
    /// Output bundle path.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Do not keep the float weights as reference in the bundle.
    #[arg(long)]
    pub no_float_ref: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `opml model inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Bundle path.
    pub bundle: PathBuf,
    /// Print JSON (with a `nodes` array in execution order).
    #[arg(long)]
    pub json: bool,
}

/// `opml model eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Bundle path.
    pub bundle: PathBuf,
    /// Data file (safetensors: `inputs` float32 N x input shape, `labels` int64 N).
    #[arg(long)]
    pub data: PathBuf,
    /// Print JSON (`accuracy`, `float_accuracy` when the bundle keeps its float model).
    #[arg(long)]
    pub json: bool,
}

/// `opml model gguf-info`.
#[derive(Debug, Args)]
pub struct GgufInfoArgs {
    /// GGUF file (e.g. .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf, from scripts/fetch_models.sh).
    pub file: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run a model subcommand.
pub fn run(cmd: ModelCommand) -> Result<ExitCode> {
    match cmd {
        ModelCommand::Quantize(a) => quantize_cmd(a),
        ModelCommand::Inspect(a) => inspect_cmd(a),
        ModelCommand::Eval(a) => eval_cmd(a),
        ModelCommand::GgufInfo(a) => gguf_info_cmd(a),
        ModelCommand::Import(a) => import_cmd(a),
    }
    .map(|()| ExitCode::SUCCESS)
}

fn quantize_cmd(a: QuantizeArgs) -> Result<()> {
    let wbytes = read(&a.weights)?;
    let arch_text = std::fs::read_to_string(&a.arch).with_context(|| format!("reading {}", a.arch.display()))?;
    let arch = Arch::from_json(&arch_text).with_context(|| format!("in {}", a.arch.display()))?;
    let weights = read_f32_all(&wbytes, &a.weights.display().to_string())?;
    let float = FloatModel::new(arch, weights).with_context(|| format!("in {}", a.weights.display()))?;
    let calib = load_data(&a.calib, false)?;
    let eval = a.eval.as_deref().map(|p| load_data(p, true)).transpose()?;
    let keep = if a.no_float_ref { None } else { Some(wbytes) };
    let bundle = quantize(&float, &calib, keep, eval.as_ref(), &KernelBinder)?;
    let bytes = bundle.to_bytes()?;
    std::fs::write(&a.out, &bytes).with_context(|| format!("writing {}", a.out.display()))?;
    if a.json {
        let v = json!({
            "bundle": a.out.display().to_string(),
            "bytes": bytes.len(),
            "model_commitment": bundle.meta.model_commitment,
            "nodes": bundle.model.graph().nodes.len(),
            "parameters": bundle.model.param_count(),
            "report": bundle.meta.report,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("wrote {} ({} bytes)", a.out.display(), bytes.len());
        println!("model commitment  {}", bundle.meta.model_commitment);
        println!("nodes {}  parameters {}", bundle.model.graph().nodes.len(), bundle.model.param_count());
        if let Some(r) = &bundle.meta.report {
            println!(
                "accuracy {:.2}%  float {:.2}%  agreement {:.2}%  ({} samples)",
                100.0 * r.accuracy,
                100.0 * r.float_accuracy,
                100.0 * r.agreement,
                r.samples
            );
        }
    }
    Ok(())
}

fn inspect_cmd(a: InspectArgs) -> Result<()> {
    let b = load_bundle(&a.bundle)?;
    let m = &b.model;
    let g = m.graph();
    let wr = weight_roots(m);
    let nodes: Vec<serde_json::Value> = g
        .nodes
        .iter()
        .enumerate()
        .map(|(j, n)| {
            let out = &m.specs()[g.node_slot(j)];
            json!({
                "index": j,
                "name": n.name,
                "op": n.op.name(),
                "tag": n.op.tag(),
                "inputs": n.inputs,
                "output_slot": g.node_slot(j),
                "dtype": out.dtype.name(),
                "shape": out.shape,
                "weights": n.op.weights().iter().map(|&w| json!({
                    "name": g.consts[w].name,
                    "dtype": g.consts[w].spec.dtype.name(),
                    "shape": g.consts[w].spec.shape,
                    "commitment": hex32(&wr[w]),
                })).collect::<Vec<_>>(),
                "image": b.node_images()[j],
            })
        })
        .collect();
    if a.json {
        let v = json!({
            "name": b.meta.name,
            "model_commitment": b.meta.model_commitment,
            "parameters": m.param_count(),
            "inputs": g.inputs.iter().map(|s| json!({"dtype": s.dtype.name(), "shape": s.shape})).collect::<Vec<_>>(),
            "node_count": g.nodes.len(),
            "input_count": g.inputs.len(),
            "output_slot": g.output,
            "output_len": m.specs()[g.output].byte_len(),
            "slot_vector_len": slot_vector_len(m),
            "input_quant": b.meta.input,
            "output_quant": b.meta.output,
            "float_reference": b.float_weights.is_some(),
            "report": b.meta.report,
            "nodes": nodes,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("model             {}", b.meta.name);
    println!("model commitment  {}", b.meta.model_commitment);
    println!("parameters        {}", m.param_count());
    for (i, s) in g.inputs.iter().enumerate() {
        println!("input slot {i}      {} {:?}", s.dtype, s.shape);
    }
    println!("slots             {} (vector of {})", g.slot_count(), slot_vector_len(m));
    println!("output            slot {}, {} bytes", g.output, m.specs()[g.output].byte_len());
    println!("{:>4}  {:<22} {:<11} {:<10} {:<5} output", "node", "name", "op", "inputs", "slot");
    for (j, n) in g.nodes.iter().enumerate() {
        let out = &m.specs()[g.node_slot(j)];
        println!(
            "{:>4}  {:<22} {:<11} {:<10} {:<5} {} {:?}",
            j,
            n.name,
            n.op.name(),
            format!("{:?}", n.inputs),
            g.node_slot(j),
            out.dtype,
            out.shape
        );
    }
    println!("output slot       {}", g.output);
    if let Some(r) = &b.meta.report {
        println!(
            "report            accuracy {:.2}%, float {:.2}% on {} samples",
            100.0 * r.accuracy,
            100.0 * r.float_accuracy,
            r.samples
        );
    }
    Ok(())
}

fn eval_cmd(a: EvalArgs) -> Result<()> {
    let b = load_bundle(&a.bundle)?;
    let data = load_data(&a.data, true)?;
    let labels = data.labels.clone().context("data has no labels")?;
    if data.is_empty() {
        bail!("{}: no samples", a.data.display());
    }
    let pred = predict(&b, &data)?;
    let acc = hits(&pred, &labels) as f64 / data.len() as f64;
    let float_acc = match float_reference(&b)? {
        Some(f) => {
            let fp: Vec<usize> = (0..data.len())
                .into_par_iter()
                .map(|i| argmax_f32(f.forward(data.sample(i)).last().map_or(&[][..], |v| v)))
                .collect();
            Some(hits(&fp, &labels) as f64 / data.len() as f64)
        }
        None => None,
    };
    if a.json {
        let mut v = json!({ "samples": data.len(), "accuracy": acc });
        if let Some(f) = float_acc {
            v["float_accuracy"] = json!(f);
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("samples            {}", data.len());
        println!("quantized accuracy {:.2}%", 100.0 * acc);
        match float_acc {
            Some(f) => println!("float accuracy     {:.2}%  (difference {:+.2} pp)", 100.0 * f, 100.0 * (acc - f)),
            None => println!("float accuracy     (bundle keeps no float reference)"),
        }
    }
    Ok(())
}

fn hits(pred: &[usize], labels: &[i64]) -> usize {
    pred.iter().zip(labels).filter(|(p, l)| **p as i64 == **l).count()
}

/// Open, validate and summarise a GGUF model: the configuration, the tensor table checked
/// against it, and the tokenizer built from it (so a file this prints is one the import takes).
fn gguf_info_cmd(a: GgufInfoArgs) -> Result<()> {
    let name = a.file.display();
    let bytes = std::fs::metadata(&a.file).with_context(|| format!("reading {name}"))?.len();
    let gguf = LlamaGguf::open(&a.file).with_context(|| format!("importing {name}"))?;
    let vocab = gguf.vocab().with_context(|| format!("importing the tokenizer of {name}"))?;
    let tokenizer = LlamaTokenizer::new(&vocab).with_context(|| format!("importing the tokenizer of {name}"))?;
    let c = gguf.config();
    let by_type: serde_json::Map<String, serde_json::Value> =
        gguf.kind_counts().iter().map(|(k, n)| (k.name().to_string(), json!(n))).collect();
    let control = vocab.control_tokens();
    let template = tokenizer.chat_template();
    let model_name = gguf.file().str("general.name").ok().map(str::to_owned);
    let v = json!({
        "file": name.to_string(),
        "bytes": bytes,
        "gguf_version": gguf.file().version(),
        "metadata_keys": gguf.file().metadata_len(),
        "name": model_name,
        "architecture": opml_importer::llama::ARCH,
        "config": {
            "layers": c.layers,
            "hidden": c.hidden,
            "ffn": c.ffn,
            "heads": c.heads,
            "kv_heads": c.kv_heads,
            "head_dim": c.head_dim,
            "rope_base": c.rope_base,
            "rms_eps": c.rms_eps,
            "vocab": c.vocab,
            "context": c.context,
        },
        "tensors": gguf.tensors().len(),
        "tensors_by_type": by_type,
        "tied_output": gguf.tied_output(),
        "parameters": gguf.parameter_count(),
        "tokenizer": {
            "model": "gpt2",
            "pre": vocab.pre,
            "tokens": tokenizer.vocab_size(),
            "merges": vocab.merges.len(),
            "bos": vocab.bos,
            "eos": vocab.eos,
            "control_tokens": control,
            "chat_template": "chatml",
            "default_system_prompt": template.default_system,
        },
    });
    let types = gguf.kind_counts().iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ");
    let human = [
        format!("file        {name} ({bytes} bytes)"),
        format!(
            "format      GGUF v{}, {} metadata keys, {} tensors",
            gguf.file().version(),
            gguf.file().metadata_len(),
            gguf.tensors().len()
        ),
        format!("model       {} ({})", model_name.as_deref().unwrap_or("unnamed"), opml_importer::llama::ARCH),
        format!(
            "config      {} layers, hidden {}, FFN {}, {} heads / {} KV heads of {}, RoPE base {}, RMSNorm eps {:e}, context {}",
            c.layers, c.hidden, c.ffn, c.heads, c.kv_heads, c.head_dim, c.rope_base, c.rms_eps, c.context
        ),
        format!(
            "tensors     {types}; output {}",
            if gguf.tied_output() { "tied to the embedding" } else { "untied" }
        ),
        format!("parameters  {}", gguf.parameter_count()),
        format!(
            "tokenizer   byte-level BPE, {} tokens, {} merges, pre-tokenizer {}, bos {}, eos {}, {} control tokens",
            tokenizer.vocab_size(),
            vocab.merges.len(),
            vocab.pre,
            vocab.bos,
            vocab.eos,
            control.len()
        ),
        format!(
            "chat        ChatML{}",
            template.default_system.map(|s| format!(", default system prompt {s:?}")).unwrap_or_default()
        ),
    ]
    .join("\n");
    output(a.json, v, human);
    Ok(())
}

fn import_cmd(a: ImportArgs) -> Result<()> {
    let limits = opml_importer::Limits { max_prompt: a.max_prompt, max_new: a.max_new };
    let t0 = std::time::Instant::now();
    let bundle = crate::llm::import_gguf(&a.file, limits)?;
    let bytes = bundle.to_bytes().context("encoding the bundle")?;
    std::fs::write(&a.out, &bytes).with_context(|| format!("writing {}", a.out.display()))?;
    let h = bundle.header();
    let inexact: Vec<&opml_importer::bundle::Rounding> = h.rounding.iter().filter(|r| !r.exact).collect();
    let worst = h.rounding.iter().map(|r| r.max_rel_error).fold(0.0, f64::max);
    if a.json {
        let v = json!({
            "bundle": a.out.display().to_string(),
            "bytes": bytes.len(),
            "model_commitment": h.model_commitment,
            "tensors": h.tensors.len(),
            "limits": h.limits,
            "format": h.format,
            "source": h.source,
            "rounding": h.rounding,
            "seconds": t0.elapsed().as_secs_f64(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("wrote {} ({} bytes, {} tensors)", a.out.display(), bytes.len(), h.tensors.len());
        println!("model commitment  {}", h.model_commitment);
        println!("source            {} (sha256 {})", h.source.file, h.source.sha256);
        println!(
            "format            F = {}, {}-bit activation blocks; limits: prompt {} + {} new tokens",
            h.format.frac_bits, h.format.act_bits, h.limits.max_prompt, h.limits.max_new
        );
        println!(
            "scale conversion  {} of {} tensors exact; largest relative error {worst:.2e}",
            h.rounding.len() - inexact.len(),
            h.rounding.len()
        );
    }
    Ok(())
}
