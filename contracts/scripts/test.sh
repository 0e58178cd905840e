#!/usr/bin/env bash
# Runs the forge tests of the contracts (run scripts/setup.sh first).
#
#   bash contracts/scripts/test.sh [forge test args...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
"$(bash scripts/bin.sh forge)" test "$@"
