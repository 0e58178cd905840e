//! Small Llama GGUF files built in memory (with `gguf-rs-lib`'s writer): what the import reads
//! from a well-formed one, and that each malformed one is refused by an error naming the
//! metadata key or tensor at fault.

use gguf_rs_lib::builder::gguf_builder::GGUFBuilder;
use gguf_rs_lib::format::metadata::{MetadataArray, MetadataValue as V};
use gguf_rs_lib::format::types::GGUFValueType;
use gguf_rs_lib::tensor::TensorType;
use opml_importer::{GgufFile, ImportError, LlamaGguf, LlamaTokenizer, Matrix};

/// hidden 64, 2 query heads and 1 KV head of 32, FFN 96, one layer.
const HIDDEN: u64 = 64;
const FFN: u64 = 96;
const KV: u64 = 32;

/// Vocabulary: 3 control tokens, GPT-2's 256 byte characters, then `Ġt`, `he`, `Ġthe`.
fn tokens() -> Vec<String> {
    let mut t: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"].map(String::from).to_vec();
    t.extend(gpt2_byte_chars().into_iter().map(String::from));
    t.extend(["Ġt", "he", "Ġthe"].map(String::from));
    t
}

/// GPT-2's byte-to-unicode characters, in byte order.
fn gpt2_byte_chars() -> Vec<char> {
    let printable = |b: u32| (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
    let mut shifted = 0;
    (0..256u32)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).unwrap()
            } else {
                shifted += 1;
                char::from_u32(255 + shifted).unwrap()
            }
        })
        .collect()
}

/// What a test file holds: metadata and tensors, editable before building.
struct Spec {
    meta: Vec<(String, V)>,
    tensors: Vec<(String, Vec<u64>, TensorType)>,
}

fn strings(v: &[String]) -> V {
    V::Array(Box::new(MetadataArray::new(GGUFValueType::String, v.iter().cloned().map(V::String).collect()).unwrap()))
}

impl Spec {
    fn llama() -> Self {
        let tokens = tokens();
        let types = tokens.iter().map(|t| V::I32(if t.starts_with("<|") { 3 } else { 1 })).collect();
        let merges: Vec<String> = ["Ġ t", "h e", "Ġt he"].map(String::from).to_vec();
        let u = |x: u64| V::U32(x as u32);
        let meta = vec![
            ("general.architecture", V::String("llama".into())),
            ("llama.block_count", u(1)),
            ("llama.context_length", u(128)),
            ("llama.embedding_length", u(HIDDEN)),
            ("llama.feed_forward_length", u(FFN)),
            ("llama.attention.head_count", u(2)),
            ("llama.attention.head_count_kv", u(1)),
            ("llama.rope.freq_base", V::F32(100_000.0)),
            ("llama.rope.dimension_count", u(32)),
            ("llama.attention.layer_norm_rms_epsilon", V::F32(1e-5)),
            ("tokenizer.ggml.model", V::String("gpt2".into())),
            ("tokenizer.ggml.pre", V::String("smollm".into())),
            ("tokenizer.ggml.tokens", strings(&tokens)),
            ("tokenizer.ggml.token_type", V::Array(Box::new(MetadataArray::new(GGUFValueType::I32, types).unwrap()))),
            ("tokenizer.ggml.merges", strings(&merges)),
            ("tokenizer.ggml.bos_token_id", u(1)),
            ("tokenizer.ggml.eos_token_id", u(2)),
            ("tokenizer.chat_template", V::String(opml_importer::tokenizer::SMOLLM2_TEMPLATE.into())),
        ];
        let v = tokens.len() as u64;
        let (q4, q8, f32) = (TensorType::Q4_1, TensorType::Q8_0, TensorType::F32);
        let t = |n: &str, dims: Vec<u64>, ty| (n.to_string(), dims, ty);
        let tensors = vec![
            t("token_embd.weight", vec![HIDDEN, v], q8),
            t("blk.0.attn_norm.weight", vec![HIDDEN], f32),
            t("blk.0.attn_q.weight", vec![HIDDEN, HIDDEN], q4),
            t("blk.0.attn_k.weight", vec![HIDDEN, KV], q4),
            t("blk.0.attn_v.weight", vec![HIDDEN, KV], q4),
            t("blk.0.attn_output.weight", vec![HIDDEN, HIDDEN], q4),
            t("blk.0.ffn_norm.weight", vec![HIDDEN], f32),
            t("blk.0.ffn_gate.weight", vec![HIDDEN, FFN], q4),
            t("blk.0.ffn_up.weight", vec![HIDDEN, FFN], q4),
            t("blk.0.ffn_down.weight", vec![FFN, HIDDEN], q4),
            t("output_norm.weight", vec![HIDDEN], f32),
        ];
        Self { meta: meta.into_iter().map(|(k, v)| (k.to_string(), v)).collect(), tensors }
    }

