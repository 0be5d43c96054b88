#!/usr/bin/env bash
# cluster.sh runs a private three-node RabbitMQ cluster on this machine, for
# the cluster suite (tests/integration/itest_cluster.c) and `make soak`. Each
# node is a broker.sh node under DIR/n1, DIR/n2, DIR/n3 (its own ports, data
# and logs); the three share one epmd on a free port and one Erlang cookie, so
# they find each other and nothing else does. Quorum queues declared in the
# cluster get a member on each node, and so does the events stream.
#
#   cluster.sh start DIR         start the three nodes, join them, print the URL list
#   cluster.sh stop DIR          stop every node of DIR and their epmd
#   cluster.sh kill DIR N        SIGKILL node N (1..3): a crash, not a stop; prints
#                                when (Unix milliseconds)
#   cluster.sh restart DIR N     start node N again; it rejoins the cluster
#   cluster.sh url DIR [N]       the comma-separated URL list, or node N's URL
#   cluster.sh node DIR N        node N's Erlang name (as list_queues prints it)
#   cluster.sh running DIR N     exit 0 when node N's Erlang VM runs
#   cluster.sh ctl DIR N ARGS    rabbitmqctl ARGS against node N
#   cluster.sh queues DIR N ARGS rabbitmq-queues ARGS against node N
set -euo pipefail

RMQ_BIN=/usr/lib/rabbitmq/bin
NODES="1 2 3"
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
source "$here/lib.sh"

usage() {
  echo "usage: cluster.sh start|stop DIR | kill|restart|node|running DIR N | url DIR [N] |" \
    "ctl|queues DIR N ARGS..." >&2
  exit 2
}

node_dir() { echo "$1/n$2"; }

check_node() {
  case "$1" in 1 | 2 | 3) ;; *) echo "cluster.sh: no node $1 (1..3)" >&2; exit 2 ;; esac
}

# node_name prints the Erlang name recorded in node N's env file.
node_name() {
  sed -n 's/^RABBITMQ_NODENAME=//p' "$(node_dir "$1" "$2")/env"
}

# beam_pid prints the pid of node N's Erlang VM (RabbitMQ writes it at boot),
# or nothing when it does not run.
beam_pid() {
  local f pid
  f="$(node_dir "$1" "$2")/rabbit.pid"
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
}

# in_node runs a RabbitMQ CLI tool against node N, in its environment.
in_node() {
  local dir=$1 n=$2 tool=$3
  shift 3
  (
    # shellcheck disable=SC1091
    source "$(node_dir "$dir" "$n")/env"
    export HOME
    HOME=$(node_dir "$dir" "$n")
    export RABBITMQ_NODENAME ERL_EPMD_PORT ERL_EPMD_ADDRESS=127.0.0.1
    "$RMQ_BIN/$tool" -q "$@"
  )
}

# start_nodes starts the listed nodes at once (each boot takes 10-20 s of a
# busy machine) and waits for all of them; a failure prints that node's
# error. broker.sh writes a node's files on its first start, with the
# cluster's epmd port, cookie and a node name made of the cluster's prefix.
start_nodes() {
  local dir=$1 n pid failed=0
  shift
  local pids=()
  for n in "$@"; do
    BROKER_EPMD_PORT=$(cat "$dir/epmd_port") BROKER_COOKIE=$(cat "$dir/cookie") \
      BROKER_NODENAME="$(cat "$dir/prefix")n$n" BROKER_KEEP_EPMD=1 \
      "$here/broker.sh" start "$(node_dir "$dir" "$n")" >"$dir/n$n.url" 2>"$dir/n$n.err" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  if [ "$failed" -ne 0 ]; then
    for n in "$@"; do cat "$dir/n$n.err" >&2; done
    echo "cluster.sh: a node did not start; see $dir/n*/log" >&2
  fi
  return "$failed"
}

cmd_start() {
  local dir=$1
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/cookie" ]; then
    echo "cluster.sh: $dir already holds a cluster (stop it, or use a new directory)" >&2
    exit 1
  fi
  head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/cookie"
  free_port >"$dir/epmd_port"
  echo "c$$" >"$dir/prefix"
  # shellcheck disable=SC2086
  if ! start_nodes "$dir" $NODES || ! join "$dir"; then
    cmd_stop "$dir"
    exit 1
  fi
  cmd_url "$dir"
}

