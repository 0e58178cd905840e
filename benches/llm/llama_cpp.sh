#!/usr/bin/env bash
# llama.cpp peer for the SmolLM2-135M figures in docs/benchmarks.md (not part of CI).
#
# Builds llama-cpp-python (llama.cpp's Python binding, compiled from source) in a
# private venv under the ignored .cache/peers/, then runs benches/llm/llama_cpp_eval.py
# with the float reference (benches/llm/float_ref.py) as the other side.
#
# Usage: bash benches/llm/llama_cpp.sh [build|eval|all] [GGUF]   (default: all)
#   GGUF defaults to .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf.
#
# Needs Debian's cmake, g++ and python3-venv (installed with apt-get when run as root).
# The build compiles for AVX2/AVX-512/VNNI explicitly, not -march=native: on a VM whose
# cpuinfo lists AMX that the hypervisor does not allow, a native build dies with
# "Illegal instruction". Takes 10-20 min on 2 cores.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PEER="$REPO/.cache/peers/llama-cpp-python"
VENV="$PEER/venv"
VERSION=0.3.36
WHAT="${1:-all}"
GGUF="${2:-$REPO/.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"

build() {
    if [[ -x $VENV/bin/python ]] && "$VENV/bin/python" -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$VERSION')" 2>/dev/null; then
        echo "llama-cpp-python $VERSION already built in $VENV"
        return
    fi
    if ! command -v cmake >/dev/null 2>&1; then
        [[ $(id -u) -eq 0 ]] || { echo "install cmake (apt-get install cmake)" >&2; exit 1; }
        apt-get install -y -q cmake g++ python3-venv
    fi
    mkdir -p "$PEER"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REPO/benches/llm/requirements.txt"
    echo "building llama-cpp-python $VERSION (CMAKE_ARGS=$CMAKE_ARGS)"
    MAKEFLAGS="-j$(nproc)" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
        nice -n 5 "$VENV/bin/pip" install --disable-pip-version-check --no-cache-dir \
        --no-binary llama-cpp-python "llama-cpp-python==$VERSION" 2>&1 | tail -n 20
    "$VENV/bin/python" -c 'import llama_cpp; print("llama_cpp", llama_cpp.__version__)'
}

# The float side is a dump of float_ref.py (made here once, in the same venv: it has
# numpy, gguf and tokenizers from requirements.txt), the file the Rust side compares with.
evaluate() {
    [[ -f $GGUF ]] || { echo "no model at $GGUF (see benches/llm/README.md)" >&2; exit 1; }
    local dump="$REPO/.cache/llm/float_ref.npz"
    if [[ ! -f $dump ]]; then
        mkdir -p "$(dirname "$dump")"
        nice -n 5 "$VENV/bin/python" "$REPO/benches/llm/float_ref.py" --model "$GGUF" dump \
            --out "$dump" --prompts "$REPO/benches/llm/prompts.txt" --json | tee "$PEER/float_dump.json"
    fi
    "$VENV/bin/python" "$REPO/benches/llm/llama_cpp_eval.py" --model "$GGUF" --ref "$dump" --json "$PEER/eval.json"
}

case "$WHAT" in
build) build ;;
eval) evaluate ;;
all) build && evaluate ;;
*) echo "usage: $0 [build|eval|all] [GGUF]" >&2; exit 2 ;;
esac
