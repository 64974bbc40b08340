#!/usr/bin/env bash
# The project's test command: every unit, property and integration test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"
