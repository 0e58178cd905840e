#!/usr/bin/env python3
"""Float reference for SmolLM2-135M (issue 13): a numpy f32 forward of the GGUF model.

An oracle independent of the integer path: tensors are read and dequantized with the
`gguf` package (maintained by llama.cpp), the tokenizer is a byte-level BPE built with
`tokenizers` from the vocabulary and merges stored in the GGUF, and the forward pass is
plain numpy in float32 (Llama: RMSNorm, RoPE, grouped-query attention with a KV cache,
SwiGLU FFN, output tied to the token embedding). Nothing here reads Rust code or output.

Library:
    ref = FloatRef.load(path)
    ref.logits(tokens)              # (T, vocab) logits of a sequence, one batched pass
    ref.generate(prompt_tokens, n)  # greedy: n token ids
    ref.perplexity(text, chunk=256) # PerplexityResult

CLI (see benches/llm/README.md):
    float_ref.py ppl --text FILE [--chunks N] [--json]
    float_ref.py generate --prompt TEXT [--chat] [--n 32] [--json]
    float_ref.py dump --text FILE --out F.npz [--chunks N] [--prompts FILE]

Perplexity convention (shared with llama_cpp_eval.py and the Rust comparison): the text is
tokenized whole without BOS, cut into consecutive chunks of `chunk` tokens (a partial last
chunk is dropped), each chunk is evaluated from an empty KV cache, and every position but
the last predicts the next token: chunk-1 predictions per chunk; ppl = exp(mean NLL).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# One BLAS thread unless asked otherwise: on 2 shared cores, OpenBLAS threads spinning
# against other load made a token's matrix-vector products ~50x slower than one thread.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = REPO / ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_TEXT = Path("/usr/share/common-licenses/GPL-3")
SYSTEM_PROMPT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


# ---------------------------------------------------------------------------------------
# Model loading
# ---------------------------------------------------------------------------------------


@dataclass
class HParams:
    """Llama hyperparameters, read from the GGUF metadata."""

    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    n_vocab: int
    rope_base: float
    rope_dim: int
    eps: float

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


@dataclass
class Layer:
    """One transformer block's weights, float32, linear weights as (out, in)."""

    attn_norm: np.ndarray
    wq: np.ndarray
    wk: np.ndarray
    wv: np.ndarray
    wo: np.ndarray
    ffn_norm: np.ndarray
    w_gate: np.ndarray
    w_up: np.ndarray
    w_down: np.ndarray


def field_value(reader, key: str):
    """The value of one GGUF metadata field (scalar, string or list)."""
    return reader.fields[key].contents()


