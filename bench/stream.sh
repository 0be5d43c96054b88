#!/usr/bin/env bash
# stream.sh measures one events stream on one broker node, for the model of
# docs/scaling.md: how many messages per second one AMQP publisher with
# confirms (64 outstanding, build/bench/flood) writes to it, with 1 and with 7
# events per message (an ingress publish group and a worker batch carry about
# 7), and how fast a fresh ingress replica reads and indexes the whole stream
# (start to /readyz, which answers 200 once the replica has caught up).
#
#   bench/stream.sh [MESSAGES]    (default 100,000; make all bench-tools first)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

M=${1:-100000}
BIN=build
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-stream-bench.XXXXXX")
ingress="" ready_ms=0
cleanup() {
  [ -z "$ingress" ] || kill "$ingress" 2>/dev/null || true
  wait 2>/dev/null || true
  scripts/broker.sh stop "$work/broker" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

url=$(scripts/broker.sh start "$work/broker")
sha=$(printf %s t | sha256sum | cut -d' ' -f1)

# start_ingress NS: an ingress on namespace NS (it declares the stream);
# sets ready_ms to the milliseconds it took to answer /readyz 200. (Not run
# in a command substitution: the subshell would keep the ingress's pid.)
start_ingress() {
  local port t0 i
  port=$(free_port)
  cat >"$work/$1.json" <<JSON
{"amqp_url":"$url","namespace":"$1","log_level":"warn",
 "ingress":{"listen":"127.0.0.1:$port","max_status_entries":10000000},
 "keys":[{"id":"b","secret_sha256":"$sha","tenant":"bench","routes":["*"]}],
 "routes":{"echo":{"upstreams":["http://127.0.0.1:9"]}}}
JSON
  t0=$(date +%s%N)
  "$BIN/sluice-ingress" --config "$work/$1.json" >>"$work/ingress.log" 2>&1 &
  ingress=$!
  for ((i = 0; i < 6000; i++)); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/readyz" && break
    sleep 0.05
  done
  ready_ms=$((($(date +%s%N) - t0) / 1000000))
}

stop_ingress() {
  kill "$ingress" 2>/dev/null || true
  wait "$ingress" 2>/dev/null || true
  ingress=""
}

for per in 1 7; do
  ns=s$per
  start_ingress "$ns"
  stop_ingress
  flood=$("$BIN/bench/flood" --amqp "$url" --namespace "$ns" --count $((M * per)) --per-message "$per")
  start_ingress "$ns"
  ms=$ready_ms
  stop_ingress
  python3 - "$per" "$M" "$ms" "$flood" <<'PY'
import json, sys
per, m, ms, flood = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
print(json.dumps({"events_per_message": per, "messages": m,
                  "write_messages_per_s": round(flood["messages"] / flood["seconds"]),
                  "write_events_per_s": round(flood["events_per_s"]),
                  "catch_up_s": ms / 1000,
                  "read_messages_per_s": round(m / (ms / 1000)),
                  "read_events_per_s": round(m * per / (ms / 1000))}))
PY
done