    fn set(mut self, key: &str, value: V) -> Self {
        self.meta.retain(|(k, _)| k != key);
        self.meta.push((key.into(), value));
        self
    }

    fn without_key(mut self, key: &str) -> Self {
        self.meta.retain(|(k, _)| k != key);
        self
    }

    fn without_tensor(mut self, name: &str) -> Self {
        self.tensors.retain(|(n, ..)| n != name);
        self
    }

    fn tensor(mut self, name: &str, dims: Vec<u64>, ty: TensorType) -> Self {
        self.tensors.retain(|(n, ..)| n != name);
        self.tensors.push((name.into(), dims, ty));
        self
    }

    /// The file's bytes. Every Q4_1 block is d = 0.5, m = -1 with values 0..16 twice
    /// (value i of a block: 0.5 * (i % 16) - 1); every Q8_0 block d = 0.25 with values
    /// -16..16; F32 and F16 values 1.0.
    fn build(self) -> Vec<u8> {
        let mut b = GGUFBuilder::new();
        for (k, v) in self.meta {
            b = b.add_metadata(k, v);
        }
        for (name, dims, ty) in self.tensors {
            let n: u64 = dims.iter().product();
            let bytes: Vec<u8> = match ty {
                TensorType::Q4_1 => (0..n / 32)
                    .flat_map(|_| {
                        let mut blk = vec![0x00, 0x38, 0x00, 0xbc];
                        blk.extend((0..16u8).map(|i| i | (i << 4)));
                        blk
                    })
                    .collect(),
                TensorType::Q8_0 => (0..n / 32)
                    .flat_map(|_| {
                        let mut blk = vec![0x00, 0x34];
                        blk.extend((-16..16i8).map(|q| q as u8));
                        blk
                    })
                    .collect(),
                TensorType::F32 => (0..n).flat_map(|_| 1.0f32.to_le_bytes()).collect(),
                TensorType::F16 => (0..n).flat_map(|_| 0x3c00u16.to_le_bytes()).collect(),
                other => panic!("test files hold no {other}"),
            };
            b = b.add_tensor(name, dims, ty, bytes).expect("a well-formed tensor");
        }
        b.build_to_bytes().expect("the builder writes the file").0
    }
}

fn open(spec: Spec) -> Result<LlamaGguf<std::io::Cursor<Vec<u8>>>, ImportError> {
    LlamaGguf::new(GgufFile::from_bytes(spec.build())?)
}

#[test]
fn a_small_llama_file_gives_its_config_and_typed_weights() {
    let mut m = open(Spec::llama()).unwrap();
    let c = m.config().clone();
    assert_eq!((c.layers, c.hidden, c.ffn, c.heads, c.kv_heads, c.head_dim), (1, 64, 96, 2, 1, 32));
    assert_eq!((c.vocab, c.context, c.rope_base, c.rms_eps), (262, 128, 100_000.0, 1e-5));
    assert!(m.tied_output());
    let w = m.load_weights().unwrap();
    let Matrix::Q4_1(q) = &w.layers[0].attn_k else { panic!("attn_k is Q4_1") };
    assert_eq!((q.rows, q.cols, q.blocks.len()), (32, 64, 64));
    assert_eq!((q.blocks[0].d, q.blocks[0].m), (0x3800, 0xbc00));
    let x = w.layers[0].attn_k.dequantize();
    assert_eq!((x[0], x[15], x[16], x[31], x[63]), (-1.0, 6.5, -1.0, 6.5, 6.5));
    assert_eq!(w.token_embd.shape(), (262, 64));
    assert_eq!(w.token_embd.dequantize()[..3], [-4.0, -3.75, -3.5]);
    assert_eq!(w.output_norm, vec![1.0; 64]);
}

#[test]
fn an_output_weight_unties_the_output_projection() {
    let mut m = open(Spec::llama().tensor("output.weight", vec![HIDDEN, 262], TensorType::Q4_1)).unwrap();
    assert!(!m.tied_output());
    let w = m.load_weights().unwrap();
    assert_eq!(w.output_projection().shape(), (262, 64));
    assert!(matches!(w.output_projection(), Matrix::Q4_1(_)));
}

/// The error of opening `spec`, as text, checked to be the expected variant.
fn refused(spec: Spec, is: impl Fn(&ImportError) -> bool) -> String {
    let e = open(spec).expect_err("the file is refused");
    assert!(is(&e), "unexpected error: {e:?}");
    e.to_string()
}

