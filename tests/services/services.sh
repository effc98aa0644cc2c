# Starts and stops real servers on loopback for tests: a PostgreSQL primary (initdb +
# pg_ctl in a temporary directory, as the postgres user when run as root), a streaming read
# replica of it (pg_basebackup -R), and redis-server. Source this file, call the ws_svc_*
# functions, and rely on the EXIT trap it installs to stop everything it started.
#
#   ws_svc_pg           -> WS_PG_URL         (postgresql://postgres@127.0.0.1:PORT/postgres)
#   ws_svc_pg_replica   -> WS_PG_REPLICA_URL (needs ws_svc_pg first)
#   ws_svc_redis        -> WS_REDIS_URL      (redis://127.0.0.1:PORT)
#
# Each returns non-zero (and prints the server's log) when its server does not come up;
# callers treat that as a test failure, never as a skip.

WS_SVC_DIR=$(mktemp -d /tmp/ws-services.XXXXXX)
chmod 755 "$WS_SVC_DIR"
WS_SVC_STOPS=()

ws_svc_cleanup() {
  local i
  for ((i = ${#WS_SVC_STOPS[@]} - 1; i >= 0; i--)); do
    eval "${WS_SVC_STOPS[$i]}" >/dev/null 2>&1 || true
  done
  rm -rf "$WS_SVC_DIR"
}
trap ws_svc_cleanup EXIT

# A TCP port on 127.0.0.1 that nothing listens on (random, checked), below the kernel's
# ephemeral range: a port in that range can be the local end of any outgoing connection
# (a client of another test), and then the server's bind fails with "Address in use".
ws_svc_free_port() {
  local port i lo=32768 span
  read -r lo _ < /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  span=$(( lo > 21024 ? lo - 21024 : 8000 ))
  for i in $(seq 1 50); do
    port=$((20000 + RANDOM % span))
    if ! (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

ws_svc_pgbin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
  d=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
  [ -x "$d/initdb" ] && echo "$d"
}

# Runs a command as the postgres user when we are root (PostgreSQL refuses to run as root).
ws_svc_as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# Starts the PostgreSQL cluster of folder $2 (data in $2/data, log in $2/log) with binaries
# $1 and the extra server options $3, on a free port — another one when the port picked was
# taken before the server bound it (a parallel test). Sets WS_SVC_PG_STARTED to the port.
ws_svc_pg_start() {
  local bin=$1 dir=$2 extra=$3 port try
  for try in 1 2 3; do
    port=$(ws_svc_free_port) || { echo "services: no free port"; return 1; }
    if ws_svc_as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 \
         -o "-p $port -k $dir -c listen_addresses=127.0.0.1 $extra" start >/dev/null 2>&1; then
      WS_SVC_PG_STARTED=$port
      return 0
    fi
  done
  return 1
}

ws_svc_pg() {
  local bin port dir
  bin=$(ws_svc_pgbin) || { echo "services: PostgreSQL binaries not found (apt package postgresql)"; return 1; }
  [ -n "$bin" ] || { echo "services: PostgreSQL binaries not found (apt package postgresql)"; return 1; }
  dir=$WS_SVC_DIR/pg
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
  if ! ws_svc_as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
        --locale=C.UTF-8 >"$WS_SVC_DIR/pg-initdb.log" 2>&1; then
    echo "services: initdb failed"; cat "$WS_SVC_DIR/pg-initdb.log"; return 1
  fi
  WS_SVC_STOPS+=("ws_svc_as_pg $bin/pg_ctl -D $dir/data -m immediate stop")
  ws_svc_pg_start "$bin" "$dir" "-c fsync=off -c synchronous_commit=off -c full_page_writes=off" ||
    { echo "services: PostgreSQL did not start"; cat "$dir/log"; return 1; }
  port=$WS_SVC_PG_STARTED
  WS_PG_PORT=$port
  WS_PG_BIN=$bin
  WS_PG_URL="postgresql://postgres@127.0.0.1:$port/postgres"
  export WS_PG_URL
}

ws_svc_pg_replica() {
  local port dir bin=$WS_PG_BIN
  [ -n "${WS_PG_PORT:-}" ] || { echo "services: start the primary first"; return 1; }
  dir=$WS_SVC_DIR/pgr
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
  if ! ws_svc_as_pg "$bin/pg_basebackup" -h 127.0.0.1 -p "$WS_PG_PORT" -U postgres \
        -D "$dir/data" -R -X stream >"$WS_SVC_DIR/pg-basebackup.log" 2>&1; then
    echo "services: pg_basebackup failed"; cat "$WS_SVC_DIR/pg-basebackup.log"; return 1
  fi
  WS_SVC_STOPS+=("ws_svc_as_pg $bin/pg_ctl -D $dir/data -m immediate stop")
  ws_svc_pg_start "$bin" "$dir" "-c hot_standby=on" ||
    { echo "services: replica did not start"; cat "$dir/log"; return 1; }
  port=$WS_SVC_PG_STARTED
  WS_PG_REPLICA_URL="postgresql://postgres@127.0.0.1:$port/postgres"
  export WS_PG_REPLICA_URL
}

ws_svc_redis() {
  local port dir=$WS_SVC_DIR/redis i
  command -v redis-server >/dev/null || { echo "services: redis-server not found (apt package redis-server)"; return 1; }
  port=$(ws_svc_free_port) || { echo "services: no free port"; return 1; }
  mkdir -p "$dir"
  local try up=0
  for try in 1 2 3; do
    rm -f "$dir/redis.pid"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
      --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/log" >/dev/null 2>&1 || true
    for i in $(seq 1 100); do
      if [ -s "$dir/redis.pid" ] && (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then up=1; break; fi
      sleep 0.05
    done
    [ "$up" -eq 1 ] && break
    port=$(ws_svc_free_port) || { echo "services: no free port"; return 1; }
  done
  [ "$up" -eq 1 ] || { echo "services: redis-server did not start"; cat "$dir/log" 2>/dev/null; return 1; }
  WS_SVC_STOPS+=("kill \$(cat $dir/redis.pid)")
  WS_REDIS_URL="redis://127.0.0.1:$port"
  export WS_REDIS_URL
}
