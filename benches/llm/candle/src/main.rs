//! candle's quantized llama (`candle_transformers::models::quantized_llama`) on a GGUF
//! file: the prompt's token ids in one forward, then greedy decoding one token at a time,
//! timed with the wall clock around the forward calls. One JSON line on stdout. The third
//! engine of `benches/llm/speed.sh` (threads: `RAYON_NUM_THREADS`).
//!
//! Usage: opml-candle-peer GGUF IDS N_NEW, with IDS the prompt's token ids separated by
//! commas (the same ids the other engines get).

use std::time::Instant;

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, path, ids, n_new] = &args[..] else {
        return Err("usage: opml-candle-peer GGUF IDS N_NEW".into());
    };
    let prompt: Vec<u32> = ids.split(',').map(|s| s.trim().parse()).collect::<Result<_, _>>()?;
    let n_new: usize = n_new.parse()?;
    if prompt.is_empty() || n_new == 0 {
        return Err("need a prompt and at least one new token".into());
    }
    let device = Device::Cpu;
    let t_load = Instant::now();
    let mut file = std::fs::File::open(path)?;
    let content = gguf_file::Content::read(&mut file)?;
    let mut model = ModelWeights::from_gguf(content, &mut file, &device)?;
    let load_seconds = t_load.elapsed().as_secs_f64();

    let argmax = |logits: &Tensor| -> candle_core::Result<u32> {
        let v: Vec<f32> = logits.squeeze(0)?.to_vec1()?;
        // Lowest id on a tie, as the other engines.
        let mut best = 0;
        for (i, &x) in v.iter().enumerate() {
            if x > v[best] {
                best = i;
            }
        }
        Ok(best as u32)
    };

    let t0 = Instant::now();
    let input = Tensor::new(prompt.as_slice(), &device)?.unsqueeze(0)?;
    let mut next = argmax(&model.forward(&input, 0)?)?;
    let prompt_seconds = t0.elapsed().as_secs_f64();
    let mut tokens = vec![next];
    let t1 = Instant::now();
    while tokens.len() < n_new {
        let input = Tensor::new(&[next], &device)?.unsqueeze(0)?;
        next = argmax(&model.forward(&input, prompt.len() + tokens.len() - 1)?)?;
        tokens.push(next);
    }
    let generate_seconds = t1.elapsed().as_secs_f64();
    let decoded = tokens.len() - 1;
    let out = serde_json::json!({
        "engine": "candle",
        "load_seconds": load_seconds,
        "prompt_tokens": prompt.len(),
        "prompt_seconds": prompt_seconds,
        "prompt_tokens_per_second": prompt.len() as f64 / prompt_seconds,
        "tokens": tokens,
        "generate_seconds": generate_seconds,
        "tokens_per_second": if decoded > 0 { decoded as f64 / generate_seconds } else { 0.0 },
        "threads": std::env::var("RAYON_NUM_THREADS").ok(),
    });
    println!("{out}");
    Ok(())
}
