#!/usr/bin/env bash
# LLM claim and dispute figures for docs/benchmarks.md §LLM claims and disputes (issue 14);
# not part of the suite. On SmolLM2-135M-Instruct (Q4_1), imported with limits that allow a
# 64-token generation (prompt 32 + 64 new: 95 decode steps in the generation graph):
#   a. an honest claim of 64 generated tokens: the challenger watcher's re-check time (its
#      `claim` event to its `verdict`), and the claim's own cost (`opml chain claim` wall
#      time beside a plain `opml generate` of the same prompt);
#   b. three lying claims of 64 tokens (token:T, node:NAME, step:NAME:S), each defended by
#      a submitter watcher started with that one --dishonest spec (one after the other, on
#      one data directory, so that none searches faults for another's claim), disputed by the
#      challenger watcher: graph and VM rounds, gas per move kind, total gas, transactions,
#      largest calldata (eth_getTransactionByHash), wall time challenge -> end, peak RSS.
# Prints a table and, last, one JSON line.
#
# Usage: bash benches/llm_dispute.sh [runs]      (needs scripts/setup.sh for anvil)
#   OPML=path/to/opml (default: $CARGO_TARGET_DIR or target, release/opml)
#   KEEP=DIR: copy each run's logs there
#   GGUF=... PROMPT=... TOKEN=32 NODE=pos40.blk.15.ffn_up STEP=1000000 MAX_PROMPT=32 MAX_NEW=64
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OPML="${OPML:-${CARGO_TARGET_DIR:-$REPO/target}/release/opml}"
GGUF="${GGUF:-$REPO/.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
RUNS="${1:-1}"
MAX_PROMPT="${MAX_PROMPT:-32}"
MAX_NEW="${MAX_NEW:-64}"
NEW="${NEW:-64}"
PROMPT="${PROMPT:-Write a short story about a robot who learns to paint.}"
TOKEN="${TOKEN:-32}"
NODE="${NODE:-pos40.blk.15.ffn_up}"
STEP="${STEP:-1000000}"
FAULTS=("token:$TOKEN" "node:$NODE" "step:$NODE:$STEP")
[[ -x $OPML ]] || { echo "build first: cargo build --release -p opml-cli (or set OPML)" >&2; exit 1; }
[[ -f $GGUF ]] || { echo "no model: $GGUF" >&2; exit 1; }
TMP="$(mktemp -d)"
export OPML_HOME="$TMP/home"
cleanup() {
    # The watchers this script started (their pids, one a line).
    [[ -f $TMP/pids ]] && while read -r p; do kill -9 "$p" 2>/dev/null || true; done <"$TMP/pids"
    "$OPML" devnet down >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT
K1=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d   # submitter (anvil #1)
K3=0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6   # challenger (anvil #3)
now() { date +%s.%N; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

# Start `opml watch` under /usr/bin/time -v; prints the opml process's pid (the child of time).
start_watcher() { # name data-dir role extra...
    local name=$1 data=$2 role=$3; shift 3
    /usr/bin/time -v -o "$TMP/$name.time" "$OPML" watch --role "$role" --models "$TMP/models" \
        --data-dir "$data" --poll-ms 100 --deployment "$D" --json "$@" \
        >"$TMP/$name.log" 2>"$TMP/$name.err" &
    local tpid=$! child=""
    for _ in $(seq 100); do
        child=$(cat "/proc/$tpid/task/$tpid/children" 2>/dev/null | awk '{print $1}')
        [[ -n $child ]] && break
        sleep 0.05
    done
    echo "$child" >>"$TMP/pids"
    echo "$child"
}
# Wait until file $1 has $2 lines matching $3 (timeout $4 s).
wait_for() {
    local t0; t0=$(date +%s)
    while (( $(grep -c -- "$3" "$1" 2>/dev/null || true) < $2 )); do
        (( $(date +%s) - t0 > $4 )) && { echo "timeout waiting for $3 in $1" >&2; tail -5 "$1" >&2; return 1; }
        sleep 0.2
    done
}
# Stop a watcher (SIGTERM to opml, SIGKILL after 30 s; time -v then writes its report).
stop_watcher() {
    kill "$1" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$1" 2>/dev/null || true
    sleep 0.5
}

echo "== machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(load)"
mkdir -p "$TMP/models"
BUNDLE="$TMP/models/smollm2.opmlllm"
t0=$(now)
"$OPML" model import "$GGUF" -o "$BUNDLE" --max-prompt "$MAX_PROMPT" --max-new "$MAX_NEW" >/dev/null
echo "import (limits $MAX_PROMPT + $MAX_NEW): $(python3 -c "print(round($(now)-$t0,1))") s"

for run in $(seq "$RUNS"); do
    echo "== run $run (load $(load))"
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "$OPML" devnet up --port "$PORT" --fresh --json >"$TMP/devnet.json"
    D="$OPML_HOME/devnet/deployment.json"
    RPC="http://127.0.0.1:$PORT"
    t0=$(now)
    "$OPML" chain register "$BUNDLE" --deployment "$D" --key "$K1" --json >"$TMP/register.json"
    register_s=$(python3 -c "print(round($(now)-$t0,2))")
    OUT="$TMP/run$run"
    mkdir -p "$OUT"
    echo "{\"load_start\": \"$(load)\", \"register_s\": $register_s}" >"$OUT/meta.json"

    # Plain generation of the same prompt (the honest path's reference), then the claim.
    t0=$(now)
    "$OPML" generate "$BUNDLE" --prompt "$PROMPT" --max-new-tokens "$NEW" --ignore-eos --json >"$OUT/generate.json"
    echo "{\"generate_s\": $(python3 -c "print($(now)-$t0)")}" >"$OUT/generate_time.json"

    CH=$(start_watcher "ch$run" "$TMP/ch$run.data" challenger --key "$K3")
    wait_for "$TMP/ch$run.log" 1 '"event":"start"' 120
    t0=$(now)
    "$OPML" chain claim "$BUNDLE" --prompt "$PROMPT" --max-new-tokens "$NEW" --deployment "$D" --key "$K1" \
        --json >"$OUT/claim_honest.json"
    echo "{\"claim_s\": $(python3 -c "print($(now)-$t0)"), \"load\": \"$(load)\"}" >"$OUT/claim_honest_time.json"
    wait_for "$TMP/ch$run.log" 1 '"event":"verdict"' 300
    echo "honest claim: verdict $(grep '"event":"verdict"' "$TMP/ch$run.log" | head -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["verdict"])')"

    n=0
    for f in "${FAULTS[@]}"; do
        n=$((n + 1))
        # One data directory for the run's submitters: each knows the earlier games ended.
        SUB=$(start_watcher "sub$run.$n" "$TMP/sub$run.data" submitter --key "$K1" --dishonest "$f")
        wait_for "$TMP/sub$run.$n.log" 1 '"event":"start"' 120
        l0=$(load)
        t0=$(now)
        "$OPML" chain claim "$BUNDLE" --prompt "$PROMPT" --max-new-tokens "$NEW" --deployment "$D" --key "$K1" \
            --dishonest "$f" --json >"$OUT/claim$n.json" 2>/dev/null
        claim_s=$(python3 -c "print($(now)-$t0)")
        wait_for "$TMP/ch$run.log" "$n" '"event":"game_end"' 1200
        wait_for "$TMP/sub$run.$n.log" 1 '"event":"game_end"' 120
        hwm=$(awk '/VmHWM/ {print $2}' "/proc/$CH/status")
        echo "{\"fault\": \"$f\", \"claim_s\": $claim_s, \"load_before\": \"$l0\", \"load_after\": \"$(load)\", \"challenger_vmhwm_kb\": $hwm}" \
            >"$OUT/claim${n}_meta.json"
        stop_watcher "$SUB"
        cp "$TMP/sub$run.$n.log" "$OUT/sub$n.log"; cp "$TMP/sub$run.$n.time" "$OUT/sub$n.time"
        echo "lie $n ($f): game over (load $(load))"
    done
    stop_watcher "$CH"
    cp "$TMP/ch$run.log" "$OUT/ch.log"; cp "$TMP/ch$run.time" "$OUT/ch.time"
    echo "{\"load_end\": \"$(load)\"}" >"$OUT/meta_end.json"
    # Calldata is read from the chain: before it goes down.
    python3 "$REPO/benches/llm_dispute.py" "$OUT" "$RPC" ${#FAULTS[@]} | tee "$OUT/report.txt"
    [[ -n ${KEEP:-} ]] && cp -r "$OUT" "$KEEP/run$run"
    "$OPML" devnet down >/dev/null 2>&1 || true
done
