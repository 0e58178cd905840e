//! `opml lm eval`: perplexity of an LLM bundle on a text, by the convention of
//! `benches/llm/README.md` (consecutive chunks, each from an empty cache, every position but
//! the last predicting the next token), and with `--reference` the float model's
//! perplexity on the same chunks and the two models' next-token top-1 agreement.
//! Log-softmax here is evaluation, not inference: it is computed in f64.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use opml_importer::bundle::sha256_file;
use opml_importer::float_llama::{argmax_by, log_prob, FloatLlama};
use opml_importer::{KvCache, LlamaGguf, LlmBundle};
use serde_json::json;

/// Language-model subcommands.
#[derive(Debug, Subcommand)]
pub enum LmCommand {
    /// Perplexity of an LLM bundle on a text; with --reference, the float model's too and
    /// their next-token top-1 agreement.
    Eval(EvalArgs),
}

/// `opml lm eval`.
#[derive(Debug, Args)]
#[command(after_help = "The text is tokenized whole (no BOS) and cut into consecutive chunks of --chunk tokens \
                        (a shorter tail is dropped). Each chunk runs from an empty KV cache; positions 0..chunk-2 \
                        are scored on the next token; perplexity = exp(mean NLL). Top-1 agreement compares the \
                        integer and float argmax at every position of every chunk.")]
pub struct EvalArgs {
    /// LLM bundle (`opml model import`).
    pub bundle: PathBuf,
    /// Text file to evaluate on (UTF-8).
    #[arg(long)]
    pub text: PathBuf,
    /// Tokens per chunk.
    #[arg(long, default_value_t = 256)]
    pub chunk: usize,
    /// Evaluate at most this many chunks.
    #[arg(long)]
    pub max_chunks: Option<usize>,
    /// The GGUF the bundle was imported from (checked by its sha256): adds the f32 float
    /// model's perplexity and the top-1 agreement.
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Worker threads (default: all cores). The figures are the same for any number.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print JSON (`tokens`, `chunks`, `predictions`, `perplexity`, and with a reference
    /// `float_perplexity`, `top1_agreement`, `positions`).
    #[arg(long)]
    pub json: bool,
}

/// Run an `lm` subcommand.
pub fn run(cmd: LmCommand) -> Result<ExitCode> {
    match cmd {
        LmCommand::Eval(a) => crate::threads::pool(a.threads)?.install(|| eval(&a)),
    }
    .map(|()| ExitCode::SUCCESS)
}

/// The float model of `path`, after checking it is the bundle's source.
fn reference(path: &std::path::Path, bundle: &LlmBundle) -> Result<FloatLlama> {
    let name = path.display();
    let sha = sha256_file(path).with_context(|| format!("reading {name}"))?;
    let want = &bundle.header().source;
    if sha != want.sha256 {
        bail!(
            "--reference {name} has sha256 {sha}, but the bundle was imported from {} with sha256 {}",
            want.file,
            want.sha256
        );
    }
    let mut gguf = LlamaGguf::open(path).with_context(|| format!("importing {name}"))?;
    let weights = gguf.load_weights().with_context(|| format!("reading the weights of {name}"))?;
    Ok(FloatLlama::from_weights(gguf.config(), &weights))
}

/// Sum of `-log p(next)` over positions `0..n-1` of a chunk, from logits `[n, vocab]`.
fn chunk_nll(logits: impl Fn(usize) -> Vec<f64>, ids: &[u32]) -> f64 {
    (0..ids.len() - 1).map(|p| -log_prob(logits(p).into_iter(), ids[p + 1] as usize)).sum()
}

fn eval(a: &EvalArgs) -> Result<()> {
    let name = a.bundle.display();
    let bundle = LlmBundle::read(&a.bundle).with_context(|| format!("reading the LLM bundle {name}"))?;
    let tok = bundle.tokenizer().with_context(|| format!("building the tokenizer of {name}"))?;
    let float = a.reference.as_deref().map(|p| reference(p, &bundle)).transpose()?;
    let (vocab, context, frac) = (bundle.config().vocab, bundle.config().context, bundle.format().frac_bits);
    let model = bundle.into_model().with_context(|| format!("building the model of {name}"))?;
    if a.chunk < 2 || a.chunk > context {
        bail!("--chunk {} must be in 2..={context} (the context length)", a.chunk);
    }
    let text = std::fs::read_to_string(&a.text).with_context(|| format!("reading {}", a.text.display()))?;
    let ids = tok.encode(&text).with_context(|| format!("tokenizing {}", a.text.display()))?;
    let chunks: Vec<&[u32]> = ids.chunks_exact(a.chunk).take(a.max_chunks.unwrap_or(usize::MAX)).collect();
    if chunks.is_empty() {
        bail!("{} has {} tokens, fewer than one chunk of {}", a.text.display(), ids.len(), a.chunk);
    }
    let pb = ProgressBar::with_draw_target(Some(chunks.len() as u64), ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] chunk {pos}/{len} {wide_bar} eta {eta}")
            .expect("valid template"),
    );
    let scale = 2f64.powi(-(frac as i32));
    let (mut nll, mut nll_float, mut agree) = (0f64, 0f64, 0usize);
    for c in &chunks {
        let int = model.forward(c, &mut KvCache::new()).with_context(|| format!("running {name}"))?;
        let row = |p: usize| int[p * vocab..(p + 1) * vocab].iter().map(|&v| f64::from(v) * scale).collect();
        nll += chunk_nll(row, c);
        if let Some(f) = &float {
            let fl = f.forward(c);
            let frow = |p: usize| fl[p * vocab..(p + 1) * vocab].iter().map(|&v| f64::from(v)).collect();
            nll_float += chunk_nll(frow, c);
            agree += (0..c.len())
                .filter(|&p| argmax_by(&int[p * vocab..(p + 1) * vocab]) == argmax_by(&fl[p * vocab..(p + 1) * vocab]))
                .count();
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    let predictions = chunks.len() * (a.chunk - 1);
    let positions = chunks.len() * a.chunk;
    let ppl = (nll / predictions as f64).exp();
    let float_ppl = float.as_ref().map(|_| (nll_float / predictions as f64).exp());
    let top1 = float.as_ref().map(|_| agree as f64 / positions as f64);
    if a.json {
        let mut v = json!({
            "tokens": ids.len(),
            "chunk": a.chunk,
            "chunks": chunks.len(),
            "predictions": predictions,
            "perplexity": ppl,
        });
        if let (Some(fp), Some(t1)) = (float_ppl, top1) {
            v["float_perplexity"] = json!(fp);
            v["top1_agreement"] = json!(t1);
            v["positions"] = json!(positions);
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{}: {} tokens, {} chunks of {} ({predictions} predictions)",
            a.text.display(),
            ids.len(),
            chunks.len(),
            a.chunk
        );
        println!("perplexity (integer)  {ppl:.4}");
        if let (Some(fp), Some(t1)) = (float_ppl, top1) {
            println!("perplexity (float)    {fp:.4}  ({:+.3}%)", (ppl / fp - 1.0) * 100.0);
            println!("top-1 agreement       {:.2}% of {positions} positions", t1 * 100.0);
        }
    }
    Ok(())
}
