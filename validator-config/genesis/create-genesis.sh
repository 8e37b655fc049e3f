#!/usr/bin/env bash
# create-genesis.sh — the network founder builds the genesis batch of a
# coldchain Sawtooth PBFT network. Run once, by one organisation (the first
# line of members.conf), before any validator starts.
#
#   genesis/create-genesis.sh [SECRETS_DIR]        (default: validator-config/secrets)
#
# Inputs, in SECRETS_DIR:
#   NODE/validator.pub          every member's validator public key (each
#                               organisation runs `sawadm keygen` on its own node
#                               and sends only this .pub file)
#   admins/ORG.pub              every organisation's admin public key
#                               (`sawtooth keygen` or `coldchain keygen`)
#   admins/FOUNDER.priv         the founder's admin private key (signs genesis)
#   transactors.txt (optional)  more public keys allowed to submit from day one
#                               (gateways, first agents), one per line, # comments
# plus genesis/settings.conf and genesis/members.conf beside this script.
# Output: SECRETS_DIR/genesis/genesis.batch, for the founder's validator.
#
# Sawtooth tools (sawset, sawtooth, sawadm) run natively when installed, else
# inside the hyperledger/sawtooth-validator image (override with SAWTOOTH_IMAGE).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
secrets_arg=${1:-$here/../secrets}
[[ -d "$secrets_arg" ]] || { echo "create-genesis: no secrets folder at $secrets_arg" >&2; exit 1; }
secrets=$(cd "$secrets_arg" && pwd)
out="$secrets/genesis"
SAWTOOTH_IMAGE=${SAWTOOTH_IMAGE:-hyperledger/sawtooth-validator:chime}

fail() {
  echo "create-genesis: $*" >&2
  exit 1
}
say() { printf '\033[1m[genesis]\033[0m %s\n' "$*"; }

# Runs a Sawtooth command-line tool, natively or in the validator image (the
# secrets folder is mounted at the same path, so file arguments work in both).
sawtooth_tool() {
  if [[ -z "${COLDCHAIN_SAWTOOTH_IN_DOCKER:-}" ]] && command -v "$1" >/dev/null 2>&1; then
    (cd "$out" && "$@")
  else
    command -v docker >/dev/null 2>&1 || fail "$1 is not installed and docker is not available to run $SAWTOOTH_IMAGE"
    docker run --rm --user "$(id -u):$(id -g)" -e HOME=/tmp \
      -v "$secrets:$secrets" -w "$out" "$SAWTOOTH_IMAGE" "$@"
  fi
}

read_key() { # FILE → the 66-hex public key it holds
  [[ -r "$1" ]] || fail "missing public key file $1"
  local key
  key=$(tr -d '[:space:]' < "$1")
  [[ "$key" =~ ^0[23][0-9a-f]{64}$ ]] || fail "$1 does not hold a compressed secp256k1 public key (66 hex starting 02/03)"
  printf '%s' "$key"
}

join() { local IFS="$1"; shift; printf '%s' "$*"; }

