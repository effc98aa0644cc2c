#!/usr/bin/env bash
# The official MCP conformance suite (@modelcontextprotocol/conformance, on Node 22 from
# npm) runs its server scenarios against /mcp. Known failures are listed and explained in
# tests/mcp/conformance-baseline.yml; any other failure (or a baseline entry that starts
# passing) fails this test. The suite cannot send an Authorization header, so it talks to
# the server through tests/mcp/auth_proxy.mjs, which adds one. Usage: mcp_conformance.sh BIN
set -euo pipefail
bindir=$(cd "$(dirname "$1")" && pwd)
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root/tests/mcp"
bash install.sh
export PATH="$PWD/node_modules/.bin:$PATH"
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill $p 2>/dev/null; done; wait 2>/dev/null; rm -rf "$work"' EXIT
"$bindir/helper_serve_double" "$work" "$work/info.json" 0 2 > "$work/log" 2>&1 &
pids+=($!)
for _ in $(seq 1 400); do [ -s "$work/info.json" ] && break; sleep 0.05; done
port=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).port)' "$work/info.json")
key=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).key)' "$work/info.json")
pport=$(node -e 's=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
node auth_proxy.mjs "$pport" "$port" "$key" > "$work/proxy.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 400); do grep -q "proxy on" "$work/proxy.log" && break; sleep 0.05; done
conformance server --url "http://127.0.0.1:$pport/mcp" --expected-failures conformance-baseline.yml \
  -o "$work/results" > "$work/out.txt" 2>&1 || { cat "$work/out.txt"; exit 1; }
sed -n '/=== SUMMARY ===/,$p' "$work/out.txt"
