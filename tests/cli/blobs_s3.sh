#!/usr/bin/env bash
# Runs the blobs test suites (tests/unit/test_blobs.c, test_blobs_rotate.c: listing and
# master-key rotation) and `whatstyle keys rotate-master` against a REAL S3-compatible server:
# moto (PyPI 'moto[server]'), installed into a venv under build/ on first use and started
# here on a loopback port, then stopped. Fails loudly when moto cannot be installed or
# does not start. Usage: blobs_s3.sh path/to/whatstyle (test_blobs is beside it).
set -euo pipefail
bindir=$(cd "$(dirname "$1")" && pwd)
bin=$bindir/$(basename "$1")
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../services/services.sh"

root=$(cd "$here/../.." && pwd)
venv=$root/build/moto-venv   # shared by build/ and build-asan/
mkdir -p "$root/build"
# one installer at a time (the plain and the ASan runs may start it together)
exec 9>"$root/build/.moto-install.lock"
flock 9
if [ ! -x "$venv/bin/moto_server" ]; then
  echo "== installing moto[server] into $venv"
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >"$WS_SVC_DIR/venv.log" 2>&1 ||
     ! "$venv/bin/pip" install -q 'moto[server]' >>"$WS_SVC_DIR/venv.log" 2>&1; then
    cat "$WS_SVC_DIR/venv.log"
    echo "FAIL: cannot install moto[server] from PyPI (needed for the S3 blobs test)"
    rm -rf "$venv"
    exit 1
  fi
fi
flock -u 9

port=""
for try in 1 2 3; do
  port=$(ws_svc_free_port)
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$WS_SVC_DIR/moto.log" 2>&1 &
  pid=$!
  WS_SVC_STOPS+=("kill $pid")
  up=0
  for _ in $(seq 1 200); do
    if curl -s -o /dev/null "http://127.0.0.1:$port/"; then up=1; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  [ "$up" -eq 1 ] && break
  kill "$pid" 2>/dev/null || true
done
if [ "$up" -ne 1 ]; then
  cat "$WS_SVC_DIR/moto.log"
  echo "FAIL: moto_server did not start"
  exit 1
fi

echo "== test_blobs against moto on 127.0.0.1:$port"
WS_TEST_REQUIRE_S3=1 WS_TEST_S3_URL="s3+http://127.0.0.1:$port/ws-test-blobs" \
  WS_S3_ACCESS_KEY=testing WS_S3_SECRET_KEY=testing-secret "$bindir/test_blobs"

echo "== test_blobs_rotate against moto: listing (several pages) and master-key rotation on S3"
WS_TEST_REQUIRE_S3=1 WS_TEST_S3_URL="s3+http://127.0.0.1:$port/ws-test-rotate" \
  WS_S3_ACCESS_KEY=testing WS_S3_SECRET_KEY=testing-secret "$bindir/test_blobs_rotate"

echo "== whatstyle keys rotate-master on S3: objects sealed by an independent AES-GCM (Python)"
rdata=$(mktemp -d)
WS_SVC_STOPS+=("rm -rf $rdata")
AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing-secret "$venv/bin/python" - "$port" "$rdata" <<'PY'
import os, sys, hashlib, boto3
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
port, data = sys.argv[1], sys.argv[2]
key = os.urandom(32)
fd = os.open(f"{data}/master.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, key); os.close(fd)
kid = hashlib.sha256(b"whatstyle-blob-key-id" + key).digest()[:4]
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
s3.create_bucket(Bucket="ws-test-cli-rotate")
for i, name in enumerate(["users/u1/exports/exp_1.txt", "users/u1/models/v1/model.bin",
                          "users/u1/models/current", "users/u2/exports/exp_2.zip"]):
    nonce = os.urandom(12)
    hdr = b"WSBL\x01\x01\x0c\x10" + kid + nonce
    body = (f"object {i} ".encode() * (1 + 5000 * i))
    s3.put_object(Bucket="ws-test-cli-rotate", Key=name,
                  Body=hdr + AESGCM(key).encrypt(nonce, body, hdr + name.encode()))
PY
WS_S3_ACCESS_KEY=testing WS_S3_SECRET_KEY=testing-secret "$bin" keys rotate-master --data "$rdata" \
  --blobs "s3+http://127.0.0.1:$port/ws-test-cli-rotate" | tee "$rdata/out"
grep -q "re-sealed: 4," "$rdata/out" || { echo "FAIL: rotate-master on S3 did not re-seal the 4 objects"; exit 1; }
if ls "$rdata"/master.key.retired-* >/dev/null 2>&1; then echo "FAIL: retired key file left behind"; exit 1; fi
AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing-secret "$venv/bin/python" - "$port" "$rdata" <<'PY'
import sys, hashlib, boto3
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
port, data = sys.argv[1], sys.argv[2]
key = open(f"{data}/master.key", "rb").read()
kid = hashlib.sha256(b"whatstyle-blob-key-id" + key).digest()[:4]
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
objs = s3.list_objects_v2(Bucket="ws-test-cli-rotate")["Contents"]
assert len(objs) == 4, objs
for i, o in enumerate(sorted(objs, key=lambda o: o["Key"])):
    raw = s3.get_object(Bucket="ws-test-cli-rotate", Key=o["Key"])["Body"].read()
    assert raw[8:12] == kid, f"{o['Key']} is not under the new key"
    plain = AESGCM(key).decrypt(raw[12:24], raw[24:], raw[:24] + o["Key"].encode())
    assert plain.startswith(b"object "), o["Key"]
print("ok: 4 objects on S3 re-sealed under the new master key, and they decrypt with it")
PY

echo "== the API gateway with its blobs on moto: upload (encrypted into S3), train"
WS_BLOBS_URL="s3+http://127.0.0.1:$port/ws-test-gateway" WS_S3_ACCESS_KEY=testing WS_S3_SECRET_KEY=testing-secret \
  "$bindir/test_http_api" api_contract_end_to_end
# the bucket holds only sealed objects (read back with boto3, which moto brings along)
AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing-secret "$venv/bin/python" - "$port" <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1")
keys = [o["Key"] for o in s3.list_objects_v2(Bucket="ws-test-gateway").get("Contents", [])]
if not keys:
    sys.exit("FAIL: the gateway stored no export in S3")
for k in keys:
    body = s3.get_object(Bucket="ws-test-gateway", Key=k)["Body"].read()
    if body[:4] != b"WSBL" or b"coffee" in body:
        sys.exit(f"FAIL: {k} is not an encrypted blob")
print(f"ok: {len(keys)} encrypted export(s) in S3, all sealed")
PY
