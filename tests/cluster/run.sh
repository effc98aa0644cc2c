#!/usr/bin/env bash
# The cluster tests, on ONE cluster brought up once (tools/cluster.sh up in a private state
# folder, torn down and wiped at the end): PostgreSQL primary + replica, Redis, SeaweedFS, 2
# `whatstyle ai` nodes, Kafka, 1 `worker`, 2 `serve --kafka` gateways behind nginx.
#   1. contract.sh  the REST contract and the MCP TypeScript SDK client, through nginx
#   2. e2e.sh       upload -> outbox -> Kafka -> worker -> the model sealed in S3 -> a reply (AI nodes)
#   3. faults.sh    a steady load while one part at a time fails; the per-fault report
# Usage: run.sh path/to/whatstyle
set -uo pipefail
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export WS_CLUSTER_DIR
WS_CLUSTER_DIR=$(mktemp -d /tmp/ws-cluster.XXXXXX)
chmod 755 "$WS_CLUSTER_DIR"
export WS_BIN=$bin WS_BASE_MODEL=none WS_MINILM_DIR=/nonexistent
down() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "== logs (tails) of the failed run"
    for f in "$WS_CLUSTER_DIR"/logs/*.log; do echo "--- $f"; tail -15 "$f"; done
  fi
  bash "$root/tools/cluster.sh" down
  # the gateways and AI nodes exited (SIGTERM): any sanitizer report in their logs (the ASan
  # build's run) fails the test
  if grep -lE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$WS_CLUSTER_DIR"/logs/{gw,ai,worker}*.log \
       2>/dev/null; then
    echo "FAIL: sanitizer reports in the logs above"
    grep -hE -A12 "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$WS_CLUSTER_DIR"/logs/{gw,ai,worker}*.log | head -60
    rc=1
  fi
  bash "$root/tools/cluster.sh" down --wipe > /dev/null
  exit "$rc"
}
trap down EXIT
t0=$(date +%s)
out=$(bash "$root/tools/cluster.sh" up) || { echo "FAIL: cluster up"; exit 1; }
echo "$out"
[ "$(echo "$out" | wc -l)" -eq 2 ] || { echo "FAIL: up must print exactly two lines"; exit 1; }
eval "$(echo "$out" | grep -E '^WS_(URL|ADMIN_KEY)=[A-Za-z0-9_:/.-]+$')"
[ -n "${WS_URL:-}" ] && [ -n "${WS_ADMIN_KEY:-}" ] || { echo "FAIL: up printed no WS_URL / WS_ADMIN_KEY"; exit 1; }
export WS_URL WS_ADMIN_KEY
echo "== cluster up in $(($(date +%s) - t0)) s"
bash "$root/tools/cluster.sh" status || { echo "FAIL: status shows a part down"; exit 1; }
# a second `up` is a no-op that prints the same two lines
again=$(bash "$root/tools/cluster.sh" up 2>/dev/null)
[ "$again" = "$out" ] || { echo "FAIL: a second up printed something else: $again"; exit 1; }

status=0
for t in contract e2e faults; do
  echo "== $t"
  bash "$here/$t.sh" "$bin" || { echo "FAIL: $t"; status=1; }
done
exit $status