# join makes nodes 2 and 3 members of node 1's cluster, then waits until the
# cluster reports all three running. Each rabbitmqctl run boots an Erlang VM
# (about 1.7 s of CPU here), so the two nodes stop and start their app at
# once; only the joins, which change the cluster's membership, go one by one.
join() {
  local dir=$1 first n
  first=$(node_name "$dir" 1)
  on_both "$dir" stop_app || return 1
  for n in 2 3; do
    if ! in_node "$dir" "$n" rabbitmqctl join_cluster "$first" >/dev/null; then
      echo "cluster.sh: node $n could not join $first" >&2
      return 1
    fi
  done
  on_both "$dir" start_app || return 1
  in_node "$dir" 1 rabbitmqctl await_online_nodes 3 --timeout 120 >/dev/null || {
    echo "cluster.sh: the cluster did not report 3 running nodes" >&2
    return 1
  }
}

# on_both runs rabbitmqctl CMD on nodes 2 and 3 at once.
on_both() {
  local dir=$1 cmd=$2 n pids=() failed=0
  for n in 2 3; do
    in_node "$dir" "$n" rabbitmqctl "$cmd" >/dev/null &
    pids+=($!)
  done
  for n in 0 1; do
    if ! wait "${pids[n]}"; then
      echo "cluster.sh: rabbitmqctl $cmd failed on node $((n + 2))" >&2
      failed=1
    fi
  done
  return "$failed"
}

cmd_stop() {
  local dir=$1 n
  [ -d "$dir" ] || return 0
  for n in $NODES; do
    [ -f "$(node_dir "$dir" "$n")/env" ] || continue
    BROKER_KEEP_EPMD=1 "$here/broker.sh" stop "$(node_dir "$dir" "$n")" &
  done
  wait
  for n in $NODES; do
    # A node whose stop failed (or that was killed and left its VM behind).
    local pid
    pid=$(beam_pid "$dir" "$n")
    if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
  done
  if [ -f "$dir/epmd_port" ]; then
    epmd -port "$(cat "$dir/epmd_port")" -kill >/dev/null 2>&1 || true
  fi
}

cmd_kill() {
  local dir=$1 n=$2 pid
  pid=$(beam_pid "$dir" "$n")
  if [ -z "$pid" ]; then
    echo "cluster.sh: node $n does not run" >&2
    exit 1
  fi
  date +%s%3N
  kill -9 "$pid"
  # The VM is gone once the kernel reaped it; its wrapper shell follows.
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
}

cmd_restart() {
  local dir=$1 n=$2
  if [ -n "$(beam_pid "$dir" "$n")" ]; then
    echo "cluster.sh: node $n still runs" >&2
    exit 1
  fi
  rm -f "$(node_dir "$dir" "$n")/rabbit.pid"
  start_nodes "$dir" "$n"
}

cmd_url() {
  local dir=$1 n urls=""
  for n in $NODES; do
    urls="$urls${urls:+,}$("$here/broker.sh" url "$(node_dir "$dir" "$n")")"
  done
  echo "$urls"
}

cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then usage; fi
case $cmd in
  start | stop) "cmd_$cmd" "$dir" ;;
  kill | restart)
    check_node "${3:-}"
    "cmd_$cmd" "$dir" "$3"
    ;;
  node) check_node "${3:-}"; node_name "$dir" "$3" ;;
  running) check_node "${3:-}"; [ -n "$(beam_pid "$dir" "$3")" ] ;;
  url)
    if [ -n "${3:-}" ]; then
      check_node "$3"
      "$here/broker.sh" url "$(node_dir "$dir" "$3")"
    else
      cmd_url "$dir"
    fi
    ;;
  ctl) check_node "${3:-}"; in_node "$dir" "$3" rabbitmqctl "${@:4}" ;;
  queues) check_node "${3:-}"; in_node "$dir" "$3" rabbitmq-queues "${@:4}" ;;
  *) usage ;;
esac
