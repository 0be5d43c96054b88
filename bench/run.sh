#!/usr/bin/env bash
# run.sh is `make bench`: it starts everything on loopback (a private
# RabbitMQ, nginx as the fast backend, sluice-backend with 20 ms of latency as
# the slow one, the ingress and workers), measures the broker's own ceiling
# and sluice side by side in one run, prints one table with ratios, and
# writes every figure as JSON under bench/results/. With --smoke every phase
# runs with tiny counts so `make test` proves the benchmark still works.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

smoke=0
[ "${1:-}" = --smoke ] && smoke=1
if [ $smoke = 1 ]; then
  N_CEILING=2000 ACCEPT_S=2 N_E2E=500 LAT_RATE=100 LAT_S=2 N_BATCH1=40 N_BATCH100=400
  N_FLOOD=20000 N_SOAK=2000 N_SHAPED=300 N_WAITERS=200 N_BC1=100 N_BCN=500
  N_STATUSMEM=20000 STATUSMEM_CAP=16777216
else
  N_CEILING=${N_CEILING:-100000} ACCEPT_S=${ACCEPT_S:-10} N_E2E=${N_E2E:-20000}
  LAT_RATE=${LAT_RATE:-500} LAT_S=${LAT_S:-10} N_BATCH1=${N_BATCH1:-1000}
  N_BATCH100=${N_BATCH100:-20000} N_FLOOD=${N_FLOOD:-1000000} N_SOAK=${N_SOAK:-1000000}
  N_SHAPED=${N_SHAPED:-4000} N_BC1=${N_BC1:-1000} N_BCN=${N_BCN:-10000}
  N_WAITERS=${N_WAITERS:-10000}
  # 1,000,000 results of 4 KiB are 4 GB written to the stream and read by
  # the ingress: N_STATUSMEM=200000 for a shorter run on a loaded machine.
  N_STATUSMEM=${N_STATUSMEM:-1000000} STATUSMEM_CAP=${STATUSMEM_CAP:-268435456}
fi
# Batch delivery (phase 9): a backend that takes BC_CONNS connections at
# once and spends 20 ms per call, called once per request or once per batch.
BC_CONNS=4
# The shaped route of phase 7: a rate and a concurrency limit that a 50 ms
# backend can reach with three workers, so the limits, not the backend, set
# the pace (20 calls at once of 50 ms would allow 400/s).
SHAPED_RATE=200 SHAPED_IN_FLIGHT=20
BIN=build
TOKEN=bench-token
stamp=$(date -u +%Y%m%dT%H%M%SZ)
results=$root/bench/results/$stamp
mkdir -p "$results"
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
pids=()

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/broker.sh stop "$work/broker" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf 'bench: %s\n' "$*" >&2; }
json_get() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval("d" + sys.argv[2]))' "$@"; }

wait_http() { # url, seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    curl -sf ${CACERT:+--cacert "$CACERT"} -o /dev/null "$1" && return 0
    sleep 0.1
  done
  say "$1 did not answer 200 in $2 s"
  return 1
}

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

start_backends() {
  FAST_PORT=$(free_port) SLOW_PORT=$(free_port)
  cat >"$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  log_format bench '\$msec \$http_idempotency_key';
  access_log $work/access.log bench buffer=256k flush=1s;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$FAST_PORT;
    location / { default_type application/json; return 200 '{"ok":true}'; }
  }
}
NGINX
  nginx -c "$work/nginx.conf" -p "$work" -g 'daemon off;' &
  pids+=($!)
  "$BIN/sluice-backend" --listen "127.0.0.1:$SLOW_PORT" --delay-ms 20 >"$work/slow.log" 2>&1 &
  pids+=($!)
  # nginx logs whole milliseconds; latency at moderate load needs microseconds.
  EXACT_PORT=$(free_port)
  "$BIN/sluice-backend" --listen "127.0.0.1:$EXACT_PORT" --log-us "$work/exact.log" \
    >"$work/exact.out" 2>&1 &
  pids+=($!)
  # The shaped route's backend counts the calls it answers at once.
  SHAPED_PORT=$(free_port)
  "$BIN/sluice-backend" --listen "127.0.0.1:$SHAPED_PORT" --delay-ms 50 \
    --log-us "$work/shaped.log" >"$work/shaped.out" 2>&1 &
  pids+=($!)
}

write_config() {
  local sha
  sha=$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)
  INGRESS_PORT=$(free_port)
  cat >"$work/sluice.json" <<JSON
{"amqp_url":"$AMQP_URL","namespace":"bench","log_level":"warn",
 "ingress":{"listen":"127.0.0.1:$INGRESS_PORT","threads":2},
 "keys":[{"id":"bench","secret_sha256":"$sha","tenant":"bench","routes":["*"]}],
 "routes":{"fast":{"upstreams":["http://127.0.0.1:$FAST_PORT"]},
           "slow":{"upstreams":["http://127.0.0.1:$SLOW_PORT"],"timeout_ms":10000},
           "slowbatch":{"upstreams":["http://127.0.0.1:$SLOW_PORT"],"timeout_ms":10000,
                        "batch_url":"http://127.0.0.1:$SLOW_PORT/batch","batch_max":100},
           "exact":{"upstreams":["http://127.0.0.1:$EXACT_PORT"]},
           "shaped":{"upstreams":["http://127.0.0.1:$SHAPED_PORT"],
                     "rate_per_s":$SHAPED_RATE,"max_in_flight":$SHAPED_IN_FLIGHT}}}
