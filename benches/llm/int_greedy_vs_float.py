"""Greedy generations of `opml generate` (integer-only) against the float reference's in
fixtures/llm/smollm2_float_ref.npz: the 20 ChatML prompts of benches/llm/prompts.txt, 32 tokens.
The float reference does not stop at the end-of-turn token (id 2); with --no-stop opml does
not either (`opml generate --ignore-eos`), so all 32 tokens are compared, as
llama_cpp_eval.py does for llama.cpp. Without it, a generation that stops is compared up to
its stop.

    python benches/llm/int_greedy_vs_float.py target/release/opml [--model FILE] [--no-stop] [--json]

FILE is a GGUF or an LLM bundle (default: .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf).
"""
import argparse, json, subprocess, sys, numpy as np
ap = argparse.ArgumentParser()
ap.add_argument("exe")
ap.add_argument("--model", default=".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf")
ap.add_argument("--no-stop", action="store_true")
ap.add_argument("--json", action="store_true", help="print a JSON summary last")
args = ap.parse_args()
z = np.load("fixtures/llm/smollm2_float_ref.npz")
off, pt, gt = z["gen_prompt_offsets"], z["gen_prompt_tokens"], z["gen_tokens"]
prompts = [l.rstrip("\n") for l in open("benches/llm/prompts.txt") if l.strip() and not l.startswith("#")]
tot, full, res = 0, 0, []
for g, p in enumerate(prompts):
    cmd = [args.exe, "generate", args.model, "--chat", "--prompt", p, "--max-new-tokens", "32", "--threads", "2", "--json"]
    if args.no_stop:
        cmd.append("--ignore-eos")
    v = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    ours, ref = v["tokens"], list(gt[g])
    assert v["prompt_tokens"] == off[g+1]-off[g], (p, v["prompt_tokens"])
    n = 0
    while n < len(ours) and ours[n] == ref[n]: n += 1
    stopped = len(ours) < 32 and ours[-1] == 2
    same = n == len(ours) and (len(ours) == 32 or stopped)
    full += same
    res.append((p, n, len(ours), same))
    print(f"{g}: prefix {n}/{len(ours)} {'(stopped at eos, rest equal)' if stopped and same else ''} {p!r}", file=sys.stderr, flush=True)
mean = sum(r[1] for r in res)/len(res)
print("identical to the float reference" + ("" if args.no_stop else " (up to our end-of-turn stop)") + ":", full, "of", len(prompts), file=sys.stderr)
print("mean common prefix:", mean, file=sys.stderr)
if args.json:
    print(json.dumps({"prompts": len(prompts), "identical": full, "mean_common_prefix": mean, "no_stop": args.no_stop}))
