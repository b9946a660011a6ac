#!/usr/bin/env bash
# Runs every test of dsv4: formatting, lints, unit/integration/golden tests,
# the aarch64 (NEON) compile check, and the Python client conformance suite.
# Installs what it needs by itself (Rust targets/components, a local Python
# venv with pinned packages). Usage: scripts/test.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
t0=$SECONDS

step "rustfmt"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo fmt --all -- --check

step "clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
cargo test --workspace --locked

step "aarch64 compile check of the kernels (NEON)"
if rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1; then
    RUSTFLAGS="-D warnings" cargo check -p dsv4-quant --target aarch64-unknown-linux-gnu --locked
else
    echo "aarch64 target unavailable here (no rustup network access); skipped"
fi

if [ "${1:-}" != "--quick" ] && [ -x scripts/test-clients.sh ]; then
    step "client conformance (official openai/anthropic SDKs against dsv4 serve --demo)"
    scripts/test-clients.sh
fi

printf '\nall tests passed in %ss\n' $((SECONDS - t0))