JSON
  URL=http://127.0.0.1:$INGRESS_PORT
}

# start_ingress NS: a fresh ingress on namespace NS (each phase has its own,
# so one phase's queues and retained statuses do not weigh on the next).
start_ingress() {
  NS=$1
  SLUICE_NAMESPACE=$NS SLUICE_MAX_STATUS_ENTRIES=2000000 \
    "$BIN/sluice-ingress" --config "$work/sluice.json" >>"$work/ingress.log" 2>&1 &
  INGRESS_PID=$!
  pids+=("$INGRESS_PID")
  wait_http "$URL/readyz" 60
}

stop_ingress() {
  kill -TERM "$INGRESS_PID" 2>/dev/null || true
  wait "$INGRESS_PID" 2>/dev/null || true
}

# cpu_ticks PID...: user + system clock ticks used so far by these processes.
cpu_ticks() {
  local p
  for p in "$@"; do cat "/proc/$p/stat"; done | awk '{ t += $14 + $15 } END { print t }'
}
# cpu_json REQUESTS NANOS NAME=TICKS0:TICKS1...: each process's CPU per request
# and the cores it kept busy over NANOS.
cpu_json() {
  python3 - "$@" <<'PY'
import json, os, sys
n, ns, hz = float(sys.argv[1]), float(sys.argv[2]), os.sysconf("SC_CLK_TCK")
out = {}
for arg in sys.argv[3:]:
    name, span = arg.split("=")
    secs = (float(span.split(":")[1]) - float(span.split(":")[0])) / hz
    out[name + "_us_per_req"] = round(secs * 1e6 / n, 1)
    out[name + "_cores"] = round(secs / (ns / 1e9), 2)
print(json.dumps(out))
PY
}
# broker_reductions counts the Erlang VM's work units so far: unlike CPU time,
# they do not depend on what else the shared machine is running.
broker_reductions() {
  scripts/broker.sh ctl "$work/broker" eval 'element(1, erlang:statistics(reductions)).'
}

# start_workers N BATCH PREFETCH: sets WORKER_PIDS and WORKER_URLS (their
# metrics listeners).
start_workers() {
  WORKER_PIDS=() WORKER_URLS=()
  local i port
  for ((i = 0; i < $1; i++)); do
    port=$(free_port)
    SLUICE_NAMESPACE=$NS SLUICE_BATCH_SIZE=$2 SLUICE_PREFETCH=$3 \
      SLUICE_METRICS_LISTEN=127.0.0.1:$port \
      "$BIN/sluice-worker" --config "$work/sluice.json" >>"$work/worker.log" 2>&1 &
    WORKER_PIDS+=($!)
    WORKER_URLS+=("http://127.0.0.1:$port")
    pids+=($!)
    wait_http "http://127.0.0.1:$port/readyz" 60
  done
}

stop_workers() {
  local p
  for p in "${WORKER_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${WORKER_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  WORKER_PIDS=() WORKER_URLS=()
}

# latency_from_logs SUBMIT_LOG ACCESS_LOG TO_US KEY_FIELD: submit->backend
# percentiles (ms) from the load tool's "<id> <send_us>" lines and a backend
# log whose first field times TO_US is microseconds and whose field KEY_FIELD
# is the Idempotency-Key (nginx: "<msec> <key>"; sluice-backend --log-us:
# "<us> <method> <path> <key>").
latency_from_logs() {
  sleep 1.5 # nginx flushes its access log every second
  awk -v to_us="$3" -v kf="$4" 'NR == FNR { sent[$1] = $2; next }
       ($kf in sent) && !($kf in seen) { seen[$kf] = 1; printf "%.3f\n", ($1 * to_us - sent[$kf]) / 1000 }' \
    "$1" "$2" | sort -n | awk '{ v[NR] = $1 }
       END { if (!NR) { print "{\"n\":0}"; exit }
             printf "{\"n\":%d,\"p50_ms\":%.2f,\"p99_ms\":%.2f}\n", NR, v[int(NR * 0.5 + 0.5)], v[int(NR * 0.99 + 0.5)] }'
}

load() { "$BIN/bench/load" --url "$URL" --token "$TOKEN" "$@"; }

