//! `POST /v1/messages` and `POST /v1/messages/count_tokens` (Anthropic
//! Messages, as Claude Code uses it).
//!
//! Request side (user-needs §2.3): `system` as a string or text blocks (a
//! block starting `x-anthropic-billing-header:` is dropped: it changes every
//! request and would defeat prefix reuse); user content blocks `text`,
//! `image`/`document` (placeholder), `tool_result` (string or blocks,
//! `is_error`); assistant blocks `text`, `thinking` (any signature, or none),
//! `redacted_thinking` (dropped), `tool_use`. Anthropic's own history rules are
//! not enforced: whatever arrives is rendered. `max_tokens` defaults to the
//! server's; `thinking` `enabled` (with `budget_tokens`), `adaptive` (on) or
//! `disabled`, absent meaning the server default; `output_config.effort`;
//! `tool_choice` auto/any/tool/none and `disable_parallel_tool_use`; server
//! tool types are skipped. Any model id is accepted; `anthropic-version` and
//! `anthropic-beta` headers are ignored.
//!
//! Stream grammar: `message_start`, then per block `content_block_start` /
//! `_delta` / `_stop` with contiguous indices (thinking blocks end with one
//! non-empty `signature_delta`; tool_use starts with `input: {}` and streams
//! `input_json_delta`), `message_delta` with `stop_reason`
//! (end_turn/max_tokens/stop_sequence/tool_use) and usage, `message_stop`.
//! `ping` while the model works before the first token. No thinking events
//! at all when thinking is off. Usage: `input_tokens` excludes
//! `cache_read_input_tokens` (tokens reused from a resident session).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use dsv4_tokenizer::chat::{
    ChatMessage, ChatRequest, FunctionCall, MessageContent, Role, ToolCall,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::errors::{AnthropicError, ApiError};
use crate::generate::{self, Collected, Ev, Finish, GenSpec, ParseMode, SamplingFields};
use crate::ids;
use crate::prompt;
use crate::sse::{self, SseWriter};
use crate::state::AppState;
use crate::tools::{self, Choice, DecodingRequest, ToolSet};

#[derive(Debug, Deserialize)]
struct InMessage {
    role: String,
    content: Value,
}

#[derive(Debug, Deserialize)]
struct MessagesRequest {
    model: Option<String>,
    max_tokens: Option<u64>,
    messages: Vec<InMessage>,
    system: Option<Value>,
    tools: Option<Vec<Value>>,
    tool_choice: Option<Value>,
    thinking: Option<Value>,
    output_config: Option<Value>,
    reasoning_effort: Option<String>,
    stop_sequences: Option<Vec<String>>,
    stream: Option<bool>,
    #[serde(flatten)]
    sampling: SamplingFields,
}

/// The text of a block list (placeholders for what is not text).
fn blocks_text(content: &Value, sep: &str) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| match b.get("type").and_then(Value::as_str) {
                Some("text") => b.get("text").and_then(Value::as_str).map(String::from),
                Some(kind @ ("image" | "document" | "audio" | "video")) => {
                    Some(prompt::placeholder(kind))
                }
                Some("tool_reference" | "search_result") => {
                    b.get("text").and_then(Value::as_str).map(String::from)
                }
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(sep),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn text_message(role: Role, text: String) -> ChatMessage {
    ChatMessage::new(role, text)
}

/// Anthropic messages into the renderer's messages.
fn conversation(
    system: Option<&Value>,
    messages: Vec<InMessage>,
) -> Result<Vec<ChatMessage>, ApiError> {
    let mut out = Vec::new();
    if let Some(s) = system {
        let text = match s {
            Value::Array(blocks) => blocks
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .filter(|t| !t.trim_start().starts_with("x-anthropic-billing-header:"))
                .collect::<Vec<_>>()
                .join("\n\n"),
            other => blocks_text(other, "\n\n"),
        };
        if !text.is_empty() {
            out.push(text_message(Role::System, text));
        }
    }
    for (i, m) in messages.into_iter().enumerate() {
        match m.role.as_str() {
            "user" => user(&mut out, &m.content),
            "assistant" => out.push(assistant(&m.content)),
            "system" => out.push(text_message(Role::System, blocks_text(&m.content, "\n\n"))),
            other => {
                return Err(ApiError::invalid_param(
                    &format!("messages[{i}].role"),
                    format!("unknown role {other:?}; use \"user\" or \"assistant\""),
                ));
            }
        }
    }
    Ok(out)
}

fn user(out: &mut Vec<ChatMessage>, content: &Value) {
    let Value::Array(blocks) = content else {
        out.push(text_message(Role::User, blocks_text(content, "\n\n")));
        return;
    };
    let mut texts = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("tool_result") => {
                let mut text = blocks_text(b.get("content").unwrap_or(&Value::Null), "\n\n");
                if b.get("is_error").and_then(Value::as_bool) == Some(true) {
                    text.insert_str(0, "[tool error] ");
                }
                let mut m = text_message(Role::Tool, text);
                m.tool_call_id = b
                    .get("tool_use_id")
                    .and_then(Value::as_str)
                    .map(String::from);
                out.push(m);
            }
            _ => {
                let t = blocks_text(&Value::Array(vec![b.clone()]), "");
                if !t.is_empty() {
                    texts.push(t);
                }
            }
        }
    }
    if !texts.is_empty() || blocks.is_empty() {
        out.push(text_message(Role::User, texts.join("\n\n")));
    }
}

