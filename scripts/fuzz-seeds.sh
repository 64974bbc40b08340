#!/usr/bin/env bash
# Writes seed corpora for every fuzz target into fuzz/corpus/<target>/ (gitignored).
#
# Seeds come from the golden record batches under wire/tests/golden/ (written by kafka-python and
# librdkafka), from batches built with our encoder for every codec, and from hand-built frames,
# requests, responses, consumer-protocol payloads and varints. The generator is the small stable
# crate fuzz/seedgen/ (its own workspace); file names are content hashes, so re-running only adds.
#
# Usage: scripts/fuzz-seeds.sh [CORPUS_DIR]    (default: fuzz/corpus)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CORPUS="${1:-$ROOT/fuzz/corpus}"

# The generator needs no nightly features; build it with whatever toolchain `cargo` resolves to.
cargo run --quiet --release \
    --manifest-path "$ROOT/fuzz/seedgen/Cargo.toml" \
    --target-dir "$ROOT/fuzz/target/seedgen" \
    -- "$CORPUS" "$ROOT/wire/tests/golden"
