//! Shared helpers of the server integration tests: one demo engine per test
//! binary (random weights, the real DeepSeek V4 tokenizer), servers on
//! 127.0.0.1:0 with any configuration, and SSE parsing.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use dsv4_engine::demo::demo_engine;
use dsv4_engine::{Engine, EngineConfig};
use dsv4_server::{App, ServerConfig};
use serde_json::Value;

/// The demo engine, built once per test binary.
pub static ENGINE: LazyLock<Arc<Engine>> = LazyLock::new(|| {
    Arc::new(
        demo_engine(EngineConfig {
            ctx: 4096,
            sessions: 6,
            threads: 2,
            ..Default::default()
        })
        .unwrap(),
    )
});

/// Test settings: short keepalive, small default output.
pub fn config() -> ServerConfig {
    ServerConfig {
        model_id: "dsv4-demo".into(),
        default_max_tokens: Some(24),
        keepalive: Duration::from_millis(100),
        ..ServerConfig::default()
    }
}

/// Starts a server (on its own runtime thread) and returns its base URL.
/// `engine: false` leaves the model "loading".
pub fn start_with(cfg: ServerConfig, engine: bool) -> String {
    let app = App::new(cfg);
    if engine {
        app.set_engine(Arc::clone(&ENGINE)).unwrap();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            dsv4_server::serve(listener, &app, std::future::pending())
                .await
                .unwrap();
        });
    });
    format!("http://{}", rx.recv().unwrap())
}

/// A server with the test settings.
pub fn start() -> String {
    start_with(config(), true)
}

/// The default test server of this binary.
pub static BASE: LazyLock<String> = LazyLock::new(start);

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// POSTs JSON; returns status and parsed body.
pub async fn post(path: &str, body: &Value) -> (u16, Value) {
    post_to(&BASE, path, body, &[]).await
}

pub async fn post_to(
    base: &str,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = client().post(format!("{base}{path}")).json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// POSTs raw bytes.
pub async fn post_raw(path: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = client()
        .post(format!("{}{path}", *BASE))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub async fn get(path: &str) -> (u16, Value) {
    let resp = client()
        .get(format!("{}{path}", *BASE))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// One SSE event: its `event:` name (if any), its data, and comment lines
/// seen before it.
#[derive(Debug, Clone)]
pub struct Sse {
    pub event: Option<String>,
    pub data: String,
    pub comments: usize,
}

impl Sse {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("bad SSE data {:?}: {e}", self.data))
    }
}

/// Parses a whole SSE body.
pub fn parse_sse(text: &str) -> Vec<Sse> {
    let mut out = Vec::new();
    let mut comments = 0;
    for block in text.split("\n\n") {
        let mut event = None;
        let mut data = Vec::new();
        for line in block.lines() {
            if let Some(c) = line.strip_prefix(':') {
                let _ = c;
                comments += 1;
            } else if let Some(e) = line.strip_prefix("event: ") {
                event = Some(e.to_string());
            } else if let Some(d) = line.strip_prefix("data: ") {
                data.push(d.to_string());
            }
        }
        if event.is_some() || !data.is_empty() {
            out.push(Sse {
                event,
                data: data.join("\n"),
                comments,
            });
            comments = 0;
        }
    }
    out
}

/// POSTs and returns the status, content type and SSE events of a stream.
pub async fn stream(base: &str, path: &str, body: &Value) -> (u16, String, Vec<Sse>) {
    let resp = client()
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = resp.text().await.unwrap();
    (status, ct, parse_sse(&text))
}

/// A scrape of `/metrics`: the value of one series.
pub async fn metric(base: &str, name: &str) -> f64 {
    let text = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0.0)
}

/// A weather tool whose arguments the grammar bounds.
pub fn weather_tool() -> Value {
    serde_json::json!({
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather forecast for a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "maxLength": 24},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                    "days": {"type": "integer", "minimum": 1, "maximum": 7}
                },
                "required": ["city", "days"],
                // Closed objects: the demo model samples freely within the
                // schema, and an open one lets it add members such as
                // 1e999 that are valid JSON but overflow serde_json's f64.
                "additionalProperties": false
            }
        }
    })
}

pub fn search_tool() -> Value {
    serde_json::json!({
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search the web",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"], "additionalProperties": false}
        }
    })
}

/// Checks `args` (a JSON text) against the weather tool's schema.
pub fn check_weather_args(args: &str) {
    let v: Value = serde_json::from_str(args)
        .unwrap_or_else(|e| panic!("arguments are not JSON ({e}): {args}"));
    assert!(
        v["city"].as_str().is_some_and(|c| c.chars().count() <= 24),
        "{v}"
    );
    assert!(
        v["days"].as_i64().is_some_and(|d| (1..=7).contains(&d)),
        "{v}"
    );
    if let Some(u) = v.get("unit") {
        assert!(u == "celsius" || u == "fahrenheit", "{v}");
    }
    for k in v.as_object().unwrap().keys() {
        assert!(
            ["city", "unit", "days"].contains(&k.as_str()),
            "unexpected key {k}"
        );
    }
}