phase_ceiling() {
  say "1/11 broker ceiling ($N_CEILING messages, four queue shapes, then publish and consume at once)"
  local c=("$BIN/bench/ceiling" --url "$AMQP_URL" --count "$N_CEILING")
  # A durable queue with the broker's defaults, as the benchmark's brief
  # defines the ceiling; then the fastest classic format this broker has
  # (version 2, lazy), which sluice declares, so the ratios are taken against
  # whichever is higher and a faster queue format cannot flatter them.
  "${c[@]}" --window 512 >"$results/ceiling.json"
  "${c[@]}" --window 512 --queue-version 2 --queue-mode lazy >"$results/ceiling_v2.json"
  # The requests queue itself (priorities cost the broker more), with as many
  # confirms outstanding as the ceiling allows, and with 64: the most that
  # wrk's 64 connections, one request in flight each, can ever have.
  local sluice=(--max-priority 9 --queue-version 2 --queue-mode lazy)
  "${c[@]}" --window 512 "${sluice[@]}" >"$results/ceiling_sluice.json"
  "${c[@]}" --window 64 "${sluice[@]}" >"$results/ceiling_sluice64.json"
  # The same queue published and consumed at once, as with workers running:
  # the broker's own end-to-end ceiling, and its work per message.
  local r0 r1
  r0=$(broker_reductions)
  "${c[@]}" --window 512 "${sluice[@]}" --flow 1 >"$results/ceiling_flow.json"
  r1=$(broker_reductions)
  echo "{\"broker_reductions_per_msg\":$(((r1 - r0) / N_CEILING))}" >"$results/ceiling_flow_work.json"
}

# phase_accept also records where the CPU went: on a 2-core machine the load
# generator, the ingress and the broker share it (docs/performance.md).
phase_accept() {
  say "2/11 accept rate (wrk, 64 connections, ${ACCEPT_S}s, workers stopped)"
  start_ingress bench_accept
  local i0 b0 t0 i1 b1 t1
  i0=$(cpu_ticks "$INGRESS_PID") b0=$(cpu_ticks "$BROKER_PID") t0=$(date +%s%N)
  SLUICE_BENCH_TOKEN=$TOKEN SLUICE_BENCH_ROUTE=fast \
    wrk -t2 -c64 -d"${ACCEPT_S}s" -s bench/post.lua "$URL" | tail -n 1 >"$results/accept.json"
  i1=$(cpu_ticks "$INGRESS_PID") b1=$(cpu_ticks "$BROKER_PID") t1=$(date +%s%N)
  cpu_json "$(json_get "$results/accept.json" '["requests"]')" $((t1 - t0)) \
    ingress="$i0:$i1" broker="$b0:$b1" >"$results/accept_cpu.json"
  # How the publisher grouped the requests and how long the broker took to
  # confirm them, from the ingress's own metrics.
  curl -sf "$URL/metrics" | awk '
    / / { v[$1] = $2 }
    END { printf "{\"group_mean\":%.2f,\"confirm_ms_mean\":%.2f}\n",
            v["sluice_ingress_publish_group_size_sum"] / v["sluice_ingress_publish_group_size_count"],
            1000 * v["sluice_ingress_confirm_seconds_sum"] / v["sluice_ingress_confirm_seconds_count"] }' \
    >"$results/accept_groups.json"
  stop_ingress
}

# phase_accept_tls is phase_accept over HTTPS (TLS 1.3, the ingress's own
# listener): wrk keeps its 64 connections open, so the difference is the
# cost of encrypting each request and answer, not of handshakes.
phase_accept_tls() {
  say "3/11 accept rate over TLS (wrk, 64 connections, ${ACCEPT_S}s, workers stopped)"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$work/tls-key.pem" -out "$work/tls-cert.pem" 2>/dev/null
  local plain=$URL
  URL=https://127.0.0.1:$INGRESS_PORT CACERT=$work/tls-cert.pem
  SLUICE_TLS_CERT_FILE=$work/tls-cert.pem SLUICE_TLS_KEY_FILE=$work/tls-key.pem \
    start_ingress bench_accept_tls
  local i0 b0 t0 i1 b1 t1
  i0=$(cpu_ticks "$INGRESS_PID") b0=$(cpu_ticks "$BROKER_PID") t0=$(date +%s%N)
  SLUICE_BENCH_TOKEN=$TOKEN SLUICE_BENCH_ROUTE=fast \
    wrk -t2 -c64 -d"${ACCEPT_S}s" -s bench/post.lua "$URL" | tail -n 1 >"$results/accept_tls.json"
  i1=$(cpu_ticks "$INGRESS_PID") b1=$(cpu_ticks "$BROKER_PID") t1=$(date +%s%N)
  cpu_json "$(json_get "$results/accept_tls.json" '["requests"]')" $((t1 - t0)) \
    ingress="$i0:$i1" broker="$b0:$b1" >"$results/accept_tls_cpu.json"
  stop_ingress
  URL=$plain CACERT=
}

