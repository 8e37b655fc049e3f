#!/usr/bin/env bash
# All tests: installs missing system packages, starts Mosquitto and PostgreSQL
# if they are not running, creates the Sawtooth Python SDK venv if missing,
# builds the real Hyperledger Sawtooth 1.2.6 stack once (scripts/sawtooth.sh
# build: ~15 min on a 2-core machine the first time, a no-op later), then
# runs every test of the workspace. The tests against the real validator and
# PBFT network fail, never skip, when that stack is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
scripts/sawtooth.sh build
export COLDCHAIN_TEST_POSTGRES="${COLDCHAIN_TEST_POSTGRES:-postgres://postgres:postgres@127.0.0.1:5432/test}"
export COLDCHAIN_TEST_MQTT="${COLDCHAIN_TEST_MQTT:-127.0.0.1:1883}"
export COLDCHAIN_TEST_SAWTOOTH_PYTHON="${COLDCHAIN_TEST_SAWTOOTH_PYTHON:-${COLDCHAIN_PYTHON_VENV:-$HOME/.cache/coldchain/sawtooth-python}/bin/python}"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@"
  cargo test --workspace --locked --doc
else
  cargo test --workspace --locked --no-fail-fast "$@"
fi
