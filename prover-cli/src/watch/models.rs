//! The model store (`--models DIR`): a folder of bundles (graph bundles `*.opml`, LLM
//! bundles `*.opmlllm`), found by their on-chain model id (the registry's id of the
//! model's commitment and shape; an LLM bundle's is its generation graph's).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use alloy::primitives::B256;
use anyhow::{Context, Result};

use crate::claim_model::ClaimModel;

/// One model of the store.
pub type StoredModel = ClaimModel;

/// Models by model id.
#[derive(Debug, Default)]
pub struct ModelStore {
    by_id: HashMap<B256, Arc<StoredModel>>,
}

/// Whether `p` looks like a bundle file (`*.opml` or `*.opmlllm`).
fn is_bundle(p: &Path) -> bool {
    p.is_file() && p.extension().is_some_and(|e| e == "opml" || e == "opmlllm")
}

impl ModelStore {
    /// Every `*.opml` and `*.opmlllm` bundle of `dir` (a missing folder is an empty store; an unreadable
    /// or invalid bundle is an error naming it).
    pub fn load(dir: &Path) -> Result<Self> {
        let mut store = ModelStore::default();
        if !dir.exists() {
            return Ok(store);
        }
        let entries = std::fs::read_dir(dir).with_context(|| format!("reading the model store {}", dir.display()))?;
        let mut paths: Vec<PathBuf> =
            entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| is_bundle(p)).collect();
        paths.sort();
        for p in paths {
            store.add(&p)?;
        }
        Ok(store)
    }

    /// Add the bundle at `path`; its model id.
    pub fn add(&mut self, path: &Path) -> Result<B256> {
        self.insert(ClaimModel::load(path)?)
    }

    /// Add a loaded model; its model id.
    pub fn insert(&mut self, m: ClaimModel) -> Result<B256> {
        self.insert_shared(Arc::new(m))
    }

    /// Add a loaded model shared with others (the demo's watchers share one, an LLM's
    /// generation graph takes seconds to build); its model id.
    pub fn insert_shared(&mut self, m: Arc<ClaimModel>) -> Result<B256> {
        let (_, id) = m.registration("");
        self.by_id.insert(id, m);
        Ok(id)
    }

    /// The bundle of model `id`.
    pub fn get(&self, id: &B256) -> Option<Arc<StoredModel>> {
        self.by_id.get(id).cloned()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// (model id, path) of every model, sorted by path.
    pub fn list(&self) -> Vec<(B256, PathBuf)> {
        let mut v: Vec<(B256, PathBuf)> = self.by_id.iter().map(|(id, m)| (*id, m.path.clone())).collect();
        v.sort_by(|a, b| a.1.cmp(&b.1));
        v
    }
}