fn assistant(content: &Value) -> ChatMessage {
    let Value::Array(blocks) = content else {
        return text_message(Role::Assistant, blocks_text(content, ""));
    };
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for b in blocks {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => {
                text.push_str(b.get("text").and_then(Value::as_str).unwrap_or_default())
            }
            Some("thinking") => reasoning.push_str(
                b.get("thinking")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            ),
            Some("tool_use") => calls.push(ToolCall {
                id: b.get("id").and_then(Value::as_str).map(String::from),
                kind: Some("function".into()),
                function: FunctionCall {
                    name: b
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    arguments: b.get("input").cloned().unwrap_or_else(|| json!({})),
                    id: None,
                },
            }),
            _ => {}
        }
    }
    let mut m = text_message(Role::Assistant, text);
    if m.content
        .as_ref()
        .is_some_and(|c| matches!(c, MessageContent::Text(t) if t.is_empty()))
        && !calls.is_empty()
    {
        m.content = None;
    }
    m.reasoning_content = (!reasoning.is_empty()).then_some(reasoning);
    m.tool_calls = (!calls.is_empty()).then_some(calls);
    m
}

fn toolset(tools: &[Value]) -> Result<ToolSet, ApiError> {
    let mut set = ToolSet::default();
    for (i, t) in tools.iter().enumerate() {
        let kind = t.get("type").and_then(Value::as_str).unwrap_or("custom");
        if kind != "custom" || t.get("input_schema").is_none() {
            tracing::debug!(kind, "server tool skipped");
            continue;
        }
        let name = crate::tools::tool_name(Some(t), i, ".name")?;
        set.function(
            name,
            t.get("description").and_then(Value::as_str),
            t.get("input_schema"),
        );
    }
    Ok(set)
}

fn choice(v: Option<&Value>) -> Result<(Choice, bool), ApiError> {
    let Some(v) = v else {
        return Ok((Choice::Auto, true));
    };
    let parallel = v.get("disable_parallel_tool_use").and_then(Value::as_bool) != Some(true);
    let c = match v.get("type").and_then(Value::as_str) {
        Some("auto") | None => Choice::Auto,
        Some("any") => Choice::Required,
        Some("none") => Choice::None,
        Some("tool") => Choice::Named(
            v.get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ApiError::invalid_param(
                        "tool_choice.name",
                        "tool_choice of type tool needs a name",
                    )
                })?
                .to_string(),
        ),
        Some(other) => {
            return Err(ApiError::invalid_param(
                "tool_choice.type",
                format!("unknown tool_choice type {other:?}"),
            ));
        }
    };
    Ok((c, parallel))
}

/// What a request renders to.
struct Rendered {
    chat: ChatRequest,
    toolset: ToolSet,
    think_budget: Option<usize>,
}

fn build(r: &mut MessagesRequest) -> Result<Rendered, ApiError> {
    if let Some(last) = r.messages.last() {
        let param = format!("messages[{}].content", r.messages.len() - 1);
        prompt::reject_media_in_last_turn(&param, &last.role, &last.content)?;
    }
    let toolset = toolset(r.tools.as_deref().unwrap_or_default())?;
    let messages = conversation(r.system.as_ref(), std::mem::take(&mut r.messages))?;
    let thinking = r
        .thinking
        .as_ref()
        .map(|t| match t.get("type").and_then(Value::as_str) {
            Some("adaptive") => json!({"type": "enabled"}),
            _ => t.clone(),
        });
    let think_budget = r
        .thinking
        .as_ref()
        .and_then(|t| t.get("budget_tokens"))
        .and_then(Value::as_u64)
        .map(|b| b as usize);
    let effort = r
        .output_config
        .as_ref()
        .and_then(|o| o.get("effort"))
        .and_then(Value::as_str)
        .map(String::from)
        .or(r.reasoning_effort.clone());
    let chat = ChatRequest {
        model: r.model.clone(),
        messages,
        tools: (!toolset.is_empty()).then(|| toolset.render.clone()),
        thinking,
        reasoning_effort: effort,
        ..Default::default()
    };
    Ok(Rendered {
        chat,
        toolset,
        think_budget,
    })
}

