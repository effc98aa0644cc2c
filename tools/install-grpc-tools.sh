#!/usr/bin/env bash
# Installs the gRPC clients the AI service's tests and benchmark use, pinned, into a cache
# directory (default build/grpc-tools; WS_GRPC_TOOLS overrides): grpcurl and ghz (go install),
# and a Python venv with grpcio, grpcio-tools and grpcio-health-checking at one version.
# Idempotent and safe to run from parallel tests (flock). Prints the directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${WS_GRPC_TOOLS:-$root/build/grpc-tools}
GRPC_PY=1.85.1
VENV_TAG=grpc-$GRPC_PY-h2-4.1.0
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
export PATH=$PATH:/usr/local/go/bin
if [ ! -x "$dir/bin/grpcurl" ] || [ ! -x "$dir/bin/ghz" ]; then
  command -v go >/dev/null || { echo "install-grpc-tools: go is required (https://go.dev/dl)" >&2; exit 1; }
  GOBIN="$dir/bin" go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4 >&2
  GOBIN="$dir/bin" go install github.com/bojand/ghz/cmd/ghz@v0.93.0 >&2
fi
if [ ! -f "$dir/venv/.$VENV_TAG" ]; then
  rm -rf "$dir/venv"
  python3 -m venv "$dir/venv"
  "$dir/venv/bin/pip" install -q "grpcio==$GRPC_PY" "grpcio-tools==$GRPC_PY" \
    "grpcio-health-checking==$GRPC_PY" "h2==4.1.0" >&2
  touch "$dir/venv/.$VENV_TAG"
fi
echo "$dir"
