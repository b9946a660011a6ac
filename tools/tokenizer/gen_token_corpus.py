"""Regenerate crates/tokenizer/tests/fixtures/token_corpus.jsonl.zst.

Run from the repository root:
    tools/tokenizer/run.sh tools/tokenizer/gen_token_corpus.py

The corpus is synthesized here, deterministically (fixed seed), from code
templates, per-script syllable and character inventories, emoji sequences,
digit and whitespace runs, and odd code points; no third-party text is used.
Each document's expected token ids come from HF `tokenizers` 0.23.3 with the real
DeepSeek V4 tokenizer.json, with its added tokens removed: dsv4 encodes plain
text without matching special-token strings (typed `<｜User｜>` stays text).

Output: zstd-compressed JSON lines {"name": ..., "text": ..., "ids": [...]}.
"""

import json
import random

import unicodedata2
import zstandard

import refs

OUT = refs.REPO / "crates" / "tokenizer" / "tests" / "fixtures" / "token_corpus.jsonl.zst"
SEED = 20260731
TARGET_BYTES = 2_300_000

R = random.Random(SEED)


def rand_range_chars(lo, hi, n):
    return "".join(chr(R.randint(lo, hi)) for _ in range(n))


# ---------------------------------------------------------------- identifiers
SYLLABLES = ["ka", "lo", "mi", "ren", "tor", "vex", "qua", "zed", "pul", "sar", "nim", "bo",
             "dra", "fen", "gil", "hum", "jor", "kel", "lun", "mox"]


def ident(style="snake"):
    parts = [R.choice(SYLLABLES) + R.choice(SYLLABLES) for _ in range(R.randint(1, 3))]
    if style == "snake":
        return "_".join(parts)
    if style == "camel":
        return parts[0] + "".join(p.capitalize() for p in parts[1:])
    if style == "pascal":
        return "".join(p.capitalize() for p in parts)
    return "-".join(parts)


def number():
    kind = R.randint(0, 5)
    if kind == 0:
        return str(R.randint(0, 10 ** R.randint(1, 12)))
    if kind == 1:
        return f"{R.uniform(-1e6, 1e6):.{R.randint(1, 9)}f}"
    if kind == 2:
        return f"0x{R.randint(0, 2**32):08X}"
    if kind == 3:
        return f"{R.uniform(0, 10):.3e}"
    if kind == 4:
        return "".join(R.choice("0123456789") for _ in range(R.randint(4, 40)))
    return str(R.randint(-999, 999))


def words(n):
    return " ".join(R.choice(SYLLABLES) + R.choice(SYLLABLES) for _ in range(n))


# ---------------------------------------------------------------- code
def code_python():
    lines = [f"def {ident()}({ident()}, {ident()}={number()}):",
             f'    """{words(R.randint(3, 12)).capitalize()}."""']
    for _ in range(R.randint(3, 12)):
        ind = "    " * R.randint(1, 3)
        lines.append(R.choice([
            f"{ind}{ident()} = {ident()}.{ident()}({number()}, '{words(2)}')",
            f"{ind}if {ident()} >= {number()} and not {ident()}:",
            f"{ind}return [{ident()} ** 2 for {ident()} in range({number()})]",
            f"{ind}# {words(R.randint(2, 9))}",
            f"{ind}print(f\"{{{ident()}!r}}: {words(2)}\")",
            f"{ind}{ident()} += {number()}  # {words(3)}",
        ]))
    return "\n".join(lines) + "\n"


def code_rust():
    name = ident("pascal")
    body = [f"/// {words(R.randint(4, 10))}.", f"pub struct {name} {{"]
    body += [f"    pub {ident()}: {R.choice(['u32', 'Vec<String>', 'Option<&str>', 'f64'])}," for _ in range(R.randint(2, 5))]
    body += ["}", "", f"impl {name} {{", f"    fn {ident()}(&self) -> Result<(), Error> {{"]
    for _ in range(R.randint(2, 8)):
        body.append(R.choice([
            f"        let {ident()} = self.{ident()}.iter().map(|x| x * {number()}).collect::<Vec<_>>();",
            f"        if {ident()} != {number()} {{ return Err(Error::{ident('pascal')}); }}",
            f"        println!(\"{{:?}} {words(2)}\", {ident()});",
            f"        // {words(R.randint(2, 8))}",
        ]))
    body += ["        Ok(())", "    }", "}"]
    return "\n".join(body) + "\n"


