#!/usr/bin/env bash
# Service-loop figures for docs/benchmarks.md §Service loop (not part of the suite):
#   1. `opml demo --json` on the digits CNN (default fault: a middle node): wall time and
#      gas of the dishonest dispute, latency from ClaimPosted to the watcher's challenge;
#   2. the challenger watcher's memory while it follows 8 games at once (8 false claims
#      of the digits CNN posted back to back; VmHWM of its process).
# Usage: bash benches/service.sh [runs]   (needs scripts/setup.sh; uses target/release/opml)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OPML="$REPO/target/release/opml"
RUNS="${1:-3}"
[[ -x $OPML ]] || { echo "build first: cargo build --release -p opml-cli" >&2; exit 1; }
TMP="$(mktemp -d)"
ANVIL_PID=""
cleanup() {
    [[ -n $ANVIL_PID ]] && kill "$ANVIL_PID" 2>/dev/null || true
    jobs -p | xargs -r kill 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
export OPML_HOME="$TMP/home"

echo "== demo (digits CNN, fault node:4), $RUNS runs"
for i in $(seq "$RUNS"); do
    "$OPML" demo --json >"$TMP/demo$i.json"
    python3 - "$TMP/demo$i.json" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
g = next(g for g in v["games"] if g["claim"] == 2)  # the false claim's game
print(f"run: ok={v['ok']} dishonest dispute: {g['seconds']:.2f} s, {g['gas']:,} gas, "
      f"{g['graph_rounds']}+{g['vm_rounds']} rounds, {g['transactions']} txs; "
      f"challenge latency {v['challenge_latency_ms']:.0f} ms; whole demo {v['seconds']:.1f} s")
PY
done

echo "== challenger watcher following 8 games (digits CNN)"
ANVIL="$(bash "$REPO/contracts/scripts/bin.sh" anvil)"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$ANVIL" --port "$PORT" --silent >"$TMP/anvil.log" 2>&1 &
ANVIL_PID=$!
for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
K0=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
K1=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
K3=0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6
D="$TMP/deployment.json"
"$OPML" chain deploy --rpc "http://127.0.0.1:$PORT" --key "$K0" --out "$D" --window 120 --clock 600 >/dev/null
mkdir -p "$TMP/models"
cp "$REPO/fixtures/digits/cnn.opml" "$TMP/models/"
FAULTS=(output node:1 node:2 node:4 node:6 node:7 step:3:20000 step:3:40000)
SUBARGS=()
for f in "${FAULTS[@]}"; do SUBARGS+=(--dishonest "$f"); done
"$OPML" watch --role submitter --models "$TMP/models" --data-dir "$TMP/sub" --poll-ms 100 \
    --deployment "$D" --key "$K1" --json "${SUBARGS[@]}" >"$TMP/sub.log" 2>&1 &
"$OPML" watch --role challenger --models "$TMP/models" --data-dir "$TMP/ch" --poll-ms 100 \
    --deployment "$D" --key "$K3" --json >"$TMP/ch.log" 2>&1 &
CH_PID=$!
start=$(date +%s.%N)
for i in "${!FAULTS[@]}"; do
    "$OPML" chain claim "$REPO/fixtures/digits/cnn.opml" --input "$REPO/fixtures/digits/test_cnn.safetensors" \
        --index "$i" --deployment "$D" --key "$K1" --dishonest "${FAULTS[$i]}" >/dev/null 2>&1
done
peak=0
for _ in $(seq 600); do
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$CH_PID/status")
    (( hwm > peak )) && peak=$hwm
    ended=$(grep -c '"event":"game_end"' "$TMP/ch.log" || true)
    [[ $ended -ge ${#FAULTS[@]} ]] && break
    sleep 0.5
done
end=$(date +%s.%N)
echo "games ended: $ended of ${#FAULTS[@]}; wall $(python3 -c "print(round($end-$start,1))") s from the first claim;" \
    "challenger watcher peak RSS (VmHWM) $((peak / 1024)) MiB"
grep -c '"winner":"challenger"' "$TMP/ch.log" | sed 's/^/games won by the challenger: /'
