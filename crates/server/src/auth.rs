//! API-key check on every route except `/health` and CORS preflights.
//!
//! Keys come as `Authorization: Bearer KEY` (OpenAI SDKs, Claude Code's
//! `ANTHROPIC_AUTH_TOKEN`) or `x-api-key: KEY` (Anthropic SDKs); both are
//! accepted on every route and compared in constant time. A refusal is a 401
//! in the shape of the API the path belongs to.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::errors::{AnthropicError, ApiError, ErrorKind, OpenAiError};
use crate::state::AppState;

/// Equal in time independent of where the inputs differ (length aside).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn presented(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    bearer
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
}

/// Whether the path belongs to the Anthropic API (for the error shape).
pub(crate) fn is_anthropic(path: &str) -> bool {
    path.starts_with("/v1/messages")
}

/// The middleware.
pub(crate) async fn check(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let keys = &st.cfg.api_keys;
    if keys.is_empty()
        || req.method() == Method::OPTIONS
        || matches!(req.uri().path(), "/health" | "/v1/health")
    {
        return next.run(req).await;
    }
    let ok = presented(req.headers()).is_some_and(|k| {
        keys.iter()
            .fold(false, |acc, key| acc | ct_eq(k.as_bytes(), key.as_bytes()))
    });
    if ok {
        return next.run(req).await;
    }
    let message = if presented(req.headers()).is_some() {
        "invalid API key"
    } else {
        "missing API key: send `Authorization: Bearer KEY` or `x-api-key: KEY`"
    };
    let e = ApiError::new(ErrorKind::Authentication, message);
    if is_anthropic(req.uri().path()) {
        AnthropicError(e).into_response()
    } else {
        OpenAiError(e).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        let mut h = HeaderMap::new();
        assert_eq!(presented(&h), None);
        h.insert("x-api-key", "k1".parse().unwrap());
        assert_eq!(presented(&h), Some("k1"));
        h.insert(header::AUTHORIZATION, "Bearer k2".parse().unwrap());
        assert_eq!(presented(&h), Some("k2"));
    }
}
