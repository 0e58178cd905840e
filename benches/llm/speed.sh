#!/usr/bin/env bash
# Issue 13's speed comparison (not in CI): `opml generate`, llama.cpp (llama-cpp-python,
# built by llama_cpp.sh) and candle's quantized llama (benches/llm/candle/, its own Cargo
# project) on the same GGUF, the same prompt token ids, the same threads, in one run,
# alternating engines, REPS fresh processes each. Prints one table and JSON (also written
# to OUT) with the load average at start and end; see speed.py for the timing rules.
#
# Usage: bash benches/llm/speed.sh [GGUF]
#   env: THREADS (2), REPS (3), NEW (64 new tokens), OUT (.cache/llm/speed.json),
#        CARGO_TARGET_DIR (opml's build; candle builds in benches/llm/candle/target),
#        SKIP_CANDLE=1 (leave candle out: its first build takes over an hour on 2 cores).
# The prompt: one ChatML user turn asking for a summary of the first 16 lines of
# /usr/share/common-licenses/GPL-3 (192 tokens with SmolLM2's tokenizer).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
GGUF="${1:-${SMOLLM2_GGUF:-$REPO/.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}}"
THREADS="${THREADS:-2}"
REPS="${REPS:-3}"
NEW="${NEW:-64}"
OUT="${OUT:-$REPO/.cache/llm/speed.json}"
LLAMA_PY="$REPO/.cache/peers/llama-cpp-python/venv/bin/python"
[[ -f $GGUF ]] || { echo "no model at $GGUF (see benches/llm/README.md)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

echo "building opml (release)" >&2
(cd "$REPO" && cargo build --release --quiet -p opml-cli)
OPML="${CARGO_TARGET_DIR:-$REPO/target}/release/opml"

CANDLE=""
CANDLE_SKIPPED="its peer did not build"
if [[ ${SKIP_CANDLE:-0} == 1 ]]; then
    CANDLE_SKIPPED="SKIP_CANDLE=1"
    echo "SKIP_CANDLE=1: going on without the candle peer" >&2
elif echo "building the candle peer (release; the first build takes minutes)" >&2 &&
    (cd "$REPO/benches/llm/candle" && env -u CARGO_TARGET_DIR cargo build --release --quiet); then
    CANDLE="$REPO/benches/llm/candle/target/release/opml-candle-peer"
else
    echo "the candle peer did not build; going on without it" >&2
fi

LLAMA_ARGS=()
if [[ -x $LLAMA_PY ]] && "$LLAMA_PY" -c "import llama_cpp" 2>/dev/null; then
    LLAMA_ARGS=(--llama-python "$LLAMA_PY")
else
    echo "no llama-cpp-python at $LLAMA_PY (bash benches/llm/llama_cpp.sh build); going on without it" >&2
fi

PROMPT_FILE="$(mktemp)"
trap 'rm -f "$PROMPT_FILE"' EXIT
{
    printf 'Summarize this text in one sentence.\n\n'
    head -n 16 /usr/share/common-licenses/GPL-3
} >"$PROMPT_FILE"

python3 "$REPO/benches/llm/speed.py" --opml "$OPML" ${CANDLE:+--candle "$CANDLE"} --candle-skipped "$CANDLE_SKIPPED" "${LLAMA_ARGS[@]}" \
    --gguf "$GGUF" --prompt-file "$PROMPT_FILE" --threads "$THREADS" --new "$NEW" --reps "$REPS" --out "$OUT"
