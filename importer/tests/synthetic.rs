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

// ---- LLM bundles (`docs/spec/llm-bundle.md`) ----

mod bundles {
    use super::*;
    use opml_dnn::bundle::hex32;
    use opml_dnn::commit::tensor_commitment;
    use opml_importer::bundle::{BundleError, Header, Limits, LlmBundle, Source, PREAMBLE_LEN};
    use opml_importer::{IntFormat, IntLlama, IntMatrix, KvCache};

    fn source() -> Source {
        Source { file: "small.gguf".into(), sha256: "00".repeat(32) }
    }

    fn import(spec: Spec) -> LlmBundle {
        let mut m = open(spec).unwrap();
        LlmBundle::from_gguf(&mut m, source(), Limits { max_prompt: 64, max_new: 32 }, IntFormat::default()).unwrap()
    }

    /// The file's header, its start and its length.
    fn header_of(bytes: &[u8]) -> (Header, usize) {
        let len = u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize;
        (serde_json::from_slice(&bytes[PREAMBLE_LEN..PREAMBLE_LEN + len]).unwrap(), len)
    }

    /// `bytes` with its header replaced by `h`.
    fn with_header(bytes: &[u8], h: &Header) -> Vec<u8> {
        let (_, len) = header_of(bytes);
        let json = serde_json::to_vec(h).unwrap();
        let mut b = bytes[..12].to_vec();
        b.extend_from_slice(&(json.len() as u64).to_le_bytes());
        b.extend_from_slice(&json);
        b.extend_from_slice(&bytes[PREAMBLE_LEN + len..]);
        b
    }

    fn refused(bytes: &[u8]) -> BundleError {
        LlmBundle::from_bytes(bytes).expect_err("the bundle is refused")
    }

    #[test]
    fn a_bundle_round_trips_its_tensors_tokenizer_and_commitments() {
        let b = import(Spec::llama());
        let bytes = b.to_bytes().unwrap();
        assert_eq!(&bytes[..8], b"OPMLLLM\0");
        let back = LlmBundle::from_bytes(&bytes).unwrap();
        assert_eq!(back.weights(), b.weights());
        assert_eq!(back.header(), b.header());
        assert_eq!(back.model_commitment(), b.model_commitment());
        assert_eq!(back.limits(), Limits { max_prompt: 64, max_new: 32 });
        // Hand-derived: every Q4_1 block has d = 0.5, m = -1; f16 values take the largest
        // exponent up to 24 at which the largest magnitude (1) stays within 2^30, which is
        // 24 itself: d = 2^23, m = -2^24, exactly.
        let IntMatrix::Q4_1 { w, n, k } = &back.weights().layers[0].k else { panic!("attn_k is Q4_1") };
        assert_eq!((*n, *k, w.exp), (32, 64, 24));
        assert!(w.d.iter().all(|&d| d == 1 << 23) && w.m.iter().all(|&m| m == -(1 << 24)));
        assert_eq!(&w.qs[..16], &(0..16u8).map(|i| i | (i << 4)).collect::<Vec<_>>()[..]);
        // Q8_0 embedding: d = 0.25 -> 2^22 at exponent 24; values -16..16 as shipped.
        let e = &back.weights().token_embd;
        assert_eq!((e.exp, e.d[0]), (24, 1 << 22));
        assert_eq!(&e.qs[..3], &[-16, -15, -14]);
        // Norm gains 1.0 at the cap 30: 2^30.
        assert_eq!((back.weights().output_norm.exp, back.weights().output_norm.gamma[0]), (30, 1 << 30));
        // Every conversion of this file is exact but epsilon's: 1e-5 at 2 * 14 fraction bits.
        let (eps, rest) = back.header().rounding.split_last().unwrap();
        assert!(rest.iter().all(|r| r.exact && r.max_rel_error == 0.0), "{rest:?}");
        let v = f64::from(1e-5f32);
        let want = ((v * 2f64.powi(28)).round() / 2f64.powi(28) - v).abs() / v;
        assert_eq!((eps.tensor.as_str(), eps.exp, eps.exact), ("rms_eps", 28, false));
        assert!((eps.max_rel_error - want).abs() < 1e-12, "{} against {want}", eps.max_rel_error);
        // A tensor's recorded commitment is dnn's tensor commitment of its values.
        let entry = back.header().tensors.iter().find(|t| t.name == "blk.0.attn_k.weight.d").unwrap();
        let t = opml_dnn::Tensor::from_i32(vec![32, 2], w.d.clone()).unwrap();
        assert_eq!(entry.commitment, opml_dnn::bundle::hex32(&opml_dnn::commit::tensor_commitment(&t)));
        // The tokenizer comes back the same.
        let (t0, t1) =
            (LlamaTokenizer::new(&open(Spec::llama()).unwrap().vocab().unwrap()).unwrap(), back.tokenizer().unwrap());
        for text in [" the", "the 42 é", "<|im_start|> the<|im_end|>"] {
            assert_eq!(t0.encode(text).unwrap(), t1.encode(text).unwrap(), "{text:?}");
            assert_eq!(t0.encode_with_special(text).unwrap(), t1.encode_with_special(text).unwrap(), "{text:?}");
        }
        assert_eq!(t0.chat_prompt("hi").unwrap(), t1.chat_prompt("hi").unwrap());
        assert_eq!(t1.eos(), 2);
        assert_eq!(back.header().tokenizer.special, vec![0, 1, 2]);
        // The same file imports to the same bytes.
        assert_eq!(import(Spec::llama()).to_bytes().unwrap(), bytes);
    }

