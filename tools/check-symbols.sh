#!/usr/bin/env bash
# Checks the naming convention on the built code: every symbol the library and the binary
# export (nm: global, defined) starts with ws_ (public API) or ws__ (private, shared by the files
# of one module); everything else is static. Exempt: main, names the compiler reserves ("__..."),
# and protoc-c's generated code (*.pb-c.c). Registered as the ctest test check_symbols.
# Usage: tools/check-symbols.sh LIBRARY.a [OBJECT.o ...]   (exit 1 and a list when a name is off)
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 LIBRARY.a [OBJECT.o ...]" >&2; exit 2; }
files=()   # an argument may be a CMake list (a;b;c): $<TARGET_OBJECTS:...> in add_test
for a in "$@"; do IFS=';' read -ra parts <<<"$a"; files+=("${parts[@]}"); done
set -- "${files[@]}"
for f in "$@"; do [ -e "$f" ] || { echo "check-symbols: $f: not found" >&2; exit 2; }; done
bad=$(nm -A -g --defined-only "$@" 2>/dev/null | awk '
  NF >= 3 {
    sym = $NF; where = $1; sub(/:[^:]*$/, "", where)
    if (where ~ /\.pb-c\.c\.o(:|$)/) next
    if (sym ~ /^ws_/ || sym == "main" || sym ~ /^__/) next
    print "  " sym "  (" where ")"
  }' | sort -u)
n=$(nm -g --defined-only "$@" 2>/dev/null | awk 'NF >= 3' | wc -l)
if [ -n "$bad" ]; then
  echo "check-symbols: exported names without the ws_ prefix (make them static, or ws__<module>_ when"
  echo "another file of the module needs them):"
  echo "$bad"
  exit 1
fi
echo "check-symbols: $n exported symbols, all ws_/ws__ (or exempt)"
