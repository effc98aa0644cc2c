#!/usr/bin/env bash
# The whole WhatStyle topology on one machine, on loopback: PostgreSQL primary + streaming
# replica, Redis, SeaweedFS (S3 with signatures checked), an Apache Kafka 4 broker (KRaft, one
# node), 2 `whatstyle ai` gRPC nodes, 2 `whatstyle serve --kafka` gateways behind nginx and 1
# `whatstyle worker` that trains the jobs the gateways' outbox relay puts on Kafka. Each part is
# started with its health check; state (data, ports, secrets) under build/cluster, every log in
# build/cluster/logs.
#
#   tools/cluster.sh up       start what is not running (idempotent); ends with two lines,
#                             WS_URL=<the load balancer> and WS_ADMIN_KEY=<a key of role admin>
#   tools/cluster.sh down     stop everything (the state stays; `down --wipe` removes it)
#   tools/cluster.sh status   one line per part: up/down and its address
#   tools/cluster.sh start|stop|kill PART    one part (the fault tests): pg, replica, redis,
#                             s3, kafka, ai1, ai2, gw1, gw2, worker, nginx; kill = SIGKILL
# Env: WS_CLUSTER_DIR (build/cluster), WS_BIN (build/whatstyle), WS_BASE_MODEL (as serve).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
CL=${WS_CLUSTER_DIR:-$root/build/cluster}
BIN=${WS_BIN:-$root/build/whatstyle}
LOGS=$CL/logs RUN=$CL/run
source "$root/tests/services/services.sh" >/dev/null
trap - EXIT # services.sh's trap stops what it starts; the cluster outlives this script
rm -rf "$WS_SVC_DIR"
PARTS=(pg replica redis s3 kafka ai1 ai2 gw1 gw2 worker nginx)

die() { echo "cluster: $*" >&2; exit 1; }
log() { echo "cluster: $*" >&2; }

# ---- state: ports and secrets, chosen once ---------------------------------------------------
load_state() {
  mkdir -p "$CL" "$LOGS" "$RUN"
  chmod 755 "$CL"
  if [ ! -s "$CL/ports.env" ]; then
    {
      for p in PG REPLICA REDIS GW1 GW2 LB; do echo "PORT_$p=$(ws_svc_free_port)"; done
      # SeaweedFS and the gRPC nodes: a port whose +10000 is free as well
      for p in S3 AI1 AI2; do echo "PORT_$p=$(ws_svc_free_port_pair)"; done
    } > "$CL/ports.env.tmp"
    mv "$CL/ports.env.tmp" "$CL/ports.env"
  fi
  # parts added since the state was made get their port now
  grep -q '^PORT_WORKER=' "$CL/ports.env" || echo "PORT_WORKER=$(ws_svc_free_port)" >> "$CL/ports.env"
  if [ ! -s "$CL/secrets.env" ]; then
    umask 077
    {
      echo "WS_MASTER_KEY=$(openssl rand -hex 32)"
      echo "WS_S3_ACCESS_KEY=whatstyle"
      echo "WS_S3_SECRET_KEY=$(openssl rand -hex 20)"
    } > "$CL/secrets.env.tmp"
    mv "$CL/secrets.env.tmp" "$CL/secrets.env"
    umask 022
  fi
  set -a
  source "$CL/ports.env"
  source "$CL/secrets.env"
  set +a
  PGBIN=$(ws_svc_pgbin) || die "PostgreSQL binaries not found (apt package postgresql)"
  PG_URL="postgresql://postgres@127.0.0.1:$PORT_PG/postgres"
  REPLICA_URL="postgresql://postgres@127.0.0.1:$PORT_REPLICA/postgres"
  REDIS_URL="redis://127.0.0.1:$PORT_REDIS"
  S3_URL="s3+http://127.0.0.1:$PORT_S3/whatstyle"
  AI_URL="grpc://127.0.0.1:$PORT_AI1,127.0.0.1:$PORT_AI2"
  LB_URL="http://127.0.0.1:$PORT_LB"
  # the broker's address is picked by tests/services/kafka.sh when it first starts
  KAFKA_BROKERS=$(cat "$CL/kafka/brokers" 2>/dev/null || true)
}

