#!/usr/bin/env bash
# Creates (or reuses) the Python venvs that write the GGUF reference data and run the peer
# benchmarks, under build/ of the repo, with pinned versions from PyPI only:
#   build/pyref-venv     torch (PyPI's default CUDA wheel, run on the CPU; see below), transformers, gguf, tokenizers,
#                        safetensors, numpy, peft, sentencepiece
#   build/llamacpp-venv  llama-cpp-python built from source with fixed x86-64 flags (the native
#                        build, -march=native, crashes on this CPU), numpy
# Usage: tools/pyref-venv.sh [pyref|llamacpp|all]     (default pyref). Prints the venv's path last.
# Idempotent: a venv whose stamp file matches the pinned set is reused as it is.
set -euo pipefail
self=$(readlink -f "$0")
cd "$(dirname "$self")/.."
name=${1:-pyref}
py=${PYTHON:-python3}

# torch: PyPI has no CPU-only Linux x86-64 wheel (the "+cpu" builds live on an index we cannot
# reach), so the default CUDA wheel is installed with its nvidia-* dependencies (~3 GB on disk,
# downloaded once; nothing of CUDA is used at run time). Installing torch with --no-deps does not
# work: `import torch` preloads libcublasLt & co. and raises ValueError without them (checked).
TORCH_VER=2.10.0
PYREF_PKGS="numpy==2.4.6 transformers==5.24.0 tokenizers==0.23.3 safetensors==0.8.0 gguf==0.18.0 peft==0.21.2 sentencepiece==0.2.1 huggingface-hub==2.4.0"
LLAMA_VER=0.3.36
LLAMA_DEPS="numpy==2.1.3 diskcache==5.6.3 jinja2==3.1.6 MarkupSafe==3.0.4 typing-extensions==4.16.0"
LLAMA_CMAKE="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF"

make_venv() { # dir stamp-text install-fn
  local dir=$1 stamp=$2 fn=$3
  if [ -x "$dir/bin/python" ] && [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$stamp" ]; then
    echo "pyref-venv: $dir is up to date" >&2
  else
    rm -rf "$dir"
    "$py" -m venv "$dir"
    "$dir/bin/pip" install --quiet --upgrade pip==24.3.1
    "$fn" "$dir"
    echo "$stamp" > "$dir/.stamp"
  fi
  echo "$dir"
}

install_pyref() {
  local dir=$1
  # shellcheck disable=SC2086
  "$dir/bin/pip" install --progress-bar off "torch==$TORCH_VER" $PYREF_PKGS
  "$dir/bin/python" -c 'import torch, transformers, gguf, peft; print("torch", torch.__version__, "transformers", transformers.__version__)'
}

install_llamacpp() {
  local dir=$1
  # shellcheck disable=SC2086
  "$dir/bin/pip" install $LLAMA_DEPS
  CMAKE_ARGS="$LLAMA_CMAKE" CMAKE_BUILD_PARALLEL_LEVEL=${JOBS:-2} \
    "$dir/bin/pip" install --verbose --no-binary=llama-cpp-python --no-cache-dir "llama-cpp-python==$LLAMA_VER"
  "$dir/bin/python" -c 'import llama_cpp; print("llama_cpp", llama_cpp.__version__)'
}

case "$name" in
  pyref) make_venv build/pyref-venv "torch==$TORCH_VER $PYREF_PKGS" install_pyref ;;
  llamacpp) make_venv build/llamacpp-venv "llama-cpp-python==$LLAMA_VER $LLAMA_DEPS $LLAMA_CMAKE" install_llamacpp ;;
  all) "$self" pyref; "$self" llamacpp ;;
  *) echo "usage: $0 [pyref|llamacpp|all]" >&2; exit 2 ;;
esac
