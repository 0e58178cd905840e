//! The tokenizer a GGUF file carries, rebuilt as a `tokenizers::Tokenizer`, and its chat
//! template.
//!
//! llama.cpp's `gpt2` tokenizer model is byte-level BPE: `tokenizer.ggml.tokens` holds the
//! token strings in GPT-2's byte-to-unicode alphabet (`Ġ` for a space, ...), token id = index;
//! `tokenizer.ggml.merges` holds the merge rules `"left right"` in priority order. Text is
//! split by the pre-tokenizer that `tokenizer.ggml.pre` names, bytes are mapped to the
//! alphabet, and each piece is merged by rank. Tokens of type CONTROL (3) are special: they
//! are matched in text only when asked ([`LlamaTokenizer::encode_with_special`]) and are
//! dropped by `decode(.., skip_special = true)`.
//!
//! Pre-tokenizers, as llama.cpp's `llama-vocab.cpp` defines them (its regexes are applied in
//! turn, each to the pieces the previous one left):
//!
//! - `smollm`, `starcoder`, `refact`, `command-r`, `codeshell`, `exaone`, `minerva`: every
//!   `\p{N}` character alone, then the GPT-2 regex. Here: `Digits(individual_digits)` (Rust's
//!   `char::is_numeric` is exactly `\p{N}`) then `ByteLevel` with its GPT-2 regex.
//! - `gpt2`, `mpt`, `olmo`, `jais`, `trillion`: the GPT-2 regex alone (`ByteLevel`).
//!
//! Any other value is refused rather than tokenized differently from llama.cpp.

use std::io::{Read, Seek};

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Merges, Vocab as BpeVocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, PreTokenizerWrapper, Tokenizer};

use crate::error::{ImportError, Result};
use crate::gguf::GgufFile;

/// llama.cpp token types (`tokenizer.ggml.token_type`).
const TOKEN_NORMAL: i32 = 1;
const TOKEN_CONTROL: i32 = 3;
const TOKEN_USER_DEFINED: i32 = 4;

/// Pre-tokenizer families, by `tokenizer.ggml.pre`.
const PRE_DIGITS_THEN_GPT2: &[&str] = &["smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"];
const PRE_GPT2: &[&str] = &["gpt2", "mpt", "olmo", "jais", "trillion"];

/// The tokenizer data of a GGUF file (`tokenizer.*` keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocab {
    /// Token strings (GPT-2 byte alphabet), id = index.
    pub tokens: Vec<String>,
    /// llama.cpp token type per token (1 normal, 3 control, 4 user-defined).
    pub token_types: Vec<i32>,
    /// Merge rules `"left right"`, highest priority first.
    pub merges: Vec<String>,
    /// `tokenizer.ggml.pre`: which pre-tokenizer splits the text.
    pub pre: String,
    /// Beginning-of-sequence token (`tokenizer.ggml.bos_token_id`).
    pub bos: u32,
    /// End-of-sequence token (`tokenizer.ggml.eos_token_id`).
    pub eos: u32,
    /// The Jinja chat template (`tokenizer.chat_template`), if the file has one.
    pub chat_template: Option<String>,
}

