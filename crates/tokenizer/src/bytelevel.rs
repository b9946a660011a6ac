//! The GPT-2 byte ↔ unicode map used by byte-level BPE vocabularies.
//!
//! Byte-level BPE stores each token as a string in which every byte is one
//! printable character: the printable Latin-1 bytes `!`..`~`, `¡`..`¬`,
//! `®`..`ÿ` map to themselves and the other 68 bytes map, in increasing order,
//! to U+0100.. U+0143 (HF `tokenizers` `bytes_char`, GPT-2 `bytes_to_unicode`).
//! This module converts vocabulary strings (GGUF `tokenizer.ggml.tokens`,
//! tokenizer.json `model.vocab`) to raw bytes and back. It must not be used on
//! added/special tokens, whose strings are literal text.

/// Highest character code used by the map plus one.
const MAP_END: usize = 0x144;

const fn is_printable(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// `BYTE_TO_CHAR[b]` is the character that stands for byte `b`.
const BYTE_TO_CHAR: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut next = 0x100u16;
    let mut b = 0usize;
    while b < 256 {
        if is_printable(b as u8) {
            table[b] = b as u16;
        } else {
            table[b] = next;
            next += 1;
        }
        b += 1;
    }
    table
};

/// `CHAR_TO_BYTE[c]` is `byte + 1` for the byte that `c` stands for, or 0.
const CHAR_TO_BYTE: [u16; MAP_END] = {
    let mut table = [0u16; MAP_END];
    let mut b = 0usize;
    while b < 256 {
        table[BYTE_TO_CHAR[b] as usize] = b as u16 + 1;
        b += 1;
    }
    table
};

/// Converts a byte-level vocabulary string to raw bytes; `None` if it contains
/// a character outside the map.
pub(crate) fn decode_token(text: &str) -> Option<Vec<u8>> {
    text.chars()
        .map(|c| {
            let code = c as usize;
            let b = *CHAR_TO_BYTE.get(code)?;
            (b != 0).then(|| (b - 1) as u8)
        })
        .collect()
}

/// Converts raw bytes to their byte-level vocabulary string.
pub(crate) fn encode_token(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| char::from_u32(u32::from(BYTE_TO_CHAR[usize::from(b)])).unwrap_or('\u{FFFD}'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_map() {
        assert_eq!(encode_token(b" "), "Ġ");
        assert_eq!(encode_token(b"\n"), "Ċ");
        assert_eq!(encode_token(b"a!"), "a!");
        assert_eq!(encode_token(&[0xAD]), "\u{143}");
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode_token(&encode_token(&all)).as_deref(), Some(&all[..]));
        assert_eq!(decode_token("a\u{144}"), None);
        assert_eq!(decode_token("｜"), None);
    }
}
