#!/usr/bin/env python3
"""llama.cpp (llama-cpp-python) against the float reference on SmolLM2-135M (issue 13).

The float side is a dump of float_ref.py (`float_ref.py dump --prompts prompts.txt`), the
same file the Rust side compares with. Measures, on the same GGUF file:
  (a) llama.cpp's perplexity over the dump's chunks (the dump's tokens are fed to it; the
      convention is float_ref.py's) next to the float one, next-token top-1 agreement at
      every position, and the KL divergence float -> llama.cpp at the dumped positions;
  (b) greedy generations (ChatML, 32 tokens, not stopped at EOS) of the dump's prompts:
      mean common prefix with the float reference's;
  (c) llama.cpp speed at 2 threads: prompt processing of a 256-token prompt and
      token-by-token generation (tokens/s, best of a few runs).
Also checks that llama.cpp's tokenizer gives the float reference's tokens (the text's and
the chat prompts').

Run through benches/llm/llama_cpp.sh (it builds llama-cpp-python in .cache/peers/).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import float_ref as fr  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent


def open_llama(model: str, n_ctx: int, threads: int, logits_all: bool):
    """A llama.cpp context on the GGUF (CPU, `threads` threads)."""
    from llama_cpp import Llama

    return Llama(
        model_path=model,
        n_ctx=n_ctx,
        n_batch=n_ctx,
        n_ubatch=n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        logits_all=logits_all,
        verbose=False,
    )


def llama_logits(llm, tokens) -> np.ndarray:
    """llama.cpp's logits (T, vocab) of tokens from an empty cache (needs logits_all)."""
    llm.reset()
    llm.eval([int(t) for t in tokens])
    return np.array(llm.scores[: len(tokens)], dtype=np.float32)


def llama_generate(llm, prompt, n: int) -> list[int]:
    """llama.cpp greedy decoding: n tokens (argmax of its logits, no sampler)."""
    llm.reset()
    llm.eval([int(t) for t in prompt])
    out = []
    for _ in range(n):
        nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(nxt)
        if len(out) < n:
            llm.eval([nxt])
    return out


def kl_divergence(p_logits: np.ndarray, q_logits: np.ndarray) -> np.ndarray:
    """KL(P || Q) per row, from logits (float64)."""
    lp, lq = fr.log_softmax(p_logits), fr.log_softmax(q_logits)
    return (np.exp(lp) * (lp - lq)).sum(axis=-1)


def check_tokenizer(tok: fr.Tokenizer, llm, text: str, prompts: list[str]) -> dict:
    """Whether llama.cpp tokenizes the text and the chat prompts as the float reference does."""

    def same(s):
        return llm.tokenize(s.encode("utf-8"), add_bos=False, special=True) == tok.encode(s)

    return {
        "text_same": same(text),
        "prompts_same": sum(same(fr.chat_prompt(p)) for p in prompts),
        "prompts": len(prompts),
    }


def eval_chunks(ref: dict, llm) -> dict:
    """(a): both perplexities, top-1 agreement, next-token accuracy, KL at dumped positions."""
    nll_l, agree, hit_l, kl = [], [], [], []
    for i, c in enumerate(ref["tokens"]):
        ll = llama_logits(llm, c)
        nll_l.append(fr.chunk_nll(ll, c))
        al = ll.argmax(-1)
        agree.append(ref["argmax"][i] == al)
        hit_l.append(al[:-1] == c[1:])
        if "logits" in ref:
            kl.append(kl_divergence(ref["logits"][i], ll[ref["positions"]]))
        print(
            f"chunk {i}: ppl float {np.exp(ref['nll'][i].mean()):.3f} llama.cpp {np.exp(nll_l[-1].mean()):.3f}"
            f" top-1 agreement {agree[-1].mean():.4f}",
            file=sys.stderr,
        )
    cat = np.concatenate
    hit_f = ref["argmax"][:, :-1] == ref["tokens"][:, 1:]
    out = {
        "chunks": len(ref["tokens"]),
        "chunk_tokens": int(ref["tokens"].shape[1]),
        "ppl_float": float(np.exp(ref["nll"].mean())),
        "ppl_llama_cpp": float(np.exp(cat(nll_l).mean())),
        "top1_agreement": float(cat(agree).mean()),
        "top1_disagreements": int((~cat(agree)).sum()),
        "positions": int(cat(agree).size),
        "next_token_accuracy_float": float(hit_f.mean()),
        "next_token_accuracy_llama_cpp": float(cat(hit_l).mean()),
    }
    if kl:
        out["kl_positions"] = [int(p) for p in ref["positions"]]
        out["mean_kl_float_to_llama_cpp"] = float(cat(kl).mean())
        out["max_kl_float_to_llama_cpp"] = float(cat(kl).max())
    return out


