#!/usr/bin/env bash
# browser-test.sh checks the ingress's status page in a real browser: it
# starts a private RabbitMQ, the test backend, an ingress with an admin token
# and an admin key, and a worker (build/sluice-*), finishes one succeeded and
# one failed request and two dead ones, then loads the page in headless
# Chromium with the token in the address (#token=...) and checks the rendered
# DOM for the route's outcome counts and the failed request's id. It also
# saves a screenshot for a human (build/browser-test.png, or
# $SLUICE_BROWSER_SCREENSHOT). Then browser-drive.py works the operator's
# views as an operator would (a key that is not an admin key refused; the
# overview; the routes with the workers' report and an open breaker, pause
# and resume a route; replay a dead letter after its confirmation; filter
# the dead letters by route and purge a route's after the confirmation; the
# charts drawn after the traffic) and saves a screenshot of each view in
# build/ ($SLUICE_BROWSER_SHOTS=docs/img remakes the documentation's).
# Everything it starts is stopped on exit. Chromium is installed from Debian
# if missing.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

screenshot=${SLUICE_BROWSER_SCREENSHOT:-$root/build/browser-test.png}
shots=${SLUICE_BROWSER_SHOTS:-$root/build}
pids=()
work=""
broker_dir=""

say() { echo "browser-test.sh: $*" >&2; }
die() {
  say "$*"
  exit 1
}

for bin in sluice-backend sluice-ingress sluice-worker; do
  [ -x "build/$bin" ] || die "build/$bin is missing; run make first"
done

install_chromium() {
  command -v chromium >/dev/null 2>&1 && return 0
  local as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "chromium is missing: apt-get install chromium (as root)"
    as_root=(sudo)
  fi
  say "installing Debian's chromium"
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    chromium >/dev/null ||
    { "${as_root[@]}" apt-get update >/dev/null &&
      "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y \
        --no-install-recommends chromium >/dev/null; }
}

# shellcheck disable=SC2317 # cleanup runs from the EXIT trap
cleanup() {
  local rc=$? pid
  set +e
  trap '' PIPE # a closed stderr must not cut the cleanup short
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 100); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" -eq 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  [ -n "$broker_dir" ] && { scripts/broker.sh stop "$broker_dir" >/dev/null 2>&1 || true; }
  if [ "$rc" -ne 0 ] && [ -n "$work" ]; then
    for log in "$work"/*.log; do
      [ -f "$log" ] && { say "last lines of $log:"; tail -n 15 "$log" >&2; }
    done
  fi
  [ -n "$work" ] && rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
trap 'exit 141' PIPE

start() {
  local name=$1
  shift
  "$@" >"$work/$name.log" 2>&1 &
  pids+=("$!")
}

# wait_http waits up to $3 tenths of a second for url $1 to answer status $2.
wait_http() {
  local got
  for _ in $(seq 1 "$3"); do
    got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true)
    [ "$got" = "$2" ] && return 0
    sleep 0.1
  done
  die "$1 did not answer $2 in time (last: ${got:-none})"
}

# submit posts envelope $1 and prints the tracking id.
submit() {
  curl -fsS --max-time 10 -H "Authorization: Bearer $api_token" \
    -H 'Content-Type: application/json' -d "$1" "$ingress/v1/requests" |
    sed -n 's/.*"id":"\([^"]*\)".*/\1/p'
}

# wait_final waits up to 30 s until request $1 has the state $2.
wait_final() {
  for _ in $(seq 1 300); do
    curl -s --max-time 2 -H "Authorization: Bearer $api_token" "$ingress/v1/requests/$1" |
      grep -q -e "\"status\":\"$2\"" && return 0
    sleep 0.1
  done
  die "request $1 never became $2"
}

browser() {
  local profile
  profile=$(mktemp -d "$work/profile.XXXXXX")
  HOME=$work timeout 20 chromium --headless --no-sandbox --disable-gpu --disable-quic \
    --no-first-run --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --virtual-time-budget=8000 "$@" 2>>"$work/chromium.log"
}

install_chromium
work=$(mktemp -d /tmp/sluice-browser.XXXXXX)
broker_dir=$work/broker
amqp_url=$(scripts/broker.sh start "$broker_dir" | tail -n 1)
port=$(free_port)
backend_port=$(free_port)
# Nothing listens there: route down's breaker opens, for the routes view.
down_port=$(free_port)
ingress=http://127.0.0.1:$port
api_token=browser-api-token
admin_token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
api_hash=$(printf %s "$api_token" | sha256sum | cut -d' ' -f1)
admin_key=browser-admin-key
admin_hash=$(printf %s "$admin_key" | sha256sum | cut -d' ' -f1)
# A small prefetch: a paused route's requests wait in its lane, where the
# ingress sees them (the backlog charted), rather than in the worker.
cat >"$work/sluice.json" <<JSON
{
  "amqp_url": "$amqp_url",
  "namespace": "browser$$",
  "admin_token": "$admin_token",
  "ingress": {"listen": "127.0.0.1:$port"},
  "worker": {"metrics_listen": "127.0.0.1:0", "batch_size": 5, "prefetch": 10},
  "keys": [{"id": "browser", "secret_sha256": "$api_hash", "tenant": "browser", "routes": ["*"]},
           {"id": "ops", "secret_sha256": "$admin_hash", "tenant": "ops", "routes": ["*"],
            "admin": true}],
  "routes": {"echo": {"upstreams": ["http://127.0.0.1:$backend_port"]},
             "once": {"upstreams": ["http://127.0.0.1:$backend_port"], "max_attempts": 1,
                      "max_in_flight": 2},
             "down": {"upstreams": ["http://127.0.0.1:$down_port"], "max_attempts": 50,
                      "backoff_ms": 200, "backoff_max_ms": 1000,
                      "breaker": {"consecutive_failures": 1, "open_ms": 5000,
                                  "max_open_ms": 60000}}}
}
JSON
start backend build/sluice-backend --listen "127.0.0.1:$backend_port" --log "$work/access.log"
start ingress build/sluice-ingress --config "$work/sluice.json"
start worker build/sluice-worker --config "$work/sluice.json"
wait_http "$ingress/readyz" 200 300

