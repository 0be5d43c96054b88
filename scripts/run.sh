#!/usr/bin/env bash
# run.sh (make run) starts a local sluice to play with: a private RabbitMQ
# (unless SLUICE_AMQP_URL names one), the demo backend, the ingress and two
# workers, all from build/. It prints how to submit and poll a request, then
# waits; Ctrl-C or SIGTERM stops everything it started, the broker included.
# Files go to ./.run: sluice.json, *.log, broker/.
#
# Settings: SLUICE_LISTEN (ingress, default 127.0.0.1:8080),
# SLUICE_DEMO_BACKEND_PORT (default 18080), SLUICE_AMQP_URL (use that broker).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
run=$root/.run
listen=${SLUICE_LISTEN:-127.0.0.1:8080}
backend_port=${SLUICE_DEMO_BACKEND_PORT:-18080}
token=demo-token
pids=()
names=()
broker_dir=""

for bin in sluice-backend sluice-ingress sluice-worker; do
  [ -x "build/$bin" ] || { echo "run.sh: build/$bin is missing; run make first" >&2; exit 1; }
done
mkdir -p "$run"

# shellcheck disable=SC2317 # stop_all runs from the EXIT trap
stop_all() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 150); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" -eq 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$broker_dir" ]; then
    echo "run.sh: stopping the broker"
    scripts/broker.sh stop "$broker_dir" || true
  fi
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# leftover_broker tells whether a node from an earlier run that was not
# stopped still runs under dir (checked by its command line, not just its pid).
leftover_broker() {
  local dir=$1 pid
  [ -f "$dir/server.pid" ] || return 1
  pid=$(cat "$dir/server.pid")
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$dir"
}

# start_broker starts a fresh node under dir and prints its URL.
start_broker() {
  local dir=$1
  if leftover_broker "$dir"; then
    scripts/broker.sh stop "$dir" >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  echo "run.sh: starting a private RabbitMQ under $dir" >&2
  scripts/broker.sh start "$dir"
}

write_config() {
  local amqp_url=$1 hash
  hash=$(printf %s "$token" | sha256sum | cut -d' ' -f1)
  cat >"$run/sluice.json" <<JSON
{
  "amqp_url": "$amqp_url",
  "namespace": "demo",
  "log_level": "info",
  "ingress": {"listen": "$listen"},
  "worker": {"metrics_listen": "127.0.0.1:9091"},
  "keys": [{"id": "demo", "secret_sha256": "$hash", "tenant": "demo", "routes": ["*"]}],
  "routes": {"echo": {"upstreams": ["http://127.0.0.1:$backend_port"]}}
}
JSON
}

# start runs a command in the background with its output in .run/NAME.log.
start() {
  local name=$1
  shift
  "$@" >"$run/$name.log" 2>&1 &
  pids+=("$!")
  names+=("$name")
}

# report_dead prints which started process exited, with its last log lines.
report_dead() {
  local i
  for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      echo "run.sh: ${names[$i]} exited; last lines of .run/${names[$i]}.log:" >&2
      tail -n 20 "$run/${names[$i]}.log" >&2 || true
    fi
  done
}

wait_ready() {
  for _ in $(seq 1 600); do
    curl -fsS -o /dev/null --max-time 2 "http://$listen/readyz" 2>/dev/null && return 0
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null || { report_dead; return 1; }
    done
    sleep 0.1
  done
  echo "run.sh: the ingress was not ready within 60 s; see .run/ingress.log" >&2
  return 1
}

amqp_url=${SLUICE_AMQP_URL:-}
if [ -z "$amqp_url" ]; then
  broker_dir=$run/broker
  amqp_url=$(start_broker "$broker_dir")
fi
write_config "$amqp_url"
config=$run/sluice.json
start backend build/sluice-backend --listen "127.0.0.1:$backend_port" --log "$run/backend-access.log"
start ingress build/sluice-ingress --config "$config"
start worker-1 env SLUICE_METRICS_LISTEN=127.0.0.1:9091 build/sluice-worker --config "$config"
start worker-2 env SLUICE_METRICS_LISTEN=127.0.0.1:9092 build/sluice-worker --config "$config"
wait_ready

cat <<EOF

sluice is running: ingress http://$listen, workers' metrics on 127.0.0.1:9091 and :9092,
demo backend on 127.0.0.1:$backend_port (route "echo"). Logs and config in .run/.

Submit a request:
  curl -s -H 'Authorization: Bearer $token' -H 'Content-Type: application/json' \\
    -d '{"route":"echo","method":"POST","path":"/hello","body":{"hello":"world"}}' \\
    http://$listen/v1/requests
Poll it (put the id from the answer):
  curl -s -H 'Authorization: Bearer $token' 'http://$listen/v1/requests/<id>'

Ctrl-C stops everything.
EOF

status=0
wait -n "${pids[@]}" || status=$?
echo "run.sh: a process stopped (status $status); stopping the rest" >&2
report_dead
exit 1