    #[test]
    fn the_bundle_model_computes_the_gguf_model_logits() {
        let b = LlmBundle::from_bytes(&import(Spec::llama()).to_bytes().unwrap()).unwrap();
        let from_bundle = b.into_model().unwrap();
        let from_gguf = IntLlama::from_gguf(&mut open(Spec::llama()).unwrap(), IntFormat::default()).unwrap();
        let ids = [5u32, 70, 261, 3, 3, 100];
        let got = from_bundle.forward(&ids, &mut KvCache::new()).unwrap();
        assert_eq!(got, from_gguf.forward(&ids, &mut KvCache::new()).unwrap());
        assert_eq!(got.len(), ids.len() * 262);
    }

    /// The generation graph registered on-chain names, in its node descriptors, the very
    /// tensor commitments the bundle records: every constant's commitment equals the
    /// bundle's entry of that tensor (graph `X.qs` / `.d` / `.m` is the bundle's
    /// `X.weight.qs` / ...; a norm's `X.gamma` is `X.weight`; the RoPE tables share names).
    #[test]
    fn the_generation_graph_commits_the_bundles_tensors() {
        for spec in [Spec::llama(), Spec::llama().tensor("output.weight", vec![HIDDEN, 262], TensorType::Q4_1)] {
            let b = LlmBundle::from_bytes(&import(spec).to_bytes().unwrap()).unwrap();
            let recorded: std::collections::HashMap<String, String> =
                b.header().tensors.iter().map(|t| (t.name.clone(), t.commitment.clone())).collect();
            let limits = Limits { max_prompt: 2, max_new: 2 };
            let g = opml_importer::GenerationGraph::new(&b.into_model().unwrap(), limits).unwrap();
            let consts = &g.model.graph().consts;
            assert_eq!(consts.len(), recorded.len(), "one graph constant per bundle tensor");
            for (c, w) in consts.iter().zip(g.model.weights()) {
                let name = match c.name.rsplit_once('.') {
                    Some((base, "gamma")) => format!("{base}.weight"),
                    Some((base, part @ ("qs" | "d" | "m"))) => format!("{base}.weight.{part}"),
                    _ => c.name.clone(),
                };
                let want = recorded.get(&name).unwrap_or_else(|| panic!("{} ({name}) is not in the bundle", c.name));
                assert_eq!(&hex32(&tensor_commitment(w)), want, "{}", c.name);
            }
        }
    }

    #[test]
    fn an_untied_output_travels_in_the_bundle() {
        let spec = || Spec::llama().tensor("output.weight", vec![HIDDEN, 262], TensorType::Q4_1);
        let b = LlmBundle::from_bytes(&import(spec()).to_bytes().unwrap()).unwrap();
        assert!(b.header().tensors.iter().any(|t| t.name == "output.weight.m"));
        let from_gguf = IntLlama::from_gguf(&mut open(spec()).unwrap(), IntFormat::default()).unwrap();
        let ids = [7u32, 8];
        assert_eq!(
            b.into_model().unwrap().forward(&ids, &mut KvCache::new()).unwrap(),
            from_gguf.forward(&ids, &mut KvCache::new()).unwrap()
        );
    }

