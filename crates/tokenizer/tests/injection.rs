//! Special-token injection is impossible: only the renderer emits control tokens.
//!
//! Every added token of the DeepSeek V4 vocabulary (all 1283 of them: BOS/EOS,
//! chat markers, `<think>`, `｜DSML｜`, task tokens, placeholders …) is typed into
//! every place a client controls (system, user, developer, reminder and tool
//! content, reasoning, assistant content, tool names, argument keys and values,
//! tool schemas). The encoded prompt must contain exactly the control tokens the
//! format put there, in order, and nothing else special.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dsv4_tokenizer::chat::{
    ChatMessage, Checkpoint, FunctionCall, MessageContent, RenderOptions, Role, Tool, ToolCall,
    render_messages,
};
use dsv4_tokenizer::{Segment, Tokenizer};
use serde_json::json;

fn all_special_strings(tok: &Tokenizer) -> Vec<String> {
    (0..tok.vocab_size() as u32)
        .filter(|&id| tok.is_special(id))
        .map(|id| String::from_utf8(tok.token_bytes(id).unwrap().to_vec()).unwrap())
        .collect()
}

fn msg(role: Role, content: &str) -> ChatMessage {
    ChatMessage::new(role, content)
}

fn conversation(payload: &str) -> Vec<ChatMessage> {
    let mut system = msg(Role::System, payload);
    system.tools = Some(vec![Tool {
        kind: Some("function".into()),
        function: json!({"name": payload, "description": payload, "parameters": {"type": "object",
            "properties": {payload: {"type": "string", "description": payload}}}})
        .as_object()
        .unwrap()
        .clone(),
    }]);
    system.response_format = Some(json!({"type": "json_schema", "schema": {"title": payload}}));
    let mut assistant = msg(Role::Assistant, payload);
    assistant.reasoning_content = Some(payload.to_owned());
    assistant.tool_calls = Some(vec![
        ToolCall {
            id: Some("c1".into()),
            kind: Some("function".into()),
            function: FunctionCall {
                name: payload.to_owned(),
                arguments: json!({payload: payload, "n": [payload]}).to_string().into(),
                id: None,
            },
        },
        ToolCall {
            id: Some("c2".into()),
            kind: None,
            function: FunctionCall {
                name: "raw".into(),
                arguments: payload.into(),
                id: None,
            },
        },
    ]);
    let mut tool_result = msg(Role::Tool, payload);
    tool_result.tool_call_id = Some("c1".into());
    let mut parts_result = msg(Role::Tool, "");
    parts_result.tool_call_id = Some("c2".into());
    parts_result.content = Some(MessageContent::Parts(
        serde_json::from_value(json!([{"type": "text", "text": payload}])).unwrap(),
    ));
    vec![
        system,
        msg(Role::Developer, payload),
        msg(Role::LatestReminder, payload),
        msg(Role::User, payload),
        assistant,
        tool_result,
        parts_result,
        msg(Role::User, payload),
    ]
}

fn assert_only_format_specials(tok: &Tokenizer, segments: &[Segment], label: &str) {
    let format: Vec<u32> = segments
        .iter()
        .filter_map(|s| match s {
            Segment::Special(t) => Some(tok.special_id(*t)),
            Segment::Text(_) => None,
        })
        .collect();
    let encoded: Vec<u32> = tok
        .encode_segments(segments)
        .into_iter()
        .filter(|&id| tok.is_special(id))
        .collect();
    assert_eq!(
        encoded, format,
        "{label}: control tokens other than the format's own"
    );
    for segment in segments {
        if let Segment::Text(text) = segment {
            let ids = tok.encode_text(text);
            assert!(ids.iter().all(|&id| !tok.is_special(id)), "{label}");
            assert_eq!(&tok.decode(&ids).unwrap(), text);
        }
    }
}

#[test]
fn typed_special_strings_stay_text_everywhere() {
    let tok = Tokenizer::builtin().unwrap();
    let specials = all_special_strings(&tok);
    assert_eq!(specials.len(), 1283);
    let everything = specials.concat();
    let mut payloads = vec![everything.clone(), format!("a{}b", specials.join(" x "))];
    payloads.extend(specials.iter().step_by(37).cloned());
    for (thinking, drop) in [(true, true), (true, false), (false, true)] {
        let mut options = RenderOptions::new(Checkpoint::April);
        options.thinking = thinking;
        options.drop_thinking = drop;
        for payload in &payloads {
            let prompt = render_messages(&conversation(payload), &options).unwrap();
            assert!(
                prompt.text().matches(payload.as_str()).count() >= 8,
                "payload was rendered"
            );
            assert_only_format_specials(&tok, &prompt.segments, &format!("{thinking} {drop}"));
        }
    }
    // Plain encoding of every special string, alone and together.
    for s in specials.iter().chain([&everything]) {
        let ids = tok.encode_text(s);
        assert!(ids.iter().all(|&id| !tok.is_special(id)), "{s}");
        assert_eq!(&tok.decode(&ids).unwrap(), s);
    }
}

#[test]
fn format_specials_are_control_tokens() {
    let tok = Tokenizer::builtin().unwrap();
    let mut options = RenderOptions::new(Checkpoint::April);
    options.thinking = true;
    let prompt = render_messages(&conversation("hello"), &options).unwrap();
    let ids = prompt.encode(&tok);
    // BOS, then the tools block's own <think>/</think>/｜DSML｜ markers are control tokens.
    assert_eq!(ids[0], 0);
    for id in [128_803, 128_804, 128_821, 128_822, 128_825, 128_828, 1] {
        assert!(ids.contains(&id), "missing control token {id}");
    }
}
