#!/usr/bin/env bash
# The outbox relay against a real PostgreSQL and Apache Kafka broker (started here on
# loopback): throughput draining a backlog (events/s) and the delay from commit to the
# broker's acknowledgement (p50/p99) under a steady load; medians of RUNS runs.
# Usage: bench/outbox_relay.sh [RUNS] [N] [RATE] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}; n=${2:-20000}; rate=${3:-500}; secs=${4:-6}
make -s all >/dev/null
source tests/services/services.sh
source tests/services/kafka.sh
ws_svc_pg >/dev/null
ws_svc_kafka >/dev/null
out=$(mktemp); trap 'rm -f "$out"; ws_svc_cleanup' EXIT
for r in $(seq "$runs"); do
  ./build/bench_outbox_relay "$WS_PG_URL" "$WS_KAFKA_BROKERS" "$n" "$rate" "$secs" | tee -a "$out"
done
python3 - "$out" <<'PY'
import re, statistics, sys
rows = [list(map(float, re.findall(r"at ([0-9.]+) events/s.*p50 ([0-9.]+) ms p99 ([0-9.]+) ms", l)[0]))
        for l in open(sys.argv[1]) if "events/s" in l]
med = [statistics.median(c) for c in zip(*rows)]
print(f"median of {len(rows)} runs: {med[0]:.0f} events/s drained; commit->broker p50 {med[1]:.0f} ms, p99 {med[2]:.0f} ms")
PY
