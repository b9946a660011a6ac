//! `Tokenizer::from_tokenizer_json` on the real file format, and load errors.
//!
//! Fixture: `tests/fixtures/small_tokenizer.json.zst` from
//! `tools/tokenizer/gen_small_tokenizer_json.py` (a cut-down real DeepSeek V4
//! tokenizer.json plus HF `tokenizers` ids for sample texts).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;

use dsv4_tokenizer::{SpecialToken, Tokenizer, TokenizerError};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    tokenizer_json: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
}

fn fixture() -> Fixture {
    let packed = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/small_tokenizer.json.zst"
    ))
    .unwrap();
    let mut raw = String::new();
    ruzstd::decoding::StreamingDecoder::new(&packed[..])
        .unwrap()
        .read_to_string(&mut raw)
        .unwrap();
    serde_json::from_str(&raw).unwrap()
}

#[test]
fn tokenizer_json_matches_hf() {
    let f = fixture();
    let tok = Tokenizer::from_tokenizer_json(f.tokenizer_json.as_bytes()).unwrap();
    assert_eq!(tok.vocab_size(), 129_280);
    assert_eq!(tok.special_id(SpecialToken::Dsml), 128_825);
    for case in &f.cases {
        assert_eq!(tok.encode_text(&case.text), case.ids, "{:?}", case.text);
        assert_eq!(tok.decode(&case.ids).unwrap(), case.text);
    }
}

fn edited(
    f: &Fixture,
    edit: impl FnOnce(&mut serde_json::Value),
) -> Result<Tokenizer, TokenizerError> {
    let mut doc: serde_json::Value = serde_json::from_str(&f.tokenizer_json).unwrap();
    edit(&mut doc);
    Tokenizer::from_tokenizer_json(doc.to_string().as_bytes())
}

#[test]
fn tokenizer_json_rejects_other_tokenizers() {
    let f = fixture();
    let err = edited(&f, |d| {
        d["pre_tokenizer"]["pretokenizers"][2]["pattern"]["Regex"] = "\\s+".into();
    })
    .unwrap_err();
    assert!(
        matches!(err, TokenizerError::UnsupportedPreTokenizer(_)),
        "{err}"
    );
    let err = edited(&f, |d| d["model"]["type"] = "WordPiece".into()).unwrap_err();
    assert!(err.to_string().contains("only BPE"), "{err}");
    let err = edited(&f, |d| d["model"]["ignore_merges"] = true.into()).unwrap_err();
    assert!(err.to_string().contains("ignore_merges"), "{err}");
    let err = edited(&f, |d| {
        d["normalizer"] = serde_json::json!({"type": "NFC"});
    })
    .unwrap_err();
    assert!(err.to_string().contains("normalizer"), "{err}");
    let err = edited(&f, |d| {
        d["model"]["merges"][10] = "Ġ zzzzzz".into();
    })
    .unwrap_err();
    assert!(err.to_string().contains("merge 10"), "{err}");
    let err = edited(&f, |d| {
        let tokens = d["added_tokens"].as_array_mut().unwrap();
        tokens.retain(|t| t["content"] != "｜DSML｜");
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            TokenizerError::MissingSpecialToken {
                content: "｜DSML｜"
            }
        ),
        "{err}"
    );
    assert!(matches!(
        Tokenizer::from_tokenizer_json(b"{not json"),
        Err(TokenizerError::Json(_))
    ));
}
