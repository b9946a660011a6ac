#!/usr/bin/env python3
"""Golden fixtures for dsv4-quant, produced by gguf-py (PyPI `gguf==0.19.0`).

gguf-py's NumPy (de)quantizers are an implementation independent of ours; the
Rust tests in `crates/quant/tests/golden.rs` require bit-identical results.

Usage (from anywhere):  python3 tools/quant-golden/gen.py
The script creates `tools/quant-golden/.venv` with the pinned requirements on
first run (git-ignored), re-executes itself inside it, and rewrites
`crates/quant/tests/fixtures/`. The random data is seeded, so re-running it
reproduces the committed files byte for byte.

Written per weight type T (lower-case name):
  T.blocks.bin   random raw blocks with valid structure (finite f16 scales,
                 E8M0 exponents below 255, any code bits)
  T.dequant.f32  gguf.quants.dequantize(blocks, T) as little-endian f32
and for the types gguf-py can quantize (Q8_0, Q4_0, MXFP4, BF16, F16):
  quant_input.f32        finite inputs (normal data plus adversarial blocks)
  quant_input_bits.f32   raw f32 bit patterns incl. NaNs and ties (BF16 only)
  T.quant.bin            gguf.quants.quantize(input, T) bytes

A second reference covers what gguf-py lacks (the Q4_K, Q2_K and Q8_K
quantizers and the dot products): ggml's own C code, from llama.cpp commit
0c1e57098 as vendored in the llama-cpp-python 0.3.36 sdist on PyPI (fetched
and SHA-256-checked through PyPI's simple index, or taken from
--llama-cpp-src DIR, a directory containing `ggml/`). `ggml_ref.c` is
compiled with the system C compiler (`cc`, override with $CC) and writes
  dot_act.f32, dot_w.T.bin   inputs written by this script (moderate scales)
  ggml_{q4_k,q2_k,q8_k}.quant.bin   quantize_row_*_ref(quant_input)
  ggml_act.{q8_0,q8_k}.bin          quantize_row_q8_{0,K}_ref(dot_act rows)
  ggml_dot.f32                      ggml_vec_dot_*_generic(dot_w.T, act rows)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv"
OUT = HERE.parent.parent / "crates" / "quant" / "tests" / "fixtures"
SEED = 20261123
SDIST = ("llama-cpp-python", "0.3.36")
GGML_DIR = VENV / "llama.cpp-0c1e57098"


def ensure_venv() -> None:
    """Re-run this script inside the pinned venv (created on first use)."""
    if os.environ.get("DSV4_QUANT_GOLDEN_VENV") == "1":
        return
    py = VENV / "bin" / "python"
    if not py.exists():
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
        subprocess.check_call(
            [str(py), "-m", "pip", "install", "-q", "-r", str(HERE / "requirements.txt")]
        )
    os.environ["DSV4_QUANT_GOLDEN_VENV"] = "1"
    os.execv(str(py), [str(py), str(Path(__file__).resolve()), *sys.argv[1:]])


def fetch_ggml_sources() -> Path:
    """Unpack `ggml/` of the pinned llama-cpp-python sdist into GGML_DIR."""
    if (GGML_DIR / "ggml" / "src" / "ggml-quants.c").exists():
        return GGML_DIR
    name, version = SDIST
    # PyPI's simple index (PEP 691 JSON), the API pip itself uses.
    req = urllib.request.Request(
        f"https://pypi.org/simple/{name}/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    )
    index = json.load(urllib.request.urlopen(req))
    want = f"{name.replace('-', '_')}-{version}.tar.gz"
    sdist = next(f for f in index["files"] if f["filename"] == want)
    tgz = VENV / want
    if not tgz.exists():
        print(f"downloading {sdist['url']} ({sdist.get('size', '?')} bytes)")
        urllib.request.urlretrieve(sdist["url"], tgz)
    if hashlib.sha256(tgz.read_bytes()).hexdigest() != sdist["hashes"]["sha256"]:
        raise SystemExit(f"{tgz}: SHA-256 does not match PyPI's")
    marker = "/vendor/llama.cpp/ggml/"
    with tarfile.open(tgz) as tar:
        for m in tar.getmembers():
            if marker in m.name and m.isfile():
                rel = "ggml/" + m.name.split(marker, 1)[1]
                dst = GGML_DIR / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                assert src is not None
                dst.write_bytes(src.read())
    return GGML_DIR


def ggml_phase(args: argparse.Namespace, rng, write) -> None:
    """Inputs for the C reference, then build and run it."""
    import numpy as np

    k, nact = 1024, 4
    act = rng.standard_normal((nact, k)).astype(np.float32)
    act[0] *= np.float32(3.0)
    act[1] = np.abs(act[1]) * np.float32(0.01)  # all positive, small
    act[2, 100] = np.float32(-250.0)  # a spike with negative sign
    act[3] = -np.abs(act[3]) * np.float32(1e3)
    write("dot_act.f32", act.astype("<f4").tobytes())

    def f16(n: int, lo: float, hi: float) -> np.ndarray:
        v = rng.uniform(lo, hi, n) * rng.choice([-1.0, 1.0], n, p=[0.1, 0.9])
        return v.astype(np.float16).view(np.uint8).reshape(n, 2)

    def raw(n: int, m: int) -> np.ndarray:
        return rng.integers(0, 256, size=(n, m), dtype=np.uint8)

    nb, nk = k // 32, k // 256
    mx_e = rng.integers(118, 131, size=(nb, 1), dtype=np.uint8)
    rows = {
        "q8_0": np.concatenate([f16(nb, 1e-3, 2e-2), raw(nb, 32)], axis=1),
        "q4_0": np.concatenate([f16(nb, 1e-3, 2e-2), raw(nb, 16)], axis=1),
        "mxfp4": np.concatenate([mx_e, raw(nb, 16)], axis=1),
        "q2_k": np.concatenate([raw(nk, 80), f16(nk, 1e-3, 1e-2), f16(nk, 1e-3, 1e-2)], axis=1),
        "q4_k": np.concatenate([f16(nk, 1e-3, 1e-2), f16(nk, 1e-3, 1e-2), raw(nk, 140)], axis=1),
        "q6_k": np.concatenate([raw(nk, 208), f16(nk, 1e-4, 1e-3)], axis=1),
        "iq2_xxs": np.concatenate([f16(nk, 1e-3, 1e-2), raw(nk, 64)], axis=1),
    }
    for name, r in rows.items():
        write(f"dot_w.{name}.bin", np.ascontiguousarray(r, dtype=np.uint8).tobytes())

    src = Path(args.llama_cpp_src).resolve() if args.llama_cpp_src else fetch_ggml_sources()
    g = src / "ggml"
    exe = VENV / "ggml_ref"
    cc = os.environ.get("CC") or shutil.which("cc") or "gcc"
    subprocess.check_call([
        cc, "-O2", "-std=gnu11", "-ffp-contract=off", "-w",
        f"-I{g / 'include'}", f"-I{g / 'src'}", f"-I{g / 'src' / 'ggml-cpu'}",
        str(HERE / "ggml_ref.c"), str(g / "src" / "ggml-quants.c"),
        str(g / "src" / "ggml-cpu" / "quants.c"), "-lm", "-o", str(exe),
    ])
    subprocess.check_call([str(exe), str(OUT)])
    for name in ["ggml_q4_k.quant.bin", "ggml_q2_k.quant.bin", "ggml_q8_k.quant.bin",
                 "ggml_act.q8_0.bin", "ggml_act.q8_k.bin", "ggml_dot.f32"]:
        write(name, (OUT / name).read_bytes())


def main() -> None:
    ensure_venv()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llama-cpp-src", help="directory containing llama.cpp's ggml/ (skips the download)")
    args = parser.parse_args()
    import numpy as np
    import gguf
    from gguf import GGMLQuantizationType as T
    from gguf.quants import dequantize, quantize

    rng = np.random.default_rng(SEED)
    OUT.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, object] = {
        "generator": "tools/quant-golden/gen.py",
        "gguf": gguf.__version__ if hasattr(gguf, "__version__") else "0.19.0",
        "numpy": np.__version__,
        "seed": SEED,
        "files": {},
    }

    def write(name: str, data: bytes) -> None:
        (OUT / name).write_bytes(data)
        manifest["files"][name] = {  # type: ignore[index]
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }

    def f16_scales(n: int, lo: int = -14, hi: int = 3) -> np.ndarray:
        """n finite f16 scales as (n, 2) bytes: wide exponents, both signs,
        and a few specials (zero, a subnormal, the largest finite)."""
        mag = np.exp2(rng.uniform(lo, hi, n)) * rng.uniform(1.0, 2.0, n)
        v = (mag * rng.choice([-1.0, 1.0], n, p=[0.2, 0.8])).astype(np.float16)
        specials = np.array([0.0, 2.0**-20, 65504.0, -1.0], dtype=np.float16)
        v[: len(specials)] = specials[: min(len(specials), n)]
        return v.view(np.uint8).reshape(n, 2)

    def rand_bytes(n: int, m: int) -> np.ndarray:
        return rng.integers(0, 256, size=(n, m), dtype=np.uint8)

    # ---- raw blocks per type --------------------------------------------
    nb32, nbk = 128, 16  # 4096 elements each
    blocks: dict[str, tuple[int, np.ndarray]] = {}

    q8 = rand_bytes(nb32, 32)
    q8[0, :] = 0x80  # all -128: the most negative code
    q8[1, :] = 0x7F
    blocks["q8_0"] = (T.Q8_0, np.concatenate([f16_scales(nb32), q8], axis=1))
    q4 = rand_bytes(nb32, 16)
    q4[0, :] = 0xFF
    q4[1, :] = 0x00
    blocks["q4_0"] = (T.Q4_0, np.concatenate([f16_scales(nb32), q4], axis=1))

    e = rng.integers(100, 150, size=(nb32, 1), dtype=np.uint8)
    e[:6, 0] = [0, 1, 2, 127, 200, 254]  # denormal halves, unit, large, overflow to inf
    mx = rand_bytes(nb32, 16)
    mx[6, :] = 0x77  # all +6
    mx[7, :] = 0xFF  # all -6
    blocks["mxfp4"] = (T.MXFP4, np.concatenate([e, mx], axis=1))

    q2 = np.concatenate(
        [rand_bytes(nbk, 16), rand_bytes(nbk, 64), f16_scales(nbk), f16_scales(nbk)], axis=1
    )
    q2[0, :80] = 0xFF  # max scales, mins and codes
    blocks["q2_k"] = (T.Q2_K, q2)
    q4k = np.concatenate(
        [f16_scales(nbk), f16_scales(nbk), rand_bytes(nbk, 12), rand_bytes(nbk, 128)], axis=1
    )
    q4k[0, 4:] = 0xFF
    blocks["q4_k"] = (T.Q4_K, q4k)
    q6 = np.concatenate(
        [rand_bytes(nbk, 128), rand_bytes(nbk, 64), rand_bytes(nbk, 16), f16_scales(nbk)], axis=1
    )
    q6[0, 192:208] = 0x80  # scales of -128
    q6[1, :192] = 0xFF  # all codes 63
    blocks["q6_k"] = (T.Q6_K, q6)
    iq = np.concatenate([f16_scales(nbk), rand_bytes(nbk, 64)], axis=1)
    iq[0, 2:] = 0xFF  # last grid entry, all-negative signs, scale 15
    blocks["iq2_xxs"] = (T.IQ2_XXS, iq)

    f32 = rng.standard_normal(4096).astype(np.float32) * np.float32(100.0)
    f32[:6] = np.array([0.0, -0.0, np.inf, -np.inf, 1e-42, 3.4e38], dtype=np.float32)
    blocks["f32"] = (T.F32, f32.view(np.uint8).reshape(-1, 4))
    h = rng.integers(0, 1 << 16, size=4096, dtype=np.uint16)
    h = np.where((h & 0x7C00) == 0x7C00, h & 0xFBFF, h)  # no NaN/Inf from random bits
    h[:6] = [0x0000, 0x8000, 0x0001, 0x03FF, 0x7BFF, 0x7C00]  # ±0, subnormals, max, +inf
    blocks["f16"] = (T.F16, h.view(np.uint8).reshape(-1, 2))
    b = rng.integers(0, 1 << 16, size=4096, dtype=np.uint16)
    b[:4] = [0x7FC1, 0xFF81, 0x7F80, 0x0001]  # NaNs keep their payload; inf; denormal
    blocks["bf16"] = (T.BF16, b.view(np.uint8).reshape(-1, 2))

    for name, (qt, raw) in blocks.items():
        raw = np.ascontiguousarray(raw, dtype=np.uint8)
        deq = dequantize(raw.reshape(-1), qt).astype(np.float32, copy=False)
        write(f"{name}.blocks.bin", raw.tobytes())
        write(f"{name}.dequant.f32", deq.astype("<f4").tobytes())

    # ---- quantizer inputs ------------------------------------------------
    x = rng.standard_normal((128, 32)).astype(np.float32)
    x *= np.exp(rng.uniform(-9.0, 9.0, (128, 1))).astype(np.float32)
    x[0] = 0.0  # all-zero block
    x[1] = 0.0
    x[1, 5] = -3.0  # single negative spike
    x[2] = np.arange(32, dtype=np.float32) - 15.5  # evenly spread, ties for Q4_0
    x[3] = np.where(np.arange(32) % 2 == 0, 0.5, -1.5).astype(np.float32)
    x[3, 0] = 127.0  # d = 1 exactly: halves must round away from zero
    x[4] = 1e-30  # scale underflows f16 to zero
    x[5] = rng.standard_normal(32).astype(np.float32) * np.float32(60000.0)
    x[6] = -7.0  # constant negative block
    xin = x.reshape(-1)
    write("quant_input.f32", xin.astype("<f4").tobytes())
    for name, qt in [("q8_0", T.Q8_0), ("q4_0", T.Q4_0), ("mxfp4", T.MXFP4), ("f16", T.F16)]:
        q = np.asarray(quantize(xin.reshape(16, 256), qt))
        write(f"{name}.quant.bin", q.view(np.uint8).tobytes())

    bits = rng.integers(0, 1 << 32, size=4096, dtype=np.uint64).astype(np.uint32)
    bits[:8] = [
        0x7FC00001,  # quiet NaN with payload
        0x7F800001,  # signalling NaN
        0xFF800000,  # -inf
        0x3F808000,  # tie, even below: rounds down
        0x3F818000,  # tie, odd below: rounds up
        0x7F7FFFFF,  # largest finite: rounds to inf
        0x00008000,  # denormal tie
        0x80000000,  # -0
    ]
    write("quant_input_bits.f32", bits.astype("<u4").tobytes())
    q = np.asarray(quantize(bits.view(np.float32).reshape(16, 256), T.BF16))
    write("bf16.quant.bin", q.view(np.uint8).tobytes())

    ggml_phase(args, rng, write)

    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    total = sum(f["bytes"] for f in manifest["files"].values())  # type: ignore[union-attr]
    print(f"wrote {len(manifest['files'])} files, {total} bytes, to {OUT}")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