pid_of() { [ -s "$RUN/$1.pid" ] && cat "$RUN/$1.pid"; }
alive() { local p; p=$(pid_of "$1") && [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }
wait_for() { # wait_for SECONDS CMD...: polls CMD every 0.1 s
  local n=$(($1 * 10)); shift
  for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}
http_ok() { curl -sf -m 2 -o /dev/null "$1"; }

# ---- health checks -------------------------------------------------------------------------
health_pg() { "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PORT_PG"; }
health_replica() {
  [ "$(ws_svc_as_pg "$PGBIN/psql" -h 127.0.0.1 -p "$PORT_REPLICA" -U postgres -Atc 'SELECT pg_is_in_recovery()' 2>/dev/null)" = t ]
}
health_redis() { [ "$(redis-cli -h 127.0.0.1 -p "$PORT_REDIS" ping 2>/dev/null)" = PONG ]; }
health_s3() { ws_svc_s3curl -f -m 2 -o /dev/null "http://127.0.0.1:$PORT_S3/"; }
GRPCURL=
health_ai() { # gRPC health of the node: grpcurl (tools/install-grpc-tools.sh), else the port
  local port=$1 grpcurl
  [ -n "$GRPCURL" ] || GRPCURL=$(bash "$root/tools/install-grpc-tools.sh" 2>/dev/null)/bin/grpcurl
  grpcurl=$GRPCURL
  if [ -x "$grpcurl" ]; then
    timeout 3 "$grpcurl" -plaintext "127.0.0.1:$port" grpc.health.v1.Health/Check 2>/dev/null | grep -q SERVING
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
  fi
}
health_ai1() { health_ai "$PORT_AI1"; }
health_ai2() { health_ai "$PORT_AI2"; }
health_gw1() { http_ok "http://127.0.0.1:$PORT_GW1/readyz"; }
health_gw2() { http_ok "http://127.0.0.1:$PORT_GW2/readyz"; }
health_kafka() { [ -n "$KAFKA_BROKERS" ] && kcat -b "$KAFKA_BROKERS" -L -m 2 >/dev/null 2>&1; }
health_worker() { http_ok "http://127.0.0.1:$PORT_WORKER/healthz"; }
health_nginx() { http_ok "$LB_URL/nginx-health" && http_ok "$LB_URL/healthz"; }

# ---- starting each part ----------------------------------------------------------------------
start_pg() {
  local d=$CL/pg opts=""
  mkdir -p "$d"; [ "$(id -u)" -eq 0 ] && chown postgres "$d"
  if [ ! -s "$d/data/PG_VERSION" ]; then
    ws_svc_as_pg "$PGBIN/initdb" -D "$d/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
      > "$LOGS/pg-initdb.log" 2>&1 || die "initdb failed: see $LOGS/pg-initdb.log"
    # the replica connects for replication from loopback (trust, as the test clusters)
    echo "host replication postgres 127.0.0.1/32 trust" >> "$d/data/pg_hba.conf"
  fi
  while read -r line; do
    line=${line%%#*}; line=$(echo "$line" | tr -d ' ')
    [ -n "$line" ] && opts="$opts -c $line"
  done < "$root/deploy/local/postgresql.conf"
  # the server runs as postgres: its log lives in its folder, linked from the logs folder
  ln -sf "$d/log" "$LOGS/pg.log"
  ws_svc_as_pg "$PGBIN/pg_ctl" -D "$d/data" -l "$d/log" -w -t 60 \
    -o "-p $PORT_PG -k $d -c listen_addresses=127.0.0.1 $opts" start > /dev/null
  head -1 "$d/data/postmaster.pid" > "$RUN/pg.pid"
}
start_replica() {
  local d=$CL/replica
  mkdir -p "$d"; [ "$(id -u)" -eq 0 ] && chown postgres "$d"
  if [ ! -s "$d/data/PG_VERSION" ]; then
    ws_svc_as_pg "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PORT_PG" -U postgres -D "$d/data" -R -X stream \
      > "$LOGS/replica-basebackup.log" 2>&1 || die "pg_basebackup failed: see $LOGS/replica-basebackup.log"
  fi
  ln -sf "$d/log" "$LOGS/replica.log"
  ws_svc_as_pg "$PGBIN/pg_ctl" -D "$d/data" -l "$d/log" -w -t 60 \
    -o "-p $PORT_REPLICA -k $d -c listen_addresses=127.0.0.1 -c hot_standby=on" start > /dev/null
  head -1 "$d/data/postmaster.pid" > "$RUN/replica.pid"
}
start_redis() {
  mkdir -p "$CL/redis"
  rm -f "$RUN/redis.pid"
  redis-server "$root/deploy/local/redis.conf" --port "$PORT_REDIS" --dir "$CL/redis" --daemonize yes \
    --pidfile "$RUN/redis.pid" --logfile "$LOGS/redis.log" > /dev/null
  wait_for 10 test -s "$RUN/redis.pid"
}
start_s3() {
  local bin
  bin=$(ws_svc_weed_bin) && [ -x "$bin" ] || die "cannot build SeaweedFS (tools/setup-ops-tools.sh seaweedfs)"
  ws_svc_weed_start "$bin" "$CL/s3" "$PORT_S3" || true
  echo "$WS_SVC_WEED_PID" > "$RUN/s3.pid"
  [ -f "$CL/s3/log" ] && ln -sf "$CL/s3/log" "$LOGS/s3.log"
}
start_kafka() { # tests/services/kafka.sh: jars from Maven Central (cached), data in $CL/kafka
  bash "$root/tests/services/kafka.sh" start "$CL" > "$RUN/kafka.brokers" 2>> "$LOGS/kafka-start.log" ||
    die "Kafka did not start: see $LOGS/kafka-start.log and $LOGS/kafka.log"
  KAFKA_BROKERS=$(cat "$RUN/kafka.brokers")
  cp "$CL/kafka/pid" "$RUN/kafka.pid"
  ln -sf "$CL/kafka/log" "$LOGS/kafka.log"
}
start_worker() { # deploy/local/worker.conf; the per-instance values on the command line
  [ -n "$KAFKA_BROKERS" ] || die "the worker needs Kafka: tools/cluster.sh start kafka"
  mkdir -p "$CL/worker"; chmod 700 "$CL/worker"
  setsid "$BIN" worker --config "$root/deploy/local/worker.conf" --kafka "$KAFKA_BROKERS" \
    --database-url "$PG_URL" --blobs "$S3_URL" --data "$CL/worker" --worker-id worker1 \
    --metrics-listen "127.0.0.1:$PORT_WORKER" --health-file "$CL/worker/health.json" \
    >> "$LOGS/worker.log" 2>&1 < /dev/null &
  echo $! > "$RUN/worker.pid"
}
start_ai() { # start_ai NAME PORT
  local name=$1 port=$2 args=() k v
  mkdir -p "$CL/$name"
  while IFS='=' read -r k v; do
    k=$(echo "${k%%#*}" | tr -d ' '); v=$(echo "$v" | tr -d ' ')
    [ -n "$k" ] && args+=("--$k" "$v")
  done < "$root/deploy/local/ai.conf"
  [ -s "$CL/gateway.jwks" ] && args+=(--gateway-jwks "$CL/gateway.jwks")
  setsid "$BIN" ai --listen "127.0.0.1:$port" --data "$CL/$name" --blobs "$S3_URL" "${args[@]}" \
    >> "$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! > "$RUN/$name.pid"
}
start_ai1() { start_ai ai1 "$PORT_AI1"; }
start_ai2() { start_ai ai2 "$PORT_AI2"; }
start_gw() { # start_gw NAME PORT
  local name=$1 port=$2
  mkdir -p "$CL/$name"; chmod 700 "$CL/$name"
  # one service key and one session key for all gateways: the AI nodes trust one JWKS, and a
  # dashboard session made by one gateway is valid on the other
  cp -p "$CL/keys/service-ed25519.pem" "$CL/keys/session-ed25519.pem" "$CL/$name/"
  setsid "$BIN" serve --config "$root/deploy/local/serve.conf" --port "$port" --data "$CL/$name" \
    --store "$PG_URL" --store-replica "$REPLICA_URL" --cache "$REDIS_URL" --blobs "$S3_URL" --ai "$AI_URL" \
    --kafka "$KAFKA_BROKERS" >> "$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! > "$RUN/$name.pid"
}
start_gw1() { start_gw gw1 "$PORT_GW1"; }
start_gw2() { start_gw gw2 "$PORT_GW2"; }
start_nginx() {
  local d=$CL/nginx ups=""
  mkdir -p "$d/tmp"
  for p in "$PORT_GW1" "$PORT_GW2"; do
    ups="$ups        server 127.0.0.1:$p max_fails=2 fail_timeout=5s;\n"
  done
  sed -e "s|{{LOGS}}|$LOGS|g; s|{{RUN}}|$RUN|g; s|{{TMP}}|$d/tmp|g; s|{{LISTEN}}|127.0.0.1:$PORT_LB|g" \
      -e "s|{{UPSTREAMS}}|$ups|" "$root/deploy/nginx/whatstyle.conf" > "$d/nginx.conf"
  # the workers run as nobody when the master is root: their temp folders must be theirs
  [ "$(id -u)" -eq 0 ] && chown -R nobody "$d/tmp"
  nginx -t -q -c "$d/nginx.conf" -p "$d" 2>> "$LOGS/nginx-error.log" || die "nginx config: see $LOGS/nginx-error.log"
  nginx -c "$d/nginx.conf" -p "$d"
  wait_for 5 test -s "$RUN/nginx.pid"
}

# the shared keys of the gateways, made once
make_keys() {
  mkdir -p "$CL/keys"; chmod 700 "$CL/keys"
  local k
  for k in service session; do
    [ -s "$CL/keys/$k-ed25519.pem" ] ||
      (umask 077; openssl genpkey -algorithm ed25519 -out "$CL/keys/$k-ed25519.pem" 2>/dev/null)
  done
}

# up_part NAME SECONDS: start the part unless healthy, then wait for its health check
up_part() {
  local name=$1 secs=$2
  if "health_$name" 2>/dev/null; then return 0; fi
  if alive "$name"; then
    wait_for "$secs" "health_$name" && return 0
    die "$name is running (pid $(pid_of "$name")) but not healthy: see $LOGS/$name.log"
  fi
  "start_$name"
  wait_for "$secs" "health_$name" || die "$name did not become healthy in ${secs}s: see $LOGS/$name.log"
  log "$name up"
}

cmd_up() {
  [ -x "$BIN" ] || die "no $BIN: build first (make all)"
  command -v nginx > /dev/null || die "nginx not found (apt package nginx-light)"
  load_state
  make_keys
  up_part pg 60
  up_part replica 60
  up_part redis 10
  up_part s3 60
  up_part kafka 90
  "$BIN" migrate --database-url "$PG_URL" >> "$LOGS/migrate.log" 2>&1 || die "migrations failed: see $LOGS/migrate.log"
  # the worker creates the topics (deploy/local/worker.conf: partitions) when they do not exist
  up_part worker 60
  # the AI nodes need the gateways' JWKS: start a gateway first when there is none yet
  if [ ! -s "$CL/gateway.jwks" ]; then
    up_part gw1 60
    curl -sf "http://127.0.0.1:$PORT_GW1/.well-known/jwks.json" > "$CL/gateway.jwks.tmp" && mv "$CL/gateway.jwks.tmp" "$CL/gateway.jwks"
  fi
  up_part ai1 60
  up_part ai2 60
  up_part gw1 60
  up_part gw2 60
  up_part nginx 10
  if [ ! -s "$CL/admin.key" ]; then
    (umask 077; "$BIN" keys create --database-url "$PG_URL" --user cluster-admin --role admin --client cluster.sh \
      2>> "$LOGS/keys.log" > "$CL/admin.key.tmp") || die "cannot create the admin key: see $LOGS/keys.log"
    mv "$CL/admin.key.tmp" "$CL/admin.key"
  fi
  echo "WS_URL=$LB_URL"
  echo "WS_ADMIN_KEY=$(cat "$CL/admin.key")"
}

stop_part() { # stop_part NAME [KILL]
  local name=$1 sig=${2:-TERM} p
  case $name in
    pg | replica)
      local d=$CL/pg; [ "$name" = replica ] && d=$CL/replica
      if [ -s "$d/data/postmaster.pid" ]; then
        ws_svc_as_pg "$PGBIN/pg_ctl" -D "$d/data" -m "$([ "$sig" = KILL ] && echo immediate || echo fast)" \
          -w stop > /dev/null 2>&1 || true
      fi
      rm -f "$RUN/$name.pid"
      return 0 ;;
    nginx) # the master's QUIT lets its workers finish and exit with it (never SIGKILL: orphans)
      alive nginx || return 0
      nginx -c "$CL/nginx/nginx.conf" -p "$CL/nginx" -s quit 2> /dev/null || true
      p=$(pid_of nginx) || return 0
      for _ in $(seq 1 100); do kill -0 "$p" 2> /dev/null || break; sleep 0.1; done
      rm -f "$RUN/nginx.pid"
      return 0 ;;
  esac
  p=$(pid_of "$name") || return 0
  [ -n "$p" ] || return 0
  kill "-$sig" "$p" 2> /dev/null || true
  for _ in $(seq 1 150); do kill -0 "$p" 2> /dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2> /dev/null || true
  rm -f "$RUN/$name.pid"
}

