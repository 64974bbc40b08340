#!/usr/bin/env bash
# The project's test command: every unit, property and integration test of the workspace.
# Integration tests start their own tansu broker (and use the Python peers) from the tools that
# scripts/install-peers.sh puts under .tools/ and .venv/; it is idempotent and quick when done.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-peers.sh
cargo test --workspace --locked "$@"
