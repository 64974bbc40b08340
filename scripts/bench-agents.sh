#!/usr/bin/env bash
# Runs the agent pipeline campaign (benches/src/bin/agent_bench/) and draws its plots.
#
# On each broker (a private tansu and the loopback replay server): the main measurement
# (Mephisto pipeline, rdkafka loop, bare fetcher, faust-streaming; noop and add; RECORDS
# records over 8 partitions), then the partition sweep (Mephisto noop pipeline, rdkafka loop,
# bare fetcher at each count of SWEEP, SWEEP_RECORDS records each). Every measurement is
# appended to OUT as one JSON line; bench_plots then writes benches/plots/*.svg from OUT. An
# existing OUT is moved to OUT.prev first (APPEND=1 keeps adding to it instead: the plots then
# take the median over every run in the file).
#
# Usage: scripts/bench-agents.sh [extra agent_bench options...]
# Environment (defaults in brackets):
#   OUT [benches/plots/results.jsonl]   RUNS [3]          RECORDS [1000000]
#   FAUST_RECORDS [50000]               BROKER [both]     SWEEP [1,2,4,8,16,32,64,128,256]
#   SWEEP_RECORDS [200000]              PLOTS [benches/plots]   APPEND [0]
# A short check of the whole chain:
#   RUNS=1 RECORDS=50000 FAUST_RECORDS=5000 SWEEP=1,8,64 SWEEP_RECORDS=50000 \
#       OUT=/tmp/agents.jsonl PLOTS=/tmp/plots scripts/bench-agents.sh
# Needs .tools/bin/tansu and .venv with faust-streaming (scripts/install-peers.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-$ROOT/benches/plots/results.jsonl}"
PLOTS="${PLOTS:-$ROOT/benches/plots}"
mkdir -p "$(dirname "$OUT")" "$PLOTS"
if [[ -e "$OUT" && "${APPEND:-0}" != 1 ]]; then
    mv "$OUT" "$OUT.prev"
fi

cd "$ROOT"
cargo build --release -p mephisto-benches --bin agent_bench --bin bench_plots
target/release/agent_bench \
    --broker "${BROKER:-both}" \
    --runs "${RUNS:-3}" \
    --records "${RECORDS:-1000000}" \
    --partitions 8 \
    --faust-records "${FAUST_RECORDS:-50000}" \
    --partitions-sweep "${SWEEP:-1,2,4,8,16,32,64,128,256}" \
    --sweep-records "${SWEEP_RECORDS:-200000}" \
    --skip-ask \
    --out "$OUT" \
    "$@"
target/release/bench_plots --input "$OUT" --out-dir "$PLOTS"
