#!/usr/bin/env bash
# sawtooth.sh — builds and runs the real Hyperledger Sawtooth 1.2.6 stack
# natively (no Docker), for coldchain's tests and for people who want a real
# validator on their own machine.
#
#   scripts/sawtooth.sh build
#       Compiles everything once into ${COLDCHAIN_SAWTOOTH_HOME:-~/.cache/coldchain/sawtooth-1.2.6}
#       from the tarballs in ${COLDCHAIN_SAWTOOTH_SRC:-<repo>/../shared/sawtooth}:
#       a Python venv (validator's Python half, REST API, sawadm/sawset/sawtooth,
#       signing), the validator, settings-tp, identity-tp, devmode-engine-rust and
#       the PBFT engine twice (stock 1.0.3 as pbft-engine-stock, and with
#       validator-config/pbft/0001-prepare-quorum-2f.patch as pbft-engine).
#       Wrappers land in <cache>/bin: `PATH=<cache>/bin:$PATH sawset ...` works.
#       A second run is a fast no-op (stamp files).
#   scripts/sawtooth.sh single  --dir DIR --admin PUBKEY [--admin PUBKEY ...]
#       One validator with devmode consensus, REST API and settings-tp on free
#       loopback ports. Writes DIR/sawtooth.env (REST_URL, COMPONENT).
#   scripts/sawtooth.sh network --dir DIR [--engine patched|stock]
#                              [--admin-key FILE.priv] [--transactor PUBKEY ...]
#       Four validators with PBFT (one per line of validator-config/genesis/
#       members.conf), genesis by validator-config/genesis/create-genesis.sh.
#       Writes DIR/sawtooth.env (REST_URL_i, COMPONENT_i, REST_URL, COMPONENT).
#   scripts/sawtooth.sh kill       --dir DIR --node N   kill -9 validator N and its engine
#   scripts/sawtooth.sh start-node --dir DIR --node N   start them again (same data, same ports)
#   scripts/sawtooth.sh stop       --dir DIR            end everything started in DIR
#
# Everything runs detached (setsid) with logs in DIR/logs and pids in DIR/pids.
# Known quirks of the 1.2 stack handled here: the validator ignores SIGTERM
# (stop sends SIGKILL after a grace period); devmode-engine-rust dies when its
# validator goes away (kill/start-node handle validator and engine together).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${COLDCHAIN_SAWTOOTH_HOME:-$HOME/.cache/coldchain/sawtooth-1.2.6}
SRC=${COLDCHAIN_SAWTOOTH_SRC:-$repo/../shared/sawtooth}
SYS_PYTHON=${COLDCHAIN_SAWTOOTH_PYTHON:-/usr/bin/python3}

CORE_TGZ=sawtooth-core-1.2.6.tar.gz
DEVMODE_TGZ=sawtooth-devmode-1.2.4.tar.gz
PBFT_TGZ=sawtooth-pbft-1.0.3.tar.gz
LOG4RS_TGZ="log4rs-config-loading.tar.gz"
PBFT_PATCH=$repo/validator-config/pbft/0001-prepare-quorum-2f.patch
GENESIS_DIR=$repo/validator-config/genesis

# Bump when a part's recipe changes: its stamp no longer matches and it is rebuilt.
RECIPE=3

# The venv's packages, pinned (see shared/sawtooth/README.md for why these).
PY_REQUIREMENTS=(
  'setuptools<70' wheel
  protobuf==3.20.3 secp256k1==0.14.0 cffi==2.1.1 pycparser==3.12 sawtooth-sdk==1.2.5
  aiohttp==3.8.6 yarl==1.8.2 multidict==6.9.1 frozenlist==1.8.0 aiosignal==1.4.0
  async-timeout==4.0.3 attrs==26.1.0 charset-normalizer==3.5.3 idna==3.21
  cachetools==5.5.2 cbor==1.0.0 colorlog==6.12.0 lmdb==1.6.2 requests==2.32.3
  urllib3==2.2.3 certifi toml==0.10.2 PyYAML==6.0.3 pyzmq==27.3.0 netifaces==0.11.0
  pyformance==0.4 six==1.17.0
)
APT_PACKAGES=(
  ca-certificates curl gcc g++ make patch pkg-config protobuf-compiler
  libssl-dev libzmq3-dev liblmdb-dev libffi-dev
  python3 python3-dev python3-venv autoconf automake libtool
)

# ----------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------

say() { printf '[sawtooth] %s\n' "$*" >&2; }
fail() {
  printf '[sawtooth] error: %s\n' "$*" >&2
  exit 1
}

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

sha_of() { sha256sum "$@" | cut -c1-16 | tr -d '\n'; }

VENV=$CACHE/venv
VPY=$VENV/bin/python3
CORE=$CACHE/src/sawtooth-core-1.2.6
LIBEXEC=$CACHE/libexec
BIN=$CACHE/bin
LOGS=$CACHE/logs
STAMPS=$CACHE/stamps

# ----------------------------------------------------------------------------
# build
# ----------------------------------------------------------------------------

# Fingerprints: a part is rebuilt when its stamp does not hold its fingerprint.
compute_fingerprints() {
  local f
  for f in "$CORE_TGZ" "$DEVMODE_TGZ" "$PBFT_TGZ" "$LOG4RS_TGZ"; do
    [[ -r "$SRC/$f" ]] || fail "missing source tarball $SRC/$f (set COLDCHAIN_SAWTOOTH_SRC to the folder holding the Sawtooth tarballs)"
  done
  [[ -r "$PBFT_PATCH" ]] || fail "missing $PBFT_PATCH"
  local core devmode pbft log4rs patch reqs
  core=$(sha_of "$SRC/$CORE_TGZ")
  devmode=$(sha_of "$SRC/$DEVMODE_TGZ")
  pbft=$(sha_of "$SRC/$PBFT_TGZ")
  log4rs=$(sha_of "$SRC/$LOG4RS_TGZ")
  patch=$(sha_of "$PBFT_PATCH")
  reqs=$(printf '%s\n' "${PY_REQUIREMENTS[@]}" "$SYS_PYTHON" | sha_of -)
  declare -gA FP=(
    [core-src]="$RECIPE-$core"
    [venv]="$RECIPE-$reqs"
    [python]="$RECIPE-$core-$reqs"
    [validator]="$RECIPE-$core-$reqs"
    [settings-tp]="$RECIPE-$core"
    [identity-tp]="$RECIPE-$core"
    [devmode]="$RECIPE-$devmode"
    [pbft-stock]="$RECIPE-$pbft-$log4rs"
    [pbft-patched]="$RECIPE-$pbft-$log4rs-$patch"
  )
}

