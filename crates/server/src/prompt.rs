//! From a chat request to prompt ids: thinking mode, effort and rendering.
//!
//! Every chat-like API (OpenAI chat, Anthropic messages, Responses) builds a
//! tokenizer-crate [`ChatRequest`] and renders it here with the official
//! encoder's rules, so the same conversation renders to the same tokens
//! whichever API carried it (which is what makes prefix reuse work across
//! requests). Thinking is decided, in order (user-needs §2.2): the request's
//! explicit switches (`thinking`, `chat_template_kwargs`, `think`,
//! `reasoning_effort: none`), the model id (aliases below), the server's
//! `--default-thinking`, then on.
//!
//! Model aliases (any other id is accepted and means the default):
//!
//! | id | thinking |
//! |---|---|
//! | `deepseek-chat`, `*-chat`, `*-nothink` | off |
//! | `deepseek-reasoner`, `*-reasoner`, `*-think`, `*-thinking` | on |
//! | `*-max` | on, effort max |
//!
//! Empty developer messages are dropped (the encoder refuses them).
//! Non-text content (images, audio, documents) is replaced by a short
//! placeholder: this model reads text only, and a 400 for a screenshot left in
//! an agent's history would break every later turn. Media in the newest user
//! turn is refused with a 400 instead ([`reject_media_in_last_turn`]): that
//! request asks about something the model cannot see.

use std::sync::Arc;

use dsv4_tokenizer::RenderError;
use dsv4_tokenizer::chat::{ChatRequest, Effort, RenderOptions, Role};
use serde_json::Value;

use crate::ServerConfig;
use crate::errors::ApiError;
use crate::state::Ready;

/// The server-wide thinking default (`--default-thinking`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ThinkingDefault {
    /// Thinking on, the checkpoint's default effort.
    #[default]
    On,
    /// Thinking off.
    Off,
    /// Thinking on, maximum effort.
    Max,
}

/// The kind of the first image/audio/video/document part of a message's
/// content (top-level parts only: a tool result carrying a screenshot is
/// left to the placeholder rule), if any.
pub(crate) fn media_part(content: &Value) -> Option<String> {
    let Value::Array(parts) = content else {
        return None;
    };
    parts.iter().find_map(|p| {
        let kind = p.get("type").and_then(Value::as_str)?;
        let k = kind.trim_start_matches("input_");
        matches!(
            k,
            "image" | "image_url" | "audio" | "video" | "document" | "file"
        )
        .then(|| k.to_string())
    })
}

/// A request whose newest user turn is (partly) an image or other media gets
/// a 400: this model reads text only, and it cannot answer about a picture.
/// The same media further back in the conversation (an old screenshot an
/// agent keeps replaying) becomes a placeholder instead, so a conversation is
/// never stuck on an error it cannot get rid of.
pub(crate) fn reject_media_in_last_turn(
    param: &str,
    role: &str,
    content: &Value,
) -> Result<(), ApiError> {
    if role != "user" {
        return Ok(());
    }
    match media_part(content) {
        Some(kind) => Err(ApiError::invalid_param(
            param,
            format!(
                "{param} contains {kind} content, but this model reads text only; remove it or describe it in text \
                 (media earlier in a conversation is replaced by a placeholder)"
            ),
        )
        .with_code("unsupported_content")),
        None => Ok(()),
    }
}

/// Text that stands in for a content part the model cannot read.
pub(crate) fn placeholder(kind: &str) -> String {
    format!("[{kind} omitted: this model reads text only]")
}

/// What a model id implies: thinking on/off and an effort.
fn alias(model: &str) -> (Option<bool>, Option<&'static str>) {
    let m = model.trim().to_ascii_lowercase();
    if m.ends_with("-max") {
        (Some(true), Some("max"))
    } else if m == "deepseek-chat" || m.ends_with("-chat") || m.ends_with("-nothink") {
        (Some(false), None)
    } else if m == "deepseek-reasoner"
        || m.ends_with("-reasoner")
        || m.ends_with("-think")
        || m.ends_with("-thinking")
    {
        (Some(true), None)
    } else {
        (None, None)
    }
}

