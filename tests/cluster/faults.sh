#!/usr/bin/env bash
# Faults under a steady, bounded load (tests/cluster/loadgen.py: replies for a trained user
# through nginx, 15 requests/s, one in five a new question (to the AI nodes), the others
# reply-cache hits, 10 s deadline each, at most 32 in flight), one at a time with
# 5 s of calm between them: kill -9 one gateway (then restarted), restart Redis, stop the
# replica for 10 s, stop SeaweedFS for 10 s (an upload meanwhile must get a clean 503), kill -9
# one AI node (then restarted), kill -9 the training worker in the middle of a training run
# (restarted: the job resumes from its last checkpoint), restart the Kafka broker (an upload
# meanwhile waits in the outbox). Each fault also uploads a training job (its own user): a
# small one while it is on; for SeaweedFS one that starts training just before S3 stops (the
# worker retries it from its checkpoint once S3 is back). A downstream consumer of analytics-events and training-events
# (tests/helpers/bus_count.c, the product's librdkafka bus code, its own group) records every
# delivery. The report (tests/cluster/faults_report.py) gives, per fault: requests failed (only
# a 503 with Retry-After is allowed), hung past the deadline (none), training jobs lost (not
# completed) or completed twice (in the database's outbox or on the topic), analytics events
# (written in the fault's window) lost or delivered twice downstream, and seconds to recover
# (the load's last non-200, the resumed job's completion, the outbox drained after Kafka is
# back); any failed or hung request, lost or twice-completed job, lost or duplicated event
# fails the test.
set -uo pipefail
source "$(dirname "$0")/common.sh"
work=$(mktemp -d); WS_SVC_STOPS+=("rm -rf $work")
here=$(cd "$(dirname "$0")" && pwd)
key=$(user_key "faults-maya-$$-$RANDOM")
auth="Authorization: Bearer $key"
# the downstream consumer, from the start of the topics (every event since the cluster began)
"$(dirname "$WS_BIN")/helper_bus_count" "$KAFKA_BROKERS" "faults-count-$$" "$work/bus.tsv" \
  analytics-events training-events 2> "$work/bus_count.log" &
bc=$!
WS_SVC_STOPS+=("kill $bc")
: > "$work/jobs"
# upload_job FAULT BUDGET: a training job for a new user while FAULT is on; records the job id
# (or the clean refusal) in $work/jobs; prints the job id
upload_job() {
  local k code
  k=$(user_key "faults-job-$1-$$-$RANDOM")
  code=$(curl -s -m 30 -D "$work/job.h" -o "$work/job.json" -w '%{http_code}' -H "Authorization: Bearer $k" \
    -H 'Content-Type: text/plain' --data-binary @"$root/samples/group_chat.txt" \
    "$WS_URL/v1/exports?persona=Maya&budget=$2")
  if [ "$code" = 202 ]; then
    k=$(json_field job_id < "$work/job.json")
    echo "$1 $k" >> "$work/jobs"
    echo "$k"
  elif [ "$code" = 503 ] && grep -qi '^retry-after:' "$work/job.h"; then
    echo "$1 refused-503" >> "$work/jobs"
  else
    echo "$1 failed-$code" >> "$work/jobs"
  fi
}
job_status() { psql_q "SELECT status FROM training_jobs WHERE job_id = '$1'"; }
curl -s -o "$work/up.json" -H "$auth" -H 'Content-Type: text/plain' \
  --data-binary @"$root/samples/group_chat.txt" "$WS_URL/v1/exports?persona=Maya&budget=4"
job=$(json_field job_id < "$work/up.json") || { bad "upload: $(cat "$work/up.json")"; finish; exit 1; }
for _ in $(seq 1 600); do
  st=$(curl -s -H "$auth" "$WS_URL/v1/training-jobs/$job" | json_field status 2>/dev/null)
  [ "$st" = completed ] || [ "$st" = failed ] && break
  sleep 0.2
done
[ "$st" = completed ] || { bad "training for the load's user: $st"; finish; exit 1; }
sleep 2.5 # every gateway's 2 s cache of the key's user now has the model version

deadline=10
python3 "$here/loadgen.py" "$WS_URL/v1/reply" "$key" --out "$work/load.jsonl" --rps 15 --duration 600 \
  --unique-every 5 --deadline "$deadline" --stop-file "$work/stop" &
