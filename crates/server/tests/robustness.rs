//! Robustness against a live server: bad input gets a 4xx in the API's own
//! shape (never a 500, never a panic, never a poisoned session), tolerated
//! input is answered, API keys, CORS, /health while loading, keepalives on
//! long prefills, cancellation when a client disconnects (streaming and not),
//! tokenize/detokenize and /metrics.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;
use dsv4_server::ServerConfig;
use serde_json::{Value, json};

fn chat(extra: Value) -> Value {
    let mut b = json!({"model": "m-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4});
    b.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    b
}

#[tokio::test]
async fn client_errors_are_4xx_in_openai_shape() {
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{not json".to_vec(), 400, "not valid JSON"),
        (b"".to_vec(), 400, "empty"),
        (b"[1, 2]".to_vec(), 400, "invalid"),
        (br#"{"messages": "hello"}"#.to_vec(), 400, "messages"),
        (br#"{"messages": [{"role": "user", "content": 5}]}"#.to_vec(), 400, "messages[0]"),
        (br#"{"messages": [{"role": "wizard", "content": "x"}]}"#.to_vec(), 400, "messages[0]"),
        (br#"{"messages": [], "max_tokens": 3}"#.to_vec(), 400, "empty"),
        (br#"{"messages": [{"role": "user", "content": "x"}], "max_tokens": "ten"}"#.to_vec(), 400, "max_tokens"),
        (br#"{"messages": [{"role": "user", "content": "x"}], "temperature": -1}"#.to_vec(), 400, "temperature"),
        (br#"{"messages": [{"role": "user", "content": "x"}], "n": 3}"#.to_vec(), 400, "n = 1"),
        (br#"{"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "ultra"}"#.to_vec(), 400, "effort"),
        (br#"{"messages": [{"role": "user", "content": "x"}], "logit_bias": {"abc": 1}}"#.to_vec(), 400, "token id"),
        (br#"{"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "yaml"}}"#.to_vec(), 400, "response_format"),
        (br#"{"messages": [{"role": "user", "content": "x"}], "tool_choice": 7}"#.to_vec(), 400, "tool_choice"),
        (br#"{"messages": [{"role": "user", "content": "x"}], "temperature": NaN}"#.to_vec(), 400, "not valid JSON"),
    ];
    for (body, status, needle) in cases {
        let (s, e) = post_raw("/v1/chat/completions", body.clone()).await;
        assert_eq!(s, status, "{} -> {e}", String::from_utf8_lossy(&body));
        let err = &e["error"];
        assert_eq!(err["type"], "invalid_request_error", "{e}");
        let m = err["message"].as_str().unwrap();
        assert!(m.contains(needle), "{m:?} should mention {needle:?}");
        assert!(m.len() < 700);
    }
    // Context overflow before any work.
    let long = "token ".repeat(5000);
    let (s, e) = post(
        "/v1/chat/completions",
        &json!({"messages": [{"role": "user", "content": long}]}),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(e["error"]["code"], "context_length_exceeded");
    // Oversized body (the test server's limit is the default 32 MiB).
    let huge = vec![b' '; 33 << 20];
    let (s, e) = post_raw("/v1/chat/completions", huge).await;
    assert_eq!(s, 413);
    assert_eq!(e["error"]["code"], "request_too_large");
    // Unknown route and wrong method.
    let (s, e) = get("/v2/nothing").await;
    assert_eq!(
        (s, e["error"]["type"].as_str()),
        (404, Some("not_found_error"))
    );
    let (s, e) = get("/v1/chat/completions").await;
    assert_eq!(s, 405);
    assert!(e["error"]["message"].as_str().is_some());
    // The server is fine afterwards.
    let (s, _) = post("/v1/chat/completions", &chat(json!({}))).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn tolerated_input_is_answered() {
    let messages = json!([
        {"role": "developer", "content": "Be brief."},
        {"role": "developer", "content": ""},
        {"role": "system", "content": [{"type": "text", "text": "System."}]},
        {"role": "user", "content": [{"type": "text", "text": "Look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}]},
        {"role": "assistant", "content": null, "reasoning": "thinking about it",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{not valid json"}},
                           {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
        {"role": "tool", "tool_call_id": "call_2", "content": "cloudy"},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "sunny"}]},
        {"role": "function", "name": "legacy", "content": "old style"},
        {"role": "assistant", "content": "ok", "reasoning_content": ""},
        {"role": "user", "content": "thanks"}
    ]);
    let body = json!({"model": "whatever-model-id", "messages": messages, "max_tokens": 3, "tools": [weather_tool()],
        "store": true, "metadata": {"a": 1}, "user": "u", "service_tier": "auto", "verbosity": "low", "prompt_cache_key": "k",
        "parallel_tool_calls": true, "stream_options": {"include_usage": true}, "max_completion_tokens": 3, "stop": ""});
    let (s, r) = post("/v1/chat/completions", &body).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["usage"]["completion_tokens"], 3);
    // The placeholder, not base64, reaches the prompt.
    let (_, t) = post("/tokenize", &json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:x"}}]}], "with_pieces": true})).await;
    let text: String = t["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["piece"].as_str().unwrap().to_string())
        .collect();
    assert!(text.contains("image_url omitted"), "{text}");
}

#[tokio::test]
async fn tokenize_and_detokenize() {
    let (s, t) = post(
        "/tokenize",
        &json!({"content": "Hello <｜User｜> world", "add_special": true}),
    )
    .await;
    assert_eq!(s, 200);
    let ids: Vec<u64> = t["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    assert_eq!(ids[0], 0, "BOS");
    assert!(
        !ids.contains(&128803),
        "typed special strings stay plain text"
    );
    assert_eq!(t["max_model_len"], 4096);
    let (s, d) = post("/detokenize", &json!({"tokens": ids[1..]})).await;
    assert_eq!(s, 200);
    assert_eq!(d["content"], "Hello <｜User｜> world");
    let (s, e) = post("/detokenize", &json!({"tokens": [999999999]})).await;
    assert_eq!(s, 400);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("outside the vocabulary")
    );
    let (s, _) = post("/tokenize", &json!({})).await;
    assert_eq!(s, 400);
    // The chat form counts exactly what a chat request's prompt is.
    let msgs = json!([{"role": "user", "content": "count me"}]);
    let (_, t) = post("/tokenize", &json!({"messages": msgs, "model": "m-chat"})).await;
    let (_, r) = post(
        "/v1/chat/completions",
        &json!({"messages": msgs, "model": "m-chat", "max_tokens": 1}),
    )
    .await;
    assert_eq!(t["count"], r["usage"]["prompt_tokens"]);
}

#[tokio::test]
async fn api_keys_on_every_route_but_health() {
    let cfg = ServerConfig {
        api_keys: vec!["sekret".into(), "other".into()],
        ..config()
    };
    let base = start_with(cfg, true);
    let c = client();
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(
        status(c.get(format!("{base}/health")).send().await.unwrap()),
        200
    );
    let r = c.get(format!("{base}/v1/models")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "invalid_api_key");
    let r = c
        .post(format!("{base}/v1/messages"))
        .header("x-api-key", "wrong")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let e: Value = r.json().await.unwrap();
    assert_eq!(
        (e["type"].as_str(), e["error"]["type"].as_str()),
        (Some("error"), Some("authentication_error"))
    );
    assert_eq!(
        status(
            c.get(format!("{base}/v1/models"))
                .bearer_auth("sekret")
                .send()
                .await
                .unwrap()
        ),
        200
    );
    assert_eq!(
        status(
            c.get(format!("{base}/metrics"))
                .header("x-api-key", "other")
                .send()
                .await
                .unwrap()
        ),
        200
    );
    assert_eq!(
        status(c.get(format!("{base}/metrics")).send().await.unwrap()),
        401
    );
}

#[tokio::test]
async fn cors_only_when_asked() {
    let base = start_with(
        ServerConfig {
            cors_origins: Some(vec!["http://ui.example".into()]),
            ..config()
        },
        true,
    );
    let c = client();
    let r = c
        .request(
            reqwest::Method::OPTIONS,
            format!("{base}/v1/chat/completions"),
        )
        .header("origin", "http://ui.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,authorization",
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://ui.example"
    );
    let r = c
        .get(format!("{base}/health"))
        .header("origin", "http://ui.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://ui.example"
    );
    let r = c
        .get(format!("{}/health", *BASE))
        .header("origin", "http://ui.example")
        .send()
        .await
        .unwrap();
    assert!(
        r.headers().get("access-control-allow-origin").is_none(),
        "no CORS without --cors"
    );
}

#[tokio::test]
async fn health_is_503_while_loading() {
    let base = start_with(config(), false);
    let c = client();
    let r = c.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "loading");
    let r = c
        .post(format!("{base}/v1/chat/completions"))
        .json(&chat(json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("loading"));
    let r = c
        .post(format!("{base}/v1/messages"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "overloaded_error");
}

/// A prompt whose prefill takes a while (several hundred tokens).
fn long_prompt(salt: &str) -> String {
    (0..700).map(|i| format!("{salt}{i} ")).collect()
}

#[tokio::test]
async fn keepalives_during_long_prefills() {
    let body = json!({"model": "m-chat", "messages": [{"role": "user", "content": long_prompt("k")}], "max_tokens": 2, "stream": true});
    let (_, _, evs) = stream(&BASE, "/v1/chat/completions", &body).await;
    let has_text = |e: &Sse| {
        e.data != "[DONE]"
            && e.json()["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
    };
    let first_text = evs.iter().position(has_text).unwrap();
    let comments: usize = evs[..=first_text].iter().map(|e| e.comments).sum();
    assert!(
        comments >= 1,
        "an SSE comment kept the stream alive during prefill"
    );
    let body = json!({"model": "m", "max_tokens": 2, "stream": true, "thinking": {"type": "disabled"},
        "messages": [{"role": "user", "content": long_prompt("p")}]});
    let (_, _, evs) = stream(&BASE, "/v1/messages", &body).await;
    assert!(
        evs.iter().any(|e| e.event.as_deref() == Some("ping")),
        "Anthropic clients get ping events"
    );
}

/// Waits until a metric reaches at least `at_least`.
async fn wait_metric(base: &str, name: &str, at_least: f64) -> f64 {
    let t0 = Instant::now();
    loop {
        let v = metric(base, name).await;
        if v >= at_least || t0.elapsed() > Duration::from_secs(10) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn disconnect_cancels_generation() {
    // A dedicated server so the counters are ours alone.
    let base = start_with(config(), true);
    let finished0 = metric(&base, "dsv4_requests_finished_total").await;
    // Streaming: read the first chunk, then drop the connection.
    let body = json!({"model": "m-chat", "messages": [{"role": "user", "content": "go"}], "max_tokens": 3000, "stream": true});
    let mut resp = client()
        .post(format!("{base}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let first = resp.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("chat.completion.chunk"));
    drop(resp);
    let t0 = Instant::now();
    assert_eq!(
        wait_metric(&base, "dsv4_client_cancellations_total", 1.0).await,
        1.0
    );
    assert!(
        wait_metric(&base, "dsv4_requests_finished_total", finished0 + 1.0).await
            >= finished0 + 1.0
    );
    let gen_ = metric(&base, "dsv4_generated_tokens_total").await;
    assert!(
        gen_ < 1000.0,
        "stopped long before max_tokens ({gen_} tokens)"
    );
    assert!(t0.elapsed() < Duration::from_secs(5));
    // Non-streaming: a raw connection that goes away during prefill.
    let addr = base.trim_start_matches("http://").to_string();
    let body = json!({"model": "m-chat", "messages": [{"role": "user", "content": long_prompt("d")}], "max_tokens": 3000}).to_string();
    let mut sock = std::net::TcpStream::connect(&addr).unwrap();
    write!(sock, "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len()).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    sock.shutdown(std::net::Shutdown::Both).unwrap();
    drop(sock);
    assert_eq!(
        wait_metric(&base, "dsv4_client_cancellations_total", 2.0).await,
        2.0,
        "the non-streaming request was cancelled too"
    );
    assert_eq!(
        wait_metric(&base, "dsv4_generations_in_flight", 0.0).await,
        0.0
    );
    // The server still answers, and its sessions are usable.
    let (s, r) = post_to(&base, "/v1/chat/completions", &chat(json!({})), &[]).await;
    assert_eq!(s, 200, "{r}");
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let _ = post("/v1/chat/completions", &chat(json!({}))).await;
    let mut s = std::net::TcpStream::connect(BASE.trim_start_matches("http://")).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.contains("text/plain; version=0.0.4"));
    for name in [
        "dsv4_requests_total",
        "dsv4_prompt_tokens_total",
        "dsv4_prompt_tokens_cached_total",
        "dsv4_cache_hits_total",
        "dsv4_generated_tokens_total",
        "dsv4_queue_depth",
        "dsv4_prefill_tokens_per_second",
        "dsv4_decode_tokens_per_second",
        "dsv4_client_cancellations_total",
        "dsv4_time_to_first_token_seconds_mean",
    ] {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing");
    }
    assert!(
        text.contains("dsv4_http_requests_total{route=\"/v1/chat/completions\",status=\"200\"}")
    );
    assert!(metric(&BASE, "dsv4_requests_total").await >= 1.0);
}

/// POSTs `body`; asserts a 400 whose message says the model is text only.
async fn refused_as_text_only(path: &str, body: &Value) -> Value {
    let (s, r) = post(path, body).await;
    assert_eq!(s, 400, "{r}");
    let msg = r["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("text only"), "{r}");
    r
}

#[tokio::test]
async fn media_in_the_newest_user_turn_is_a_clear_400() {
    let img = json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}});
    let body = json!({"model": "m", "max_tokens": 3,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "What is in this picture?"}, img]}]});
    let r = refused_as_text_only("/v1/chat/completions", &body).await;
    assert_eq!(r["error"]["code"], "unsupported_content");
    assert_eq!(r["error"]["param"], "messages[0]");
    let body = json!({"model": "m", "max_tokens": 3, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}]});
    let r = refused_as_text_only("/v1/messages", &body).await;
    assert_eq!(r["type"], "error");
    let body = json!({"model": "m", "max_output_tokens": 3, "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "and this?"}, {"type": "input_image", "image_url": "data:image/png;base64,AA=="}]}]});
    refused_as_text_only("/v1/responses", &body).await;
}

#[tokio::test]
async fn a_tool_without_a_name_is_a_400_on_every_api() {
    let schema = json!({"type": "object", "properties": {}});
    let msgs = json!([{"role": "user", "content": "hi"}]);
    let cases = [
        (
            "/v1/chat/completions",
            json!({"model": "m", "max_tokens": 3, "messages": msgs,
                "tools": [{"type": "function", "function": {"name": "", "parameters": schema}}]}),
            Some("tools[0]"),
        ),
        (
            "/v1/messages",
            json!({"model": "m", "max_tokens": 3, "messages": msgs,
                "tools": [{"description": "no name", "input_schema": schema}]}),
            None,
        ),
        (
            "/v1/responses",
            json!({"model": "m", "max_output_tokens": 3, "input": "hi",
                "tools": [{"type": "function", "parameters": schema}]}),
            Some("tools[0].name"),
        ),
    ];
    for (path, body, param) in cases {
        let (s, r) = post(path, &body).await;
        assert_eq!(s, 400, "{path}: {r}");
        let msg = r["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("non-empty name"), "{path}: {r}");
        if let Some(p) = param {
            assert_eq!(r["error"]["param"], p, "{path}: {r}");
        }
    }
}
