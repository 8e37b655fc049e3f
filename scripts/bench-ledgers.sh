#!/usr/bin/env bash
# bench-ledgers.sh — readings/s committed end to end (simulated loggers →
# Mosquitto → sensor gateway → ledger) on the embedded node, a real single
# Sawtooth validator (devmode) and a real 4-validator PBFT network (patched
# engine), with the three `coldchain tp` processes on every real validator.
#
#   scripts/bench-ledgers.sh [embedded|single|pbft|all] [ledger_bench run options]
#
# Options after the ledger name go to every run, after the defaults below, so
# they win: e.g. `scripts/bench-ledgers.sh pbft --devices 50 --rate 400`.
# Defaults: 20 loggers × 1 000 readings/s (20 000/s), 100 readings per MQTT
# message, 60 s; gateway max_readings 5000, max_age_ms 500,
# max_transactions_per_batch 50, max_in_flight_batches 8 (see
# docs/benchmarks/ledgers.md for why).
#
# Needs Mosquitto on 127.0.0.1:1883 (scripts/setup.sh) and, for single/pbft,
# the real Sawtooth stack (scripts/sawtooth.sh build; built on first use).
# Everything this script starts is stopped when it ends (also on Ctrl-C).
#
# Environment:
#   BENCH_DIR       working folder (default: a new folder under /tmp); keys, logs
#                   of the validators and TPs, and results.jsonl (one JSON line per run)
#   BENCH_SKIP_BUILD=1  use the binaries already built (no cargo)
#   BENCH_BIN_DIR   folder holding coldchain and examples/ledger_bench
#                   (default: $CARGO_TARGET_DIR/release)
#   CARGO_TARGET_DIR    where cargo builds (default: <repo>/target)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
sawtooth=$repo/scripts/sawtooth.sh
which=${1:-all}
(($#)) && shift
case $which in
  embedded | single | pbft | all) ;;
  -h | --help | help)
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "usage: $0 [embedded|single|pbft|all] [ledger_bench run options]" >&2
    exit 2
    ;;
esac
extra=("$@")

say() { printf '[bench-ledgers] %s\n' "$*" >&2; }
fail() {
  printf '[bench-ledgers] error: %s\n' "$*" >&2
  exit 1
}

dir=${BENCH_DIR:-$(mktemp -d /tmp/coldchain-bench-ledgers.XXXXXX)}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
results=$dir/results.jsonl
say "working folder $dir; results in $results"

(exec 3<> /dev/tcp/127.0.0.1/1883) 2> /dev/null \
  || fail "no MQTT broker on 127.0.0.1:1883 (start Mosquitto: scripts/setup.sh, or service mosquitto start)"

if [[ -z "${BENCH_SKIP_BUILD:-}" ]]; then
  say "building coldchain and ledger_bench (release)"
  (cd "$repo" && CARGO_TARGET_DIR=$target cargo build --release -p coldchain --bin coldchain \
    -p coldchain-sensors --example ledger_bench) >&2
fi
bin_dir=${BENCH_BIN_DIR:-$target/release}
coldchain=$bin_dir/coldchain
bench=$bin_dir/examples/ledger_bench
[[ -x $coldchain && -x $bench ]] || fail "missing $coldchain or $bench (build them, or unset BENCH_SKIP_BUILD)"

# Keys: admin (coldchain.admins / PBFT founder), maker and carrier agents, gateway.
declare -A pub
while read -r name key; do pub[$name]=$key; done < <("$bench" keys --dir "$dir/keys")

defaults=(--devices 20 --rate 1000 --per-message 100 --seconds 60
  --max-readings 5000 --max-age-ms 500 --max-tx-per-batch 50 --max-in-flight 8)

# What is running, for the cleanup.
ledger_dirs=()
tp_dirs=()

