#!/usr/bin/env bash
# The server's black-box suite (tests/unit/test_http_api.c: the REST contract, MCP, rate
# limits, cache behaviour, erasure, restart) and the conversation writer's no-loss test
# (tests/unit/test_server_writer.c) against REAL PostgreSQL and Redis started here on loopback,
# and `whatstyle serve` itself on PostgreSQL + Redis (readiness, auth, SIGTERM).
# Usage: server_services.sh path/to/whatstyle. Fails if a service cannot be started.
set -euo pipefail
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
bindir=$(dirname "$bin")
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../services/services.sh"

ws_svc_pg
ws_svc_redis

echo "== test_http_api on PostgreSQL + Redis"
WS_TEST_STORE_URL=$WS_PG_URL WS_TEST_CACHE_URL=$WS_REDIS_URL "$bindir/test_http_api"

echo "== test_session on Redis (dashboard sessions shared through the cache)"
WS_TEST_CACHE_URL=$WS_REDIS_URL "$bindir/test_session"

echo "== test_server_writer on PostgreSQL (lossless conversation writer; connections killed mid-burst)"
WS_TEST_STORE_URL=$WS_PG_URL "$bindir/test_server_writer"

echo "== whatstyle serve on PostgreSQL + Redis"
data=$(mktemp -d)
key=$(WS_STORE_URL=$WS_PG_URL "$bin" keys create --data "$data" --user "svc-$RANDOM$RANDOM" 2>"$data/keys.err") ||
  { cat "$data/keys.err"; exit 1; }
port=$(ws_svc_free_port)
cfg="$data/serve.conf"
printf 'store = %s\ncache = %s\nthreads = 2\n' "$WS_PG_URL" "$WS_REDIS_URL" > "$cfg"
"$bin" serve --port "$port" --data "$data" --host 127.0.0.1 --config "$cfg" > "$data/log" 2>&1 &
pid=$!
fail() { echo "FAIL: $*"; cat "$data/log"; exit 1; }
for _ in $(seq 1 400); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.05; done
ready=$(curl -s "http://127.0.0.1:$port/readyz") || fail "server not up"
echo "$ready"
[[ $ready == *'"store_backend":"postgres"'* ]] || fail "not on postgres"
[[ $ready == *'"cache_backend":"redis"'* ]] || fail "not on redis"
[[ $ready == *'"status":"ready"'* ]] || fail "not ready"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" "http://127.0.0.1:$port/v1/me")" = 200 ] || fail "key"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/me")" = 401 ] || fail "no key"
kill -TERM $pid
wait $pid
grep -q "stopped" "$data/log"

echo "== MCP SDK client against the gateway on PostgreSQL + Redis (sessions live in Redis)"
bash "$here/../mcp/install.sh"
WS_STORE_URL=$WS_PG_URL WS_CACHE_URL=$WS_REDIS_URL WS_TEST_TRAIN_DELAY_MS=600 \
  "$bindir/helper_serve_double" "$data/h" "$data/info.json" 0 2 > "$data/hlog" 2>&1 &
hpid=$!
for _ in $(seq 1 400); do [ -s "$data/info.json" ] && break; sleep 0.05; done
(cd "$here/../mcp" && ./node_modules/.bin/node sdk_client.mjs "$data/info.json" "$here/../fixtures/server/chat_ann_bob.txt")
kill -TERM $hpid
wait $hpid
rm -rf "$data"
echo "ok"
