#!/usr/bin/env bash
# The REST and MCP contract through nginx, on the running cluster (tests/cluster/run.sh): the
# load balancer spreads requests over both gateways with keep-alive, readiness shows the
# PostgreSQL store and the Redis cache, auth and error answers, the training progress stream
# (SSE) arrives unbuffered, and the official MCP TypeScript SDK client's whole scenario
# (tests/mcp/sdk_client.mjs) passes through nginx.
set -uo pipefail
source "$(dirname "$0")/common.sh"
work=$(mktemp -d); WS_SVC_STOPS+=("rm -rf $work")

# a chat of Ann and Bob (the names tests/mcp/sdk_client.mjs expects) long enough to train on:
# Maya's and Henrik's lines of the sample, renamed, Ann first
grep -E '^[0-9/]+, [0-9:]+ - (Maya|Henrik): ' "$root/samples/group_chat.txt" | sed -n '/ - Maya: /,$p' | head -400 |
  sed -e 's/ - Maya: / - Ann: /' -e 's/ - Henrik: / - Bob: /' > "$work/chat.txt"
code() { curl -s -o "$work/body" -w '%{http_code}' "$@"; }
check "healthz through nginx" [ "$(code "$WS_URL/healthz")" = 200 ]
code "$WS_URL/readyz" > /dev/null
check "readyz: postgres store and redis cache ($(cat "$work/body"))" \
  grep -q '"store":"ok","store_backend":"postgres","cache":"ok","cache_backend":"redis"' "$work/body"
check "no key: 401" [ "$(code -X POST "$WS_URL/v1/reply" -d '{"message":"hi"}')" = 401 ]
run=$$-$RANDOM # fresh users on every run (the cluster may be a long-lived one)
ka=$(user_key "contract-a-$run")
check "a reply before any training: 409" \
  [ "$(code -H "Authorization: Bearer $ka" -H 'Content-Type: application/json' -d '{"message":"hi"}' "$WS_URL/v1/reply")" = 409 ]
check "admin key is an admin (GET /v1/me)" \
  bash -c "curl -s -H 'Authorization: Bearer $WS_ADMIN_KEY' '$WS_URL/v1/me' | grep -q '\"role\":\"admin\"'"
# both gateways answer through the balancer
before=$(wc -l < "$WS_CLUSTER_DIR/logs/nginx-access.log")
for _ in $(seq 1 20); do curl -s -o /dev/null -H "Authorization: Bearer $ka" "$WS_URL/v1/me"; done
ups=$(tail -n +"$((before + 1))" "$WS_CLUSTER_DIR/logs/nginx-access.log" | grep -o 'ua="[^"]*"' | sort | uniq -c)
check "requests spread over both gateways ($ups)" \
  bash -c "grep -q ':$PORT_GW1\"' <<< '$ups' && grep -q ':$PORT_GW2\"' <<< '$ups'"
# SSE through nginx: the job's events arrive as they happen, the stream ends at completion
curl -s -o "$work/up.json" -H "Authorization: Bearer $ka" -H 'Content-Type: text/plain' \
  --data-binary @"$work/chat.txt" "$WS_URL/v1/exports?persona=Ann&budget=4"
job=$(json_field job_id < "$work/up.json") || bad "upload: $(cat "$work/up.json")"
timeout 180 curl -sN -H "Authorization: Bearer $ka" "$WS_URL/v1/training-jobs/$job/events" > "$work/sse" 2>&1
check "SSE events through nginx until completed ($(grep -c '^event:' "$work/sse") events)" \
  grep -q '"status":"completed"' "$work/sse"
check "SSE: more than one event (progress, not one buffered answer)" [ "$(grep -c '^data:' "$work/sse")" -ge 2 ]

echo "== MCP TypeScript SDK client through nginx"
(cd "$root/tests/mcp" && bash install.sh > "$work/npm.log" 2>&1) || bad "npm install of tests/mcp: $(tail -5 "$work/npm.log")"
kc=$(user_key "contract-sdk1-$run"); kd=$(user_key "contract-sdk2-$run") # users with no model yet
printf '{"port":%s,"key":"%s","key2":"%s"}\n' "$PORT_LB" "$kc" "$kd" > "$work/info.json"
if (cd "$root/tests/mcp" && PATH="$PWD/node_modules/.bin:$PATH" WS_SDK_POLL_MS=500 WS_SDK_SETTLE_MS=2500 timeout 300 node sdk_client.mjs "$work/info.json" \
      "$work/chat.txt"); then ok "MCP SDK client scenario through nginx"
else bad "MCP SDK client scenario through nginx"; fi
finish
