//! OpenAI Chat Completions and Completions against a live server with the
//! demo model: response shapes, the streaming grammar, reasoning separation,
//! tool calls forced by tool_choice (well-formed from a random-weight model),
//! json_schema output, logprobs, seeds, stop strings, FIM and prefix reuse.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Value, json};

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

#[tokio::test]
async fn models_and_health() {
    let (s, h) = get("/health").await;
    assert_eq!((s, h["status"].as_str()), (200, Some("ok")));
    let (s, m) = get("/v1/models").await;
    assert_eq!(s, 200);
    assert_eq!(m["object"], "list");
    let ids: Vec<&str> = m["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"dsv4-demo")
            && ids.contains(&"dsv4-demo-chat")
            && ids.contains(&"deepseek-reasoner")
    );
    assert_eq!(m["data"][0]["context_length"], 4096);
    assert!(m["models"].is_array());
    let (s, one) = get("/v1/models/dsv4-demo").await;
    assert_eq!((s, one["id"].as_str()), (200, Some("dsv4-demo")));
    let (s, e) = get("/v1/models/gpt-9").await;
    assert_eq!(s, 404);
    assert_eq!(e["error"]["code"], "model_not_found");
}

#[tokio::test]
async fn chat_non_streaming_shape_and_reasoning() {
    let (s, r) = post(
        "/v1/chat/completions",
        &json!({"model": "dsv4-demo", "messages": user("Hi"), "max_tokens": 12}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["object"], "chat.completion");
    assert!(r["id"].as_str().unwrap().starts_with("chatcmpl-"));
    let c = &r["choices"][0];
    assert_eq!(c["message"]["role"], "assistant");
    assert_eq!(c["finish_reason"], "length");
    // Thinking is on by default: the random model never closes </think>, so
    // everything is reasoning and nothing leaks into content.
    assert!(
        c["message"]["reasoning_content"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    assert_eq!(c["message"]["content"], "");
    let u = &r["usage"];
    assert_eq!(u["completion_tokens"], 12);
    assert_eq!(u["completion_tokens_details"]["reasoning_tokens"], 12);
    assert_eq!(
        u["total_tokens"].as_u64(),
        Some(u["prompt_tokens"].as_u64().unwrap() + 12)
    );
    assert!(u["prompt_tokens_details"]["cached_tokens"].is_u64());
    // Thinking off by alias, by switch and by reasoning_effort none.
    for body in [
        json!({"model": "dsv4-demo-chat", "messages": user("Hi"), "max_tokens": 6}),
        json!({"model": "x", "messages": user("Hi"), "max_tokens": 6, "thinking": {"type": "disabled"}}),
        json!({"model": "x", "messages": user("Hi"), "max_tokens": 6, "reasoning_effort": "none"}),
        json!({"model": "x", "messages": user("Hi"), "max_tokens": 6, "chat_template_kwargs": {"thinking": false}}),
    ] {
        let (s, r) = post("/v1/chat/completions", &body).await;
        assert_eq!(s, 200, "{r}");
        let m = &r["choices"][0]["message"];
        assert!(m.get("reasoning_content").is_none(), "{m}");
        assert!(!m["content"].as_str().unwrap().is_empty());
        assert_eq!(
            r["usage"]["completion_tokens_details"]["reasoning_tokens"],
            0
        );
    }
}

#[tokio::test]
async fn chat_streaming_grammar() {
    let body = json!({"model": "m", "messages": user("Hello"), "max_tokens": 10, "stream": true,
        "stream_options": {"include_usage": true}});
    let (s, ct, evs) = stream(&BASE, "/v1/chat/completions", &body).await;
    assert_eq!(s, 200);
    assert!(ct.starts_with("text/event-stream"));
    assert_eq!(evs.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> = evs[..evs.len() - 1].iter().map(Sse::json).collect();
    let id = chunks[0]["id"].clone();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    for c in &chunks {
        assert_eq!(c["id"], id);
        assert_eq!(c["object"], "chat.completion.chunk");
    }
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 10);
    let fin = &chunks[chunks.len() - 2]["choices"][0];
    assert_eq!(fin["finish_reason"], "length");
    assert_eq!(fin["delta"], json!({}));
    let mut reasoning = String::new();
    for c in &chunks[1..chunks.len() - 2] {
        assert!(c["usage"].is_null());
        let d = &c["choices"][0]["delta"];
        assert!(
            d.get("content").is_none(),
            "content must stay empty while reasoning: {d}"
        );
        reasoning.push_str(d["reasoning_content"].as_str().unwrap());
    }
    assert!(!reasoning.is_empty());
    // Without include_usage: no usage anywhere.
    let body =
        json!({"model": "m-chat", "messages": user("Hello"), "max_tokens": 5, "stream": true});
    let (_, _, evs) = stream(&BASE, "/v1/chat/completions", &body).await;
    assert!(
        evs[..evs.len() - 1]
            .iter()
            .all(|e| e.json().get("usage").is_none())
    );
    let content: String = evs[..evs.len() - 1]
        .iter()
        .filter_map(|e| {
            e.json()["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert!(!content.is_empty());
}

#[tokio::test]
async fn tool_choice_required_and_named_give_well_formed_calls() {
    for (choice, thinking) in [
        (json!("required"), false),
        (
            json!({"type": "function", "function": {"name": "get_weather"}}),
            false,
        ),
        (
            json!({"type": "function", "function": {"name": "get_weather"}}),
            true,
        ),
    ] {
        let body = json!({"model": "m", "messages": user("Weather in Paris?"), "max_tokens": if thinking { 320 } else { 260 },
            "tools": [weather_tool(), search_tool()], "tool_choice": choice, "thinking": thinking, "seed": 3,
            "parallel_tool_calls": false});
        let (s, r) = post("/v1/chat/completions", &body).await;
        assert_eq!(s, 200, "{r}");
        let c = &r["choices"][0];
        assert_eq!(c["finish_reason"], "tool_calls", "{r}");
        let calls = c["message"]["tool_calls"].as_array().unwrap();
        assert!(!calls.is_empty());
        for call in calls {
            assert!(call["id"].as_str().unwrap().starts_with("call_"));
            assert_eq!(call["type"], "function");
            let name = call["function"]["name"].as_str().unwrap();
            let args = call["function"]["arguments"].as_str().unwrap();
            if choice.is_object() || name == "get_weather" {
                assert_eq!(name, "get_weather");
                check_weather_args(args);
            } else {
                assert_eq!(name, "search");
                assert!(serde_json::from_str::<Value>(args).unwrap()["query"].is_string());
            }
        }
        assert_eq!(c["message"]["content"], Value::Null);
    }
}

#[tokio::test]
async fn streamed_tool_call_deltas() {
    let body = json!({"model": "m-chat", "messages": user("Weather?"), "max_tokens": 220, "stream": true,
        "tools": [weather_tool()], "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": false});
    let (_, _, evs) = stream(&BASE, "/v1/chat/completions", &body).await;
    let chunks: Vec<Value> = evs
        .iter()
        .filter(|e| e.data != "[DONE]")
        .map(Sse::json)
        .collect();
    let deltas: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"].get("tool_calls"))
        .collect();
    assert!(deltas.len() >= 2, "name first, then argument fragments");
    let first = &deltas[0][0];
    assert_eq!(first["index"], 0);
    assert!(first["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(first["type"], "function");
    assert_eq!(first["function"]["name"], "get_weather");
    let mut args = first["function"]["arguments"].as_str().unwrap().to_string();
    for d in &deltas[1..] {
        assert_eq!(d[0]["index"], 0);
        assert!(d[0].get("id").is_none() && d[0]["function"].get("name").is_none());
        args.push_str(d[0]["function"]["arguments"].as_str().unwrap());
    }
    check_weather_args(&args);
    let fin = chunks
        .iter()
        .find_map(|c| c["choices"][0]["finish_reason"].as_str().map(String::from));
    assert_eq!(fin.as_deref(), Some("tool_calls"));
}

#[tokio::test]
async fn tool_choice_none_and_no_tools_make_no_calls() {
    for body in [
        json!({"model": "m-chat", "messages": user("x"), "max_tokens": 30, "tools": [weather_tool()], "tool_choice": "none"}),
        json!({"model": "m-chat", "messages": user("x"), "max_tokens": 30}),
    ] {
        let (s, r) = post("/v1/chat/completions", &body).await;
        assert_eq!(s, 200);
        assert!(r["choices"][0]["message"].get("tool_calls").is_none());
        assert!(
            !r["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .contains("DSML")
        );
    }
    let bad = json!({"messages": user("x"), "tools": [weather_tool()], "tool_choice": {"type": "function", "function": {"name": "nope"}}});
    let (s, e) = post("/v1/chat/completions", &bad).await;
    assert_eq!(s, 400);
    assert_eq!(e["error"]["param"], "tool_choice");
    let (s, _) = post(
        "/v1/chat/completions",
        &json!({"messages": user("x"), "tool_choice": "required"}),
    )
    .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn json_schema_response_format_is_enforced() {
    let schema = json!({"type": "object", "properties": {
        "answer": {"type": "string", "maxLength": 30},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}, "maxItems": 2}},
        "required": ["answer", "confidence"], "additionalProperties": false});
    for thinking in [false, true] {
        let body = json!({"model": "m", "messages": user("Answer in JSON"), "max_tokens": 120, "thinking": thinking,
            "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": schema, "strict": true}}});
        let (s, r) = post("/v1/chat/completions", &body).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["choices"][0]["finish_reason"], "stop", "{r}");
        let text = r["choices"][0]["message"]["content"].as_str().unwrap();
        let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert!(v["answer"].as_str().unwrap().chars().count() <= 30);
        assert!((0.0..=1.0).contains(&v["confidence"].as_f64().unwrap()));
        assert!(
            v.as_object()
                .unwrap()
                .keys()
                .all(|k| ["answer", "confidence", "tags"].contains(&k.as_str()))
        );
    }
    let body = json!({"model": "m-chat", "messages": user("JSON please"), "max_tokens": 80, "response_format": {"type": "json_object"}});
    let (_, r) = post("/v1/chat/completions", &body).await;
    let text = r["choices"][0]["message"]["content"].as_str().unwrap();
    // Syntax only (`IgnoredAny` scans numbers without converting them): any
    // JSON object is allowed here, including numbers past f64's range.
    assert!(
        text.trim_start().starts_with('{')
            && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok(),
        "{text}"
    );
}

#[tokio::test]
async fn logprobs_seed_and_stop() {
    let body = json!({"model": "m-chat", "messages": user("Count"), "max_tokens": 8, "seed": 11, "temperature": 1.0,
        "logprobs": true, "top_logprobs": 3});
    let (_, a) = post("/v1/chat/completions", &body).await;
    let (_, b) = post("/v1/chat/completions", &body).await;
    let ta = a["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        ta,
        b["choices"][0]["message"]["content"].as_str().unwrap(),
        "same seed, same text"
    );
    let lp = a["choices"][0]["logprobs"]["content"].as_array().unwrap();
    assert_eq!(lp.len(), 8);
    for t in lp {
        assert!(t["logprob"].as_f64().unwrap() <= 0.0);
        assert_eq!(t["top_logprobs"].as_array().unwrap().len(), 3);
        assert!(t["bytes"].is_array());
    }
    // A stop string taken from that text ends the answer right before it.
    let chars: Vec<char> = ta.chars().collect();
    if chars.len() >= 4 {
        let stop: String = chars[2..4].iter().collect();
        let mut body = body.clone();
        body["stop"] = json!([stop.clone(), ""]);
        let (_, c) = post("/v1/chat/completions", &body).await;
        let tc = c["choices"][0]["message"]["content"].as_str().unwrap();
        assert_eq!(c["choices"][0]["finish_reason"], "stop");
        assert_eq!(tc, &ta[..ta.find(&stop).unwrap()]);
    }
}

#[tokio::test]
async fn prefix_reuse_shows_in_cached_tokens() {
    let long: String = (0..300).map(|i| format!("item {i}; ")).collect();
    let body = json!({"model": "m-chat", "messages": [{"role": "system", "content": long}, {"role": "user", "content": "go"}],
        "max_tokens": 4});
    let h = [("x-session-id", "prefix-test")];
    let (_, a) = post_to(&BASE, "/v1/chat/completions", &body, &h).await;
    let (_, b) = post_to(&BASE, "/v1/chat/completions", &body, &h).await;
    let prompt = b["usage"]["prompt_tokens"].as_u64().unwrap();
    assert_eq!(a["usage"]["prompt_tokens"].as_u64().unwrap(), prompt);
    let cached = b["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    assert!(
        cached + 1 >= prompt,
        "the repeat reuses the whole prompt: {cached}/{prompt}"
    );
    assert_eq!(
        b["usage"]["prompt_cache_hit_tokens"].as_u64().unwrap(),
        cached
    );
    // The next turn reuses at least the first turn's prompt.
    let mut next = body.clone();
    let answer = a["choices"][0]["message"]["content"].as_str().unwrap();
    next["messages"].as_array_mut().unwrap().extend([
        json!({"role": "assistant", "content": answer}),
        json!({"role": "user", "content": "more"}),
    ]);
    let (_, c) = post_to(&BASE, "/v1/chat/completions", &next, &h).await;
    assert!(
        c["usage"]["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap()
            >= prompt - 1,
        "{}",
        c["usage"]
    );
}

#[tokio::test]
async fn completions_raw_fim_echo_and_logprobs() {
    let (s, r) = post(
        "/v1/completions",
        &json!({"model": "m", "prompt": "def add(a, b):"}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["object"], "text_completion");
    assert_eq!(
        r["usage"]["completion_tokens"], 16,
        "OpenAI's default max_tokens"
    );
    assert_eq!(r["choices"][0]["finish_reason"], "length");
    let (_, r) = post(
        "/v1/completions",
        // Greedy: at temperature 1 the random demo model may sample a special
        // token, which has no text and so no legacy logprob entry.
        &json!({"prompt": "abc", "max_tokens": 3, "echo": true, "logprobs": 2, "temperature": 0}),
    )
    .await;
    let text = r["choices"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("abc"));
    let lp = &r["choices"][0]["logprobs"];
    assert_eq!(lp["tokens"].as_array().unwrap().len(), 3, "{r}");
    assert_eq!(lp["token_logprobs"].as_array().unwrap().len(), 3);
    for top in lp["top_logprobs"].as_array().unwrap() {
        assert_eq!(top.as_object().unwrap().len(), 2);
    }
    // Offsets point into the echoed text: the first generated token starts
    // right after "abc".
    assert_eq!(lp["text_offset"][0], 3);
    // FIM: BOS <｜fim▁begin｜>prompt<｜fim▁hole｜>suffix<｜fim▁end｜> (with BOS and
    // three control tokens, the prompt is 4 tokens longer than the two texts).
    let (_, r) = post(
        "/beta/completions",
        &json!({"prompt": "def f(x):\n    ", "suffix": "\n    return y\n", "max_tokens": 4}),
    )
    .await;
    let (_, t1) = post("/tokenize", &json!({"content": "def f(x):\n    "})).await;
    let (_, t2) = post("/tokenize", &json!({"content": "\n    return y\n"})).await;
    assert_eq!(
        r["usage"]["prompt_tokens"].as_u64().unwrap(),
        t1["count"].as_u64().unwrap() + t2["count"].as_u64().unwrap() + 4
    );
    // Streaming completions end with [DONE].
    let (_, _, evs) = stream(
        &BASE,
        "/v1/completions",
        &json!({"prompt": "x", "max_tokens": 3, "stream": true}),
    )
    .await;
    assert_eq!(evs.last().unwrap().data, "[DONE]");
    let text: String = evs[..evs.len() - 1]
        .iter()
        .map(|e| e.json()["choices"][0]["text"].as_str().unwrap().to_string())
        .collect();
    assert!(!text.is_empty());
    let (s, _) = post("/v1/completions", &json!({"prompt": "x", "n": 2})).await;
    assert_eq!(s, 400);
}
