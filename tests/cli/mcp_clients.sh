#!/usr/bin/env bash
# Real clients from npm against the server: the official MCP TypeScript SDK client, the MCP
# Inspector CLI (1.0.3, --transport http) and an OpenAPI response check (docs/api/openapi.yaml
# with ajv). Installs tests/mcp's pinned packages with `npm ci` (Node 22 comes from the npm
# package "node"). The server is tests/helpers/serve_double.c: the real gateway with the
# counting test-double AI. Usage: mcp_clients.sh path/to/whatstyle
set -euo pipefail
bindir=$(cd "$(dirname "$1")" && pwd)
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root/tests/mcp"
bash install.sh
export PATH="$PWD/node_modules/.bin:$PATH"
node --version | grep -q '^v22\.' || { echo "Node 22 missing"; exit 1; }

work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
# training runs take 0.6 s so progress streaming has something to report
WS_TEST_WA_SECRET=openapi-secret WS_TEST_WA_VERIFY_TOKEN=openapi-verify WS_TEST_TRAIN_DELAY_MS=600 "$bindir/helper_serve_double" "$work" "$work/info.json" 0 2 > "$work/log" 2>&1 &
pid=$!
for _ in $(seq 1 400); do [ -s "$work/info.json" ] && break; sleep 0.05; done
[ -s "$work/info.json" ] || { cat "$work/log"; exit 1; }
cp "$root/tests/fixtures/server/chat_ann_bob.txt" "$work/chat.txt"

echo "== MCP TypeScript SDK client"
node sdk_client.mjs "$work/info.json" "$work/chat.txt"
echo "== MCP Inspector CLI"
bash inspector_cli.sh "$work/info.json" "$work/chat.txt"
echo "== OpenAPI document vs server"
node openapi_check.mjs "$root/docs/api/openapi.yaml" "$work/info.json" "$work/chat.txt"
kill -TERM $pid
wait $pid
pid=