def read_hparams(reader) -> HParams:
    """Hyperparameters of a llama-architecture GGUF."""
    arch = field_value(reader, "general.architecture")
    if arch != "llama":
        raise ValueError(f"expected a llama GGUF, got {arch!r}")

    def get(name, default=None):
        key = f"llama.{name}"
        return field_value(reader, key) if key in reader.fields else default

    n_embd = int(get("embedding_length"))
    n_head = int(get("attention.head_count"))
    rope_dim = int(get("rope.dimension_count", n_embd // n_head))
    if rope_dim != n_embd // n_head:
        raise ValueError(f"partial RoPE ({rope_dim} of {n_embd // n_head} dims) not supported")
    return HParams(
        n_layer=int(get("block_count")),
        n_embd=n_embd,
        n_ff=int(get("feed_forward_length")),
        n_head=n_head,
        n_head_kv=int(get("attention.head_count_kv")),
        n_vocab=len(reader.fields["tokenizer.ggml.tokens"].data),
        rope_base=float(get("rope.freq_base")),
        rope_dim=rope_dim,
        eps=float(get("attention.layer_norm_rms_epsilon")),
    )


def dequantize_tensors(reader) -> dict[str, np.ndarray]:
    """Every tensor of the GGUF as float32, in numpy (row-major) shape: GGUF's
    ne = [in, out] becomes (out, in)."""
    from gguf.quants import dequantize

    out = {}
    for t in reader.tensors:
        w = dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
        shape = tuple(int(d) for d in reversed(t.shape))
        out[t.name] = np.ascontiguousarray(w.reshape(shape))
    return out


@dataclass
class Weights:
    """All weights of the model, float32."""

    tok_embd: np.ndarray  # (vocab, n_embd)
    layers: list[Layer]
    out_norm: np.ndarray
    output: np.ndarray  # (vocab, n_embd); tied to tok_embd when the GGUF has no output.weight


def load_weights(reader, hp: HParams) -> Weights:
    """Dequantize the GGUF's tensors into a Weights."""
    t = dequantize_tensors(reader)
    layers = []
    for i in range(hp.n_layer):
        p = f"blk.{i}."
        layers.append(
            Layer(
                attn_norm=t[p + "attn_norm.weight"],
                wq=t[p + "attn_q.weight"],
                wk=t[p + "attn_k.weight"],
                wv=t[p + "attn_v.weight"],
                wo=t[p + "attn_output.weight"],
                ffn_norm=t[p + "ffn_norm.weight"],
                w_gate=t[p + "ffn_gate.weight"],
                w_up=t[p + "ffn_up.weight"],
                w_down=t[p + "ffn_down.weight"],
            )
        )
    tok = t["token_embd.weight"]
    return Weights(
        tok_embd=tok,
        layers=layers,
        out_norm=t["output_norm.weight"],
        output=t.get("output.weight", tok),
    )


# ---------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------


class Tokenizer:
    """Byte-level BPE (GPT-2 style) from the GGUF's vocabulary and merges.

    Pre-tokenization follows the GGUF's `tokenizer.ggml.pre` = "smollm" (llama.cpp's
    regexes for it, equal to the Hugging Face tokenizer.json of SmolLM2): digits split one
    by one, then the GPT-2 regex. Control tokens (token_type 3, e.g. <|im_start|>) are
    special tokens: matched whole in the input text.
    """

    def __init__(self, reader):
        from tokenizers import AddedToken, Tokenizer as HfTokenizer
        from tokenizers import decoders, models, pre_tokenizers

        pre = field_value(reader, "tokenizer.ggml.model"), field_value(reader, "tokenizer.ggml.pre")
        if pre != ("gpt2", "smollm"):
            raise ValueError(f"tokenizer {pre} not supported (expected gpt2/smollm)")
        tokens = field_value(reader, "tokenizer.ggml.tokens")
        types = field_value(reader, "tokenizer.ggml.token_type")
        merges = [tuple(m.split(" ", 1)) for m in field_value(reader, "tokenizer.ggml.merges")]
        vocab = {tok: i for i, tok in enumerate(tokens)}
        bpe = models.BPE(vocab=vocab, merges=merges, fuse_unk=False)
        tk = HfTokenizer(bpe)
        tk.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
            ]
        )
        tk.decoder = decoders.ByteLevel()
        specials = [tokens[i] for i, ty in enumerate(types) if ty == 3]
        tk.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
        self._tk = tk
        self.tokens = tokens
        self.eos = int(field_value(reader, "tokenizer.ggml.eos_token_id"))
        self.bos = int(field_value(reader, "tokenizer.ggml.bos_token_id"))
        self.add_bos = bool(field_value(reader, "tokenizer.ggml.add_bos_token"))

    def encode(self, text: str) -> list[int]:
        """Token ids of text (special tokens parsed, no BOS added: add_bos_token is false)."""
        ids = self._tk.encode(text, add_special_tokens=False).ids
        return ([self.bos] if self.add_bos else []) + ids

    def decode(self, ids) -> str:
        """Text of token ids (special tokens kept)."""
        return self._tk.decode([int(i) for i in ids], skip_special_tokens=False)


def chat_prompt(user: str, system: str = SYSTEM_PROMPT) -> str:
    """The GGUF's ChatML template applied to one user message, with the default system
    message and the assistant generation prompt."""
    return (
        f"<|im_start|>system\n{system}<|im_end|>\n"
        f"<|im_start|>user\n{user}<|im_end|>\n"
        f"<|im_start|>assistant\n"
    )


