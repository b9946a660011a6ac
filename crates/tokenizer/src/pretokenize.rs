//! The DeepSeek V3/V4 pre-tokenizer, as a hand-written scanner.
//!
//! HF `tokenizer.json` (and llama.cpp's `deepseek-v3`/`joyai-llm` pre-types)
//! define it as three `Split(behavior = Isolated)` steps, each re-splitting the
//! pieces of the previous one (model-spec.md §9.1):
//!
//! 1. `\p{N}{1,3}`
//! 2. `[一-龥぀-ゟ゠-ヿ]+` (U+4E00–U+9FA5, U+3040–U+30FF)
//! 3. ``A1|A2|A3|A4|A5|A6`` with
//!    A1 ``[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+``,
//!    A2 `[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+`,
//!    A3 ` ?[\p{P}\p{S}]+[\r\n]*`,
//!    A4 `\s*[\r\n]+`, A5 `\s+(?!\S)`, A6 `\s+`.
//!
//! "Isolated" means every match becomes a piece and so does every maximal run of
//! unmatched text between matches. A regex in a later step sees each earlier
//! piece as a whole string, so `(?!\S)` succeeds at the end of a piece.
//!
//! Derivation of the scanner (Oniguruma: leftmost, first alternative that
//! matches, greedy with backtracking):
//! * Step 1 cuts every run of N characters into chunks of 3 from its start; step
//!   2 cuts runs of CJK-range characters (none of which is N). Step 3 therefore
//!   runs on maximal "other" segments and on CJK segments; on an N chunk it
//!   matches nothing, so N chunks pass through whole.
//! * A2: if the first character may be the optional prefix (not CR/LF/L/P/S) and
//!   the next one is L/M, the match is that character plus the L/M run after it;
//!   otherwise, if the first character is L/M, the L/M run from it.
//! * A3: an optional U+0020 only if a P/S character follows.
//! * A4 backtracks `\s*` to the last CR/LF of the whitespace run: the match ends
//!   just after the last CR/LF in the run (if the run has one).
//! * A5 matches the whole run at the end of the piece, otherwise the run minus
//!   its last character (when that leaves at least one); A6 is the rest.
//!
//! Categories and `\s` come from [`crate::charclass`] (Unicode 16.0.0, checked
//! against HF). The module only finds piece boundaries; it must not touch bytes.

use crate::charclass::{
    ASCII_ALPHA, ASCII_PUNCT, CAT_L, CAT_M, CAT_MASK, CAT_N, CAT_P, CAT_S, CJK, CRLF, CharClasses,
    WS, classes,
};

/// Splits `text` into pre-tokens and calls `emit(start, end)` (byte offsets,
/// always on char boundaries, non-empty, in order, covering the whole text).
pub(crate) fn pretokenize(text: &str, mut emit: impl FnMut(usize, usize)) {
    let bytes = text.as_bytes();
    let cc = classes();
    let mut i = 0;
    while i < bytes.len() {
        let (info, len) = char_info(cc, bytes, i);
        if info & CAT_MASK == CAT_N {
            // Step 1: up to three N characters.
            let mut end = i + len;
            for _ in 0..2 {
                if end >= bytes.len() {
                    break;
                }
                let (next, next_len) = char_info(cc, bytes, end);
                if next & CAT_MASK != CAT_N {
                    break;
                }
                end += next_len;
            }
            emit(i, end);
            i = end;
        } else {
            let kind = if info & CJK != 0 {
                Segment::Cjk
            } else {
                Segment::Other
            };
            i = Scanner { bytes, cc, kind }.scan(i, &mut emit);
        }
    }
}

/// Decodes the scalar value starting at `i` and returns its class flags and
/// UTF-8 length. `bytes` is valid UTF-8 and `i` a char boundary (callers only
/// pass offsets produced by this module), so the indexing cannot fail.
#[inline(always)]
fn char_info(cc: &CharClasses, bytes: &[u8], i: usize) -> (u8, usize) {
    let b0 = bytes[i];
    if b0 < 0x80 {
        return (cc.ascii(b0), 1);
    }
    let cont = |k: usize| u32::from(bytes[i + k] & 0x3F);
    let (cp, len) = if b0 < 0xE0 {
        ((u32::from(b0 & 0x1F) << 6) | cont(1), 2)
    } else if b0 < 0xF0 {
        ((u32::from(b0 & 0x0F) << 12) | (cont(1) << 6) | cont(2), 3)
    } else {
        (
            (u32::from(b0 & 0x07) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3),
            4,
        )
    };
    (cc.get(cp), len)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Segment {
    /// Neither N nor CJK-range characters.
    Other,
    /// CJK-range characters.
    Cjk,
}

#[inline(always)]
fn is_lm(f: u8) -> bool {
    matches!(f & CAT_MASK, CAT_L | CAT_M)
}

#[inline(always)]
fn is_ps(f: u8) -> bool {
    matches!(f & CAT_MASK, CAT_P | CAT_S)
}

/// Step 3 over one segment produced by steps 1 and 2.
struct Scanner<'a> {
    bytes: &'a [u8],
    cc: &'a CharClasses,
    kind: Segment,
}

