#!/usr/bin/env bash
# compose-test.sh runs docker-compose.yml for real and checks it from the
# host, through the published port, the way a user would:
#
#   1. installs docker.io, docker-compose and debootstrap when missing, and
#      starts dockerd when no Docker engine answers (it stops only that one);
#   2. makes the base images it lacks, debian:12 and debian:12-slim, from
#      `debootstrap --variant=minbase bookworm` and `docker import` (they are
#      kept for the next run);
#   3. builds sluice:local (deploy/Dockerfile) and, with the override
#      deploy/compose.local.yml, RabbitMQ and Prometheus images from Debian's
#      packages (no registry is needed);
#   4. `up -d --scale worker=3` under a project name of its own, with every
#      port published on 127.0.0.1 at a free port, and checks: every container
#      healthy; one request submitted and succeeded; a steady load while the
#      workers go 3 -> 1 -> 4 and one of them is killed with `docker kill`,
#      after which every accepted ID has succeeded; the ingress restarted and
#      every ID's status still served; Prometheus (profile monitoring) scraping
#      the ingress, every worker and the broker with the alerting rules loaded;
#   5. `down -v`, and checks that no container, network or volume is left.
#
# Grafana is not packaged in Debian 12, so its service is not run (see
# docs/deploy.md). One run at a time per machine (a lock), a few minutes.
# SLUICE_DEBIAN_MIRROR and SLUICE_DEBIAN_SECURITY_MIRROR choose the mirrors
# of the base image. Everything it starts is stopped and removed on exit.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

