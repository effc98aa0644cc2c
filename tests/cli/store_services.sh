#!/usr/bin/env bash
# Runs the store and cache test suites against REAL servers started here on loopback: a
# PostgreSQL primary with a streaming read replica, and redis-server (SQLite and the
# in-process cache are covered in the same runs). Fails if any server cannot be started.
# Usage: store_services.sh path/to/whatstyle (the unit-test programs are beside it).
set -euo pipefail
bindir=$(cd "$(dirname "$1")" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../services/services.sh"

ws_svc_pg
ws_svc_pg_replica
ws_svc_redis

export WS_TEST_REQUIRE_PG=1 WS_TEST_REQUIRE_REDIS=1
export WS_TEST_PG_URL=$WS_PG_URL WS_TEST_PG_REPLICA_URL=$WS_PG_REPLICA_URL
export WS_TEST_REDIS_URL=$WS_REDIS_URL
status=0
for t in test_store test_cache test_whatsapp; do
  if [ -x "$bindir/$t" ]; then
    echo "== $t (sqlite/memory + postgres/redis)"
    "$bindir/$t" || status=1
  else
    echo "missing $bindir/$t"; status=1
  fi
done
exit $status