def code_c():
    out = [f"#include <{ident()}.h>", f"static int {ident()}(const char *{ident()}, size_t n) {{"]
    for _ in range(R.randint(3, 9)):
        out.append(R.choice([
            f"\tfor (size_t i = 0; i < n; ++i) {{ {ident()}[i] ^= 0x{R.randint(0, 255):02x}; }}",
            f"\tif ({ident()} == NULL) return -{R.randint(1, 99)};",
            f"\t/* {words(R.randint(2, 7))} */",
            f"\tprintf(\"%d %s\\n\", {ident()}, \"{words(2)}\");",
        ]))
    out.append("}")
    return "\r\n".join(out) + "\r\n"


def code_js():
    out = [f"export async function {ident('camel')}({ident('camel')}, {{ {ident('camel')} = {number()} }}) {{"]
    for _ in range(R.randint(3, 9)):
        out.append(R.choice([
            f"  const {ident('camel')} = await fetch(`/api/{ident('kebab')}/${{{ident('camel')}}}`);",
            f"  if ({ident('camel')} === null || {ident('camel')}?.length > {number()}) throw new Error('{words(3)}');",
            f"  return {ident('camel')}.filter((x) => x !== undefined).map(x => x * 2);",
            f"  // TODO: {words(4)}",
        ]))
    out.append("}")
    return "\n".join(out) + "\n"


def code_misc():
    kind = R.randint(0, 7)
    if kind == 0:
        return "\n".join(f"SELECT {ident()}, COUNT(*) AS n FROM {ident()} WHERE {ident()} > {number()} GROUP BY 1;" for _ in range(R.randint(2, 6))) + "\n"
    if kind == 1:
        return "<div class=\"{0}\">\n  <p>{1}</p>\n  <a href=\"https://{2}.example/{3}?q={4}&amp;x=1\">{5}</a>\n</div>\n".format(
            ident("kebab"), words(8), ident("kebab"), ident(), number(), words(2))
    if kind == 2:
        obj = {ident(): [number(), words(2), {ident(): None, ident(): True}] for _ in range(R.randint(2, 5))}
        return json.dumps(obj, indent=R.choice([None, 2, 4]), ensure_ascii=R.choice([True, False])) + "\n"
    if kind == 3:
        return "\n".join(f"{'  ' * R.randint(0, 3)}{ident()}: {R.choice([number(), words(2), '[a, b]', 'null'])}" for _ in range(R.randint(3, 10))) + "\n"
    if kind == 4:
        return f"(defun {ident('kebab')} (x y)\n  (let ((z (* x {number()})))\n    (if (> z y) '{ident('kebab')} (list x y z))))\n"
    if kind == 5:
        return f"#!/bin/sh\nset -eu\nfor f in \"$@\"; do\n\tgrep -rn '{words(1)}' \"$f\" | awk -F: '{{print $1}}' >> /tmp/{ident()}.log\ndone\n"
    if kind == 6:
        return f"\\begin{{equation}}\n  \\int_0^\\infty e^{{-x^2}}\\,dx = \\frac{{\\sqrt{{\\pi}}}}{{2}} \\quad {words(2)}\n\\end{{equation}}\n"
    return f"## {words(3).title()}\n\n- **{words(2)}**: `{ident()}()` — {words(6)}.\n- [{words(1)}](https://example.org/{ident()})\n\n> {words(9)}\n"


# ---------------------------------------------------------------- scripts
def syllabic(consonants, vowels, marks=(), mark_p=0.0, sep=" ", n=None):
    out = []
    for _ in range(n or R.randint(20, 60)):
        w = ""
        for _ in range(R.randint(1, 4)):
            w += R.choice(consonants) + R.choice(vowels)
            if marks and R.random() < mark_p:
                w += R.choice(marks)
        out.append(w)
    return sep.join(out)


