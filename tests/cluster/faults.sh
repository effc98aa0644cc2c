#!/usr/bin/env bash
# Faults under a steady, bounded load (tests/cluster/loadgen.py: replies for a trained user
# through nginx, 15 requests/s, one in five a new question (to the AI nodes), the others
# reply-cache hits, 10 s deadline each, at most 32 in flight), one at a time with
# 5 s of calm between them: kill -9 one gateway (then restarted), restart Redis, stop the
# replica for 10 s, stop SeaweedFS for 10 s (an upload meanwhile must get a clean 503), kill -9
# one AI node (then restarted). The report (tests/cluster/faults_report.py) gives, per fault,
# requests failed (only a 503 with Retry-After is allowed), hung past the deadline (none), and
# seconds to recover; any failed or hung request fails the test.
set -uo pipefail
source "$(dirname "$0")/common.sh"
work=$(mktemp -d); WS_SVC_STOPS+=("rm -rf $work")
here=$(cd "$(dirname "$0")" && pwd)
key=$(user_key "faults-maya-$$-$RANDOM")
auth="Authorization: Bearer $key"
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
  echo "$1 $t0 $(date +%s.%N)" >> "$work/timeline"
  sleep 5
}
kill_gw1() { cluster kill gw1; sleep 5; }
stop_redis() { cluster stop redis; }
stop_replica() { cluster stop replica; sleep 10; }
stop_s3() { # SeaweedFS away for 10 s; an upload meanwhile must be refused cleanly
  cluster stop s3
  sleep 2
  curl -s -m 30 -D "$work/s3up.h" -o "$work/s3up.json" -H "$auth" -H 'Content-Type: text/plain' \
    --data-binary @"$root/samples/group_chat.txt" "$WS_URL/v1/exports?persona=Maya&budget=4"
  sleep 8
}
kill_ai1() { cluster kill ai1; sleep 5; }
sleep 5 # the baseline
fault kill9_gw1 kill_gw1 "cluster start gw1"
fault restart_redis stop_redis "cluster start redis"
fault stop_replica stop_replica "cluster start replica"
fault stop_s3 stop_s3 "cluster start s3"
fault kill9_ai1 kill_ai1 "cluster start ai1"
touch "$work/stop"
wait "$lg"
echo "== per fault (15 req/s, deadline ${deadline}s)"
if python3 "$here/faults_report.py" "$work/load.jsonl" "$work/timeline" "$deadline" | tee "$work/report"; then
  ok "no request failed or hung under any fault"
else
  bad "requests failed or hung under a fault (above)"
fi
[ -n "${WS_FAULTS_REPORT:-}" ] && cp "$work/report" "$WS_FAULTS_REPORT"
s3code=$(head -1 "$work/s3up.h" | awk '{print $2}')
check "an upload while S3 is down: 503 with Retry-After (got $s3code: $(cat "$work/s3up.json"))" \
  bash -c "[ '$s3code' = 503 ] && grep -qi '^retry-after:' '$work/s3up.h'"
check "every part healthy after the faults" cluster status
finish