impl Vocab {
    /// Read the tokenizer keys of a GGUF file; only `tokenizer.ggml.model = gpt2` is read.
    pub fn from_gguf<R: Read + Seek>(f: &GgufFile<R>) -> Result<Self> {
        let model = f.str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(ImportError::Unsupported {
                key: "tokenizer.ggml.model".into(),
                reason: format!("{model:?}: only byte-level BPE (\"gpt2\") is imported"),
            });
        }
        let tokens: Vec<String> = f.str_array("tokenizer.ggml.tokens")?.into_iter().map(str::to_owned).collect();
        let token_types = f.i32_array("tokenizer.ggml.token_type")?;
        if token_types.len() != tokens.len() {
            return Err(ImportError::Unsupported {
                key: "tokenizer.ggml.token_type".into(),
                reason: format!("{} types for {} tokens", token_types.len(), tokens.len()),
            });
        }
        let id = |key: &str| -> Result<u32> {
            let v = f.usize(key)?;
            u32::try_from(v).ok().filter(|&v| (v as usize) < tokens.len()).ok_or_else(|| ImportError::Unsupported {
                key: key.into(),
                reason: format!("{v} is not a token id (vocabulary of {})", tokens.len()),
            })
        };
        Ok(Self {
            merges: f.str_array("tokenizer.ggml.merges")?.into_iter().map(str::to_owned).collect(),
            pre: f.str("tokenizer.ggml.pre")?.to_owned(),
            bos: id("tokenizer.ggml.bos_token_id")?,
            eos: id("tokenizer.ggml.eos_token_id")?,
            chat_template: if f.has("tokenizer.chat_template") {
                Some(f.str("tokenizer.chat_template")?.to_owned())
            } else {
                None
            },
            tokens,
            token_types,
        })
    }

    /// Ids of the control tokens, ascending.
    pub fn control_tokens(&self) -> Vec<u32> {
        (0..self.tokens.len() as u32).filter(|&i| self.token_types[i as usize] == TOKEN_CONTROL).collect()
    }
}

/// A byte-level BPE tokenizer built from a GGUF [`Vocab`], with its chat template.
#[derive(Debug, Clone)]
pub struct LlamaTokenizer {
    inner: Tokenizer,
    /// Tokenizer that also matches the special tokens in text.
    with_special: Tokenizer,
    template: ChatTemplate,
    eos: u32,
}

impl LlamaTokenizer {
    /// Build the tokenizer `vocab` describes.
    pub fn new(vocab: &Vocab) -> Result<Self> {
        let added = added_tokens(vocab)?;
        let mut inner = Tokenizer::new(bpe_model(vocab)?);
        inner.with_pre_tokenizer(Some(pre_tokenizer(&vocab.pre)?)).with_decoder(Some(ByteLevelDecoder::default()));
        inner.add_special_tokens(&added.iter().map(|(_, t)| t.clone()).collect::<Vec<_>>());
        for (id, t) in &added {
            if inner.token_to_id(&t.content) != Some(*id) {
                return Err(ImportError::Tokenizer(format!("special token {:?} did not keep its id {id}", t.content)));
            }
        }
        let mut with_special = inner.clone();
        with_special.set_encode_special_tokens(false);
        inner.set_encode_special_tokens(true);
        let template = ChatTemplate::from_gguf(vocab.chat_template.as_deref())?;
        for s in [template.im_start, template.im_end] {
            if with_special.token_to_id(s).is_none_or(|id| vocab.token_types[id as usize] != TOKEN_CONTROL) {
                return Err(ImportError::Tokenizer(format!("the chat template's {s} is not a control token")));
            }
        }
        Ok(Self { inner, with_special, template, eos: vocab.eos })
    }

    /// Rebuild a tokenizer from its `tokenizers` JSON ([`Self::to_json`], as an LLM bundle
    /// stores it), the chat template's text (recognised as in [`ChatTemplate::from_gguf`])
    /// and the end-of-sequence id.
    pub fn from_json(json: &[u8], chat_template: &str, eos: u32) -> Result<Self> {
        let mut inner =
            Tokenizer::from_bytes(json).map_err(|e| ImportError::Tokenizer(format!("reading its JSON: {e}")))?;
        let mut with_special = inner.clone();
        with_special.set_encode_special_tokens(false);
        inner.set_encode_special_tokens(true);
        let template = ChatTemplate::from_gguf(Some(chat_template))?;
        let specials = inner.get_added_tokens_decoder();
        for s in [template.im_start, template.im_end] {
            if !specials.values().any(|t| t.special && t.content == s) {
                return Err(ImportError::Tokenizer(format!("the chat template's {s} is not a special token")));
            }
        }
        if eos as usize >= inner.get_vocab_size(true) {
            return Err(ImportError::Tokenizer(format!("end-of-sequence id {eos} is not a token id")));
        }
        Ok(Self { inner, with_special, template, eos })
    }