def rng_chars(lo, hi):
    return [chr(c) for c in range(lo, hi + 1)]


def assigned(chars):
    return [c for c in chars if unicodedata2.category(c) != "Cn"]


LATIN = list("bcdfghjklmnprstvwz")
LATIN_V = list("aeiouyàâäéèêëïîôöùûüÿœæåøãõñçßőű")
CYR = rng_chars(0x0431, 0x0448)
CYR_V = list("аеиоуыэюяё")
GREEK = rng_chars(0x03B2, 0x03C9)
GREEK_V = list("αεηιουωάέήίόύώϊΐ")
ARABIC = rng_chars(0x0628, 0x064A)
HARAKAT = rng_chars(0x064B, 0x0652)
HEBREW = rng_chars(0x05D0, 0x05EA)
NIQQUD = rng_chars(0x05B0, 0x05BC)
DEVA = rng_chars(0x0915, 0x0939)
MATRA = rng_chars(0x093E, 0x094C) + ["\u094D", "\u0902", "\u0901", "\u093C"]
BENGALI = rng_chars(0x0995, 0x09B9)
BENG_V = rng_chars(0x09BE, 0x09CC) + ["\u09CD"]
TAMIL = assigned(rng_chars(0x0B95, 0x0BB9))
TAMIL_V = assigned(rng_chars(0x0BBE, 0x0BCD))
THAI = assigned(rng_chars(0x0E01, 0x0E2E))
THAI_V = assigned(rng_chars(0x0E30, 0x0E3A)) + assigned(rng_chars(0x0E47, 0x0E4E))
GEORGIAN = rng_chars(0x10D0, 0x10F0)
ARMENIAN = rng_chars(0x0561, 0x0586)
ETHIOPIC = assigned(rng_chars(0x1200, 0x135A))


def prose():
    kind = R.randint(0, 15)
    if kind == 0:
        return syllabic(LATIN + [c.upper() for c in LATIN], LATIN_V) + ". " + words(5)
    if kind == 1:
        return syllabic(CYR, CYR_V) + ", " + syllabic(CYR, CYR_V, n=5) + "."
    if kind == 2:
        return syllabic(GREEK, GREEK_V) + "; " + syllabic(GREEK, GREEK_V, n=4)
    if kind == 3:
        return syllabic(ARABIC, ["ا", "و", "ي", ""], HARAKAT, 0.6) + "، " + syllabic(ARABIC, ["ا", ""], n=8) + "؟"
    if kind == 4:
        return syllabic(HEBREW, [""], NIQQUD, 0.7)
    if kind == 5:
        return syllabic(DEVA, MATRA + [""], ["\u094D" + R.choice(DEVA)], 0.3) + "।"
    if kind == 6:
        return syllabic(BENGALI, BENG_V + [""]) + " " + syllabic(TAMIL, TAMIL_V + [""])
    if kind == 7:
        return syllabic(THAI, THAI_V + [""], sep="")
    if kind == 8:
        return syllabic(GEORGIAN, [""]) + " " + syllabic(ARMENIAN, [""]) + " " + syllabic(ETHIOPIC, [""])
    if kind == 9:
        return " ".join(rand_range_chars(0xAC00, 0xD7A3, R.randint(1, 5)) for _ in range(R.randint(20, 60))) + "."
    if kind == 10:  # Chinese: CJK range of step 2, extension A/B outside it, punctuation
        parts = []
        for _ in range(R.randint(10, 40)):
            parts.append(rand_range_chars(0x4E00, 0x9FA5, R.randint(1, 12)))
            parts.append(R.choice(["，", "。", "、", "；", "：", "？", "！", "“", "”", "《", "》", " ", "", "\n"]))
            if R.random() < 0.1:
                parts.append(rand_range_chars(0x3400, 0x4DBF, 2) + rand_range_chars(0x20000, 0x2A6DF, 2) + rand_range_chars(0x9FA6, 0x9FFF, 1))
            if R.random() < 0.2:
                parts.append(R.choice(["GPU", "API", " DeepSeek", "V4", "2026年", "3.14", "ＡＢＣ１２３"]))
        return "".join(parts)
    if kind == 11:  # Japanese
        parts = []
        for _ in range(R.randint(10, 40)):
            parts.append(rand_range_chars(0x3041, 0x3096, R.randint(1, 6)))
            parts.append(rand_range_chars(0x30A1, 0x30FA, R.randint(0, 6)))
            parts.append(R.choice(["ー", "・", "゛", "゜", "ゝ", "ヽ", "\u3099", "\u309A", "〜", "「", "」", "。", "、", ""]))
            parts.append(rand_range_chars(0x4E00, 0x9FA5, R.randint(0, 3)))
            if R.random() < 0.1:
                parts.append(rand_range_chars(0xFF66, 0xFF9D, 3))  # half-width katakana
        return "".join(parts)
    if kind == 12:  # full-width forms
        return "".join(rand_range_chars(0xFF01, 0xFF5E, R.randint(1, 10)) + R.choice(["", " ", "\u3000", "。"]) for _ in range(R.randint(20, 60)))
    if kind == 13:  # Vietnamese-like with combining marks instead of precomposed letters
        return " ".join(R.choice("aeiouy") + R.choice(["\u0300", "\u0301", "\u0303", "\u0309", "\u0323", "\u0302\u0301", ""]) + R.choice("nmtc") for _ in range(R.randint(20, 80)))
    if kind == 14:  # mixed scripts inside words
        return " ".join(R.choice(LATIN) + R.choice(CYR) + R.choice(GREEK) + R.choice(ARABIC) + R.choice(DEVA) for _ in range(R.randint(10, 40)))
    return words(R.randint(30, 120)).capitalize() + "."


