#!/usr/bin/env bash
# Regenerate the golden record-batch fixtures in wire/tests/golden/.
#   1. kafka-python's DefaultRecordBatchBuilder, in-process     -> kafka-python-<codec>.{bin,json}
#   2. librdkafka and kafka-python producers through tansu      -> librdkafka-<codec>.{bin,json},
#      (recording proxy in front, Fetch v4 to read back)           kafka-python-broker-<codec>.{bin,json}
# Needs scripts/install-peers.sh to have run (venv + tansu). Timestamps are explicit, but compressed
# bytes (gzip header, librdkafka internals) and broker-assigned producer ids may differ from the
# committed files after a regeneration; the JSON is always regenerated with them.
# Usage: scripts/golden/regen.sh [OUT_DIR]   (default wire/tests/golden)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${1:-$REPO/wire/tests/golden}"
PY="$REPO/.venv/bin/python"
[[ -x "$PY" ]] || { echo "regen.sh: $PY missing: run scripts/install-peers.sh" >&2; exit 1; }
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
rm -f "$OUT"/*.bin "$OUT"/*.json

cd "$REPO/scripts/golden"
"$PY" gen_kafka_python_builder.py "$OUT"

PROXY_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
TANSU_BIN="${TANSU_BIN:-$REPO/.tools/bin/tansu}"
export TANSU_VERSION="tansu $("$TANSU_BIN" --version | awk '{print $2}')"
TANSU_ADVERTISED_PORT="$PROXY_PORT" "$REPO/scripts/tansu.sh" run -- "$PY" gen_via_tansu.py "$OUT" "$PROXY_PORT"

echo "fixtures in $OUT:"
ls -l "$OUT" | awk 'NR>1 {print "  " $5 "\t" $9}'
