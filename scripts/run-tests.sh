#!/usr/bin/env bash
# run-tests.sh runs Check test binaries under the sanitizers and sums their
# results. In integration mode it first starts a private RabbitMQ (see
# broker.sh) for the tests, in cluster mode a private three-node cluster (see
# cluster.sh), and always stops it at the end.
#
#   run-tests.sh unit BIN...          run each unit test binary
#   run-tests.sh integration BIN...   the same, against a private broker
#   run-tests.sh cluster BIN...       the same, against a private three-node
#                                     cluster, in quorum mode
#
# The last line of output is "<N> passed, <M> failed" (CI reads it). A binary
# that crashes, times out, exits non-zero or prints no Check summary counts as
# one more failure. SLUICE_TEST_TIMEOUT (seconds, default 900) bounds each binary.
#
# SLUICE_TEST_JOBS=N (integration mode, default 1) splits the binaries into N
# groups, each run by its own run-tests.sh against its own private broker (a
# suite may stop or pause its broker, so groups never share one), prints
# each group's output once it is done, and sums them. The suites mostly wait
# on timers and the broker, so two groups take about half the time on two
# cores. Binaries named in SLUICE_TEST_ALONE (basenames, space-separated)
# run after the groups, one at a time with nothing beside them: those that
# time rates and deadlines, which a second group's load would skew.
set -euo pipefail

usage() {
  echo "usage: run-tests.sh unit|integration|cluster BIN..." >&2
  exit 2
}

mode=${1:-}
case $mode in unit | integration | cluster) ;; *) usage ;; esac
shift

root=$(cd "$(dirname "$0")/.." && pwd)
bins=()
for b in "$@"; do
  # Absolute paths, because the tests run from the repository root.
  case $b in
    /*) bins+=("$b") ;;
    *) bins+=("$PWD/$b") ;;
  esac
done
cd "$root"

jobs=${SLUICE_TEST_JOBS:-1}
if [ "$mode" = integration ] && [ "$jobs" -gt 1 ] && [ "${#bins[@]}" -gt 1 ]; then
  shared=() alone=()
  for b in "${bins[@]}"; do
    case " ${SLUICE_TEST_ALONE:-} " in
      *" $(basename "$b") "*) alone+=("$b") ;;
      *) shared+=("$b") ;;
    esac
  done
  [ "$jobs" -le "${#shared[@]}" ] || jobs=${#shared[@]}
  split=$(mktemp -d "${TMPDIR:-/tmp}/sluice-jobs.XXXXXX")
  trap 'rm -rf "$split"' EXIT
  pids=()
  for ((j = 0; j < jobs; j++)); do
    group=()
    for ((i = j; i < ${#shared[@]}; i += jobs)); do group+=("${shared[$i]}"); done
    SLUICE_TEST_JOBS=1 "$0" integration "${group[@]}" >"$split/$j.out" 2>&1 &
    pids+=($!)
  done
  passed=0 failed=0
  # tally adds the sum line of a run's output (a missing one is a failure).
  tally() {
    read -r p f < <(tail -n 1 "$1" | awk '/ passed, / {print $1, $3; ok = 1} END {if (!ok) print 0, 1}')
    passed=$((passed + p))
    failed=$((failed + f))
  }
  for ((j = 0; j < jobs; j++)); do
    wait "${pids[$j]}" || true
    echo "run-tests.sh: group $((j + 1)) of $jobs"
    cat "$split/$j.out"
    tally "$split/$j.out"
  done
  if [ ${#alone[@]} -gt 0 ]; then
    echo "run-tests.sh: one at a time: ${alone[*]##*/}"
    SLUICE_TEST_JOBS=1 "$0" integration "${alone[@]}" | tee "$split/alone.out" || true
    tally "$split/alone.out"
  fi
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:halt_on_error=1"

work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-tests.XXXXXX")
broker_dir=""
cluster_dir=""
cleanup() {
  if [ -n "$broker_dir" ]; then
    "$root/scripts/broker.sh" stop "$broker_dir" || true
  fi
  if [ -n "$cluster_dir" ]; then
    "$root/scripts/cluster.sh" stop "$cluster_dir" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$mode" = integration ]; then
  broker_dir="$work/broker"
  echo "run-tests.sh: starting a private RabbitMQ under $broker_dir"
  SLUICE_TEST_AMQP_URL=$("$root/scripts/broker.sh" start "$broker_dir")
  export SLUICE_TEST_AMQP_URL
  export SLUICE_TEST_BROKER_DIR="$broker_dir"
fi
if [ "$mode" = cluster ]; then
  cluster_dir="$work/cluster"
  echo "run-tests.sh: starting a private three-node RabbitMQ cluster under $cluster_dir"
  started=$(date +%s)
  SLUICE_TEST_AMQP_URL=$("$root/scripts/cluster.sh" start "$cluster_dir")
  echo "run-tests.sh: the cluster took $(($(date +%s) - started)) s to start"
  # Quorum queues are what a cluster replicates: classic ones live on one node.
  export SLUICE_TEST_AMQP_URL SLUICE_TEST_CLUSTER_DIR="$cluster_dir" SLUICE_QUEUE_TYPE=quorum
fi

passed=0
failed=0
for bin in "${bins[@]}"; do
  name=$(basename "$bin")
  out="$work/$name.out"
  echo "== $name"
  status=0
  began=$(date +%s)
  timeout --kill-after=10 "${SLUICE_TEST_TIMEOUT:-900}" "$bin" 2>&1 | tee "$out" || status=${PIPESTATUS[0]}
  # Check prints "NN%: Checks: N, Failures: F, Errors: E" once per suite run.
  read -r checks failures < <(
    grep -Eo 'Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$out" |
      awk '{c += $2; f += $4 + $6; n++} END {print (n ? c : -1), f + 0}'
  )
  problem=""
  if [ "$checks" -lt 0 ]; then
    checks=0
    problem="printed no Check summary"
  fi
  if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    problem="timed out or was killed"
  elif [ -z "$problem" ] && [ "$status" -ne 0 ] && [ "$failures" -eq 0 ]; then
    problem="failed after its checks passed (see sanitizer output above)"
  fi
  # Each binary's wall time, for make test's time budget.
  echo "run-tests.sh: $name took $(($(date +%s) - began)) s"
  passed=$((passed + checks - failures))
  failed=$((failed + failures))
  if [ -n "$problem" ]; then
    echo "run-tests.sh: $name $problem (exit status $status)" >&2
    failed=$((failed + 1))
  fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
