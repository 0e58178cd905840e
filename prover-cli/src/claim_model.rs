//! The models a claim can be about, read from one file by its magic: a graph bundle
//! (`.opml`, `docs/spec/commitments.md`: one graph, its recorded node images) or an LLM
//! bundle (`docs/spec/llm-bundle.md`), whose claims are over a whole greedy generation:
//! its graph is the generation graph of the bundle's limits
//! (`docs/spec/llm-generation.md`), bound to this build's kernels when loaded.
//!
//! Everything the chain commands, the watcher and the demo do with a model goes through
//! [`ClaimModel`]: the graph and its commitment, the registration, the quick honest output
//! of a claim's inputs, node names, and the deliberate faults of tests and demos resolved
//! against a claim (`token:T` is a position that depends on the claim's prompt length).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use alloy::primitives::B256;
use anyhow::{anyhow, bail, Context, Result};
use opml_cli::game::abi::{model_id, IModelRegistry};
use opml_cli::game::Fault;
use opml_compiler::binding::node_images;
use opml_dnn::bundle::Bundle;
use opml_dnn::commit::{model_commitment, slot_vector_len, NodeImage};
use opml_dnn::exec::run;
use opml_dnn::{Model, Tensor};
use opml_importer::{GenerationGraph, IntLlama, LlamaTokenizer, LlmBundle};
use opml_merkle::Hash;

use crate::files::load_bundle;

/// An LLM bundle's generation: the integer model, its generation graph and tokenizer.
pub struct LlmClaims {
    /// The integer model (the quick honest path).
    pub llama: IntLlama,
    /// The generation graph of the bundle's limits.
    pub graph: GenerationGraph,
    /// The bundle's tokenizer.
    pub tokenizer: LlamaTokenizer,
    /// The bundle's own model commitment (`docs/spec/llm-bundle.md`).
    pub bundle_commitment: Hash,
}

impl std::fmt::Debug for LlmClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmClaims").field("limits", &self.graph.limits).finish_non_exhaustive()
    }
}

/// What kind of model.
#[derive(Debug)]
pub enum Kind {
    /// A graph bundle.
    Graph(Box<Bundle>),
    /// An LLM bundle's generations.
    Llm(Box<LlmClaims>),
}

/// A model claims can be about.
#[derive(Debug)]
pub struct ClaimModel {
    /// The file it was read from.
    pub path: PathBuf,
    /// Graph bundle or LLM.
    pub kind: Kind,
    model: Arc<Model>,
    root: Hash,
    images: Arc<Vec<NodeImage>>,
}

/// Whether the file at `path` is an LLM bundle (by its magic).
pub fn is_llm_bundle(path: &Path) -> Result<bool> {
    has_magic(path, b"OPMLLLM\0")
}

/// Whether the file at `path` starts with `magic`.
fn has_magic(path: &Path, magic: &[u8]) -> Result<bool> {
    use std::io::Read;
    let mut head = vec![0u8; magic.len()];
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let n = f.read(&mut head).with_context(|| format!("reading {}", path.display()))?;
    Ok(n == magic.len() && head == magic)
}

impl ClaimModel {
    /// Read a graph bundle or an LLM bundle, told apart by their magic; an LLM bundle's
    /// generation graph is built and bound to this build's kernels (seconds for SmolLM2).
    pub fn load(path: &Path) -> Result<Self> {
        if !is_llm_bundle(path)? {
            return Self::from_bundle(path.to_path_buf(), load_bundle(path)?);
        }
        let b = LlmBundle::read(path).with_context(|| format!("reading the LLM bundle {}", path.display()))?;
        Self::from_llm(path.to_path_buf(), b).with_context(|| format!("loading {}", path.display()))
    }

    /// A loaded graph bundle.
    pub fn from_bundle(path: PathBuf, b: Bundle) -> Result<Self> {
        let root = b.model_root().with_context(|| format!("loading bundle {}", path.display()))?;
        let (model, images) = (Arc::new(b.model.clone()), Arc::new(b.node_images().to_vec()));
        Ok(Self { path, kind: Kind::Graph(Box::new(b)), model, root, images })
    }

    /// A loaded LLM bundle: its generation graph over the bundle's limits.
    pub fn from_llm(path: PathBuf, b: LlmBundle) -> Result<Self> {
        let (tokenizer, limits, bundle_commitment) = (b.tokenizer()?, b.limits(), b.model_commitment());
        let llama = b.into_model()?;
        let graph = GenerationGraph::new(&llama, limits)?;
        let model = graph.model.clone();
        let images = node_images(&model).context("binding the generation graph to the VM kernels")?;
        let root = model_commitment(&model, &images);
        let llm = LlmClaims { llama, graph, tokenizer, bundle_commitment };
        Ok(Self { path, kind: Kind::Llm(Box::new(llm)), model, root, images: Arc::new(images) })
    }

    /// The graph claims are about.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Its commitment (the registry's root).
    pub fn root(&self) -> Hash {
        self.root
    }

    /// Each node's VM image binding (what the handover's descriptors name).
    pub fn images(&self) -> &Arc<Vec<NodeImage>> {
        &self.images
    }

    /// The LLM part, when this is an LLM bundle.
    pub fn llm(&self) -> Option<&LlmClaims> {
        match &self.kind {
            Kind::Llm(l) => Some(l),
            Kind::Graph(_) => None,
        }
    }

    /// The graph bundle, when this is one.
    pub fn bundle(&self) -> Option<&Bundle> {
        match &self.kind {
            Kind::Graph(b) => Some(b),
            Kind::Llm(_) => None,
        }
    }

