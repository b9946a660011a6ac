//! Server-sent events: framing and the streaming driver shared by the APIs.
//!
//! [`stream`] turns a [`Generation`] and an API-specific [`SseWriter`] into a
//! `text/event-stream` response whose headers go out at once. The body is a
//! pull stream: it owns the generation, so when the client disconnects hyper
//! drops the body, which drops the engine handle, and the engine cancels the
//! request at its next prefill chunk or decode step. When nothing has been
//! sent for `keepalive` (a long prefill, a queue), the writer emits a
//! keepalive (an SSE comment for OpenAI clients, `event: ping` for Anthropic
//! ones). Frames produced together are sent in one chunk.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

use crate::generate::{Ev, Generation};

/// `data: {json}\n\n`.
pub(crate) fn data(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

/// `event: NAME\ndata: {json}\n\n`.
pub(crate) fn event(name: &str, v: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {v}\n\n"))
}

/// An SSE comment line (ignored by clients, keeps proxies and sockets alive).
pub(crate) fn comment(text: &str) -> Bytes {
    Bytes::from(format!(": {text}\n\n"))
}

/// The OpenAI stream terminator.
pub(crate) fn done() -> Bytes {
    Bytes::from_static(b"data: [DONE]\n\n")
}

/// Translates generation events into frames of one API.
pub(crate) trait SseWriter: Send + 'static {
    /// Frames for a batch of events (the last batch holds `Finished` or `Failed`).
    fn events(&mut self, evs: Vec<Ev>, out: &mut Vec<Bytes>);
    /// A keepalive frame while nothing happens.
    fn keepalive(&mut self, out: &mut Vec<Bytes>);
}

struct Driver<W: SseWriter> {
    generation: Generation,
    writer: W,
    pending: VecDeque<Bytes>,
    keepalive: Duration,
    last_sent: Instant,
    ended: bool,
}

impl<W: SseWriter> Driver<W> {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if !self.pending.is_empty() {
                let mut chunk = Vec::new();
                while let Some(b) = self.pending.pop_front() {
                    chunk.extend_from_slice(&b);
                }
                self.last_sent = Instant::now();
                return Some(Bytes::from(chunk));
            }
            if self.ended {
                return None;
            }
            let mut out = Vec::new();
            // Keepalives follow the time since the last byte sent, not since
            // the last engine event: prefill progress produces no frames.
            let wait = self.keepalive.saturating_sub(self.last_sent.elapsed());
            match tokio::time::timeout(wait, self.generation.next()).await {
                Ok(Some(evs)) => self.writer.events(evs, &mut out),
                Ok(None) => self.ended = true,
                Err(_) => self.writer.keepalive(&mut out),
            }
            if out.is_empty() && !self.ended && self.last_sent.elapsed() >= self.keepalive {
                self.writer.keepalive(&mut out);
            }
            self.pending.extend(out);
        }
    }
}

/// The streaming response: `first` frames are sent immediately.
pub(crate) fn stream<W: SseWriter>(
    generation: Generation,
    writer: W,
    first: Vec<Bytes>,
    keepalive: Duration,
) -> Response {
    let driver = Driver {
        generation,
        writer,
        pending: first.into(),
        keepalive,
        last_sent: Instant::now(),
        ended: false,
    };
    let body = futures_util::stream::unfold(driver, |mut d| async move {
        d.next_chunk().await.map(|b| (Ok::<_, Infallible>(b), d))
    });
    let mut resp = Response::new(Body::from_stream(body));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}
