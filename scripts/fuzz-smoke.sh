#!/usr/bin/env bash
# Builds every cargo-fuzz target in fuzz/ and runs each for a few seconds from its seed corpus.
# Exits non-zero if any target fails to build or finds a crash (panic, timeout, OOM, sanitizer
# report); crashing inputs are left in fuzz/artifacts/<target>/.
#
# Usage: scripts/fuzz-smoke.sh [TARGET...]          (default: every target in fuzz/Cargo.toml)
# Environment:
#   FUZZ_SECONDS  seconds per target (default 5)
#   FUZZ_JOBS     targets run in parallel (default 1)
#
# Toolchain: cargo-fuzz needs nightly features (-Zsanitizer). Uses `+nightly` if rustup has it,
# otherwise tries `rustup toolchain install nightly --profile minimal`, and if that fails falls
# back to the default toolchain with RUSTC_BOOTSTRAP=1. Installs cargo-fuzz if it is missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SECS="${FUZZ_SECONDS:-5}"
JOBS="${FUZZ_JOBS:-1}"

log() { printf '== %s\n' "$*" >&2; }

# --- toolchain -----------------------------------------------------------------------------
TC=()
if command -v rustup >/dev/null 2>&1; then
    if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
        TC=(+nightly)
    elif rustup toolchain install nightly --profile minimal >&2; then
        TC=(+nightly)
    fi
fi
if [ ${#TC[@]} -eq 0 ]; then
    log "no nightly toolchain: using the default toolchain with RUSTC_BOOTSTRAP=1"
    export RUSTC_BOOTSTRAP=1
fi

# --- cargo-fuzz ----------------------------------------------------------------------------
if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked >&2
fi

# --- targets -------------------------------------------------------------------------------
if [ $# -gt 0 ]; then
    TARGETS=("$@")
else
    mapfile -t TARGETS < <(cargo "${TC[@]}" fuzz list)
fi
[ ${#TARGETS[@]} -gt 0 ] || { log "no fuzz targets found"; exit 1; }

max_len() {
    case "$1" in
        varint) echo 64 ;;
        consumer_protocol) echo 4096 ;;
        request|response) echo 16384 ;;
        *) echo 65536 ;;
    esac
}

log "building ${#TARGETS[@]} targets (${TC[*]:-RUSTC_BOOTSTRAP=1})"
cargo "${TC[@]}" fuzz build -O >&2

log "writing seed corpora"
"$ROOT/scripts/fuzz-seeds.sh" "$ROOT/fuzz/corpus" >&2

# --- run -----------------------------------------------------------------------------------
LOGDIR="$(mktemp -d "${TMPDIR:-/tmp}/mephisto-fuzz-smoke.XXXXXX")"
run_one() {
    local t="$1"
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    # -O: same build as above, so this does not rebuild.
    if cargo "${TC[@]}" fuzz run -O "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=25 \
        -max_len="$(max_len "$t")" -print_final_stats=1 \
        >"$LOGDIR/$t.log" 2>&1; then
        echo ok >"$LOGDIR/$t.status"
    else
        echo FAILED >"$LOGDIR/$t.status"
    fi
}

running=0
for t in "${TARGETS[@]}"; do
    log "fuzzing $t for ${SECS}s"
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait || true

failed=0
printf '\n%-20s %-8s %12s %s\n' target result execs detail
for t in "${TARGETS[@]}"; do
    status="$(cat "$LOGDIR/$t.status" 2>/dev/null || echo FAILED)"
    execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$LOGDIR/$t.log" | grep -o '[0-9]*$' | tail -1 || true)"
    detail=""
    if [ "$status" != ok ]; then
        failed=1
        detail="$(grep -m1 -E 'panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer|SUMMARY' "$LOGDIR/$t.log" || true)"
        detail="$detail (log: $LOGDIR/$t.log; artifacts: fuzz/artifacts/$t/)"
    fi
    printf '%-20s %-8s %12s %s\n' "$t" "$status" "${execs:-?}" "$detail"
done
if [ "$failed" -ne 0 ]; then
    log "fuzz smoke FAILED"
    exit 1
fi
log "fuzz smoke passed; logs in $LOGDIR"