ok_id=$(submit '{"route":"echo","path":"/hello"}')
failed_id=$(submit '{"route":"echo","path":"/status/404"}')
if [ -z "$ok_id" ] || [ -z "$failed_id" ]; then die "a submission was not accepted"; fi
dead_ids="$(submit '{"route":"once","path":"/status/503"}') $(submit '{"route":"once","path":"/status/503"}')"
# It waits behind the open breaker (no attempt spent) for as long as the test runs.
[ -n "$(submit '{"route":"down","path":"/x"}')" ] || die "a submission was not accepted"
wait_final "$ok_id" succeeded
wait_final "$failed_id" failed
for id in $dead_ids; do wait_final "$id" dead; done

url="$ingress/#token=$admin_token"
browser --dump-dom "$url" >"$work/dom.html" || die "chromium failed (see $work/chromium.log)"
browser --window-size=1100,800 --screenshot="$screenshot" "$url" >/dev/null ||
  die "chromium could not take the screenshot"

row='<tr><td>echo</td><td class="n">1</td><td class="n">1</td><td class="n">0</td></tr>'
fail=0
grep -qF -e "$row" "$work/dom.html" || { say "no outcome row $row"; fail=1; }
grep -qF -e "<td>$failed_id</td>" "$work/dom.html" || { say "failed id $failed_id not listed"; fail=1; }
grep -qF -e '<td>backend_rejected</td>' "$work/dom.html" || { say "no error code"; fail=1; }
grep -qF -e '<span id="state" class="ok">live</span>' "$work/dom.html" || { say "not live"; fail=1; }
if grep -qF -e "$ok_id" "$work/dom.html"; then say "the succeeded request is listed as a failure"; fail=1; fi
if [ "$fail" -ne 0 ]; then
  say "the page did not show what it should; the DOM was:"
  cat "$work/dom.html" >&2
  exit 1
fi
say "ok: the page shows the outcomes and the failure; screenshot in $screenshot"

# traffic submits requests for $1 seconds, in waves, with some failures and
# dead letters, and route echo paused for the middle fifth (a backlog): the
# charts of the documentation's screenshot. A test script may sleep.
traffic() {
  local start=$SECONDS end=$((SECONDS + $1)) n
  while [ "$SECONDS" -lt "$end" ]; do
    n=$(((SECONDS - start) / 15 % 4 + 1))
    for _ in $(seq 1 "$n"); do submit '{"route":"echo","path":"/hello"}' >/dev/null; done
    [ $((SECONDS % 7)) -eq 0 ] && submit '{"route":"echo","path":"/status/404"}' >/dev/null
    [ $((SECONDS % 40)) -eq 0 ] && submit '{"route":"once","path":"/status/503"}' >/dev/null
    case $(((SECONDS - start) * 5 / $1)) in
      2) admin_post "/v1/admin/routes/echo:pause" ;;
      3) admin_post "/v1/admin/routes/echo:resume" ;;
    esac
    sleep 1
  done
  admin_post "/v1/admin/routes/echo:resume"
}
admin_post() {
  curl -fsS --max-time 10 -o /dev/null -X POST -H "Authorization: Bearer $admin_key" "$ingress$1"
}

# Some traffic for the charts while the operator's views are worked; more
# with SLUICE_BROWSER_TRAFFIC_S (seconds) for the documentation's screenshots.
if [ -n "${SLUICE_BROWSER_TRAFFIC_S:-}" ]; then traffic "$SLUICE_BROWSER_TRAFFIC_S"; fi
for _ in $(seq 1 8); do submit '{"route":"echo","path":"/hello"}' >/dev/null; done
# A dead letter of echo (made after the DOM check above, which counts echo's
# outcomes): the one the page purges by route.
echo_dead_id=$(submit '{"route":"echo","path":"/status/503","max_attempts":1}')
wait_final "$echo_dead_id" dead
INGRESS=$ingress ADMIN_KEY=$admin_key USER_KEY=$api_token DEAD_IDS=$dead_ids \
  ECHO_DEAD_ID=$echo_dead_id SHOTS=$shots WORK=$work timeout 180 python3 scripts/browser-drive.py ||
  die "the operator's views did not work as they should"
say "ok: the operator's views work; screenshots in $shots/page-*.png"