mirror=${SLUICE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${SLUICE_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
token=demo-token
prefix=sluice-compose-test
project=$prefix-$$
t0=$SECONDS
work=""
dockerd_pid=""
load_pid=""
compose_up=0

say() { printf 'compose-test.sh: [%3ds] %s\n' $((SECONDS - t0)) "$*" >&2; }
die() {
  say "FAIL: $*"
  exit 1
}

# dc is docker-compose on the project's files, under this run's project name.
dc() {
  docker-compose -p "$project" -f docker-compose.yml -f deploy/compose.local.yml "$@"
}

# project_ids prints the IDs of this run's containers, networks or volumes.
project_ids() { # $1 = ps -a | network ls | volume ls
  # shellcheck disable=SC2086 # $1 is two words on purpose
  docker $1 -q --filter "label=com.docker.compose.project=$project"
}

# shellcheck disable=SC2317 # cleanup runs from the EXIT trap
cleanup() {
  local rc=$? s
  set +e
  trap '' PIPE INT TERM HUP
  # A signal that arrives during a redirected function (dc ... >/dev/null)
  # runs this with the redirection still in place: write where we began.
  exec 1>&7 2>&8
  # The load generator stops on a file in $work, which is about to go.
  [ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null
  if [ "$compose_up" -eq 1 ]; then
    if [ "$rc" -ne 0 ]; then
      dc --profile monitoring ps >&2
      for s in rabbitmq backend ingress worker prometheus; do
        say "last lines of $s:"
        dc --profile monitoring logs --no-color --tail 15 "$s" >&2
      done
    fi
    dc --profile monitoring down -v --remove-orphans -t 5 >/dev/null 2>&1
  fi
  if [ -n "$dockerd_pid" ]; then
    say "stopping the dockerd this run started (pid $dockerd_pid)"
    kill -TERM "$dockerd_pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$dockerd_pid" 2>/dev/null
    wait "$dockerd_pid" 2>/dev/null
  fi
  [ -n "$work" ] && remove_tree "$work"
  say "$([ "$rc" -eq 0 ] && echo "passed" || echo "failed (exit $rc)")"
  exit "$rc"
}

# remove_tree deletes a directory that may hold a debootstrap root, whose
# proc or sys an interrupted debootstrap can leave mounted: unmount first.
remove_tree() {
  awk -v d="$1/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf --one-file-system "$1"
}

# ---- the engine ----------------------------------------------------------------

docker_answers() { timeout 20 docker info >/dev/null 2>&1; }

# start_dockerd starts a dockerd of this run's own when no engine answers.
# setsid keeps a Ctrl-C for this script away from it, so the cleanup can still
# take the containers down before it stops.
start_dockerd() {
  if docker_answers; then
    say "using the Docker engine already running"
    return
  fi
  [ -z "${DOCKER_HOST:-}" ] || die "DOCKER_HOST=$DOCKER_HOST does not answer (docker info)"
  [ "$(id -u)" -eq 0 ] || die "no Docker engine answers, and starting dockerd needs root"
  command -v dockerd >/dev/null 2>&1 || die "dockerd is missing (Debian package docker.io)"
  say "starting dockerd (log in $work/dockerd.log)"
  # It must not hold the lock (fd 9) or our output (7, 8) should it outlive us.
  setsid dockerd >"$work/dockerd.log" 2>&1 </dev/null 7>&- 8>&- 9>&- &
  dockerd_pid=$!
  for _ in $(seq 1 120); do
    docker_answers && return
    if ! kill -0 "$dockerd_pid" 2>/dev/null; then
      wait "$dockerd_pid" 2>/dev/null || true
      dockerd_pid=""
      # Another run may have started one at the same moment.
      docker_answers && return
      tail -n 20 "$work/dockerd.log" >&2
      die "dockerd exited: $(grep -iE 'level=(fatal|error)|failed' "$work/dockerd.log" | tail -n 1)"
    fi
    sleep 0.5
  done
  tail -n 20 "$work/dockerd.log" >&2
  die "dockerd did not answer within 60 s"
}

# remove_stale removes what an earlier run killed before its cleanup left
# behind: with restart: unless-stopped, its containers would come back with
# the engine. The lock makes every project with this prefix a stale one.
remove_stale() {
  local ids
  ids=$(docker ps -a --filter "label=com.docker.compose.project" --format '{{.ID}} {{.Label "com.docker.compose.project"}}' |
    awk -v p="$prefix-" 'index($2, p) == 1 {print $1}')
  if [ -n "$ids" ]; then
    say "removing containers left by an earlier run: $(echo "$ids" | wc -l)"
    # shellcheck disable=SC2086
    docker rm -f -v $ids >/dev/null
  fi
  for kind in network volume; do
    ids=$(docker $kind ls --filter "label=com.docker.compose.project" --format '{{.Name}} {{.Label "com.docker.compose.project"}}' |
      awk -v p="$prefix-" 'index($2, p) == 1 {print $1}')
    # shellcheck disable=SC2086
    [ -z "$ids" ] || docker $kind rm $ids >/dev/null
  done
}

# ---- the images ----------------------------------------------------------------

# make_base_images makes debian:12 and debian:12-slim when they are missing:
# one minbase debootstrap, set up like Debian's official images (their apt
# sources, no services started by package scripts, apt's caches cleaned after
# each install, no fsync by dpkg), imported once and tagged twice. An image
# is thrown away with its container, so fsync buys nothing while it is built.
make_base_images() {
  if docker image inspect debian:12 >/dev/null 2>&1; then
    docker image inspect debian:12-slim >/dev/null 2>&1 || docker tag debian:12 debian:12-slim
    say "base images debian:12 and debian:12-slim are there"
    return
  fi
  local r=$work/rootfs
  say "making debian:12: debootstrap --variant=minbase bookworm ($mirror)"
  if ! DPKG_FORCE=unsafe-io debootstrap --variant=minbase bookworm "$r" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 20 "$work/debootstrap.log" >&2
    die "debootstrap failed (log above)"
  fi
  rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/apt/*.bin
  rm -f "$r/etc/apt/sources.list"
  cat >"$r/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security_mirror
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  printf '#!/bin/sh\n# Package scripts start no services in an image.\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
  chmod 755 "$r/usr/sbin/policy-rc.d"
  cat >"$r/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::Languages "none";' >"$r/etc/apt/apt.conf.d/docker-no-languages"
  echo 'force-unsafe-io' >"$r/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
  tar -C "$r" --numeric-owner -c . |
    docker import --change 'CMD ["bash"]' --message "debootstrap --variant=minbase bookworm" - debian:12 >/dev/null
  docker image inspect debian:12-slim >/dev/null 2>&1 || docker tag debian:12 debian:12-slim
  remove_tree "$r"
  say "imported debian:12 and tagged debian:12-slim"
}

# build_images builds sluice:local and the override's two images. The image a
# tag pointed to before is removed when nothing uses it any more, and so are
# older build stages, so repeated runs do not pile up images; the layer cache
# of the newest build stays.
build_images() {
  local tags=(sluice:local sluice-rabbitmq:local sluice-prometheus:local) before=() i now
  for i in "${!tags[@]}"; do before[i]=$(docker image inspect -f '{{.Id}}' "${tags[i]}" 2>/dev/null || true); done
  say "building ${tags[*]}"
  # backend stands for ingress and worker too: the three share sluice:local.
  if ! timeout 900 docker-compose -f docker-compose.yml -f deploy/compose.local.yml --profile monitoring \
    build --parallel backend rabbitmq prometheus >"$work/build.log" 2>&1; then
    tail -n 30 "$work/build.log" >&2
    die "building the images failed (log above)"
  fi
  for i in "${!tags[@]}"; do
    now=$(docker image inspect -f '{{.Id}}' "${tags[i]}")
    if [ -n "${before[i]}" ] && [ "${before[i]}" != "$now" ]; then
      docker image rm "${before[i]}" >/dev/null 2>&1 || true
    fi
  done
  # The build stage of deploy/Dockerfile stays behind as an untagged image: keep
  # the newest (the next build's cache), remove older ones.
  docker images -q --filter dangling=true --filter label=org.sluice.stage=build | tail -n +2 |
    xargs -r docker image rm >/dev/null 2>&1 || true
  say "images built"
}

# ---- checks ----------------------------------------------------------------------

# container_states prints "service name state health" for each container.
container_states() {
  local ids
  ids=$(project_ids "ps -a")
  [ -n "$ids" ] || return 0
  # shellcheck disable=SC2086
  docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}} {{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}no-healthcheck{{end}}' $ids
}

# wait_healthy waits until every container is running and healthy, and the
# services have the numbers of containers given ("rabbitmq=1 worker=3 ...").
wait_healthy() { # $1 = seconds, then service=count ...
  local limit=$((SECONDS + $1)) want states bad kv
  shift
  while :; do
    states=$(container_states)
    bad=$(echo "$states" | awk '$3 != "running" || $4 != "healthy"')
    want=ok
    for kv in "$@"; do
      [ "$(echo "$states" | awk -v s="${kv%%=*}" '$1 == s' | wc -l)" -eq "${kv#*=}" ] || want=no
    done
    [ -z "$bad" ] && [ "$want" = ok ] && return 0
    if echo "$bad" | grep -qE ' (exited|dead) | unhealthy$| no-healthcheck$'; then
      echo "$states" >&2
      die "a container is not healthy"
    fi
    if [ $SECONDS -ge $limit ]; then
      echo "$states" >&2
      die "containers not all healthy within the time allowed (wanted $*)"
    fi
    sleep 1
  done
}

# ports_on_loopback checks that every published port is bound to 127.0.0.1.
ports_on_loopback() {
  local ids hosts
  ids=$(project_ids "ps -a")
  # shellcheck disable=SC2086
  hosts=$(docker inspect -f '{{range $p, $b := .NetworkSettings.Ports}}{{range $b}}{{.HostIp}}:{{.HostPort}} {{end}}{{end}}' $ids | tr ' ' '\n' | sed '/^$/d')
  [ -n "$hosts" ] || die "no port is published"
  if echo "$hosts" | grep -qv '^127\.0\.0\.1:'; then
    die "a port is published beyond 127.0.0.1: $(echo "$hosts" | tr '\n' ' ')"
  fi
  say "published on loopback only: $(echo "$hosts" | tr '\n' ' ')"
}

# ledger runs the load generator (load) or the checker (verify) in python3:
# load posts requests at a steady rate until the file $work/stop exists and
# writes every accepted ID to $work/ledger, every refusal to $work/refused;
# verify waits for every ID in $work/ledger to reach a final status and
# fails unless all of them succeeded (and, when a worker was killed with calls
# in flight, some were called twice: redelivered).
ledger() { # $1 = load | verify, $2 = seconds allowed, $3 = calls killed (verify)
  python3 - "$1" "$base" "$token" "$work" "${2:-0}" "${3:-0}" <<'PY'
import http.client, json, os, sys, time, urllib.parse
from concurrent.futures import ThreadPoolExecutor

mode, base, token, work, allowed, killed = sys.argv[1:5] + [float(sys.argv[5]), int(sys.argv[6])]
host = urllib.parse.urlsplit(base).netloc
auth = {"Authorization": "Bearer " + token}


def call(conn, method, path, body=None):
    headers = dict(auth)
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    return r.status, r.read()


if mode == "load":
    rate, n, conn = 40.0, 0, None  # requests per second
    start = time.monotonic()
    with open(os.path.join(work, "ledger"), "a") as ok, open(os.path.join(work, "refused"), "a") as no:
        # It also stops when $work is gone: the script's cleanup removes it.
        while os.path.isdir(work) and not os.path.exists(os.path.join(work, "stop")):
            n += 1
            # /delay/500: calls stay in flight long enough for a killed worker to hold some.
            env = json.dumps({"route": "echo", "path": "/delay/500", "body": {"n": n}})
            try:
                conn = conn or http.client.HTTPConnection(host, timeout=10)
                status, body = call(conn, "POST", "/v1/requests", env)
            except (OSError, http.client.HTTPException) as e:
                status, body, conn = 0, str(e).encode(), None
            if status == 202:
                ok.write(json.loads(body)["id"] + "\n")
                ok.flush()
            else:
                no.write(f"{n} {status} {body[:200]!r}\n")
                no.flush()
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    sys.exit(0)

ids = [ln.strip() for ln in open(os.path.join(work, "ledger")) if ln.strip()]
deadline = time.monotonic() + allowed


def final(i):
    conn = http.client.HTTPConnection(host, timeout=40)
    last, calls = "unchecked", 0
    while time.monotonic() < deadline:
        try:
            status, body = call(conn, "GET", f"/v1/requests/{i}?wait=30")
        except (OSError, http.client.HTTPException) as e:
            last = f"error {e}"
            conn = http.client.HTTPConnection(host, timeout=40)
            time.sleep(0.5)
            continue
        if status != 200:
            last = f"http {status}"
            time.sleep(0.5)
            continue
        doc = json.loads(body)
        last = doc.get("status", "?")
        if last in ("succeeded", "failed", "dead"):
            # The demo backend counts the calls per Idempotency-Key and echoes the count.
            calls = ((doc.get("result") or {}).get("body") or {}).get("calls", 0)
            break
    conn.close()
    return last, calls


with ThreadPoolExecutor(8) as pool:
    results = list(pool.map(final, ids))
counts = {}
for s, _ in results:
    counts[s] = counts.get(s, 0) + 1
repeated = sum(1 for _, c in results if c > 1)
print(" ".join(f"{k}={v}" for k, v in sorted(counts.items())) + f"; called more than once: {repeated}")
bad = [(i, s) for i, (s, _) in zip(ids, results) if s != "succeeded"]
for i, s in bad[:5]:
    print(f"not succeeded: {i} {s}", file=sys.stderr)
# A worker killed with calls in flight never acked them: the broker gives them
# to another worker, which calls the backend again.
if killed and not repeated:
    print(f"a worker was killed with {killed} calls in flight, yet no request was called twice", file=sys.stderr)
sys.exit(1 if bad or not ids or (killed and not repeated) else 0)
PY
}

# one_request submits one request and waits for its result.
one_request() {
  local body id got
  body=$(curl -fsS --max-time 10 -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"route":"echo","path":"/hello","body":{"hi":1}}' "$base/v1/requests") ||
    die "POST /v1/requests failed"
  id=$(echo "$body" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
  got=$(curl -fsS --max-time 40 -H "Authorization: Bearer $token" "$base/v1/requests/$id?wait=30") ||
    die "GET /v1/requests/$id failed"
  echo "$got" | python3 -c '
import json, sys
d = json.load(sys.stdin)
r = d.get("result") or {}
echo = r.get("body") or {}  # the demo backend echoes what it received
sys.exit(0 if d["status"] == "succeeded" and r.get("status") == 200 and echo.get("path") == "/hello"
         and json.loads(echo.get("body_text", "null")) == {"hi": 1} else 1)' ||
    die "request $id did not succeed with the echoed body: $got"
  say "request $id: succeeded, the backend's echo in its result"
}

# workers prints the names of the running worker containers.
workers() {
  docker ps --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.service=worker" --format '{{.Names}}'
}

# busy_worker sets victim to a worker with backend calls in flight, and busy
# to their number (its sluice_worker_in_flight), so the kill has something
# to lose.
busy_worker() {
  local limit=$((SECONDS + 15)) w
  while [ $SECONDS -lt $limit ]; do
    for w in $(workers); do
      busy=$(docker exec "$w" curl -fsS --max-time 2 http://127.0.0.1:9091/metrics 2>/dev/null |
        awk '/^sluice_worker_in_flight[ {]/ {n += $NF} END {print n + 0}')
      victim=$w
      [ "$busy" -gt 0 ] && return 0
    done
    sleep 0.2
  done
  die "no worker had a backend call in flight for 15 s under load"
}

# scale_under_load runs the load while the workers go 3 -> 1 -> 4 and one is
# killed and started again, then checks the ledger: every accepted request
# succeeded.
scale_under_load() {
  local victim busy accepted refused
  : >"$work/ledger"
  : >"$work/refused"
  rm -f "$work/stop"
  ledger load 7>&- 8>&- 9>&- &
  load_pid=$!
  sleep 4
  say "load running; scaling the workers to 1"
  dc up -d --no-recreate --scale worker=1 >/dev/null 2>&1 || die "up --scale worker=1 failed"
  [ "$(workers | wc -l)" -eq 1 ] || die "not 1 worker after --scale worker=1: $(workers | xargs)"
  sleep 3
  say "scaling the workers to 4"
  dc up -d --no-recreate --scale worker=4 >/dev/null 2>&1 || die "up --scale worker=4 failed"
  wait_healthy 90 worker=4
  busy_worker
  say "4 workers healthy; docker kill $victim, $busy backend calls in flight"
  docker kill "$victim" >/dev/null
  sleep 4
  # A killed container stays down (docker kill counts as a manual stop); up
  # starts it again.
  say "starting $victim again (up --scale worker=4)"
  dc up -d --no-recreate --scale worker=4 >/dev/null 2>&1 || die "up --scale worker=4 failed"
  sleep 3
  touch "$work/stop"
  wait "$load_pid" || die "the load generator failed"
  load_pid=""
  accepted=$(wc -l <"$work/ledger")
  refused=$(wc -l <"$work/refused")
  say "load stopped: $accepted accepted, $refused refused; waiting for every accepted ID"
  [ "$refused" -eq 0 ] || die "requests refused under load: $(head -n 3 "$work/refused")"
  [ "$accepted" -ge 500 ] || die "only $accepted requests accepted: the load was too thin to mean much"
  ledger verify 120 "$busy" >"$work/verify" || die "the ledger does not check out: $(cat "$work/verify")"
  say "all $accepted accepted IDs succeeded ($(cat "$work/verify"))"
  wait_healthy 60 worker=4
}

# restart_ingress restarts the ingress and checks that every ID's status is
# still served (rebuilt from the events stream), then that it is healthy.
# The checker retries what the ingress does not answer yet, so it need not
# wait for the first healthcheck.
restart_ingress() {
  say "restarting the ingress"
  dc restart -t 15 ingress >/dev/null 2>&1 || die "restart ingress failed"
  ledger verify 60 >"$work/verify" || die "statuses lost across the ingress restart: $(cat "$work/verify")"
  say "after the restart, all $(wc -l <"$work/ledger") IDs still served as succeeded"
  wait_healthy 60 ingress=1
}

# monitoring checks, through Prometheus's published port, that it scrapes
# the ingress, every worker and the broker and has loaded the alerting rules.
# Prometheus starts with the rest (see the run below) so that it has found
# the workers by the time this runs.
monitoring() {
  local n_workers
  n_workers=$(workers | wc -l)
  say "checking prometheus's targets: the ingress, $n_workers workers, the broker"
  python3 - "http://127.0.0.1:$SLUICE_PROMETHEUS_PORT" "$n_workers" <<'PY' || die "Prometheus does not scrape everything"
import json, sys, time, urllib.request

base, n_workers = sys.argv[1], int(sys.argv[2])
want = {"sluice-ingress": 1, "sluice-worker": n_workers, "rabbitmq": 1}


def get(path):
    with urllib.request.urlopen(base + path, timeout=5) as r:
        return json.load(r)["data"]


deadline, up = time.monotonic() + 75, {}
while time.monotonic() < deadline:
    up = {}
    for t in get("/api/v1/targets")["activeTargets"]:
        if t["health"] == "up":
            up[t["labels"]["job"]] = up.get(t["labels"]["job"], 0) + 1
    if up == want:
        break
    time.sleep(2)
rules = [r for g in get("/api/v1/rules")["groups"] for r in g["rules"] if r["type"] == "alerting"]
print(f"compose-test.sh: targets up {up} (wanted {want}); {len(rules)} alerting rules loaded", file=sys.stderr)
sys.exit(0 if up == want and rules else 1)
PY
}

# down removes the project and checks that nothing of it is left.
down() {
  local vols left
  # shellcheck disable=SC2046
  vols=$(docker inspect -f '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}' $(project_ids "ps -a"))
  say "docker-compose down -v"
  dc --profile monitoring down -v --remove-orphans -t 20 >/dev/null 2>&1 || die "down -v failed"
  compose_up=0
  left="$(project_ids "ps -a") $(project_ids "network ls") $(project_ids "volume ls")"
  for v in $vols; do docker volume inspect "$v" >/dev/null 2>&1 && left="$left $v"; done
  [ -z "${left// /}" ] || die "left behind after down -v: $left"
  say "nothing left: no container, network or volume of $project"
}

# ---- the run -----------------------------------------------------------------------

exec 7>&1 8>&2
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

"$root/scripts/deps.sh" docker.io docker-compose debootstrap curl python3
work=$(mktemp -d "${TMPDIR:-/tmp}/compose-test.XXXXXX")

# One run at a time: runs share the engine, the images and their tags.
exec 9>/tmp/sluice-compose-test.lock
if ! flock -n 9; then
  say "waiting for another compose-test.sh run to finish (lock /tmp/sluice-compose-test.lock)"
  flock -w 900 9 || die "another compose-test.sh held the lock for 15 minutes"
fi

start_dockerd
remove_stale
make_base_images
build_images

export SLUICE_PUBLISH_ADDR=127.0.0.1 RABBITMQ_PASSWORD="pw-$RANDOM$RANDOM"
SLUICE_PORT=$(free_port)
SLUICE_RABBITMQ_UI_PORT=$(free_port)
SLUICE_PROMETHEUS_PORT=$(free_port)
SLUICE_GRAFANA_PORT=$(free_port)
export SLUICE_PORT SLUICE_RABBITMQ_UI_PORT SLUICE_PROMETHEUS_PORT SLUICE_GRAFANA_PORT
unset COMPOSE_FILE COMPOSE_PROFILES COMPOSE_PROJECT_NAME
base="http://127.0.0.1:$SLUICE_PORT"

say "up -d --scale worker=3 (project $project, ingress at $base)"
compose_up=1
dc up -d --scale worker=3 >"$work/up.log" 2>&1 || {
  cat "$work/up.log" >&2
  die "up failed"
}
# Prometheus of profile monitoring (Grafana is not packaged in Debian 12).
dc --profile monitoring up -d --no-deps prometheus >>"$work/up.log" 2>&1 || {
  cat "$work/up.log" >&2
  die "up prometheus failed"
}
wait_healthy 150 rabbitmq=1 backend=1 ingress=1 worker=3 prometheus=1
say "every container healthy: $(container_states | awk '{print $1}' | sort | uniq -c | awk '{printf "%s=%s ", $2, $1}')"
ports_on_loopback
one_request
scale_under_load
restart_ingress
monitoring
down
say "all checks passed in $((SECONDS - t0)) s"
