//! Request-level behaviour: thinking/effort resolution, request tools, the 0731
//! effort table and the documented extensions beyond the official encoder.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dsv4_tokenizer::chat::{
    APRIL_MAX_PREFIX, ChatRequest, Checkpoint, Effort, RenderOptions, V0731_MAX_PREFIX,
    render_messages,
};
use serde_json::json;

fn request(v: serde_json::Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

fn fixture_prompt(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/chat/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["prompt"].as_str().unwrap().to_owned()
}

#[test]
fn thinking_and_effort_resolution() {
    let base = json!({"messages": [{"role": "user", "content": "Hi"}]});
    let with = |extra: serde_json::Value| {
        let mut v = base.clone();
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        request(v)
    };
    let april = Checkpoint::April;
    let o = with(json!({})).options(april, None, None).unwrap();
    assert!(o.thinking && o.effort == Effort::High && o.drop_thinking);
    let o = with(json!({"reasoning_effort": "none"}))
        .options(april, None, None)
        .unwrap();
    assert!(!o.thinking);
    let o = with(json!({"reasoning_effort": "xhigh"}))
        .options(april, None, None)
        .unwrap();
    assert!(o.thinking && o.effort == Effort::Max);
    let o = with(json!({"thinking": {"type": "disabled"}, "reasoning_effort": "max"}))
        .options(april, None, None)
        .unwrap();
    assert!(!o.thinking, "the explicit switch wins over the effort");
    let o = with(json!({"model": "deepseek-chat"}))
        .options(april, None, Some(true))
        .unwrap();
    assert!(!o.thinking);
    let o =
        with(json!({"model": "deepseek-reasoner", "chat_template_kwargs": {"thinking": false}}))
            .options(april, None, None)
            .unwrap();
    assert!(!o.thinking);
    let o =
        with(json!({"chat_template_kwargs": {"thinking_mode": "chat"}})).options(april, None, None);
    assert!(!o.unwrap().thinking);
    let o = with(json!({"think": false}))
        .options(april, None, None)
        .unwrap();
    assert!(!o.thinking);
    let o = with(json!({})).options(april, None, Some(false)).unwrap();
    assert!(!o.thinking, "server default");
    let o = with(json!({"reasoning_effort": "low"}))
        .options(april, Some("max"), None)
        .unwrap();
    assert_eq!(
        o.effort,
        Effort::Max,
        "the override replaces the request's effort"
    );
    let o = with(json!({"chat_template_kwargs": {"drop_thinking": false}}))
        .options(april, None, None)
        .unwrap();
    assert!(!o.drop_thinking);
    let v0731 = Checkpoint::V0731;
    let o = with(json!({})).options(v0731, None, None).unwrap();
    assert_eq!(o.effort, Effort::Low);
    let o = with(json!({"reasoning_effort": "medium"}))
        .options(v0731, None, None)
        .unwrap();
    assert_eq!(o.effort, Effort::High);
    assert!(
        with(json!({"reasoning_effort": "ultra"}))
            .options(april, None, None)
            .is_err()
    );
    assert!(
        with(json!({"thinking": "sometimes"}))
            .options(april, None, None)
            .is_err()
    );
}

#[test]
fn request_level_tools_go_into_the_system_prompt() {
    // model-spec §9.4 example 5, as an OpenAI request with request-level tools.
    let req = request(json!({
        "model": "deepseek-v4-flash",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Time in Rome?"},
            {"role": "assistant", "content": null, "reasoning_content": "Need the tool.",
             "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_time",
                "arguments": "{\"tz\": \"Europe/Rome\", \"fmt24\": true}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "13:05"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_time", "description": "Current time",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}, "fmt24": {"type": "boolean"}},
            "required": ["tz"]}}}],
        "response_format": {"type": "text"},
        "stream": true, "temperature": 1.0, "unknown_field": [1, 2]
    }));
    let options = req.options(Checkpoint::April, None, None).unwrap();
    assert_eq!(
        req.render(&options).unwrap().text(),
        fixture_prompt("spec_5_tools_thinking")
    );

    // Without a system message an empty one is inserted to carry the tools.
    let req = request(json!({
        "messages": [{"role": "user", "content": "weather?"}],
        "tools": [{"type": "function", "function": {"name": "w", "parameters": {}}}],
        "response_format": {"type": "json_object"}
    }));
    let text = req
        .render(&RenderOptions::new(Checkpoint::April))
        .unwrap()
        .text();
    assert!(text.starts_with("<｜begin▁of▁sentence｜>\n\n## Tools\n\n"));
    assert!(
        text.contains("### Available Tool Schemas\n\n{\"name\": \"w\", \"parameters\": {}}\n\n")
    );
    assert!(text.contains(
        "\n\n## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n{\"type\": \"json_object\"}<｜User｜>weather?"
    ));
}

