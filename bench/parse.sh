#!/usr/bin/env bash
# Benchmark of the WhatsApp parser: makes a 1M-message export (~70 MB) and prints, in one
# run, the throughput of `whatstyle parse --stats` and `--format jsonl`, and the ratios
# against `wc -l` on the same file (the read-and-scan limit), whatstk (PyPI) and
# whatsapp-chat-parser (npm). Then the start-up on a 3-line export and the peak memory on a
# ~1 GB export. Medians of RUNS runs; the ratios to `wc -l` are medians of per-run ratios,
# each run timing `wc -l` and the parse back to back (bench/parse_ratio.py), so that a shared
# machine's changing load hits both alike; CPU time (user + system, all threads) is printed too.
# Env: N (messages, default 1000000), RUNS (default 5), BIG (1 to run the 1 GB check, default 1),
# PEERS (0 skips the slow whatstk and whatsapp-chat-parser runs, for quick iterations; default 1),
# BIN (the whatstyle binary to measure, default build/whatstyle: to compare with another build).
# Last measured (docs/parser.md, fourth pass, 2026-12-03, 2 shared cores at load 7.9-9.3, PEERS=0
# BIG=0 RUNS=9, the builds run alternately three times): --stats 70.6-71.5 ms CPU (one run 96 ms,
# beside a build) against 81.4-87.6 ms before; wall ratios 0.14-0.18x for both (at that load the
# wall time is the cores' queue); quiet-machine runs of the third pass: 0.23-0.25x.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}; RUNS=${RUNS:-5}; BIG=${BIG:-1}; PEERS=${PEERS:-1}
make -s all >/dev/null
data=build/bench-data; mkdir -p "$data"
bin=${BIN:-build/whatstyle}
./build/bench_gen_export "$N" "$data/chat.txt" >/dev/null
size=$(stat -c %s "$data/chat.txt")
cat "$data/chat.txt" > /dev/null   # warm the page cache: every contender reads from memory

# peers, installed on first use (git-ignored under build/)
if [ "$PEERS" = 1 ]; then
if [ ! -x build/bench-venv/bin/python ] || ! build/bench-venv/bin/python -c "import whatstk" 2>/dev/null; then
  python3 -m venv build/bench-venv && build/bench-venv/bin/pip install -q whatstk==0.9.1
fi
if [ ! -d build/bench-node/node_modules/whatsapp-chat-parser ]; then
  mkdir -p build/bench-node && cp bench/peers/package.json build/bench-node/ &&
    (cd build/bench-node && npm install --silent --no-audit --no-fund >/dev/null)
fi
cp bench/peers/whatsapp_chat_parser.mjs build/bench-node/
fi

t() { python3 bench/timeit.py "$@" | cut -d' ' -f1; }
mbps() { python3 -c "print('%.0f' % ($size / 1e6 / $1))"; }
ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }
peers() { [ "$PEERS" = 1 ] && echo ", $(ratio "$wtk_t" "$1")x whatstk, $(ratio "$node_t" "$1")x whatsapp-chat-parser"; true; }

echo "parse benchmark: $N messages, $((size / 1000000)) MB, $(nproc) cores, whatstyle and wc: median of $RUNS runs\
$([ "$PEERS" = 1 ] && echo ", whatsapp-chat-parser median of 3, whatstk 1 run (slow)")"
# WC_WALL CMD_WALL RATIO WC_CPU CMD_CPU
read -r wc_t stats_t stats_r wc_cpu stats_cpu < <(python3 bench/parse_ratio.py "$RUNS" "$data/chat.txt" \
  "$bin" parse "$data/chat.txt" --stats)
read -r _ jsonl_t jsonl_r _ jsonl_cpu < <(python3 bench/parse_ratio.py "$RUNS" "$data/chat.txt" \
  "$bin" parse "$data/chat.txt" --format jsonl)
if [ "$PEERS" = 1 ]; then
  node_t=$(t 3 node build/bench-node/whatsapp_chat_parser.mjs "$data/chat.txt")
  wtk_t=$(t 1 build/bench-venv/bin/python bench/peers/whatstk_parse.py "$data/chat.txt" '%d/%m/%Y, %H:%M - %name:')
fi
cpu() { python3 -c "print('%.1f' % ($1 * 1000))"; }
printf '%-34s %9s %9s %8s %s\n' "contender" "seconds" "MB/s" "CPU ms" "ratio (median of per-run ratios)"
printf '%-34s %9s %9s %8s %s\n' "wc -l (read-and-scan limit)" "$wc_t" "$(mbps "$wc_t")" "$(cpu "$wc_cpu")" ""
printf '%-34s %9s %9s %8s %s\n' "whatstyle parse --stats" "$stats_t" "$(mbps "$stats_t")" "$(cpu "$stats_cpu")" \
  "${stats_r}x of wc -l (counts only: not compared with the peers)"
printf '%-34s %9s %9s %8s %s\n' "whatstyle parse --format jsonl" "$jsonl_t" "$(mbps "$jsonl_t")" "$(cpu "$jsonl_cpu")" \
  "${jsonl_r}x of wc -l$(peers "$jsonl_t")"
if [ "$PEERS" = 1 ]; then
  printf '%-34s %9s %9s\n' "whatsapp-chat-parser 4.0.2 (node)" "$node_t" "$(mbps "$node_t")"
  printf '%-34s %9s %9s\n' "whatstk 0.9.1 (python)" "$wtk_t" "$(mbps "$wtk_t")"
fi

# start-up, measured apart: a tiny export, so the time is loading the binary and its libraries
# (libpq, libcurl, hiredis and OpenBLAS load only in the roles that use them: src/core/lazylib.h)
head -3 "$data/chat.txt" > "$data/tiny.txt"
su_runs=$((RUNS * 10))
su_wc=$(t "$su_runs" wc -l "$data/tiny.txt")
su_version=$(t "$su_runs" "$bin" version)
su_parse=$(t "$su_runs" "$bin" parse "$data/tiny.txt" --stats)
ms() { python3 -c "print('%.1f ms' % ($1 * 1000))"; }
echo "start-up (3-line export, median of $su_runs): wc -l $(ms "$su_wc"), whatstyle version $(ms "$su_version"), \
whatstyle parse --stats $(ms "$su_parse") ($(ldd "$bin" | wc -l) shared libraries at start)"

if [ "$BIG" = 1 ]; then
  big=$((N * 14))
  ./build/bench_gen_export "$big" "$data/big.txt" >/dev/null
  bsize=$(stat -c %s "$data/big.txt")
  rss_stats=$(/usr/bin/time -f %M "$bin" parse "$data/big.txt" --stats 2>&1 >/dev/null | tail -1)
  rss_jsonl=$(/usr/bin/time -f %M "$bin" parse "$data/big.txt" --format jsonl 2>&1 >/dev/null | tail -1)
  echo "peak memory on a $((bsize / 1000000)) MB export: --stats $((rss_stats / 1024)) MB, --format jsonl $((rss_jsonl / 1024)) MB"
  rm -f "$data/big.txt"
fi
