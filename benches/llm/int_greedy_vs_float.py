"""Greedy generations of `opml generate` (integer-only) against the float reference's in
fixtures/llm/smollm2_float_ref.npz: the 20 ChatML prompts of benches/llm/prompts.txt, 32 tokens.
`opml generate` stops at the end-of-turn token (id 2); the float reference does not, so a
generation that stops is compared up to its stop.

    /tmp/refvenv/bin/python benches/llm/int_greedy_vs_float.py target/release/opml
"""
import json, subprocess, sys, numpy as np
z = np.load("fixtures/llm/smollm2_float_ref.npz")
off, pt, gt = z["gen_prompt_offsets"], z["gen_prompt_tokens"], z["gen_tokens"]
prompts = [l.rstrip("\n") for l in open("benches/llm/prompts.txt") if l.strip() and not l.startswith("#")]
exe = sys.argv[1]
tot, full, res = 0, 0, []
for g, p in enumerate(prompts):
    out = subprocess.run([exe, "generate", ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf", "--chat", "--prompt", p,
                          "--max-new-tokens", "32", "--threads", "2", "--json"], capture_output=True, text=True, check=True)
    v = json.loads(out.stdout)
    ours, ref = v["tokens"], list(gt[g])
    assert v["prompt_tokens"] == off[g+1]-off[g], (p, v["prompt_tokens"])
    n = 0
    while n < len(ours) and ours[n] == ref[n]: n += 1
    stopped = len(ours) < 32 and ours[-1] == 2
    same = n == len(ours) and (len(ours) == 32 or stopped)
    full += same
    res.append((p, n, len(ours), same))
    print(f"{g}: prefix {n}/{len(ours)} {'(stopped at eos, rest equal)' if stopped and same else ''} {p!r}", flush=True)
print("identical to the float reference (up to our end-of-turn stop):", full, "of", len(prompts))
print("mean common prefix:", sum(r[1] for r in res)/len(res))
