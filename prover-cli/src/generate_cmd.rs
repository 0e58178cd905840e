//! `opml generate`: greedy text generation with the integer forward of a GGUF Llama model
//! (`opml_importer::IntLlama`), streamed to stdout, with prompt and generation speed.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use opml_importer::{IntFormat, IntLlama, LlamaGguf, LlamaTokenizer};
use serde_json::json;

/// `opml generate`.
#[derive(Debug, Args)]
#[command(after_help = "Runs natively, integers only (F = 14, 16-bit activation blocks). Commitments to \
                        the run and claim bundles for a generation come later; this prints text and speed.")]
pub struct GenerateArgs {
    /// A GGUF Llama model (Q4_1 / Q8_0 linears, Q8_0 embedding), e.g. SmolLM2-135M-Instruct.Q4_1.gguf.
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
    /// Worker threads (default: all cores). The tokens are the same for any number.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print JSON (text, token ids, speeds) instead of streaming the text.
    #[arg(long)]
    pub json: bool,
    /// Go on past the end-of-sequence token, to exactly --max-new-tokens (for timing).
    #[arg(long)]
    pub ignore_eos: bool,
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
    let mut gguf = LlamaGguf::open(&a.file).with_context(|| format!("importing {name}"))?;
    let vocab = gguf.vocab().with_context(|| format!("importing the tokenizer of {name}"))?;
    let tok = LlamaTokenizer::new(&vocab).with_context(|| format!("importing the tokenizer of {name}"))?;
    let model = IntLlama::from_gguf(&mut gguf, IntFormat::default())
        .with_context(|| format!("converting the weights of {name}"))?;
    let prompt = if a.chat { tok.chat_prompt(&a.prompt) } else { tok.encode(&a.prompt) }
        .with_context(|| format!("tokenizing the prompt with the tokenizer of {name}"))?;
    if prompt.is_empty() {
        bail!("the prompt is empty");
    }
    let threads = rayon::current_num_threads();
    if !a.json {
        eprintln!(
            "{name}: loaded in {:.1} s; {} prompt tokens, {threads} thread(s)",
            t0.elapsed().as_secs_f64(),
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
    }
    Ok(())
}
