#!/usr/bin/env bash
# The C sources' formatting against .clang-format (clang-format-14), like curl's checker in CI.
#   tools/check-format.sh [FILE...]           fail (exit 1) and list every file clang-format would change
#   tools/check-format.sh --report [FILE...]  the same list and a count, exit 0
#   tools/check-format.sh --fix [FILE...]     format the files in place (the one-time tree format)
# Without FILEs: every tracked .c/.h under src/, tests/, fuzz/ and bench/. The ctest test
# check_format runs the first form when CMake's WS_CHECK_FORMAT is ON.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=check
case "${1:-}" in
  --report) mode=report; shift ;;
  --fix) mode=fix; shift ;;
  -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
esac
CF=${CLANG_FORMAT:-clang-format-14}
command -v "$CF" >/dev/null || { echo "check-format: $CF not found (tools/install-deps.sh installs it)" >&2; exit 2; }
if [ $# -gt 0 ]; then files=("$@"); else
  mapfile -t files < <(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'tests/*.h' 'fuzz/*.c' 'bench/*.c' 'bench/*.h')
fi
if [ "$mode" = fix ]; then
  printf '%s\0' "${files[@]}" | xargs -0 -n 16 -P "$(nproc)" "$CF" -i --style=file
  echo "check-format: formatted ${#files[@]} files"
  exit 0
fi
# one line per file that would change: "<changed lines> <file>"
changed=$(printf '%s\0' "${files[@]}" | xargs -0 -n 1 -P "$(nproc)" bash -c \
  'n=$('"$CF"' --style=file "$0" | diff "$0" - | grep -c "^[<>]" || true); [ "$n" -gt 0 ] && echo "$n $0" || true' | sort -k2)
nf=$(grep -c . <<<"$changed" || true)
nl=$(awk '{s += $1} END {print s + 0}' <<<"$changed")
if [ "$nf" -eq 0 ]; then
  echo "check-format: ${#files[@]} files, all formatted"
  exit 0
fi
echo "$changed" | sed 's/^/  /'
echo "check-format: $nf of ${#files[@]} files would change ($nl lines); tools/check-format.sh --fix formats them"
[ "$mode" = report ] && exit 0
exit 1
