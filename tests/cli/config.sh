#!/usr/bin/env bash
# Black-box test of the one configuration story (src/cli/opts.h, docs/configuration.md):
# --help of every subcommand; unknown options, bad values and secrets on the command line refused
# with a clear message and exit code 2; the precedence default < config file < environment <
# command line, seen both in `config show` and in what real commands do (migrate creates the
# database it was given, keys create reports the rate limit it used); the deploy config file
# accepted; docs/configuration.md equal to `whatstyle config --list`.
# Usage: config.sh path/to/whatstyle
set -euo pipefail
bin=${1:?usage: config.sh path/to/whatstyle}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
fail() { echo "FAIL: $*"; exit 1; }
ok() { n=$((n + 1)); }
# the variables this test sets itself: none may leak in from the caller
unset WS_STORE_URL WS_CACHE_URL WS_LOG_LEVEL WS_LOG_FORMAT WS_TRACE_RATIO WS_MASTER_KEY WS_BLOBS_URL \
  WS_NN_THREADS UV_THREADPOOL_SIZE

# expect_usage_error DESCRIPTION EXPECTED_STDERR COMMAND...: exit 2 and the message on stderr
expect_usage_error() {
  local d=$1 want=$2 rc=0; shift 2
  "$@" > "$tmp/out" 2> "$tmp/err" || rc=$?
  [ "$rc" = 2 ] || fail "$d: exit $rc, expected 2 (stderr: $(cat "$tmp/err"))"
  grep -qF -- "$want" "$tmp/err" || fail "$d: stderr lacks '$want': $(cat "$tmp/err")"
  ok
}

# --- every subcommand (and keys action): --help prints its usage and exits 0; an unknown
# option is refused with exit 2 -------------------------------------------------------------
cmds=$("$bin" --help | awk '/^commands:/ {on = 1; next} on && !NF {exit} on {print $1}')
[ "$(echo "$cmds" | wc -l)" -ge 13 ] || fail "whatstyle --help lists too few commands: $cmds"
for c in $cmds; do
  if [ "$c" = keys ]; then
    "$bin" keys --help | grep -q "^usage: whatstyle keys create" || fail "keys --help"
    for a in create list revoke rotate-master reseal; do
      "$bin" keys "$a" --help > "$tmp/h" || fail "keys $a --help exit"
      grep -q "^usage: whatstyle keys $a" "$tmp/h" || fail "keys $a --help: $(head -3 "$tmp/h")"
      grep -q -- "--log-level" "$tmp/h" || fail "keys $a --help lacks the common options"
      expect_usage_error "keys $a --no-such-flag" "unknown option '--no-such-flag'" \
        "$bin" keys "$a" --no-such-flag
    done
    continue
  fi
  "$bin" "$c" --help > "$tmp/h" || fail "$c --help exit"
  grep -q "^usage: whatstyle $c" "$tmp/h" || fail "$c --help: $(head -3 "$tmp/h")"
  grep -q -- "--config FILE" "$tmp/h" || fail "$c --help lacks the common options"
  "$bin" "$c" -h | cmp -s - "$tmp/h" || fail "$c -h differs from --help"
  expect_usage_error "$c --no-such-flag" "unknown option '--no-such-flag'" "$bin" "$c" --no-such-flag
  expect_usage_error "$c --no-such-flag (hint)" "whatstyle $c --help" "$bin" "$c" --no-such-flag=1
done
expect_usage_error "unknown command" "unknown command 'frobnicate'" "$bin" frobnicate
expect_usage_error "unknown keys action" "unknown action 'bogus'" "$bin" keys bogus

# --- bad values, from each source ------------------------------------------------------------
expect_usage_error "missing value" "option '--port' needs a value" "$bin" serve --data "$tmp/d" --port
expect_usage_error "not a number" "--port must be an integer in 0..65535, not 'abc'" \
  "$bin" serve --data "$tmp/d" --port abc
expect_usage_error "out of range" "--trace-ratio must be a number in 0..1, not '2'" \
  "$bin" serve --data "$tmp/d" --trace-ratio 2
