#!/usr/bin/env bash
# cluster.sh measures what a completed request costs the broker in quorum
# mode, on one node and on a three-node cluster (scripts/cluster.sh), next to
# classic mode on one node, for the model of docs/scaling.md. Each setup runs
# an ingress and two workers (build/, release) against an instant backend,
# sends N requests (default 20,000) through 64 connections with
# build/bench/load, waits until every status is final, and prints one JSON
# line: completions per second, CPU per request of the ingress, the workers
# and each broker node, and each node's Erlang reductions per request.
# READERS more ingress replicas (default 1) take no HTTP traffic and only read
# the events stream into their index, as every replica does: their CPU per
# request ("reader_us_per_req", the mean of them) is what indexing the whole
# deployment costs each replica.
#
#   bench/cluster.sh [N]     (make bench-tools first)
#
# SETUPS (default "classic-1 quorum-1 quorum-3") picks the setups to run.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

N=${1:-20000}
SETUPS=${SETUPS:-classic-1 quorum-1 quorum-3}
READERS=${READERS:-1}
BIN=build
TOKEN=bench-token
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-cluster-bench.XXXXXX")
pids=()

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/broker.sh stop "$work/one" >/dev/null 2>&1 || true
  scripts/cluster.sh stop "$work/three" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf 'cluster-bench: %s\n' "$*" >&2; }

wait_http() { # url, seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    curl -sf -o /dev/null "$1" && return 0
    sleep 0.1
  done
  say "$1 did not answer 200 in $2 s"
  return 1
}

cpu_ticks() {
  local p
  for p in "$@"; do cat "/proc/$p/stat"; done | awk '{ t += $14 + $15 } END { print t }'
}

# beam_pids DIR...: the Erlang VMs of the broker.sh nodes under each DIR.
beam_pids() {
  local d
  for d in "$@"; do
    cat "$d/rabbit.pid"
    echo # RabbitMQ writes the pid without a newline
  done
}

reductions() { # node dir
  scripts/broker.sh ctl "$1" eval 'element(1, erlang:statistics(reductions)).'
}

# run SETUP QUEUE_TYPE AMQP_URL NODE_DIR...: one measurement.
run() {
  local setup=$1 qtype=$2 url=$3
  shift 3
  local nodes=("$@") sha port backend_port ns=b$RANDOM
  sha=$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)
  port=$(free_port) backend_port=$(free_port)
  "$BIN/sluice-backend" --listen "127.0.0.1:$backend_port" >"$work/backend-$setup.log" 2>&1 &
  pids+=($!)
  cat >"$work/$setup.json" <<JSON
{"amqp_url":"$url","namespace":"$ns","log_level":"warn","queue_type":"$qtype",
 "ingress":{"listen":"127.0.0.1:$port","threads":2,"max_status_entries":2000000},
 "keys":[{"id":"bench","secret_sha256":"$sha","tenant":"bench","routes":["*"]}],
 "routes":{"fast":{"upstreams":["http://127.0.0.1:$backend_port"]}}}
