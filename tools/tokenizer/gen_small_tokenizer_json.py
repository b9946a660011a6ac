"""Regenerate crates/tokenizer/tests/fixtures/small_tokenizer.json.zst.

Run from the repository root:
    tools/tokenizer/run.sh tools/tokenizer/gen_small_tokenizer_json.py

A cut-down copy of the real DeepSeek V4 tokenizer.json (same normaliser,
pre-tokenizer, decoder and added tokens; the first 3000 merges and the vocab
entries they need, ids unchanged) plus HF `tokenizers` ids for sample texts
encoded with that file. It exercises `Tokenizer::from_tokenizer_json` on the
real file format without committing a second copy of the full vocabulary.
"""

import json

import zstandard
from tokenizers import Tokenizer

import refs

OUT = refs.REPO / "crates" / "tokenizer" / "tests" / "fixtures" / "small_tokenizer.json.zst"
N_MERGES = 3000

TEXTS = [
    "Hello world! The quick brown fox jumps over the lazy dog.",
    "def main():\n    print('hi')  # comment\n\n\treturn 0\r\n",
    "数字 12345678 和 日本語のテキスト・カナ、and ＡＢＣ",
    "   leading spaces and trailing   ",
    "émoji 👩\u200d💻 and combining e\u0301\u0301",
    "مرحبا بالعالم — नमस्ते दुनिया",
    "x" * 300 + " " * 50 + "\n" * 5,
    "",
]


def main():
    doc = json.loads(refs.tokenizer_json())
    model = doc["model"]
    merges = model["merges"][:N_MERGES]
    keep = {tok for tok, idx in model["vocab"].items() if idx < 259}
    for merge in merges:
        left, right = merge.split(" ")
        keep.update((left, right, left + right))
    model["vocab"] = {tok: idx for tok, idx in model["vocab"].items() if tok in keep}
    model["merges"] = merges
    small = json.dumps(doc, ensure_ascii=False)
    tok = Tokenizer.from_str(small)
    cases = [{"text": t, "ids": tok.encode(t, add_special_tokens=False).ids} for t in TEXTS]
    payload = json.dumps({"tokenizer_json": small, "cases": cases}, ensure_ascii=False)
    packed = zstandard.ZstdCompressor(level=19).compress(payload.encode("utf-8"))
    OUT.write_bytes(packed)
    print(f"{OUT.relative_to(refs.REPO)}: {len(model['vocab'])} vocab, {len(merges)} merges, "
          f"{len(cases)} cases, {len(packed)} bytes")


if __name__ == "__main__":
    main()
