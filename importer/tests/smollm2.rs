//! The real SmolLM2-135M-Instruct Q4_1 GGUF (fetched by `scripts/fetch_models.sh` into
//! `.cache/models/`), checked against its published shape and against vectors made by
//! independent implementations (`fixtures/smollm2/make_vectors.py`: llama.cpp's Python GGUF
//! reader for the weights; a from-scratch BPE agreeing with Hugging Face's for the tokens).
//!
//! Without the file each test prints why and passes; CI fetches it in `setup.sh`.

use std::path::PathBuf;
use std::sync::OnceLock;

use opml_importer::{LlamaGguf, LlamaTokenizer, LlamaWeights, Matrix, TensorKind};
use serde_json::Value;

const MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The model's path, or `None` (with a message) when it has not been fetched.
fn model() -> Option<PathBuf> {
    let p = repo().join(".cache/models").join(MODEL);
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("skipping: {} is absent (run scripts/fetch_models.sh)", p.display());
        None
    }
}

fn vectors() -> Value {
    let p = repo().join("fixtures/smollm2/vectors.json");
    serde_json::from_str(&std::fs::read_to_string(&p).expect("fixtures/smollm2/vectors.json")).expect("valid JSON")
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().expect("an id list").iter().map(|x| x.as_u64().expect("an id") as u32).collect()
}

/// Opened, weights and tokenizer built once per test binary.
struct Loaded {
    gguf: LlamaGguf<std::io::BufReader<std::fs::File>>,
    weights: LlamaWeights,
    tokenizer: LlamaTokenizer,
}

fn loaded() -> Option<&'static Loaded> {
    static LOADED: OnceLock<Option<Loaded>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let path = model()?;
            let mut gguf = LlamaGguf::open(&path).expect("the model opens");
            let weights = gguf.load_weights().expect("the weights load");
            let tokenizer = LlamaTokenizer::new(&gguf.vocab().expect("vocab")).expect("the tokenizer builds");
            Some(Loaded { gguf, weights, tokenizer })
        })
        .as_ref()
}

#[test]
fn the_config_is_smollm2_135m() {
    let Some(m) = loaded() else { return };
    let c = m.gguf.config();
    assert_eq!((c.layers, c.hidden, c.ffn), (30, 576, 1536));
    assert_eq!((c.heads, c.kv_heads, c.head_dim), (9, 3, 64));
    assert_eq!((c.vocab, c.context), (49152, 8192));
    assert_eq!(c.rope_base, 100_000.0);
    assert_eq!(c.rms_eps, 1e-5);
}

#[test]
fn the_file_holds_210_q4_1_matrices_one_q8_0_embedding_and_61_norms() {
    let Some(m) = loaded() else { return };
    let counts = m.gguf.kind_counts();
    assert_eq!(counts.get(&TensorKind::Q4_1), Some(&210));
    assert_eq!(counts.get(&TensorKind::Q8_0), Some(&1));
    assert_eq!(counts.get(&TensorKind::F32), Some(&61));
    assert_eq!(m.gguf.tensors().len(), 272);
    assert!(m.gguf.tied_output());
    // 576 * 49152 + 30 * (2 * 576 + 2 * 576 * 576 + 2 * 576 * 192 + 3 * 576 * 1536) + 576
    assert_eq!(m.gguf.parameter_count(), 134_515_008);
}

#[test]
fn weights_load_with_the_shapes_of_the_config() {
    let Some(m) = loaded() else { return };
    let w = &m.weights;
    assert_eq!(w.layers.len(), 30);
    assert!(matches!(&w.token_embd, Matrix::Q8_0(e) if (e.rows, e.cols) == (49152, 576)));
    assert!(std::ptr::eq(w.output_projection(), &w.token_embd));
    let l = &w.layers[29];
    assert_eq!(l.attn_q.shape(), (576, 576));
    assert_eq!(l.attn_k.shape(), (192, 576));
    assert_eq!(l.attn_v.shape(), (192, 576));
    assert_eq!(l.attn_output.shape(), (576, 576));
    assert_eq!(l.ffn_gate.shape(), (1536, 576));
    assert_eq!(l.ffn_up.shape(), (1536, 576));
    assert_eq!(l.ffn_down.shape(), (576, 1536));
    assert_eq!(l.ffn_down.kind(), TensorKind::Q4_1);
    assert_eq!((l.attn_norm.len(), l.ffn_norm.len(), w.output_norm.len()), (576, 576, 576));
}

