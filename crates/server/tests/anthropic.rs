//! Anthropic Messages against a live server with the demo model: the
//! response shape, the exact SSE event grammar Claude Code validates,
//! thinking blocks with signatures, tool_use forced by tool_choice, history
//! with every block type, count_tokens, usage buckets and error shapes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Value, json};

fn weather() -> Value {
    let t = weather_tool();
    json!({"name": "get_weather", "description": t["function"]["description"], "input_schema": t["function"]["parameters"]})
}

/// Checks the stream grammar and returns the blocks it assembles.
fn assemble(evs: &[Sse]) -> (Vec<Value>, Value) {
    let named: Vec<(String, Value)> = evs
        .iter()
        .map(|e| (e.event.clone().unwrap(), e.json()))
        .collect();
    for (name, data) in &named {
        assert_eq!(
            data["type"].as_str(),
            Some(name.as_str()),
            "event name and type agree"
        );
    }
    let real: Vec<&(String, Value)> = named.iter().filter(|(n, _)| n != "ping").collect();
    assert_eq!(real[0].0, "message_start");
    assert_eq!(real.iter().filter(|(n, _)| n == "message_start").count(), 1);
    assert_eq!(real[real.len() - 1].0, "message_stop");
    assert_eq!(real[real.len() - 2].0, "message_delta");
    let start = &real[0].1["message"];
    assert_eq!(start["content"], json!([]));
    assert!(start["usage"]["input_tokens"].as_u64().unwrap() > 0);
    let mut blocks: Vec<Value> = Vec::new();
    let mut json_parts: Vec<String> = Vec::new();
    let mut open: Option<usize> = None;
    for (name, d) in &real[1..real.len() - 2] {
        match name.as_str() {
            "content_block_start" => {
                assert!(open.is_none(), "blocks are strictly sequential");
                let i = d["index"].as_u64().unwrap() as usize;
                assert_eq!(i, blocks.len(), "indices are contiguous");
                let b = d["content_block"].clone();
                match b["type"].as_str().unwrap() {
                    "thinking" => assert_eq!(
                        (b["thinking"].as_str(), b["signature"].as_str()),
                        (Some(""), Some(""))
                    ),
                    "text" => assert_eq!(b["text"], ""),
                    "tool_use" => {
                        assert_eq!(b["input"], json!({}), "input: {{}} in the start event");
                        assert!(b["id"].as_str().unwrap().starts_with("toolu_"));
                    }
                    other => panic!("unexpected block {other}"),
                }
                blocks.push(b);
                json_parts.push(String::new());
                open = Some(i);
            }
            "content_block_delta" => {
                let i = d["index"].as_u64().unwrap() as usize;
                assert_eq!(Some(i), open);
                let b = &mut blocks[i];
                let delta = &d["delta"];
                match (b["type"].as_str().unwrap(), delta["type"].as_str().unwrap()) {
                    ("thinking", "thinking_delta") => {
                        assert!(b["signature"] == "", "no thinking after the signature");
                        let t = b["thinking"].as_str().unwrap().to_string()
                            + delta["thinking"].as_str().unwrap();
                        b["thinking"] = json!(t);
                    }
                    ("thinking", "signature_delta") => {
                        assert!(!delta["signature"].as_str().unwrap().is_empty());
                        b["signature"] = delta["signature"].clone();
                    }
                    ("text", "text_delta") => {
                        let t = b["text"].as_str().unwrap().to_string()
                            + delta["text"].as_str().unwrap();
                        b["text"] = json!(t);
                    }
                    ("tool_use", "input_json_delta") => {
                        json_parts[i].push_str(delta["partial_json"].as_str().unwrap())
                    }
                    (b, d) => panic!("{d} inside a {b} block"),
                }
            }
            "content_block_stop" => {
                let i = d["index"].as_u64().unwrap() as usize;
                assert_eq!(Some(i), open);
                if blocks[i]["type"] == "thinking" {
                    assert!(
                        !blocks[i]["signature"].as_str().unwrap().is_empty(),
                        "a thinking block ends signed"
                    );
                }
                if blocks[i]["type"] == "tool_use" {
                    blocks[i]["input"] = serde_json::from_str(&json_parts[i])
                        .unwrap_or_else(|e| panic!("{e}: {}", json_parts[i]));
                }
                open = None;
            }
            other => panic!("unexpected event {other}"),
        }
    }
    assert!(open.is_none());
    (blocks, real[real.len() - 2].1.clone())
}

