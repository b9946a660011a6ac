"""Compare dsv4's tokenizer with HF `tokenizers` on the same text, one thread each.

Called by benchmarks/tokenizer/run.sh (which builds the Rust example first).
Workloads come from the tokenizer golden corpus
(crates/tokenizer/tests/fixtures/token_corpus.jsonl.zst, 2.3 MB of synthesized
multilingual text, code, emoji, whitespace and odd code points), repeated to a
few MB: "all" is every document, "code+prose" only the code and natural-script
documents. Both sides encode document by document, as plain text, with the real
DeepSeek V4 vocabulary; MB/s uses 10^6 bytes of UTF-8 input.
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import zstandard  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools" / "tokenizer"))
import refs  # noqa: E402

CORPUS = refs.REPO / "crates" / "tokenizer" / "tests" / "fixtures" / "token_corpus.jsonl.zst"
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", refs.REPO / "target"))
EXAMPLE = TARGET / "release" / "examples" / "bench_tokenize"
REPEAT = 3


def load_docs():
    raw = zstandard.ZstdDecompressor().decompress(CORPUS.read_bytes(), max_output_size=1 << 30)
    return [json.loads(line) for line in raw.decode("utf-8").split("\n") if line]


def hf_bench(tok, texts):
    best, n = float("inf"), 0
    for _ in range(REPEAT):
        t = time.perf_counter()
        n = sum(len(tok.encode(x, add_special_tokens=False).ids) for x in texts)
        best = min(best, time.perf_counter() - t)
    return best, n


def main():
    docs = load_docs()
    workloads = {
        "all": [d["text"] for d in docs] * 2,
        "code+prose": [d["text"] for d in docs if d["name"].startswith(("code_", "prose_"))] * 3,
    }
    tok = refs.hf_tokenizer(plain=True)
    print(f"{'workload':<12} {'MB':>6} {'tokens':>9} {'HF MB/s':>9} {'dsv4 MB/s':>10} {'ratio':>7}")
    for name, texts in workloads.items():
        size = sum(len(t.encode("utf-8")) for t in texts)
        hf_s, hf_n = hf_bench(tok, texts)
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", encoding="utf-8", delete=False) as f:
            for t in texts:
                f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
            path = f.name
        try:
            out = subprocess.run([str(EXAMPLE), path, str(REPEAT)], check=True, capture_output=True, text=True).stdout
        finally:
            os.unlink(path)
        ours = json.loads(out)
        if ours["tokens"] != hf_n:
            raise SystemExit(f"{name}: token counts differ (dsv4 {ours['tokens']}, HF {hf_n})")
        hf_mbs = size / hf_s / 1e6
        print(f"{name:<12} {size / 1e6:>6.2f} {hf_n:>9} {hf_mbs:>9.2f} {ours['mb_per_s']:>10.2f} "
              f"{ours['mb_per_s'] / hf_mbs:>6.1f}x")
    print(f"(dsv4 builtin vocabulary load: {ours['load_ms']:.1f} ms; tokenizers {__import__('tokenizers').__version__})")


if __name__ == "__main__":
    main()
