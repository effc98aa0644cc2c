#!/usr/bin/env bash
# `whatstyle serve` with TLS: a throw-away self-signed certificate, TLS 1.3 only (a TLS 1.2
# client is refused), keep-alive and request bodies over TLS, and the REST auth on top.
# Usage: server_tls.sh path/to/whatstyle
set -euo pipefail
bin=$1
data=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$data"' EXIT
fail() { echo "FAIL: $*"; cat "$data/log"; exit 1; }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$data/key.pem" -out "$data/cert.pem" 2>/dev/null
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
key=$("$bin" keys create --data "$data" --user tls-user 2>/dev/null)
"$bin" serve --port "$port" --host 127.0.0.1 --data "$data" --threads 2 \
  --tls-cert "$data/cert.pem" --tls-key "$data/key.pem" > "$data/log" 2>&1 &
pid=$!
base="https://localhost:$port"
c=(curl -s --cacert "$data/cert.pem" --resolve "localhost:$port:127.0.0.1")
for _ in $(seq 1 400); do "${c[@]}" -f "$base/healthz" >/dev/null && break; sleep 0.05; done
grep -q "(https)" "$data/log" || fail "not https"
[ "$("${c[@]}" "$base/healthz")" = '{"status":"ok"}' ] || fail "healthz over TLS"
out=$("${c[@]}" -v "$base/healthz" 2>&1)
echo "$out" | grep -q "TLSv1.3" || fail "not TLS 1.3"
# TLS 1.2 at most: refused
if "${c[@]}" --tls-max 1.2 "$base/healthz" >/dev/null 2>&1; then fail "TLS 1.2 accepted"; fi
# plain HTTP on the TLS port: no answer
if [[ $(curl -s -m 2 "http://127.0.0.1:$port/healthz" || true) == *ok* ]]; then fail "plaintext answered"; fi
# keep-alive over TLS, and a request body
out=$("${c[@]}" -v "$base/healthz" "$base/healthz" 2>&1)
echo "$out" | grep -q "Re-using existing connection" || fail "no keep-alive over TLS"
[ "$("${c[@]}" -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" -d '{"message":"hi"}' "$base/v1/reply")" = 409 ] || fail "reply over TLS"
head -c 200000 /dev/zero | tr '\0' a > "$data/big.txt"
[ "$("${c[@]}" -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" -H 'Content-Type: text/plain' --data-binary @"$data/big.txt" "$base/v1/exports?persona=X")" = 400 ] || fail "large body over TLS"
[ "$("${c[@]}" -o /dev/null -w '%{http_code}' "$base/v1/me")" = 401 ] || fail "auth over TLS"
# HTTP/2 over TLS (ALPN h2), HTTP/1.1 still offered
out=$("${c[@]}" -v --http2 "$base/healthz" 2>&1)
echo "$out" | grep -q "ALPN: server accepted h2" || fail "ALPN h2 not accepted"
echo "$out" | grep -q "^< HTTP/2 200" || fail "no HTTP/2 answer over TLS"
out=$("${c[@]}" -v --http1.1 "$base/healthz" 2>&1)
echo "$out" | grep -q "^< HTTP/1.1 200" || fail "HTTP/1.1 over TLS after ALPN"
[ "$("${c[@]}" --http2 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" -H 'Content-Type: text/plain' --data-binary @"$data/big.txt" "$base/v1/exports?persona=X")" = 400 ] || fail "large body over h2+TLS"
kill -TERM $pid; wait $pid; pid=
echo ok
