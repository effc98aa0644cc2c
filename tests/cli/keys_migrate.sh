#!/usr/bin/env bash
# Black-box test of `whatstyle migrate` and `whatstyle keys` on the embedded SQLite store and
# on a real PostgreSQL started here on loopback: migrations apply once, a created key is the
# last output line, only its SHA-256 reaches the database, list/revoke work.
# Usage: keys_migrate.sh path/to/whatstyle
set -euo pipefail
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../services/services.sh"
# the migrations this binary carries (one file per version and backend)
nmig=$(ls "$here"/../../src/store/migrations/sqlite/*.sql | wc -l)
migs=$([ "$nmig" = 1 ] && echo migration || echo migrations)
fail() { echo "FAIL: $*"; exit 1; }
tmp=$WS_SVC_DIR/cli
mkdir -p "$tmp"

check_flow() { # check_flow LABEL STORE-OPTIONS...
  local label=$1; shift
  local out key id
  out=$("$bin" migrate "$@") || fail "$label: migrate"
  echo "$out" | grep -q "applied $nmig $migs; schema version $nmig" || fail "$label: first migrate said: $out"
  out=$("$bin" migrate "$@") || fail "$label: second migrate"
  echo "$out" | grep -q "applied 0 migrations" || fail "$label: second migrate said: $out"
  "$bin" migrate "$@" --status | grep -q "up to date" || fail "$label: status"

  key=$("$bin" keys create "$@" --user alice --role admin --rate-limit 30 2>"$tmp/create.err") \
    || fail "$label: keys create"
  [[ $key =~ ^ws_live_[0-9a-f]{8}_[A-Za-z0-9_-]{43}$ ]] || fail "$label: stdout is not just a key: $key"
  id=${key:0:16}
  grep -q "role:       admin" "$tmp/create.err" || fail "$label: role not shown"
  # with both streams together, the key is the last line
  out=$("$bin" keys create "$@" --user carol 2>&1) || fail "$label: keys create carol"
  [[ $(echo "$out" | tail -n 1) =~ ^ws_live_ ]] || fail "$label: last line is not the key: $out"
  "$bin" keys create "$@" --user alice >/dev/null 2>&1 || fail "$label: second key for alice"
  out=$("$bin" keys list "$@" --user alice) || fail "$label: list"
  [ "$(echo "$out" | grep -c '^ws_live_')" -eq 2 ] || fail "$label: expected 2 keys: $out"
  echo "$out" | grep "^$id" | grep -q "admin *30 *active" || fail "$label: listed key: $out"
  "$bin" keys revoke "$@" "$id" | grep -q "revoked $id" || fail "$label: revoke"
  "$bin" keys list "$@" | grep "^$id" | grep -q revoked || fail "$label: not shown revoked"
  if "$bin" keys revoke "$@" ws_live_ffffffff 2>/dev/null; then fail "$label: revoking an unknown key succeeded"; fi
  if "$bin" keys create "$@" --user bob --role root 2>/dev/null; then fail "$label: bad role accepted"; fi
  if "$bin" keys create "$@" 2>/dev/null; then fail "$label: create without --user accepted"; fi
  LAST_KEY=$key
}

# --- SQLite in a data directory
check_flow sqlite --data "$tmp/data"
hash=$(printf %s "$LAST_KEY" | sha256sum | cut -d' ' -f1)
secret=${LAST_KEY:17}
cat "$tmp/data"/whatstyle.db* > "$tmp/dbdump"
grep -q "$hash" "$tmp/dbdump" || fail "sqlite: key hash not stored"
if grep -q -- "$secret" "$tmp/dbdump"; then fail "sqlite: plaintext key stored"; fi
[ "$(stat -c %a "$tmp/data/whatstyle.db")" = 600 ] || fail "sqlite: database file is not owner-only"
# keys on a fresh data dir migrate the embedded database by themselves
"$bin" keys create --data "$tmp/fresh" --user zed 2>/dev/null | grep -q '^ws_live_' || fail "sqlite: keys on a fresh dir"
if "$bin" migrate 2>/dev/null; then fail "migrate without a database succeeded"; fi

# --- PostgreSQL
ws_svc_pg
check_flow postgres --store "$WS_PG_URL"
# the schema_migrations table records the version
ws_svc_as_pg "$WS_PG_BIN/psql" -h 127.0.0.1 -p "$WS_PG_PORT" -U postgres -Atc \
  "select version, name from schema_migrations" | grep -q "^1|0001_init$" || fail "postgres: schema_migrations"
stored=$(ws_svc_as_pg "$WS_PG_BIN/psql" -h 127.0.0.1 -p "$WS_PG_PORT" -U postgres -Atc \
  "select hashed_key from api_keys where key_id = '${LAST_KEY:0:16}'")
[ "$stored" = "$(printf %s "$LAST_KEY" | sha256sum | cut -d' ' -f1)" ] || fail "postgres: stored hash $stored"
# WS_STORE_URL stands in for --store (and wins over --data); --database-url is the old spelling
WS_STORE_URL=$WS_PG_URL "$bin" migrate --status | grep -q "postgres: schema version $nmig of $nmig" || fail "env URL"
WS_STORE_URL=$WS_PG_URL "$bin" keys list --data "$tmp/data" | grep -q "^${LAST_KEY:0:16}" || fail "env URL over --data"
"$bin" keys list --database-url "$WS_PG_URL" | grep -q "^${LAST_KEY:0:16}" || fail "--database-url alias"
"$bin" migrate --database-url="$WS_PG_URL" --status | grep -q "up to date" || fail "--database-url= alias"
# keys on a fresh PostgreSQL database migrate it too
ws_svc_as_pg "$WS_PG_BIN/psql" -h 127.0.0.1 -p "$WS_PG_PORT" -U postgres -qc "create database fresh" \
  || fail "postgres: create database"
"$bin" keys create --store "postgresql://postgres@127.0.0.1:$WS_PG_PORT/fresh" --user z \
  2>/dev/null | grep -q '^ws_live_' || fail "postgres: keys on a fresh database"
# concurrent migrators on a fresh database: all succeed, each migration applied once
ws_svc_as_pg "$WS_PG_BIN/psql" -h 127.0.0.1 -p "$WS_PG_PORT" -U postgres -qc "create database race" \
  || fail "postgres: create database"
race_url="postgresql://postgres@127.0.0.1:$WS_PG_PORT/race"
for i in 1 2 3 4; do "$bin" migrate --store "$race_url" > "$tmp/race.$i" 2>&1 & done
wait || true
for i in 1 2 3 4; do grep -q "schema version $nmig" "$tmp/race.$i" || fail "concurrent migrate $i: $(cat "$tmp/race.$i")"; done
# each migration runs in its own transaction under the lock, so two migrators may share the
# work: every migration is applied exactly once in all
total=$(cat "$tmp"/race.* | sed -nE 's/.*applied ([0-9]+) migrations?;.*/\1/p' | awk '{s += $1} END {print s + 0}')
[ "$total" -eq "$nmig" ] || fail "concurrent migrate applied $total of $nmig: $(cat "$tmp"/race.*)"
echo "keys_migrate: ok"
