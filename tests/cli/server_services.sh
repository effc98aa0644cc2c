#!/usr/bin/env bash
# The server's black-box suite (tests/unit/test_http_api.c: the REST contract, MCP, rate
# limits, cache behaviour, erasure, restart) against REAL PostgreSQL and Redis started here
# on loopback, and `whatstyle serve` itself on PostgreSQL + Redis (readiness, auth, SIGTERM).
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

echo "== whatstyle serve on PostgreSQL + Redis"
data=$(mktemp -d)
key=$(WS_STORE_URL=$WS_PG_URL "$bin" keys create --data "$data" --user "svc-$RANDOM$RANDOM" 2>/dev/null)
port=$(ws_svc_free_port)
cfg="$data/serve.conf"
printf 'store = %s\ncache = %s\nthreads = 2\n' "$WS_PG_URL" "$WS_REDIS_URL" > "$cfg"
"$bin" serve --port "$port" --data "$data" --host 127.0.0.1 --config "$cfg" > "$data/log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.05; done
ready=$(curl -s "http://127.0.0.1:$port/readyz")
echo "$ready"
echo "$ready" | grep -q '"store_backend":"postgres"'
echo "$ready" | grep -q '"cache_backend":"redis"'
echo "$ready" | grep -q '"status":"ready"'
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" "http://127.0.0.1:$port/v1/me")" = 200 ]
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/me")" = 401 ]
kill -TERM $pid
wait $pid
grep -q "stopped" "$data/log"
rm -rf "$data"
echo "ok"
