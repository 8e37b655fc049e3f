#!/usr/bin/env bash
# init-compose.sh — prepares validator-config/secrets for the single-host,
# four-node docker-compose.yaml network, playing all four organisations:
#
#   1. sawadm keygen         a validator key per node     secrets/validator-N/
#   2. sawtooth keygen       an admin key per organisation secrets/admins/ORG.*
#      coldchain keygen      the sensor gateway's key       secrets/gateway/
#   3. the shared Curve key pair for validator traffic      secrets/network/
#   4. genesis/create-genesis.sh                            secrets/genesis/genesis.batch
#
# On a real network each organisation does step 1 (and 2 for itself) on its
# own machines and sends only public keys to the founder: see
# docs/deploy-sawtooth.md. Existing keys are kept; pass --force to start over
# (this makes a new network: old data volumes will not match it).
#
# Needs docker (runs the Sawtooth tools in hyperledger/sawtooth-validator).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
config=$(cd "$here/.." && pwd)
secrets="$config/secrets"
SAWTOOTH_IMAGE=${SAWTOOTH_IMAGE:-hyperledger/sawtooth-validator:chime}
force=0
[[ "${1:-}" == "--force" ]] && force=1

fail() {
  echo "init-compose: $*" >&2
  exit 1
}
say() { printf '\033[1m[init]\033[0m %s\n' "$*"; }
command -v docker >/dev/null 2>&1 || fail "docker is needed to run the Sawtooth tools"

in_sawtooth() { # runs a command in the validator image with secrets/ mounted at the same path
  docker run --rm --user "$(id -u):$(id -g)" -e HOME=/tmp -v "$secrets:$secrets" "$SAWTOOTH_IMAGE" "$@"
}

if (( force )); then
  say "removing old keys and genesis in $secrets"
  rm -rf "${secrets:?}"
fi
mkdir -p "$secrets/admins" "$secrets/gateway" "$secrets/network" "$secrets/genesis"
chmod 700 "$secrets"

nodes=() orgs=()
while read -r node org _; do
  [[ -z "$node" || "$node" == \#* ]] && continue
  nodes+=("$node") orgs+=("$org")
done < "$here/members.conf"

# 1. Validator keys: `sawadm keygen` writes $SAWTOOTH_HOME/keys/validator.{priv,pub}.
for node in "${nodes[@]}"; do
  if [[ -s "$secrets/$node/validator.priv" ]]; then
    say "keeping $node's validator key"
    continue
  fi
  say "sawadm keygen for $node"
  mkdir -p "$secrets/$node/home/keys"   # sawadm refuses a missing key folder
  in_sawtooth env SAWTOOTH_HOME="$secrets/$node/home" sawadm keygen --quiet
  mv "$secrets/$node/home/keys/validator.priv" "$secrets/$node/home/keys/validator.pub" "$secrets/$node/"
  rm -rf "${secrets:?}/${node:?}/home"
done

# 2. Organisation admin keys and the gateway key.
for org in "${orgs[@]}"; do
  if [[ -s "$secrets/admins/$org.priv" ]]; then
    say "keeping $org's admin key"
    continue
  fi
  say "sawtooth keygen $org (admin key)"
  in_sawtooth sawtooth keygen --key-dir "$secrets/admins" --quiet "$org"
done
if [[ ! -s "$secrets/gateway/gateway.priv" ]]; then
  say "sawtooth keygen gateway (sensor gateway key; coldchain keygen gateway --key-dir … is equivalent)"
  in_sawtooth sawtooth keygen --key-dir "$secrets/gateway" --quiet gateway
fi
# The gateway signs readings batches, so transactor permissioning must allow it.
gateway_pub=$(tr -d '[:space:]' < "$secrets/gateway/gateway.pub")
touch "$secrets/transactors.txt"
grep -q "$gateway_pub" "$secrets/transactors.txt" || echo "$gateway_pub gateway" >> "$secrets/transactors.txt"

# 3. The Curve key pair every validator uses for peer traffic (Z85, 40 characters).
if [[ ! -s "$secrets/network/network_private_key" ]]; then
  say "generating the network (Curve) key pair"
  in_sawtooth python3 -c '
import sys, zmq
public, secret = zmq.curve_keypair()
folder = sys.argv[1]
open(folder + "/network_public_key", "w").write(public.decode() + "\n")
open(folder + "/network_private_key", "w").write(secret.decode() + "\n")
' "$secrets/network"
fi
chmod 600 "$secrets"/*/*.priv "$secrets/network/network_private_key"
# The gateway container runs as its own user (uid 10001) and mounts secrets/gateway
# read-only: let it read its key. secrets/ itself stays 700, so other users of
# this host still cannot reach it. (The Sawtooth containers run as root.)
chmod 755 "$secrets/gateway"
chmod 644 "$secrets/gateway/gateway.priv"

# 4. Genesis, signed by the founder (first line of members.conf).
COLDCHAIN_SAWTOOTH_IN_DOCKER=1 SAWTOOTH_IMAGE="$SAWTOOTH_IMAGE" "$here/create-genesis.sh" "$secrets"

say "ready: cd validator-config && docker compose up -d"
