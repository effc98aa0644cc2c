#!/usr/bin/env python3
"""Reads the load generator's results (loadgen.py --out) and the fault timeline (lines
"NAME START END [RECOVERED]": the fault began at START and was undone at END, epoch seconds;
RECOVERED, when given, is when the part's own work caught up: a resumed job completed, the
outbox drained) and prints one line per fault: requests in its window (from START to the next
fault's START), requests failed (anything but 200 or a clean 503 with Retry-After), clean
503s, requests that hung past the deadline, seconds to recover (from START to the last request
of the window that did not get a 200, or to RECOVERED when later; 0 when neither), the slowest
answer, and with the optional files:
  --jobs FILE      "FAULT JOB_ID" (or "FAULT refused-503" / "FAULT failed-CODE"): jobs uploaded
                   while the fault was on
  --jobs-db FILE   "JOB_ID STATUS N": the job's final status, N training.completed outbox rows
  --bus FILE       the downstream consumer's deliveries (tests/helpers/bus_count.c)
  --outbox FILE    "ID CREATED_MS": every analytics event the store wrote (outbox rows)
jobs uploaded, lost (not completed), completed twice (two completion rows in the outbox, or two
completion events with different ids handled downstream), and analytics events written in the
window, lost (never delivered), duplicated downstream (handled twice by the consumer, which is
idempotent by event id) and redelivered (deliveries of an id already handled, which the
consumer dropped: delivery is at least once, e.g. a relay killed between the broker's
acknowledgement and marking its rows; reported, allowed). Exits 1 when a fault failed or hung
a request, lost or twice-completed a job, lost or duplicated an event.

Usage: faults_report.py RESULTS TIMELINE DEADLINE_S [--jobs F --jobs-db F --bus F --outbox F]
"""
import argparse
import collections
import json
import sys


def read_lines(path):
    return [line.split() for line in open(path) if line.strip()] if path else []


def bus_counts(path):
    """(analytics deliveries by event id, of them handled by the idempotent consumer,
    training.completed events handled by job id)"""
    events, handled, completed = collections.Counter(), collections.Counter(), collections.Counter()
    for row in (line.rstrip("\n").split("\t") for line in open(path) if line.strip()) if path else []:
        if len(row) < 7:
            continue
        topic, event_id, _, _, typ, job, done = row[:7]
        if topic == "analytics-events":
            events[event_id] += 1
            handled[event_id] += done == "1"
        elif topic == "training-events" and typ == "training.completed" and done == "1":
            completed[job] += 1
    return events, handled, completed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("timeline")
    ap.add_argument("deadline", type=float)
    ap.add_argument("--jobs")
    ap.add_argument("--jobs-db")
    ap.add_argument("--bus")
    ap.add_argument("--outbox")
    a = ap.parse_args()
    rows = [json.loads(line) for line in open(a.results) if line.strip()]
    faults = read_lines(a.timeline)
    deadline_ms = a.deadline * 1000
    jobs = collections.defaultdict(list)
    for fault, job in read_lines(a.jobs):
        jobs[fault].append(job)
    db = {r[0]: (r[1], int(r[2])) for r in read_lines(a.jobs_db)}
    delivered, handled, completed_on_topic = bus_counts(a.bus)
    outbox = [(r[0], int(r[1]) / 1000) for r in read_lines(a.outbox)]
    counted = bool(a.outbox and a.bus)
    bad_total = 0
    bounds = [float(f[1]) for f in faults] + [float("inf")]
    print(f"{'fault':<14} {'requests':>8} {'failed':>6} {'503+RA':>6} {'hung':>4} {'recover_s':>9} {'max_ms':>7}"
          f" {'jobs':>4} {'lost':>4} {'twice':>5} {'events':>6} {'ev_lost':>7} {'ev_dup':>6} {'redeliv':>7}")
    for i, f in enumerate(faults):
        name, start = f[0], float(f[1])
        lo, hi = start, bounds[i + 1]
        win = [r for r in rows if lo <= r["t"] < hi]
        clean = [r for r in win if r["status"] == 503 and r["retry_after"]]
        hung = [r for r in win if r["ms"] > deadline_ms + 500 or r["error"] in ("timeout", "TimeoutError")]
        failed = [r for r in win if r["status"] != 200 and r not in clean]
        not_ok = [r for r in win if r["status"] != 200]
        recover = max((r["t"] + r["ms"] / 1000 for r in not_ok), default=lo) - lo
        if len(f) > 3:
            recover = max(recover, float(f[3]) - lo)
        worst = max((r["ms"] for r in win), default=0)
        js = [j for j in jobs.get(name, []) if not j.startswith("refused-")]
        bad_uploads = [j for j in js if j.startswith("failed-")]
        js = [j for j in js if not j.startswith("failed-")]
        lost = [j for j in js if db.get(j, ("?", 0))[0] != "completed"]
        twice = [j for j in js if db.get(j, ("?", 0))[1] > 1 or completed_on_topic[j] > 1]
        evs = [e for e, t in outbox if lo <= t < hi]
        ev_lost = [e for e in evs if delivered[e] == 0]
        ev_dup = [e for e in evs if handled[e] > 1]
        redeliv = sum(delivered[e] - 1 for e in evs if delivered[e] > 1)
        print(f"{name:<14} {len(win):>8} {len(failed):>6} {len(clean):>6} {len(hung):>4} {recover:>9.1f} {worst:>7.0f}"
              f" {len(js):>4} {len(lost):>4} {len(twice):>5} {len(evs) if counted else '-':>6}"
              f" {len(ev_lost) if counted else '-':>7} {len(ev_dup) if counted else '-':>6}"
              f" {redeliv if counted else '-':>7}")
        for r in failed[:5]:
            print(f"    failed: {json.dumps(r)}")
        for j in lost + twice:
            print(f"    job {j}: status {db.get(j, ('?', 0))[0]}, completions: outbox {db.get(j, ('?', 0))[1]},"
                  f" topic {completed_on_topic[j]}")
        for j in bad_uploads:
            print(f"    upload while the fault was on: {j} (only 202 or 503 with Retry-After)")
        if ev_lost or ev_dup:
            print(f"    events lost: {ev_lost[:10]}, duplicated: {ev_dup[:10]}")
        bad_total += len(failed) + len(hung) + len(lost) + len(twice) + len(bad_uploads)
        bad_total += len(ev_lost) + len(ev_dup)
    before = [r for r in rows if r["t"] < bounds[0]]
    evs = [e for e, t in outbox if t < bounds[0]]
    ev_lost = [e for e in evs if delivered[e] == 0]
    ev_dup = [e for e in evs if handled[e] > 1]
    redeliv = sum(delivered[e] - 1 for e in evs if delivered[e] > 1)
    print(f"{'(baseline)':<14} {len(before):>8} {sum(r['status'] != 200 for r in before):>6}"
          f" {'':>6} {'':>4} {'':>9} {'':>7} {'':>4} {'':>4} {'':>5} {len(evs) if counted else '-':>6}"
          f" {len(ev_lost) if counted else '-':>7} {len(ev_dup) if counted else '-':>6}"
          f" {redeliv if counted else '-':>7}")
    bad_total += len(ev_lost) + len(ev_dup)
    if counted:
        print(f"analytics events: {len(outbox)} written, {sum(1 for e, _ in outbox if delivered[e])} delivered,"
              f" {sum(delivered.values())} deliveries")
    sys.exit(1 if bad_total else 0)


if __name__ == "__main__":
    main()