def dump_prompts(ref: dict) -> list[list[int]]:
    """The dump's generation prompts as token lists."""
    flat, off = ref["gen_prompt_tokens"], ref["gen_prompt_offsets"]
    return [flat[off[i] : off[i + 1]].tolist() for i in range(len(off) - 1)]


def eval_generations(ref: dict, tok: fr.Tokenizer, llm, prompts: list[str]) -> dict:
    """(b): llama.cpp's greedy generations of the dump's prompts, common prefix with the
    float reference's."""
    toks = dump_prompts(ref)
    if toks != [tok.encode(fr.chat_prompt(p)) for p in prompts]:
        raise SystemExit("the dump's prompts are not the prompts file's: dump again")
    n = int(ref["gen_tokens"].shape[1])
    rows = []
    for p, t, gf in zip(prompts, toks, ref["gen_tokens"].tolist()):
        gl = llama_generate(llm, t, n)
        cp = fr.common_prefix(gf, gl)
        rows.append({"prompt": p, "common_prefix": cp, "float": tok.decode(gf), "llama_cpp": tok.decode(gl)})
        print(f"{cp:2d}/{n} {p!r}", file=sys.stderr)
    cps = [r["common_prefix"] for r in rows]
    return {
        "prompts": len(prompts),
        "tokens": n,
        "mean_common_prefix": float(np.mean(cps)),
        "identical": sum(c == n for c in cps),
        "rows": rows,
    }


def eval_speed(model: str, prompt: list[int], n_gen: int, threads: int, runs: int) -> dict:
    """(c): llama.cpp prompt-processing and generation tokens/s (best of runs)."""
    llm = open_llama(model, len(prompt) + n_gen + 8, threads, logits_all=False)
    llm.eval(list(prompt[:16]))  # warm-up
    pp, tg = [], []
    for _ in range(runs):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(list(prompt))
        pp.append(len(prompt) / (time.perf_counter() - t0))
        nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        t0 = time.perf_counter()
        for _ in range(n_gen):
            llm.eval([nxt])
            nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        tg.append(n_gen / (time.perf_counter() - t0))
    return {
        "threads": threads,
        "prompt_tokens": len(prompt),
        "gen_tokens": n_gen,
        "runs": runs,
        "prompt_tokens_per_s": max(pp),
        "gen_tokens_per_s": max(tg),
        "prompt_tokens_per_s_all": pp,
        "gen_tokens_per_s_all": tg,
    }


def parse_args(argv=None):
    """Command-line arguments."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(fr.DEFAULT_MODEL))
    ap.add_argument("--ref", default=str(fr.REPO / ".cache/llm/float_ref.npz"), help="float_ref.py dump (with --prompts)")
    ap.add_argument("--text", default=str(fr.DEFAULT_TEXT), help="the text the dump was made from")
    ap.add_argument("--prompts", default=str(HERE / "prompts.txt"), help="the prompts the dump was made from")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--speed-gen", type=int, default=128, help="tokens generated in the speed test")
    ap.add_argument("--speed-runs", type=int, default=3)
    ap.add_argument("--skip", default="", help="comma list of parts to skip: ppl,gen,speed")
    ap.add_argument("--json", default=None, help="write the results here")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import llama_cpp
    from gguf import GGUFReader

    if not Path(args.ref).is_file():
        raise SystemExit(f"no float dump at {args.ref}: float_ref.py dump --out {args.ref} --prompts {args.prompts}")
    skip = set(filter(None, args.skip.split(",")))
    ref = dict(np.load(args.ref))
    tok = fr.Tokenizer(GGUFReader(args.model))
    text = Path(args.text).read_text(encoding="utf-8")
    if not np.array_equal(ref["tokens"].ravel(), tok.encode(text)[: ref["tokens"].size]):
        raise SystemExit(f"the dump's tokens are not those of {args.text}")
    prompts = fr.read_prompts(args.prompts)
    llm = open_llama(args.model, int(ref["tokens"].shape[1]), args.threads, logits_all=True)
    out = {
        "llama_cpp_python": llama_cpp.__version__,
        "model": args.model,
        "ref": args.ref,
        "text": args.text,
        "text_tokens": len(tok.encode(text)),
        "tokenizer": check_tokenizer(tok, llm, text, prompts),
    }
    print(f"tokenizer: {out['tokenizer']}", file=sys.stderr)
    if "ppl" not in skip:
        out["ppl"] = eval_chunks(ref, llm)
    if "gen" not in skip:
        out["gen"] = eval_generations(ref, tok, llm, prompts)
    del llm
    if "speed" not in skip:
        out["speed"] = eval_speed(args.model, ref["tokens"][0].tolist(), args.speed_gen, args.threads, args.speed_runs)
    summary = {k: v for k, v in out.items() if k != "gen"}
    if "gen" in out:
        summary["gen"] = {k: v for k, v in out["gen"].items() if k != "rows"}
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