    #[test]
    fn a_corrupt_or_truncated_bundle_is_refused_naming_the_field() {
        let good = import(Spec::llama()).to_bytes().unwrap();
        let (h, hlen) = header_of(&good);
        let data0 = PREAMBLE_LEN + hlen;
        let e = refused(b"GGUF\x03\0\0\0");
        assert!(matches!(e, BundleError::Magic), "{e}");
        let mut b = good.clone();
        b[8] = 2;
        assert!(matches!(refused(&b), BundleError::Version { got: 2 }));
        assert!(matches!(refused(&good[..10]), BundleError::Truncated { ref field, .. } if field == "version"));
        assert!(matches!(refused(&good[..30]), BundleError::Truncated { ref field, .. } if field == "header"));
        let e = refused(&good[..data0 + 10]);
        assert!(matches!(&e, BundleError::Truncated { field, .. } if field == "tokenizer"), "{e}");
        let e = refused(&good[..good.len() - 1]);
        assert!(matches!(&e, BundleError::Truncated { field, .. } if field == "tensor rope.sin"), "{e}");
        let mut b = good.clone();
        b.push(0);
        assert!(matches!(refused(&b), BundleError::Trailing(1)));
        // A flipped byte in the tokenizer, in the first tensor, in the last tensor.
        let mut b = good.clone();
        b[data0 + 5] ^= 1;
        assert!(matches!(refused(&b), BundleError::Commitment { ref what, .. } if what == "tokenizer"));
        let mut b = good.clone();
        b[data0 + h.tokenizer.bytes as usize] ^= 1;
        let e = refused(&b);
        assert!(matches!(&e, BundleError::Commitment { what, .. } if what == "tensor token_embd.weight.qs"), "{e}");
        let mut b = good.clone();
        *b.last_mut().unwrap() ^= 1;
        assert!(matches!(refused(&b), BundleError::Commitment { ref what, .. } if what == "tensor rope.sin"));
        // The header: not JSON; a committed field changed; a recorded commitment changed.
        let mut b = good.clone();
        b[PREAMBLE_LEN] = b'[';
        assert!(matches!(refused(&b), BundleError::Header(_)));
        let mut h2 = h.clone();
        h2.limits.max_new = 31;
        assert!(
            matches!(refused(&with_header(&good, &h2)), BundleError::Commitment { ref what, .. } if what == "model")
        );
        let mut h2 = h.clone();
        h2.rms_eps_fixed += 1;
        assert!(
            matches!(refused(&with_header(&good, &h2)), BundleError::Commitment { ref what, .. } if what == "model")
        );
        let mut h2 = h.clone();
        h2.tensors[3].commitment = format!("0x{}", "11".repeat(32));
        let e = refused(&with_header(&good, &h2));
        assert!(
            matches!(&e, BundleError::Commitment { what, .. } if *what == format!("tensor {}", h.tensors[3].name)),
            "{e}"
        );
        // Fields refused before any commitment is checked, each named.
        let field_of = |h2: &Header| match refused(&with_header(&good, h2)) {
            BundleError::Field { field, .. } => field,
            other => panic!("expected a field error, got {other}"),
        };
        let mut h2 = h.clone();
        h2.limits.max_prompt = 100;
        assert_eq!(field_of(&h2), "limits");
        let mut h2 = h.clone();
        h2.format.act_bits = 12;
        assert_eq!(field_of(&h2), "format.act_bits");
        let mut h2 = h.clone();
        h2.config.heads = 3;
        assert_eq!(field_of(&h2), "config.heads");
        let mut h2 = h.clone();
        h2.config.context = 1 << 31;
        assert_eq!(field_of(&h2), "config.context");
        let mut h2 = h.clone();
        h2.architecture = "gpt2".into();
        assert_eq!(field_of(&h2), "architecture");
        // A table entry that disagrees with the configuration names the tensor.
        let mut h2 = h.clone();
        h2.tensors[2].shape = vec![32, 64];
        let e = refused(&with_header(&good, &h2));
        assert!(matches!(&e, BundleError::Tensor { name, .. } if *name == h.tensors[2].name), "{e}");
        let mut h2 = h.clone();
        h2.config.context = 64;
        h2.limits = Limits { max_prompt: 32, max_new: 32 };
        let e = refused(&with_header(&good, &h2));
        assert!(matches!(&e, BundleError::Tensor { name, .. } if name == "rope.cos"), "{e}");
    }
}