    /// `register` (with `uri`) and the model id it gives.
    pub fn registration(&self, uri: &str) -> (IModelRegistry::registerCall, B256) {
        registration_of(&self.model, self.root, uri)
    }

    /// The honest output of `inputs`, the quick way (an LLM: the prompt batched, then
    /// only the claimed tokens); equal to the graph's output.
    pub fn output(&self, inputs: &[Tensor]) -> Result<Tensor> {
        match &self.kind {
            Kind::Graph(_) => Ok(run(&self.model, inputs)?),
            Kind::Llm(l) => Ok(l.graph.run_fast(&l.llama, inputs)?),
        }
    }

    /// `node j (name)`; an LLM step's node names start with its position (`pos<P>.`).
    pub fn node_label(&self, j: usize) -> String {
        let name = self.model.graph().nodes.get(j).map_or("?", |n| n.name.as_str());
        format!("node {j} ({name})")
    }

    /// A fault of a test or demo made concrete for a claim over `inputs`: `token:T` is the
    /// argmax node of the step that emits generated token T, a node named is its index.
    /// Other faults are returned as they are.
    pub fn resolve(&self, fault: &Fault, inputs: &[Tensor]) -> Result<Fault> {
        let by_name = |name: &str| {
            self.model.graph().nodes.iter().position(|n| n.name == name).ok_or_else(|| {
                anyhow!("--dishonest {fault}: the model has no node named {name:?} (a graph bundle's names: `opml model inspect`; an LLM generation's: `pos<P>.` + a step node of docs/spec/llm-graph.md §3, e.g. `pos9.blk.15.ffn_up`)")
            })
        };
        Ok(match fault {
            Fault::Token(t) => {
                let Some(l) = self.llm() else {
                    bail!("--dishonest {fault}: token:T applies to an LLM bundle's generations only");
                };
                let (prompt, new) = l.graph.effective(inputs)?;
                if *t >= new {
                    bail!(
                        "--dishonest {fault}: the claim generates {new} tokens, so T is one of 0..={}",
                        new.saturating_sub(1)
                    );
                }
                let pos = l.graph.position_of_token(prompt.len(), *t);
                Fault::Node(l.graph.steps[pos].slots.next - opml_importer::generation::INPUTS)
            }
            Fault::NamedNode { name, step: None } => Fault::Node(by_name(name)?),
            Fault::NamedNode { name, step: Some(s) } => Fault::Step { node: by_name(name)?, step: *s },
            other => other.clone(),
        })
    }
}

/// `register` of `model` under commitment `root` (with `uri`) and the model id it gives.
pub fn registration_of(model: &Model, root: Hash, uri: &str) -> (IModelRegistry::registerCall, B256) {
    let gr = model.graph();
    let n = gr.nodes.len() as u32;
    let input_lens: Vec<u32> = gr.inputs.iter().map(|s| s.byte_len() as u32).collect();
    let (slots, out_slot) = (slot_vector_len(model) as u32, gr.output as u32);
    let out_len = model.specs()[gr.output].byte_len() as u32;
    let id = model_id(B256::from(root), n, &input_lens, slots, out_slot, out_len);
    let register = IModelRegistry::registerCall {
        root: root.into(),
        nodeCount: n,
        inputLens: input_lens,
        slotCount: slots,
        outputSlot: out_slot,
        outputLen: out_len,
        uri: uri.to_string(),
    };
    (register, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The digits MLP graph bundle of the fixtures, and one of its input samples.
    fn mlp() -> (ClaimModel, Vec<Tensor>) {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/digits/mlp.opml");
        let m = ClaimModel::load(&path).unwrap();
        let spec = &m.model().graph().inputs[0];
        let x = Tensor::from_le_bytes(spec.dtype, spec.shape.clone(), &vec![0u8; spec.byte_len()]).unwrap();
        (m, vec![x])
    }

    #[test]
    fn a_graph_bundle_resolves_nodes_by_name_and_refuses_tokens() {
        let (m, x) = mlp();
        assert!(m.llm().is_none() && m.bundle().is_some());
        let names: Vec<String> = m.model().graph().nodes.iter().map(|n| n.name.clone()).collect();
        assert!(names.len() > 2, "{names:?}");
        for (j, name) in names.iter().enumerate() {
            let node = Fault::NamedNode { name: name.clone(), step: None };
            assert_eq!(m.resolve(&node, &x).unwrap(), Fault::Node(j), "{name}");
            let step = Fault::NamedNode { name: name.clone(), step: Some(7) };
            assert_eq!(m.resolve(&step, &x).unwrap(), Fault::Step { node: j, step: 7 }, "{name}");
            assert_eq!(m.node_label(j), format!("node {j} ({name})"));
        }
        let e = m.resolve(&Fault::NamedNode { name: "no.such".into(), step: None }, &x).unwrap_err().to_string();
        assert!(e.contains("--dishonest node:no.such: the model has no node named \"no.such\""), "{e}");
        let e = m.resolve(&Fault::Token(1), &x).unwrap_err().to_string();
        assert_eq!(e, "--dishonest token:1: token:T applies to an LLM bundle's generations only");
        // Faults by index are the model's own already.
        for f in [Fault::Output, Fault::Node(1), Fault::Step { node: 1, step: 3 }, Fault::ChallengeAll] {
            assert_eq!(m.resolve(&f, &x).unwrap(), f);
        }
    }
}
