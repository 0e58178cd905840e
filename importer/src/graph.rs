//! One forward step of the integer Llama ([`IntLlama`]) as a `dnn` graph: `seq` new
//! tokens at positions `pos0..pos0 + seq` over a KV cache of `pos0` positions, built from
//! the op variants of `docs/spec/ops.md` §5 and the existing `add`, `reshape`, `concat` and
//! `argmax`. Run by `dnn::exec` it gives exactly [`IntLlama::forward`]'s logits and cache
//! (every node is the op `forward` calls, with the same operands and parameters); as a
//! graph it can be committed, traced and disputed node by node.
//!
//! The graph's output is the argmax of the logits (the next token is its last element),
//! but a graph state commits every slot, so the logits and each layer's keys and values
//! are reachable too: [`StepSlots`] says which slot holds what.
//!
//! Specification: `docs/spec/llm-graph.md`.

use opml_dnn::graph::ConstId;
use opml_dnn::ops::llm::blockq::bytes_as_i8;
use opml_dnn::ops::llm::qlinear::ActBits;
use opml_dnn::{ConstSpec, DType, Graph, Model, Node, Op, Tensor, TensorSpec};

use crate::int_llama::{ForwardError, IntLayer, IntLlama, IntMatrix, IntNorm, KvCache};

/// Where each tensor of a step lives among the graph's slots (inputs first, then one slot
/// per node in order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepSlots {
    /// Input: token ids, i32 `[seq]`.
    pub ids: usize,
    /// Per layer, in order.
    pub layers: Vec<LayerSlots>,
    /// The residual stream after the last layer, i32 `[seq, hidden]`.
    pub hidden: usize,
    /// Logits, i32 `[seq, vocab]` with the stream's fraction bits.
    pub logits: usize,
    /// Argmax of every row of the logits, i32 `[seq]` (the graph's output; the next token
    /// is the last element).
    pub next: usize,
}

/// The slots of one layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerSlots {
    /// Input: the cached keys, i32 `[pos0, kv_heads, head_dim]` (`None` when `pos0 = 0`).
    pub cached_keys: Option<usize>,
    /// Input: the cached values, as `cached_keys`.
    pub cached_values: Option<usize>,
    /// The new positions' keys after RoPE, i32 `[seq, kv_heads, head_dim]`.
    pub new_keys: usize,
    /// The new positions' values, i32 `[seq, kv_heads, head_dim]`.
    pub new_values: usize,
    /// Every position's keys, i32 `[pos0 + seq, kv_heads, head_dim]`: the cache the next
    /// step reads (the `concat` of cached and new keys; `new_keys` when `pos0 = 0`).
    pub keys: usize,
    /// Every position's values, as `keys`.
    pub values: usize,
    /// The residual stream after the layer, i32 `[seq, hidden]`.
    pub out: usize,
}

/// A step's graph with its constants, and the map of its slots.
#[derive(Debug)]
pub struct StepGraph {
    /// The validated model.
    pub model: Model,
    /// Which slot holds what.
    pub slots: StepSlots,
    /// New tokens.
    pub seq: usize,
    /// Positions in the cache before the step (the first new token's position).
    pub pos0: usize,
    /// Key/value heads and head width (a cache row is `[kv_heads, head_dim]`).
    kv: [usize; 2],
    vocab: usize,
}

impl StepGraph {
    /// The graph of `seq` new tokens at positions `pos0..pos0 + seq` of `m`.
    pub fn new(m: &IntLlama, seq: usize, pos0: usize) -> Result<Self, ForwardError> {
        let c = m.config();
        let end = pos0.checked_add(seq).filter(|&e| e <= c.context);
        if seq == 0 || end.is_none() {
            return Err(ForwardError::Context { want: pos0.saturating_add(seq.max(1)), context: c.context });
        }
        let mut b = Builder::default();
        let kv = [pos0, c.kv_heads, c.head_dim];
        let ids = b.input(TensorSpec::new(DType::I32, vec![seq]));
        let caches: Vec<Option<(usize, usize)>> = (0..m.layers.len())
            .map(|_| {
                (pos0 > 0).then(|| {
                    let spec = TensorSpec::new(DType::I32, kv.to_vec());
                    (b.input(spec.clone()), b.input(spec))
                })
            })
            .collect();
        let slots = StepBuilder::new(m, &mut b, String::new(), seq, pos0)?.build(ids, &caches)?;
        let model = b.finish(slots.next)?;
        Ok(Self { model, slots, seq, pos0, kv: [c.kv_heads, c.head_dim], vocab: c.vocab })
    }