#[test]
fn dequantized_weights_match_llama_cpps_python_reader() {
    let Some(m) = loaded() else { return };
    let w = &m.weights;
    for span in vectors()["weights"].as_array().expect("weights") {
        let name = span["tensor"].as_str().expect("tensor");
        let (row, col) = (span["row"].as_u64().unwrap() as usize, span["col"].as_u64().unwrap() as usize);
        let want: Vec<f32> = span["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        let got: Vec<f32> = if name == "output_norm.weight" {
            w.output_norm[col..col + want.len()].to_vec()
        } else {
            let matrix = match name {
                "token_embd.weight" => &w.token_embd,
                _ => {
                    let (layer, tensor) = name
                        .strip_prefix("blk.")
                        .and_then(|s| s.split_once('.'))
                        .map(|(l, t)| (l.parse::<usize>().unwrap(), t.trim_end_matches(".weight")))
                        .expect("a layer tensor");
                    let l = &w.layers[layer];
                    match tensor {
                        "attn_q" => &l.attn_q,
                        "attn_k" => &l.attn_k,
                        "ffn_down" => &l.ffn_down,
                        "ffn_gate" => &l.ffn_gate,
                        other => panic!("no accessor for {other} in this test"),
                    }
                }
            };
            let cols = matrix.shape().1;
            matrix.dequantize()[row * cols + col..row * cols + col + want.len()].to_vec()
        };
        assert_eq!(got, want, "{name} row {row} from column {col}");
    }
}

#[test]
fn texts_tokenize_as_the_independent_implementations_do() {
    let Some(m) = loaded() else { return };
    for t in vectors()["texts"].as_array().expect("texts") {
        let text = t["text"].as_str().unwrap();
        assert_eq!(m.tokenizer.encode(text).unwrap(), ids(&t["ids"]), "{text:?}");
    }
}

#[test]
fn the_chat_prompt_is_the_gguf_templates_rendering() {
    let Some(m) = loaded() else { return };
    let chat = &vectors()["chat"];
    let user = chat["user"].as_str().unwrap();
    // `prompt` was rendered by Jinja from the file's own tokenizer.chat_template.
    assert_eq!(m.tokenizer.chat_template().render(user), chat["prompt"].as_str().unwrap());
    assert_eq!(m.tokenizer.chat_prompt(user).unwrap(), ids(&chat["ids"]));
}

#[test]
fn special_tokens_are_0_1_2_and_only_matched_when_asked() {
    let Some(m) = loaded() else { return };
    let t = &m.tokenizer;
    assert_eq!(t.encode_with_special("<|endoftext|><|im_start|><|im_end|>").unwrap(), [0, 1, 2]);
    assert_eq!((t.token_to_id("<|im_start|>"), t.eos()), (Some(1), 2));
    let plain = t.encode("<|im_end|>").unwrap();
    assert!(!plain.contains(&2) && plain.len() > 1, "{plain:?}");
    assert_eq!(t.decode(&[1, 4093, 198, 2], true).unwrap(), "user\n");
    assert_eq!(t.decode(&[1, 4093, 198, 2], false).unwrap(), "<|im_start|>user\n<|im_end|>");
    assert_eq!(t.vocab_size(), 49152);
}

#[test]
fn decoding_an_encoding_gives_the_text_back() {
    let Some(m) = loaded() else { return };
    for text in [
        "",
        " ",
        "plain words",
        "  two leading, three trailing   ",
        "digits 0123456789 and ٣٤٥ and ½ ²",
        "tabs\tand\r\nwindows lines\n\n\n",
        "emoji 🧪🦀 combining e\u{301} zero\u{200b}width",
        "中文，日本語、한국어, Ελληνικά, עברית, العربية",
        "<|im_start|> is text here",
        "\u{0}\u{1}\u{7f} control bytes",
    ] {
        let ids = m.tokenizer.encode(text).unwrap();
        assert_eq!(m.tokenizer.decode(&ids, false).unwrap(), text, "{ids:?}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Byte-level BPE loses nothing: any text (any scalar values, special-token strings
    /// included) decodes back to itself.
    #[test]
    fn any_text_round_trips(text in "(\\PC|\\s|<\\|im_end\\|>|[0-9]){0,40}") {
        if let Some(m) = loaded() {
            let ids = m.tokenizer.encode(&text).unwrap();
            proptest::prop_assert_eq!(m.tokenizer.decode(&ids, false).unwrap(), text);
        }
    }
}