PARTS=(core-src venv python validator settings-tp identity-tp devmode pbft-stock pbft-patched)

# What each part leaves behind: a stamp alone does not make a part built.
part_outputs() {
  case $1 in
    core-src) echo "$CORE/validator/sawtooth_validator/__init__.py" ;;
    venv) echo "$VPY" ;;
    python) echo "$CORE/cli/sawtooth_cli/protobuf/setting_pb2.py $CORE/validator/sawtooth_validator/protobuf/validator_pb2.py" ;;
    validator) echo "$LIBEXEC/sawtooth-validator $CACHE/lib/libsawtooth_validator.so" ;;
    settings-tp) echo "$LIBEXEC/settings-tp" ;;
    identity-tp) echo "$LIBEXEC/identity-tp" ;;
    devmode) echo "$LIBEXEC/devmode-engine-rust" ;;
    pbft-stock) echo "$LIBEXEC/pbft-engine-stock" ;;
    pbft-patched) echo "$LIBEXEC/pbft-engine" ;;
  esac
}
is_built() {
  [[ "$(cat "$STAMPS/$1" 2>/dev/null)" == "${FP[$1]}" ]] || return 1
  local f
  for f in $(part_outputs "$1"); do [[ -e "$f" ]] || return 1; done
}
mark_built() { printf '%s' "${FP[$1]}" > "$STAMPS/$1"; }
unmark() { rm -f "$STAMPS/$1"; }

# Runs one build step with its output in $LOGS/build-PART.log; on failure
# says which part failed and shows the end of its log.
run_logged() {
  local part=$1
  shift
  local log=$LOGS/build-$part.log
  if ! ("$@") >> "$log" 2>&1; then
    echo "---- last lines of $log ----" >&2
    tail -n 40 "$log" | cut -c1-400 >&2
    echo "----" >&2
    fail "building $part failed; full log: $log"
  fi
}

start_part() { # PART MESSAGE
  : > "$LOGS/build-$1.log"
  say "$2"
  PART_T0=$SECONDS
}
end_part() {
  mark_built "$1"
  say "  $1 done in $((SECONDS - PART_T0)) s"
}

ensure_apt_packages() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || fail "missing Debian packages (${missing[*]}) and no sudo; install them as root"
    sudo=(sudo)
  fi
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  local log=$LOGS/apt.log
  { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
    > "$log" 2>&1 || { tail -n 20 "$log" >&2; fail "apt-get install ${missing[*]} failed; log: $log"; }
}

find_cargo() {
  if ! command -v cargo >/dev/null 2>&1; then
    [[ -x "$HOME/.cargo/bin/cargo" ]] && PATH="$HOME/.cargo/bin:$PATH"
  fi
  command -v cargo >/dev/null 2>&1 || fail "cargo not found: install a Rust toolchain (rustup) first"
}

# cargo build --release in DIR with the shared target folder, niced (2-core machines).
# shellcheck disable=SC2317 # called through run_logged
cargo_release() { # DIR [cargo args...]
  local dir=$1
  shift
  # PYTHON_SYS_EXECUTABLE: the validator's python3-sys must link the venv's
  # libpython (the system one), not pyenv's or another python3 on PATH
  # CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS: these old crates have no lock
  # file; never resolve a dependency to a release that needs a newer rustc.
  cd "$dir" && CARGO_TARGET_DIR="$CACHE/target" CARGO_TERM_COLOR=never \
    CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback \
    PYTHON_SYS_EXECUTABLE="$SYS_PYTHON" nice -n 10 cargo build --release "$@"
}

extract() { # TARBALL DEST_PARENT → replaces the folder the tarball holds
  local tgz=$1 parent=$2 top
  top=$(tar tzf "$tgz" | head -1 | cut -d/ -f1)
  [[ -n "$top" ]] || fail "cannot read $tgz"
  rm -rf "${parent:?}/$top"
  mkdir -p "$parent"
  tar xzf "$tgz" -C "$parent"
  printf '%s' "$parent/$top"
}

build_core_src() {
  start_part core-src "extracting sawtooth-core 1.2.6"
  run_logged core-src extract "$SRC/$CORE_TGZ" "$CACHE/src"
  [[ -d "$CORE/validator" ]] || fail "unexpected layout in $CORE_TGZ (no sawtooth-core-1.2.6/validator)"
  unmark python
  end_part core-src
}

build_venv() {
  start_part venv "creating the Python venv (first time, ~1 min)"
  [[ -x "$SYS_PYTHON" ]] || fail "no system Python at $SYS_PYTHON (apt-get install python3 python3-venv)"
  rm -rf "$VENV"
  run_logged venv "$SYS_PYTHON" -m venv "$VENV"
  run_logged venv "$VPY" -m pip install --no-input 'setuptools<70' wheel
  run_logged venv "$VPY" -m pip install --no-input "${PY_REQUIREMENTS[@]}"
  run_logged venv "$VPY" -c 'import pkg_resources, sawtooth_signing, secp256k1, zmq, lmdb, aiohttp, google.protobuf'
  unmark python
  end_part venv
}

# Generates the *_pb2.py modules with the system protoc (bin/protogen needs
# grpcio-tools), then rewrites the pre-3.10 asyncio code for Python 3.11.
build_python() {
  start_part python "generating protobuf modules and fixing the Python code for Python 3.11"
  run_logged python "$VPY" - "$CORE" <<'PY'
import glob, os, re, subprocess, sys, tempfile
core = sys.argv[1]
targets = [
    ("protos", "cli", "sawtooth_cli/protobuf"),
    ("protos", "validator", "sawtooth_validator/protobuf"),
    ("protos", "rest_api", "sawtooth_rest_api/protobuf"),
    ("families/settings/protos", "cli", "sawtooth_cli/protobuf"),
    ("families/identity/protos", "cli", "sawtooth_cli/protobuf"),
]
for src, base, pkg in targets:
    src_dir = os.path.join(core, src)
    out_dir = os.path.join(core, base)
    os.makedirs(os.path.join(out_dir, pkg), exist_ok=True)
    open(os.path.join(out_dir, pkg, "__init__.py"), "a").close()
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, pkg))
        files = []
        for proto in sorted(glob.glob(os.path.join(src_dir, "*.proto"))):
            text = open(proto, encoding="utf-8").read()
            text = re.sub(r'^import "(.*)\.proto"', lambda m: 'import "%s/%s.proto"' % (pkg, m.group(1)),
                          text, flags=re.M)
            dst = os.path.join(tmp, pkg, os.path.basename(proto))
            open(dst, "w", encoding="utf-8").write(text)
            files.append(dst)
        subprocess.run(["protoc", "-I=" + tmp, "--python_out=" + out_dir] + files, check=True)
        print("protoc: %d files from %s into %s/%s" % (len(files), src, base, pkg))
