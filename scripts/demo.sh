#!/usr/bin/env bash
# The main job: the whole cold-chain story on the embedded node.
# Installs missing system packages, builds, and runs `coldchain demo`.
# Extra arguments go to `coldchain demo` (e.g. --exit to stop when the story ends).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo run --release --locked -- demo "$@"