    /// The graph's inputs for `tokens` over `cache`: ids, then each layer's cached keys
    /// and values (when `pos0 > 0`). The tokens must number `seq`, the cache hold `pos0`
    /// positions of every layer, and every id be in the vocabulary.
    pub fn inputs(&self, tokens: &[u32], cache: &KvCache) -> Result<Vec<Tensor>, ForwardError> {
        if tokens.len() != self.seq || cache.len() != self.pos0 {
            return Err(ForwardError::Step(format!(
                "the graph takes {} tokens over a cache of {}, got {} over {}",
                self.seq,
                self.pos0,
                tokens.len(),
                cache.len()
            )));
        }
        if let Some(&id) = tokens.iter().find(|&&t| t as usize >= self.vocab) {
            return Err(ForwardError::Token { id, vocab: self.vocab });
        }
        let ids = tokens.iter().map(|&t| t as i32).collect();
        let mut out = vec![tensor(vec![self.seq], ids)?];
        for (i, l) in self.slots.layers.iter().enumerate() {
            if l.cached_keys.is_some() {
                let shape = vec![self.pos0, self.kv[0], self.kv[1]];
                let (k, v) = (cache.keys(i), cache.values(i));
                if k.len() != self.pos0 * self.kv[0] * self.kv[1] || v.len() != k.len() {
                    return Err(ForwardError::Step(format!("layer {i}'s cache does not hold {} positions", self.pos0)));
                }
                out.push(tensor(shape.clone(), k.to_vec())?);
                out.push(tensor(shape, v.to_vec())?);
            }
        }
        Ok(out)
    }

    /// The cache after the step, read from the slots of a run (`dnn::exec::run_all`):
    /// every layer's `keys` and `values`.
    pub fn cache_after(&self, slots: &[Tensor]) -> Result<KvCache, ForwardError> {
        let read = |s: usize| {
            slots
                .get(s)
                .and_then(Tensor::as_i32)
                .map(<[i32]>::to_vec)
                .ok_or_else(|| ForwardError::Step(format!("slot {s} is not an i32 tensor of this graph's run")))
        };
        let mut cache = KvCache::new();
        for l in &self.slots.layers {
            cache.k.push(read(l.keys)?);
            cache.v.push(read(l.values)?);
        }
        cache.len = self.pos0 + self.seq;
        Ok(cache)
    }
}

fn tensor(shape: Vec<usize>, v: Vec<i32>) -> Result<Tensor, ForwardError> {
    Tensor::from_i32(shape, v).map_err(ForwardError::Graph)
}

/// Inputs, constants and nodes as they are added; slots are numbered inputs first. A
/// constant is added once per name: the steps of a generation share every weight.
#[derive(Default)]
pub(crate) struct Builder {
    inputs: Vec<TensorSpec>,
    consts: Vec<ConstSpec>,
    weights: Vec<Tensor>,
    by_name: std::collections::HashMap<String, ConstId>,
    nodes: Vec<Node>,
}

impl Builder {
    /// A graph input (all of them come before the first node).
    pub(crate) fn input(&mut self, spec: TensorSpec) -> usize {
        debug_assert!(self.nodes.is_empty(), "inputs come first");
        self.inputs.push(spec);
        self.inputs.len() - 1
    }

    /// The constant `name`, made by `make` the first time it is asked for.
    fn constant(
        &mut self,
        name: String,
        make: impl FnOnce() -> Result<Tensor, opml_dnn::DnnError>,
    ) -> Result<ConstId, ForwardError> {
        if let Some(&id) = self.by_name.get(&name) {
            return Ok(id);
        }
        let t = make().map_err(ForwardError::Graph)?;
        self.consts.push(ConstSpec { name: name.clone(), spec: t.spec() });
        self.weights.push(t);
        self.by_name.insert(name, self.weights.len() - 1);
        Ok(self.weights.len() - 1)
    }