PY
  local site
  site=$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  run_logged python "$VPY" - "$CORE/validator/sawtooth_validator" "$CORE/rest_api/sawtooth_rest_api" \
    "$CORE/cli/sawtooth_cli" "$site/sawtooth_sdk" "$site/sawtooth_signing" <<'PY'
# Idempotent rewrites of asyncio code written for Python < 3.10.
import os, re, sys
DECORATOR = re.compile(r'^[ \t]*@asyncio\.coroutine[ \t]*\r?\n([ \t]*)def ', re.M)
LOOP_KW = re.compile(r'(asyncio\.(?:sleep|wait|wait_for|gather|Queue|Event|Lock|Condition|Semaphore)\([^()]*?)'
                     r',?\s*\bloop=[\w.]+\s*\)')
changed = 0
for root in sys.argv[1:]:
    for folder, _, names in os.walk(root):
        for name in names:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            text = open(path, encoding="utf-8").read()
            new = text
            if DECORATOR.search(new):
                # the decorator goes; `def` keeps its own indentation
                new = DECORATOR.sub(lambda m: m.group(1) + "async def ", new)
                new = re.sub(r'\byield from\b', 'await', new)
            new = LOOP_KW.sub(lambda m: m.group(1).rstrip().rstrip(",") + ")", new)
            new = new.replace("asyncio.Task.all_tasks(", "asyncio.all_tasks(")
            new = new.replace("asyncio.Task.current_task(", "asyncio.current_task(")
            new = re.sub(r'\basyncio\.async\(', "asyncio.ensure_future(", new)
            if path.endswith(os.path.join("sawtooth_rest_api", "rest_api.py")):
                # aiohttp 3.8: run_app makes a new loop unless handed the app's one
                call = re.search(r'web\.run_app\((?:[^()]|\([^()]*\))*\)', new)
                if call is None:
                    sys.exit("rest_api.py: no web.run_app(...) call found")
                if "loop=" not in call.group(0):
                    fixed = re.sub(r'web\.run_app\(\s*app,', "web.run_app(\n        app,\n        loop=loop,",
                                   call.group(0), count=1)
                    new = new[:call.start()] + fixed + new[call.end():]
            try:
                compile(new, path, "exec")
            except SyntaxError as err:
                sys.exit("rewrite broke %s: %s" % (path, err))
            if new != text:
                open(path, "w", encoding="utf-8").write(new)
                changed += 1
                print("fixed", path)
            for bad in ("@asyncio.coroutine", "asyncio.Task.all_tasks", "Queue(loop="):
                if bad in new:
                    sys.exit("%s still contains %s" % (path, bad))
print("python fixes: %d files changed" % changed)
PY
  # each component in its own interpreter, as they run (their protobuf modules clash)
  run_logged python env PYTHONPATH="$CORE/validator" "$VPY" -c 'import sawtooth_validator.networking.interconnect'
  run_logged python env PYTHONPATH="$CORE/rest_api" "$VPY" -c 'import sawtooth_rest_api.rest_api'
  run_logged python env PYTHONPATH="$CORE/cli" "$VPY" -c 'import sawtooth_cli.main, sawtooth_cli.sawadm, sawtooth_cli.sawset'
  run_logged python "$VPY" -c 'import sawtooth_sdk.messaging.stream, sawtooth_signing'
  end_part python
}

build_validator() {
  start_part validator "building the validator (first time, ~1-3 min)"
  run_logged validator cargo_release "$CORE/validator"
  mkdir -p "$LIBEXEC" "$CACHE/lib"
  cp -f "$CACHE/target/release/sawtooth-validator" "$LIBEXEC/sawtooth-validator.new"
  mv -f "$LIBEXEC/sawtooth-validator.new" "$LIBEXEC/sawtooth-validator"
  cp -f "$CACHE/target/release/libsawtooth_validator.so" "$CACHE/lib/libsawtooth_validator.so.new"
  mv -f "$CACHE/lib/libsawtooth_validator.so.new" "$CACHE/lib/libsawtooth_validator.so"
  if ldd "$LIBEXEC/sawtooth-validator" | grep -q 'libpython.*not found'; then
    fail "the validator links a libpython that is not found: $(ldd "$LIBEXEC/sawtooth-validator" | grep libpython)"
  fi
  end_part validator
}

install_bin() { # BUILT_NAME INSTALLED_NAME
  mkdir -p "$LIBEXEC"
  cp -f "$CACHE/target/release/$1" "$LIBEXEC/$2.new"
  mv -f "$LIBEXEC/$2.new" "$LIBEXEC/$2"
}

build_settings_tp() {
  start_part settings-tp "building settings-tp (first time, ~1-3 min)"
  run_logged settings-tp cargo_release "$CORE/families/settings/sawtooth_settings"
  install_bin settings-tp settings-tp
  end_part settings-tp
}

build_identity_tp() {
  start_part identity-tp "building identity-tp (first time, under a minute after settings-tp)"
  run_logged identity-tp cargo_release "$CORE/families/identity/sawtooth_identity"
  install_bin identity-tp identity-tp
  end_part identity-tp
}

build_devmode() {
  start_part devmode "building devmode engine (first time, ~1-3 min)"
  local dir
  dir=$(extract "$SRC/$DEVMODE_TGZ" "$CACHE/src")
  run_logged devmode cargo_release "$dir"
  install_bin devmode-engine-rust devmode-engine-rust
  end_part devmode
}

