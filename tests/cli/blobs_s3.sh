#!/usr/bin/env bash
# Runs the blobs test suites (tests/unit/test_blobs.c: the backend suite, multipart upload of a
# large export, a wrong secret refused; test_blobs_rotate.c: listing over several pages and
# master-key rotation) and `whatstyle keys rotate-master` against a REAL S3 server: SeaweedFS
# (built once from its Go module by tools/setup-ops-tools.sh, cached), started here on loopback
# with an identities file so every request's SigV4 signature is checked, then stopped. An
# independent client (curl --aws-sigv4, Python's AES-GCM) writes and checks the sealed objects.
# Usage: blobs_s3.sh path/to/whatstyle (test_blobs is beside it).
set -euo pipefail
bindir=$(cd "$(dirname "$1")" && pwd)
bin=$bindir/$(basename "$1")
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../services/services.sh"

ws_svc_seaweedfs || { echo "FAIL: SeaweedFS did not start"; exit 1; }
s3=${WS_S3_ENDPOINT#http://}
echo "== SeaweedFS on $s3 (signatures checked)"
# the server checks signatures: an unsigned request and a wrong secret are both refused
code=$(curl -s -o /dev/null -w '%{http_code}' "$WS_S3_ENDPOINT/")
[ "$code" = 403 ] || { echo "FAIL: an unsigned request got HTTP $code, not 403"; exit 1; }
body=$(curl -s --aws-sigv4 "aws:amz:us-east-1:s3" --user "$WS_S3_ACCESS_KEY:wrong" "$WS_S3_ENDPOINT/")
grep -q SignatureDoesNotMatch <<<"$body" || { echo "FAIL: a wrong secret was not refused: $body"; exit 1; }

echo "== test_blobs against SeaweedFS"
WS_TEST_REQUIRE_S3=1 WS_TEST_S3_URL="s3+http://$s3/ws-test-blobs" "$bindir/test_blobs"

echo "== test_blobs_rotate against SeaweedFS: listing (several pages) and master-key rotation on S3"
WS_TEST_REQUIRE_S3=1 WS_TEST_S3_URL="s3+http://$s3/ws-test-rotate" "$bindir/test_blobs_rotate"

echo "== whatstyle keys rotate-master on S3: objects sealed by an independent AES-GCM (Python)"
rdata=$(mktemp -d)
WS_SVC_STOPS+=("rm -rf $rdata")
ws_svc_s3curl -f -X PUT "$WS_S3_ENDPOINT/ws-test-cli-rotate" >/dev/null
python3 - "$rdata" <<'PY'
import os, sys, hashlib
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
data = sys.argv[1]
key = os.urandom(32)
fd = os.open(f"{data}/master.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, key); os.close(fd)
kid = hashlib.sha256(b"whatstyle-blob-key-id" + key).digest()[:4]
os.makedirs(f"{data}/objs")
for i, name in enumerate(["users/u1/exports/exp_1.txt", "users/u1/models/v1/model.bin",
                          "users/u1/models/current", "users/u2/exports/exp_2.zip"]):
    nonce = os.urandom(12)
    hdr = b"WSBL\x01\x01\x0c\x10" + kid + nonce
    body = (f"object {i} ".encode() * (1 + 5000 * i))
    with open(f"{data}/objs/{i}", "wb") as f:
        f.write(hdr + AESGCM(key).encrypt(nonce, body, hdr + name.encode()))
    print(name)
PY
i=0
for name in users/u1/exports/exp_1.txt users/u1/models/v1/model.bin users/u1/models/current users/u2/exports/exp_2.zip; do
  ws_svc_s3curl -f -X PUT --data-binary "@$rdata/objs/$i" "$WS_S3_ENDPOINT/ws-test-cli-rotate/$name" >/dev/null
  i=$((i + 1))
done
"$bin" keys rotate-master --data "$rdata" --blobs "s3+http://$s3/ws-test-cli-rotate" | tee "$rdata/out"
grep -q "re-sealed: 4," "$rdata/out" || { echo "FAIL: rotate-master on S3 did not re-seal the 4 objects"; exit 1; }
if ls "$rdata"/master.key.retired-* >/dev/null 2>&1; then echo "FAIL: retired key file left behind"; exit 1; fi
ws_svc_s3curl -f "$WS_S3_ENDPOINT/ws-test-cli-rotate?list-type=2" > "$rdata/list.xml"
mkdir -p "$rdata/back"
for name in $(grep -o '<Key>[^<]*</Key>' "$rdata/list.xml" | sed 's/<[^>]*>//g'); do
  ws_svc_s3curl -f "$WS_S3_ENDPOINT/ws-test-cli-rotate/$name" -o "$rdata/back/$(echo "$name" | tr / _)"
  echo "$name" >> "$rdata/back.names"
done
python3 - "$rdata" <<'PY'
import sys, hashlib
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
data = sys.argv[1]
key = open(f"{data}/master.key", "rb").read()
kid = hashlib.sha256(b"whatstyle-blob-key-id" + key).digest()[:4]
names = open(f"{data}/back.names").read().split()
assert len(names) == 4, names
for name in names:
    raw = open(f"{data}/back/{name.replace('/', '_')}", "rb").read()
    assert raw[8:12] == kid, f"{name} is not under the new key"
    plain = AESGCM(key).decrypt(raw[12:24], raw[24:], raw[:24] + name.encode())
    assert plain.startswith(b"object "), name
print("ok: 4 objects on S3 re-sealed under the new master key, and they decrypt with it")
PY

echo "== the API gateway with its blobs on SeaweedFS: upload (encrypted into S3), train"
WS_BLOBS_URL="s3+http://$s3/ws-test-gateway" "$bindir/test_http_api" api_contract_end_to_end
# the bucket holds only sealed objects (read back with the independent client)
ws_svc_s3curl -f "$WS_S3_ENDPOINT/ws-test-gateway?list-type=2" > "$rdata/gw.xml"
n=0
for name in $(grep -o '<Key>[^<]*</Key>' "$rdata/gw.xml" | sed 's/<[^>]*>//g'); do
  ws_svc_s3curl -f "$WS_S3_ENDPOINT/ws-test-gateway/$name" -o "$rdata/obj"
  [ "$(head -c 4 "$rdata/obj")" = WSBL ] || { echo "FAIL: $name is not an encrypted blob"; exit 1; }
  if grep -q coffee "$rdata/obj"; then echo "FAIL: $name holds plain text"; exit 1; fi
  n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "FAIL: the gateway stored no export in S3"; exit 1; }
echo "ok: $n encrypted object(s) in S3, all sealed"
