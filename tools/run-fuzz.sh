#!/usr/bin/env bash
# Runs every built fuzz target for a fixed time on a copy of its committed seed corpus
# (fuzz/corpus/<target>/). Usage: run-fuzz.sh BUILD_DIR SECONDS. Fails on any crash.
set -euo pipefail
build=$1; secs=${2:-60}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
status=0
for bin in "$build"/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  mkdir -p "$work/$name"
  cp -r fuzz/corpus/"$name"/. "$work/$name"/ 2>/dev/null || true
  echo "fuzz: $name for ${secs}s"
  if ! ASAN_OPTIONS=detect_leaks=1 "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
       -artifact_prefix="$work/" -print_final_stats=0 "$work/$name" fuzz/corpus/"$name" \
       > "$work/$name.log" 2>&1; then
    echo "fuzz: $name FAILED"; tail -40 "$work/$name.log"; status=1
  else
    grep -E "^#[0-9]+.*DONE|Done [0-9]+ runs" "$work/$name.log" | tail -1 || true
  fi
done
exit $status
