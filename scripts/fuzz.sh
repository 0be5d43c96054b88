#!/usr/bin/env bash
# fuzz.sh runs each libFuzzer target (build/fuzz/fuzz_<name>) for FUZZ_S
# seconds (default 60), starting from its seed corpus tests/fuzz/<name>/.
# What a run finds new goes to build/fuzz/corpus/<name>/, not the repository;
# a crash leaves its input in build/fuzz/crash-<name>-* and fails the run:
# make that input a regression test (a unit test with the input) and fix.
#
#   fuzz.sh build/fuzz/fuzz_config ...
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_S:-60}
failed=()
for bin in "$@"; do
  name=$(basename "$bin")
  name=${name#fuzz_}
  corpus=build/fuzz/corpus/$name
  mkdir -p "$corpus"
  echo "== fuzz $name for ${seconds}s"
  # -rss_limit_mb and -timeout turn a leak or a hang into a finding too;
  # ASan's leak checker runs at the end of the run.
  if ! "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="build/fuzz/crash-$name-" "$corpus" "tests/fuzz/$name" \
    >"build/fuzz/$name.log" 2>&1; then
    failed+=("$name")
    tail -40 "build/fuzz/$name.log" >&2
    echo "fuzz.sh: $name failed: its input is in build/fuzz/crash-$name-*" >&2
  else
    grep -E 'stat::number_of_executed_units|stat::new_units_added' "build/fuzz/$name.log" |
      tr '\n' ' ' | sed 's/^/  /'
    echo
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: failed: ${failed[*]}" >&2
  exit 1
fi
