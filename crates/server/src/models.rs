//! `GET /v1/models` and `GET /v1/models/{id}`: the served model and its
//! thinking aliases, with the context size under the names clients read
//! (`context_length` as OpenRouter, `max_model_len` as vLLM), and a
//! Codex-style `models` array beside OpenAI's `data`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::errors::{ApiError, OpenAiError};
use crate::state::AppState;

/// The listed ids and what each means.
fn entries(st: &AppState) -> Vec<(String, &'static str)> {
    let id = &st.cfg.model_id;
    vec![
        (id.clone(), "default thinking"),
        (format!("{id}-chat"), "thinking off"),
        (format!("{id}-max"), "thinking on, maximum effort"),
        ("deepseek-chat".into(), "thinking off"),
        ("deepseek-reasoner".into(), "thinking on"),
    ]
}

fn model(st: &AppState, id: &str, mode: &str, ctx: usize) -> Value {
    let created = crate::ids::now().saturating_sub(st.started.elapsed().as_secs());
    json!({
        "id": id,
        "object": "model",
        "created": created,
        "owned_by": "dsv4",
        "context_length": ctx,
        "max_model_len": ctx,
        "description": format!("DeepSeek V4 Flash served by dsv4 ({mode})"),
        "capabilities": ["tool_use", "reasoning", "json_schema"],
        "input_modalities": ["text"],
        "output_modalities": ["text"],
        "supported_parameters": ["tools", "tool_choice", "response_format", "max_tokens", "temperature",
            "top_p", "top_k", "min_p", "stop", "seed", "stream", "logprobs", "top_logprobs",
            "reasoning_effort", "thinking", "presence_penalty", "frequency_penalty", "logit_bias"],
    })
}

/// `GET /v1/models`.
pub(crate) async fn list(State(st): State<Arc<AppState>>) -> Result<Response, OpenAiError> {
    let ready = st.ready()?;
    let data: Vec<Value> = entries(&st)
        .iter()
        .map(|(id, mode)| model(&st, id, mode, ready.ctx))
        .collect();
    let codex: Vec<Value> = entries(&st)
        .iter()
        .map(|(id, mode)| json!({"slug": id, "display_name": id, "description": mode, "context_window": ready.ctx}))
        .collect();
    Ok(axum::Json(json!({"object": "list", "data": data, "models": codex})).into_response())
}

/// `GET /v1/models/{id}`.
pub(crate) async fn get(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, OpenAiError> {
    let ready = st.ready()?;
    match entries(&st).into_iter().find(|(m, _)| *m == id) {
        Some((m, mode)) => Ok(axum::Json(model(&st, &m, mode, ready.ctx)).into_response()),
        None => Err(ApiError::not_found(format!(
            "the model {id:?} does not exist; GET /v1/models lists the served ids"
        ))
        .with_code("model_not_found")
        .into()),
    }
}
