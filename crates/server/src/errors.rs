//! Errors a request can end with, and their two wire shapes.
//!
//! Owns [`ApiError`] (a kind, a bounded message, an optional parameter and
//! code) and the two response wrappers that render it: [`OpenAiError`]
//! (`{"error": {"message", "type", "param", "code"}}`, used by every OpenAI
//! route and the native ones) and [`AnthropicError`]
//! (`{"type": "error", "error": {"type", "message"}}`). Client mistakes are
//! 4xx with a message saying what to change; 5xx is reserved for the engine
//! failing. Messages are cut to [`MAX_MESSAGE`] bytes so an error never echoes
//! a large body back.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Longest error message sent (bytes).
pub(crate) const MAX_MESSAGE: usize = 600;

/// What went wrong, independent of the API shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// Malformed or invalid request (400).
    InvalidRequest,
    /// The prompt does not fit the context (400, `context_length_exceeded`).
    ContextLength,
    /// Missing or wrong API key (401).
    Authentication,
    /// Unknown route or object (404).
    NotFound,
    /// Body over the limit (413).
    TooLarge,
    /// The model is still loading or failed to load (503).
    Unavailable,
    /// The engine failed (500).
    Internal,
}

/// An error ready to be rendered in either API's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
    pub(crate) param: Option<String>,
    pub(crate) code: Option<&'static str>,
}

fn bounded(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    message
}

impl ApiError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: bounded(message.into()),
            param: None,
            code: None,
        }
    }

    /// A 400 naming the offending parameter.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    /// A 400 about one parameter.
    pub(crate) fn invalid_param(param: &str, message: impl Into<String>) -> Self {
        let mut e = Self::invalid(message);
        e.param = Some(param.to_string());
        e
    }

    pub(crate) fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// The prompt is `prompt` tokens and the context holds `ctx`.
    pub(crate) fn context_length(prompt: usize, ctx: usize) -> Self {
        let mut e = Self::new(
            ErrorKind::ContextLength,
            format!(
                "This model's maximum context length is {ctx} tokens. However, your messages resulted in \
                 {prompt} tokens (prompt is too long: {prompt} tokens > {ctx} maximum). Shorten or compact \
                 the conversation, or restart the server with a larger --ctx."
            ),
        );
        e.param = Some("messages".into());
        e.code = Some("context_length_exceeded");
        e
    }

    pub(crate) fn status(&self) -> StatusCode {
        match self.kind {
            ErrorKind::InvalidRequest | ErrorKind::ContextLength => StatusCode::BAD_REQUEST,
            ErrorKind::Authentication => StatusCode::UNAUTHORIZED,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// OpenAI's error object (the value of `"error"`).
    pub(crate) fn openai_object(&self) -> Value {
        let kind = match self.kind {
            ErrorKind::InvalidRequest | ErrorKind::ContextLength | ErrorKind::TooLarge => {
                "invalid_request_error"
            }
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::Unavailable => "service_unavailable_error",
            ErrorKind::Internal => "server_error",
        };
        let code = self.code.or(match self.kind {
            ErrorKind::Authentication => Some("invalid_api_key"),
            ErrorKind::TooLarge => Some("request_too_large"),
            ErrorKind::Unavailable => Some("model_not_ready"),
            _ => None,
        });
        json!({"message": self.message, "type": kind, "param": self.param, "code": code})
    }

    /// Anthropic's error object (the value of `"error"`).
    pub(crate) fn anthropic_object(&self) -> Value {
        let kind = match self.kind {
            ErrorKind::InvalidRequest | ErrorKind::ContextLength => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::TooLarge => "request_too_large",
            ErrorKind::Unavailable => "overloaded_error",
            ErrorKind::Internal => "api_error",
        };
        json!({"type": kind, "message": self.message})
    }
}

impl From<dsv4_engine::EngineError> for ApiError {
    fn from(e: dsv4_engine::EngineError) -> Self {
        use dsv4_engine::EngineError as E;
        match e {
            E::InvalidRequest(m) => ApiError::invalid(m),
            E::ContextOverflow { prompt, ctx } => ApiError::context_length(prompt, ctx),
            E::Stopped => ApiError::new(ErrorKind::Unavailable, "the engine has stopped"),
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// An [`ApiError`] rendered in OpenAI's shape.
#[derive(Debug)]
pub(crate) struct OpenAiError(pub(crate) ApiError);

/// An [`ApiError`] rendered in Anthropic's shape.
#[derive(Debug)]
pub(crate) struct AnthropicError(pub(crate) ApiError);

impl From<ApiError> for OpenAiError {
    fn from(e: ApiError) -> Self {
        OpenAiError(e)
    }
}

impl From<ApiError> for AnthropicError {
    fn from(e: ApiError) -> Self {
        AnthropicError(e)
    }
}

fn log(e: &ApiError) {
    if e.kind == ErrorKind::Internal {
        tracing::error!(message = %e.message, "request failed");
    } else {
        tracing::debug!(status = %e.status(), message = %e.message, "request refused");
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        log(&self.0);
        let body = json!({"error": self.0.openai_object()});
        (self.0.status(), axum::Json(body)).into_response()
    }
}

impl IntoResponse for AnthropicError {
    fn into_response(self) -> Response {
        log(&self.0);
        let body = json!({"type": "error", "error": self.0.anthropic_object()});
        (self.0.status(), axum::Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_statuses() {
        let e = ApiError::context_length(5000, 4096);
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let o = e.openai_object();
        assert_eq!(o["code"], "context_length_exceeded");
        assert_eq!(o["type"], "invalid_request_error");
        assert!(
            o["message"]
                .as_str()
                .is_some_and(|m| m.contains("maximum context length is 4096"))
        );
        let a = e.anthropic_object();
        assert_eq!(a["type"], "invalid_request_error");
        assert!(
            a["message"]
                .as_str()
                .is_some_and(|m| m.contains("prompt is too long"))
        );
        let long = ApiError::invalid("x".repeat(10_000));
        assert!(long.message.len() <= MAX_MESSAGE + 3);
        assert_eq!(
            ApiError::new(ErrorKind::TooLarge, "big").status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            ApiError::new(ErrorKind::Unavailable, "x").anthropic_object()["type"],
            "overloaded_error"
        );
    }
}
