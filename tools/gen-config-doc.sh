#!/usr/bin/env bash
# Regenerates the option reference in docs/configuration.md (between its BEGIN/END markers)
# from the option tables compiled into the binary: `whatstyle config --list`.
# Usage: tools/gen-config-doc.sh [path/to/whatstyle]   (default build/whatstyle)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/whatstyle}
doc=docs/configuration.md
ref=$(mktemp)
trap 'rm -f "$ref"' EXIT
"$bin" config --list > "$ref"
python3 - "$doc" "$ref" <<'PY'
import sys
doc, ref = sys.argv[1], sys.argv[2]
text = open(doc, encoding="utf-8").read()
begin, end = "<!-- BEGIN whatstyle config --list -->\n", "<!-- END whatstyle config --list -->"
i, j = text.index(begin) + len(begin), text.index(end)
open(doc, "w", encoding="utf-8").write(text[:i] + open(ref, encoding="utf-8").read() + text[j:])
PY
echo "updated $doc"
