#!/usr/bin/env bash
# The full test run (README's test command): install dependencies, build with warnings as
# errors, run the tests, run them again under ASan+UBSan, fuzz each target briefly, and end
# with one summary line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh || { echo "dependency install failed"; echo "0 passed, 1 failed"; exit 1; }
# the MiniLM sentence encoder for the reference checks of test_bert (skipped when unavailable)
bash tools/setup-minilm.sh || echo "MiniLM model not installed; its reference checks will be skipped"
passed=0; failed=0
step() { # step NAME COMMAND...
  local name=$1; shift
  echo "=== $name"
  if "$@"; then passed=$((passed + 1)); echo "=== $name: ok"
  else failed=$((failed + 1)); echo "=== $name: FAILED"; fi
}
step "build (-Werror)" make all
step "tests" make test
step "tests under ASan+UBSan" make asan
step "fuzz (${FUZZ_SECONDS:-60}s per target)" make fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