/// `POST /v1/messages/count_tokens`.
pub(crate) async fn count_tokens(
    State(st): State<Arc<AppState>>,
    req: Request,
) -> Result<Response, AnthropicError> {
    let ready = st.ready()?;
    let mut r: MessagesRequest = crate::body::json(req.into_body(), st.cfg.max_body_bytes).await?;
    let b = build(&mut r)?;
    let opts = prompt::options(&st.cfg, &b.chat)?;
    let ids = prompt::render(&ready, b.chat, opts).await?;
    Ok(axum::Json(json!({"input_tokens": ids.len(), "context_window": ready.ctx})).into_response())
}

fn usage_json(f: &Finish) -> Value {
    let u = &f.usage;
    json!({
        "input_tokens": u.prompt_tokens - u.cached_tokens.min(u.prompt_tokens),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": u.cached_tokens,
        "output_tokens": u.completion_tokens,
    })
}

fn stop_reason(f: &Finish, tool_use: bool) -> (&'static str, Value) {
    if f.truncated() {
        ("max_tokens", Value::Null)
    } else if tool_use {
        ("tool_use", Value::Null)
    } else if let Some(s) = f.stop_string() {
        ("stop_sequence", json!(s))
    } else {
        ("end_turn", Value::Null)
    }
}

/// `POST /v1/messages`.
pub(crate) async fn messages(
    State(st): State<Arc<AppState>>,
    req: Request,
) -> Result<Response, AnthropicError> {
    let ready = st.ready()?;
    let (parts, body) = req.into_parts();
    let mut r: MessagesRequest = crate::body::json(body, st.cfg.max_body_bytes).await?;
    let b = build(&mut r)?;
    let opts = prompt::options(&st.cfg, &b.chat)?;
    let ids_ = prompt::render(&ready, b.chat, opts).await?;
    let max_tokens = generate::max_tokens(r.max_tokens, st.cfg.default_max_tokens);
    let (choice, parallel) = choice(r.tool_choice.as_ref())?;
    let decoding = tools::decoding(
        &ready,
        DecodingRequest {
            tools: &b.toolset,
            choice,
            parallel,
            format: None,
            thinking: opts.thinking,
            max_tokens,
            constrain_auto: st.cfg.constrain_auto_tools,
        },
    )?;
    let spec = GenSpec {
        prompt: ids_,
        sampling: r
            .sampling
            .params(&decoding.ban, ready.tokenizer.vocab_size())?,
        max_tokens,
        stop: generate::stops(r.stop_sequences.map(generate::Stop::Many))?,
        thinking: opts.thinking,
        think_budget: b.think_budget,
        logprobs: None,
        session_key: crate::body::session_key(&parts.headers, None),
        mask: decoding.mask,
        parse: ParseMode::Chat {
            plain_tags: decoding.plain_tags,
        },
    };
    let model = r.model.unwrap_or_else(|| st.cfg.model_id.clone());
    let id = ids::new_id("msg_");
    let gen_ = generate::start(&ready, &st.metrics, spec)?;
    if r.stream.unwrap_or(false) {
        let w = MessageStream {
            open: Open::None,
            next_index: 0,
            thinking_on: opts.thinking,
            tool_use: false,
        };
        let start = json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": gen_.prompt_tokens, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 0}
        }});
        let first = vec![sse::event("message_start", &start)];
        return Ok(sse::stream(gen_, w, first, st.cfg.keepalive));
    }
    let c = gen_.collect().await;
    Ok(axum::Json(complete(&c, &id, &model, opts.thinking)?).into_response())
}