    /// Add a node; its slot.
    pub(crate) fn node(&mut self, name: impl Into<String>, op: Op, inputs: Vec<usize>) -> usize {
        self.nodes.push(Node { name: name.into(), inputs, op });
        self.inputs.len() + self.nodes.len() - 1
    }

    /// Number of nodes so far.
    pub(crate) fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub(crate) fn finish(self, output: usize) -> Result<Model, ForwardError> {
        let graph = Graph { inputs: self.inputs, consts: self.consts, nodes: self.nodes, output };
        Model::new(graph, self.weights).map_err(ForwardError::Graph)
    }
}

/// The node list of one step (`docs/spec/llm-graph.md` §3).
pub(crate) struct StepBuilder<'a> {
    m: &'a IntLlama,
    b: &'a mut Builder,
    /// Prepended to every node name (a generation's `pos<N>.`).
    prefix: String,
    seq: usize,
    pos0: usize,
    frac: u32,
    act: ActBits,
    rope: (ConstId, ConstId),
}

impl<'a> StepBuilder<'a> {
    pub(crate) fn new(
        m: &'a IntLlama,
        b: &'a mut Builder,
        prefix: String,
        seq: usize,
        pos0: usize,
    ) -> Result<Self, ForwardError> {
        let c = m.config();
        let table = vec![c.context, c.head_dim / 2];
        let cos = b.constant("rope.cos".into(), || Tensor::from_i32(table.clone(), m.cos.clone()))?;
        let sin = b.constant("rope.sin".into(), || Tensor::from_i32(table, m.sin.clone()))?;
        let f = m.format();
        Ok(Self { m, b, prefix, seq, pos0, frac: f.frac_bits, act: f.act, rope: (cos, sin) })
    }

    /// Every node, in order; their slots.
    pub(crate) fn build(mut self, ids: usize, caches: &[Option<(usize, usize)>]) -> Result<StepSlots, ForwardError> {
        let (m, f) = (self.m, self.frac);
        let (vocab, hidden) = (m.config().vocab, m.config().hidden);
        let qs = self.b.constant("token_embd.qs".into(), || Tensor::from_i8(vec![vocab, hidden], m.embd.qs.clone()))?;
        let d =
            self.b.constant("token_embd.d".into(), || Tensor::from_i32(vec![vocab, hidden / 32], m.embd.d.clone()))?;
        let p = self.prefix.clone();
        let mut x = self.b.node(format!("{p}token_embd"), Op::EmbedQ8_0 { qs, d, exp: m.embd.exp, frac: f }, vec![ids]);
        let mut layers = Vec::with_capacity(m.layers.len());
        for (i, (l, cache)) in m.layers.iter().zip(caches).enumerate() {
            let ls = self.layer(i, l, x, *cache)?;
            x = ls.out;
            layers.push(ls);
        }
        let hidden = x;
        let h = self.norm("output_norm", &m.output_norm, x)?;
        let out = match &m.output {
            Some(w) => self.linear("output", w, h)?,
            // Tied: the embedding's own constants, read as a Q8_0 linear.
            None => {
                self.b.node(format!("{p}output"), Op::LinearQ8_0 { qs, d, exp: m.embd.exp, act: self.act }, vec![h])
            }
        };
        let next = self.b.node(format!("{p}argmax"), Op::ArgMax, vec![out]);
        Ok(StepSlots { ids, layers, hidden, logits: out, next })
    }