#[test]
fn a_missing_tensor_is_named() {
    let msg = refused(
        Spec::llama().without_tensor("blk.0.ffn_up.weight"),
        |e| matches!(e, ImportError::MissingTensor { name } if name == "blk.0.ffn_up.weight"),
    );
    assert_eq!(msg, "tensor blk.0.ffn_up.weight is missing");
}

#[test]
fn a_tensor_of_the_wrong_shape_is_named_with_both_shapes() {
    let msg = refused(
        Spec::llama().tensor("blk.0.attn_k.weight", vec![HIDDEN, HIDDEN], TensorType::Q4_1),
        |e| matches!(e, ImportError::TensorShape { name, .. } if name == "blk.0.attn_k.weight"),
    );
    assert!(msg.contains("expected shape [64, 32]") && msg.contains("found [64, 64]"), "{msg}");
}

#[test]
fn a_tensor_of_the_wrong_type_is_named() {
    let msg = refused(
        Spec::llama().tensor("blk.0.attn_norm.weight", vec![HIDDEN], TensorType::F16),
        |e| matches!(e, ImportError::TensorType { name, .. } if name == "blk.0.attn_norm.weight"),
    );
    assert_eq!(msg, "tensor blk.0.attn_norm.weight: expected type F32, found F16");
    refused(
        Spec::llama().tensor("blk.0.ffn_down.weight", vec![FFN, HIDDEN], TensorType::F32),
        |e| matches!(e, ImportError::TensorType { name, expected, .. } if name == "blk.0.ffn_down.weight" && expected == "Q8_0 or Q4_1"),
    );
}

#[test]
fn a_tensor_outside_the_architecture_is_named() {
    refused(
        Spec::llama().tensor("rope_freqs.weight", vec![32], TensorType::F32),
        |e| matches!(e, ImportError::UnexpectedTensor { name } if name == "rope_freqs.weight"),
    );
    refused(
        Spec::llama().tensor("blk.1.attn_norm.weight", vec![HIDDEN], TensorType::F32),
        |e| matches!(e, ImportError::UnexpectedTensor { name } if name == "blk.1.attn_norm.weight"),
    );
}

#[test]
fn metadata_errors_name_the_key() {
    refused(
        Spec::llama().without_key("llama.context_length"),
        |e| matches!(e, ImportError::MissingKey { key } if key == "llama.context_length"),
    );
    refused(
        Spec::llama().set("general.architecture", V::String("gpt2".into())),
        |e| matches!(e, ImportError::Unsupported { key, .. } if key == "general.architecture"),
    );
    refused(
        Spec::llama().set("llama.block_count", V::String("one".into())),
        |e| matches!(e, ImportError::KeyType { key, .. } if key == "llama.block_count"),
    );
    refused(
        Spec::llama().set("llama.attention.head_count", V::U32(3)),
        |e| matches!(e, ImportError::Unsupported { key, .. } if key == "llama.attention.head_count"),
    );
    refused(
        Spec::llama().set("llama.vocab_size", V::U32(100)),
        |e| matches!(e, ImportError::Unsupported { key, .. } if key == "llama.vocab_size"),
    );
    refused(
        Spec::llama().set("llama.rope.dimension_count", V::U32(16)),
        |e| matches!(e, ImportError::Unsupported { key, .. } if key == "llama.rope.dimension_count"),
    );
}

#[test]
fn the_tokenizer_of_a_small_vocabulary_merges_by_rank() {
    let m = open(Spec::llama()).unwrap();
    let t = LlamaTokenizer::new(&m.vocab().unwrap()).unwrap();
    let id = |s: &str| t.token_to_id(s).unwrap();
    assert_eq!(t.encode(" the").unwrap(), [id("Ġthe")]);
    assert_eq!(t.encode("the").unwrap(), [id("t"), id("he")]);
    assert_eq!(t.encode(" 42").unwrap(), [id("Ġ"), id("4"), id("2")]);
    assert_eq!(t.encode_with_special("<|im_start|> the<|im_end|>").unwrap(), [1, id("Ġthe"), 2]);
    assert_eq!(t.decode(&t.encode("é the").unwrap(), false).unwrap(), "é the");
}

