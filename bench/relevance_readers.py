#!/usr/bin/env python3
"""Blind readers for the held-out topic check (issue 8): the keyword judge of bench_relevance_check
is an automatic proxy; this scores the same answers by readers' labels instead.

  items   OUT.json SHOW.txt...  -- every distinct (question, reply) of the `--show` outputs and the
                                   real answers, not yet in bench/relevance_readers/items.json,
                                   shuffled, with no mark of which are real or what the keyword
                                   judge said: what each reader labels by RUBRIC.md
  add     ITEMS.json R1.json R2.json -- appends new items and their two readers' labels (each id
                                   labelled once by each, ON / NEUTRAL / OFF) to the files below
  score   SHOW.txt...           -- per person: on / off / neutral per 16 questions (mean over the
                                   draws) by the keyword judge, by each reader, and by both readers
                                   together (a clone's answer is on-topic only when both say ON
                                   and off-topic when either says OFF; a real answer is on-topic
                                   when either says ON: the bar as high as a reader puts it),
                                   against the goal (on >= 90% of the real answers, off <= 1 in 16)

Labels live in bench/relevance_readers/: items.json (all labelled items) and labels_r1.json,
labels_r2.json (one reader each: [{"id", "label": ON|NEUTRAL|OFF, "other", "why"}]).
"""
import collections
import glob
import hashlib
import json
import os
import random
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DIR = os.path.join(ROOT, "bench", "relevance_readers")
QUESTIONS = os.path.join(ROOT, "tests", "fixtures", "eval", "questions.json")
HEAD = re.compile(r"^\[(\w+)\] (\w+)$")


def parse_show(path):
    """The answers of a `bench_relevance_check --show` output: who, topic, question, reply, verdicts."""
    lines = open(path, encoding="utf-8").read().split("\n")
    out, i = [], 0
    while i < len(lines):
        m = HEAD.match(lines[i])
        if not m:
            i += 1
            continue
        who, topic = m.groups()
        i += 1
        q = [lines[i][5:]]
        i += 1
        while not lines[i].startswith("  clone ("):
            q.append(lines[i])
            i += 1
        m2 = re.match(r"^  clone \(([^,]+), \d+ ms(?:, style of [^)]*)?\): (.*)$", lines[i])
        a = [m2.group(2)]
        i += 1
        while not lines[i].startswith("  real  ("):
            a.append(lines[i])
            i += 1
        m3 = re.match(r"^  real  \(([^)]+)\): (.*)$", lines[i])
        i += 1
        while i < len(lines) and not HEAD.match(lines[i]) and not lines[i].startswith("clone counts"):
            i += 1
        out.append(dict(who=who, topic=topic, q="\n".join(q), a="\n".join(a), v=m2.group(1), rv=m3.group(1)))
    return out


def item_id(qid, reply):
    return hashlib.sha1(f"{qid}|{reply}".encode()).hexdigest()[:8]


def load_questions():
    qj = json.load(open(QUESTIONS, encoding="utf-8"))
    return qj, {(q["answerer"], q["question"]): q for q in qj["questions"]}


def make_items(out_path, shows):
    qj, by_text = load_questions()
    known = os.path.join(DIR, "items.json")
    seen = {it["id"] for it in json.load(open(known, encoding="utf-8"))} if os.path.exists(known) else set()
    items = {}

    def add(q, reply):
        iid = item_id(q["id"], reply)
        if iid in seen or iid in items:
            return
        items[iid] = dict(id=iid, qid=q["id"], topic=q["topic"],
                          topic_description=qj["topics"][q["topic"]]["description"],
                          answerer=q["answerer"], asker=q["asker"],
                          context=[f"{t['author']}: {t['text']}" for t in q["context"]],
                          message=f"{q['asker']}: {q['question']}", reply=reply)

    for q in qj["questions"]:
        add(q, q["real_answer"])
    for path in shows:
        for r in parse_show(path):
            add(by_text[(r["who"], r["q"])], r["a"])
    new = list(items.values())
    random.Random(7).shuffle(new)
    json.dump(new, open(out_path, "w", encoding="utf-8"), indent=1, ensure_ascii=False)
    print(f"{len(new)} new items in {out_path}")


