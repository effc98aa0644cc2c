#!/usr/bin/env bash
# Runs build/bench_store_cache against SQLite and a PostgreSQL started here on loopback, and
# against the in-process cache and a redis-server started here. Usage: bench/store_cache.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/services/services.sh
ws_svc_pg
ws_svc_redis
WS_BENCH_PG_URL=$WS_PG_URL WS_BENCH_REDIS_URL=$WS_REDIS_URL build/bench_store_cache