#[test]
fn tokenizer_metadata_errors_name_the_key() {
    let vocab_err = |spec: Spec| {
        let m = open(spec).unwrap();
        m.vocab().and_then(|v| LlamaTokenizer::new(&v)).expect_err("the tokenizer is refused")
    };
    let e = vocab_err(Spec::llama().set("tokenizer.ggml.pre", V::String("llama-bpe".into())));
    assert!(matches!(&e, ImportError::Unsupported { key, .. } if key == "tokenizer.ggml.pre"), "{e:?}");
    let e = vocab_err(Spec::llama().set("tokenizer.ggml.model", V::String("llama".into())));
    assert!(matches!(&e, ImportError::Unsupported { key, .. } if key == "tokenizer.ggml.model"), "{e:?}");
    let e = vocab_err(Spec::llama().set("tokenizer.chat_template", V::String("{{ messages }}".into())));
    assert!(matches!(&e, ImportError::Unsupported { key, .. } if key == "tokenizer.chat_template"), "{e:?}");
    let e = vocab_err(Spec::llama().set("tokenizer.ggml.eos_token_id", V::U32(262)));
    assert!(matches!(&e, ImportError::Unsupported { key, .. } if key == "tokenizer.ggml.eos_token_id"), "{e:?}");
    let e = vocab_err(Spec::llama().set("tokenizer.ggml.merges", strings(&["Ġt he x".to_string()])));
    assert!(e.to_string().contains("tokenizer.ggml.merges[0]"), "{e}");
}

/// The integer forward on the small file: a prompt then one token at a time over the cache
/// gives the batched forward's logits, for 1 and 2 threads, and bad input is refused.
#[test]
fn the_integer_forward_decodes_over_the_cache_like_one_batch() {
    use opml_importer::{ActBits, ForwardError, IntFormat, IntLlama, KvCache};
    let mut m = open(Spec::llama()).unwrap();
    let model = IntLlama::from_gguf(&mut m, IntFormat { frac_bits: 8, act: ActBits::I16 }).unwrap();
    let ids = [5u32, 70, 261, 3, 3, 100];
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| model.forward(&ids, &mut KvCache::new()).unwrap())
    };
    let batched = run(1);
    assert_eq!(batched.len(), ids.len() * 262);
    assert_eq!(batched, run(2));
    let mut cache = KvCache::new();
    let mut stepped = model.forward(&ids[..2], &mut cache).unwrap();
    for &t in &ids[2..] {
        stepped.extend(model.forward(&[t], &mut cache).unwrap());
    }
    assert_eq!(stepped, batched);
    assert!(matches!(model.forward(&[262], &mut cache), Err(ForwardError::Token { id: 262, vocab: 262 })));
    assert!(matches!(model.forward(&[1; 123], &mut cache), Err(ForwardError::Context { want: 129, context: 128 })));
    assert_eq!(cache.len(), ids.len());
    let g = model.generate_greedy(&ids, 3, &[], |_| {}).unwrap();
    assert_eq!(g.tokens.len(), 3);
}

/// `forward_last` is the last row of `forward` (prompt and decode steps), and greedy
/// generation (which reads only it) picks the argmax of the full logits at every step.
#[test]
fn the_last_positions_logits_are_the_last_row_of_the_full_forward() {
    use opml_importer::{ActBits, IntFormat, IntLlama, KvCache};
    let mut m = open(Spec::llama()).unwrap();
    let model = IntLlama::from_gguf(&mut m, IntFormat { frac_bits: 8, act: ActBits::I16 }).unwrap();
    let ids = [5u32, 70, 261, 3, 3, 100];
    let (mut full_cache, mut last_cache) = (KvCache::new(), KvCache::new());
    let full = model.forward(&ids[..4], &mut full_cache).unwrap();
    assert_eq!(model.forward_last(&ids[..4], &mut last_cache).unwrap(), full[3 * 262..]);
    for &t in &ids[4..] {
        assert_eq!(model.forward_last(&[t], &mut last_cache).unwrap(), model.forward(&[t], &mut full_cache).unwrap());
    }
    assert_eq!(last_cache.len(), full_cache.len());
    let argmax = |row: &[i32]| (0..row.len()).rev().max_by_key(|&i| row[i]).unwrap() as u32;
    let g = model.generate_greedy(&ids, 4, &[], |_| {}).unwrap();
    let mut seq = ids.to_vec();
    for &t in &g.tokens {
        let all = model.forward(&seq, &mut KvCache::new()).unwrap();
        assert_eq!(t, argmax(&all[(seq.len() - 1) * 262..]));
        seq.push(t);
    }
}

#[test]
fn the_integer_forward_refuses_a_q4_1_embedding() {
    use opml_importer::{ForwardError, IntFormat, IntLlama};
    let mut m = open(Spec::llama().tensor("token_embd.weight", vec![HIDDEN, 262], TensorType::Q4_1)).unwrap();
    let e = IntLlama::from_gguf(&mut m, IntFormat::default()).unwrap_err();
    assert!(matches!(e, ForwardError::Unsupported(_)), "{e}");
    assert!(e.to_string().contains("token_embd.weight"), "{e}");
}
