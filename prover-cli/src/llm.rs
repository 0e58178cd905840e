//! Language models for the CLI: import a GGUF into an LLM bundle, or read one, telling the
//! two apart by their magic (`docs/spec/llm-bundle.md`).

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use opml_importer::bundle::sha256_file;
use opml_importer::{IntFormat, Limits, LlamaGguf, LlmBundle, Source};

/// Import `path` (a GGUF) into a bundle in memory: weights converted, everything committed.
pub fn import_gguf(path: &Path, limits: Limits) -> Result<LlmBundle> {
    let name = path.display();
    let sha256 = sha256_file(path).with_context(|| format!("reading {name}"))?;
    let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let mut gguf = LlamaGguf::open(path).with_context(|| format!("importing {name}"))?;
    LlmBundle::from_gguf(&mut gguf, Source { file, sha256 }, limits, IntFormat::default())
        .with_context(|| format!("importing {name}"))
}

/// Whether `path` starts with the LLM bundle magic.
pub fn is_bundle(path: &Path) -> Result<bool> {
    let mut head = [0u8; 8];
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let n = f.read(&mut head).with_context(|| format!("reading {}", path.display()))?;
    Ok(LlmBundle::is_bundle(&head[..n]))
}

/// A bundle from `path`: read and checked if it is one, imported (default limits) if it is
/// a GGUF. The flag says which.
pub fn load(path: &Path) -> Result<(LlmBundle, bool)> {
    if is_bundle(path)? {
        let b = LlmBundle::read(path).with_context(|| format!("reading the LLM bundle {}", path.display()))?;
        Ok((b, true))
    } else {
        Ok((import_gguf(path, Limits::default())?, false))
    }
}
