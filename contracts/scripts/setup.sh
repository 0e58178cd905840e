#!/usr/bin/env bash
# Installs the contracts' toolchain from npm (forge, anvil, cast, solc-js; pinned in
# package-lock.json) and builds the contracts. Fully offline after `npm ci`: forge uses
# solc-js through scripts/solc-shim.js and never downloads a compiler.
#
#   bash contracts/scripts/setup.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
npm ci --no-audit --no-fund --loglevel=error
"$(bash scripts/bin.sh forge)" build
