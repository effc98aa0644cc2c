#!/usr/bin/env bash
# Creates build/pyref-venv with the pinned Python packages the quantization reference script
# (tools/reference/make_quant_ref.py) needs: numpy and gguf (gguf-py, llama.cpp's Python library).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=build/pyref-venv
if [ ! -x "$VENV/bin/python" ]; then
    mkdir -p build
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check "numpy==2.2.6" "gguf==0.17.1"
echo "$VENV/bin/python"
