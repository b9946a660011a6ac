//! Prompt rendering against DeepSeek's official `encoding_dsv4.py` (April).
//!
//! Fixtures: `tests/fixtures/chat/*.json`, rendered by the official encoder with
//! `tools/tokenizer/gen_chat_fixtures.py`. Each rendered prompt must be
//! byte-identical; its token ids must equal HF `tokenizers` on the official
//! prompt string (where the messages contain no special strings, since dsv4
//! deliberately keeps typed special strings as text).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use dsv4_tokenizer::Tokenizer;
use dsv4_tokenizer::chat::{ChatMessage, Checkpoint, Effort, RenderOptions, render_messages};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    name: String,
    thinking_mode: String,
    drop_thinking: bool,
    reasoning_effort: Option<String>,
    add_default_bos_token: bool,
    messages: serde_json::Value,
    prompt: Option<String>,
    error: Option<String>,
    ids: Option<Vec<u32>>,
    ids_comparable: Option<bool>,
}

fn load_cases() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chat");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("parse"))
        .collect()
}

fn options(case: &Case) -> RenderOptions {
    let mut o = RenderOptions::new(Checkpoint::April);
    o.thinking = match case.thinking_mode.as_str() {
        "thinking" => true,
        "chat" => false,
        other => panic!("{}: thinking_mode {other}", case.name),
    };
    o.effort = match case.reasoning_effort.as_deref() {
        None | Some("high") => Effort::High,
        Some("max") => Effort::Max,
        Some(other) => panic!("{}: effort {other}", case.name),
    };
    o.drop_thinking = case.drop_thinking;
    o.add_bos = case.add_default_bos_token;
    o
}

#[test]
fn renders_like_the_official_encoder() {
    let tok = Tokenizer::builtin().unwrap();
    let cases = load_cases();
    assert!(cases.len() >= 60, "only {} cases", cases.len());
    let mut failures = Vec::new();
    let (mut rendered, mut ids_checked, mut errors) = (0, 0, 0);
    for case in &cases {
        let messages: Result<Vec<ChatMessage>, _> = serde_json::from_value(case.messages.clone());
        let result = messages
            .map_err(|e| e.to_string())
            .and_then(|m| render_messages(&m, &options(case)).map_err(|e| e.to_string()));
        match (&case.prompt, &case.error, result) {
            (Some(want), None, Ok(prompt)) => {
                rendered += 1;
                let got = prompt.text();
                if &got != want {
                    let at = got
                        .bytes()
                        .zip(want.bytes())
                        .position(|(a, b)| a != b)
                        .unwrap_or(0);
                    let lo = got.floor_char_boundary(at.saturating_sub(40));
                    failures.push(format!(
                        "{}: differs at byte {at}\n  ours:     {:?}\n  official: {:?}",
                        case.name,
                        &got[lo..got.floor_char_boundary((at + 60).min(got.len()))],
                        &want[want.floor_char_boundary(lo)
                            ..want.floor_char_boundary((at + 60).min(want.len()))]
                    ));
                } else if case.ids_comparable == Some(true) {
                    ids_checked += 1;
                    let ids = prompt.encode(&tok);
                    if Some(&ids) != case.ids.as_ref() {
                        failures.push(format!("{}: token ids differ from HF", case.name));
                    }
                }
            }
            (None, Some(_), Err(_)) => errors += 1,
            (want, official_error, got) => failures.push(format!(
                "{}: official {:?} / error {:?}, ours {:?}",
                case.name,
                want.as_ref().map(|_| "prompt"),
                official_error,
                got.map(|p| p.text())
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        rendered >= 60 && ids_checked >= 50 && errors >= 2,
        "{rendered} {ids_checked} {errors}"
    );
    eprintln!("rendered {rendered}, ids checked {ids_checked}, expected errors {errors}");
}
