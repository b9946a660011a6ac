"""A tiny test runner for the client conformance scripts.

Each script registers cases with @case and calls run(), which prints one line
per case and a final "N passed, M failed" line, and exits non-zero on failure.
The server address and API key come from DSV4_BASE_URL and DSV4_API_KEY
(scripts/test-clients.sh sets both).
"""

import os
import sys
import time
import traceback

BASE = os.environ.get("DSV4_BASE_URL", "http://127.0.0.1:8000")
API_KEY = os.environ.get("DSV4_API_KEY", "dsv4-test-key")
MODEL = os.environ.get("DSV4_MODEL", "dsv4-demo")

_cases = []


def case(f):
    _cases.append(f)
    return f


def run(name):
    passed = failed = 0
    t0 = time.time()
    for f in _cases:
        t = time.time()
        try:
            f()
            passed += 1
            print(f"ok    {name}::{f.__name__} ({time.time() - t:.1f}s)", flush=True)
        except Exception:  # noqa: BLE001 - report every failure and go on
            failed += 1
            print(f"FAIL  {name}::{f.__name__}", flush=True)
            traceback.print_exc()
    print(f"{name}: {time.time() - t0:.1f}s")
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)