fn complete(c: &Collected, id: &str, model: &str, thinking: bool) -> Result<Value, ApiError> {
    let f = c.outcome()?;
    let mut content = Vec::new();
    if thinking && !c.reasoning.is_empty() {
        content.push(json!({"type": "thinking", "thinking": c.reasoning, "signature": ids::thinking_signature(&c.reasoning)}));
    }
    if !c.content.is_empty() {
        content.push(json!({"type": "text", "text": c.content}));
    }
    let calls = c.presented_calls();
    for call in &calls {
        let input: Value = serde_json::from_str(&call.arguments).unwrap_or_else(|_| json!({}));
        content.push(json!({"type": "tool_use", "id": ids::new_id("toolu_"), "name": call.name, "input": input}));
    }
    let (reason, seq) = stop_reason(f, !calls.is_empty());
    Ok(json!({
        "id": id, "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": reason, "stop_sequence": seq, "usage": usage_json(f),
    }))
}

#[derive(Debug)]
enum Open {
    None,
    Thinking { index: usize, text: String },
    Text { index: usize },
    Tool { index: usize },
}

struct MessageStream {
    open: Open,
    next_index: usize,
    thinking_on: bool,
    tool_use: bool,
}

impl MessageStream {
    fn close(&mut self, out: &mut Vec<Bytes>) {
        let index = match std::mem::replace(&mut self.open, Open::None) {
            Open::None => return,
            Open::Thinking { index, text } => {
                let d = json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "signature_delta", "signature": ids::thinking_signature(&text)}});
                out.push(sse::event("content_block_delta", &d));
                index
            }
            Open::Text { index } | Open::Tool { index } => index,
        };
        out.push(sse::event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
    }

    fn open(&mut self, block: Value, out: &mut Vec<Bytes>) -> usize {
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        out.push(sse::event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
        index
    }

    fn delta(index: usize, delta: Value, out: &mut Vec<Bytes>) {
        out.push(sse::event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
        ));
    }

    fn text(&mut self, t: &str, out: &mut Vec<Bytes>) {
        if t.is_empty() {
            return;
        }
        let index = match self.open {
            Open::Text { index } => index,
            _ => {
                let i = self.open(json!({"type": "text", "text": ""}), out);
                self.open = Open::Text { index: i };
                i
            }
        };
        Self::delta(index, json!({"type": "text_delta", "text": t}), out);
    }

    fn thinking(&mut self, t: &str, out: &mut Vec<Bytes>) {
        if t.is_empty() {
            return;
        }
        if !self.thinking_on {
            tracing::debug!("reasoning dropped: thinking is off for this request");
            return;
        }
        if !matches!(self.open, Open::Thinking { .. }) {
            let i = self.open(
                json!({"type": "thinking", "thinking": "", "signature": ""}),
                out,
            );
            self.open = Open::Thinking {
                index: i,
                text: String::new(),
            };
        }
        if let Open::Thinking { index, text } = &mut self.open {
            text.push_str(t);
            let index = *index;
            Self::delta(index, json!({"type": "thinking_delta", "thinking": t}), out);
        }
    }
}

impl SseWriter for MessageStream {
    fn events(&mut self, evs: Vec<Ev>, out: &mut Vec<Bytes>) {
        for ev in evs {
            match ev {
                Ev::Reasoning(t) => self.thinking(&t, out),
                Ev::Content(t) | Ev::Promoted(t) => self.text(&t, out),
                Ev::ToolStart { name, .. } => {
                    let block = json!({"type": "tool_use", "id": ids::new_id("toolu_"), "name": name, "input": {}});
                    let i = self.open(block, out);
                    self.open = Open::Tool { index: i };
                    self.tool_use = true;
                }
                Ev::ToolArgs { fragment, .. } => {
                    if let Open::Tool { index } = self.open {
                        Self::delta(
                            index,
                            json!({"type": "input_json_delta", "partial_json": fragment}),
                            out,
                        );
                    }
                }
                Ev::ToolEnd { .. } => self.close(out),
                Ev::Finished(f) => {
                    self.close(out);
                    let (reason, seq) = stop_reason(&f, self.tool_use);
                    let d = json!({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": seq}, "usage": usage_json(&f)});
                    out.push(sse::event("message_delta", &d));
                    out.push(sse::event("message_stop", &json!({"type": "message_stop"})));
                }
                Ev::Failed(e) => {
                    out.push(sse::event(
                        "error",
                        &json!({"type": "error", "error": e.anthropic_object()}),
                    ));
                }
                Ev::Started { .. } | Ev::Progress { .. } | Ev::Logprob(_) => {}
            }
        }
    }

    fn keepalive(&mut self, out: &mut Vec<Bytes>) {
        out.push(sse::event("ping", &json!({"type": "ping"})));
    }
}
