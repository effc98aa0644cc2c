#!/usr/bin/env bash
# Upload -> outbox -> relay -> Kafka -> worker -> model in S3 -> reply, through nginx on the
# running cluster: the export is uploaded to one gateway, whose outbox relay puts the job on
# training-jobs (2 partitions, deploy/local); `whatstyle worker` trains it and seals the model
# into SeaweedFS (read back with an independent S3 client: only WSBL-sealed objects, none
# holding the chat's words); both gateways get training.completed from training-events and
# the reply comes from the `whatstyle ai` nodes with that model's version, whichever gateway
# takes the request: each gateway, asked every 0.1 s, answers from the new model within 1.5 s
# of the job's completion (the event drops its 2 s cache of the user). The reply's analytics
# event carries the request's traceparent onto Kafka. Prints the seconds from upload to the
# first reply from the model.
set -uo pipefail
source "$(dirname "$0")/common.sh"
work=$(mktemp -d); WS_SVC_STOPS+=("rm -rf $work")
key=$(user_key "e2e-maya-$$-$RANDOM")
auth="Authorization: Bearer $key"
uid=$(curl -s -H "$auth" "$WS_URL/v1/me" | json_field user_id)
t0=$(date +%s.%N)
curl -s -o "$work/up.json" -H "$auth" -H 'Content-Type: text/plain' --data-binary @"$root/samples/group_chat.txt" \
  "$WS_URL/v1/exports?persona=Maya&budget=8"
job=$(json_field job_id < "$work/up.json") || { bad "upload: $(cat "$work/up.json")"; finish; exit 1; }
# each gateway asked directly every 0.1 s meanwhile (so its 2 s cache of the user stays warm):
# when does it first answer from the new model, after the job row says completed?
poll_gw() { # poll_gw PORT OUT: "EPOCH_S VERSION" per answer, until a version from the model
  local v
  for _ in $(seq 1 3000); do
    v=$(curl -s -m 5 -H "$auth" -H 'Content-Type: application/json' -d '{"message":"still there?"}' \
      "http://127.0.0.1:$1/v1/reply" | grep -o '"model_version":"maya-[0-9a-f]*"')
    echo "$(date +%s.%N) ${v:-none}" >> "$2"
    [ -n "$v" ] && return 0
    [ -f "$work/stop_poll" ] && return 1
    sleep 0.1
  done
}
poll_gw "$PORT_GW1" "$work/gw1.poll" & p1=$!
poll_gw "$PORT_GW2" "$work/gw2.poll" & p2=$!
WS_SVC_STOPS+=("touch $work/stop_poll")
st=
for _ in $(seq 1 600); do
  st=$(curl -s -H "$auth" "$WS_URL/v1/training-jobs/$job" | json_field status 2>/dev/null)
  [ "$st" = completed ] || [ "$st" = failed ] && break
  sleep 0.2
done
check "training job completed (got '$st')" [ "$st" = completed ]
[ "$st" = completed ] || touch "$work/stop_poll"
check "the job was trained by the worker ($(psql_q "SELECT worker_id FROM training_jobs WHERE job_id = '$job'"))" \
  [ "$(psql_q "SELECT worker_id FROM training_jobs WHERE job_id = '$job'")" = worker1 ]
check "the topics have the configured 2 partitions" \
  bash -c "[ \$(kcat -b '$KAFKA_BROKERS' -L -t training-jobs 2>/dev/null | grep -c 'partition ') = 2 ]"
version=
for _ in $(seq 1 100); do
  curl -s -o "$work/reply.json" -H "$auth" -H 'Content-Type: application/json' \
    -d '{"message":"are you coming to the barbecue on saturday?"}' "$WS_URL/v1/reply"
  version=$(json_field model_version < "$work/reply.json" 2>/dev/null) && [[ $version == maya-* ]] && break
  sleep 0.2
done
t1=$(date +%s.%N)
check "a reply from Maya's model ($(cat "$work/reply.json"))" [ "${version#maya-}" != "$version" ]
echo "upload_to_reply_s=$(python3 -c "print(round($t1 - $t0, 1))")"
# the model is in S3, sealed
ws_svc_s3curl -f "$S3_ENDPOINT/whatstyle?list-type=2&prefix=users%2F$uid%2F" > "$work/list.xml"
keys=$(grep -o '<Key>[^<]*</Key>' "$work/list.xml" | sed 's/<[^>]*>//g')
[ -n "$keys" ] || echo "listing: $(head -c 400 "$work/list.xml")"
check "the user's export and model are in S3 ($(echo "$keys" | wc -w) objects)" \
  bash -c "grep -q '/models/' <<< '$keys' && grep -q '/exports/' <<< '$keys'"
sealed=1
for k in $keys; do
  ws_svc_s3curl -f "$S3_ENDPOINT/whatstyle/$k" -o "$work/obj"
  [ "$(head -c 4 "$work/obj")" = WSBL ] || sealed=0
  grep -qF "why would u do that" "$work/obj" && sealed=0
done
check "every object is sealed (WSBL header, no plaintext)" [ "$sealed" = 1 ]
# each gateway answered from the new model right after the completion: the event dropped its
# cached view of the user (without it, up to 2 s of the previous model)
wait "$p1" "$p2"
done_ms=$(psql_q "SELECT completed_at FROM training_jobs WHERE job_id = '$job'")
for g in gw1 gw2; do
  lag=$(python3 -c "
import sys
rows = [l.split() for l in open('$work/$g.poll')]
t = next((float(r[0]) for r in rows if r[1] != 'none'), None)
print('none' if t is None else round(t - $done_ms / 1000, 2))")
  check "$g answers from the new model ${lag}s after the job completed (< 1.5 s; its user cache is 2 s)" \
    python3 -c "import sys; sys.exit(0 if '$lag' != 'none' and float('$lag') < 1.5 else 1)"
done
# both gateways took training.completed off training-events (each its own consumer group)
for g in gw1 gw2; do
  for _ in $(seq 1 50); do
    grep '"bus.training_event"' "$WS_CLUSTER_DIR/logs/$g.log" | grep -q "\"$job\"" && break
    sleep 0.1
  done
  check "$g got training.completed of $job from Kafka" \
    bash -c "grep '\"bus.training_event\"' '$WS_CLUSTER_DIR/logs/$g.log' | grep -q '\"$job\"'"
done
# the reply is the same through either gateway (the AI nodes hold the model, not the gateway)
for p in "$PORT_GW1" "$PORT_GW2"; do
  v=$(curl -s -H "$auth" -H 'Content-Type: application/json' -d '{"message":"what are you doing tonight?"}' \
    "http://127.0.0.1:$p/v1/reply" | json_field model_version 2>/dev/null)
  check "gateway :$p replies from the model ($v)" [ "$v" = "$version" ]
done
# the reply's analytics event carries the request's trace context to Kafka (header traceparent)
trace=$(openssl rand -hex 16)
curl -s -o /dev/null -H "$auth" -H "traceparent: 00-$trace-$(openssl rand -hex 8)-01" \
  -H 'Content-Type: application/json' -d '{"message":"a traced question?"}' "$WS_URL/v1/reply"
found=0
for _ in $(seq 1 50); do
  kcat -C -b "$KAFKA_BROKERS" -t analytics-events -o beginning -e -q -f '%h\n' 2>/dev/null | grep -q "traceparent=00-$trace-" &&
    { found=1; break; }
  sleep 0.2
done
check "the reply's analytics event on analytics-events continues the request's trace" [ "$found" = 1 ]
finish
