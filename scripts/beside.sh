#!/usr/bin/env bash
# beside.sh LOG BG... -- FG... runs the command BG in the background, its
# output in the file LOG, while the command FG runs in the foreground; then
# it waits for BG and prints LOG. `make test` runs the compose test this way
# beside the steps after the quorum pass: the compose test mostly waits on
# downloads, image builds and containers, and run alone it added 4 minutes
# to a run that must stay under 20.
#
# The exit status is FG's when FG failed, BG's otherwise. When FG fails or
# a signal comes, BG gets SIGTERM (the compose test stops and removes what it
# started on its way out) and is waited for, so nothing is left running.
set -euo pipefail

[ $# -ge 3 ] || {
  echo "usage: beside.sh LOG BG... -- FG..." >&2
  exit 2
}
log=$1
shift
bg=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do
  bg+=("$1")
  shift
done
if [ $# -lt 2 ] || [ ${#bg[@]} -eq 0 ]; then
  echo "beside.sh: both a background and a foreground command are needed" >&2
  exit 2
fi
shift

mkdir -p "$(dirname "$log")"
"${bg[@]}" >"$log" 2>&1 &
bg_pid=$!

# shellcheck disable=SC2317 # stop_bg runs from a trap
stop_bg() {
  kill -TERM "$bg_pid" 2>/dev/null || true
  wait "$bg_pid" 2>/dev/null || true
}
trap 'stop_bg; exit 130' INT
trap 'stop_bg; exit 143' TERM

fg_status=0
"$@" || fg_status=$?
if [ "$fg_status" -ne 0 ]; then
  echo "beside.sh: ${1##*/} failed ($fg_status): stopping ${bg[0]##*/}" >&2
  stop_bg
  cat "$log"
  exit "$fg_status"
fi

bg_status=0
wait "$bg_pid" || bg_status=$?
trap - INT TERM
echo "== ${bg[0]##*/} (ran beside the steps above; its output follows)"
cat "$log"
[ "$bg_status" -eq 0 ] || echo "beside.sh: ${bg[0]##*/} failed ($bg_status)" >&2
exit "$bg_status"