# sawtooth-pbft 1.0.3 names log4rs as a git dependency; point it at the tarball.
prepare_pbft() { # FOLDER_NAME → path of a fresh pbft source tree
  local name=$1 log4rs dir
  log4rs=$(extract "$SRC/$LOG4RS_TGZ" "$CACHE/src")
  dir=$(extract "$SRC/$PBFT_TGZ" "$CACHE/src/$name.tmp")
  rm -rf "${CACHE:?}/src/$name"
  mv "$dir" "$CACHE/src/$name"
  rmdir "$CACHE/src/$name.tmp"
  dir=$CACHE/src/$name
  sed -i -E "s|^log4rs[[:space:]]*=[[:space:]]*\{[[:space:]]*git[[:space:]]*=.*\$|log4rs = { path = \"$log4rs\" }|" "$dir/Cargo.toml"
  grep -q "^log4rs = { path = \"$log4rs\" }" "$dir/Cargo.toml" \
    || fail "could not point sawtooth-pbft's log4rs patch at $log4rs (see $dir/Cargo.toml)"
  printf '%s' "$dir"
}

build_pbft_stock() {
  start_part pbft-stock "building PBFT engine, stock 1.0.3 (first time, ~1-3 min)"
  local dir
  dir=$(prepare_pbft pbft-stock)
  run_logged pbft-stock cargo_release "$dir" --bin pbft-engine
  install_bin pbft-engine pbft-engine-stock
  end_part pbft-stock
}

build_pbft_patched() {
  start_part pbft-patched "building PBFT engine with 0001-prepare-quorum-2f.patch (first time, under a minute after the stock one)"
  local dir
  dir=$(prepare_pbft pbft-patched)
  run_logged pbft-patched patch -d "$dir" -p1 --forward --fuzz=0 -i "$PBFT_PATCH"
  grep -q '>= 2 \* state.f;' "$dir/src/node.rs" || fail "the prepare-quorum fix is not in $dir/src/node.rs after patching"
  run_logged pbft-patched cargo_release "$dir" --bin pbft-engine
  install_bin pbft-engine pbft-engine
  end_part pbft-patched
}

# Writes FILE only when its content changes (wrappers may be running).
write_if_changed() { # FILE MODE (content on stdin)
  local file=$1 mode=$2 content
  content=$(cat)
  [[ -f "$file" && "$(cat "$file")" == "$content" ]] && return 0
  printf '%s\n' "$content" > "$file.new"
  chmod "$mode" "$file.new"
  mv -f "$file.new" "$file"
}

write_wrappers() {
  mkdir -p "$BIN" "$LIBEXEC/py"
  local site
  site=$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  local header="#!/usr/bin/env bash
# Generated by coldchain scripts/sawtooth.sh build: Hyperledger Sawtooth 1.2.6 from $CACHE
unset PYTHONHOME"
  write_if_changed "$BIN/sawtooth-validator" 755 <<EOF
$header
export PYTHONPATH='$CORE/validator:$site'
export SAWTOOTH_LIB_HOME='$CACHE/lib'
export LD_LIBRARY_PATH='$CACHE/lib'\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
exec '$LIBEXEC/sawtooth-validator' "\$@"
EOF
  local name module folder
  for entry in sawtooth-rest-api:sawtooth_rest_api.rest_api:main:rest_api \
    sawadm:sawtooth_cli.sawadm:main_wrapper:cli sawset:sawtooth_cli.sawset:main_wrapper:cli \
    sawtooth:sawtooth_cli.main:main_wrapper:cli sawnet:sawtooth_cli.sawnet:main_wrapper:cli; do
    IFS=: read -r name module func folder <<< "$entry"
    write_if_changed "$LIBEXEC/py/$name" 644 <<EOF
import sys
from $module import $func
sys.exit($func())
EOF
    write_if_changed "$BIN/$name" 755 <<EOF
$header
export PYTHONPATH='$CORE/$folder'
exec '$VPY' '$LIBEXEC/py/$name' "\$@"
EOF
  done
  for name in settings-tp identity-tp devmode-engine-rust pbft-engine pbft-engine-stock; do
    write_if_changed "$BIN/$name" 755 <<EOF
$header
exec '$LIBEXEC/$name' "\$@"
EOF
  done
  # A helper for this script: the public key of a private key file.
  write_if_changed "$LIBEXEC/py/pubkey" 644 <<'EOF'
import sys
from sawtooth_signing import create_context
from sawtooth_signing.secp256k1 import Secp256k1PrivateKey
key = Secp256k1PrivateKey.from_hex(open(sys.argv[1]).read().strip())
print(create_context("secp256k1").get_public_key(key).as_hex())
EOF
}

# True when every part was built by this recipe and left its outputs: the
# cache can be used without the sources (a checkout elsewhere than beside
# ../shared, e.g. a CI clone, on a machine that built the stack before).
cache_complete() {
  local part out
  for part in "${PARTS[@]}"; do
    [[ "$(cat "$STAMPS/$part" 2>/dev/null)" == "$RECIPE-"* ]] || return 1
    for out in $(part_outputs "$part"); do [[ -e "$out" ]] || return 1; done
  done
}

sources_present() {
  local f
  for f in "$CORE_TGZ" "$DEVMODE_TGZ" "$PBFT_TGZ" "$LOG4RS_TGZ"; do
    [[ -r "$SRC/$f" ]] || return 1
  done
}

cmd_build() {
  [[ $# -eq 0 ]] || fail "build takes no arguments"
  mkdir -p "$CACHE" "$LOGS" "$STAMPS"
  exec 9> "$CACHE/.build.lock"
  flock 9 || fail "cannot lock $CACHE/.build.lock"
  if ! sources_present && cache_complete; then
    say "no Sawtooth sources at $SRC; using the stack already built in $CACHE"
    write_wrappers
    exec 9>&-
    return 0
  fi
  compute_fingerprints
  local todo=() part
  for part in "${PARTS[@]}"; do is_built "$part" || todo+=("$part"); done
  if ((${#todo[@]})); then
    local t0=$SECONDS
    say "building into $CACHE: ${todo[*]}"
    ensure_apt_packages
    find_cargo
    command -v protoc >/dev/null 2>&1 || fail "protoc not found (apt-get install protobuf-compiler)"
    for part in "${PARTS[@]}"; do
      is_built "$part" && continue
      case $part in
        core-src) build_core_src ;;
        venv) build_venv ;;
        python) build_python ;;
        validator) build_validator ;;
        settings-tp) build_settings_tp ;;
        identity-tp) build_identity_tp ;;
        devmode) build_devmode ;;
        pbft-stock) build_pbft_stock ;;
        pbft-patched) build_pbft_patched ;;
      esac
    done
    say "build finished in $((SECONDS - t0)) s"
  fi
  write_wrappers
  local name
  for name in sawtooth-validator sawtooth-rest-api sawadm sawset sawtooth settings-tp identity-tp \
    devmode-engine-rust pbft-engine pbft-engine-stock; do
    [[ -x "$BIN/$name" ]] || fail "wrapper $BIN/$name missing after build"
  done
  exec 9>&-
}

