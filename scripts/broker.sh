#!/usr/bin/env bash
# broker.sh runs a private RabbitMQ node for tests, benchmarks and `make run`.
# The node lives entirely under one directory (data, logs, cookie, config) and
# listens on free loopback ports with its own epmd, so it never touches a
# system-wide RabbitMQ and several can run side by side.
#
#   broker.sh start DIR      start a node under DIR, print its AMQP URL
#   broker.sh stop DIR       stop the node and its epmd
#   broker.sh pause DIR      stop the RabbitMQ application (clients see the broker down)
#   broker.sh resume DIR     start the application again on the same port
#   broker.sh url DIR        print the AMQP URL of the node under DIR
#   broker.sh ctl DIR ARGS   run rabbitmqctl ARGS against the node
#
# scripts/cluster.sh makes three such nodes into one cluster: for a new DIR,
# BROKER_NODENAME, BROKER_EPMD_PORT and BROKER_COOKIE (when set) replace the
# node name, the epmd port and the Erlang cookie that would be made up, and
# BROKER_KEEP_EPMD=1 makes stop leave the (shared) epmd running.
set -euo pipefail

RMQ_BIN=/usr/lib/rabbitmq/bin
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

node_env() {
  local dir=$1
  # shellcheck disable=SC1091
  source "$dir/env"
  export HOME="$dir" RABBITMQ_NODENAME RABBITMQ_NODE_PORT RABBITMQ_NODE_IP_ADDRESS \
    RABBITMQ_DIST_PORT ERL_EPMD_PORT RABBITMQ_MNESIA_BASE RABBITMQ_LOG_BASE \
    RABBITMQ_CONFIG_FILE RABBITMQ_ENABLED_PLUGINS_FILE RABBITMQ_PID_FILE \
    RABBITMQ_ADVANCED_CONFIG_FILE RABBITMQ_CONF_ENV_FILE RABBITMQ_LOGS
  export ERL_EPMD_ADDRESS=127.0.0.1
  # A VM that fails to boot dumps its state here, not into the caller's directory.
  export ERL_CRASH_DUMP="$dir/erl_crash.dump"
}

ctl() { "$RMQ_BIN/rabbitmqctl" -q "$@"; }

cmd_start() {
  local dir=$1
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ ! -f "$dir/env" ]; then
    local name=${BROKER_NODENAME:-sluice$$}
    cat >"$dir/env" <<ENV
RABBITMQ_NODENAME=$name@localhost
RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
RABBITMQ_NODE_PORT=$(free_port)
RABBITMQ_DIST_PORT=$(free_port)
ERL_EPMD_PORT=${BROKER_EPMD_PORT:-$(free_port)}
RABBITMQ_MNESIA_BASE=$dir/mnesia
RABBITMQ_LOG_BASE=$dir/log
RABBITMQ_LOGS=$dir/log/rabbit.log
RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf
RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config
RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf
RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins
RABBITMQ_PID_FILE=$dir/rabbit.pid
ENV
    cat >"$dir/rabbitmq.conf" <<CONF
loopback_users = none
listeners.tcp.default = 127.0.0.1:$(grep NODE_PORT "$dir/env" | cut -d= -f2)
vm_memory_high_watermark.relative = 0.2
disk_free_limit.absolute = 50MB
log.console = false
log.file.level = warning
CONF
    echo '[].' >"$dir/enabled_plugins"
    echo '[].' >"$dir/advanced.config"
    : >"$dir/rabbitmq-env.conf"
    if [ -n "${BROKER_COOKIE:-}" ]; then
      printf '%s' "$BROKER_COOKIE" >"$dir/.erlang.cookie"
    else
      head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/.erlang.cookie"
    fi
    chmod 400 "$dir/.erlang.cookie"
  fi
  node_env "$dir"
  mkdir -p "$RABBITMQ_LOG_BASE" "$RABBITMQ_MNESIA_BASE"
  epmd -port "$ERL_EPMD_PORT" -address 127.0.0.1 -daemon
  # A session of its own: a node restarted from a test outlives the test's
  # process group, which Check kills when the test ends.
  setsid "$RMQ_BIN/rabbitmq-server" >"$dir/log/stdout.log" 2>&1 &
  echo $! >"$dir/server.pid"
  if ! timeout 120 "$RMQ_BIN/rabbitmqctl" -q wait --pid "$!" --timeout 120 >/dev/null 2>&1; then
    echo "broker.sh: RabbitMQ did not start; see $dir/log" >&2
    tail -n 30 "$dir/log/stdout.log" >&2 || true
    exit 1
  fi
  cmd_url "$dir"
}

cmd_url() {
  node_env "$1"
  echo "amqp://guest:guest@127.0.0.1:$RABBITMQ_NODE_PORT/"
}

cmd_stop() {
  local dir=$1
  [ -f "$dir/env" ] || return 0
  node_env "$dir"
  ctl stop >/dev/null 2>&1 || true
  if [ -f "$dir/server.pid" ]; then
    local pid
    pid=$(cat "$dir/server.pid")
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  [ -n "${BROKER_KEEP_EPMD:-}" ] || epmd -port "$ERL_EPMD_PORT" -kill >/dev/null 2>&1 || true
}

cmd_pause() { node_env "$1"; ctl stop_app >/dev/null; }
cmd_ctl() { node_env "$1"; shift; ctl "$@"; }
cmd_resume() { node_env "$1"; ctl start_app >/dev/null; }

case "${1:-}" in
  ctl) shift; cmd_ctl "${1:?usage: broker.sh ctl DIR ARGS...}" "${@:2}" ;;
  start | stop | pause | resume | url) "cmd_$1" "${2:?usage: broker.sh start|stop|pause|resume|url DIR}" ;;
  *) echo "usage: broker.sh start|stop|pause|resume|url DIR" >&2; exit 2 ;;
esac
