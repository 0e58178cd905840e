#!/usr/bin/env bash
# Installs everything opml needs on a fresh Debian machine, builds it and runs
# the main job: `opml demo`, the whole product loop on a private devnet (an honest
# claim finalized, a false claim caught by a watcher and voided, a true claim
# defended against a lying challenger), checked.
#
#   bash scripts/setup.sh            # every step, in order
#   bash scripts/setup.sh STEP...    # only the named steps, e.g. build_programs
#
# Steps: install_apt install_python install_foundry build_programs fetch_models build_rust run_demo
# Idempotent: a step whose result is already there is quick. Runs as root, or
# as a user with passwordless sudo (CI=true has no stdin to ask a password).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
PROGRAMS_OUT="$REPO/target/programs"
APT_PACKAGES=(gcc-riscv64-unknown-elf gcc libc6-dev python3 python3-venv)
STEPS=(install_apt install_python install_foundry build_programs fetch_models build_rust run_demo)

step() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@" || die "'$*' needs root: run as root or configure passwordless sudo"
    else
        die "'$*' needs root and sudo is not installed"
    fi
}

is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# Debian packages: the RV32 cross compiler for the C test programs, a native
# gcc and libc headers for their host builds, Python with venv for the
# unicorn oracle.
install_apt() {
    step "install_apt: Debian packages (${APT_PACKAGES[*]})"
    command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script needs Debian or Ubuntu"
    local missing=()
    local pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        if is_installed "$pkg"; then
            info "$pkg: installed"
        elif [[ $pkg == python3* ]] && python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
            # a python3 with a working venv module (e.g. not Debian's) will do
            info "$pkg: not needed, $(command -v python3) has venv and ensurepip"
        else
            missing+=("$pkg")
        fi
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        info "nothing to install"
        return
    fi
    info "installing: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    command -v riscv64-unknown-elf-gcc >/dev/null 2>&1 || die "riscv64-unknown-elf-gcc still missing after apt-get"
}

# Python venv at <repo>/.venv with scripts/requirements.txt (unicorn, ...).
install_python() {
    step "install_python: venv $VENV"
    local req="$REPO/scripts/requirements.txt"
    local stamp="$VENV/.requirements.sha256"
    if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        info "creating the venv"
        rm -rf "$VENV"
        python3 -m venv "$VENV"
    fi
    local want
    want="$(sha256sum "$req" | cut -d' ' -f1)"
    if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
        info "requirements unchanged since the last install"
    else
        info "pip install -r scripts/requirements.txt"
        "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$req"
        printf '%s\n' "$want" >"$stamp"
    fi
    "$VENV/bin/python" -c 'import unicorn; print("    unicorn", unicorn.__version__)'
}

# Foundry (forge, anvil, cast) and solc-js from npm, then `forge build` (contracts/out is
# what the Rust <-> EVM tests load).
install_foundry() {
    step "install_foundry: npm ci + forge build in contracts/"
    command -v npm >/dev/null 2>&1 || die "npm not found: install Node.js (apt-get install nodejs npm)"
    bash "$REPO/contracts/scripts/setup.sh"
}

# The C test programs: <repo>/target/programs/NAME.elf (and NAME.host).
build_programs() {
    step "build_programs: fixtures/programs -> target/programs"
    bash "$REPO/fixtures/programs/build.sh" "$PROGRAMS_OUT"
}

# The language models (weights are never committed): <repo>/.cache/models/, each checked by
# its sha256 (scripts/fetch_models.sh).
fetch_models() {
    step "fetch_models: language models -> .cache/models"
    bash "$REPO/scripts/fetch_models.sh"
}

build_rust() {
    step "build_rust: cargo build --release -p opml-cli"
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install a Rust toolchain (rust-version in Cargo.toml)"
    (cd "$REPO" && cargo build --release -p opml-cli)
}

# The main job: the demo on a private devnet (exits non-zero unless every outcome is the
# expected one).
run_demo() {
    step "run_demo: opml demo (digits CNN, a false claim at a middle node)"
    "$REPO/target/release/opml" demo
}

main() {
    local steps=("$@")
    if [[ ${#steps[@]} -eq 0 ]]; then
        steps=("${STEPS[@]}")
    fi
    local s
    for s in "${steps[@]}"; do
        [[ " ${STEPS[*]} " == *" $s "* ]] || die "unknown step '$s' (steps: ${STEPS[*]})"
    done
    for s in "${steps[@]}"; do
        "$s"
    done
    step "setup done"
}

main "$@"
