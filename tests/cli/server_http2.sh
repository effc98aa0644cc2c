#!/usr/bin/env bash
# `whatstyle serve` over HTTP/2 with prior knowledge (h2c, curl --http2-prior-knowledge):
# routing and errors (404/405 with Allow), auth, handlers on the pool, many multiplexed
# streams on one connection, a large request body, HEAD, the same server still speaking
# HTTP/1.1, and SIGTERM while an HTTP/2 upload is in flight. (h2 over TLS: server_tls.sh.)
# Usage: server_http2.sh path/to/whatstyle
set -euo pipefail
bin=$1
data=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$data"' EXIT
fail() { echo "FAIL: $*"; cat "$data/log"; exit 1; }
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
key=$("$bin" keys create --data "$data" --user h2-user 2>/dev/null)
"$bin" serve --port "$port" --host 127.0.0.1 --data "$data" --threads 2 > "$data/log" 2>&1 &
pid=$!
base="http://127.0.0.1:$port"
h2=(curl -s --http2-prior-knowledge)
for _ in $(seq 1 400); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.05; done
out=$("${h2[@]}" -v "$base/healthz" 2>&1)
echo "$out" | grep -q "^< HTTP/2 200" || fail "no HTTP/2 answer"
echo "$out" | grep -q '{"status":"ok"}' || fail "healthz body"
[ "$("${h2[@]}" -o /dev/null -w '%{http_code}' "$base/nope")" = 404 ] || fail 404
out=$("${h2[@]}" -D - -o /dev/null -X PUT "$base/healthz")
[[ $out == *"allow: GET"* ]] || fail "405 Allow"
[ "$("${h2[@]}" -o /dev/null -w '%{http_code}' "$base/v1/me")" = 401 ] || fail 401
[ "$("${h2[@]}" -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" "$base/v1/me")" = 200 ] || fail "me"
# 30 multiplexed streams on one connection, handled on the pool (store lookups)
urls=(); for i in $(seq 1 30); do urls+=("$base/v1/me"); done
n=$("${h2[@]}" --parallel --parallel-immediate --parallel-max 30 -H "Authorization: Bearer $key" "${urls[@]}" 2>/dev/null | grep -o '"user_id"' | wc -l)
[ "$n" = 30 ] || fail "multiplexed streams: $n of 30"
# a body larger than the flow-control window, and one over the cap (1 MiB for /v1/reply)
printf '12/01/2024, 10:00 - Ann: hello\n12/01/2024, 10:01 - Bob: hey\n' > "$data/chat.txt"
for i in $(seq 1 3000); do printf '12/01/2024, 10:02 - Ann: line %s with some more text to make it longer\n' $i; done >> "$data/chat.txt"
[ "$("${h2[@]}" -o "$data/up.json" -w '%{http_code}' -H "Authorization: Bearer $key" -H 'Content-Type: text/plain' --data-binary @"$data/chat.txt" "$base/v1/exports?persona=Ann")" = 202 ] || fail "upload over h2: $(cat "$data/up.json")"
head -c 2000000 /dev/zero | tr '\0' a > "$data/big.json"
[ "$("${h2[@]}" -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" --data-binary @"$data/big.json" "$base/v1/reply")" = 413 ] || fail "413 over h2"
out=$("${h2[@]}" -I "$base/healthz")
[[ $out == *"content-length: 15"* ]] || fail HEAD
# the same port still speaks HTTP/1.1
out=$(curl -s -v --http1.1 "$base/healthz" 2>&1)
[[ $out == *"< HTTP/1.1 200"* ]] || fail "HTTP/1.1 beside h2c"
out=$(curl -s "$base/metrics")
[[ $out == *'ws_http_requests_total{route="/v1/me",method="GET",code="2xx"} 31'* ]] || fail "metrics count h2 requests"
# SIGTERM while an HTTP/2 upload is still arriving: GOAWAY, the stream completes, then exit
for i in $(seq 10 49); do printf '12/01/2024, 10:%s - Ann: hello %s\n12/01/2024, 10:%s - Bob: hey %s\n' $i $i $i $i; done > "$data/slow.txt"
( sleep 0.4; kill -TERM $pid ) &
st=$("${h2[@]}" --limit-rate 2000 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" \
  -H 'Content-Type: text/plain' --data-binary @"$data/slow.txt" "$base/v1/exports?persona=Ann")
[ "$st" = 202 ] || fail "in-flight h2 upload at SIGTERM got $st"
wait $pid || fail "exit status"
pid=
grep -q "draining" "$data/log" && grep -q stopped "$data/log" || fail "no clean stop"
echo ok
