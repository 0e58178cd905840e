#!/usr/bin/env bash
# Issue 13's accuracy acceptance for SmolLM2-135M, in one run (docs/benchmarks.md, "LLM:
# SmolLM2-135M", "Accuracy acceptance"). On /usr/share/common-licenses/GPL-3 (29 chunks of
# 256 tokens, benches/llm/README.md's convention):
#   1. opml model import, then opml lm eval --reference: integer perplexity, Rust f32
#      perplexity, integer-vs-float top-1 agreement;
#   2. the numpy float reference: float_ref.py ppl;
#   3. llama.cpp: llama_cpp_eval.py (its perplexity, its top-1 vs the float reference, its
#      greedy generations' mean common prefix with the float reference's);
#   4. opml's greedy generations of the 20 prompts of benches/llm/prompts.txt (32 tokens,
#      not stopped at the end of turn) against the float reference's: mean common prefix.
# Writes .cache/llm/accuracy/*.json and prints a summary table.
#
# Usage: bash benches/llm/accuracy.sh [OPML]   (default target/release/opml, built if absent)
# Needs the model (.cache/models/), and the venv of benches/llm/llama_cpp.sh (llama-cpp-python,
# numpy, gguf, tokenizers). Takes 10-20 min on a loaded 2-core machine.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
OPML="${1:-target/release/opml}"
GGUF="${SMOLLM2_GGUF:-.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
PY="${LLAMA_VENV_PY:-.cache/peers/llama-cpp-python/venv/bin/python}"
TEXT=/usr/share/common-licenses/GPL-3
OUT=.cache/llm/accuracy
mkdir -p "$OUT"
[[ -f $GGUF ]] || { echo "no model at $GGUF (scripts/fetch_models.sh)" >&2; exit 1; }
"$PY" -c "import llama_cpp, numpy, gguf, tokenizers" || { echo "no llama.cpp venv at $PY (bash benches/llm/llama_cpp.sh build)" >&2; exit 1; }
if [[ ! -x $OPML ]]; then
    nice -n 5 cargo build --release -p opml-cli
    OPML=target/release/opml
fi
t() { local s=$SECONDS; "$@"; echo "  ($((SECONDS - s)) s)" >&2; }

echo "1/5 opml model import" >&2
t nice -n 5 "$OPML" model import "$GGUF" -o "$OUT/smollm2.opmlllm" --json > "$OUT/import.json"
echo "2/5 opml lm eval (integer and Rust f32, 29 chunks)" >&2
t nice -n 5 "$OPML" lm eval "$OUT/smollm2.opmlllm" --text "$TEXT" --reference "$GGUF" --json > "$OUT/opml_eval.json"
echo "3/5 numpy float reference perplexity" >&2
t nice -n 5 "$PY" benches/llm/float_ref.py --model "$GGUF" ppl --text "$TEXT" --json > "$OUT/float_ref_ppl.json"
echo "4/5 llama.cpp: perplexity, top-1 and generations against the float reference" >&2
DUMP=.cache/llm/float_ref.npz
if [[ ! -f $DUMP ]]; then
    t nice -n 5 "$PY" benches/llm/float_ref.py --model "$GGUF" dump --out "$DUMP" --prompts benches/llm/prompts.txt --json > /dev/null
fi
t nice -n 5 "$PY" benches/llm/llama_cpp_eval.py --model "$GGUF" --ref "$DUMP" --skip speed --json "$OUT/llama_cpp.json" > /dev/null
echo "5/5 opml greedy generations (20 prompts x 32 tokens, from the bundle)" >&2
t nice -n 5 "$PY" benches/llm/int_greedy_vs_float.py "$OPML" --model "$OUT/smollm2.opmlllm" --no-stop --json | tail -n 1 > "$OUT/opml_gen.json"

"$PY" - "$OUT" <<'PY'
import json, sys
d = sys.argv[1]
ev = json.load(open(f"{d}/opml_eval.json"))
fr = json.load(open(f"{d}/float_ref_ppl.json"))
lc = json.load(open(f"{d}/llama_cpp.json"))
og = json.load(open(f"{d}/opml_gen.json"))
imp = json.load(open(f"{d}/import.json"))
ref = fr["ppl"]
rows = [
    ("float reference (numpy f32) perplexity", f"{ref:.4f}"),
    ("opml lm eval: Rust f32 perplexity", f"{ev['float_perplexity']:.4f} ({(ev['float_perplexity']/ref-1)*100:+.3f}%)"),
    ("opml integer perplexity", f"{ev['perplexity']:.4f} ({(ev['perplexity']/ref-1)*100:+.3f}%)"),
    ("llama.cpp perplexity", f"{lc['ppl']['ppl_llama_cpp']:.4f} ({(lc['ppl']['ppl_llama_cpp']/ref-1)*100:+.3f}%)"),
    ("top-1 agreement, opml integer vs Rust f32", f"{ev['top1_agreement']*100:.2f}% of {ev['positions']}"),
    ("top-1 agreement, llama.cpp vs numpy f32", f"{lc['ppl']['top1_agreement']*100:.2f}% of {lc['ppl']['positions']}"),
    ("greedy mean common prefix, opml vs float (20 x 32)", f"{og['mean_common_prefix']:.2f} ({og['identical']} of 20 identical)"),
    ("greedy mean common prefix, llama.cpp vs float (20 x 32)", f"{lc['gen']['mean_common_prefix']:.2f}"),
    ("model commitment", imp["model_commitment"]),
]
print("| measurement | value |\n|---|---:|")
for k, v in rows:
    print(f"| {k} | {v} |")
PY
