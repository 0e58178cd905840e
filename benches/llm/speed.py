#!/usr/bin/env python3
"""The runs and the table of benches/llm/speed.sh (standard library only).

Runs each engine as a fresh process under /usr/bin/time -v (peak resident memory),
alternating engines within each repetition, all on the same GGUF, the same prompt token
ids (opml's tokenizer, the same as llama.cpp's: benches/llm/README.md), the same number
of new tokens and threads. Each engine times its prompt (one batched forward, up to the
first generated token) and its generation (one forward per later token) with the wall
clock around its own forward calls, so model loading is outside both figures.
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def timed(cmd, env=None) -> dict:
    """Run `cmd` under /usr/bin/time -v: its last stdout JSON object, wall and peak RSS."""
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    try:
        out = json.loads(p.stdout)
    except json.JSONDecodeError:  # something else printed first: the JSON is the last line
        out = json.loads(p.stdout.strip().splitlines()[-1])
    out["peak_rss_mib"] = int(m.group(1)) / 1024 if m else None
    out["process_seconds"] = wall
    return out


def common_prefix(a, b) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--opml", required=True)
    ap.add_argument("--candle")
    ap.add_argument("--candle-skipped", default="its peer did not build",
                    help="why there is no --candle (for the notes)")
    ap.add_argument("--llama-python")
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--prompt-file", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    load_start = Path("/proc/loadavg").read_text().split()[:3]
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    prompt = Path(a.prompt_file).read_text()
    t = str(a.threads)
    opml_cmd = [a.opml, "generate", a.gguf, "--chat", "--prompt", prompt, "--max-new-tokens", str(a.new),
                "--ignore-eos", "--threads", t, "--json"]
    ids = timed([a.opml, "generate", a.gguf, "--chat", "--prompt", prompt, "--max-new-tokens", "1", "--json"])
    ids = ids["prompt_ids"]
    id_list = ",".join(map(str, ids))
    engines = {"opml": (opml_cmd, None)}
    notes = []
    if a.llama_python:
        engines["llama.cpp"] = ([a.llama_python, str(HERE / "speed_llama_cpp.py"), "--model", a.gguf, "--ids", id_list,
                                 "--n", str(a.new), "--threads", t], None)
    else:
        notes.append("llama.cpp skipped: no llama-cpp-python venv (bash benches/llm/llama_cpp.sh build)")
    if a.candle:
        env = dict(os.environ, RAYON_NUM_THREADS=t)
        engines["candle"] = ([a.candle, a.gguf, id_list, str(a.new)], env)
    else:
        notes.append(f"candle skipped: {a.candle_skipped}")
    runs = {name: [] for name in engines}
    for rep in range(a.reps):
        for name, (cmd, env) in engines.items():
            r = timed(cmd, env)
            runs[name].append(r)
            print(f"rep {rep + 1}/{a.reps} {name}: prompt {r['prompt_tokens_per_second']:.1f} tok/s, "
                  f"generation {r['tokens_per_second']:.1f} tok/s, peak RSS {r['peak_rss_mib']:.0f} MiB",
                  file=sys.stderr, flush=True)
    load_end = Path("/proc/loadavg").read_text().split()[:3]
    ref = runs["opml"][0]["tokens"]
    summary = {}
    for name, rs in runs.items():
        pp = [r["prompt_tokens_per_second"] for r in rs]
        tg = [r["tokens_per_second"] for r in rs]
        summary[name] = {
            "prompt_tokens_per_second": {"median": statistics.median(pp), "best": max(pp), "all": pp},
            "tokens_per_second": {"median": statistics.median(tg), "best": max(tg), "all": tg},
            "peak_rss_mib": max(r["peak_rss_mib"] or 0 for r in rs),
            "tokens_generated": len(rs[0]["tokens"]),
            "common_prefix_with_opml": common_prefix(rs[0]["tokens"], ref),
            "same_tokens_every_run": all(r["tokens"] == rs[0]["tokens"] for r in rs),
        }
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    result = {
        "started": started,
        "machine": {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release()},
        "load_average_start": load_start,
        "load_average_end": load_end,
        "gguf": a.gguf,
        "prompt_tokens": len(ids),
        "new_tokens": a.new,
        "threads": a.threads,
        "repetitions": a.reps,
        "timing": "wall clock around each engine's own forward calls; prompt = one batched forward up to the "
                  "first token, generation = the later tokens one forward each; model loading excluded",
        "engines": summary,
        "notes": notes,
    }
    if "llama.cpp" in summary:
        o, l = summary["opml"], summary["llama.cpp"]
        pr = o["prompt_tokens_per_second"]["median"] / l["prompt_tokens_per_second"]["median"]
        gr = o["tokens_per_second"]["median"] / l["tokens_per_second"]["median"]
        result["goals"] = {
            "prompt_ratio_opml_over_llama_cpp": pr,
            "prompt_goal_2x_met": pr >= 2.0,
            "generation_ratio_opml_over_llama_cpp": gr,
            "generation_goal_1x_met": gr >= 1.0,
        }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"# SmolLM2-135M Q4_1, {len(ids)} prompt tokens, {a.new} new tokens, {a.threads} threads, "
          f"{a.reps} runs each (median, best); load average {' '.join(load_start)} -> {' '.join(load_end)}")
    print(f"# {cpu}, {os.cpu_count()} cores; {started}")
    print("| engine | prompt tok/s | generation tok/s | peak RSS MiB | same tokens as opml |")
    print("|---|---:|---:|---:|---:|")
    for name, s in summary.items():
        p, g = s["prompt_tokens_per_second"], s["tokens_per_second"]
        print(f"| {name} | {p['median']:.1f} ({p['best']:.1f}) | {g['median']:.1f} ({g['best']:.1f}) | "
              f"{s['peak_rss_mib']:.0f} | {s['common_prefix_with_opml']}/{s['tokens_generated']} |")
    if "goals" in result:
        g = result["goals"]
        print(f"goals: prompt opml/llama.cpp = {g['prompt_ratio_opml_over_llama_cpp']:.2f} (goal >= 2: "
              f"{'met' if g['prompt_goal_2x_met'] else 'not met'}), generation = "
              f"{g['generation_ratio_opml_over_llama_cpp']:.2f} (goal >= 1: "
              f"{'met' if g['generation_goal_1x_met'] else 'not met'})")
    for n in notes:
        print(f"note: {n}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
