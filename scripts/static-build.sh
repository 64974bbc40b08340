#!/usr/bin/env bash
# Builds what we ship as static musl binaries (no C compiled) with the release profile: the
# `mephisto` CLI and the quickstart `demo` example. Checks that they are static (no ELF
# interpreter, no shared-library dependency), prints their sizes, and runs the demo under a
# 32 MiB address-space limit. (The other examples are built and run by the tests.)
#
# Usage: scripts/static-build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=x86_64-unknown-linux-musl
rustup target add "$TARGET" >/dev/null
cargo build --release --locked --target "$TARGET" -p mephisto-agents --bin mephisto --example demo
OUT="target/$TARGET/release"
for bin in "$OUT/mephisto" "$OUT/examples/demo"; do
  if readelf -lW "$bin" | grep -q 'Requesting program interpreter' || readelf -dW "$bin" | grep -q '(NEEDED)'; then
    echo "static-build: $bin is not statically linked" >&2
    exit 1
  fi
  printf 'static-build: %-48s %8d bytes, static\n' "$bin" "$(stat -c %s "$bin")"
done
# The demo (worker, embedded broker, asks, group_by, sinks) within 32 MiB of address space.
env -u MEPHISTO_BROKER prlimit --as=$((32 * 1024 * 1024)) -- "$OUT/examples/demo" >/tmp/mephisto-demo-32m.log
grep -q '=> 8' /tmp/mephisto-demo-32m.log || { echo "static-build: the demo did not answer the ask" >&2; cat /tmp/mephisto-demo-32m.log >&2; exit 1; }
echo "static-build: the demo ran under a 32 MiB address-space limit"
