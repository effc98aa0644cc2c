#!/usr/bin/env bash
# The full test run (README's test command): install dependencies, build with warnings as
# errors, run the tests, run them again under ASan+UBSan, fuzz each target briefly, and end
# with one summary line "N passed, N failed" (ctest tests of both builds plus fuzz targets).
set -uo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh || { echo "dependency install failed"; echo "0 passed, 1 failed"; exit 1; }
bash tools/setup-minilm.sh || { echo "MiniLM model install failed"; echo "0 passed, 1 failed"; exit 1; }
[ -s models/base/SmolLM2-135M-Instruct.Q4_1.gguf ] || { echo "base model install failed"; echo "0 passed, 1 failed"; exit 1; }
passed=0; failed=0; log=$(mktemp); trap 'rm -f "$log"' EXIT
count_ctest() { # adds the counts of ctest's closing line in $log
  local line total bad
  line=$(grep -E "tests passed, [0-9]+ tests? failed out of [0-9]+" "$log" | tail -1)
  if [ -z "$line" ]; then failed=$((failed + 1)); return; fi
  total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
  bad=$(sed -E 's/.*passed, ([0-9]+) tests? failed.*/\1/' <<<"$line")
  passed=$((passed + total - bad)); failed=$((failed + bad))
}
echo "=== build (-Werror)"
if ! make all 2>&1 | tail -20; then echo "build FAILED"; echo "0 passed, 1 failed"; exit 1; fi
echo "=== tests"
make test 2>&1 | tee "$log"; count_ctest
echo "=== tests under ASan+UBSan"
make asan 2>&1 | tee "$log"; count_ctest
echo "=== fuzz (${FUZZ_SECONDS:-40}s per target)"
if make fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-40}" 2>&1 | tee "$log"; then :; fi
passed=$((passed + $(grep -c "^fuzz: .* for " "$log") - $(grep -c "^fuzz: .* FAILED" "$log")))
failed=$((failed + $(grep -c "^fuzz: .* FAILED" "$log")))
grep -q "^fuzz: .* for " "$log" || failed=$((failed + 1))
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