# ---------------------------------------------------------------------------------------
# Forward pass
# ---------------------------------------------------------------------------------------


@dataclass
class KVCache:
    """Keys (after RoPE) and values of every layer: (n_head_kv, T, head_dim) each."""

    k: list[np.ndarray] = field(default_factory=list)
    v: list[np.ndarray] = field(default_factory=list)

    @property
    def length(self) -> int:
        return 0 if not self.k else self.k[0].shape[1]

    def append(self, layer: int, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Append one layer's new keys and values; return the whole cache of that layer."""
        if layer == len(self.k):
            self.k.append(k)
            self.v.append(v)
        else:
            self.k[layer] = np.concatenate([self.k[layer], k], axis=1)
            self.v[layer] = np.concatenate([self.v[layer], v], axis=1)
        return self.k[layer], self.v[layer]


def rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    """RMSNorm over the last axis, scaled by w."""
    ms = np.mean(x * x, axis=-1, keepdims=True)
    return (x / np.sqrt(ms + eps)) * w


def rope_tables(positions: np.ndarray, dim: int, base: float) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of RoPE angles, (T, dim/2): theta_i = pos * base^(-2i/dim), computed in
    float64 and rounded to float32 (llama.cpp computes them in float32, within a few ulp)."""
    inv = base ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)
    ang = positions[:, None].astype(np.float64) * inv[None, :]
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


def rope_adjacent(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotate ADJACENT pairs (x[2i], x[2i+1]) of x (T, heads, dim) by the angles of
    (T, dim/2): llama.cpp's "normal" RoPE, right for GGUF Llama weights (its converter
    permutes Q and K rows so that adjacent pairs are the rotated ones)."""
    x0 = x[..., 0::2]
    x1 = x[..., 1::2]
    c = cos[:, None, :]
    s = sin[:, None, :]
    out = np.empty_like(x)
    out[..., 0::2] = x0 * c - x1 * s
    out[..., 1::2] = x0 * s + x1 * c
    return out


def rope_neox(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotate HALF pairs (x[i], x[i+dim/2]): NeoX / Hugging Face rotate_half layout.
    Wrong for GGUF Llama weights; kept to show it (FloatRef(rope="neox"))."""
    h = x.shape[-1] // 2
    x0, x1 = x[..., :h], x[..., h:]
    c = cos[:, None, :]
    s = sin[:, None, :]
    return np.concatenate([x0 * c - x1 * s, x0 * s + x1 * c], axis=-1)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax."""
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def silu(x: np.ndarray) -> np.ndarray:
    """x * sigmoid(x)."""
    return x / (1.0 + np.exp(-x))


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, start: int) -> np.ndarray:
    """Causal grouped-query attention.

    q: (T, n_head, d) for positions start..start+T; k, v: (n_head_kv, S, d) for positions
    0..S with S = start+T. Query head h reads KV head h // (n_head / n_head_kv).
    Returns (T, n_head * d)."""
    t, n_head, d = q.shape
    n_kv, s, _ = k.shape
    group = n_head // n_kv
    qh = q.transpose(1, 0, 2).reshape(n_kv, group * t, d)  # heads of a group share K, V
    scores = (qh @ k.transpose(0, 2, 1)).reshape(n_kv, group, t, s) / np.float32(math.sqrt(d))
    qpos = start + np.arange(t)[:, None]
    mask = np.arange(s)[None, :] > qpos  # (T, S): future keys
    scores = np.where(mask, np.float32(-np.inf), scores)
    p = softmax(scores, axis=-1).reshape(n_kv, group * t, s)
    o = (p @ v).reshape(n_head, t, d)
    return o.transpose(1, 0, 2).reshape(t, n_head * d)


class FloatRef:
    """SmolLM2 (Llama) float32 reference over a GGUF file."""

    def __init__(self, hp: HParams, w: Weights, tok: Tokenizer, rope: str = "adjacent"):
        self.hp, self.w, self.tok = hp, w, tok
        self._rope = {"adjacent": rope_adjacent, "neox": rope_neox}[rope]

    @classmethod
    def load(cls, path: str | os.PathLike = DEFAULT_MODEL, rope: str = "adjacent") -> "FloatRef":
        """Read and dequantize a GGUF file."""
        from gguf import GGUFReader

        reader = GGUFReader(str(path))
        hp = read_hparams(reader)
        return cls(hp, load_weights(reader, hp), Tokenizer(reader), rope=rope)

    # -- forward ------------------------------------------------------------------------

    def block(self, i: int, x: np.ndarray, cache: KVCache, cos, sin, start: int) -> np.ndarray:
        """One transformer block on x (T, n_embd); appends to the cache."""
        hp, L = self.hp, self.w.layers[i]
        t, d = x.shape[0], hp.head_dim
        h = rms_norm(x, L.attn_norm, hp.eps)
        q = self._rope((h @ L.wq.T).reshape(t, hp.n_head, d), cos, sin)
        k = self._rope((h @ L.wk.T).reshape(t, hp.n_head_kv, d), cos, sin)
        v = (h @ L.wv.T).reshape(t, hp.n_head_kv, d)
        k_all, v_all = cache.append(i, k.transpose(1, 0, 2), v.transpose(1, 0, 2))
        x = x + attention(q, k_all, v_all, start) @ L.wo.T
        h = rms_norm(x, L.ffn_norm, hp.eps)
        return x + (silu(h @ L.w_gate.T) * (h @ L.w_up.T)) @ L.w_down.T

    def forward(self, tokens, cache: KVCache | None = None, last_only: bool = False) -> np.ndarray:
        """Logits (T, vocab) of tokens appended after the cache's positions (the cache grows).
        With last_only, only the last position's logits (1, vocab)."""
        cache = KVCache() if cache is None else cache
        ids = np.asarray(tokens, dtype=np.int64)
        start = cache.length
        cos, sin = rope_tables(np.arange(start, start + len(ids)), self.hp.rope_dim, self.hp.rope_base)
        x = self.w.tok_embd[ids]
        for i in range(self.hp.n_layer):
            x = self.block(i, x, cache, cos, sin, start)
        if last_only:
            x = x[-1:]
        return rms_norm(x, self.w.out_norm, self.hp.eps) @ self.w.output.T

    def logits(self, tokens) -> np.ndarray:
        """Logits (T, vocab) of a whole sequence from an empty cache, in one batched pass."""
        return self.forward(tokens)

    def generate(self, prompt_tokens, n: int, stop_at_eos: bool = False) -> list[int]:
        """Greedy decoding: n new token ids (fewer if stop_at_eos and EOS comes first; the
        EOS is included). Prompt in one batched pass, then one token at a time on the cache."""
        cache = KVCache()
        out: list[int] = []
        logits = self.forward(prompt_tokens, cache, last_only=True)
        for _ in range(n):
            nxt = int(np.argmax(logits[-1]))
            out.append(nxt)
            if stop_at_eos and nxt == self.tok.eos:
                break
            if len(out) < n:
                logits = self.forward([nxt], cache)
        return out

    # -- perplexity ---------------------------------------------------------------------

    def perplexity(self, text: str, chunk: int = 256, max_chunks: int | None = None) -> "PerplexityResult":
        """Perplexity of text under the convention of the module docstring."""
        chunks = split_chunks(self.tok.encode(text), chunk, max_chunks)
        nll = [chunk_nll(self.logits(c), c) for c in chunks]
        return PerplexityResult.of(nll, chunk)


# ---------------------------------------------------------------------------------------
# Evaluation helpers (shared with llama_cpp_eval.py)
# ---------------------------------------------------------------------------------------


def split_chunks(tokens, chunk: int, max_chunks: int | None = None) -> list[list[int]]:
    """Consecutive whole chunks of `chunk` tokens (the partial tail dropped)."""
    n = len(tokens) // chunk
    if max_chunks is not None:
        n = min(n, max_chunks)
    if n == 0:
        raise ValueError(f"text has {len(tokens)} tokens, fewer than one chunk of {chunk}")
    return [list(tokens[i * chunk : (i + 1) * chunk]) for i in range(n)]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, in float64."""
    x = logits.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def chunk_nll(logits: np.ndarray, tokens) -> np.ndarray:
    """NLL of each next token: positions 0..T-2 predicting tokens 1..T-1, shape (T-1,)."""
    lp = log_softmax(logits[:-1])
    tgt = np.asarray(tokens[1:])
    return -lp[np.arange(len(tgt)), tgt]


@dataclass
class PerplexityResult:
    """Per-chunk NLLs and the perplexity over all of them."""

    chunk: int
    nll: list[np.ndarray]

    @classmethod
    def of(cls, nll, chunk):
        return cls(chunk=chunk, nll=[np.asarray(a) for a in nll])

    @property
    def ppl(self) -> float:
        return float(np.exp(np.concatenate(self.nll).mean()))

    @property
    def chunk_ppl(self) -> list[float]:
        return [float(np.exp(a.mean())) for a in self.nll]

    def summary(self) -> dict:
        return {
            "chunks": len(self.nll),
            "chunk_tokens": self.chunk,
            "predictions": int(sum(len(a) for a in self.nll)),
            "ppl": self.ppl,
            "chunk_ppl": self.chunk_ppl,
        }


def common_prefix(a, b) -> int:
    """Length of the longest common prefix of two token lists."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def read_prompts(path: str | os.PathLike) -> list[str]:
    """Non-empty, non-comment lines of a prompts file."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]


# ---------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------


def cmd_ppl(ref: FloatRef, args) -> dict:
    """Perplexity of a text file."""
    text = Path(args.text).read_text(encoding="utf-8")
    t0 = time.perf_counter()
    res = ref.perplexity(text, chunk=args.chunk, max_chunks=args.chunks)
    secs = time.perf_counter() - t0
    out = {"text": str(args.text), "text_tokens": len(ref.tok.encode(text)), **res.summary()}
    out.update(seconds=secs, tokens_per_s=len(res.nll) * args.chunk / secs, rope=args.rope)
    if not args.json:
        print(f"{out['text']}: {out['text_tokens']} tokens, {out['chunks']} chunks of {args.chunk}")
        print(f"perplexity {out['ppl']:.4f} over {out['predictions']} predictions")
        print(f"{secs:.1f} s ({out['tokens_per_s']:.1f} tokens/s)")
    return out


def cmd_generate(ref: FloatRef, args) -> dict:
    """Greedy generation from a prompt."""
    text = chat_prompt(args.prompt) if args.chat else args.prompt
    prompt = ref.tok.encode(text)
    t0 = time.perf_counter()
    gen = ref.generate(prompt, args.n, stop_at_eos=not args.no_stop)
    secs = time.perf_counter() - t0
    out = {"prompt_tokens": prompt, "tokens": gen, "text": ref.tok.decode(gen), "seconds": secs}
    if not args.json:
        print(out["text"])
    return out


def cmd_dump(ref: FloatRef, args) -> dict:
    """Write an npz the Rust side can compare against without Python:
    tokens (C, chunk) int32; argmax (C, chunk) int32, the argmax next token at every
    position; nll (C, chunk-1) float64; ppl (); unless --positions is empty, positions (P,)
    int32 and logits (C, P, vocab) float32 at those positions; with --topk K, topk_ids and
    topk_logits (C, chunk, K), the K largest logits at every position, largest first; with
    --prompts, greedy generations: gen_prompt_tokens (flat int32) split by
    gen_prompt_offsets (G+1,), gen_tokens (G, n)."""
    text = Path(args.text).read_text(encoding="utf-8")
    chunks = split_chunks(ref.tok.encode(text), args.chunk, args.chunks)
    positions = np.array([int(p) for p in args.positions.split(",") if p.strip()], dtype=np.int32)
    toks, amax, nll, sel, top_ids, top_logits = [], [], [], [], [], []
    t0 = time.perf_counter()
    for c in chunks:
        lg = ref.logits(c)
        toks.append(c)
        amax.append(lg.argmax(axis=-1))
        nll.append(chunk_nll(lg, c))
        sel.append(lg[positions])
        if args.topk:
            ids = np.argsort(-lg, axis=-1, kind="stable")[:, : args.topk]
            top_ids.append(ids)
            top_logits.append(np.take_along_axis(lg, ids, axis=-1))
    arrays = {
        "tokens": np.array(toks, dtype=np.int32),
        "argmax": np.array(amax, dtype=np.int32),
        "nll": np.array(nll, dtype=np.float64),
        "ppl": np.float64(np.exp(np.mean(nll))),
    }
    if len(positions):
        arrays["positions"] = positions
        arrays["logits"] = np.array(sel, dtype=np.float32)
    if args.topk:
        arrays["topk_ids"] = np.array(top_ids, dtype=np.int32)
        arrays["topk_logits"] = np.array(top_logits, dtype=np.float32)
    out = {"out": str(args.out), "chunks": len(chunks), "ppl": float(arrays["ppl"])}
    out["ppl_seconds"] = time.perf_counter() - t0
    if args.prompts:
        prompts = [ref.tok.encode(chat_prompt(p)) for p in read_prompts(args.prompts)]
        t0 = time.perf_counter()
        gens = [ref.generate(p, args.n) for p in prompts]
        out["gen_seconds"] = time.perf_counter() - t0
        out["gen_tokens_per_s"] = len(gens) * args.n / out["gen_seconds"]
        arrays["gen_prompt_tokens"] = np.array([t for p in prompts for t in p], dtype=np.int32)
        arrays["gen_prompt_offsets"] = np.cumsum([0] + [len(p) for p in prompts]).astype(np.int32)
        arrays["gen_tokens"] = np.array(gens, dtype=np.int32)
    np.savez_compressed(args.out, **arrays)
    out["ppl_tokens_per_s"] = len(chunks) * args.chunk / out["ppl_seconds"]
    if not args.json:
        print(f"wrote {args.out}: {len(chunks)} chunks, ppl {out['ppl']:.4f} ({out['ppl_seconds']:.1f} s)")
    return out


def parse_args(argv=None):
    """Command-line arguments."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.environ.get("SMOLLM2_GGUF", str(DEFAULT_MODEL)))
    ap.add_argument("--rope", choices=["adjacent", "neox"], default="adjacent", help="RoPE pair layout (adjacent is right for GGUF)")
    sub = ap.add_subparsers(dest="cmd", required=True)

    def text_args(p):
        p.add_argument("--text", default=str(DEFAULT_TEXT))
        p.add_argument("--chunk", type=int, default=256)
        p.add_argument("--chunks", type=int, default=None, help="at most this many chunks")

    p = sub.add_parser("ppl", help="perplexity of a text file")
    text_args(p)
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("generate", help="greedy generation")
    p.add_argument("--prompt", required=True)
    p.add_argument("--chat", action="store_true", help="wrap the prompt in the ChatML template")
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--no-stop", action="store_true", help="do not stop at EOS (<|im_end|>)")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("dump", help="npz of tokens, argmax, NLL and some logits per chunk")
    text_args(p)
    p.add_argument("--out", required=True)
    p.add_argument("--positions", default="0,1,127,255", help="positions whose logits are kept ('' for none)")
    p.add_argument("--topk", type=int, default=0, help="keep the K largest logits at every position")
    p.add_argument("--prompts", default=None, help="also greedy generations (ChatML) of these prompts")
    p.add_argument("--n", type=int, default=32, help="tokens per generation")
    p.add_argument("--json", action="store_true")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not Path(args.model).is_file():
        print(f"no model at {args.model} (see benches/llm/README.md)", file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    ref = FloatRef.load(args.model, rope=args.rope)
    load_s = time.perf_counter() - t0
    out = {"ppl": cmd_ppl, "generate": cmd_generate, "dump": cmd_dump}[args.cmd](ref, args)
    if args.json:
        print(json.dumps({"load_seconds": load_s, **out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