# ---------------------------------------------------------------- emoji
EMOJI_BASE = ["😀", "😂", "🥲", "🤖", "🚀", "🦙", "🐉", "🍣", "⚽", "🎉", "✅", "❌", "⭐", "🔥", "💡", "🧪"]
PEOPLE = ["👩", "👨", "🧑", "👧", "👦"]
TONES = ["\U0001F3FB", "\U0001F3FC", "\U0001F3FD", "\U0001F3FE", "\U0001F3FF"]


def emoji_seq():
    kind = R.randint(0, 7)
    if kind == 0:
        return "\u200d".join(R.choice(PEOPLE) for _ in range(R.randint(2, 4)))
    if kind == 1:
        return R.choice(["👍", "👋", "🙏", "💪"]) + R.choice(TONES)
    if kind == 2:
        return chr(0x1F1E6 + R.randint(0, 25)) + chr(0x1F1E6 + R.randint(0, 25))
    if kind == 3:
        return R.choice("0123456789#*") + "\ufe0f\u20e3"
    if kind == 4:
        return R.choice(["❤", "☀", "✈", "☎"]) + R.choice(["\ufe0f", "\ufe0e", ""])
    if kind == 5:
        return "🏴" + "".join(chr(0xE0000 + ord(c)) for c in R.choice(["gbsct", "gbeng", "gbwls"])) + "\U000E007F"
    if kind == 6:
        return R.choice(PEOPLE) + R.choice(TONES) + "\u200d" + R.choice(["💻", "🔬", "🚒", "🎨"])
    return R.choice(EMOJI_BASE) * R.randint(1, 5)


def emoji_doc():
    return "".join(R.choice([emoji_seq(), " ", words(1), emoji_seq() + emoji_seq(), "\n", "! ", "…"]) for _ in range(R.randint(50, 200)))


# ---------------------------------------------------------------- numbers and whitespace
DIGIT_SETS = ["0123456789", "٠١٢٣٤٥٦٧٨٩", "۰۱۲۳۴۵۶۷۸۹", "०१२३४५६७८९", "০১২৩৪৫৬৭৮৯", "０１２３４５６７８９",
              "𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗", "²³¹¼½¾", "ⅠⅡⅢⅣⅫⅯ", "①②③⑳", "〇一二三"]


def numbers_doc():
    parts = []
    for _ in range(R.randint(40, 150)):
        ds = R.choice(DIGIT_SETS)
        parts.append("".join(R.choice(ds) for _ in range(R.randint(1, R.choice([3, 8, 40, 200])))))
        parts.append(R.choice([" ", ",", ".", "-", "e+", "/", "\n", "", "x", "%", " = ", "$", "€"]))
    return "".join(parts)


