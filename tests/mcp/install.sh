#!/usr/bin/env bash
# Installs tests/mcp's pinned npm packages (npm ci) unless the installed tree already matches
# package-lock.json. Serialised with flock: several test scripts may call it at once.
set -euo pipefail
cd "$(dirname "$0")"
exec 9> .install.lock
flock 9
sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -x node_modules/.bin/node ] || [ "$(cat node_modules/.ws-lock-sha 2>/dev/null)" != "$sum" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$sum" > node_modules/.ws-lock-sha
fi
