//! Incremental decoding: never a partial character, same text as `decode`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dsv4_tokenizer::{SpecialToken, Tokenizer};

const TEXTS: [&str; 6] = [
    "plain ASCII text",
    "日本語のテキスト、中文，한국어",
    "emoji 👩‍👩‍👧‍👦 🏴󠁧󠁢󠁳󠁣󠁴󠁿 1️⃣ and e\u{301}\u{301}",
    "\u{10FFFF}\u{E000}\u{378}\u{FEFF} odd code points",
    "mixed\r\n\tलिखना مرحبا",
    "",
];

fn stream(tok: &Tokenizer, ids: &[u32]) -> (Vec<String>, String) {
    let mut dec = tok.stream_decoder();
    let mut chunks = Vec::new();
    for &id in ids {
        let piece = dec.push(id).unwrap();
        assert!(
            dec.pending_bytes().len() < 4,
            "holds at most one incomplete character"
        );
        chunks.push(piece.text);
    }
    let tail = dec.finish();
    (chunks, tail)
}

#[test]
fn stream_equals_decode_for_valid_text() {
    let tok = Tokenizer::builtin().unwrap();
    for text in TEXTS {
        let ids = tok.encode_text(text);
        let (chunks, tail) = stream(&tok, &ids);
        assert_eq!(tail, "");
        assert_eq!(chunks.concat(), text);
        // Multi-byte characters are split over several byte-level tokens, so some
        // pushes must release nothing (held until the character completes).
        if text.contains('👩') {
            assert!(chunks.iter().any(String::is_empty));
        }
    }
}

#[test]
fn invalid_and_cut_sequences_match_decode() {
    let tok = Tokenizer::builtin().unwrap();
    let byte_id = |b: u8| -> u32 {
        let ids = (0..tok.vocab_size() as u32)
            .find(|&id| tok.token_bytes(id) == Some(&[b][..]) && !tok.is_special(id));
        ids.unwrap()
    };
    let emoji = tok.encode_text("😀");
    let cases: Vec<Vec<u32>> = vec![
        vec![byte_id(0x80), byte_id(b'a')], // stray continuation byte
        vec![byte_id(0xF0), byte_id(0x9F), byte_id(b'x')], // cut 4-byte sequence
        vec![
            byte_id(0xE6),
            tok.special_id(SpecialToken::ThinkEnd),
            byte_id(b'y'),
        ], // cut by a special
        vec![byte_id(0xFF), byte_id(0xC0), byte_id(0xAF)], // bytes that never appear in UTF-8
        [emoji.clone(), vec![byte_id(0xE4), byte_id(0xB8)]].concat(), // incomplete at the end
    ];
    for ids in cases {
        let (chunks, tail) = stream(&tok, &ids);
        assert_eq!(
            chunks.concat() + &tail,
            tok.decode(&ids).unwrap(),
            "{ids:?}"
        );
        assert!((chunks.concat() + &tail).contains('\u{FFFD}'));
    }
}

#[test]
fn specials_are_reported() {
    let tok = Tokenizer::builtin().unwrap();
    let mut dec = tok.stream_decoder();
    let think_end = tok.special_id(SpecialToken::ThinkEnd);
    let piece = dec.push(think_end).unwrap();
    assert!(piece.special);
    assert_eq!(piece.special_token, Some(SpecialToken::ThinkEnd));
    assert_eq!(piece.text, "</think>");
    let plain = dec.push(tok.encode_text("a")[0]).unwrap();
    assert!(!plain.special && plain.special_token.is_none());
    // A placeholder is special (an added token) but not one the format names.
    let placeholder = dec.push(128_000).unwrap();
    assert!(placeholder.special && placeholder.special_token.is_none());
    assert!(dec.push(129_280).is_err());
    assert!(tok.decode(&[5, 999_999]).is_err());
}

#[test]
fn round_trip_on_random_strings() {
    use rand::{Rng, SeedableRng};
    let tok = Tokenizer::builtin().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    for _ in 0..300 {
        let len = rng.random_range(0..60);
        let text: String = (0..len)
            .map(|_| match rng.random_range(0..4) {
                0 => rng.random_range(' '..='~'),
                1 => rng.random_range('\u{80}'..='\u{2FFF}'),
                2 => rng.random_range('\u{3000}'..='\u{D7FF}'),
                _ => rng.random_range('\u{E000}'..='\u{10FFFF}'),
            })
            .collect();
        let ids = tok.encode_text(&text);
        assert_eq!(tok.decode(&ids).unwrap(), text);
        let (chunks, tail) = stream(&tok, &ids);
        assert_eq!(chunks.concat() + &tail, text);
    }
}