# ----------------------------------------------------------------------------
# running: processes, ports, readiness
# ----------------------------------------------------------------------------

# State of a run folder DIR:
#   DIR/mode                 single | network
#   DIR/ports.env            the ports chosen at the first start (reused by start-node)
#   DIR/pids/NAME.pid        "PID STARTTIME" of each process (own session: PID = process group)
#   DIR/logs/NAME.log        each process's stdout/stderr
#   DIR/node-N/              SAWTOOTH_HOME of validator N (keys, data, logs, etc)
#   DIR/sawtooth.env         REST_URL / COMPONENT lines for clients

start_time_of() { # PID → start time in clock ticks (guards against pid reuse); fails for a zombie
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]] || return 1
  awk '{print $20}' <<< "$stat"
}

# PID of NAME in DIR if that process is still the one we started, else nothing.
live_pid() { # DIR NAME
  local file=$1/pids/$2.pid pid start now
  [[ -r "$file" ]] || return 1
  read -r pid start < "$file" || return 1
  [[ -n "$pid" ]] || return 1
  now=$(start_time_of "$pid") || return 1
  [[ "$now" == "$start" ]] || return 1
  printf '%s' "$pid"
}

# Starts NAME detached in its own session; output in DIR/logs/NAME.log.
spawn() { # DIR NAME ENV... -- COMMAND...
  local dir=$1 name=$2
  shift 2
  local envs=()
  while [[ $1 != -- ]]; do envs+=("$1"); shift; done
  shift
  if live_pid "$dir" "$name" >/dev/null; then
    fail "$name is already running in $dir (pid $(live_pid "$dir" "$name")); run: $0 stop --dir $dir"
  fi
  mkdir -p "$dir/logs" "$dir/pids"
  local pidfile=$dir/pids/$name.pid log=$dir/logs/$name.log
  rm -f "$pidfile"
  printf '\n==== %s: %s\n' "$(date -Is)" "$*" >> "$log"
  # shellcheck disable=SC2016 # the inner bash expands these: it records its own pid, then execs
  env "${envs[@]}" PATH="$BIN:$PATH" setsid bash -c 'echo $$ > "$0.tmp"; exec "$@"' "$pidfile" "$@" \
    < /dev/null >> "$log" 2>&1 &
  local i
  for i in $(seq 1 50); do
    [[ -s "$pidfile.tmp" ]] && break
    sleep 0.02
  done
  local pid start
  pid=$(cat "$pidfile.tmp" 2>/dev/null) || fail "could not start $name (see $log)"
  rm -f "$pidfile.tmp"
  start=$(start_time_of "$pid") || fail "$name exited at once; end of $log:$(echo; tail -n 20 "$log")"
  echo "$pid $start" > "$pidfile"
}