    /// The `tokenizers` JSON of this tokenizer (compact), from which [`Self::from_json`]
    /// rebuilds it.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        let s = self.inner.to_string(false).map_err(|e| ImportError::Tokenizer(format!("writing its JSON: {e}")))?;
        Ok(s.into_bytes())
    }

    /// Ids of the special (control) tokens, ascending.
    pub fn special_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> =
            self.inner.get_added_tokens_decoder().iter().filter(|(_, t)| t.special).map(|(&id, _)| id).collect();
        ids.sort_unstable();
        ids
    }

    /// Vocabulary size (added tokens included: they are tokens of the vocabulary).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// End-of-sequence id: generation stops there.
    pub fn eos(&self) -> u32 {
        self.eos
    }

    /// Token ids of `text`; special-token strings in `text` are ordinary text (so user text
    /// cannot inject `<|im_end|>`).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        encode_with(&self.inner, text)
    }

    /// Token ids of `text`, with special-token strings in `text` mapped to their ids.
    pub fn encode_with_special(&self, text: &str) -> Result<Vec<u32>> {
        encode_with(&self.with_special, text)
    }

    /// Text of `ids`; `skip_special` drops control tokens.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner.decode(ids, skip_special).map_err(|e| ImportError::Tokenizer(format!("decoding: {e}")))
    }

    /// Id of token `token` (its string in the GPT-2 byte alphabet, or a special token).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The chat template.
    pub fn chat_template(&self) -> &ChatTemplate {
        &self.template
    }

    /// The prompt of a one-turn chat: the template's text for one user message with the
    /// assistant's turn opened (see [`ChatTemplate::render`]), as token ids. The template's
    /// markers are special tokens; the user's text is encoded as ordinary text.
    pub fn chat_prompt(&self, user_text: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        for part in self.template.parts(user_text) {
            match part {
                ChatPart::Special(s) => ids.push(self.with_special.token_to_id(s).expect("checked in new")),
                ChatPart::Text(t) => ids.extend(self.encode(&t)?),
            }
        }
        Ok(ids)
    }

    /// The underlying `tokenizers` tokenizer (special-token strings in text are not matched).
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.inner
    }
}

/// The BPE model: token strings with their ids, merges in priority order.
fn bpe_model(vocab: &Vocab) -> Result<BPE> {
    let ids: BpeVocab = vocab.tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
    if ids.len() != vocab.tokens.len() {
        return Err(ImportError::Tokenizer("tokenizer.ggml.tokens holds the same token twice".into()));
    }
    let merges = vocab
        .merges
        .iter()
        .enumerate()
        .map(|(i, m)| match m.split_once(' ') {
            Some((l, r)) if !l.is_empty() && !r.is_empty() && !r.contains(' ') => Ok((l.to_owned(), r.to_owned())),
            _ => Err(ImportError::Tokenizer(format!("tokenizer.ggml.merges[{i}] = {m:?} is not \"left right\""))),
        })
        .collect::<Result<Merges>>()?;
    BPE::builder()
        .vocab_and_merges(ids, merges)
        .build()
        .map_err(|e| ImportError::Tokenizer(format!("building the BPE model: {e}")))
}

/// The tokens matched before BPE, with their ids: control tokens (special) and user-defined
/// ones (not special).
fn added_tokens(vocab: &Vocab) -> Result<Vec<(u32, AddedToken)>> {
    let mut added = Vec::new();
    for (i, (t, &ty)) in vocab.tokens.iter().zip(&vocab.token_types).enumerate() {
        match ty {
            TOKEN_NORMAL => {}
            TOKEN_CONTROL => added.push((i as u32, AddedToken::from(t.clone(), true))),
            TOKEN_USER_DEFINED => added.push((i as u32, AddedToken::from(t.clone(), false))),
            other => {
                return Err(ImportError::Tokenizer(format!(
                    "token {i} ({t:?}) has type {other}; only normal, control and user-defined tokens are imported"
                )))
            }
        }
    }
    Ok(added)
}