impl Scanner<'_> {
    /// Class and length of the character at `i` if it belongs to the current
    /// segment; `None` at the end of the text or of the segment.
    #[inline(always)]
    fn at(&self, i: usize) -> Option<(u8, usize)> {
        if i >= self.bytes.len() {
            return None;
        }
        let (info, len) = char_info(self.cc, self.bytes, i);
        let inside = match self.kind {
            Segment::Other => info & CJK == 0 && info & CAT_MASK != CAT_N,
            Segment::Cjk => info & CJK != 0,
        };
        inside.then_some((info, len))
    }

    /// End of the run of segment characters satisfying `pred`, from `i`.
    #[inline(always)]
    fn run(&self, mut i: usize, pred: impl Fn(u8) -> bool) -> usize {
        while let Some((f, len)) = self.at(i) {
            if !pred(f) {
                break;
            }
            i += len;
        }
        i
    }

    /// Emits the pieces of the segment starting at `start`; returns its end.
    fn scan(&self, start: usize, emit: &mut impl FnMut(usize, usize)) -> usize {
        let mut i = start;
        let mut gap: Option<usize> = None;
        while let Some((info, len)) = self.at(i) {
            match self.match_at(i, info, len) {
                Some(end) => {
                    if let Some(g) = gap.take() {
                        emit(g, i);
                    }
                    emit(i, end);
                    i = end;
                }
                None => {
                    gap.get_or_insert(i);
                    i += len;
                }
            }
        }
        if let Some(g) = gap {
            emit(g, i);
        }
        i
    }

    /// End of the step-3 match starting at `i`, if any alternative matches.
    #[inline(always)]
    fn match_at(&self, i: usize, info: u8, len: usize) -> Option<usize> {
        let next = self.at(i + len);
        let cat = info & CAT_MASK;
        // A1: one ASCII punctuation character, then ASCII letters.
        if info & ASCII_PUNCT != 0
            && let Some((n, n_len)) = next
            && n & ASCII_ALPHA != 0
        {
            return Some(self.run(i + len + n_len, |f| f & ASCII_ALPHA != 0));
        }
        // A2: an optional prefix character, then an L/M run.
        if info & CRLF == 0
            && !matches!(cat, CAT_L | CAT_P | CAT_S)
            && let Some((n, n_len)) = next
            && is_lm(n)
        {
            return Some(self.run(i + len + n_len, is_lm));
        }
        if is_lm(info) {
            return Some(self.run(i + len, is_lm));
        }
        // A3: optional space, P/S run, trailing CR/LF.
        let ps_from = if is_ps(info) {
            Some(i + len)
        } else if self.bytes[i] == b' ' {
            next.filter(|&(n, _)| is_ps(n))
                .map(|(_, n_len)| i + len + n_len)
        } else {
            None
        };
        if let Some(from) = ps_from {
            let end = self.run(from, is_ps);
            return Some(self.run(end, |f| f & CRLF != 0));
        }
        if info & WS == 0 {
            return None;
        }
        // A4–A6 on the whitespace run [i, end).
        let mut end = i;
        let mut last_start = i;
        let mut after_last_crlf = None;
        while let Some((f, l)) = self.at(end) {
            if f & WS == 0 {
                break;
            }
            if f & CRLF != 0 {
                after_last_crlf = Some(end + l);
            }
            last_start = end;
            end += l;
        }
        if let Some(e) = after_last_crlf {
            return Some(e); // A4
        }
        if self.at(end).is_none() || last_start == i {
            return Some(end); // A5 at the end of the piece, or A6 for one character
        }
        Some(last_start) // A5 backtracked by one character
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        pretokenize(text, |a, b| out.push(&text[a..b]));
        out
    }

    #[test]
    fn examples() {
        assert_eq!(split("Hello world"), ["Hello", " world"]);
        assert_eq!(split("a   b"), ["a", "  ", " b"]);
        assert_eq!(split("a   "), ["a", "   "]);
        assert_eq!(split("x  12345"), ["x", "  ", "123", "45"]);
        assert_eq!(split("  \n  x"), ["  \n", " ", " x"]);
        assert_eq!(split("foo.bar();\n\n"), ["foo", ".bar", "();\n\n"]);
        assert_eq!(split("I'm"), ["I", "'m"]);
        assert_eq!(
            split("日本語のテキスト・カナ"),
            ["日本語のテキスト", "・", "カナ"]
        );
        assert_eq!(split("abc日本"), ["abc", "日本"]);
        assert_eq!(split("\u{0}\u{1}a"), ["\u{0}", "\u{1}a"]);
        assert_eq!(split("-é"), ["-", "é"]);
        assert_eq!(split(" {\r\n"), [" {\r\n"]);
        assert_eq!(split("e\u{301}\u{301} x"), ["e\u{301}\u{301}", " x"]);
        assert_eq!(split("\u{301}"), ["\u{301}"]);
        assert_eq!(split("١٢٣٤"), ["١٢٣", "٤"]);
    }

    #[test]
    fn pieces_cover_text() {
        let text = "mixed 日本 text\r\n\twith 123456 digits, emoji 👩‍💻 and  spaces  ";
        assert_eq!(split(text).concat(), text);
    }
}
