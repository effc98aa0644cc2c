#!/usr/bin/env python3
"""A steady, bounded load on loopback for the cluster's fault tests and benchmark: POSTs one
JSON body to URL at a fixed rate (open loop: a slow answer does not slow the schedule), each
request with a deadline, at most --workers in flight (a request that cannot start within its
slot is counted as dropped, never queued without bound). Writes one JSON line per request:
{"t": start (epoch s), "ms": latency, "status": HTTP status or 0, "retry_after": bool,
"error": text or null}. Stops after --duration seconds or when --stop-file appears.

With --unique-every N, every Nth request asks a new question (its "message" gets a counter),
so it misses the reply cache and goes to the AI nodes; the others are cache hits.

Usage: loadgen.py URL KEY --out FILE [--rps 20] [--duration 60] [--deadline 10]
       [--body JSON] [--unique-every N] [--workers 32] [--stop-file PATH] [--summary]
"""
import argparse
import http.client
import json
import os
import queue
import threading
import time
import urllib.parse


def worker(url, key, body, deadline, unique_every, jobs, results):
    u = urllib.parse.urlsplit(url)
    conn = None
    while True:
        job = jobs.get()
        if job is None:
            return
        n = job[1]
        data = body
        if unique_every and n % unique_every == 0:
            doc = json.loads(body)
            doc["message"] = f"{doc['message']} ({n})"
            data = json.dumps(doc).encode()
        start = time.time()
        status, retry_after, err = 0, False, None
        try:
            if conn is None:
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=deadline)
            conn.request("POST", u.path or "/", body=data,
                         headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            status = r.status
            retry_after = r.getheader("Retry-After") is not None
            if r.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except Exception as e:  # a refused, reset or timed-out request: recorded, then reconnect
            err = type(e).__name__
            if conn is not None:
                conn.close()
            conn = None
        results.put({"t": round(start, 3), "ms": round((time.time() - start) * 1000, 1), "status": status,
                     "retry_after": retry_after, "error": err})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("key")
    ap.add_argument("--out", required=True)
    ap.add_argument("--rps", type=float, default=20)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--deadline", type=float, default=10)
    ap.add_argument("--body", default='{"message":"are you coming tonight?"}')
    ap.add_argument("--workers", type=int, default=32)
    ap.add_argument("--unique-every", type=int, default=0)
    ap.add_argument("--stop-file")
    ap.add_argument("--summary", action="store_true", help="print rps and latency percentiles at the end")
    a = ap.parse_args()
    jobs = queue.Queue(maxsize=a.workers)
    results = queue.Queue()
    threads = [threading.Thread(target=worker, args=(a.url, a.key, a.body.encode(), a.deadline, a.unique_every, jobs, results),
                                daemon=True) for _ in range(a.workers)]
    for t in threads:
        t.start()
    dropped = 0
    t0 = time.time()
    n = 0
    with open(a.out, "w") as out:
        while time.time() - t0 < a.duration and not (a.stop_file and os.path.exists(a.stop_file)):
            due = t0 + n / a.rps
            now = time.time()
            if due > now:
                time.sleep(due - now)
            try:
                jobs.put_nowait((due, n))
            except queue.Full:  # every worker busy: the load stays bounded
                dropped += 1
                out.write(json.dumps({"t": round(due, 3), "ms": 0, "status": 0, "retry_after": False,
                                      "error": "dropped"}) + "\n")
            n += 1
            while not results.empty():
                out.write(json.dumps(results.get()) + "\n")
        for _ in threads:
            jobs.put(None)
        for t in threads:
            t.join(a.deadline + 5)
        while not results.empty():
            out.write(json.dumps(results.get()) + "\n")
    elapsed = time.time() - t0
    if a.summary:
        rows = [json.loads(line) for line in open(a.out)]
        ok = sorted(r["ms"] for r in rows if r["status"] == 200)
        pct = lambda p: ok[min(len(ok) - 1, int(p * len(ok)))] if ok else 0
        print(json.dumps({"sent": n, "ok": len(ok), "dropped": dropped, "seconds": round(elapsed, 2),
                          "rps_ok": round(len(ok) / elapsed, 1), "p50_ms": pct(0.5), "p99_ms": pct(0.99)}))


if __name__ == "__main__":
    main()
