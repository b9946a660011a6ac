#!/usr/bin/env bash
# Tokenizer throughput: dsv4 (Rust, one thread) vs HF `tokenizers` (Python, one
# thread) on the same text, in the same run. From the repository root:
#   benchmarks/tokenizer/run.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
cargo build --release --quiet -p dsv4-tokenizer --example bench_tokenize
exec tools/tokenizer/run.sh benchmarks/tokenizer/bench.py "$@"