phase_e2e() {
  say "4/11 end to end ($N_E2E requests, 2 workers, fast backend)"
  start_ingress bench_e2e
  start_workers 2 100 200
  local i0 b0 w0 r0 t0 i1 b1 w1 r1 t1 p
  i0=$(cpu_ticks "$INGRESS_PID") b0=$(cpu_ticks "$BROKER_PID") w0=$(cpu_ticks "${WORKER_PIDS[@]}")
  r0=$(broker_reductions) t0=$(date +%s%N)
  load --route fast --count "$N_E2E" --connections 64 --wait-final 300 \
    --submit-log "$work/e2e.submit" >"$results/e2e.json"
  i1=$(cpu_ticks "$INGRESS_PID") b1=$(cpu_ticks "$BROKER_PID") w1=$(cpu_ticks "${WORKER_PIDS[@]}")
  r1=$(broker_reductions) t1=$(date +%s%N)
  # Where the CPU went (everything shares the 2 cores; the span includes the
  # load tool's final polling round), how much work the broker did per
  # request, and how full the workers' batches were.
  cpu_json "$N_E2E" $((t1 - t0)) ingress="$i0:$i1" broker="$b0:$b1" workers="$w0:$w1" \
    >"$results/e2e_cpu.json"
  for p in "${WORKER_URLS[@]}"; do curl -sf "$p/metrics"; done | awk -v reds=$((r1 - r0)) -v n="$N_E2E" '
    / / { v[$1] += $2 }
    END { printf "{\"batch_mean\":%.2f,\"broker_reductions_per_req\":%.0f}\n",
            v["sluice_worker_batch_size_sum"] / v["sluice_worker_batch_size_count"], reds / n }' \
    >"$results/e2e_work.json"
  latency_from_logs "$work/e2e.submit" "$work/access.log" 1000000 2 >"$results/e2e_latency.json"
  echo "{\"ingress_kb\":$(hwm_kb "$INGRESS_PID"),\"worker_kb\":$(hwm_kb "${WORKER_PIDS[0]}")}" \
    >"$results/e2e_memory.json"
}

phase_latency() {
  say "5/11 latency at $LAT_RATE req/s for ${LAT_S}s"
  load --route exact --rate "$LAT_RATE" --duration "$LAT_S" --connections 64 --wait-final 60 \
    --submit-log "$work/lat.submit" >"$results/latency.json"
  latency_from_logs "$work/lat.submit" "$work/exact.log" 1 4 >"$results/latency_backend.json"
  stop_workers
  stop_ingress
}

phase_batching() {
  say "6/11 batching: batch_size 1 vs 100 (prefetch 2 x batch) against a 20 ms backend"
  start_ingress bench_batch
  start_workers 1 1 2
  load --route slow --count "$N_BATCH1" --connections 64 --wait-final 600 >"$results/batch1.json"
  stop_workers
  start_workers 1 100 200
  load --route slow --count "$N_BATCH100" --connections 64 --wait-final 600 >"$results/batch100.json"
  stop_workers
  stop_ingress
}

phase_memory() {
  say "7/11 memory: $N_FLOOD retained statuses, then $N_SOAK requests through one worker"
  local before after count0 count1
  start_ingress bench_memory
  count0=$(curl -s "$URL/metrics" | awk '/^sluice_ingress_status_entries/ {print $2}')
  before=$(rss_kb "$INGRESS_PID")
  "$BIN/bench/flood" --amqp "$AMQP_URL" --namespace "$NS" --count "$N_FLOOD" >"$results/flood.json"
  local want=$((count0 + N_FLOOD)) i
  for ((i = 0; i < 600; i++)); do
    count1=$(curl -s "$URL/metrics" | awk '/^sluice_ingress_status_entries/ {print $2}')
    [ "$count1" -ge "$want" ] && break
    sleep 0.2
  done
  after=$(rss_kb "$INGRESS_PID")
  echo "{\"entries\":$((count1 - count0)),\"rss_before_kb\":$before,\"rss_after_kb\":$after,\"bytes_per_entry\":$(((after - before) * 1024 / (count1 - count0)))}" \
    >"$results/status_memory.json"
  start_workers 1 100 200
  local w=${WORKER_PIDS[0]}
  load --route fast --count "$N_SOAK" --connections 64 --wait-final 0 >"$results/soak.json" &
  local lp=$! samples=()
  while kill -0 "$lp" 2>/dev/null; do samples+=("$(rss_kb "$w")"); sleep 2; done
  wait "$lp"
  samples+=("$(rss_kb "$w")")
  printf '{"worker_rss_kb":[%s]}\n' "$(IFS=,; echo "${samples[*]}")" >"$results/soak_memory.json"
  stop_workers
  stop_ingress
}

