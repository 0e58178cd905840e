#!/usr/bin/env bash
# Runs the whole opml test suite: the unicorn oracle's self-test, the forge tests, the
# format and Slither checks of the contracts, every Rust test, clippy with warnings as
# errors and the format check.
# Needs what scripts/setup.sh installs (the venv and the RISC-V toolchain).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

step() { printf '\n==> %s\n' "$*"; }

if [[ ! -x .venv/bin/python ]]; then
    echo "error: $REPO/.venv is missing: run 'bash scripts/setup.sh' first" >&2
    exit 1
fi

step "unicorn oracle self-test"
.venv/bin/python vm/tests/oracle/selftest.py

step "forge test (contracts/)"
bash contracts/scripts/test.sh

step "forge fmt --check (contracts/)"
(cd contracts && "$(bash scripts/bin.sh forge)" fmt --check)

step "slither (contracts/): no medium or high finding"
bash contracts/scripts/slither.sh

step "cargo test --workspace --exclude opml-benches"
cargo test --workspace --exclude opml-benches

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo fmt --all --check"
cargo fmt --all --check

step "all tests passed"
