#!/usr/bin/env bash
# Prints the path of a Foundry tool (forge, anvil or cast) installed from npm by setup.sh.
#
#   "$(bash contracts/scripts/bin.sh forge)" --version
set -euo pipefail
tool="${1:?usage: bin.sh forge|anvil|cast}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$here/node_modules/@foundry-rs/$tool-linux-amd64/bin/$tool"
if [[ ! -x "$bin" ]]; then
    echo "error: $bin not found: run contracts/scripts/setup.sh first" >&2
    exit 1
fi
echo "$bin"
