#!/usr/bin/env bash
# Whole-transaction gas of `step` on a local anvil (its default hardfork and calldata
# pricing) for some fixed vectors of fixtures/step-vectors/vectors.json.
#
#   bash contracts/scripts/anvil_gas.sh [vector names...]
#
# Starts anvil on 127.0.0.1 (port $ANVIL_PORT, default 18545), deploys Step from forge's
# artifact with anvil's unlocked dev account, sends one transaction per vector and prints
# "name gasUsed calldata_bytes". Stops anvil on exit. Run scripts/setup.sh first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
anvil="$(bash scripts/bin.sh anvil)"
cast="$(bash scripts/bin.sh cast)"
port="${ANVIL_PORT:-18545}"
rpc="http://127.0.0.1:$port"
from=0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266 # anvil's first dev account (unlocked)
vectors=../fixtures/step-vectors/vectors.json
names=("$@")
if [[ ${#names[@]} -eq 0 ]]; then
    names=("instruction:Add#0" "instruction:Lw#0" "instruction:Sw#0" "instruction:Beq#0"
        "instruction:Mul#0" "instruction:Ecall#0" "instruction:Dot4#0" "halted:1#0")
fi

"$anvil" --host 127.0.0.1 --port "$port" --silent &
anvil_pid=$!
trap 'kill "$anvil_pid" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    "$cast" block-number --rpc-url "$rpc" >/dev/null 2>&1 && break
    sleep 0.2
done
echo "anvil hardfork: $("$cast" rpc --rpc-url "$rpc" anvil_nodeInfo | python3 -c 'import json,sys; print(json.load(sys.stdin)["hardFork"])')"

code="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytecode"]["object"])' out/Step.sol/Step.json)"
step="$("$cast" send --rpc-url "$rpc" --unlocked --from "$from" --create "$code" --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["contractAddress"])')"

for name in "${names[@]}"; do
    read -r state proof < <(python3 - "$vectors" "$name" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
v = next(v for v in doc["vectors"] if v["name"] == sys.argv[2])
print(v["state"], v["proof"] if v["proof"] != "0x" else "0x")
PY
)
    data="$("$cast" calldata "step(bytes,bytes)" "$state" "$proof")"
    gas="$("$cast" send --rpc-url "$rpc" --unlocked --from "$from" "$step" "$data" --json |
        python3 -c 'import json,sys; r=json.load(sys.stdin); assert r["status"]=="0x1", r; print(int(r["gasUsed"],16))')"
    echo "$name $gas $(((${#data} - 2) / 2))"
done
