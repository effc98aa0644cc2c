"""Sends /v1/reply requests from several threads for a while and reports each one's outcome
and duration as JSON lines: {"t": start offset s, "status": HTTP status or 0 (no answer),
"ms": duration, "retry_after": header or null, "node": model_version}. Used by
tests/cli/ai_failover.sh. Usage: load.py BASE_URL KEY SECONDS THREADS TIMEOUT_S"""
import json
import sys
import threading
import time
import urllib.error
import urllib.request

base, key, secs, threads, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
t0 = time.time()
lock = threading.Lock()
n = [0]


def worker(w):
    i = 0
    while time.time() - t0 < secs:
        i += 1
        body = json.dumps({"message": f"are you coming tonight {w} {i}?"}).encode()
        rq = urllib.request.Request(base + "/v1/reply", data=body, headers={
            "Authorization": "Bearer " + key, "Content-Type": "application/json"})
        start = time.time()
        status, ra = 0, None
        try:
            with urllib.request.urlopen(rq, timeout=timeout) as r:
                status = r.status
                r.read()
        except urllib.error.HTTPError as e:
            status, ra = e.code, e.headers.get("Retry-After")
            e.read()
        except Exception:
            status = 0
        rec = {"t": round(start - t0, 3), "status": status, "ms": round((time.time() - start) * 1000, 1),
               "retry_after": ra}
        with lock:
            print(json.dumps(rec), flush=True)


ts = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
[t.start() for t in ts]
[t.join() for t in ts]
