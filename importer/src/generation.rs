//! A whole greedy generation as one `dnn` graph (`docs/spec/llm-generation.md`), so that a
//! claim over a generation is committed, traced and disputed like any other model: one
//! decode step per position `0..max_prompt + max_new - 1`, each the graph of
//! [`crate::StepGraph`] with one token, chained by `token_select` (which token the step
//! reads: the prompt's while it lasts, then the previous step's argmax) and `token_emit`
//! (the step's argmax written into the generated tokens when it falls in the claimed
//! window). The KV cache grows by one `concat` node per layer and step, so attention reads
//! one cache tensor and a node never takes more than three inputs.
//!
//! The graph's two inputs are the prompt (i32 `[max_prompt]`, zero-padded) and the lengths
//! (i32 `[2]`: prompt tokens, tokens to generate); its output is the generated tokens
//! (i32 `[max_new]`, zero past the claimed count). Every step runs whatever the lengths
//! say, so the graph, its node count and its commitment are those of the limits alone.
//!
//! [`GenerationGraph::run_fast`] computes the same output the quick way (the prompt in
//! one batched forward, then only the claimed tokens): what a submitter posts and what a
//! watcher re-checks; the graph itself is run only in a dispute.

use std::sync::Arc;

use opml_dnn::ops::llm::token::{gen_len, prompt_len};
use opml_dnn::{DType, Model, Op, Tensor, TensorSpec};

use crate::bundle::Limits;
use crate::graph::{Builder, StepBuilder, StepSlots};
use crate::int_llama::{ForwardError, IntLlama};

/// Slot of the prompt input.
pub const PROMPT_SLOT: usize = 0;
/// Slot of the lengths input.
pub const LENGTHS_SLOT: usize = 1;
/// Number of graph inputs.
pub const INPUTS: usize = 2;

/// The nodes of one position's step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenStep {
    /// The step's position.
    pub pos: usize,
    /// Index of its first node (`token_select`) in the graph.
    pub first_node: usize,
    /// Number of its nodes (`token_select` .. `token_emit`).
    pub nodes: usize,
    /// Slot of the token it reads (`token_select`'s output, i32 `[1]`).
    pub token: usize,
    /// The step graph's slots (ids = `token`).
    pub slots: StepSlots,
    /// Slot of the generated tokens after the step (`token_emit`'s output).
    pub emit: usize,
}

/// A generation's graph and where each step lies in it.
#[derive(Debug)]
pub struct GenerationGraph {
    /// The validated model (shared with the game client's views).
    pub model: Arc<Model>,
    /// The limits it was built for.
    pub limits: Limits,
    /// One entry per position, in order.
    pub steps: Vec<GenStep>,
    vocab: usize,
}

impl GenerationGraph {
    /// The graph of a generation of `m` within `limits` (checked against the context).
    pub fn new(m: &IntLlama, limits: Limits) -> Result<Self, ForwardError> {
        let c = m.config();
        let (p, g) = (limits.max_prompt, limits.max_new);
        limits.check(c.context).map_err(|e| ForwardError::Step(e.to_string()))?;
        let vec_i32 = |n: usize| TensorSpec::new(DType::I32, vec![n]);
        let mut b = Builder::default();
        let prompt = b.input(vec_i32(p));
        let lengths = b.input(vec_i32(2));
        let mut steps = Vec::with_capacity(p + g - 1);
        let mut caches = vec![None; m.layers.len()];
        let (mut prev_next, mut gen): (Option<usize>, Option<usize>) = (None, None);
        for pos in 0..p + g - 1 {
            let first_node = b.node_count();
            let pre = format!("pos{pos}.");
            let select = Op::TokenSelect { pos, vocab: c.vocab };
            let token = b.node(format!("{pre}token"), select, [prompt, lengths].into_iter().chain(prev_next).collect());
            let slots = StepBuilder::new(m, &mut b, pre.clone(), 1, pos)?.build(token, &caches)?;
            caches = slots.layers.iter().map(|l| Some((l.keys, l.values))).collect();
            let emit = Op::TokenEmit { pos, max_prompt: p, max_new: g };
            let emit = b.node(format!("{pre}emit"), emit, gen.into_iter().chain([lengths, slots.next]).collect());
            prev_next = Some(slots.next);
            gen = Some(emit);
            steps.push(GenStep { pos, first_node, nodes: b.node_count() - first_node, token, slots, emit });
        }
        let model = b.finish(gen.expect("at least one step: max_prompt and max_new are >= 1"))?;
        Ok(Self { model: Arc::new(model), limits, steps, vocab: c.vocab })
    }