# phase_statusmem: N_STATUSMEM final statuses with 4 KiB results flooded into
# the stream of an ingress whose max_status_bytes is STATUSMEM_CAP: its peak
# RSS against the cap plus the entries' own cost, then the time of a status
# GET for a result still in memory (the newest) and for one read back from
# the stream (the oldest), 200 of each over one connection; then the rate of
# read-backs from one client and from two at once.
phase_statusmem() {
  say "11/11 status memory: $N_STATUSMEM results of 4 KiB, max_status_bytes $STATUSMEM_CAP"
  local before count0 count1 i ids="$work/statusmem-ids.txt"
  SLUICE_MAX_STATUS_BYTES=$STATUSMEM_CAP start_ingress bench_statusmem
  count0=$(curl -s "$URL/metrics" | awk '/^sluice_ingress_status_entries/ {print $2}')
  before=$(rss_kb "$INGRESS_PID")
  "$BIN/bench/flood" --amqp "$AMQP_URL" --namespace "$NS" --count "$N_STATUSMEM" \
    --result-bytes 4096 --per-message 100 --ids "$ids" >"$results/statusmem_flood.json"
  for ((i = 0; i < 3000; i++)); do
    count1=$(curl -s "$URL/metrics" | awk '/^sluice_ingress_status_entries/ {print $2}')
    [ "$count1" -ge $((count0 + N_STATUSMEM)) ] && break
    sleep 0.2
  done
  sleep 1.5 # the index's gauges are set once a second
  local m text let_go
  m=$(curl -s "$URL/metrics")
  text=$(awk '/^sluice_ingress_status_text_bytes/ {print $2}' <<<"$m")
  let_go=$(awk '/^sluice_ingress_status_results_let_go/ {print $2}' <<<"$m")
  # status_get_ms FILE: p50/p99 (ms) of GETs of the IDs in FILE, one connection.
  status_get_ms() {
    local t="$results/$(basename "$1" .txt).times"
    # One curl, one connection: a url and an output per ID (-o applies to one URL only).
    awk -v u="$URL/v1/requests/" '{ printf "url = \"%s%s\"\noutput = \"/dev/null\"\n", u, $1 }' "$1" |
      curl -s -K - -H "Authorization: Bearer $TOKEN" -w '%{http_code} %{time_total}\n' >"$t"
    sort -k2 -n "$t" | awk '{ v[NR] = $2 * 1000; if ($1 != 200) bad++ }
      END { printf "{\"n\":%d,\"non_200\":%d,\"p50_ms\":%.2f,\"p99_ms\":%.2f}", NR, bad, v[int(NR * 0.5 + 0.5)], v[int(NR * 0.99 + 0.5)] }'
  }
  # status_get_rate FILE K: {"clients":K,"per_s":R,"non_200":B}: the IDs of
  # FILE split over K curls at once (one connection each), how many GETs a
  # second they got through together.
  status_get_rate() {
    local k=$2 t0 t1 p pids=() n bad
    rm -f "$work"/statusmem-part.*
    split -n "r/$k" "$1" "$work/statusmem-part."
    t0=$(date +%s%N)
    for p in "$work"/statusmem-part.*; do
      awk -v u="$URL/v1/requests/" '{ printf "url = \"%s%s\"\noutput = \"/dev/null\"\n", u, $1 }' "$p" |
        curl -s -K - -H "Authorization: Bearer $TOKEN" -w '%{http_code}\n' >"$p.codes" &
      pids+=($!)
    done
    wait "${pids[@]}"
    t1=$(date +%s%N)
    n=$(cat "$work"/statusmem-part.*.codes | wc -l)
    bad=$(cat "$work"/statusmem-part.*.codes | grep -vc '^200$' || true)
    awk -v k="$k" -v n="$n" -v b="$bad" -v ns=$((t1 - t0)) 'BEGIN { printf "{\"clients\":%d,\"per_s\":%.1f,\"non_200\":%d}", k, n * 1e9 / ns, b }'
  }
  # Samples of n messages (100 results each) from each end: the newest n
  # must fit in half the cap to be in memory, the oldest are let go.
  local lines n
  lines=$(wc -l <"$ids")
  n=$((STATUSMEM_CAP / (2 * 100 * 4200)))
  [ "$n" -gt 200 ] && n=200
  [ "$n" -gt $((lines / 2)) ] && n=$((lines / 2))
  head -n "$n" "$ids" >"$work/statusmem-old.txt"
  tail -n "$n" "$ids" >"$work/statusmem-new.txt"
  local mem back reads rate1 rate2
  mem=$(status_get_ms "$work/statusmem-new.txt")
  back=$(status_get_ms "$work/statusmem-old.txt")
  # Read-backs run on one connection per HTTP thread (2 by default): the
  # rate of one client against two at once.
  rate1=$(status_get_rate "$work/statusmem-old.txt" 1)
  rate2=$(status_get_rate "$work/statusmem-old.txt" 2)
  reads=$(curl -s "$URL/metrics" | awk '/^sluice_ingress_result_readbacks_total/ {print $2}')
  echo "{\"entries\":$((count1 - count0)),\"cap_bytes\":$STATUSMEM_CAP,\"text_bytes\":$text,\"results_let_go\":$let_go,\"rss_before_kb\":$before,\"rss_after_kb\":$(rss_kb "$INGRESS_PID"),\"hwm_kb\":$(hwm_kb "$INGRESS_PID"),\"get_in_memory\":$mem,\"get_read_back\":$back,\"read_back_rate\":[$rate1,$rate2],\"readbacks\":${reads:-0}}" \
    >"$results/statusmem.json"
  stop_ingress
}