WS = [" ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2028", "\u2029", "\u0085", "\u000b", "\u000c",
      "\u2003", "\u202f", "\u205f", "\u1680", "\u200b", "\ufeff"]


def whitespace_doc():
    parts = []
    for _ in range(R.randint(40, 150)):
        parts.append(R.choice([
            " " * R.randint(1, 300),
            "\t" * R.randint(1, 20),
            "".join(R.choice(WS) for _ in range(R.randint(1, 12))),
            "\n" * R.randint(1, 8),
            "\r\n" * R.randint(1, 5),
            "  \n  \n",
            " \r \n\r\n ",
        ]))
        parts.append(R.choice([words(R.randint(1, 4)), ident(), "{", "}", ";", "1", "日本", "é", "\u0301x", "->", "", "."]))
    return "".join(parts)


# ---------------------------------------------------------------- odd code points
UNASSIGNED = [c for c in range(0x0370, 0x2FFFF) if unicodedata2.category(chr(c)) == "Cn"
              and not 0xD800 <= c <= 0xDFFF]
COMBINING = rng_chars(0x0300, 0x036F) + rng_chars(0x1AB0, 0x1ABE) + rng_chars(0x20D0, 0x20F0)
FORMAT = ["\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u202a", "\u202e", "\u2066", "\u2069", "\u00ad", "\ufeff", "\u2060", "\u061c"]
CONTROLS = [chr(c) for c in list(range(0, 9)) + [14, 15, 27, 31, 127] + list(range(0x80, 0xA0))]
SPECIAL_STRINGS = ["<｜User｜>", "<｜Assistant｜>", "｜DSML｜", "<think>", "</think>", "<｜begin▁of▁sentence｜>",
                   "<｜end▁of▁sentence｜>", "<｜latest_reminder｜>", "<｜action｜>", "<｜place▁holder▁no▁799｜>",
                   "<｜fim▁hole｜>", "<|place_holder_mm_span_0021|>", "<dsml:", "<｜image｜>", "<｜/table>｜", "<|EOT|>"]


def odd_char():
    kind = R.randint(0, 9)
    if kind == 0:
        return chr(R.choice(UNASSIGNED))
    if kind == 1:
        return chr(R.choice([R.randint(0xE000, 0xF8FF), R.randint(0xF0000, 0xFFFFD), R.randint(0x100000, 0x10FFFD)]))
    if kind == 2:
        return chr(R.choice([0xFDD0, 0xFDEF, 0xFFFE, 0xFFFF, 0x1FFFE, 0x10FFFF, 0xFFFD]))
    if kind == 3:
        return R.choice(FORMAT)
    if kind == 4:
        return R.choice(CONTROLS)
    if kind == 5:
        return "".join(R.choice(COMBINING) for _ in range(R.randint(1, 12)))
    if kind == 6:
        return R.choice(SPECIAL_STRINGS)
    if kind == 7:
        return chr(R.randint(0x10000, 0x10FFFF))
    if kind == 8:
        c = R.randint(0x80, 0xFFFF - 0x800)
        return chr(c + 0x800 if c >= 0xD800 else c)  # any BMP scalar value, no surrogates
    return R.choice(WS)


def odd_doc():
    parts = []
    for _ in range(R.randint(100, 400)):
        parts.append(odd_char())
        parts.append(R.choice(["", "", "a", "Z", " ", "1", "日", "é", ".", " x", "é\u0301", "\n"]))
    return "".join(parts)


# ---------------------------------------------------------------- random mixtures
POOLS = [list("abcXYZ"), list(" \t\n\r"), list("0123456789"), list(".,;:!?'\"()[]{}<>/\\-_+=*&^%$#@~`|"),
         ["é", "ß", "ø", "Σ", "ǅ", "ʰ", "ﬁ"], COMBINING[:20], ["日", "本", "語", "あ", "ア", "・", "ー", "゛", "\u3099"],
         ["٣", "²", "Ⅻ", "①", "１"], ["€", "©", "∑", "→", "★", "♪"], ["\u00a0", "\u3000", "\u2028", "\u0085", "\u000b"],
         ["\u200d", "\u200b", "\ufeff", "\u0000", "\u007f"], ["😀", "👩", "\U0001F3FD", "🇫", "\ufe0f"],
         ["ا", "ب", "\u064e", "क", "\u094d", "\u093f", "ก", "\u0e31"], ["\ue000", "\U000F0000", chr(0x0378)]]


