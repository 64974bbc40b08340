#!/usr/bin/env bash
# Run a throwaway tansu broker (in-memory storage) on a free loopback port.
#
#   scripts/tansu.sh start            start a shared instance; prints MEPHISTO_BROKER=kafka://127.0.0.1:PORT
#                                     (also written to $REPO/.tools/run/tansu.env, pid in tansu.pid,
#                                     log in tansu.log)
#   scripts/tansu.sh stop             stop the shared instance
#   scripts/tansu.sh status           print its address if it is up (exit 1 if not)
#   scripts/tansu.sh run -- CMD...    start a private instance, run CMD with MEPHISTO_BROKER (and
#                                     MEPHISTO_BROKER_ADDR=127.0.0.1:PORT) exported, stop the broker on
#                                     exit, and return CMD's exit status
#
# Environment: TANSU_BIN (default $REPO/.tools/bin/tansu, then `tansu` on PATH), TANSU_PORT (default:
# a free port), TANSU_ADVERTISED_PORT (default: the listening port; set it to put a loopback proxy in
# front of the broker: clients then reach tansu only through that port), TANSU_START_TIMEOUT seconds
# (default 20). MEPHISTO_BROKER is always the port tansu itself listens on.
#
# Command line used (see `tansu broker --help`):
#   tansu broker --listener-url tcp://127.0.0.1:PORT --advertised-listener-url tcp://127.0.0.1:PORT \
#                --storage-engine memory://tansu/ --cluster-id mephisto
#
# Known tansu quirks (v0.6.0-510f3e2): a consumer-group join completes only after about half the
# session timeout; ListOffsets(latest) is wrong for multi-record batches (use the Fetch high
# watermark instead).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="$REPO/.tools/run"
START_TIMEOUT="${TANSU_START_TIMEOUT:-20}"

die() { printf '[tansu.sh] ERROR: %s\n' "$*" >&2; exit 1; }

find_tansu() {
  if [[ -n "${TANSU_BIN:-}" ]]; then echo "$TANSU_BIN"; return; fi
  if [[ -x "$REPO/.tools/bin/tansu" ]]; then echo "$REPO/.tools/bin/tansu"; return; fi
  command -v tansu 2>/dev/null || die "tansu not found: run scripts/install-peers.sh"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Exit 0 iff a Kafka broker at 127.0.0.1:$1 answers ApiVersions v0 with error_code 0.
probe() {
  python3 - "$1" <<'EOF'
import socket, struct, sys
port = int(sys.argv[1])
try:
    s = socket.create_connection(("127.0.0.1", port), timeout=1.0)
    client = b"mephisto-probe"
    body = struct.pack(">hhih", 18, 0, 0x4d455048, len(client)) + client
    s.sendall(struct.pack(">i", len(body)) + body)
    def read(n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf
    (size,) = struct.unpack(">i", read(4))
    resp = read(size)
    corr, err = struct.unpack(">ih", resp[:6])
    sys.exit(0 if corr == 0x4d455048 and err == 0 else 1)
except Exception:
    sys.exit(1)
EOF
}

# start_broker DIR -> starts tansu with pid/log/env files in DIR, echoes the address line.
start_broker() {
  local dir="$1" bin port pid
  bin="$(find_tansu)"
  mkdir -p "$dir"
  port="${TANSU_PORT:-$(free_port)}"
  # Flags win over any LISTENER_URL / STORAGE_ENGINE / CLUSTER_ID env vars tansu would read.
  "$bin" broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:${TANSU_ADVERTISED_PORT:-$port}" \
    --storage-engine memory://tansu/ \
    --cluster-id mephisto \
    >"$dir/tansu.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$dir/tansu.pid"
  local deadline=$(( $(date +%s) + START_TIMEOUT ))
  until probe "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      cat "$dir/tansu.log" >&2
      rm -f "$dir/tansu.pid"
      die "tansu exited during start-up (log above)"
    fi
    if (( $(date +%s) >= deadline )); then
      kill "$pid" 2>/dev/null || true
      cat "$dir/tansu.log" >&2
      rm -f "$dir/tansu.pid"
      die "tansu did not answer ApiVersions on 127.0.0.1:$port within ${START_TIMEOUT}s"
    fi
    sleep 0.1
  done
  printf 'MEPHISTO_BROKER=kafka://127.0.0.1:%s\nMEPHISTO_BROKER_ADDR=127.0.0.1:%s\n' "$port" "$port" >"$dir/tansu.env"
  echo "MEPHISTO_BROKER=kafka://127.0.0.1:$port"
}

stop_broker() {
  local dir="$1" pid
  [[ -f "$dir/tansu.pid" ]] || return 0
  pid="$(cat "$dir/tansu.pid")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/tansu.pid" "$dir/tansu.env"
}

cmd="${1:-}"
case "$cmd" in
  start)
    if [[ -f "$RUN_DIR/tansu.pid" ]] && kill -0 "$(cat "$RUN_DIR/tansu.pid")" 2>/dev/null; then
      head -1 "$RUN_DIR/tansu.env"
      exit 0
    fi
    start_broker "$RUN_DIR"
    ;;
  stop)
    stop_broker "$RUN_DIR"
    ;;
  status)
    if [[ -f "$RUN_DIR/tansu.pid" ]] && kill -0 "$(cat "$RUN_DIR/tansu.pid")" 2>/dev/null; then
      head -1 "$RUN_DIR/tansu.env"
    else
      echo "tansu: not running" >&2
      exit 1
    fi
    ;;
  run)
    shift
    [[ "${1:-}" == "--" ]] && shift
    [[ $# -gt 0 ]] || die "usage: $0 run -- CMD..."
    mkdir -p "$RUN_DIR"
    PRIV_DIR="$(mktemp -d "$RUN_DIR/run.XXXXXX")"
    trap 'stop_broker "$PRIV_DIR"; rm -rf "$PRIV_DIR"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    start_broker "$PRIV_DIR" >&2
    set -a
    # shellcheck disable=SC1091
    . "$PRIV_DIR/tansu.env"
    set +a
    status=0
    "$@" || status=$?
    exit "$status"
    ;;
  *)
    sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
