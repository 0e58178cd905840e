//! `opml generate`: greedy text generation with the integer forward of an LLM bundle or a
//! GGUF Llama model (`opml_importer::IntLlama`), streamed to stdout, with the model, input
//! and output commitments and the prompt and generation speed.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use opml_dnn::bundle::hex32;
use opml_importer::{tokens_commitment, LlamaTokenizer};
use serde_json::json;

/// `opml generate`.
#[derive(Debug, Args)]
#[command(after_help = "Runs natively, integers only (F = 14, 16-bit activation blocks). Prints the model \
                        commitment (of the bundle, or of the GGUF imported as `opml model import` would with \
                        default limits), the input commitment (the prompt's token ids) and the output \
                        commitment (the generated ids); see docs/spec/llm-bundle.md.")]
pub struct GenerateArgs {
    /// An LLM bundle (`opml model import`) or a GGUF Llama model (Q4_1 / Q8_0 linears, Q8_0
    /// embedding), e.g. SmolLM2-135M-Instruct.Q4_1.gguf; told apart by the file's magic.
    pub file: PathBuf,
    /// The text to continue.
    #[arg(long)]
    pub prompt: String,
    /// Wrap the prompt in the model's chat template (one user turn, the assistant to answer).
    #[arg(long)]
    pub chat: bool,
    /// Tokens to generate at most (fewer if the model writes its end-of-sequence token).
    #[arg(long, default_value_t = 32)]
    pub max_new_tokens: usize,
    /// Do not stop at the end-of-sequence token: always generate --max-new-tokens tokens
    /// (for comparisons with references that do not stop, and for timing).
    #[arg(long)]
    pub ignore_eos: bool,
    /// Worker threads (default: all cores). The tokens are the same for any number.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print JSON (text, token ids, speeds) instead of streaming the text.
    #[arg(long)]
    pub json: bool,
}

/// Run `opml generate`.
pub fn run(a: GenerateArgs) -> Result<ExitCode> {
    crate::threads::pool(a.threads)?.install(|| generate(&a)).map(|()| ExitCode::SUCCESS)
}

/// The text of `ids` not yet printed, holding back an incomplete UTF-8 character.
fn new_text(tok: &LlamaTokenizer, ids: &[u32], printed: &mut usize) -> Result<String> {
    let text = tok.decode(ids, true)?;
    if text.ends_with('\u{FFFD}') || text.len() < *printed {
        return Ok(String::new());
    }
    let fresh = text.get(*printed..).unwrap_or_default().to_string();
    *printed = text.len();
    Ok(fresh)
}

fn generate(a: &GenerateArgs) -> Result<()> {
    let name = a.file.display();
    let t0 = Instant::now();
    let (bundle, is_bundle) = crate::llm::load(&a.file)?;
    let tok = bundle.tokenizer().with_context(|| format!("building the tokenizer of {name}"))?;
    let model_commitment = hex32(&bundle.model_commitment());
    let limits = bundle.limits();
    let model = bundle.into_model().with_context(|| format!("building the model of {name}"))?;
    let load_seconds = t0.elapsed().as_secs_f64();
    let prompt = if a.chat { tok.chat_prompt(&a.prompt) } else { tok.encode(&a.prompt) }
        .with_context(|| format!("tokenizing the prompt with the tokenizer of {name}"))?;
    if prompt.is_empty() {
        bail!("the prompt is empty");
    }
    // A bundle fixes the lengths a claim over it may use; a GGUF run binds no claim.
    if is_bundle && (prompt.len() > limits.max_prompt || a.max_new_tokens > limits.max_new) {
        bail!(
            "{} prompt tokens and --max-new-tokens {} exceed the bundle's limits ({} prompt tokens, {} new)",
            prompt.len(),
            a.max_new_tokens,
            limits.max_prompt,
            limits.max_new
        );
    }
    let threads = rayon::current_num_threads();
    if !a.json {
        eprintln!(
            "{name}: {} in {load_seconds:.1} s; {} prompt tokens, {threads} thread(s)",
            if is_bundle { "read and checked" } else { "imported" },
            prompt.len()
        );
    }
    let (mut ids, mut printed, mut stdout) = (Vec::new(), 0usize, std::io::stdout().lock());
    let eos = [tok.eos()];
    let stop: &[u32] = if a.ignore_eos { &[] } else { &eos };
    let mut stream_err = None;
    let gen = model
        .generate_greedy(&prompt, a.max_new_tokens, stop, |t| {
            ids.push(t);
            if a.json || stream_err.is_some() {
                return;
            }
            let r = new_text(&tok, &ids, &mut printed)
                .and_then(|s| stdout.write_all(s.as_bytes()).and_then(|()| stdout.flush()).map_err(Into::into));
            if let Err(e) = r {
                stream_err = Some(e);
            }
        })
        .with_context(|| format!("running {name}"))?;
    if let Some(e) = stream_err {
        return Err(e.context("writing the text"));
    }
    let t_commit = Instant::now();
    let (input_commitment, output_commitment) =
        (hex32(&tokens_commitment(&prompt)), hex32(&tokens_commitment(&gen.tokens)));
    let commit_seconds = t_commit.elapsed().as_secs_f64();
    let text = tok.decode(&gen.tokens, true).context("decoding the generated tokens")?;
    let prompt_tps = prompt.len() as f64 / gen.prompt_seconds;
    // The first token comes out of the prompt's forward; each later one costs one forward.
    let decoded = gen.tokens.len().saturating_sub(1);
    let gen_tps = if decoded > 0 { decoded as f64 / gen.generate_seconds } else { 0.0 };
    if a.json {
        let v = json!({
            "text": text,
            "tokens": gen.tokens,
            "prompt_tokens": prompt.len(),
            "prompt_ids": prompt,
            "prompt_tokens_per_second": prompt_tps,
            "tokens_per_second": gen_tps,
            "threads": threads,
            "model_commitment": model_commitment,
            "input_commitment": input_commitment,
            "output_commitment": output_commitment,
            "prompt_seconds": gen.prompt_seconds,
            "generate_seconds": gen.generate_seconds,
            "commit_seconds": commit_seconds,
            "load_seconds": load_seconds,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        if !text.is_empty() {
            println!();
        }
        eprintln!(
            "prompt: {} tokens in {:.2} s ({prompt_tps:.1} tokens/s); generated {} tokens, {decoded} after the \
             first in {:.2} s ({gen_tps:.1} tokens/s); {threads} thread(s)",
            prompt.len(),
            gen.prompt_seconds,
            gen.tokens.len(),
            gen.generate_seconds
        );
        eprintln!("model commitment  {model_commitment}");
        eprintln!("input commitment  {input_commitment} ({} prompt tokens)", prompt.len());
        eprintln!("output commitment {output_commitment} ({} tokens)", gen.tokens.len());
    }
    Ok(())
}