lg=$!
WS_SVC_STOPS+=("kill $lg")
: > "$work/timeline"
fault() { # fault NAME BREAK MEND: runs the function BREAK, then MEND; records the window
  local t0
  t0=$(date +%s.%N)
  "$2"
  $3 > /dev/null
  echo "$1 $t0 $(date +%s.%N) ${recovered_at:-}" >> "$work/timeline"
  recovered_at=
  sleep 5
}
recovered_at=
kill_gw1() { cluster kill gw1; upload_job kill9_gw1 2 > /dev/null; sleep 5; }
stop_redis() { cluster stop redis; upload_job restart_redis 2 > /dev/null; }
stop_replica() { cluster stop replica; upload_job stop_replica 2 > /dev/null; sleep 10; }
stop_s3() { # SeaweedFS away for 10 s while a job trains (it must wait and finish, not fail);
  # an upload meanwhile must be refused cleanly
  local job
  job=$(upload_job stop_s3 6)
  for _ in $(seq 1 300); do
    grep -E '"job.(started|resumed)"' "$WS_CLUSTER_DIR/logs/worker.log" | grep -q "\"$job\"" && break
    sleep 0.1
  done
  cluster stop s3
  sleep 2
  curl -s -m 30 -D "$work/s3up.h" -o "$work/s3up.json" -H "$auth" -H 'Content-Type: text/plain' \
    --data-binary @"$root/samples/group_chat.txt" "$WS_URL/v1/exports?persona=Maya&budget=4"
  sleep 8
}
kill_ai1() { cluster kill ai1; upload_job kill9_ai1 2 > /dev/null; sleep 5; }
kill_worker() { # a longer job: kill -9 its worker once a checkpoint of it is in S3
  local job
  job=$(upload_job kill9_worker 12)
  for _ in $(seq 1 600); do
    grep '"job.checkpoint_saved"' "$WS_CLUSTER_DIR/logs/worker.log" | grep -q "\"$job\"" && break
    sleep 0.1
  done
  sleep 1
  cluster kill worker
  long_job=$job
}
resume_worker() { # restarted; recovered once the job completed (it resumes from the checkpoint)
  cluster start worker
  for _ in $(seq 1 1200); do
    [ "$(job_status "$long_job")" = completed ] && break
    sleep 0.1
  done
  recovered_at=$(date +%s.%N)
}
stop_kafka() { cluster stop kafka; upload_job restart_kafka 2 > /dev/null; sleep 3; }
start_kafka() { # back; recovered once the relay has published the outbox's backlog
  cluster start kafka
  for _ in $(seq 1 600); do
    [ "$(psql_q "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")" = 0 ] && break
    sleep 0.1
  done
  recovered_at=$(date +%s.%N)
}
sleep 5 # the baseline
fault kill9_gw1 kill_gw1 "cluster start gw1"
fault restart_redis stop_redis "cluster start redis"
fault stop_replica stop_replica "cluster start replica"
fault stop_s3 stop_s3 "cluster start s3"
fault kill9_ai1 kill_ai1 "cluster start ai1"
fault kill9_worker kill_worker resume_worker
fault restart_kafka stop_kafka start_kafka
touch "$work/stop"
wait "$lg"
# every job reaches its end; the outbox drains; the consumer has caught up (its count holds)
for j in $(awk '$2 !~ /^(refused|failed)-/ {print $2}' "$work/jobs"); do
  for _ in $(seq 1 600); do
    st=$(job_status "$j"); [ "$st" = completed ] || [ "$st" = failed ] && break
    sleep 0.2
  done
done
for _ in $(seq 1 300); do
  [ "$(psql_q "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL")" = 0 ] && break
  sleep 0.1
done
# the consumer has every analytics event the outbox holds (after a broker restart it may take
# its group some seconds to rejoin and fetch the backlog: a count that merely held still for a
# second read those as lost), then its count holds (a duplicate would still arrive)
want=$(psql_q "SELECT COUNT(*) FROM outbox WHERE topic = 'analytics-events'")
for _ in $(seq 1 120); do
  got=$(awk -F'\t' '$1 == "analytics-events" {print $2}' "$work/bus.tsv" | sort -u | wc -l)
  [ "$got" -ge "$want" ] && break
  sleep 1
done
n=-1
for _ in $(seq 1 60); do
  m=$(wc -l < "$work/bus.tsv"); [ "$m" = "$n" ] && break
  n=$m; sleep 2
done
kill "$bc"; wait "$bc" 2> /dev/null
psql_q "SELECT id, created_at FROM outbox WHERE topic = 'analytics-events'" | tr '|' ' ' > "$work/outbox"
: > "$work/jobs_db"
for j in $(awk '$2 !~ /^(refused|failed)-/ {print $2}' "$work/jobs"); do
  echo "$j $(job_status "$j") $(psql_q "SELECT COUNT(*) FROM outbox WHERE topic = 'training-events' AND payload->>'type' = 'training.completed' AND payload->'job'->>'job_id' = '$j'")" >> "$work/jobs_db"
done
echo "== per fault (15 req/s, deadline ${deadline}s)"
if python3 "$here/faults_report.py" "$work/load.jsonl" "$work/timeline" "$deadline" \
     --jobs "$work/jobs" --jobs-db "$work/jobs_db" --bus "$work/bus.tsv" --outbox "$work/outbox" | tee "$work/report"; then
  ok "no request failed or hung, no job lost or completed twice, no event lost or duplicated under any fault"
else
  bad "a fault failed or hung requests, lost jobs or events, or duplicated them (above)"
fi
grep -q '"job.resumed"' "$WS_CLUSTER_DIR/logs/worker.log" && grep '"job.resumed"' "$WS_CLUSTER_DIR/logs/worker.log" | grep -q "\"$long_job\""
check "the killed worker's job $long_job resumed from its checkpoint on the restarted worker" [ $? = 0 ]
echo "the worker retried jobs $(grep -c '"job.retry"' "$WS_CLUSTER_DIR/logs/worker.log") times (the S3 outage)"
[ -n "${WS_FAULTS_REPORT:-}" ] && cp "$work/report" "$WS_FAULTS_REPORT"
s3code=$(head -1 "$work/s3up.h" | awk '{print $2}')
check "an upload while S3 is down: 503 with Retry-After (got $s3code: $(cat "$work/s3up.json"))" \
  bash -c "[ '$s3code' = 503 ] && grep -qi '^retry-after:' '$work/s3up.h'"
check "every part healthy after the faults" cluster status
finish