expect_usage_error "not a choice" "--format must be one of jsonl|json|csv, not 'xml'" \
  "$bin" parse samples/group_chat.txt --format xml
expect_usage_error "bad env value" "WS_LOG_LEVEL (for --log-level) must be one of" \
  env WS_LOG_LEVEL=loud "$bin" version
expect_usage_error "required option" "--data DIR is required" "$bin" serve --port 0
expect_usage_error "required (keys)" "--user NAME is required" "$bin" keys create --data "$tmp/d"
expect_usage_error "missing positional" "missing arguments" "$bin" reply "$tmp/clone"
expect_usage_error "extra positional" "unexpected argument 'b'" "$bin" parse a b
expect_usage_error "secret on the command line" "give it in the environment (WS_MASTER_KEY)" \
  "$bin" ai --listen 127.0.0.1:0 --data "$tmp/d" --master-key 00
printf 'port = 1\nprot = 2\n' > "$tmp/typo.conf"
expect_usage_error "unknown config key" "typo.conf:2: unknown setting 'prot'" \
  "$bin" serve --config "$tmp/typo.conf"
printf '# a comment\n\nkey-rate-limit = many\n' > "$tmp/bad.conf"
expect_usage_error "bad config value" "bad.conf:3: key-rate-limit must be an integer" \
  "$bin" serve --data "$tmp/d" --config "$tmp/bad.conf"
printf 'config = other.conf\n' > "$tmp/nested.conf"
expect_usage_error "config in a config file" "unknown setting 'config'" \
  "$bin" migrate --config "$tmp/nested.conf"
expect_usage_error "missing config file" "cannot open config $tmp/nope.conf" \
  "$bin" migrate --config "$tmp/nope.conf"

# --- precedence as `config show` reports it: default < file < env < flag ----------------------
cat > "$tmp/serve.conf" <<EOF
# every source for one setting or another
store = sqlite:$tmp/file.db
cache = redis://file:1
key_rate_limit = 7
trace-ratio = 0.5
no_training = yes
EOF
WS_STORE_URL="sqlite:$tmp/env.db" WS_CACHE_URL=redis://env:2 WS_MASTER_KEY=00ff \
  "$bin" config show serve --data "$tmp/d" --config "$tmp/serve.conf" --cache redis://flag:3 \
  --user-rate-limit 9 > "$tmp/show"
want() { # want KEY SOURCE VALUE
  awk -v k="$1" -v s="$2" -v v="$3" '$1 == k && $2 == s && $3 == v {f = 1} END {exit !f}' "$tmp/show" \
    || fail "config show: $1 should be $3 from $2: $(grep "^$1 " "$tmp/show" || echo absent)"
  ok
}
want store env "sqlite:$tmp/env.db"             # env over file
want cache flag redis://flag:3                  # flag over env and file
want key-rate-limit file 7                      # file over default
want user-rate-limit flag 9                     # flag over default
want trace-ratio file 0.5
want no-training file yes
want store-connections default 8
want master-key env "(set)"                     # a secret is never printed
grep -q 00ff "$tmp/show" && fail "config show printed a secret"
grep -q "# $tmp/serve.conf:4" "$tmp/show" || fail "config show does not name file:line"
ok