#[tokio::test]
async fn non_streaming_message_with_thinking() {
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 16, "system": "Be brief.",
        "thinking": {"type": "enabled", "budget_tokens": 6}, "messages": [{"role": "user", "content": "Hi"}]});
    let (s, r) = post_to(
        &BASE,
        "/v1/messages",
        &body,
        &[
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "interleaved-thinking-2025-05-14"),
        ],
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        (r["type"].as_str(), r["role"].as_str()),
        (Some("message"), Some("assistant"))
    );
    assert!(r["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(r["model"], "claude-sonnet-4-5");
    let content = r["content"].as_array().unwrap();
    assert_eq!(content[0]["type"], "thinking");
    assert!(!content[0]["signature"].as_str().unwrap().is_empty());
    assert_eq!(
        content[1]["type"], "text",
        "the budget forced </think>, the rest is text"
    );
    assert_eq!(r["stop_reason"], "max_tokens");
    let u = &r["usage"];
    assert_eq!(u["output_tokens"], 16);
    assert!(u["cache_read_input_tokens"].is_u64() && u["cache_creation_input_tokens"] == 0);
    // Thinking disabled: no thinking block at all.
    let body = json!({"model": "m", "max_tokens": 8, "thinking": {"type": "disabled"}, "messages": [{"role": "user", "content": "Hi"}]});
    let (_, r) = post("/v1/messages", &body).await;
    assert!(
        r["content"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["type"] == "text"),
        "{r}"
    );
}

#[tokio::test]
async fn stream_grammar_with_thinking_and_text() {
    let body = json!({"model": "m", "max_tokens": 20, "stream": true, "thinking": {"type": "enabled", "budget_tokens": 8},
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]});
    let (s, ct, evs) = stream(&BASE, "/v1/messages", &body).await;
    assert_eq!(s, 200);
    assert!(ct.starts_with("text/event-stream"));
    let (blocks, delta) = assemble(&evs);
    assert_eq!(blocks[0]["type"], "thinking");
    assert_eq!(blocks[1]["type"], "text");
    assert_eq!(delta["delta"]["stop_reason"], "max_tokens");
    assert_eq!(delta["usage"]["output_tokens"], 20);
    // Thinking off: no thinking or signature events.
    let body = json!({"model": "m", "max_tokens": 6, "stream": true, "thinking": {"type": "disabled"},
        "messages": [{"role": "user", "content": "Hello"}]});
    let (_, _, evs) = stream(&BASE, "/v1/messages", &body).await;
    let (blocks, _) = assemble(&evs);
    assert!(blocks.iter().all(|b| b["type"] == "text"));
    assert!(evs.iter().all(|e| !e.data.contains("signature")));
}

