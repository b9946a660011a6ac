#!/usr/bin/env bash
# Creates (once) a pinned virtual environment in tools/tokenizer/.venv and runs
# one of the reference scripts in it, from the repository root:
#   tools/tokenizer/run.sh tools/tokenizer/make_vocab.py
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! cmp -s "$here/requirements.txt" "$venv/.requirements.installed"; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$venv/.requirements.installed"
fi
# Fixed hash seed: set iteration order (e.g. in encoder error messages) is then stable.
export PYTHONHASHSEED=0
exec "$venv/bin/python" "$@"
