#!/usr/bin/env bash
# Static analysis of the contracts with Slither (pinned in scripts/requirements.txt, installed
# in .venv by `scripts/setup.sh install_python`). Fails on any finding of medium or high
# impact and on any error of Slither itself; informational and low findings are not shown.
# A finding judged a false positive carries `// slither-disable-next-line DETECTOR` with its
# reason where it stands.
#
#   bash contracts/scripts/slither.sh [slither args...]
#
# Offline: forge (solc-js behind scripts/solc-shim.js) builds src/ with build info into a
# temporary directory and Slither reads that build, so contracts/out and forge's cache are
# left alone (Slither's own forge run would `forge clean` them). Slither still runs
# `forge config`, so forge's directory goes on PATH.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
slither="$PWD/../.venv/bin/slither"
if [[ ! -x $slither ]]; then
    echo "error: $slither not found: run 'bash scripts/setup.sh install_python'" >&2
    exit 1
fi
forge="$(bash scripts/bin.sh forge)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$forge" build --build-info --skip './test/**' './scripts/**' --out "$tmp/out" --cache-path "$tmp/cache" --quiet
PATH="$(dirname "$forge"):$PATH" "$slither" . --foundry-ignore-compile --foundry-out-directory "$tmp/out" \
    --filter-paths 'test/|node_modules' --exclude-informational --exclude-low --fail-medium \
    --warn-unused-ignores --disable-color "$@"