#[tokio::test]
async fn forced_tool_use_streams_input_json() {
    for (choice, thinking) in [
        (
            json!({"type": "tool", "name": "get_weather"}),
            json!({"type": "disabled"}),
        ),
        (
            json!({"type": "any"}),
            json!({"type": "enabled", "budget_tokens": 10}),
        ),
    ] {
        let body = json!({"model": "m", "max_tokens": 300, "stream": true, "tools": [weather()], "tool_choice": choice,
            "thinking": thinking, "messages": [{"role": "user", "content": "Weather in Oslo?"}]});
        let (_, _, evs) = stream(&BASE, "/v1/messages", &body).await;
        let (blocks, delta) = assemble(&evs);
        assert_eq!(delta["delta"]["stop_reason"], "tool_use");
        let tools: Vec<&Value> = blocks.iter().filter(|b| b["type"] == "tool_use").collect();
        assert!(!tools.is_empty());
        for t in tools {
            assert_eq!(t["name"], "get_weather");
            check_weather_args(&t["input"].to_string());
        }
    }
    // Non-streaming, with disable_parallel_tool_use.
    let body = json!({"model": "m", "max_tokens": 260, "tools": [weather()],
        "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true},
        "thinking": {"type": "disabled"}, "messages": [{"role": "user", "content": "Weather?"}]});
    let (_, r) = post("/v1/messages", &body).await;
    assert_eq!(r["stop_reason"], "tool_use");
    let uses: Vec<&Value> = r["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .collect();
    assert_eq!(uses.len(), 1);
    check_weather_args(&uses[0]["input"].to_string());
}

#[tokio::test]
async fn history_with_every_block_type_and_count_tokens() {
    let messages = json!([
        {"role": "user", "content": [{"type": "text", "text": "Look"}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "I should check.", "signature": "forged-or-foreign"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo", "days": 2}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "sunny"}, {"type": "image", "source": {}}]},
            {"type": "text", "text": "And tomorrow?"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Oslo", "days": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_2", "content": "rain", "is_error": true}]}
    ]);
    let system = json!([{"type": "text", "text": "x-anthropic-billing-header: cc_version=1"}, {"type": "text", "text": "You are helpful.", "cache_control": {"type": "ephemeral"}}]);
    let body = json!({"model": "claude-haiku-4-5-20251001", "max_tokens": 8, "system": system, "messages": messages,
        "tools": [weather(), {"type": "web_search_20250305", "name": "web_search"}], "thinking": {"type": "adaptive"}});
    let (s, count) = post("/v1/messages/count_tokens?beta=true", &body).await;
    assert_eq!(s, 200, "{count}");
    let n = count["input_tokens"].as_u64().unwrap();
    let h = [("x-claude-code-session-id", "anthropic-history")];
    let (s, r) = post_to(&BASE, "/v1/messages", &body, &h).await;
    assert_eq!(s, 200, "{r}");
    let u = &r["usage"];
    assert_eq!(
        u["input_tokens"].as_u64().unwrap() + u["cache_read_input_tokens"].as_u64().unwrap(),
        n,
        "count_tokens counts exactly the prompt"
    );
    // The same request again reuses the prompt: the cache-read bucket grows.
    let (_, r2) = post_to(&BASE, "/v1/messages", &body, &h).await;
    assert!(
        r2["usage"]["cache_read_input_tokens"].as_u64().unwrap() + 1 >= n,
        "{}",
        r2["usage"]
    );
    // The billing header is not part of the prompt.
    let mut without = body.clone();
    without["system"] = json!("You are helpful.");
    let (_, c2) = post("/v1/messages/count_tokens", &without).await;
    assert_eq!(c2["input_tokens"].as_u64().unwrap(), n);
}

#[tokio::test]
async fn anthropic_error_shapes() {
    let (s, e) = post_raw("/v1/messages", b"{\"model\": ".to_vec()).await;
    assert_eq!(s, 400);
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "invalid_request_error");
    let (s, e) = post("/v1/messages", &json!({"model": "m", "messages": "hello"})).await;
    assert_eq!(s, 400);
    assert!(
        e["error"]["message"].as_str().unwrap().contains("messages"),
        "{e}"
    );
    let (s, e) = post(
        "/v1/messages",
        &json!({"messages": [{"role": "robot", "content": "x"}]}),
    )
    .await;
    assert_eq!(
        (s, e["error"]["type"].as_str()),
        (400, Some("invalid_request_error"))
    );
    let long = "word ".repeat(5000);
    let (s, e) = post(
        "/v1/messages",
        &json!({"max_tokens": 4, "messages": [{"role": "user", "content": long}]}),
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("prompt is too long"),
        "{e}"
    );
    let (s, e) = post("/v1/messages/nope", &json!({})).await;
    assert_eq!((s, e["type"].as_str()), (404, Some("error")));
}
