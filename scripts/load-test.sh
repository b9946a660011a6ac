#!/usr/bin/env bash
# Load benchmark (not part of scripts/test.sh): 32 concurrent streaming
# clients for 60 s against `dsv4 serve --demo` (release build) on a free
# local port; prints errors, latency percentiles, throughput and the server's
# peak RSS. Extra arguments go to tests/load/load.py (e.g. --clients 8).
# Uses $DSV4_BIN if set. The server is always stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-clients
if [ ! -x "$VENV/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/clients/requirements.txt

BIN="${DSV4_BIN:-}"
if [ -z "$BIN" ]; then
    cargo build --quiet --locked --release -p dsv4-cli
    BIN="${CARGO_TARGET_DIR:-target}/release/dsv4"
fi

PORT=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
KEY="dsv4-load-$$"
"$BIN" serve --demo --host 127.0.0.1 --port "$PORT" --api-key "$KEY" --sessions "${SESSIONS:-8}" --ctx 8192 >/dev/null 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do
    curl -fs "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
    kill -0 "$SERVER" 2>/dev/null || { echo "dsv4 serve exited early"; exit 1; }
    sleep 0.5
done
"$VENV/bin/python" tests/load/load.py --base-url "http://127.0.0.1:$PORT" --api-key "$KEY" --server-pid "$SERVER" "$@"