cmd_down() {
  load_state
  local i
  for ((i = ${#PARTS[@]} - 1; i >= 0; i--)); do stop_part "${PARTS[$i]}"; done
  log "down"
  if [ "${1:-}" = --wipe ]; then rm -rf "$CL"; log "state removed ($CL)"; fi
}

addr_of() {
  case $1 in
    pg) echo "$PG_URL" ;; replica) echo "$REPLICA_URL" ;; redis) echo "$REDIS_URL" ;;
    s3) echo "http://127.0.0.1:$PORT_S3" ;; kafka) echo "kafka://${KAFKA_BROKERS:-?}" ;;
    worker) echo "http://127.0.0.1:$PORT_WORKER/healthz" ;; ai1) echo "grpc://127.0.0.1:$PORT_AI1" ;;
    ai2) echo "grpc://127.0.0.1:$PORT_AI2" ;; gw1) echo "http://127.0.0.1:$PORT_GW1" ;;
    gw2) echo "http://127.0.0.1:$PORT_GW2" ;; nginx) echo "$LB_URL" ;;
  esac
}

cmd_status() {
  load_state
  local name all=0
  for name in "${PARTS[@]}"; do
    if "health_$name" 2> /dev/null; then
      printf '%-8s up    %s  (pid %s)\n' "$name" "$(addr_of "$name")" "$(pid_of "$name" || echo ?)"
    else
      printf '%-8s DOWN  %s\n' "$name" "$(addr_of "$name")"; all=1
    fi
  done
  echo "logs: $LOGS"
  return $all
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down "${2:-}" ;;
  status) cmd_status ;;
  start) load_state; [ -n "${2:-}" ] || die "start PART"; up_part "$2" 60 ;;
  stop) load_state; stop_part "${2:?stop PART}" ;;
  kill) load_state; stop_part "${2:?kill PART}" KILL ;;
  *) echo "usage: $0 up|down [--wipe]|status|start PART|stop PART|kill PART" >&2; exit 2 ;;
esac
