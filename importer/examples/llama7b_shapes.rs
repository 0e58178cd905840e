//! Issue 14's scale measurement: a Llama with LLaMA-2-7B's shapes and deterministic
//! pseudo-random 4-bit weights ([`SyntheticLlama`]), generated and converted block by
//! block, then a prompt (one batched forward) and greedy decoding over the KV cache with
//! the integer forward. Prints the weight generation time, prompt and generation speed,
//! peak resident memory (`VmHWM`), the load average, and the first forward's logit range
//! (to show the integer forward does not saturate).
//!
//! ```text
//! cargo run --release -p opml-importer --example llama7b_shapes -- \
//!     --tokens 64 --prompt 32 --threads 2 [--seed 14] [--tiny] [--json]
//! ```
//!
//! The prompt is `--prompt` token ids drawn from the seed (the model has no tokenizer).

use std::time::Instant;

use opml_dnn::ops::shape::argmax;
use opml_importer::{IntFormat, KvCache, LlamaConfig, SyntheticLlama};

/// Command-line options.
struct Opts {
    tokens: usize,
    prompt: usize,
    threads: usize,
    seed: u64,
    tiny: bool,
    json: bool,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts { tokens: 64, prompt: 32, threads: 2, seed: 14, tiny: false, json: false };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next().and_then(|v| v.parse::<u64>().ok()).ok_or_else(|| format!("{name} takes a number"))
        };
        match a.as_str() {
            "--tokens" => o.tokens = value("--tokens")? as usize,
            "--prompt" => o.prompt = value("--prompt")? as usize,
            "--threads" => o.threads = value("--threads")? as usize,
            "--seed" => o.seed = value("--seed")?,
            "--tiny" => o.tiny = true,
            "--json" => o.json = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if o.tokens == 0 || o.prompt == 0 || o.threads == 0 {
        return Err("--tokens, --prompt and --threads must be at least 1".into());
    }
    Ok(o)
}

/// A field of `/proc/self/status` in KiB (`VmHWM`, `VmRSS`), 0 where there is none.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// The 1-minute load average, 0 where there is none.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg").ok().and_then(|s| s.split_whitespace().next()?.parse().ok()).unwrap_or(0.0)
}

fn gib(kib: u64) -> f64 {
    kib as f64 / (1024.0 * 1024.0)
}

fn main() {
    let o = parse().unwrap_or_else(|e| {
        eprintln!("llama7b_shapes: {e}");
        std::process::exit(2)
    });
    rayon::ThreadPoolBuilder::new().num_threads(o.threads).build_global().expect("the global pool is built once");
    let config = if o.tiny { LlamaConfig::tiny() } else { LlamaConfig::llama2_7b() };
    let vocab = config.vocab;
    let model = SyntheticLlama::new(config.clone(), o.seed);
    let load0 = load_average();

    let t = Instant::now();
    let int = model.int_llama(IntFormat::default()).expect("the synthetic weights convert");
    let generate_s = t.elapsed().as_secs_f64();
    let hwm_after_load = status_kib("VmHWM:");
    let rss_after_load = status_kib("VmRSS:");

    // Prompt ids from the seed, spread over the vocabulary.
    let prompt: Vec<u32> = (0..o.prompt as u64)
        .map(|i| (o.seed.wrapping_add(i).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 33) as u32 % vocab as u32)
        .collect();
    let mut cache = KvCache::new();
    let t = Instant::now();
    let logits = int.forward(&prompt, &mut cache).expect("the prompt runs");
    let prompt_s = t.elapsed().as_secs_f64();
    let last = &logits[(prompt.len() - 1) * vocab..];
    let (lo, hi) = (*last.iter().min().unwrap(), *last.iter().max().unwrap());
    let at_limits = logits.iter().filter(|&&v| v == i32::MIN || v == i32::MAX).count();
    let scale = f64::from(1u32 << int.format().frac_bits);
    let mut tokens = vec![argmax(last, vocab)[0] as u32];
    let mut step_s = Vec::with_capacity(o.tokens.saturating_sub(1));
    while tokens.len() < o.tokens {
        let t = Instant::now();
        let l = int.forward(&tokens[tokens.len() - 1..], &mut cache).expect("a decode step runs");
        tokens.push(argmax(&l, vocab)[0] as u32);
        step_s.push(t.elapsed().as_secs_f64());
    }
    let decode_s: f64 = step_s.iter().sum();
    let hwm = status_kib("VmHWM:");
    let load1 = load_average();
    let per_token = if step_s.is_empty() { 0.0 } else { decode_s / step_s.len() as f64 };
    let c = &config;
    let report = serde_json::json!({
        "config": {
            "layers": c.layers, "hidden": c.hidden, "ffn": c.ffn, "heads": c.heads, "kv_heads": c.kv_heads,
            "head_dim": c.head_dim, "vocab": c.vocab, "parameters": c.parameter_count(),
        },
        "seed": o.seed,
        "threads": o.threads,
        "weights_seconds": generate_s,
        "prompt_tokens": o.prompt,
        "prompt_seconds": prompt_s,
        "prompt_tokens_per_second": o.prompt as f64 / prompt_s,
        "generated_tokens": tokens.len(),
        "decode_steps": step_s.len(),
        "decode_seconds": decode_s,
        "seconds_per_token": per_token,
        "tokens_per_second": if per_token > 0.0 { 1.0 / per_token } else { 0.0 },
        "decode_step_seconds_min_max": [
            step_s.iter().cloned().fold(f64::INFINITY, f64::min),
            step_s.iter().cloned().fold(0.0, f64::max),
        ],
        "peak_rss_gib_after_weights": gib(hwm_after_load),
        "rss_gib_after_weights": gib(rss_after_load),
        "peak_rss_gib": gib(hwm),
        "last_prompt_logits_min_max": [f64::from(lo) / scale, f64::from(hi) / scale],
        "prompt_logits_at_i32_limits": at_limits,
        "load_average_start_end": [load0, load1],
        "tokens": tokens,
    });
    if o.json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(&report).expect("a JSON value prints"));
    }
}
