#!/usr/bin/env bash
# deps.sh installs the Debian packages sluice needs to build, test and run,
# and only those that are missing: it is silent and quick when nothing is.
# It runs apt-get as root, through sudo when not root, and otherwise prints
# the command to run. A temporary policy-rc.d keeps packages from starting
# system-wide services (rabbitmq-server a broker, docker.io a dockerd): tests
# start private ones. With package names as arguments it installs those
# instead, the same way: scripts/compose-test.sh asks for docker.io and more.
set -euo pipefail

packages=(pkg-config librabbitmq-dev libmicrohttpd-dev libjson-c-dev libcurl4-openssl-dev
  libssl-dev check rabbitmq-server curl gcc make python3 python3-yaml python3-jsonschema python3-jwt python3-cryptography
  openssl clang libclang-rt-dev docker-compose wrk nginx-light chromium)
[ $# -gt 0 ] && packages=("$@")
policy=/usr/sbin/policy-rc.d
backup=/usr/sbin/policy-rc.d.sluice-deps

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "deps.sh: missing packages: ${missing[*]}" >&2
  echo "deps.sh: run this script as root, or run as root (a system-wide RabbitMQ may then start):" >&2
  echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

restore_policy() {
  if "${as_root[@]}" test -e "$backup"; then
    "${as_root[@]}" mv -f "$backup" "$policy"
  else
    "${as_root[@]}" rm -f "$policy"
  fi
}

echo "deps.sh: installing ${missing[*]}"
# A backup left by an interrupted run is the original: keep it.
if "${as_root[@]}" test -e "$policy" && ! "${as_root[@]}" test -e "$backup"; then
  "${as_root[@]}" mv -f "$policy" "$backup"
fi
trap restore_policy EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# Exit status 101 tells invoke-rc.d that no service may be started.
printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee "$policy" >/dev/null
"${as_root[@]}" chmod 755 "$policy"

"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
