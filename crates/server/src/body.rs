//! Request bodies: read with a size limit, parsed as strict JSON into the
//! route's serde type, and headers the routes share (session routing).
//!
//! Policy: malformed JSON and wrongly typed fields are a 400 naming the JSON
//! path (`messages[2].content: invalid type…`); unknown fields are ignored
//! (clients send provider-specific extras, user-needs §2.1); a body over the
//! limit is a 413. The content type is not checked (some clients omit it).
//! serde_json rejects NaN, raw control characters and lone surrogates.

use axum::body::Body;
use axum::http::HeaderMap;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::errors::{ApiError, ErrorKind};

/// Reads the whole body, refusing more than `limit` bytes.
pub(crate) async fn read(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let inner = e.into_inner();
        if inner.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
            ApiError::new(
                ErrorKind::TooLarge,
                format!("the request body is larger than {limit} bytes; raise --max-body-mb to accept it"),
            )
        } else {
            ApiError::invalid(format!("cannot read the request body: {inner}"))
        }
    })
}

/// Parses JSON into `T`, reporting the path of the offending field.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid(
            "the request body is empty; send a JSON object",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let what = if inner.is_syntax() || inner.is_eof() {
            format!("the request body is not valid JSON: {inner}")
        } else if path == "." {
            format!("invalid request: {inner}")
        } else {
            format!("invalid value for `{path}`: {inner}")
        };
        let mut err = ApiError::invalid(what);
        if path != "." {
            err.param = Some(path);
        }
        err
    })
}

/// Reads and parses in one go.
pub(crate) async fn json<T: DeserializeOwned>(body: Body, limit: usize) -> Result<T, ApiError> {
    parse(&read(body, limit).await?)
}

/// Headers that name a conversation, in order of preference: ours, then the
/// ones coding agents send natively (Claude Code, OpenCode, Codex).
const SESSION_HEADERS: [&str; 5] = [
    "x-session-id",
    "x-claude-code-session-id",
    "x-opencode-session",
    "session_id",
    "conversation_id",
];

/// The session key a request asks for (header, then a body field such as
/// OpenAI's `prompt_cache_key`), bounded in length.
pub(crate) fn session_key(headers: &HeaderMap, body_key: Option<&str>) -> Option<String> {
    SESSION_HEADERS
        .iter()
        .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        .or(body_key)
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| k.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct T {
        a: Vec<u32>,
        b: Option<String>,
    }

    #[test]
    fn errors_name_the_path() {
        let e = parse::<T>(br#"{"a": [1, "x"]}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("a[1]"));
        assert!(e.message.contains("invalid type"), "{}", e.message);
        let e = parse::<T>(b"{\"a\": [1,").unwrap_err();
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
        let e = parse::<T>(b"   ").unwrap_err();
        assert!(e.message.contains("empty"));
        let e = parse::<T>(br#"{"a": [NaN]}"#).unwrap_err();
        assert!(e.message.contains("not valid JSON"));
        // Unknown fields are ignored.
        assert!(parse::<T>(br#"{"a": [], "zzz": {"q": 1}}"#).is_ok());
    }

    #[test]
    fn session_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(session_key(&h, Some("k")), Some("k".into()));
        h.insert("x-claude-code-session-id", "abc".parse().unwrap());
        assert_eq!(session_key(&h, Some("k")), Some("abc".into()));
        h.insert("x-session-id", "mine".parse().unwrap());
        assert_eq!(session_key(&h, None), Some("mine".into()));
    }
}
