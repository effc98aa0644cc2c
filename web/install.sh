#!/usr/bin/env bash
# Installs web/'s pinned npm packages (npm ci) unless the installed tree already matches
# package-lock.json. Serialised with flock: make and the tests may call it at once.
set -euo pipefail
cd "$(dirname "$0")"
exec 9> .install.lock
flock 9
sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -d node_modules/@playwright/test ] || [ "$(cat node_modules/.ws-lock-sha 2>/dev/null)" != "$sum" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$sum" > node_modules/.ws-lock-sha
fi