fn encode_with(t: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    let enc = t.encode(text, false).map_err(|e| ImportError::Tokenizer(format!("encoding: {e}")))?;
    Ok(enc.get_ids().to_vec())
}

fn pre_tokenizer(pre: &str) -> Result<PreTokenizerWrapper> {
    // ByteLevel(add_prefix_space = false, trim_offsets = true, use_regex = true): the GPT-2
    // regex, no space added in front of the text (`tokenizer.ggml.add_space_prefix` is false
    // for these models).
    let byte_level = ByteLevel::new(false, true, true);
    if PRE_DIGITS_THEN_GPT2.contains(&pre) {
        Ok(Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into())
    } else if PRE_GPT2.contains(&pre) {
        Ok(byte_level.into())
    } else {
        Err(ImportError::Unsupported {
            key: "tokenizer.ggml.pre".into(),
            reason: format!("{pre:?}: no pre-tokenizer matching llama.cpp's is known for it"),
        })
    }
}

/// SmolLM2's chat template (ChatML with a default system prompt), exactly as its GGUF holds it.
pub const SMOLLM2_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// SmolLM2's default system prompt, which its template inserts when the chat has none.
pub const SMOLLM2_SYSTEM: &str = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

/// ChatML, the chat format a GGUF's Jinja template renders. Templates are not interpreted
/// (no Jinja engine): a file's template must be one this crate knows, recognised by its exact
/// text, so the prompt built here is the one llama.cpp builds from the same file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTemplate {
    /// System prompt the template inserts when the chat does not start with one.
    pub default_system: Option<&'static str>,
    /// Turn start marker (a control token).
    pub im_start: &'static str,
    /// Turn end marker (a control token).
    pub im_end: &'static str,
}

/// A piece of a rendered prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatPart {
    /// A special token's string.
    Special(&'static str),
    /// Ordinary text.
    Text(String),
}

impl ChatTemplate {
    /// The template of a GGUF's `tokenizer.chat_template`; `None` (no template) or an unknown
    /// template is an error.
    pub fn from_gguf(template: Option<&str>) -> Result<Self> {
        match template {
            Some(SMOLLM2_TEMPLATE) => {
                Ok(Self { default_system: Some(SMOLLM2_SYSTEM), im_start: "<|im_start|>", im_end: "<|im_end|>" })
            }
            Some(_) => Err(ImportError::Unsupported {
                key: "tokenizer.chat_template".into(),
                reason: "not a chat template this import knows (SmolLM2's ChatML)".into(),
            }),
            None => Err(ImportError::MissingKey { key: "tokenizer.chat_template".into() }),
        }
    }

    /// One user turn and the assistant's turn opened, as the template renders
    /// `messages = [{role: user, content: user_text}]` with `add_generation_prompt`, in
    /// pieces: `<|im_start|>system\n{default system}<|im_end|>\n` (when the template has a
    /// default system prompt), `<|im_start|>user\n{user_text}<|im_end|>\n<|im_start|>assistant\n`.
    pub fn parts(&self, user_text: &str) -> Vec<ChatPart> {
        let mut out = Vec::new();
        let mut turn = |role: &str, content: &str| {
            out.push(ChatPart::Special(self.im_start));
            out.push(ChatPart::Text(format!("{role}\n{content}")));
            out.push(ChatPart::Special(self.im_end));
            out.push(ChatPart::Text("\n".into()));
        };
        if let Some(system) = self.default_system {
            turn("system", system);
        }
        turn("user", user_text);
        out.push(ChatPart::Special(self.im_start));
        out.push(ChatPart::Text("assistant\n".into()));
        out
    }

    /// The rendered prompt text of [`Self::parts`].
    pub fn render(&self, user_text: &str) -> String {
        self.parts(user_text)
            .into_iter()
            .map(|p| match p {
                ChatPart::Special(s) => s.to_string(),
                ChatPart::Text(t) => t,
            })
            .collect()
    }
}
