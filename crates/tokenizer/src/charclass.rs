//! Per-code-point character classes for the pre-tokenizer.
//!
//! Owns one byte of flags per Unicode scalar value: the major general category
//! (L, M, N, P, S or other), Oniguruma's `\s`, the CJK ranges of the second split
//! step, CR/LF, and the ASCII punctuation and letter sets of the first regex
//! alternative. The data comes from the generated [`crate::unicode_tables`]
//! (Unicode 16.0.0, the version HF `tokenizers` 0.23 uses); this module only packs
//! it into a two-level table (256-code-point blocks, deduplicated, ~40 KB) built
//! once on first use. It must not encode any tokenizer policy.

use std::sync::LazyLock;

use rustc_hash::FxHashMap;

use crate::unicode_tables::{CATEGORY_RANGES, WHITESPACE};

/// Mask of the category field (values [`CAT_L`] … [`CAT_S`], 0 = other).
pub(crate) const CAT_MASK: u8 = 0b111;
/// Category: letter (`\p{L}`).
pub(crate) const CAT_L: u8 = 1;
/// Category: mark (`\p{M}`).
pub(crate) const CAT_M: u8 = 2;
/// Category: number (`\p{N}`).
pub(crate) const CAT_N: u8 = 3;
/// Category: punctuation (`\p{P}`).
pub(crate) const CAT_P: u8 = 4;
/// Category: symbol (`\p{S}`).
pub(crate) const CAT_S: u8 = 5;
/// Oniguruma `\s` (White_Space).
pub(crate) const WS: u8 = 1 << 3;
/// In `[一-龥぀-ゟ゠-ヿ]` (U+4E00–U+9FA5, U+3040–U+30FF).
pub(crate) const CJK: u8 = 1 << 4;
/// `\r` or `\n`.
pub(crate) const CRLF: u8 = 1 << 5;
/// One of the 32 ASCII punctuation characters ``!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~``.
pub(crate) const ASCII_PUNCT: u8 = 1 << 6;
/// `[A-Za-z]`.
pub(crate) const ASCII_ALPHA: u8 = 1 << 7;

const BLOCK_BITS: u32 = 8;
const BLOCK_LEN: usize = 1 << BLOCK_BITS;
const N_BLOCKS: usize = 0x11_0000 >> BLOCK_BITS;

/// The packed class table.
#[derive(Debug)]
pub(crate) struct CharClasses {
    ascii: [u8; 128],
    index: Vec<u16>,
    blocks: Vec<u8>,
}

impl CharClasses {
    fn build() -> Self {
        let mut flat = vec![0u8; 0x11_0000];
        for &(first, last, cat) in CATEGORY_RANGES {
            for slot in &mut flat[first as usize..=last as usize] {
                *slot = cat;
            }
        }
        for &cp in WHITESPACE {
            flat[cp as usize] |= WS;
        }
        for range in [0x4E00..=0x9FA5usize, 0x3040..=0x30FF] {
            for slot in &mut flat[range] {
                *slot |= CJK;
            }
        }
        flat[usize::from(b'\r')] |= CRLF;
        flat[usize::from(b'\n')] |= CRLF;
        for b in 0u8..128 {
            if b.is_ascii_punctuation() {
                flat[usize::from(b)] |= ASCII_PUNCT;
            }
            if b.is_ascii_alphabetic() {
                flat[usize::from(b)] |= ASCII_ALPHA;
            }
        }

        let mut ascii = [0u8; 128];
        ascii.copy_from_slice(&flat[..128]);
        let mut seen: FxHashMap<&[u8], u16> = FxHashMap::default();
        let mut index = Vec::with_capacity(N_BLOCKS);
        let mut blocks = Vec::new();
        for block in flat.chunks_exact(BLOCK_LEN) {
            let next = u16::try_from(seen.len()).unwrap_or(u16::MAX);
            let id = *seen.entry(block).or_insert_with(|| {
                blocks.extend_from_slice(block);
                next
            });
            index.push(id);
        }
        Self {
            ascii,
            index,
            blocks,
        }
    }

    /// Flags of an ASCII byte (`b < 0x80`).
    #[inline(always)]
    pub(crate) fn ascii(&self, b: u8) -> u8 {
        self.ascii[usize::from(b & 0x7F)]
    }

    /// Flags of any scalar value (`cp <= 0x10FFFF`; callers decode valid UTF-8,
    /// so the index is always in bounds).
    #[inline(always)]
    pub(crate) fn get(&self, cp: u32) -> u8 {
        let block = self.index[(cp >> BLOCK_BITS) as usize];
        self.blocks[(usize::from(block) << BLOCK_BITS) | (cp as usize & (BLOCK_LEN - 1))]
    }
}

/// The shared, immutable class table (built on first use, a few milliseconds).
pub(crate) fn classes() -> &'static CharClasses {
    static TABLE: LazyLock<CharClasses> = LazyLock::new(CharClasses::build);
    &TABLE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spot_checks() {
        let c = classes();
        let get = |ch: char| c.get(ch as u32);
        assert_eq!(get('a') & CAT_MASK, CAT_L);
        assert_eq!(get('a'), CAT_L | ASCII_ALPHA);
        assert_eq!(get('\u{301}') & CAT_MASK, CAT_M);
        assert_eq!(get('٣') & CAT_MASK, CAT_N);
        assert_eq!(get('.'), CAT_P | ASCII_PUNCT);
        assert_eq!(get('+'), CAT_S | ASCII_PUNCT);
        assert_eq!(get('€') & CAT_MASK, CAT_S);
        assert_eq!(get(' '), WS);
        assert_eq!(get('\n'), WS | CRLF);
        assert_eq!(get('\u{3000}'), WS);
        assert_eq!(get('\u{200B}'), 0, "ZWSP is Cf, not whitespace");
        assert_eq!(get('日'), CAT_L | CJK);
        assert_eq!(get('・'), CAT_P | CJK);
        assert_eq!(get('\u{E000}'), 0, "private use is other");
        assert_eq!(get('\u{10FFFF}'), 0);
        // U+1C89 CYRILLIC CAPITAL LETTER TJE was added in Unicode 16.0.
        assert_eq!(get('\u{1C89}') & CAT_MASK, CAT_L);
        for b in 0u8..128 {
            assert_eq!(c.ascii(b), c.get(u32::from(b)));
        }
    }
}
