#!/usr/bin/env python3
"""llama.cpp's side of benches/llm/speed.sh: one fresh process, one run.

Loads the GGUF with llama-cpp-python (CPU, --threads threads for both the batch and the
single-token passes, n_batch and n_ubatch at least the prompt, only the last position's
logits), evaluates the given prompt token ids in one call, then decodes greedily one token
at a time (argmax of the logits, lowest id on a tie, no sampler) until --n tokens exist.
Timing: the wall clock around the eval calls (time.perf_counter), the same boundaries as
`opml generate` and the candle peer; llama.cpp's own counters (llama_perf_context) are
printed beside it when the binding has them. One JSON line on stdout.
"""

import argparse
import json
import os
import sys
import time

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", required=True, help="prompt token ids, comma-separated")
    ap.add_argument("--n", type=int, default=64, help="tokens to generate")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    prompt = [int(t) for t in a.ids.split(",")]
    from llama_cpp import Llama

    t_load = time.perf_counter()
    n_ctx = len(prompt) + a.n + 8
    llm = Llama(
        model_path=a.model,
        n_ctx=n_ctx,
        n_batch=n_ctx,
        n_ubatch=n_ctx,
        n_threads=a.threads,
        n_threads_batch=a.threads,
        logits_all=False,
        verbose=False,
    )
    load_seconds = time.perf_counter() - t_load

    import llama_cpp

    n_vocab = llm.n_vocab()

    def argmax() -> int:
        # The last evaluated position's logits (this binding keeps no copy in llm.scores
        # without logits_all); np.argmax takes the lowest id on a tie.
        ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
        return int(np.argmax(np.ctypeslib.as_array(ptr, shape=(n_vocab,))))

    t0 = time.perf_counter()
    llm.eval(prompt)
    nxt = argmax()
    prompt_seconds = time.perf_counter() - t0
    tokens = [nxt]
    t1 = time.perf_counter()
    while len(tokens) < a.n:
        llm.eval([nxt])
        nxt = argmax()
        tokens.append(nxt)
    generate_seconds = time.perf_counter() - t1
    decoded = len(tokens) - 1
    out = {
        "engine": "llama.cpp",
        "load_seconds": load_seconds,
        "prompt_tokens": len(prompt),
        "prompt_seconds": prompt_seconds,
        "prompt_tokens_per_second": len(prompt) / prompt_seconds,
        "tokens": tokens,
        "generate_seconds": generate_seconds,
        "tokens_per_second": decoded / generate_seconds if decoded else 0.0,
        "threads": a.threads,
    }
    try:
        perf = llama_cpp.llama_perf_context(llm._ctx.ctx)
        out["llama_perf"] = {
            "prompt_ms": perf.t_p_eval_ms,
            "prompt_tokens": perf.n_p_eval,
            "eval_ms": perf.t_eval_ms,
            "eval_tokens": perf.n_eval,
        }
    except Exception as e:  # an older or newer binding without the counters
        out["llama_perf"] = f"unavailable: {type(e).__name__}"
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    os._exit(0)  # skip the binding's slow teardown; it is not part of any timing


if __name__ == "__main__":
    sys.exit(main())