def add(items_path, r1_path, r2_path):
    new = json.load(open(items_path, encoding="utf-8"))
    ids = [it["id"] for it in new]
    files = {"items.json": new}
    for name, path in (("labels_r1.json", r1_path), ("labels_r2.json", r2_path)):
        labels = json.load(open(path, encoding="utf-8"))
        if sorted(l["id"] for l in labels) != sorted(ids):
            sys.exit(f"{path}: not one label for each of the {len(ids)} items")
        if any(l["label"] not in ("ON", "NEUTRAL", "OFF") for l in labels):
            sys.exit(f"{path}: a label other than ON, NEUTRAL or OFF")
        files[name] = labels
    merged = {}
    for name, rows in files.items():
        path = os.path.join(DIR, name)
        old = json.load(open(path, encoding="utf-8")) if os.path.exists(path) else []
        if {r["id"] for r in old} & set(ids):
            sys.exit(f"{path}: already has some of these items")
        merged[path] = old + rows
    for path, rows in merged.items():
        tmp = path + ".tmp"
        json.dump(rows, open(tmp, "w", encoding="utf-8"), indent=1, ensure_ascii=False)
        os.replace(tmp, path)
    print(f"{len(ids)} items added")


def load_labels(name):
    return {l["id"]: l["label"] for l in json.load(open(os.path.join(DIR, name), encoding="utf-8"))}


def kappa(r1, r2):
    ids = [i for i in r1 if i in r2]
    agree = sum(r1[i] == r2[i] for i in ids) / len(ids)
    c1, c2 = collections.Counter(r1[i] for i in ids), collections.Counter(r2[i] for i in ids)
    pe = sum(c1[l] * c2[l] for l in ("ON", "NEUTRAL", "OFF")) / len(ids) ** 2
    return len(ids), agree, (agree - pe) / (1 - pe)


def score(shows):
    _, by_text = load_questions()
    r1, r2 = load_labels("labels_r1.json"), load_labels("labels_r2.json")
    n, agree, k = kappa(r1, r2)
    print(f"readers: {n} items labelled by both, agreement {agree:.3f}, Cohen's kappa {k:.3f}")
    kw = lambda v: {"on-topic": "ON", "neutral": "NEUTRAL"}.get(v, "OFF")
    judges = {
        "keyword": lambda i, v: kw(v),
        "reader 1": lambda i, v: r1[i],
        "reader 2": lambda i, v: r2[i],
        "readers": None,
    }
    for path in shows:
        rs = parse_show(path)
        draws = collections.Counter()
        clone = collections.defaultdict(collections.Counter)
        real = collections.defaultdict(collections.Counter)
        seen_real = set()
        missing = 0
        confusion = collections.Counter()
        for r in rs:
            q = by_text[(r["who"], r["q"])]
            i, ri = item_id(q["id"], r["a"]), item_id(q["id"], q["real_answer"])
            if i not in r1 or i not in r2 or ri not in r1 or ri not in r2:
                missing += 1
                continue
            draws[(r["who"], q["id"])] += 1
            a, b = r1[i], r2[i]
            both = "OFF" if "OFF" in (a, b) else "ON" if a == b == "ON" else "NEUTRAL"
            for name, f in judges.items():
                clone[(r["who"], name)][both if f is None else f(i, r["v"])] += 1
            confusion[(kw(r["v"]), both)] += 1
            if (r["who"], q["id"]) not in seen_real:
                seen_real.add((r["who"], q["id"]))
                a, b = r1[ri], r2[ri]
                either = "ON" if "ON" in (a, b) else "OFF" if a == b == "OFF" else "NEUTRAL"
                for name, f in judges.items():
                    real[(r["who"], name)][either if f is None else f(ri, r["rv"])] += 1
        nd = max(draws.values()) if draws else 0
        print(f"\n{path}: {nd} draws" + (f", {missing} answers not labelled (run `items`)" if missing else ""))
        print("person  judge     clone on   off  neutral | real on off | goal")
        for who in sorted({w for w, _ in clone}):
            nq = sum(1 for w, _ in seen_real if w == who)
            for name in judges:
                c, rc = clone[(who, name)], real[(who, name)]
                on, off, neu = c["ON"] / nd, c["OFF"] / nd, c["NEUTRAL"] / nd
                met = on * 10 >= rc["ON"] * 9 and off * 16 <= nq
                print(f"{who:7s} {name:9s} {on:6.2f} {off:5.2f} {neu:8.2f} | {rc['ON']:4d} {rc['OFF']:3d}"
                      f" /{nq} | {'met' if met else 'NOT met'}")
        for v in ("ON", "NEUTRAL", "OFF"):
            row = ", ".join(f"{confusion[(v, b)]} {b}" for b in ("ON", "NEUTRAL", "OFF"))
            print(f"clone answers the keyword judge calls {v}: the readers say {row}")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "items":
        make_items(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) == 5 and sys.argv[1] == "add":
        add(*sys.argv[2:])
    elif len(sys.argv) >= 3 and sys.argv[1] == "score":
        score(sys.argv[2:])
    else:
        sys.exit(__doc__)