# --- inputs ---------------------------------------------------------------
nodes=() orgs=()
while read -r node org _; do
  [[ -z "$node" || "$node" == \#* ]] && continue
  [[ -n "$org" ]] || fail "members.conf: line for $node names no organisation"
  nodes+=("$node") orgs+=("$org")
done < "$here/members.conf"
(( ${#nodes[@]} >= 4 )) || fail "members.conf lists ${#nodes[@]} members; PBFT needs at least 4"
founder=${orgs[0]}
founder_key="$secrets/admins/$founder.priv"
[[ -r "$founder_key" ]] || fail "the founder's admin private key $founder_key is missing"

validator_keys=() admin_keys=()
for i in "${!nodes[@]}"; do
  validator_keys+=("\"$(read_key "$secrets/${nodes[$i]}/validator.pub")\"")
  admin_keys+=("$(read_key "$secrets/admins/${orgs[$i]}.pub")")
done
members="[$(join , "${validator_keys[@]}")]"
admins=$(join , "${admin_keys[@]}")
threshold=$(( ${#admin_keys[@]} / 2 + 1 ))

transactors=("${admin_keys[@]}")
if [[ -r "$secrets/transactors.txt" ]]; then
  while read -r key _; do
    [[ -z "$key" || "$key" == \#* ]] && continue
    [[ "$key" =~ ^0[23][0-9a-f]{64}$ ]] || fail "transactors.txt: $key is not a 66-hex public key"
    transactors+=("$key")
  done < "$secrets/transactors.txt"
fi
rules=()
for key in "${transactors[@]}"; do rules+=("PERMIT_KEY $key"); done

settings=()
while IFS= read -r line; do
  [[ -z "$line" || "$line" == \#* ]] && continue
  [[ "$line" == *=* ]] || fail "settings.conf: '$line' is not KEY=VALUE"
  settings+=("$line")
done < "$here/settings.conf"

mkdir -p "$out"
rm -f "$out"/*.batch
say "founder: $founder; ${#nodes[@]} PBFT members; settings votes need $threshold of ${#admin_keys[@]} admins"

# --- 1. the founder becomes the (temporary) only settings admin ------------
say "1/7 sawset genesis"
sawtooth_tool sawset genesis --key "$founder_key" -o config-genesis.batch

# --- 2. consensus and network settings --------------------------------------
say "2/7 sawset proposal create (PBFT members, consensus, allowed families)"
sawtooth_tool sawset proposal create --key "$founder_key" -o config-consensus.batch \
  "sawtooth.consensus.pbft.members=$members" "${settings[@]}"

# --- 3. coldchain admins and identity admins --------------------------------
say "3/7 sawset proposal create (coldchain.admins, sawtooth.identity.allowed_keys)"
sawtooth_tool sawset proposal create --key "$founder_key" -o config-admins.batch \
  "coldchain.admins=$admins" "sawtooth.identity.allowed_keys=$admins"

# --- 4. transactor permissioning: only listed keys may sign -----------------
say "4/7 sawtooth identity policy create coldchain_transactors (${#transactors[@]} keys)"
sawtooth_tool sawtooth identity policy create --key "$founder_key" -o identity-policy.batch \
  coldchain_transactors "${rules[@]}"
say "5/7 sawtooth identity role create transactor.batch_signer / transactor.transaction_signer"
sawtooth_tool sawtooth identity role create --key "$founder_key" -o identity-role-batch.batch \
  transactor.batch_signer coldchain_transactors
sawtooth_tool sawtooth identity role create --key "$founder_key" -o identity-role-transaction.batch \
  transactor.transaction_signer coldchain_transactors

# --- 6. hand settings changes to all organisations (majority vote) ----------
say "6/7 sawset proposal create (sawtooth.settings.vote.authorized_keys, approval_threshold=$threshold)"
sawtooth_tool sawset proposal create --key "$founder_key" -o config-vote-keys.batch \
  "sawtooth.settings.vote.authorized_keys=$admins"
sawtooth_tool sawset proposal create --key "$founder_key" -o config-vote-threshold.batch \
  "sawtooth.settings.vote.approval_threshold=$threshold"

# --- 7. one genesis batch, in this order --------------------------------------
say "7/7 sawadm genesis"
sawtooth_tool sawadm genesis -o genesis.batch \
  config-genesis.batch config-consensus.batch config-admins.batch \
  identity-policy.batch identity-role-batch.batch identity-role-transaction.batch \
  config-vote-keys.batch config-vote-threshold.batch

[[ -s "$out/genesis.batch" ]] || fail "sawadm genesis did not write $out/genesis.batch"
say "wrote $out/genesis.batch; give it to ${nodes[0]} (COLDCHAIN_GENESIS_NODE=yes) and start the network"