# phase_shaping: three workers share a route limited to SHAPED_RATE calls a
# second and SHAPED_IN_FLIGHT at once (a lane with a single active consumer);
# the shaped backend's access log gives the rate achieved, its /_stats the
# most calls it saw at once.
phase_shaping() {
  say "8/11 shaping: $N_SHAPED requests, 3 workers, a route limited to $SHAPED_RATE/s and $SHAPED_IN_FLIGHT at once"
  start_ingress bench_shaping
  start_workers 3 100 200
  load --route shaped --count "$N_SHAPED" --connections 64 --wait-final 300 >"$results/shaping_load.json"
  local hwm
  hwm=$(curl -sf "http://127.0.0.1:$SHAPED_PORT/_stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["max_in_flight"])')
  python3 - "$work/shaped.log" "$SHAPED_RATE" "$SHAPED_IN_FLIGHT" "$hwm" >"$results/shaping.json" <<'PY'
import json, sys
log, rate, limit, hwm = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
t = sorted(int(line.split()[0]) / 1e6 for line in open(log) if line.strip())
n, span = len(t), (t[-1] - t[0]) if len(t) > 1 else 0
per_second = [0] * (int(span) + 1)
for x in t:
    per_second[int(x - t[0])] += 1
# The bucket starts full (a burst of rate_per_s calls, at the pace max_in_flight
# allows) and the last second is partial, so the rate achieved is the mean of
# the whole seconds from the third on; a run too short for that (--smoke)
# counts everything.
if len(per_second) > 4:
    steady = per_second[2:-1]
    achieved = sum(steady) / len(steady)
else:
    achieved = n / span if span > 0 else 0
most, j = 0, 0
for i in range(n):
    while j < n and t[j] < t[i] + 1:
        j += 1
    most = max(most, j - i)
print(json.dumps({"calls": n, "span_s": round(span, 2), "configured_per_s": rate,
                  "achieved_per_s": round(achieved, 1), "ratio": round(achieved / rate, 3),
                  "max_in_flight_limit": limit, "max_in_flight_seen": hwm,
                  "most_in_one_second": most, "calls_per_second": per_second}))
PY
  stop_workers
  stop_ingress
}

# phase_waiters: long-poll. N_WAITERS clients wait at once on requests the
# ingress knows (bench/waiters.c publishes their events itself, so no worker
# runs): the ingress's memory per waiting client, then the time from each
# request's final event on the stream to its waiter's answer.
phase_waiters() {
  # Each waiter is a connection on both sides of loopback.
  ulimit -n "$(ulimit -Hn)"
  local room=$(($(ulimit -n) - 256))
  [ "$N_WAITERS" -le "$room" ] || N_WAITERS=$room
  say "10/11 long-poll: $N_WAITERS clients waiting at once, then their requests made final"
  SLUICE_MAX_CONNECTIONS=$((N_WAITERS + 256)) start_ingress bench_waiters
  "$BIN/bench/waiters" --amqp "$AMQP_URL" --namespace "$NS" --port "$INGRESS_PORT" \
    --token "$TOKEN" --pid "$INGRESS_PID" --waiters "$N_WAITERS" >"$results/waiters.json"
  stop_ingress
}

# phase_batchcall: one call per request against batch delivery (batch_max
# 100), one worker (batch_size 100) whose calls to the 20 ms backend share
# BC_CONNS connections, as a backend that takes few connections would have it.
phase_batchcall() {
  say "9/11 batch delivery: one call per request vs batch_max 100, 20 ms backend, $BC_CONNS connections"
  start_ingress bench_batchcall
  SLUICE_MAX_HOST_CONNECTIONS=$BC_CONNS start_workers 1 100 200
  load --route slow --count "$N_BC1" --connections 64 --wait-final 600 >"$results/batchcall1.json"
  load --route slowbatch --count "$N_BCN" --connections 64 --wait-final 600 >"$results/batchcalln.json"
  stop_workers
  stop_ingress
}

report() {
  python3 - "$results" <<'PY'
import json, os, sys
d = sys.argv[1]
r = {f[:-5]: json.load(open(os.path.join(d, f))) for f in os.listdir(d) if f.endswith(".json") and f != "summary.json"}
dflt, v2, sq, sq64 = r["ceiling"], r["ceiling_v2"], r["ceiling_sluice"], r["ceiling_sluice64"]
pub = max(dflt["publish_per_s"], v2["publish_per_s"])
rows = []
def row(name, value, unit, ratio=None, target=None, ok=None):
    rows.append((name, value, unit, ratio, target, ok))
def pc(c):
    return "%.0f / %.0f" % (c["publish_per_s"], c["consume_per_s"])
row("broker ceiling: confirmed publishes (best below)", pub, "/s")
row("  default durable queue: published / consumed", pc(dflt), "/s")
row("  version 2 lazy queue: published / consumed", pc(v2), "/s")
row("  sluice's requests queue (priorities): pub / con", pc(sq), "/s")
row("  same, 64 confirms outstanding: published", sq64["publish_per_s"], "/s")
flow = r["ceiling_flow"]["flow_per_s"]
row("  same, published and consumed at once", flow, "/s")
acc = r["accept"]
row("accept rate (wrk, 64 conns)", acc["rate"], "req/s", acc["rate"] / pub, ">= 0.8", acc["rate"] >= 0.8 * pub)
row("  accept rate / default-queue ceiling", "", "", acc["rate"] / dflt["publish_per_s"])
row("  accept rate / requests queue, 64 outstanding", "", "", acc["rate"] / sq64["publish_per_s"])
row("accept p50 / p99", "%.1f / %.1f" % (acc["p50_ms"], acc["p99_ms"]), "ms")
c = r["accept_cpu"]
row("CPU per accepted request: ingress / broker", "%.0f / %.0f" % (c["ingress_us_per_req"], c["broker_us_per_req"]), "us")
row("cores busy while accepting: ingress / broker", "%.2f / %.2f" % (c["ingress_cores"], c["broker_cores"]), "")
g = r["accept_groups"]
row("publish group mean size / mean confirm wait", "%.1f / %.2f" % (g["group_mean"], g["confirm_ms_mean"]), "ms")
row("accept non-202 answers", acc["non_202"] + acc["socket_errors"], "", None, "0", acc["non_202"] + acc["socket_errors"] == 0)
t = r["accept_tls"]
row("accept rate over TLS (wrk, 64 conns) / plain", t["rate"], "req/s", t["rate"] / acc["rate"])
row("  over TLS: p50 / p99", "%.1f / %.1f" % (t["p50_ms"], t["p99_ms"]), "ms", None, "0 non-202", t["non_202"] + t["socket_errors"] == 0)
row("  over TLS: ingress CPU per accepted request", "%.0f" % r["accept_tls_cpu"]["ingress_us_per_req"], "us")
e = r["e2e"]
row("end to end completions", e.get("completion_rate", 0), "/s", e.get("completion_rate", 0) / pub, ">= 0.6", e.get("completion_rate", 0) >= 0.6 * pub and e.get("not_final", 1) == 0)
row("  completions / default-queue ceiling", "", "", e.get("completion_rate", 0) / dflt["publish_per_s"])
row("  completions / publish-and-consume ceiling", "", "", e.get("completion_rate", 0) / flow)
c, wk = r["e2e_cpu"], r["e2e_work"]
row("CPU per completed request: broker/ingress/workers", "%.0f / %.0f / %.0f" % (c["broker_us_per_req"], c["ingress_us_per_req"], c["workers_us_per_req"]), "us")
fw = r["ceiling_flow_work"]["broker_reductions_per_msg"]
row("broker work per request / bare publish+consume", "%d / %d" % (wk["broker_reductions_per_req"], fw), "reds", wk["broker_reductions_per_req"] / fw)
row("worker batch mean size", "%.1f" % wk["batch_mean"], "")
el = r["e2e_latency"]
row("end to end submit->backend p50 / p99", "%s / %s" % (el.get("p50_ms"), el.get("p99_ms")), "ms")
lb, lt = r["latency_backend"], r["latency"]
ok = lb.get("n", 0) > 0 and lb["p50_ms"] <= 3 and lb["p99_ms"] <= 15
row("at %d/s submit->backend p50 / p99" % r["params"]["latency_rate"], "%s / %s" % (lb.get("p50_ms"), lb.get("p99_ms")), "ms", None, "<= 3 / 15", ok)
f = lt.get("submit_to_final_ms", {})
row("at load submit->final p50 / p99", "%s / %s" % (f.get("p50"), f.get("p99")), "ms")
b1, b100 = r["batch1"].get("completion_rate", 0), r["batch100"].get("completion_rate", 0)
row("batch_size 1 / 100 (20 ms backend)", "%.0f / %.0f" % (b1, b100), "/s", b100 / b1 if b1 else None, ">= 5", b1 > 0 and b100 >= 5 * b1)
if "batchcall1" in r:
    c1, cn = r["batchcall1"].get("completion_rate", 0), r["batchcalln"].get("completion_rate", 0)
    row("batch delivery: 1 call per request / batch_max 100", "%.0f / %.0f" % (c1, cn), "/s", cn / c1 if c1 else None, ">= 10", c1 > 0 and cn >= 10 * c1)
m = r["e2e_memory"]
tot = (m["ingress_kb"] + m["worker_kb"]) / 1024
row("peak RSS ingress + 1 worker (e2e)", "%.1f" % tot, "MB", None, "<= 40", tot <= 40)
s = r["status_memory"]
row("ingress bytes per retained status", s["bytes_per_entry"], "B", None, "<= 300", s["bytes_per_entry"] <= 300)
sh = r["shaping"]
row("shaping, 3 workers: achieved / configured rate", "%.0f / %.0f" % (sh["achieved_per_s"], sh["configured_per_s"]), "/s", sh["ratio"], "0.9-1.0", 0.9 <= sh["ratio"] <= 1.02)
row("  most calls at once / max_in_flight", "%d / %d" % (sh["max_in_flight_seen"], sh["max_in_flight_limit"]), "", None, "<= limit", sh["max_in_flight_seen"] <= sh["max_in_flight_limit"])
row("  most calls in one second / rate + burst", "%d / %d" % (sh["most_in_one_second"], 2 * sh["configured_per_s"]), "", None, "<= r+b", sh["most_in_one_second"] <= 2 * sh["configured_per_s"])
wt = r["waiters"]
row("ingress bytes per long-poll waiter (%d waiting)" % wt["waiters"], wt["bytes_per_waiter"], "B")
f = wt["final_to_answer_ms"]
row("final event -> long-poll answer p50 / p99", "%.1f / %.1f" % (f["p50"], f["p99"]), "ms")
sm = r["statusmem"]
# The bound: the cap, plus what the entries cost (the memory phase's bytes
# per retained status), over the RSS before the flood, plus 16 MiB of working
# memory (allocator caches, the decode buffers of 400 KB stream messages).
limit_kb = sm["rss_before_kb"] + (sm["cap_bytes"] + sm["entries"] * s["bytes_per_entry"]) / 1024 + 16384
row("ingress peak RSS, %d 4 KiB results, cap %d MiB" % (sm["entries"], sm["cap_bytes"] >> 20), "%d" % (sm["hwm_kb"] / 1024), "MB", None, "<= %d" % (limit_kb / 1024), sm["hwm_kb"] <= limit_kb)
gm, gb = sm["get_in_memory"], sm["get_read_back"]
row("status GET in memory p50 / p99", "%s / %s" % (gm.get("p50_ms"), gm.get("p99_ms")), "ms")
row("status GET read back p50 / p99", "%s / %s" % (gb.get("p50_ms"), gb.get("p99_ms")), "ms")
if "read_back_rate" in sm:
    ra, rb = sm["read_back_rate"]
    row("read-backs/s, 1 client / 2 at once", "%.0f / %.0f" % (ra["per_s"], rb["per_s"]), "/s", rb["per_s"] / ra["per_s"] if ra["per_s"] else None, "0 non-200", ra["non_200"] + rb["non_200"] == 0)
w = r["soak_memory"]["worker_rss_kb"]
warm = w[min(2, len(w) - 1)]
row("worker RSS over %d requests (first/last/max)" % r["soak"]["submitted"], "%d / %d / %d" % (w[0] / 1024, w[-1] / 1024, max(w) / 1024), "MB", None, "flat", w[-1] <= warm * 1.2 + 1024)
print("\n%-48s %16s %-6s %7s %10s %s" % ("figure", "value", "unit", "ratio", "target", "met"))
for name, value, unit, ratio, target, okv in rows:
    v = ("%.0f" % value) if isinstance(value, float) else str(value)
    print("%-48s %16s %-6s %7s %10s %s" % (name, v, unit, "" if ratio is None else "%.2f" % ratio, target or "", "" if okv is None else ("yes" if okv else "NO")))
json.dump({k: {"value": v, "unit": u, "ratio": ra, "target": t, "met": o} for k, v, u, ra, t, o in rows}, open(os.path.join(d, "summary.json"), "w"), indent=1)
PY
}

say "building"
make -s all bench-tools
AMQP_URL=$(scripts/broker.sh start "$work/broker")
# The server script runs the Erlang VM as its child: that is what burns CPU.
BROKER_PID=$(pgrep -P "$(cat "$work/broker/server.pid")" beam.smp || cat "$work/broker/server.pid")
start_backends
write_config
printf '{"smoke":%d,"ceiling_messages":%d,"accept_seconds":%d,"e2e_requests":%d,"latency_rate":%d,"latency_seconds":%d,"batch1_requests":%d,"batch100_requests":%d,"flood_events":%d,"soak_requests":%d,"shaped_requests":%d,"waiters":%d,"cores":%d}\n' \
  "$smoke" "$N_CEILING" "$ACCEPT_S" "$N_E2E" "$LAT_RATE" "$LAT_S" "$N_BATCH1" "$N_BATCH100" \
  "$N_FLOOD" "$N_SOAK" "$N_SHAPED" "$N_WAITERS" "$(nproc)" >"$results/params.json"
# PHASES="accept e2e" runs only those phases (no summary table).
for phase in ${PHASES:-ceiling accept accept_tls e2e latency batching memory shaping batchcall waiters statusmem}; do "phase_$phase"; done
[ -n "${PHASES:-}" ] || report
ln -sfn "$stamp" bench/results/latest
say "results in bench/results/$stamp"
