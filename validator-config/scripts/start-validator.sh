#!/usr/bin/env bash
# Starts one coldchain validator inside the hyperledger/sawtooth-validator image.
#
#   start-validator.sh            (docker-compose.yaml runs it as the entrypoint)
#
# Expects (mounted by docker-compose.yaml):
#   /coldchain/validator.toml.in     this node's nodes/validator-N/validator.toml
#   /etc/sawtooth/keys/validator.priv + .pub   this node's key (sawadm keygen)
#   /coldchain/network/network_public_key, network_private_key   shared Curve pair
#   /coldchain/genesis/genesis.batch            only on the genesis node
# Environment:
#   COLDCHAIN_GENESIS_NODE=yes    on the one node that creates the genesis block
#
# It writes /etc/sawtooth/validator.toml with the network key pair filled in,
# hands the genesis batch to the validator on the genesis node's first start
# only, then runs sawtooth-validator in the foreground.
set -euo pipefail

template=/coldchain/validator.toml.in
network_dir=/coldchain/network
genesis_batch=/coldchain/genesis/genesis.batch
data_dir=/var/lib/sawtooth

fail() {
  echo "start-validator: $*" >&2
  exit 1
}

[[ -r "$template" ]] || fail "no validator configuration at $template; mount nodes/validator-N/validator.toml there"
[[ -r /etc/sawtooth/keys/validator.priv ]] \
  || fail "no validator key at /etc/sawtooth/keys/validator.priv; run 'sawadm keygen' for this node (genesis/init-compose.sh does it for the compose network)"
[[ -r "$network_dir/network_public_key" && -r "$network_dir/network_private_key" ]] \
  || fail "no network key pair in $network_dir; get it from the network founder (genesis/init-compose.sh creates it for the compose network)"

python3 - "$template" /etc/sawtooth/validator.toml "$network_dir" <<'PY'
import sys

template, target, network_dir = sys.argv[1:4]
keys = {}
for kind in ("public", "private"):
    with open("%s/network_%s_key" % (network_dir, kind)) as f:
        key = f.read().strip()
    if len(key) != 40 or "'" in key:
        sys.exit("start-validator: %s/network_%s_key must hold 40 Z85 characters "
                 "(a ZeroMQ Curve key), found %d characters" % (network_dir, kind, len(key)))
    keys[kind] = key
with open(template) as f:
    text = f.read()
for kind, marker in (("public", "@NETWORK_PUBLIC_KEY@"), ("private", "@NETWORK_PRIVATE_KEY@")):
    if marker not in text:
        sys.exit("start-validator: %s has no %s marker; keep network_%s_key = '%s'"
                 % (template, marker, kind, marker))
    text = text.replace(marker, keys[kind])
with open(target, "w") as f:
    f.write(text)
PY
chmod 600 /etc/sawtooth/validator.toml

# The genesis node creates block 0 from genesis.batch the first time it starts;
# every other node (and the genesis node later) joins the existing chain.
if [[ "${COLDCHAIN_GENESIS_NODE:-no}" == "yes" && ! -e "$data_dir/block-chain-id" ]]; then
  [[ -r "$genesis_batch" ]] || fail "this is the genesis node but $genesis_batch is missing; run genesis/create-genesis.sh"
  if [[ ! -e "$data_dir/genesis.batch" ]]; then
    cp "$genesis_batch" "$data_dir/genesis.batch"
    echo "start-validator: creating the genesis block from $genesis_batch"
  fi
fi

exec sawtooth-validator -v
