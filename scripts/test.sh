#!/usr/bin/env bash
# The project's test command: every unit, property and integration test of the workspace,
# then the engine's and agents' integration tests once more on the in-process dev broker.
# Integration tests start their own tansu broker (and use the Python peers) from the tools that
# scripts/install-peers.sh puts under .tools/ and .venv/; it is idempotent and quick when done.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-peers.sh
cargo test --workspace --locked "$@"
# The engine's and agents' integration tests again, on the in-process development broker
# (mephisto-dev-broker) instead of tansu (support code starts it when MEPHISTO_TEST_BROKER=dev).
MEPHISTO_TEST_BROKER=dev cargo test --locked -p mephisto-engine -p mephisto-agents --tests "$@"