alive_pid() { # PID → true while it runs (a zombie does not count)
  [[ -e /proc/$1 && "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]]
}

# Ends the named processes (each with its process group): "term" sends SIGTERM
# and waits up to 3 s, then SIGKILL; "kill" sends SIGKILL at once. Validators
# ignore SIGTERM, so the grace ends as soon as only validators are left.
end_processes() { # term|kill DIR NAME...
  local mode=$1 dir=$2
  shift 2
  local name pid i waiting pids=() names=()
  for name in "$@"; do
    pid=$(live_pid "$dir" "$name") || { rm -f "$dir/pids/$name.pid"; continue; }
    pids+=("$pid")
    names+=("$name")
  done
  ((${#pids[@]})) || return 0
  if [[ $mode == term ]]; then
    for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
    for i in $(seq 1 30); do
      waiting=0
      for name in "${!names[@]}"; do
        [[ ${names[$name]} == validator-* ]] && continue
        alive_pid "${pids[$name]}" && waiting=1
      done
      ((waiting)) || break
      sleep 0.1
    done
  fi
  for pid in "${pids[@]}"; do
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  done
  for i in $(seq 1 50); do
    waiting=0
    for pid in "${pids[@]}"; do alive_pid "$pid" && waiting=1; done
    ((waiting)) || break
    sleep 0.1
  done
  for name in "${names[@]}"; do rm -f "$dir/pids/$name.pid"; done
}

# N free loopback TCP ports (held open together so they differ).
free_ports() { # N
  "$SYS_PYTHON" - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

port_listening() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }

wait_port() { # PORT WHAT SECONDS DIR
  local i
  for i in $(seq 1 $(($3 * 10))); do
    port_listening "$1" && return 0
    ((i % 10)) || check_alive "$4"
    sleep 0.1
  done
  fail_with_logs "$4" "$2 did not listen on 127.0.0.1:$1 within $3 s"
}

# "BLOCK_NUM BLOCK_ID" of the chain head seen by the REST API at URL, or nothing.
head_block() { # URL
  local body
  body=$(curl -sf --max-time 5 "$1/blocks?limit=1" 2>/dev/null) || return 1
  "$SYS_PYTHON" -c '
import json, sys
try:
    data = json.loads(sys.argv[1])["data"]
    print(data[0]["header"]["block_num"], data[0]["header_signature"])
except Exception:
    sys.exit(1)' "$body"
}

fail_with_logs() { # DIR MESSAGE
  local dir=$1 f
  shift
  {
    for f in "$dir"/logs/*.log; do
      [[ -r "$f" ]] || continue
      echo "---- last lines of $f ----"
      tail -n 15 "$f"
    done
    echo "----"
  } >&2
  fail "$* (logs in $dir/logs; stop with: $0 stop --dir $dir)"
}

# Waits until every URL's REST API serves block 0 and (if several) the same genesis.
wait_genesis() { # DIR SECONDS URL...
  local dir=$1 secs=$2
  shift 2
  local deadline=$((SECONDS + secs)) url genesis ids
  while true; do
    ids=()
    for url in "$@"; do
      head_block "$url" >/dev/null || break
      genesis=$(curl -sf --max-time 5 "$url/blocks?limit=1&reverse" 2>/dev/null \
        | "$SYS_PYTHON" -c 'import json,sys; d=json.load(sys.stdin)["data"]; print(d[0]["header_signature"] if d and d[0]["header"]["block_num"]=="0" else "")' 2>/dev/null) || break
      [[ -n "$genesis" ]] || break
      ids+=("$genesis")
    done
    if ((${#ids[@]} == $#)) && [[ $(printf '%s\n' "${ids[@]}" | sort -u | wc -l) -eq 1 ]]; then
      return 0
    fi
    ((SECONDS < deadline)) || fail_with_logs "$dir" "genesis block not committed on all of $* within $secs s"
    check_alive "$dir"
    sleep 0.5
  done
}

check_alive() { # DIR → fails loudly when a process we started has died
  local f name
  for f in "$1"/pids/*.pid; do
    [[ -e "$f" ]] || continue
    name=$(basename "$f" .pid)
    live_pid "$1" "$name" >/dev/null || fail_with_logs "$1" "$name exited (see $1/logs/$name.log)"
  done
}

parse_dir_node() { # sets DIR and NODE from --dir DIR [--node N]
  DIR="" NODE=""
  while (($#)); do
    case $1 in
      --dir) DIR=${2:?--dir needs a folder}; shift 2 ;;
      --node) NODE=${2:?--node needs a number}; shift 2 ;;
      *) fail "unknown argument $1 (see: $0 help)" ;;
    esac
  done
  [[ -n "$DIR" ]] || fail "--dir DIR is required"
}

abs_dir() { mkdir -p "$1" && (cd "$1" && pwd); }

require_built() {
  cmd_build
  PATH="$BIN:$PATH"
}

refuse_running() { # DIR
  local f name
  for f in "$1"/pids/*.pid; do
    [[ -e "$f" ]] || continue
    name=$(basename "$f" .pid)
    if live_pid "$1" "$name" >/dev/null; then
      fail "$name is still running in $1; run: $0 stop --dir $1"
    fi
  done
}

# While single/network start processes: if anything fails, end them again so
# a failed start leaves nothing behind (the logs stay).
STARTING_DIR=""
# shellcheck disable=SC2317 # an EXIT trap
stop_on_failure() {
  local rc=$?
  if ((rc != 0)) && [[ -n "$STARTING_DIR" && -d "$STARTING_DIR/pids" ]]; then
    say "start failed: stopping what was started in $STARTING_DIR (logs kept in $STARTING_DIR/logs)"
    stop_all "$STARTING_DIR" || true
  fi
  exit "$rc"
}
guard_start() { STARTING_DIR=$1; trap stop_on_failure EXIT; }
start_succeeded() { trap - EXIT; STARTING_DIR=""; }

write_env() { # DIR LINES...
  local dir=$1
  shift
  printf '%s\n' "$@" > "$dir/sawtooth.env.new"
  mv -f "$dir/sawtooth.env.new" "$dir/sawtooth.env"
  printf '%s\n' "$@"
}

# ----------------------------------------------------------------------------
# single: one validator, devmode
# ----------------------------------------------------------------------------

# Starts validator N of DIR, from DIR/ports.env.
start_validator() { # DIR N
  local dir=$1 n=$2 mode
  mode=$(cat "$dir/mode")
  # shellcheck disable=SC1091
  source "$dir/ports.env"
  local home=$dir/node-$n
  local component=${COMPONENT_PORTS[$n]} consensus=${CONSENSUS_PORTS[$n]} network=${NETWORK_PORTS[$n]}
  local peers=() i
  if [[ $mode == network ]]; then
    for i in "${!NETWORK_PORTS[@]}"; do
      ((i == n)) || peers+=("tcp://127.0.0.1:${NETWORK_PORTS[$i]}")
    done
  fi
  local args=(sawtooth-validator -v
    --bind "component:tcp://127.0.0.1:$component"
    --bind "consensus:tcp://127.0.0.1:$consensus"
    --bind "network:tcp://127.0.0.1:$network"
    --endpoint "tcp://127.0.0.1:$network"
    --scheduler parallel --peering static)
  if ((${#peers[@]})); then args+=(--peers "$(IFS=,; echo "${peers[*]}")"); fi
  spawn "$dir" "validator-$n" SAWTOOTH_HOME="$home" -- "${args[@]}"
  wait_port "$component" "validator-$n's component endpoint" 60 "$dir"
}

# Starts validator N's consensus engine once the validator serves consensus
# (a genesis node does so only after the settings TP let it build block 0).
start_engine() { # DIR N
  local dir=$1 n=$2 mode
  mode=$(cat "$dir/mode")
  # shellcheck disable=SC1091
  source "$dir/ports.env"
  local home=$dir/node-$n consensus=${CONSENSUS_PORTS[$n]}
  wait_port "$consensus" "validator-$n's consensus endpoint" 60 "$dir"
  if [[ $mode == single ]]; then
    spawn "$dir" "engine-$n" SAWTOOTH_HOME="$home" -- devmode-engine-rust -v -C "tcp://127.0.0.1:$consensus"
  else
    local engine=pbft-engine
    [[ "$(cat "$dir/engine")" == stock ]] && engine="pbft-engine-stock"
    spawn "$dir" "engine-$n" SAWTOOTH_HOME="$home" -- "$engine" -v -C "tcp://127.0.0.1:$consensus"
  fi
}

start_tps_and_api() { # DIR N
  local dir=$1 n=$2 mode
  mode=$(cat "$dir/mode")
  # shellcheck disable=SC1091
  source "$dir/ports.env"
  local home=$dir/node-$n component=tcp://127.0.0.1:${COMPONENT_PORTS[$n]}
  spawn "$dir" "settings-tp-$n" SAWTOOTH_HOME="$home" -- settings-tp -v -C "$component"
  if [[ $mode == network ]]; then
    spawn "$dir" "identity-tp-$n" SAWTOOTH_HOME="$home" -- identity-tp -v -C "$component"
  fi
  spawn "$dir" "rest-api-$n" SAWTOOTH_HOME="$home" -- \
    sawtooth-rest-api -v -C "$component" -B "127.0.0.1:${REST_PORTS[$n]}"
  wait_port "${REST_PORTS[$n]}" "rest-api-$n" 30 "$dir"
}

new_run_dir() { # DIR MODE → prepares an empty run folder (refuses a running one)
  local dir=$1 f
  refuse_running "$dir"
  # only ever clear a folder this script made (or an empty one)
  if [[ ! -f "$dir/mode" ]]; then
    for f in "$dir"/node-* "$dir/secrets" "$dir/genesis" "$dir/genesis-home" "$dir/pids" "$dir/logs" \
      "$dir/sawtooth.env" "$dir/ports.env"; do
      [[ -e "$f" ]] && fail "$dir already holds $f, not made by $0; use an empty or new folder for --dir"
    done
  fi
  rm -rf "${dir:?}"/node-* "$dir/pids" "$dir/logs" "$dir/secrets" "$dir/genesis" "$dir/genesis-home" \
    "$dir/sawtooth.env" "$dir/ports.env" "$dir/engine"
  mkdir -p "$dir/pids" "$dir/logs"
  echo "$2" > "$dir/mode"
}

write_ports() { # DIR COUNT → chooses free ports for COUNT nodes
  local dir=$1 count=$2 ports
  read -r -a ports <<< "$(free_ports $((4 * count)))"
  {
    echo "COMPONENT_PORTS=(${ports[*]:0:count})"
    echo "CONSENSUS_PORTS=(${ports[*]:count:count})"
    echo "NETWORK_PORTS=(${ports[*]:$((2 * count)):count})"
    echo "REST_PORTS=(${ports[*]:$((3 * count)):count})"
  } > "$dir/ports.env"
}

keygen_validator() { # HOME
  mkdir -p "$1/keys" "$1/data" "$1/logs" "$1/etc"
  SAWTOOTH_HOME=$1 sawadm keygen --quiet >&2
  [[ -s "$1/keys/validator.priv" ]] || fail "sawadm keygen did not write $1/keys/validator.priv"
}

cmd_single() {
  local dir="" admins=()
  while (($#)); do
    case $1 in
      --dir) dir=${2:?--dir needs a folder}; shift 2 ;;
      --admin) admins+=("${2:?--admin needs a public key}"); shift 2 ;;
      *) fail "unknown argument $1 (see: $0 help)" ;;
    esac
  done
  [[ -n "$dir" ]] || fail "single needs --dir DIR"
  ((${#admins[@]})) || fail "single needs at least one --admin PUBKEY_HEX"
  local key
  for key in "${admins[@]}"; do
    [[ "$key" =~ ^0[23][0-9a-f]{64}$ ]] || fail "--admin $key is not a compressed secp256k1 public key (66 hex, 02/03...)"
  done
  require_built
  dir=$(abs_dir "$dir")
  new_run_dir "$dir" single
  guard_start "$dir"
  write_ports "$dir" 1
  local home=$dir/node-0
  say "single validator (devmode) in $dir"
  keygen_validator "$home"
  local admin_list
  admin_list=$(IFS=,; echo "${admins[*]}")
  mkdir -p "$dir/genesis"
  (
    cd "$dir/genesis"
    export SAWTOOTH_HOME=$home
    sawset genesis --key "$home/keys/validator.priv" -o config-genesis.batch
    sawset proposal create --key "$home/keys/validator.priv" -o config-consensus.batch \
      sawtooth.consensus.algorithm.name=Devmode sawtooth.consensus.algorithm.version=0.1 \
      "coldchain.admins=$admin_list"
    sawadm genesis config-genesis.batch config-consensus.batch
  ) >> "$dir/logs/genesis.log" 2>&1 || fail "genesis failed; see $dir/logs/genesis.log"
  [[ -s "$home/data/genesis.batch" ]] || fail "sawadm genesis did not write $home/data/genesis.batch"
  start_validator "$dir" 0
  start_tps_and_api "$dir" 0
  start_engine "$dir" 0
  # shellcheck disable=SC1091
  source "$dir/ports.env"
  local rest=http://127.0.0.1:${REST_PORTS[0]}
  wait_genesis "$dir" 60 "$rest"
  say "ready; settings key: $home/keys/validator.priv; stop with: $0 stop --dir $dir"
  start_succeeded
  write_env "$dir" "REST_URL=$rest" "COMPONENT=tcp://127.0.0.1:${COMPONENT_PORTS[0]}"
}

# ----------------------------------------------------------------------------
# network: four validators, PBFT, genesis by validator-config/genesis/create-genesis.sh
# ----------------------------------------------------------------------------

read_members() { # → MEMBER_NODES, MEMBER_ORGS from members.conf
  MEMBER_NODES=() MEMBER_ORGS=()
  local node org
  while read -r node org _; do
    [[ -z "$node" || "$node" == \#* ]] && continue
    MEMBER_NODES+=("$node") MEMBER_ORGS+=("$org")
  done < "$GENESIS_DIR/members.conf"
  ((${#MEMBER_NODES[@]} >= 4)) || fail "$GENESIS_DIR/members.conf lists fewer than 4 members"
}

pubkey_of() { PYTHONPATH='' "$VPY" "$LIBEXEC/py/pubkey" "$1"; }

cmd_network() {
  local dir="" engine=patched admin_key="" transactors=()
  while (($#)); do
    case $1 in
      --dir) dir=${2:?--dir needs a folder}; shift 2 ;;
      --engine) engine=${2:?--engine needs patched or stock}; shift 2 ;;
      --admin-key) admin_key=${2:?--admin-key needs a .priv file}; shift 2 ;;
      --transactor) transactors+=("${2:?--transactor needs a public key}"); shift 2 ;;
      *) fail "unknown argument $1 (see: $0 help)" ;;
    esac
  done
  [[ -n "$dir" ]] || fail "network needs --dir DIR"
  [[ $engine == patched || $engine == stock ]] || fail "--engine must be patched or stock, not $engine"
  if [[ -n "$admin_key" ]]; then
    [[ -r "$admin_key" ]] || fail "cannot read --admin-key $admin_key"
    admin_key=$(cd "$(dirname "$admin_key")" && pwd)/$(basename "$admin_key")
  fi
  local key
  for key in "${transactors[@]}"; do
    [[ "$key" =~ ^0[23][0-9a-f]{64}$ ]] || fail "--transactor $key is not a compressed secp256k1 public key"
  done
  require_built
  read_members
  local count=${#MEMBER_NODES[@]}
  dir=$(abs_dir "$dir")
  new_run_dir "$dir" network
  guard_start "$dir"
  echo "$engine" > "$dir/engine"
  write_ports "$dir" "$count"
  say "PBFT network of $count validators ($engine engine) in $dir"

  # secrets/ in the layout create-genesis.sh reads
  local secrets=$dir/secrets i org
  mkdir -p "$secrets/admins"
  for i in "${!MEMBER_NODES[@]}"; do
    keygen_validator "$dir/node-$i"
    mkdir -p "$secrets/${MEMBER_NODES[$i]}"
    cp "$dir/node-$i/keys/validator.pub" "$secrets/${MEMBER_NODES[$i]}/validator.pub"
    org=${MEMBER_ORGS[$i]}
    if ((i == 0)) && [[ -n "$admin_key" ]]; then
      cp "$admin_key" "$secrets/admins/$org.priv"
      pubkey_of "$admin_key" > "$secrets/admins/$org.pub" || fail "cannot read the key in $admin_key"
    else
      sawtooth keygen --key-dir "$secrets/admins" --quiet "$org" >&2
    fi
  done
  chmod 600 "$secrets"/admins/*.priv
  printf '%s\n' "${transactors[@]}" > "$secrets/transactors.txt"
  # network (Curve) key pair shared by the validators, as validator-config does
  PYTHONPATH='' "$VPY" - "$secrets" <<'PY'
import sys, zmq
public, secret = zmq.curve_keypair()
open(sys.argv[1] + "/network_public_key", "w").write(public.decode() + "\n")
open(sys.argv[1] + "/network_private_key", "w").write(secret.decode() + "\n")
PY
  local netpub netpriv
  netpub=$(tr -d '[:space:]' < "$secrets/network_public_key")
  netpriv=$(tr -d '[:space:]' < "$secrets/network_private_key")
  for i in "${!MEMBER_NODES[@]}"; do
    cat > "$dir/node-$i/etc/validator.toml" <<EOF
# ${MEMBER_NODES[$i]} (${MEMBER_ORGS[$i]}), written by scripts/sawtooth.sh network;
# binds, endpoint and peers are on the command line (see DIR/ports.env).
network_public_key = '$netpub'
network_private_key = '$netpriv'
maximum_peer_connectivity = 10
EOF
    chmod 600 "$dir/node-$i/etc/validator.toml"
  done

  say "genesis by validator-config/genesis/create-genesis.sh"
  # `sawadm genesis -o FILE` still insists that $SAWTOOTH_HOME/data (default
  # /var/lib/sawtooth) exists: give it a scratch home.
  mkdir -p "$dir/genesis-home/data"
  env -u COLDCHAIN_SAWTOOTH_IN_DOCKER SAWTOOTH_HOME="$dir/genesis-home" PATH="$BIN:$PATH" \
    "$GENESIS_DIR/create-genesis.sh" "$secrets" \
    >> "$dir/logs/genesis.log" 2>&1 || fail "create-genesis.sh failed; see $dir/logs/genesis.log"
  cp "$secrets/genesis/genesis.batch" "$dir/node-0/data/genesis.batch"

  for i in "${!MEMBER_NODES[@]}"; do start_validator "$dir" "$i"; done
  for i in "${!MEMBER_NODES[@]}"; do start_tps_and_api "$dir" "$i"; done
  for i in "${!MEMBER_NODES[@]}"; do start_engine "$dir" "$i"; done
  # shellcheck disable=SC1091
  source "$dir/ports.env"
  local urls=() lines=()
  for i in "${!MEMBER_NODES[@]}"; do
    urls+=("http://127.0.0.1:${REST_PORTS[$i]}")
    lines+=("REST_URL_$i=http://127.0.0.1:${REST_PORTS[$i]}" "COMPONENT_$i=tcp://127.0.0.1:${COMPONENT_PORTS[$i]}")
  done
  wait_genesis "$dir" 120 "${urls[@]}"
  lines+=("REST_URL=${urls[0]}" "COMPONENT=tcp://127.0.0.1:${COMPONENT_PORTS[0]}")
  say "ready; founder admin key: $secrets/admins/${MEMBER_ORGS[0]}.priv; stop with: $0 stop --dir $dir"
  start_succeeded
  write_env "$dir" "${lines[@]}"
}

# ----------------------------------------------------------------------------
# kill / start-node / stop
# ----------------------------------------------------------------------------

check_node() { # DIR NODE
  [[ -r "$1/mode" && -r "$1/ports.env" ]] || fail "$1 holds no network started by $0 (no mode/ports.env)"
  [[ "$2" =~ ^[0-9]+$ ]] || fail "--node N is required (a number)"
  [[ -d "$1/node-$2" ]] || fail "there is no node $2 in $1"
}

cmd_kill() {
  parse_dir_node "$@"
  check_node "$DIR" "$NODE"
  say "kill -9 validator-$NODE and engine-$NODE in $DIR"
  end_processes kill "$DIR" "validator-$NODE" "engine-$NODE"
}

cmd_start_node() {
  parse_dir_node "$@"
  check_node "$DIR" "$NODE"
  PATH="$BIN:$PATH"
  if live_pid "$DIR" "validator-$NODE" >/dev/null; then
    fail "validator-$NODE is running in $DIR; to restart it: $0 kill --dir $DIR --node $NODE, then start-node"
  fi
  # its engine may have outlived the validator: start both afresh
  end_processes kill "$DIR" "engine-$NODE"
  say "starting validator-$NODE and engine-$NODE in $DIR"
  start_validator "$DIR" "$NODE"
  start_engine "$DIR" "$NODE"
  # shellcheck disable=SC1091
  source "$DIR/ports.env"
  local url=http://127.0.0.1:${REST_PORTS[$NODE]} i
  for i in $(seq 1 120); do
    head_block "$url" >/dev/null && break
    ((i < 120)) || fail_with_logs "$DIR" "node $NODE's REST API ($url) did not answer within 60 s after the restart"
    sleep 0.5
  done
  say "node $NODE is back (it catches up with its peers by itself)"
}

stop_all() { # DIR
  local names=() f
  for f in "$1"/pids/*.pid; do
    [[ -e "$f" ]] && names+=("$(basename "$f" .pid)")
  done
  ((${#names[@]})) || { say "nothing running in $1"; return 0; }
  say "stopping ${#names[@]} processes in $1"
  end_processes term "$1" "${names[@]}"
}

cmd_stop() {
  parse_dir_node "$@"
  [[ -z "$NODE" ]] || fail "stop ends everything in --dir; to stop one node use: $0 kill --dir DIR --node N"
  [[ -d "$DIR" ]] || { say "nothing running in $DIR (no such folder)"; return 0; }
  stop_all "$DIR"
}

main() {
  local cmd=${1:-help}
  (($#)) && shift
  case $cmd in
    build) cmd_build "$@" ;;
    single) cmd_single "$@" ;;
    network) cmd_network "$@" ;;
    kill) cmd_kill "$@" ;;
    start-node) cmd_start_node "$@" ;;
    stop) cmd_stop "$@" ;;
    help | -h | --help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

# (one line: bash has read it whole before main runs, so editing this file
# while it runs cannot derail it)
main "$@"; exit