# Ends the TP processes recorded in DIR/bench-pids (each its own session).
stop_tps() { # DIR
  local f pid
  for f in "$1"/bench-pids/*.pid; do
    [[ -e $f ]] || continue
    read -r pid _ < "$f" || continue
    kill -TERM -- "-$pid" 2> /dev/null || kill -TERM "$pid" 2> /dev/null || true
  done
  sleep 1
  for f in "$1"/bench-pids/*.pid; do
    [[ -e $f ]] || continue
    read -r pid _ < "$f" || continue
    kill -KILL -- "-$pid" 2> /dev/null || true
    rm -f "$f"
  done
}

cleanup() {
  local d
  for d in "${tp_dirs[@]}"; do stop_tps "$d"; done
  for d in "${ledger_dirs[@]}"; do "$sawtooth" stop --dir "$d" > /dev/null 2>&1 || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts `coldchain tp registry|custody|sensor --connect EP` for validator N,
# detached, pid in DIR/bench-pids/tp-FAMILY-N.pid, and waits for registration.
start_tps() { # DIR N ENDPOINT
  local d=$1 n=$2 endpoint=$3 family log i
  mkdir -p "$d/bench-pids" "$d/bench-logs"
  for family in registry custody sensor; do
    log=$d/bench-logs/tp-$family-$n.log
    : > "$log"
    # shellcheck disable=SC2016 # the inner bash expands these: it records its own pid, then execs
    COLDCHAIN_LOG=info setsid bash -c 'echo $$ > "$0"; exec "$@"' \
      "$d/bench-pids/tp-$family-$n.pid" "$coldchain" tp "$family" --connect "$endpoint" \
      < /dev/null >> "$log" 2>&1 &
  done
  for family in registry custody sensor; do
    log=$d/bench-logs/tp-$family-$n.log
    for i in $(seq 1 300); do
      grep -q "registered coldchain-" "$log" 2> /dev/null && break
      ((i < 300)) || fail "coldchain tp $family did not register with $endpoint in 60 s (see $log)"
      sleep 0.2
    done
  done
}

run_bench() { # LABEL ARGS...
  local label=$1
  shift
  say "running ledger_bench on $label (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
  "$bench" run "$@" --keys "$dir/keys" "${defaults[@]}" "${extra[@]}" \
    --label "$label" --json "$results" | tee -a "$dir/$label.txt"
}

bench_embedded() {
  run_bench embedded --embedded
}

bench_single() {
  local d=$dir/single
  ledger_dirs+=("$d")
  tp_dirs+=("$d")
  say "starting a real single validator (devmode) in $d"
  "$sawtooth" single --dir "$d" --admin "${pub[admin]}" > /dev/null
  # shellcheck disable=SC1091
  source "$d/sawtooth.env"
  start_tps "$d" 0 "$COMPONENT"
  run_bench single --url "$REST_URL" --component "$COMPONENT" --admin-key "$dir/keys/admin.priv" \
    --cpu-pids "$d/pids" --cpu-pids "$d/bench-pids"
  stop_tps "$d"
  "$sawtooth" stop --dir "$d" > /dev/null
}

bench_pbft() {
  local d=$dir/pbft n var
  ledger_dirs+=("$d")
  tp_dirs+=("$d")
  say "starting a real 4-validator PBFT network (patched engine) in $d"
  "$sawtooth" network --dir "$d" --engine patched --admin-key "$dir/keys/admin.priv" \
    --transactor "${pub[maker]}" --transactor "${pub[carrier]}" --transactor "${pub[gateway]}" > /dev/null
  # shellcheck disable=SC1091
  source "$d/sawtooth.env"
  for n in 0 1 2 3; do
    var=COMPONENT_$n
    start_tps "$d" "$n" "${!var}"
  done
  run_bench pbft --url "$REST_URL" --component "$COMPONENT" --admin-key "$dir/keys/admin.priv" \
    --cpu-pids "$d/pids" --cpu-pids "$d/bench-pids"
  stop_tps "$d"
  "$sawtooth" stop --dir "$d" > /dev/null
}

case $which in
  embedded) bench_embedded ;;
  single) bench_single ;;
  pbft) bench_pbft ;;
  all)
    bench_embedded
    bench_single
    bench_pbft
    ;;
esac
say "done; results: $results"