    /// The graph's inputs for `prompt` and `new` tokens to generate: the prompt
    /// zero-padded to `max_prompt`, and the lengths. Refuses an empty or too long prompt,
    /// an id outside the vocabulary and a count outside `1..=max_new`.
    pub fn inputs(&self, prompt: &[u32], new: usize) -> Result<Vec<Tensor>, ForwardError> {
        let Limits { max_prompt, max_new } = self.limits;
        if prompt.is_empty() || prompt.len() > max_prompt {
            return Err(ForwardError::Step(format!(
                "a prompt of {} tokens, the limit is 1..={max_prompt}",
                prompt.len()
            )));
        }
        if new == 0 || new > max_new {
            return Err(ForwardError::Step(format!("{new} tokens to generate, the limit is 1..={max_new}")));
        }
        if let Some(&id) = prompt.iter().find(|&&t| t as usize >= self.vocab) {
            return Err(ForwardError::Token { id, vocab: self.vocab });
        }
        let mut ids = vec![0i32; max_prompt];
        ids.iter_mut().zip(prompt).for_each(|(o, &t)| *o = t as i32);
        let t = |shape, v| Tensor::from_i32(shape, v).map_err(ForwardError::Graph);
        Ok(vec![t(vec![max_prompt], ids)?, t(vec![2], vec![prompt.len() as i32, new as i32])?])
    }

    /// What the graph reads from any inputs of its specs: the prompt it uses (the first
    /// `clamp(lengths[0], 1, max_prompt)` ids, each outside the vocabulary read as 0) and
    /// the number of tokens it emits (`clamp(lengths[1], 0, max_new)`).
    pub fn effective(&self, inputs: &[Tensor]) -> Result<(Vec<u32>, usize), ForwardError> {
        let Limits { max_prompt, max_new } = self.limits;
        let want = |i: usize, n: usize| {
            inputs.get(i).and_then(Tensor::as_i32).filter(|v| v.len() == n).ok_or_else(|| {
                ForwardError::Step(format!("input {i} must be i32 [{n}] (prompt [{max_prompt}], lengths [2])"))
            })
        };
        let (prompt, lengths) = (want(PROMPT_SLOT, max_prompt)?, want(LENGTHS_SLOT, 2)?);
        let n = prompt_len(lengths, max_prompt);
        let ids = prompt[..n].iter().map(|&t| if t >= 0 && (t as usize) < self.vocab { t as u32 } else { 0 }).collect();
        Ok((ids, gen_len(lengths, max_new)))
    }

    /// The graph's output computed the quick way: the effective prompt in one batched
    /// forward of `m`, then one decode step per further token, only as many as claimed,
    /// zero-padded to `max_new`. Equal to running the graph (`dnn::exec::run`), bit for
    /// bit, for any inputs; `m` must be the model the graph was built from.
    pub fn run_fast(&self, m: &IntLlama, inputs: &[Tensor]) -> Result<Tensor, ForwardError> {
        let (prompt, new) = self.effective(inputs)?;
        let generated = m.generate_greedy(&prompt, new, &[], |_| {})?;
        let mut out = vec![0i32; self.limits.max_new];
        out.iter_mut().zip(&generated.tokens).for_each(|(o, &t)| *o = t as i32);
        Tensor::from_i32(vec![self.limits.max_new], out).map_err(ForwardError::Graph)
    }

    /// The step that holds node `node`, and the node's index within it.
    pub fn locate(&self, node: usize) -> Option<(&GenStep, usize)> {
        let i = self.steps.partition_point(|s| s.first_node + s.nodes <= node);
        self.steps.get(i).filter(|s| node >= s.first_node).map(|s| (s, node - s.first_node))
    }

    /// The position whose step emits generated token `j` of a claim with a prompt of
    /// `prompt_len` tokens (`prompt_len - 1 + j`).
    pub fn position_of_token(&self, prompt_len: usize, j: usize) -> usize {
        prompt_len.max(1) - 1 + j
    }

    /// Index of the node named `name` (e.g. `pos12.blk.3.ffn_up`).
    pub fn node_named(&self, name: &str) -> Option<usize> {
        let pos: usize = name.strip_prefix("pos")?.split('.').next()?.parse().ok()?;
        let s = self.steps.get(pos)?;
        let nodes = &self.model.graph().nodes[s.first_node..s.first_node + s.nodes];
        nodes.iter().position(|n| n.name == name).map(|i| s.first_node + i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::random_weights;
    use crate::LlamaConfig;

    fn tiny() -> IntLlama {
        let c = LlamaConfig::tiny();
        let w = random_weights(&c, 7, false).unwrap();
        IntLlama::from_weights(&c, &w, Default::default()).unwrap()
    }

    #[test]
    fn steps_tile_the_graph_and_names_resolve() {
        let m = tiny();
        let g = GenerationGraph::new(&m, Limits { max_prompt: 3, max_new: 2 }).unwrap();
        assert_eq!(g.steps.len(), 4);
        let n = g.model.graph().nodes.len();
        assert_eq!(g.steps.iter().map(|s| s.nodes).sum::<usize>(), n);
        for j in 0..n {
            let (s, k) = g.locate(j).unwrap();
            assert!(s.first_node + k == j && k < s.nodes);
            let name = &g.model.graph().nodes[j].name;
            assert!(name.starts_with(&format!("pos{}.", s.pos)), "{name}");
            assert_eq!(g.node_named(name), Some(j));
        }
        assert!(g.locate(n).is_none());
        assert_eq!(g.node_named("pos9.argmax"), None);
        assert_eq!(g.model.graph().output, g.steps[3].emit);
    }
}
