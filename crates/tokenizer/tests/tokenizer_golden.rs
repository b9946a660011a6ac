//! Token ids against HF `tokenizers` with the real DeepSeek V4 tokenizer.json.
//!
//! Fixture: `tests/fixtures/token_corpus.jsonl.zst` (2.3 MB of synthesized text in
//! many scripts, code, emoji, digit and whitespace runs, odd code points),
//! produced with expected ids by `tools/tokenizer/gen_token_corpus.py`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;

use dsv4_tokenizer::{SpecialToken, TokenKind, Tokenizer};
use serde::Deserialize;

#[derive(Deserialize)]
struct Doc {
    name: String,
    text: String,
    ids: Vec<u32>,
}

fn corpus() -> Vec<Doc> {
    let packed = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/token_corpus.jsonl.zst"
    ))
    .expect("fixture present");
    let mut raw = String::new();
    ruzstd::decoding::StreamingDecoder::new(&packed[..])
        .expect("zstd header")
        .read_to_string(&mut raw)
        .expect("zstd data");
    raw.lines()
        .map(|line| serde_json::from_str(line).expect("fixture line"))
        .collect()
}

fn first_difference(ours: &[u32], theirs: &[u32]) -> usize {
    ours.iter()
        .zip(theirs)
        .position(|(a, b)| a != b)
        .unwrap_or(ours.len().min(theirs.len()))
}

fn check_corpus(tok: &Tokenizer, docs: &[Doc]) {
    let mut failures = Vec::new();
    for doc in docs {
        let ours = tok.encode_text(&doc.text);
        if ours != doc.ids {
            let at = first_difference(&ours, &doc.ids);
            let lo = at.saturating_sub(3);
            failures.push(format!(
                "{}: first difference at token {at}: ours {:?} vs HF {:?} (HF pieces {:?})",
                doc.name,
                &ours[lo..(at + 3).min(ours.len())],
                &doc.ids[lo..(at + 3).min(doc.ids.len())],
                doc.ids[lo..(at + 3).min(doc.ids.len())]
                    .iter()
                    .map(|&id| tok.token_to_piece(id).unwrap_or_default().into_owned())
                    .collect::<Vec<_>>()
            ));
        }
        assert_eq!(
            tok.decode(&doc.ids).unwrap(),
            doc.text,
            "{}: decode",
            doc.name
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} documents differ:\n{}",
        failures.len(),
        docs.len(),
        failures.join("\n")
    );
}

#[test]
fn builtin_matches_hf_on_corpus() {
    let tok = Tokenizer::builtin().unwrap();
    let docs = corpus();
    let bytes: usize = docs.iter().map(|d| d.text.len()).sum();
    assert!(docs.len() > 1000 && bytes > 2_000_000, "corpus too small");
    check_corpus(&tok, &docs);
}

#[test]
fn gguf_vocab_round_trip_matches_hf() {
    let builtin = Tokenizer::builtin().unwrap();
    let g = builtin.to_gguf_vocab();
    assert_eq!(g.tokens.len(), 129_280);
    assert_eq!(g.merges.len(), 127_741);
    // Spot checks of the GGUF string forms (byte-level map for normal tokens).
    assert_eq!(g.tokens[0], "<｜begin▁of▁sentence｜>");
    assert_eq!(g.merges[0], "Ġ t");
    assert_eq!(g.token_types[128_821], 4);
    assert_eq!(g.token_types[0], 3);
    let tok = Tokenizer::from_gguf_vocab(&g.tokens, &g.merges, &g.token_types, &g.pre).unwrap();
    // Every 7th document keeps the test quick; the builtin test covers them all.
    let docs: Vec<Doc> = corpus().into_iter().step_by(7).collect();
    check_corpus(&tok, &docs);
    for t in SpecialToken::ALL {
        assert_eq!(tok.special_id(t), builtin.special_id(t));
    }
}

#[test]
fn gguf_vocab_errors_are_typed() {
    let g = Tokenizer::builtin().unwrap().to_gguf_vocab();
    let err = Tokenizer::from_gguf_vocab(&g.tokens, &g.merges, &g.token_types, "llama-bpe");
    assert!(err.unwrap_err().to_string().contains("joyai-llm"));
    let short = &g.token_types[..10];
    assert!(Tokenizer::from_gguf_vocab(&g.tokens, &g.merges, short, "deepseek-v3").is_err());
    let mut bad_merges = g.merges.clone();
    bad_merges[5] = "nonexistent token".into();
    let err = Tokenizer::from_gguf_vocab(&g.tokens, &bad_merges, &g.token_types, "joyai-llm");
    assert!(err.unwrap_err().to_string().contains("merge 5"));
    let mut no_think = g.tokens.clone();
    no_think[128_821] = "<thinking>".into();
    let err = Tokenizer::from_gguf_vocab(&no_think, &g.merges, &g.token_types, "joyai-llm");
    assert!(err.unwrap_err().to_string().contains("<think>"));
}

#[test]
fn special_token_ids_of_the_real_vocabulary() {
    let tok = Tokenizer::builtin().unwrap();
    assert_eq!(tok.vocab_size(), 129_280);
    for t in SpecialToken::ALL {
        assert_eq!(tok.special_id(t), t.v4_id(), "{t:?}");
        assert_eq!(tok.token_bytes(t.v4_id()).unwrap(), t.content().as_bytes());
        assert!(tok.is_special(t.v4_id()));
        assert_eq!(tok.special_token(t.v4_id()), Some(t));
    }
    // HF flags: BOS/EOS are `special`, the chat markers are non-special added tokens.
    assert_eq!(tok.token_kind(0), Some(TokenKind::Control));
    assert_eq!(tok.token_kind(128_803), Some(TokenKind::UserDefined));
    assert_eq!(tok.token_kind(128_825), Some(TokenKind::UserDefined));
    assert_eq!(tok.token_kind(127_999), Some(TokenKind::Normal));
    assert_eq!(tok.token_kind(129_280), None);
    assert!(!tok.is_special(100));
}
