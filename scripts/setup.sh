#!/usr/bin/env bash
# Installs the system packages coldchain needs and starts the services its
# tests use, when they are missing. Safe to run again: it only acts on what is
# absent. Debian/Ubuntu; needs root or sudo for apt-get.
#   scripts/setup.sh          build + demo needs (libzmq, pkg-config, protoc, libssl for MQTT TLS)
#   scripts/setup.sh --test   also Mosquitto, PostgreSQL and Chromium for the tests, and
#                             a Python venv with the official Sawtooth Python SDK
#                             (tests/python/requirements.txt) at
#                             ${COLDCHAIN_PYTHON_VENV:-~/.cache/coldchain/sawtooth-python}
set -euo pipefail

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

missing=()
need_pkg() { dpkg -s "$1" >/dev/null 2>&1 || missing+=("$1"); }
need_pkg libzmq3-dev
need_pkg pkg-config
need_pkg libssl-dev
need_pkg protobuf-compiler
need_pkg ca-certificates
need_pkg gcc
if [[ $want_test -eq 1 ]]; then
  need_pkg mosquitto
  need_pkg openssl
  need_pkg postgresql
  need_pkg chromium
  need_pkg python3
  need_pkg python3-venv
  # tests/guides.rs: the guides' commands (curl) in a network namespace (unshare, ip)
  need_pkg curl
  need_pkg util-linux
  need_pkg iproute2
fi
if [[ ${#missing[@]} -gt 0 ]]; then
  say "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [[ $want_test -eq 1 ]]; then
  if ! port_open 1883; then
    say "starting Mosquitto on 127.0.0.1:1883"
    $SUDO mosquitto -d -c /etc/mosquitto/mosquitto.conf 2>/dev/null || $SUDO mosquitto -d -p 1883
    for _ in $(seq 1 50); do port_open 1883 && break; sleep 0.1; done
  fi
  if ! port_open 5432; then
    say "starting PostgreSQL on 127.0.0.1:5432"
    version=$(ls /etc/postgresql | sort -V | tail -1)
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 100); do port_open 5432 && break; sleep 0.1; done
  fi
  # The tests connect as postgres/postgres to database "test" over TCP.
  as_postgres() { if [[ $(id -u) -eq 0 ]]; then su postgres -c "$1"; else sudo -u postgres sh -c "$1"; fi; }
  if ! PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d test -tAc 'select 1' >/dev/null 2>&1; then
    say "preparing PostgreSQL role and database for the tests"
    as_postgres "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
    as_postgres "psql -tAc \"SELECT 1 FROM pg_database WHERE datname='test'\" | grep -q 1 || createdb test"
  fi

  # tests/python_sdk.rs runs the official Sawtooth Python SDK 1.2.5 on Python
  # 3.11-3.13 (with the shims of tests/python/sawtooth_sdk_asyncio.py).
  venv="${COLDCHAIN_PYTHON_VENV:-$HOME/.cache/coldchain/sawtooth-python}"
  requirements="$(cd "$(dirname "$0")/.." && pwd)/tests/python/requirements.txt"
  wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
  if [[ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$wanted" ]]; then
    python=""
    for candidate in python3 python3.13 python3.12 python3.11; do
      if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' 2>/dev/null; then
        python="$candidate"
        break
      fi
    done
    if [[ -z "$python" ]]; then
      say "WARNING: no Python 3.11-3.13 found; the Sawtooth Python SDK test (tests/python_sdk.rs) will fail"
    else
      say "creating the Sawtooth Python SDK venv at $venv ($("$python" --version))"
      rm -rf "$venv"
      if "$python" -m venv "$venv" &&
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"; then
        echo "$wanted" >"$venv/.requirements.sha256"
      else
        say "WARNING: could not install $requirements; the Sawtooth Python SDK test will fail"
      fi
    fi
  fi
fi
say "system ready"
