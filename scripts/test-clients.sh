#!/usr/bin/env bash
# Client conformance: runs the official `openai` and `anthropic` Python SDKs
# (pinned in tests/clients/requirements.txt, installed into the git-ignored
# venv .venv-clients/) against `dsv4 serve --demo` on a free local port.
#
# Uses $DSV4_BIN if set, else builds the dsv4 binary with the test profile
# (reusing what `cargo test` built). The server is always stopped on exit.
# Usage: scripts/test-clients.sh
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-clients
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/clients/requirements.txt

BIN="${DSV4_BIN:-}"
if [ -z "$BIN" ]; then
    cargo build --quiet --locked --profile test -p dsv4-cli
    BIN="${CARGO_TARGET_DIR:-target}/debug/dsv4"
fi

PORT=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
KEY="dsv4-client-test-$$"
LOG=$(mktemp -t dsv4-serve.XXXXXX.log)
"$BIN" serve --demo --host 127.0.0.1 --port "$PORT" --api-key "$KEY" --ctx 8192 --sessions 4 --threads 2 >"$LOG" 2>&1 &
SERVER=$!
cleanup() {
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    rm -f "$LOG"
}
trap cleanup EXIT

for _ in $(seq 1 240); do
    if "$VENV/bin/python" -c "import urllib.request, sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:$PORT/health').status == 200 else 1)" 2>/dev/null; then
        break
    fi
    if ! kill -0 "$SERVER" 2>/dev/null; then
        echo "dsv4 serve exited early:"; cat "$LOG"; exit 1
    fi
    sleep 0.5
done

export DSV4_BASE_URL="http://127.0.0.1:$PORT" DSV4_API_KEY="$KEY" DSV4_MODEL="dsv4-demo"
status=0
"$VENV/bin/python" tests/clients/conformance_openai.py || status=1
"$VENV/bin/python" tests/clients/conformance_anthropic.py || status=1
if [ "$status" -ne 0 ]; then
    echo "--- server log ---"; tail -n 50 "$LOG"
fi
exit "$status"