    fn layer(
        &mut self,
        i: usize,
        l: &IntLayer,
        x: usize,
        cache: Option<(usize, usize)>,
    ) -> Result<LayerSlots, ForwardError> {
        let c = self.m.config();
        // `n`: a node's name without the prefix (norms and linears name their constants
        // by it); `pn`: with the prefix.
        let p = self.prefix.clone();
        let n = |s: &str| format!("blk.{i}.{s}");
        let pn = |s: &str| format!("{p}blk.{i}.{s}");
        let (seq, hd, f) = (self.seq, c.head_dim, self.frac);
        let heads = |h: usize| Op::Reshape { shape: vec![seq, h, hd] };
        let rope = Op::Rope { cos: self.rope.0, sin: self.rope.1, pos0: self.pos0 };

        let h = self.norm(&n("attn_norm"), &l.attn_norm, x)?;
        let q = self.linear(&n("attn_q"), &l.q, h)?;
        let q = self.b.node(pn("attn_q.heads"), heads(c.heads), vec![q]);
        let q = self.b.node(pn("attn_q.rope"), rope.clone(), vec![q]);
        let k = self.linear(&n("attn_k"), &l.k, h)?;
        let k = self.b.node(pn("attn_k.heads"), heads(c.kv_heads), vec![k]);
        let new_keys = self.b.node(pn("attn_k.rope"), rope, vec![k]);
        let v = self.linear(&n("attn_v"), &l.v, h)?;
        let new_values = self.b.node(pn("attn_v.heads"), heads(c.kv_heads), vec![v]);
        let (keys, values) = match cache {
            Some((ck, cv)) => (
                self.b.node(pn("cache_k"), Op::Concat { axis: 0 }, vec![ck, new_keys]),
                self.b.node(pn("cache_v"), Op::Concat { axis: 0 }, vec![cv, new_values]),
            ),
            None => (new_keys, new_values),
        };
        let a = self.b.node(pn("attention"), Op::Attention { pos0: self.pos0, frac: f }, vec![q, keys, values]);
        let a = self.b.node(pn("attention.rows"), Op::Reshape { shape: vec![seq, c.heads * hd] }, vec![a]);
        let o = self.linear(&n("attn_output"), &l.o, a)?;
        let x = self.b.node(pn("attn_residual"), Op::Add, vec![x, o]);

        let h = self.norm(&n("ffn_norm"), &l.ffn_norm, x)?;
        let g = self.linear(&n("ffn_gate"), &l.gate, h)?;
        let u = self.linear(&n("ffn_up"), &l.up, h)?;
        let s = self.b.node(pn("swiglu"), Op::SwiGlu { frac: f }, vec![g, u]);
        let d = self.linear(&n("ffn_down"), &l.down, s)?;
        let out = self.b.node(pn("ffn_residual"), Op::Add, vec![x, d]);
        Ok(LayerSlots {
            cached_keys: cache.map(|c| c.0),
            cached_values: cache.map(|c| c.1),
            new_keys,
            new_values,
            keys,
            values,
            out,
        })
    }

    /// `rmsnorm_wide` with the norm's gain as a constant `<name>.gamma`.
    /// `name` is the node's name without the prefix (the constant's name).
    fn norm(&mut self, name: &str, w: &IntNorm, x: usize) -> Result<usize, ForwardError> {
        let gamma =
            self.b.constant(format!("{name}.gamma"), || Tensor::from_i32(vec![w.gamma.len()], w.gamma.clone()))?;
        let op = Op::RmsNormWide { gamma, gamma_exp: w.exp, eps: self.m.eps, frac: self.frac, out_frac: self.frac };
        Ok(self.b.node(format!("{}{name}", self.prefix), op, vec![x]))
    }

    /// A block linear with its arrays as constants `<name>.qs`, `<name>.d` (and `<name>.m`);
    /// `name` is the node's name without the prefix.
    fn linear(&mut self, name: &str, w: &IntMatrix, x: usize) -> Result<usize, ForwardError> {
        let act = self.act;
        let c = |s: &str| format!("{name}.{s}");
        let op = match w {
            IntMatrix::Q4_1 { w, n, k } => {
                let qs = self.b.constant(c("qs"), || Tensor::from_i8(vec![*n, k / 2], bytes_as_i8(&w.qs).to_vec()))?;
                let d = self.b.constant(c("d"), || Tensor::from_i32(vec![*n, k / 32], w.d.clone()))?;
                let m = self.b.constant(c("m"), || Tensor::from_i32(vec![*n, k / 32], w.m.clone()))?;
                Op::LinearQ4_1 { qs, d, m, exp: w.exp, act }
            }
            IntMatrix::Q8_0 { w, n, k } => {
                let qs = self.b.constant(c("qs"), || Tensor::from_i8(vec![*n, *k], w.qs.clone()))?;
                let d = self.b.constant(c("d"), || Tensor::from_i32(vec![*n, k / 32], w.d.clone()))?;
                Op::LinearQ8_0 { qs, d, exp: w.exp, act }
            }
        };
        Ok(self.b.node(format!("{}{name}", self.prefix), op, vec![x]))
    }
}
