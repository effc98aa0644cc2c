# Shared by the cluster tests (sourced): the cluster's addresses from its state folder
# ($WS_CLUSTER_DIR, made by tools/cluster.sh), a key for a new user, small assertions.
set -a
source "$WS_CLUSTER_DIR/ports.env"
source "$WS_CLUSTER_DIR/secrets.env"
set +a
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$root/tests/services/services.sh"
PG_URL="postgresql://postgres@127.0.0.1:$PORT_PG/postgres"
S3_ENDPOINT="http://127.0.0.1:$PORT_S3"
cluster() { bash "$root/tools/cluster.sh" "$@"; }
pass=0; fails=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fails=$((fails + 1)); echo "FAIL $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
finish() { echo "$pass passed, $fails failed"; [ "$fails" -eq 0 ]; }
user_key() { "$WS_BIN" keys create --database-url "$PG_URL" --user "$1" 2>/dev/null; }
json_field() { python3 -c 'import json,sys;d=json.load(sys.stdin)
for k in sys.argv[1].split("."): d=d[k]
print(d)' "$1"; }
KAFKA_BROKERS=$(cat "$WS_CLUSTER_DIR/kafka/brokers")
psql_q() { psql "$PG_URL" -Atqc "$1"; }
