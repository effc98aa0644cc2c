# Starts and stops real servers on loopback for tests: a PostgreSQL primary (initdb +
# pg_ctl in a temporary directory, as the postgres user when run as root), a streaming read
# replica of it (pg_basebackup -R), redis-server, and SeaweedFS (a real S3 server that checks
# signatures; built once by tools/setup-ops-tools.sh). Source this file, call the ws_svc_*
# functions, and rely on the EXIT trap it installs to stop everything it started.
#
#   ws_svc_pg           -> WS_PG_URL         (postgresql://postgres@127.0.0.1:PORT/postgres)
#   ws_svc_pg_replica   -> WS_PG_REPLICA_URL (needs ws_svc_pg first)
#   ws_svc_redis        -> WS_REDIS_URL      (redis://127.0.0.1:PORT)
#   ws_svc_seaweedfs    -> WS_S3_ENDPOINT    (http://127.0.0.1:PORT), WS_S3_ACCESS_KEY,
#                          WS_S3_SECRET_KEY (a random secret; the server refuses any other)
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

# A port P on 127.0.0.1 with P and P+10000 both free (SeaweedFS opens its gRPC port at +10000),
# taken from 10000-19999 (below the ephemeral range, as ws_svc_free_port).
ws_svc_free_port_pair() {
  local port i
  for i in $(seq 1 50); do
    port=$((10000 + RANDOM % 10000))
    if ! (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null &&
       ! (exec 3<>/dev/tcp/127.0.0.1/$((port + 10000))) 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

# The SeaweedFS binary, built once into the tools cache (tools/setup-ops-tools.sh seaweedfs).
ws_svc_weed_bin() {
  local root
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  local ver
  ver=$(sed -n 's/^SEAWEEDFS_VER=//p' "$root/tools/setup-ops-tools.sh")
  bash "$root/tools/setup-ops-tools.sh" seaweedfs >&2 || return 1
  echo "${WS_TOOLS_CACHE:-$HOME/.cache/whatstyle-tools}/weed-$ver"
}

# Starts `weed mini` (master, volume, filer, S3 in one process) in DIR with an identities
# file, so every request must be signed with WS_S3_ACCESS_KEY / WS_S3_SECRET_KEY. Sets
# WS_SVC_WEED_PID. Usage: ws_svc_weed_start BIN DIR S3PORT (the other ports are picked here).
ws_svc_weed_start() {
  local bin=$1 dir=$2 s3port=$3 p i
  mkdir -p "$dir/data"
  printf '{"identities":[{"name":"whatstyle","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","List","Tagging","Write"]}]}\n' \
    "$WS_S3_ACCESS_KEY" "$WS_S3_SECRET_KEY" > "$dir/s3.json"
  chmod 600 "$dir/s3.json"
  local mp vp fp ap
  mp=$(ws_svc_free_port_pair) && vp=$(ws_svc_free_port_pair) && fp=$(ws_svc_free_port_pair) &&
    ap=$(ws_svc_free_port_pair) || return 1
  "$bin" mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.port="$mp" -volume.port="$vp" \
    -filer.port="$fp" -s3.port="$s3port" -s3.config="$dir/s3.json" -webdav=false -admin.ui=false \
    -admin.port="$ap" -admin.port.legacy=0 -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false \
    >>"$dir/log" 2>&1 &
  WS_SVC_WEED_PID=$!
  # ready when S3 answers (an unsigned request gets 403: the identities are on)
  for i in $(seq 1 300); do
    p=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$s3port/" 2>/dev/null || true)
    [ "$p" = 403 ] && return 0
    kill -0 "$WS_SVC_WEED_PID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

ws_svc_seaweedfs() {
  local bin dir=$WS_SVC_DIR/weed port try
  bin=$(ws_svc_weed_bin) && [ -x "$bin" ] || { echo "services: cannot build SeaweedFS (tools/setup-ops-tools.sh seaweedfs)"; return 1; }
  WS_S3_ACCESS_KEY=wstest
  WS_S3_SECRET_KEY=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
  export WS_S3_ACCESS_KEY WS_S3_SECRET_KEY
  for try in 1 2 3; do
    port=$(ws_svc_free_port_pair) || { echo "services: no free port"; return 1; }
    if ws_svc_weed_start "$bin" "$dir" "$port"; then
      WS_SVC_STOPS+=("kill $WS_SVC_WEED_PID; wait $WS_SVC_WEED_PID")
      WS_S3_ENDPOINT="http://127.0.0.1:$port"
      export WS_S3_ENDPOINT
      return 0
    fi
    kill "$WS_SVC_WEED_PID" 2>/dev/null; wait "$WS_SVC_WEED_PID" 2>/dev/null
  done
  echo "services: SeaweedFS did not start"; tail -30 "$dir/log"; return 1
}

# curl signing with SigV4 as an independent S3 client: ws_svc_s3curl [curl args] URL (the
# payload is not hashed into the signature: curl 7.88 signs an uploaded file's hash wrongly)
ws_svc_s3curl() {
  curl -s --aws-sigv4 "aws:amz:us-east-1:s3" --user "$WS_S3_ACCESS_KEY:$WS_S3_SECRET_KEY" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
}
