#!/usr/bin/env bash
# The Kafka bus end to end, against a real Apache Kafka 4 broker (KRaft) and PostgreSQL started
# here on loopback (one broker for all three phases):
#  1. upload -> outbox -> relay -> Kafka training-jobs -> `whatstyle worker` -> model in the
#     blobs -> the gateway (`serve --kafka`) replies with it;
#  2. kill -9 the worker in the middle of a training run: a second worker takes the job over
#     after the rebalance, resumes from the checkpoint in the blobs, and the job completes
#     exactly once (one completion in the database, in the outbox and on the topic);
#  3. restart the broker while replies produce analytics events: every event reaches
#     analytics-events exactly once (counted by event id with kcat, an independent client).
# A second gateway runs throughout: its relay stands by (one relay publishes the outbox).
# Usage: kafka_worker.sh path/to/whatstyle
set -euo pipefail
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
cd "$(dirname "$0")/../.."
source tests/services/services.sh
source tests/services/kafka.sh
export WS_MINILM_DIR=/nonexistent WS_BASE_MODEL=none
export WS_MASTER_KEY=$(openssl rand -hex 32)
unset WS_BLOBS_URL WS_STORE_URL WS_KAFKA_BROKERS
d=$WS_SVC_DIR
pids=()
fail() {
  echo "FAIL: $*"
  for f in "$d"/*.log; do echo "== $f"; tail -30 "$f"; done
  exit 1
}
stop_all() { local p; for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; ws_svc_cleanup; }
trap stop_all EXIT
psql_q() { psql "$WS_PG_URL" -Atqc "$1"; }

ws_svc_pg || fail "PostgreSQL"
ws_svc_kafka || fail "Kafka"
B=$WS_KAFKA_BROKERS
"$bin" migrate --database-url "$WS_PG_URL" >/dev/null
key=$("$bin" keys create --database-url "$WS_PG_URL" --user maya 2>/dev/null)
mkdir -p "$d/gw" "$d/gw2" "$d/w1" "$d/w2"
port=$(ws_svc_free_port)
"$bin" serve --port "$port" --host 127.0.0.1 --data "$d/gw" --store "$WS_PG_URL" --blobs "file:$d/blobs" \
  --kafka "$B" --kafka-partitions 2 > "$d/serve.log" 2>&1 &
pids+=($!)
base="http://127.0.0.1:$port"
for _ in $(seq 1 400); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.05; done
grep -q server.kafka_started "$d/serve.log" || { sleep 2; grep -q server.kafka_started "$d/serve.log" || fail "serve --kafka"; }
# a second gateway on the same database: its relay stands by (one relay publishes the outbox)
port2=$(ws_svc_free_port)
"$bin" serve --port "$port2" --host 127.0.0.1 --data "$d/gw2" --store "$WS_PG_URL" --blobs "file:$d/blobs" \
  --kafka "$B" --kafka-partitions 2 > "$d/serve2.log" 2>&1 &
gw2=$!; pids+=($gw2)
for _ in $(seq 1 120); do grep -q '"relay.standby"' "$d/serve2.log" && break; sleep 0.25; done
grep -q '"relay.standby"' "$d/serve2.log" || fail "the second gateway's relay did not stand by"
worker_conf() { # $1 = name
  cat > "$d/$1.conf" <<CONF
kafka = $B
database-url = $WS_PG_URL
blobs = file:$d/blobs
data = $d/$1
worker-id = $1
kafka-partitions = 2
lease-ms = 3000
checkpoint-s = 1
session-timeout-ms = 6000
health-file = $d/$1.health
CONF
}
worker_conf w1; worker_conf w2
mport=$(ws_svc_free_port)
echo "metrics_listen = 127.0.0.1:$mport" >> "$d/w2.conf"
"$bin" worker --config "$d/w1.conf" --check > /dev/null || fail "worker --check"
"$bin" worker --config "$d/w1.conf" > "$d/w1.log" 2>&1 &
w1=$!; pids+=($w1)
auth="Authorization: Bearer $key"
upload() { # $1 = budget -> job id
  curl -s -H "$auth" -H 'Content-Type: text/plain' --data-binary @samples/group_chat.txt \
    "$base/v1/exports?persona=Maya&budget=$1" | python3 -c 'import json,sys;print(json.load(sys.stdin)["job_id"])'
}
job_field() { psql_q "SELECT $2 FROM training_jobs WHERE job_id = '$1'"; }
wait_status() { # $1 job, $2 seconds
  local s i
  for i in $(seq 1 $(($2 * 2))); do
    s=$(job_field "$1" status)
    [ "$s" = completed ] || [ "$s" = failed ] && break
    sleep 0.5
  done
  echo "$s"
}

# ---- 1. upload -> Kafka -> worker -> model in the blobs -> reply through serve
job1=$(upload 6) || fail "upload"
[ "$(wait_status "$job1" 120)" = completed ] || fail "job 1: $(job_field "$job1" "status || ' ' || COALESCE(error_message,'')")"
[ "$(job_field "$job1" worker_id)" = w1 ] || fail "job 1 was not trained by the worker"
find "$d/blobs/users" -path '*/models/*' -name 'current*' | grep -q . || fail "no model in the blobs: $(find "$d/blobs" | head)"
ok=
for _ in $(seq 1 40); do
  curl -s -H "$auth" -H 'Content-Type: application/json' -d '{"message":"are you coming on saturday?"}' \
    "$base/v1/reply" > "$d/reply.json"
  grep -q '"model_version":"maya-' "$d/reply.json" && { ok=1; break; }
  sleep 0.25
done
[ -n "$ok" ] || fail "reply through serve: $(cat "$d/reply.json")"
for _ in $(seq 1 80); do grep -q '"training.completed"' "$d/serve.log" && break; sleep 0.25; done
grep -q '"training.completed"' "$d/serve.log" || fail "the gateway did not see training.completed"
# the upload's trace continues in the worker through the message's traceparent header
python3 - "$d/serve.log" "$d/w1.log" "$job1" <<'PY' || fail "the job's trace does not continue the upload's"
import json, sys
def lines(p):
    for l in open(p, encoding="utf-8"):
        try: yield json.loads(l)
        except ValueError: pass
up = [l["trace.id"] for l in lines(sys.argv[1]) if l.get("http.route") == "/v1/exports" and "trace.id" in l]
job = [l["trace.id"] for l in lines(sys.argv[2]) if l.get("event.action") == "job.started" and l.get("job.id") == sys.argv[3]]
assert up and job and job[0] == up[0], (up, job)
PY
echo "phase 1 ok: $job1 trained by the worker, served by the gateway, one trace"

# ---- 2. kill -9 the worker mid-training: the job resumes on a second worker, completes once
job2=$(upload 30) || fail "upload 2"
for _ in $(seq 1 480); do
  [ -n "$(ls "$d/blobs/checkpoints/$job2" 2>/dev/null | grep train_state)" ] && break
  sleep 0.25
done
[ -n "$(ls "$d/blobs/checkpoints/$job2" 2>/dev/null)" ] || fail "no checkpoint of job 2 in the blobs"
sleep 1.5
p_before=$(job_field "$job2" progress)
kill -9 "$w1"
"$bin" worker --config "$d/w2.conf" > "$d/w2.log" 2>&1 &
w2=$!; pids+=($w2)
[ "$(wait_status "$job2" 240)" = completed ] || fail "job 2 after the kill: $(job_field "$job2" status)"
[ "$(job_field "$job2" worker_id)" = w2 ] || fail "job 2 was not finished by the second worker"
grep -q '"job.resumed"' "$d/w2.log" || fail "the second worker did not resume from the checkpoint"
curl -sf "http://127.0.0.1:$mport/healthz" | grep -q '"ok"' || fail "worker /healthz"
curl -sf "http://127.0.0.1:$mport/metrics" > "$d/w2.metrics" || fail "worker /metrics"
grep -q '^ws_training_jobs_resumed_total 1$' "$d/w2.metrics" && grep -q '^ws_training_jobs_completed_total 1$' "$d/w2.metrics" ||
  fail "worker metrics: $(grep ws_training "$d/w2.metrics")"
n_db=$(psql_q "SELECT COUNT(*) FROM outbox WHERE topic = 'training-events' AND payload::text LIKE '%$job2%' AND payload::text LIKE '%training.completed%'")
[ "$n_db" = 1 ] || fail "job 2 completed $n_db times in the outbox"
for _ in $(seq 1 40); do
  [ "$(psql_q "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")" = 0 ] && break; sleep 0.25
done
n_topic=$(kcat -C -b "$B" -t training-events -o beginning -e -q -f '%s\n' 2>/dev/null | grep "$job2" | grep -c '"training.completed"' || true)
[ "$n_topic" = 1 ] || fail "job 2 completed $n_topic times on training-events"
echo "phase 2 ok: $job2 killed at progress $p_before on w1, resumed and completed once on w2"

# ---- 3. broker restart under replies: analytics events neither lost nor duplicated
reply_n() { local i; for i in $(seq 1 "$1"); do
  curl -s -o /dev/null -H "$auth" -H 'Content-Type: application/json' -d "{\"message\":\"ping $2 $i\"}" "$base/v1/reply" || true
done; }
reply_n 20 a
ws_svc_kafka_stop
reply_n 20 b
ws_svc_kafka_run || fail "the broker did not restart"
reply_n 20 c
for _ in $(seq 1 240); do
  [ "$(psql_q "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")" = 0 ] && break; sleep 0.25
done
[ "$(psql_q "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")" = 0 ] || fail "the relay did not catch up"
want=$(psql_q "SELECT COUNT(*) FROM outbox WHERE topic = 'analytics-events'")
kcat -C -b "$B" -t analytics-events -o beginning -e -q -f '%h\n' 2>/dev/null > "$d/analytics.ids"
got=$(grep -c 'ws-event-id=' "$d/analytics.ids" || true)
distinct=$(grep -o 'ws-event-id=[0-9]*' "$d/analytics.ids" | sort -u | wc -l)
echo "analytics events: $want in the outbox, $got on the topic, $distinct distinct"
[ "$want" -ge 60 ] || fail "expected at least 60 analytics events, the outbox has $want"
[ "$got" = "$want" ] && [ "$distinct" = "$want" ] || fail "lost or duplicated analytics events"
echo "phase 3 ok: broker restarted, $want analytics events delivered once each"
# a graceful stop of the gateways and the second worker (under ASan: no leak, no error)
kill -TERM "${pids[0]}" "$gw2" "$w2"
wait "${pids[0]}" 2>/dev/null || fail "serve exited with an error"
wait "$gw2" 2>/dev/null || fail "the second serve exited with an error"
wait "$w2" 2>/dev/null || fail "the worker exited with an error"
grep -q '"worker.stopped"' "$d/w2.log" || fail "the worker did not stop cleanly"
! grep -l "Sanitizer" "$d"/*.log || fail "sanitizer reports"
echo ok