# --- precedence in what a real command does: migrate creates the database it was given -------
printf 'store = sqlite:%s/file.db\n' "$tmp" > "$tmp/store.conf"
migrate_to() { # migrate_to EXPECTED_DB ARGS... (env set by the caller)
  local want=$1; shift
  rm -f "$tmp"/{file,env,flag}.db
  "$bin" migrate --config "$tmp/store.conf" "$@" > /dev/null || fail "migrate $*"
  for db in file env flag; do
    if [ "$db" = "$want" ]; then [ -f "$tmp/$db.db" ] || fail "migrate did not use the $db store"
    else [ ! -f "$tmp/$db.db" ] || fail "migrate used the $db store, expected $want"; fi
  done
  ok
}
migrate_to file
WS_STORE_URL="sqlite:$tmp/env.db" migrate_to env
WS_STORE_URL="sqlite:$tmp/env.db" migrate_to flag --store "sqlite:$tmp/flag.db"
WS_STORE_URL="sqlite:$tmp/env.db" migrate_to flag --database-url "sqlite:$tmp/flag.db"   # the alias
# ... and keys create uses the typed value from the right source
printf 'data = %s/kd\nrate-limit = 30\nrole = admin\n' "$tmp" > "$tmp/keys.conf"
"$bin" keys create --config "$tmp/keys.conf" --user ann > /dev/null 2> "$tmp/k1" || fail "keys create (file)"
grep -q "rate limit: 30/min" "$tmp/k1" || fail "keys create ignored the file's rate-limit: $(cat "$tmp/k1")"
grep -q "role:       admin" "$tmp/k1" || fail "keys create ignored the file's role"
"$bin" keys create --config "$tmp/keys.conf" --user bob --rate-limit=40 > /dev/null 2> "$tmp/k2" \
  || fail "keys create (flag)"
grep -q "rate limit: 40/min" "$tmp/k2" || fail "the flag did not win over the file: $(cat "$tmp/k2")"
ok
# the logger's settings come through the same table: a flag over the environment
WS_LOG_LEVEL=error "$bin" config show migrate --log-level debug --data "$tmp/d" > /dev/null || fail "log flag"
"$bin" version --log-level=off --log-format json | grep -q "^whatstyle " || fail "version with log options"
ok

# --- the deploy manifests' config file is valid for serve ------------------------------------
awk '/^  serve.conf: \|/ {on = 1; next} on && /^    / {sub(/^    /, ""); print; next} on {exit}' \
  "$root/deploy/k8s/base/configmap.yaml" > "$tmp/deploy-serve.conf"
[ -s "$tmp/deploy-serve.conf" ] || fail "no serve.conf in deploy/k8s/base/configmap.yaml"
"$bin" config show serve --config "$tmp/deploy-serve.conf" > "$tmp/dshow" 2>&1 \
  || fail "deploy serve.conf refused: $(cat "$tmp/dshow")"
grep -qE '^no-training +file +1' "$tmp/dshow" || fail "deploy serve.conf: no_training not read"
ok

# --- docs/configuration.md is the option tables, not a copy that drifts -----------------------
"$bin" config --list > "$tmp/ref.md"
python3 - "$root/docs/configuration.md" "$tmp/ref.md" <<'PY' || fail "docs/configuration.md differs from 'whatstyle config --list': run tools/gen-config-doc.sh"
import difflib, sys
text = open(sys.argv[1], encoding="utf-8").read()
begin, end = "<!-- BEGIN whatstyle config --list -->\n", "<!-- END whatstyle config --list -->"
doc = text[text.index(begin) + len(begin):text.index(end)]
ref = open(sys.argv[2], encoding="utf-8").read()
if doc != ref:
    sys.stdout.writelines(list(difflib.unified_diff(doc.splitlines(True), ref.splitlines(True), "doc", "binary"))[:40])
    sys.exit(1)
PY
ok
# every environment variable the code reads is in the reference (no undocumented one)
for v in $(grep -rhoE '\.env = "[A-Z_,0-9]+"' "$root/src/cli" "$root/src/cli/opts.h" | grep -oE '[A-Z][A-Z_0-9]+' | sort -u); do
  grep -q "\`$v\`" "$root/docs/configuration.md" || fail "$v is not in docs/configuration.md"
done
ok
# and no library code reads or sets the environment (only the CLI's option parser and serve's
# handing of UV_THREADPOOL_SIZE to libuv)
if grep -rnE '\b(getenv|secure_getenv|setenv|putenv|unsetenv)\s*\(' "$root/src" \
  | grep -vE '^[^:]*src/cli/opts\.c:|^[^:]*src/cli/cmd_serve\.c:[0-9]+: *setenv\("UV_THREADPOOL_SIZE"'; then
  fail "library code touches the environment (above)"
fi
ok
echo "config: $n checks passed"
