#!/usr/bin/env bash
# Side-by-side CPU benchmark of dsv4 and llama.cpp on the same GGUF file.
#
# Builds llama.cpp's `llama-bench` from the pinned PyPI sdist
# llama-cpp-python==0.3.36 (vendored llama.cpp 0c1e57098; cmake and ninja
# from PyPI), synthesises a `slice` model (real Flash dimensions, layers
# [SWA, CSA, HCA, CSA], 32 experts per layer, ds4's q2 mix: IQ2_XXS gate/up,
# Q2_K down, Q8_0 attention and shared expert, F16 compressors/indexer), and
# runs both engines alternately with the same thread count, printing medians
# and the dsv4/llama.cpp ratios for prefill (512 and 4096 tokens) and decode,
# plus dsv4's batched decode and the measured memory bandwidth.
#
# Everything downloaded or built is cached in $CACHE (default .cache/bench)
# and nothing of it is committed. Usage:
#   benchmarks/compare-llama-cpp.sh [--runs N] [--threads T] [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=${CACHE:-$ROOT/.cache/bench}
RUNS=5
THREADS=$(nproc)
PROMPTS="512,4096"
GEN=64
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        --quick) RUNS=2; PROMPTS="512"; GEN=16; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
mkdir -p "$CACHE"
log() { printf '[compare] %s\n' "$*" >&2; }

# 1. Tools from PyPI.
if [ ! -x "$CACHE/venv/bin/cmake" ]; then
    log "creating a venv with cmake and ninja from PyPI"
    python3 -m venv "$CACHE/venv"
    "$CACHE/venv/bin/pip" install -q cmake==4.4.4 ninja==1.13.2
fi
export PATH="$CACHE/venv/bin:$PATH"

# 2. llama.cpp from the llama-cpp-python sdist.
LLAMA_SRC="$CACHE/llama-cpp-python-0.3.36/vendor/llama.cpp"
if [ ! -d "$LLAMA_SRC" ]; then
    log "downloading the llama-cpp-python 0.3.36 sdist"
    "$CACHE/venv/bin/pip" download -q --no-deps --no-binary llama-cpp-python llama-cpp-python==0.3.36 -d "$CACHE"
    tar xzf "$CACHE/llama_cpp_python-0.3.36.tar.gz" -C "$CACHE"
    mv "$CACHE/llama_cpp_python-0.3.36" "$CACHE/llama-cpp-python-0.3.36"
fi
LLAMA_BENCH="$CACHE/llama-build/bin/llama-bench"
if [ ! -x "$LLAMA_BENCH" ]; then
    log "building llama-bench (CPU, native; about 8 minutes on 2 cores)"
    cmake -S "$LLAMA_SRC" -B "$CACHE/llama-build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TESTS=OFF >/dev/null
    cmake --build "$CACHE/llama-build" --target llama-bench -j "$(nproc)"
fi

# 3. dsv4 and the slice model.
log "building dsv4 (release)"
cargo build --release -q -p dsv4-cli
DSV4="$ROOT/target/release/dsv4"
MODEL="$CACHE/slice-q2.gguf"
if [ ! -f "$MODEL" ]; then
    log "synthesising the slice model (q2 mix, 32 experts)"
    "$DSV4" synth --preset slice --quant q2 --out "$MODEL"
fi

# 4. Alternating runs.
OUT="$CACHE/results"
mkdir -p "$OUT"
rm -f "$OUT"/*.csv "$OUT"/*.json
for r in $(seq 1 "$RUNS"); do
    log "run $r/$RUNS: llama.cpp"
    "$LLAMA_BENCH" -m "$MODEL" -t "$THREADS" -p "$PROMPTS" -n "$GEN" -r 1 -o json > "$OUT/llama-$r.json" 2>"$OUT/llama-$r.log" \
        || { log "llama-bench failed, see $OUT/llama-$r.log"; tail -20 "$OUT/llama-$r.log" >&2; exit 1; }
    log "run $r/$RUNS: dsv4"
    "$DSV4" bench -m "$MODEL" --threads "$THREADS" --prompt-tokens "$PROMPTS" --ctx-sweep 1 --gen "$GEN" \
        --batch 1,4 --runs 1 --prefill-chunk 512 --csv "$OUT/dsv4-$r.csv" >/dev/null 2>"$OUT/dsv4-$r.log" \
        || { log "dsv4 bench failed, see $OUT/dsv4-$r.log"; tail -20 "$OUT/dsv4-$r.log" >&2; exit 1; }
done

# 5. Medians and ratios.
python3 - "$OUT" "$RUNS" "$THREADS" "$MODEL" <<'PY'
import csv, json, statistics, sys, os, platform, subprocess
out, runs, threads, model = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
llama, dsv4, bw = {}, {}, []
for r in range(1, runs + 1):
    for row in json.load(open(f"{out}/llama-{r}.json")):
        key = ("prefill", row["n_prompt"]) if row["n_prompt"] > 0 else ("decode", 1)
        llama.setdefault(key, []).append(row["avg_ts"])
    for row in csv.DictReader(open(f"{out}/dsv4-{r}.csv")):
        kind, ctx, ses = row["kind"], int(row["ctx"]), int(row["sessions"])
        key = (kind, ctx) if kind != "batch" else ("batch", ses)
        dsv4.setdefault(key, []).append(float(row["tokens_per_s"]))
        bw.append(float(row["bandwidth_gb_per_s"]))
        bpt = float(row["bytes_per_token"])
med = lambda v: statistics.median(v) if v else float("nan")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
print(f"machine: {cpu}, {os.cpu_count()} cores, {threads} threads; median of {runs} alternating runs")
print(f"model: {os.path.basename(model)}, {bpt/1e9:.3f} GB of weights read per decoded token")
print(f"measured read bandwidth: {med(bw):.1f} GB/s -> decode ceiling {med(bw)*1e9/bpt:.2f} t/s")
print(f"{'test':<16} {'llama.cpp t/s':>14} {'dsv4 t/s':>10} {'dsv4/llama':>11}")
for key, name in [(("prefill", 512), "prefill 512"), (("prefill", 4096), "prefill 4096"), (("decode", 1), "decode")]:
    a, b = med(llama.get(key, [])), med(dsv4.get(key, []))
    if a == a or b == b:
        print(f"{name:<16} {a:>14.2f} {b:>10.2f} {b/a if a else float('nan'):>10.2f}x")
d1, d4 = med(dsv4.get(("batch", 1), [])), med(dsv4.get(("batch", 4), []))
print(f"dsv4 decode at {med(dsv4.get(('decode',1),[]))*bpt/1e9:.1f} GB/s = {100*med(dsv4.get(('decode',1),[]))*bpt/1e9/med(bw):.0f}% of the measured bandwidth")
print(f"dsv4 aggregate decode, 4 sessions: {d4:.2f} t/s = {d4/d1:.2f}x one session ({d1:.2f} t/s)")
PY