def mixture_doc():
    parts = []
    for _ in range(R.randint(20, 60)):
        pools = R.sample(POOLS, R.randint(1, 4))
        parts.append("".join(R.choice(R.choice(pools)) for _ in range(R.randint(1, 40))))
    return "\u241e".join(parts) if R.random() < 0.1 else "".join(parts)


def dsml_doc():
    out = []
    for _ in range(R.randint(2, 6)):
        out.append(f"{words(5)}\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"{ident()}\">\n"
                   f"<｜DSML｜parameter name=\"{ident()}\" string=\"true\">{words(4)}</｜DSML｜parameter>\n"
                   f"<｜DSML｜parameter name=\"{ident()}\" string=\"false\">{{\"a\": [{number()}, true]}}</｜DSML｜parameter>\n"
                   f"</｜DSML｜invoke>\n</｜DSML｜tool_calls><｜end▁of▁sentence｜><think>{words(3)}</think>")
    return "".join(out)


GENERATORS = [
    ("code_python", lambda: "".join(code_python() for _ in range(R.randint(2, 6)))),
    ("code_rust", lambda: "".join(code_rust() for _ in range(R.randint(2, 5)))),
    ("code_c", lambda: "".join(code_c() for _ in range(R.randint(2, 6)))),
    ("code_js", lambda: "".join(code_js() for _ in range(R.randint(2, 6)))),
    ("code_misc", lambda: "".join(code_misc() for _ in range(R.randint(3, 10)))),
    ("prose", lambda: "\n\n".join(prose() for _ in range(R.randint(2, 6)))),
    ("prose", lambda: "\n\n".join(prose() for _ in range(R.randint(2, 6)))),
    ("prose", lambda: "\n\n".join(prose() for _ in range(R.randint(2, 6)))),
    ("emoji", emoji_doc),
    ("numbers", numbers_doc),
    ("whitespace", whitespace_doc),
    ("odd_unicode", odd_doc),
    ("mixture", mixture_doc),
    ("mixture", mixture_doc),
    ("dsml_as_text", dsml_doc),
]


def main():
    tok = refs.hf_tokenizer(plain=True)
    docs = []
    total = 0
    # Edge cases first: empty text, single characters of every kind, separators.
    fixed = ["", " ", "\n", "a", "1", "日", "\u0301", "😀", "\r\n", " " * 1000, "9" * 1000,
             "\u0301\u0301abc", "   \n", "a\u3000b", "<｜User｜>", "｜DSML｜tool_calls", "\ufeff\ufeffx"]
    for i, text in enumerate(fixed):
        docs.append({"name": f"edge_{i}", "text": text})
    n = 0
    while total < TARGET_BYTES:
        name, gen = R.choice(GENERATORS)
        text = gen()
        if R.random() < 0.15:  # mixed newline conventions
            text = text.replace("\n", R.choice(["\r\n", "\r", "\n\r", "\n"]))
        docs.append({"name": f"{name}_{n}", "text": text})
        total += len(text.encode("utf-8"))
        n += 1
    lines = []
    for doc in docs:
        doc["ids"] = tok.encode(doc["text"], add_special_tokens=False).ids
        lines.append(json.dumps(doc, ensure_ascii=False))
    raw = ("\n".join(lines) + "\n").encode("utf-8")
    packed = zstandard.ZstdCompressor(level=19).compress(raw)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(packed)
    n_ids = sum(len(d["ids"]) for d in docs)
    print(f"{OUT.relative_to(refs.REPO)}: {len(docs)} documents, {total} text bytes, "
          f"{n_ids} ids, {len(packed)} bytes compressed")


if __name__ == "__main__":
    main()
