#!/usr/bin/env bash
# The held-out topic check of issue 8 on tests/fixtures/eval/: a clone of Sam and one of Jordan
# trained on the pretrained base for BUDGET seconds each, then each answers the 16 unseen
# questions of questions.json that the person answers, DRAWS times with different sampling seeds,
# judged on/off topic by the topics' keywords next to the person's real answers
# (bench_relevance_check). PEER=1 also trains the PyTorch + PEFT peer on the same examples for the
# same budget (bench/relevance_peer.py, in build/pyref-venv: tools/pyref-venv.sh) and judges its
# answers alike. Env: BUDGET (default 300), DRAWS (default 6), BASE (a base model path; default
# the installed one), SHOW=1 to print every answer, PEER=1, PAIRS (default 1, at most 4): train
# that many clones of each person with seeds 1..PAIRS and report each and their mean — one 300 s
# training's adapter answers on the topic up to 4 times in 16 more or less than the next one's.
# The keyword judge is a quick proxy that blind readers often overrule: to score by readers'
# labels, keep the SHOW=1 output and run bench/relevance_readers.py on it (docs/clone.md).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s all >/dev/null
[ -s models/base/SmolLM2-135M-Instruct.Q4_1.gguf ] || bash tools/setup-base-model.sh
out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
pairs=${PAIRS:-1}
[[ "$pairs" =~ ^[1-4]$ ]] || { echo "relevance.sh: PAIRS must be 1 to 4" >&2; exit 2; }
clones=()
for seed in $(seq 1 "$pairs"); do
  for p in Sam Jordan; do
    dir="$out/$p-$seed"
    ./build/whatstyle train tests/fixtures/eval/friends_chat.txt --as "$p" -o "$dir" --budget "${BUDGET:-300}" \
      --seed "$seed" ${BASE:+--base-model "$BASE"} --quiet
    grep -E "^ *(R10@1|relevance gain|verdict)" "$dir/fidelity.txt" | sed "s/^/$p (seed $seed): /"
    clones+=("$p=$dir")
  done
done
./build/bench_relevance_check tests/fixtures/eval/questions.json "${clones[@]}" \
  --draws "${DRAWS:-6}" ${SHOW:+--show}
if [ -n "${PEER:-}" ]; then
  py=$(bash tools/pyref-venv.sh pyref | tail -1)/bin/python
  "$py" bench/relevance_peer.py tests/fixtures/eval/friends_chat.txt tests/fixtures/eval/questions.json \
    "$out/peer.json" Sam Jordan --budget "${BUDGET:-300}" --draws "${DRAWS:-6}" ${BASE:+--gguf "$BASE"}
  ./build/bench_relevance_check tests/fixtures/eval/questions.json --answers "$out/peer.json" ${SHOW:+--show}
fi