JSON
  "$BIN/sluice-ingress" --config "$work/$setup.json" >>"$work/ingress-$setup.log" 2>&1 &
  local ingress=$! workers=() readers=() i rport
  pids+=("$ingress")
  wait_http "http://127.0.0.1:$port/readyz" 120
  for ((i = 0; i < READERS; i++)); do
    rport=$(free_port)
    SLUICE_LISTEN=127.0.0.1:$rport \
      "$BIN/sluice-ingress" --config "$work/$setup.json" >>"$work/reader-$setup.log" 2>&1 &
    readers+=($!)
    pids+=($!)
    wait_http "http://127.0.0.1:$rport/readyz" 120
  done
  for i in 1 2; do
    SLUICE_METRICS_LISTEN=127.0.0.1:$(free_port) \
      "$BIN/sluice-worker" --config "$work/$setup.json" >>"$work/worker-$setup.log" 2>&1 &
    workers+=($!)
    pids+=($!)
  done
  sleep 2
  local beams=() i0 w0 x0=0 b0=() r0=() t0 i1 w1 x1=0 b1=() r1=() t1 k
  mapfile -t beams < <(beam_pids "${nodes[@]}")
  i0=$(cpu_ticks "$ingress") w0=$(cpu_ticks "${workers[@]}")
  ((READERS == 0)) || x0=$(cpu_ticks "${readers[@]}")
  for k in "${!beams[@]}"; do b0[k]=$(cpu_ticks "${beams[k]}") r0[k]=$(reductions "${nodes[k]}"); done
  t0=$(date +%s%N)
  "$BIN/bench/load" --url "http://127.0.0.1:$port" --token "$TOKEN" --route fast --count "$N" \
    --connections 64 --wait-final 600 >"$work/load-$setup.json"
  t1=$(date +%s%N)
  i1=$(cpu_ticks "$ingress") w1=$(cpu_ticks "${workers[@]}")
  ((READERS == 0)) || x1=$(cpu_ticks "${readers[@]}")
  for k in "${!beams[@]}"; do b1[k]=$(cpu_ticks "${beams[k]}") r1[k]=$(reductions "${nodes[k]}"); done
  local leader=""
  leader=$(scripts/broker.sh ctl "${nodes[0]}" list_queues --no-table-headers name leader 2>/dev/null |
    awk -v q="$ns.lane.fast" '$1 == q {print $2}')
  READERS=$READERS python3 - "$setup" "$N" "$((t1 - t0))" "$work/load-$setup.json" "$leader" \
    "ingress=$i0:$i1" "workers=$w0:$w1" "reader=$x0:$x1" \
    "$(for k in "${!beams[@]}"; do printf 'node%d=%s:%s:%s:%s ' $((k + 1)) "${b0[k]}" "${b1[k]}" "${r0[k]}" "${r1[k]}"; done)" <<'PY'
import json, os, sys
setup, n, ns, load_path, leader = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
hz = os.sysconf("SC_CLK_TCK")
load = json.load(open(load_path))
out = {"setup": setup, "requests": int(n), "seconds": round(ns / 1e9, 1),
       "completions_per_s": round(n / (ns / 1e9)), "accepted": load.get("accepted"),
       "lane_leader": leader}
def us(a, b):
    return round((float(b) - float(a)) / hz * 1e6 / n, 1)
readers = int(os.environ.get("READERS", "1"))
for arg in sys.argv[6:9]:
    name, span = arg.split("=")
    a, b = span.split(":")
    if name != "reader":
        out[name + "_us_per_req"] = us(a, b)
    elif readers:
        out["reader_us_per_req"] = round(us(a, b) / readers, 1)
total_us, total_red = 0.0, 0
for item in sys.argv[9].split():
    name, span = item.split("=")
    c0, c1, r0, r1 = span.split(":")
    out[name + "_us_per_req"] = us(c0, c1)
    out[name + "_reductions_per_req"] = round((int(r1) - int(r0)) / n)
    total_us += us(c0, c1)
    total_red += (int(r1) - int(r0)) / n
out["broker_us_per_req"] = round(total_us, 1)
out["broker_reductions_per_req"] = round(total_red)
print(json.dumps(out))
PY
  kill -TERM "$ingress" "${workers[@]}" "${readers[@]}" 2>/dev/null || true
  wait "$ingress" "${workers[@]}" "${readers[@]}" 2>/dev/null || true
}

want() { case " $SETUPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

if want classic-1 || want quorum-1; then
  scripts/broker.sh start "$work/one" >"$work/one.url"
  if want classic-1; then
    say "classic, one node"
    run classic-1 classic "$(cat "$work/one.url")" "$work/one"
  fi
  if want quorum-1; then
    say "quorum, one node"
    run quorum-1 quorum "$(cat "$work/one.url")" "$work/one"
  fi
  scripts/broker.sh stop "$work/one" >/dev/null 2>&1 || true
fi
if want quorum-3; then
  say "quorum, three nodes (starting them)"
  urls=$(scripts/cluster.sh start "$work/three")
  run quorum-3 quorum "$urls" "$work/three/n1" "$work/three/n2" "$work/three/n3"
fi
