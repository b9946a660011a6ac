"""A small byte-level BPE tokenizer with DeepSeek V3/V4's pre-tokenizer, trained deterministically.

Special tokens take ids 0..5 (BOS 0, EOS 1 as in DeepSeek V4), the 256 GPT-2 byte symbols follow,
and BPE merges fill the vocabulary up to `vocab_size`. The pre-tokenizer and decoder settings are
the ones of the official V4 `tokenizer.json` (model-spec.md §9.1), so the GGUF declares
`tokenizer.ggml.pre = "joyai-llm"` truthfully; only the vocabulary and merges are ours.
"""

import json

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

SPECIAL_TOKENS = [
    "<｜begin▁of▁sentence｜>",
    "<｜end▁of▁sentence｜>",
    "<｜User｜>",
    "<｜Assistant｜>",
    "<think>",
    "</think>",
]
BOS_ID, EOS_ID = 0, 1

# model-spec.md §9.1, the third Split of the DeepSeek-V3/V4 pre-tokenizer.
_WORD_REGEX = (
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
    "| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"
)

_CORPUS = """\
The quick brown fox jumps over the lazy dog. A compressed sparse attention layer pools four tokens
into one row and lets a lightning indexer choose which rows each query may read. Heavily compressed
attention pools one hundred and twenty-eight tokens into a single row that every later query sees.
fn main() { let x = vec![1, 2, 3]; println!("{:?}", x.iter().sum::<i32>()); }
def forward(self, x):\n    return self.norm(x) * 2.0 + 1e-6\n
The mixture of experts routes every token to a few experts; hash routing picks them from a table.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 128 256 512 1024 2048 4096 65536 1048576 3.14159 2.71828
Punctuation: (a, b) [c; d] {e: f} <g/> "h" 'i' `j` ~k! @l # $m % ^n & *o - p_q + r = s | t \\ u ? v.
Unicode: café naïve résumé 東京 ひらがな カタカナ Привет мир — “quotes” ‘single’ … ✓ 🚀
"""


def build(vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE(dropout=None, unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex("\\p{N}{1,3}"), behavior="isolated", invert=False),
            pre_tokenizers.Split(Regex("[一-龥぀-ゟ゠-ヿ]+"), behavior="isolated", invert=False),
            pre_tokenizers.Split(Regex(_WORD_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=1,
        show_progress=False,
    )
    tok.train_from_iterator([_CORPUS] * 3, trainer)
    if tok.get_vocab_size() != vocab_size:
        raise SystemExit(f"tokenizer has {tok.get_vocab_size()} ids, wanted {vocab_size}; enlarge the corpus")
    for i, s in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(s) == i
    return tok


def gguf_vocab(tok: Tokenizer):
    """(tokens, token_types, merges) in llama.cpp's `gpt2` tokenizer convention."""
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    n = tok.get_vocab_size()
    tokens = [""] * n
    for s, i in vocab.items():
        tokens[i] = s
    types = [1] * n  # NORMAL
    for a in data["added_tokens"]:
        tokens[a["id"]] = a["content"]
        types[a["id"]] = 3  # CONTROL
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    assert all(tokens), "vocabulary ids must be dense"
    return tokens, types, merges


def save_hf_files(tok: Tokenizer, out_dir) -> None:
    """tokenizer.json + tokenizer_config.json as the official release lays them out."""
    tok.save(str(out_dir / "tokenizer.json"))
    cfg = {
        "add_bos_token": False,
        "add_eos_token": False,
        "bos_token": SPECIAL_TOKENS[BOS_ID],
        "eos_token": SPECIAL_TOKENS[EOS_ID],
        "pad_token": SPECIAL_TOKENS[EOS_ID],
        "model_max_length": 1048576,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": False,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")
