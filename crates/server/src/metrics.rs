//! `GET /health` and `GET /metrics`, and the per-route request counter.
//!
//! `/health` is public: 503 `{"status": "loading"}` until the model is
//! ready (or `"error"` with the reason if loading failed), then 200. `/metrics`
//! is Prometheus text: the engine's counters (requests, prompt/cached/
//! generated tokens, cache hits, queue depth, prefill and decode tokens and
//! seconds with derived tokens/s) and the server's (HTTP requests by route
//! and status, generations in flight, client cancellations, constrained
//! generations, mean time to first token).

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::state::AppState;

/// `GET /health`.
pub(crate) async fn health(State(st): State<Arc<AppState>>) -> Response {
    if let Some(e) = st.load_error() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "error", "error": e})),
        )
            .into_response();
    }
    match st.ready() {
        Ok(r) => axum::Json(json!({
            "status": "ok",
            "model": st.cfg.model_id,
            "ctx": r.ctx,
            "sessions": r.engine.info().sessions,
            "synthetic": r.engine.info().synthetic,
        }))
        .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "loading"})),
        )
            .into_response(),
    }
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    let mut out = String::new();
    let m = &st.metrics;
    if let Ok(r) = st.ready() {
        let s = r.engine.stats();
        metric(
            &mut out,
            "dsv4_requests_total",
            "counter",
            "Generations submitted to the engine.",
            s.requests as f64,
        );
        metric(
            &mut out,
            "dsv4_requests_finished_total",
            "counter",
            "Generations finished (any reason).",
            s.finished as f64,
        );
        metric(
            &mut out,
            "dsv4_prompt_tokens_total",
            "counter",
            "Prompt tokens received.",
            s.prompt_tokens as f64,
        );
        metric(
            &mut out,
            "dsv4_prompt_tokens_cached_total",
            "counter",
            "Prompt tokens reused from resident sessions.",
            s.cached_tokens as f64,
        );
        metric(
            &mut out,
            "dsv4_cache_hits_total",
            "counter",
            "Generations that reused a resident prefix.",
            s.cache_hits as f64,
        );
        metric(
            &mut out,
            "dsv4_generated_tokens_total",
            "counter",
            "Tokens generated.",
            s.generated_tokens as f64,
        );
        metric(
            &mut out,
            "dsv4_queue_depth",
            "gauge",
            "Generations waiting for a session.",
            s.queue_depth as f64,
        );
        metric(
            &mut out,
            "dsv4_prefill_tokens_total",
            "counter",
            "Prompt tokens evaluated.",
            s.prefill_tokens as f64,
        );
        metric(
            &mut out,
            "dsv4_prefill_seconds_total",
            "counter",
            "Seconds spent in prefill batches.",
            s.prefill_seconds,
        );
        metric(
            &mut out,
            "dsv4_decode_tokens_total",
            "counter",
            "Decode rows evaluated.",
            s.decode_tokens as f64,
        );
        metric(
            &mut out,
            "dsv4_decode_seconds_total",
            "counter",
            "Seconds spent in decode-only batches.",
            s.decode_seconds,
        );
        let rate = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
        metric(
            &mut out,
            "dsv4_prefill_tokens_per_second",
            "gauge",
            "Mean prefill throughput.",
            rate(s.prefill_tokens, s.prefill_seconds),
        );
        metric(
            &mut out,
            "dsv4_decode_tokens_per_second",
            "gauge",
            "Mean decode throughput.",
            rate(s.decode_tokens, s.decode_seconds),
        );
        metric(
            &mut out,
            "dsv4_forward_calls_total",
            "counter",
            "Forward passes.",
            s.forward_calls as f64,
        );
    }
    metric(
        &mut out,
        "dsv4_model_ready",
        "gauge",
        "1 once the model is loaded.",
        if st.is_ready() { 1.0 } else { 0.0 },
    );
    metric(
        &mut out,
        "dsv4_generations_in_flight",
        "gauge",
        "Generations running now.",
        m.in_flight.load(Ordering::Relaxed) as f64,
    );
    metric(
        &mut out,
        "dsv4_client_cancellations_total",
        "counter",
        "Generations abandoned by their client.",
        m.cancelled.load(Ordering::Relaxed) as f64,
    );
    metric(
        &mut out,
        "dsv4_constrained_generations_total",
        "counter",
        "Generations under a grammar.",
        m.constrained.load(Ordering::Relaxed) as f64,
    );
    let n = m.ttft_n.load(Ordering::Relaxed);
    let ttft = if n > 0 {
        m.ttft_us.load(Ordering::Relaxed) as f64 / n as f64 / 1e6
    } else {
        0.0
    };
    metric(
        &mut out,
        "dsv4_time_to_first_token_seconds_mean",
        "gauge",
        "Mean time to first token.",
        ttft,
    );
    let _ = writeln!(
        out,
        "# HELP dsv4_http_requests_total HTTP requests by route and status.\n# TYPE dsv4_http_requests_total counter"
    );
    for ((route, status), count) in m.http_snapshot() {
        let _ = writeln!(
            out,
            "dsv4_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
        );
    }
    let mut resp = out.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

/// Counts every request by matched route and status.
pub(crate) async fn track(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let resp = next.run(req).await;
    st.metrics.http(&route, resp.status().as_u16());
    resp
}
