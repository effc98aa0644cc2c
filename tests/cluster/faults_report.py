#!/usr/bin/env python3
"""Reads the load generator's results (loadgen.py --out) and the fault timeline (lines
"NAME START END": the fault began at START and was undone at END, epoch seconds) and prints
one line per fault: requests in its window (from START to the next fault's START), requests
failed (anything but 200 or a clean 503 with Retry-After), clean 503s, requests that hung
past the deadline, and the seconds to recover (from START to the last request of the window
that did not get a 200; 0 when none) and the slowest answer. Exits 1 when a fault failed or hung a request.

Usage: faults_report.py RESULTS TIMELINE DEADLINE_S
"""
import json
import sys


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    faults = [line.split() for line in open(sys.argv[2]) if line.strip()]
    deadline_ms = float(sys.argv[3]) * 1000
    bad_total = 0
    bounds = [float(f[1]) for f in faults] + [float("inf")]
    print(f"{'fault':<16} {'requests':>8} {'failed':>6} {'503+RA':>6} {'hung':>4} {'recover_s':>9} {'max_ms':>7}")
    for i, (name, start, end) in enumerate(faults):
        lo, hi = float(start), bounds[i + 1]
        win = [r for r in rows if lo <= r["t"] < hi]
        clean = [r for r in win if r["status"] == 503 and r["retry_after"]]
        hung = [r for r in win if r["ms"] > deadline_ms + 500 or r["error"] in ("timeout", "TimeoutError")]
        failed = [r for r in win if r["status"] != 200 and r not in clean]
        not_ok = [r for r in win if r["status"] != 200]
        recover = max((r["t"] + r["ms"] / 1000 for r in not_ok), default=lo) - lo
        worst = max((r["ms"] for r in win), default=0)
        print(f"{name:<16} {len(win):>8} {len(failed):>6} {len(clean):>6} {len(hung):>4} {recover:>9.1f} {worst:>7.0f}")
        for r in failed[:5]:
            print(f"    failed: {json.dumps(r)}")
        bad_total += len(failed) + len(hung)
    before = [r for r in rows if r["t"] < bounds[0]]
    print(f"{'(baseline)':<16} {len(before):>8} {sum(r['status'] != 200 for r in before):>6}")
    sys.exit(1 if bad_total else 0)


if __name__ == "__main__":
    main()
