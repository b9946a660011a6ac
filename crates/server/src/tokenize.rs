//! `POST /tokenize` and `POST /detokenize`: the model's own tokenizer over
//! HTTP, so clients can count exactly like the prompt renderer.
//!
//! `/tokenize` takes either `{"content": "text", "add_special": bool,
//! "with_pieces": bool}` (plain text never becomes control tokens;
//! `add_special` prepends BOS) or an OpenAI chat body (`messages`, `tools`,
//! thinking fields), which is rendered with the chat template first. It
//! answers `{"tokens": [...], "count": n, "max_model_len": ctx}` (with pieces,
//! tokens are `{"id", "piece"}`). `/detokenize` takes `{"tokens": [ids]}`
//! and answers `{"content": "text"}`; an id outside the vocabulary is a 400.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use dsv4_tokenizer::chat::ChatRequest;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::errors::{ApiError, OpenAiError};
use crate::openai_chat;
use crate::prompt;
use crate::state::AppState;
use crate::tools::ToolSet;

#[derive(Debug, Deserialize)]
struct TokenizeRequest {
    content: Option<String>,
    add_special: Option<bool>,
    with_pieces: Option<bool>,
    model: Option<String>,
    messages: Option<Vec<Value>>,
    tools: Option<Vec<Value>>,
    thinking: Option<Value>,
    reasoning_effort: Option<String>,
    chat_template_kwargs: Option<Map<String, Value>>,
    think: Option<bool>,
}

/// `POST /tokenize`.
pub(crate) async fn tokenize(
    State(st): State<Arc<AppState>>,
    req: Request,
) -> Result<Response, OpenAiError> {
    let ready = st.ready()?;
    let r: TokenizeRequest = crate::body::json(req.into_body(), st.cfg.max_body_bytes).await?;
    let ids = match (r.content, r.messages) {
        (Some(text), None) => {
            let mut ids = Vec::new();
            if r.add_special.unwrap_or(false) {
                ids.push(ready.ids.bos);
            }
            ids.extend(prompt::encode_text(&ready, text).await?);
            ids
        }
        (None, Some(messages)) => {
            let messages = messages
                .into_iter()
                .enumerate()
                .map(|(i, m)| openai_chat::message(i, m))
                .collect::<Result<Vec<_>, _>>()?;
            let toolset = ToolSet::from_openai_chat(r.tools.as_deref().unwrap_or_default())?;
            let chat = ChatRequest {
                model: r.model,
                messages,
                tools: (!toolset.is_empty()).then_some(toolset.render),
                thinking: r.thinking,
                reasoning_effort: r.reasoning_effort,
                chat_template_kwargs: r.chat_template_kwargs,
                think: r.think,
                ..Default::default()
            };
            let opts = prompt::options(&st.cfg, &chat)?;
            prompt::render(&ready, chat, opts).await?
        }
        _ => {
            return Err(ApiError::invalid(
                "send either `content` (text) or `messages` (a chat to render)",
            )
            .into());
        }
    };
    let tokens: Vec<Value> = if r.with_pieces.unwrap_or(false) {
        ids.iter()
            .map(|&id| json!({"id": id, "piece": ready.tokenizer.token_to_piece(id).unwrap_or_default()}))
            .collect()
    } else {
        ids.iter().map(|&id| json!(id)).collect()
    };
    Ok(
        axum::Json(json!({"tokens": tokens, "count": ids.len(), "max_model_len": ready.ctx}))
            .into_response(),
    )
}

#[derive(Debug, Deserialize)]
struct DetokenizeRequest {
    tokens: Vec<u32>,
}

/// `POST /detokenize`.
pub(crate) async fn detokenize(
    State(st): State<Arc<AppState>>,
    req: Request,
) -> Result<Response, OpenAiError> {
    let ready = st.ready()?;
    let r: DetokenizeRequest = crate::body::json(req.into_body(), st.cfg.max_body_bytes).await?;
    let text = ready
        .tokenizer
        .decode(&r.tokens)
        .map_err(|e| ApiError::invalid_param("tokens", e.to_string()))?;
    Ok(axum::Json(json!({"content": text})).into_response())
}
