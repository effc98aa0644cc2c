#!/usr/bin/env python3
"""Runs a command several times and prints the median wall time in seconds (and all runs).
Usage: timeit.py RUNS CMD [ARGS...]   (stdout of the command goes to /dev/null)"""
import statistics
import subprocess
import sys
import time

runs = int(sys.argv[1])
cmd = sys.argv[2:]
times = []
for _ in range(runs):
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
    times.append(time.perf_counter() - t)
print("%.4f %s" % (statistics.median(times), " ".join("%.4f" % x for x in times)))
