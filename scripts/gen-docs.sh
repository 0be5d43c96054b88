#!/usr/bin/env bash
# gen-docs.sh writes the configuration table of docs/configuration.md from
# the binary's own table (common/config.c), so the docs cannot drift from
# the code. With --check it only reports whether the file is current.
set -euo pipefail
cd "$(dirname "$0")/.."
doc=docs/configuration.md
bin=${SLUICE_BIN:-build/sluice-ingress}
new=$(mktemp)
trap 'rm -f "$new"' EXIT
awk -v table="$("$bin" --config-table)" '
  /<!-- table:start -->/ { print; print table; skip = 1; next }
  /<!-- table:end -->/ { skip = 0 }
  !skip { print }
' "$doc" >"$new"
if [ "${1:-}" = --check ]; then
  if ! cmp -s "$new" "$doc"; then
    echo "gen-docs.sh: $doc is stale: run 'make docs'" >&2
    exit 1
  fi
  exit 0
fi
cp "$new" "$doc"