/// Resolves thinking and effort for a chat request.
pub(crate) fn options(cfg: &ServerConfig, chat: &ChatRequest) -> Result<RenderOptions, ApiError> {
    let (by_model, alias_effort) = chat.model.as_deref().map_or((None, None), alias);
    // Let the tokenizer crate apply its precedence, with the model's meaning
    // spelled as the ids it knows.
    let mut req = chat.clone();
    req.model = by_model.map(|on| {
        if on {
            "deepseek-reasoner".into()
        } else {
            "deepseek-chat".into()
        }
    });
    let effort_override = if chat.reasoning_effort.is_none() {
        alias_effort
    } else {
        None
    };
    let default = match cfg.default_thinking {
        ThinkingDefault::On | ThinkingDefault::Max => Some(true),
        ThinkingDefault::Off => Some(false),
    };
    let mut opts = req
        .options(cfg.checkpoint, effort_override, default)
        .map_err(|e| {
            let param = match e {
                RenderError::UnknownThinkingMode(_) => "thinking",
                _ => "reasoning_effort",
            };
            ApiError::invalid_param(param, e.to_string())
        })?;
    if opts.thinking
        && cfg.default_thinking == ThinkingDefault::Max
        && chat.reasoning_effort.is_none()
        && alias_effort.is_none()
    {
        opts.effort = Effort::Max;
    }
    Ok(opts)
}

/// Renders and tokenizes (off the async threads: long prompts take a while).
pub(crate) async fn render(
    ready: &Arc<Ready>,
    mut chat: ChatRequest,
    opts: RenderOptions,
) -> Result<Vec<u32>, ApiError> {
    // The official encoder refuses empty developer messages; a client that
    // sends one would get the same 400 on every retry, so drop them.
    chat.messages.retain(|m| {
        m.role != Role::Developer || m.content.as_ref().is_some_and(|c| !c.flatten().is_empty())
    });
    let r = Arc::clone(ready);
    tokio::task::spawn_blocking(move || {
        let prompt = chat
            .render(&opts)
            .map_err(|e| ApiError::invalid_param("messages", e.to_string()))?;
        Ok(prompt.encode(&r.tokenizer))
    })
    .await
    .map_err(|e| ApiError::internal(format!("prompt rendering failed: {e}")))?
}

/// Tokenizes plain text off the async threads.
pub(crate) async fn encode_text(ready: &Arc<Ready>, text: String) -> Result<Vec<u32>, ApiError> {
    let r = Arc::clone(ready);
    tokio::task::spawn_blocking(move || r.tokenizer.encode_text(&text))
        .await
        .map_err(|e| ApiError::internal(format!("tokenization failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsv4_tokenizer::chat::ChatMessage;

    fn chat(model: &str, extra: serde_json::Value) -> ChatRequest {
        let mut v =
            serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        serde_json::from_value(v).unwrap_or_else(|_| ChatRequest {
            messages: vec![ChatMessage::new(Role::User, "hi")],
            ..Default::default()
        })
    }

    #[test]
    fn thinking_precedence() {
        let cfg = ServerConfig::default();
        let t =
            |model: &str, extra| options(&cfg, &chat(model, extra)).map(|o| (o.thinking, o.effort));
        assert!(t("deepseek-v4-flash", serde_json::json!({})).unwrap().0);
        assert!(!t("deepseek-chat", serde_json::json!({})).unwrap().0);
        assert!(!t("dsv4-demo-chat", serde_json::json!({})).unwrap().0);
        assert!(t("deepseek-reasoner", serde_json::json!({})).unwrap().0);
        assert_eq!(
            t("x-max", serde_json::json!({})).unwrap(),
            (true, Effort::Max)
        );
        // Explicit switches beat the model id.
        assert!(
            t(
                "deepseek-chat",
                serde_json::json!({"thinking": {"type": "enabled"}})
            )
            .unwrap()
            .0
        );
        assert!(
            !t(
                "deepseek-reasoner",
                serde_json::json!({"reasoning_effort": "none"})
            )
            .unwrap()
            .0
        );
        assert_eq!(
            t("m", serde_json::json!({"reasoning_effort": "xhigh"})).unwrap(),
            (true, Effort::Max)
        );
        assert!(t("m", serde_json::json!({"reasoning_effort": "extreme"})).is_err());
        // The server default applies last.
        let off = ServerConfig {
            default_thinking: ThinkingDefault::Off,
            ..ServerConfig::default()
        };
        assert!(
            !options(&off, &chat("m", serde_json::json!({})))
                .unwrap()
                .thinking
        );
        assert!(
            options(&off, &chat("m-reasoner", serde_json::json!({})))
                .unwrap()
                .thinking
        );
        let max = ServerConfig {
            default_thinking: ThinkingDefault::Max,
            ..ServerConfig::default()
        };
        assert_eq!(
            options(&max, &chat("m", serde_json::json!({})))
                .unwrap()
                .effort,
            Effort::Max
        );
    }
}