#[test]
fn effort_prefixes_per_checkpoint() {
    let req = request(json!({"messages": [{"role": "user", "content": "Hi"}]}));
    let render = |cp: Checkpoint, effort: Option<&str>| {
        let o = req.options(cp, effort, None).unwrap();
        req.render(&o).unwrap().text()
    };
    let bos = "<｜begin▁of▁sentence｜>";
    let tail = "<｜User｜>Hi<｜Assistant｜><think>";
    assert_eq!(render(Checkpoint::April, None), format!("{bos}{tail}"));
    assert_eq!(
        render(Checkpoint::April, Some("max")),
        format!("{bos}{APRIL_MAX_PREFIX}{tail}")
    );
    assert_eq!(
        render(Checkpoint::April, Some("max")),
        fixture_prompt("spec_3_thinking_max")
    );
    assert_eq!(render(Checkpoint::V0731, None), format!("{bos}{tail}"));
    assert_eq!(
        render(Checkpoint::V0731, Some("low")),
        format!("{bos}{tail}")
    );
    assert_eq!(
        render(Checkpoint::V0731, Some("high")),
        format!("{bos}{APRIL_MAX_PREFIX}{tail}")
    );
    assert_eq!(
        render(Checkpoint::V0731, Some("max")),
        format!("{bos}{V0731_MAX_PREFIX}{tail}")
    );
    assert_eq!(
        render(Checkpoint::V0731, Some("none")),
        format!("{bos}<｜User｜>Hi<｜Assistant｜></think>")
    );
}

#[test]
fn extensions_beyond_the_official_encoder() {
    let req = request(json!({"messages": [
        {"role": "system", "content": [{"type": "text", "text": "part 1"}, {"type": "text", "text": "part 2"}]},
        {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "x"}}]},
        {"role": "user", "content": null},
        {"role": "assistant", "content": null, "reasoning": "r", "tool_calls": [
            {"id": "1", "type": "function", "function": {"name": "obj", "arguments": {"b": 1.0, "a": "x"}}},
            {"id": "2", "type": "function", "function": {"name": "arr", "arguments": "[1, 2]"}},
            {"id": "3", "type": "function", "function": {"name": "null"}}
        ]}
    ]}));
    let mut o = RenderOptions::new(Checkpoint::April);
    o.thinking = false;
    let text = req.render(&o).unwrap().text();
    let expected = concat!(
        "<｜begin▁of▁sentence｜>part 1\n\npart 2<｜User｜>look\n\n[Unsupported image_url]\n\n<｜Assistant｜></think>",
        "\n\n<｜DSML｜tool_calls>\n",
        "<｜DSML｜invoke name=\"obj\">\n",
        "<｜DSML｜parameter name=\"b\" string=\"false\">1.0</｜DSML｜parameter>\n",
        "<｜DSML｜parameter name=\"a\" string=\"true\">x</｜DSML｜parameter>\n</｜DSML｜invoke>\n",
        "<｜DSML｜invoke name=\"arr\">\n",
        "<｜DSML｜parameter name=\"arguments\" string=\"true\">[1, 2]</｜DSML｜parameter>\n</｜DSML｜invoke>\n",
        "<｜DSML｜invoke name=\"null\">\n",
        "<｜DSML｜parameter name=\"arguments\" string=\"false\">null</｜DSML｜parameter>\n</｜DSML｜invoke>\n",
        "</｜DSML｜tool_calls><｜end▁of▁sentence｜>"
    );
    assert_eq!(text, expected);
    assert!(render_messages(&[], &o).unwrap().text() == "<｜begin▁of▁sentence｜>");
    let bad: Result<ChatRequest, _> =
        serde_json::from_value(json!({"messages": [{"role": "wizard", "content": "x"}]}));
    assert!(bad.is_err());
}
