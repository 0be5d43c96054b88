#!/usr/bin/env bash
# gen-docs.sh writes the configuration table of docs/configuration.md and
# docs/operations.md (between <!-- table:start --> and <!-- table:end -->)
# from the binary's own table (common/config.c), so the docs cannot drift
# from the code. With --check it only reports whether both files are current.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${SLUICE_BIN:-build/sluice-ingress}
table=$("$bin" --config-table)
new=$(mktemp)
trap 'rm -f "$new"' EXIT
stale=0
for doc in docs/configuration.md docs/operations.md; do
  if ! grep -q '<!-- table:start -->' "$doc" || ! grep -q '<!-- table:end -->' "$doc"; then
    echo "gen-docs.sh: $doc lacks the table markers" >&2
    exit 1
  fi
  awk -v table="$table" '
    /<!-- table:start -->/ { print; print table; skip = 1; next }
    /<!-- table:end -->/ { skip = 0 }
    !skip { print }
  ' "$doc" >"$new"
  if [ "${1:-}" = --check ]; then
    if ! cmp -s "$new" "$doc"; then
      echo "gen-docs.sh: $doc is stale: run 'make docs'" >&2
      stale=1
    fi
  else
    cp "$new" "$doc"
  fi
done
exit "$stale"
