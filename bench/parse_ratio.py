#!/usr/bin/env python3
"""Throughput of a command against `wc -l` on one file, for bench/parse.sh.

Runs `wc -l FILE` and the command alternately RUNS times (each pair back to back, so both see
the same load on a shared machine) and prints one line:
  WC_WALL CMD_WALL RATIO WC_CPU CMD_CPU
the medians of the wall times (seconds), the median of the per-pair ratios wc_wall/cmd_wall,
and the medians of the CPU times (user + system of the process and its threads, seconds).
Usage: parse_ratio.py RUNS FILE CMD [ARGS...]   (stdout of both goes to /dev/null)"""
import os
import statistics
import subprocess
import sys
import time


def run(cmd):
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    if status != 0:
        sys.exit("%s failed (status %d)" % (" ".join(cmd), status))
    return wall, ru.ru_utime + ru.ru_stime


def main():
    runs, path, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    wc_wall, wc_cpu, cmd_wall, cmd_cpu, ratios = [], [], [], [], []
    for _ in range(runs):
        w, c = run(["wc", "-l", path])
        wc_wall.append(w)
        wc_cpu.append(c)
        w2, c2 = run(cmd)
        cmd_wall.append(w2)
        cmd_cpu.append(c2)
        ratios.append(w / w2)
    med = statistics.median
    print("%.4f %.4f %.3f %.4f %.4f" % (med(wc_wall), med(cmd_wall), med(ratios), med(wc_cpu), med(cmd_cpu)))


if __name__ == "__main__":
    main()
