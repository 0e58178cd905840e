//! `opml generate` on SmolLM2-135M-Instruct Q4_1, when `scripts/fetch_models.sh` has fetched
//! it into `.cache/models/` (each test prints why and passes without it).

#[path = "common/smollm2.rs"]
mod smollm2;
use smollm2::{json_ok, model, opml};

#[test]
fn generate_gives_the_same_tokens_for_one_and_two_threads() {
    let Some(m) = model() else { return };
    let m = m.to_str().unwrap();
    let run = |t: &str| {
        json_ok(&[
            "generate",
            m,
            "--prompt",
            "The capital of France is",
            "--max-new-tokens",
            "4",
            "--threads",
            t,
            "--json",
        ])
    };
    let (one, two) = (run("1"), run("2"));
    assert_eq!(one["tokens"].as_array().unwrap().len(), 4, "{one}");
    assert_eq!(one["prompt_tokens"], 5, "{one}");
    assert_eq!((&one["tokens"], &one["text"]), (&two["tokens"], &two["text"]));
    assert_eq!((one["threads"].as_u64(), two["threads"].as_u64()), (Some(1), Some(2)));
    assert!(one["text"].as_str().unwrap().contains("Paris"), "{one}");
    assert!(one["tokens_per_second"].as_f64().unwrap() > 0.0, "{one}");
}

#[test]
fn generate_streams_the_chat_answer_and_stops_at_the_end_of_turn() {
    let Some(m) = model() else { return };
    let out = opml(&["generate", m.to_str().unwrap(), "--prompt", "What is the capital of France?", "--chat"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (text, err) = (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap());
    assert_eq!(text, "The capital of France is Paris.\n");
    assert!(err.contains("tokens/s"), "{err}");
}

#[test]
fn ignore_eos_generates_exactly_the_asked_tokens_and_json_lists_the_prompt_ids() {
    let Some(m) = model() else { return };
    let m = m.to_str().unwrap();
    let args = ["generate", m, "--prompt", "What is the capital of France?", "--chat", "--json"];
    let run = |extra: &[&str]| json_ok(&[&args[..], extra].concat());
    let stopped = run(&["--max-new-tokens", "16"]);
    let all = run(&["--max-new-tokens", "16", "--ignore-eos"]);
    let (s, a) = (stopped["tokens"].as_array().unwrap(), all["tokens"].as_array().unwrap());
    assert!(s.len() < 16 && a.len() == 16, "{stopped} {all}");
    assert_eq!(a[..s.len()], s[..], "the same tokens up to the end of turn");
    let ids = all["prompt_ids"].as_array().unwrap();
    assert_eq!(ids.len() as u64, all["prompt_tokens"].as_u64().unwrap());
}

#[test]
fn generate_names_the_file_it_cannot_import() {
    let out = opml(&["generate", "no/such/model.gguf", "--prompt", "hi"]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!out.status.success() && err.contains("no/such/model.gguf"), "{err}");
    let out = opml(&["generate", "no/such/model.gguf", "--prompt", "hi", "--threads", "0"]);
    assert!(!out.status.success());
}
