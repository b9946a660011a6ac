//! `POST /v1/chat/completions` (OpenAI Chat Completions, DeepSeek flavour).
//!
//! Request tolerance (user-needs §2.1–2.2): `content` as a string, parts or
//! null; non-text parts become a placeholder; roles system, developer, user,
//! assistant, tool and legacy function; assistant reasoning as
//! `reasoning_content`, `reasoning` or OpenRouter `reasoning_details`;
//! replayed tool arguments that are not valid JSON are rendered as an opaque
//! string; `max_completion_tokens` is `max_tokens`; `stream_options` without
//! `stream` is ignored; unknown fields are ignored. `n` must be 1.
//!
//! Response: `message.reasoning_content` beside `content`, `tool_calls` with
//! `call_…` ids, `finish_reason` stop/length/tool_calls, usage with
//! `prompt_tokens_details.cached_tokens` and
//! `completion_tokens_details.reasoning_tokens` (plus DeepSeek's
//! `prompt_cache_hit_tokens`/`prompt_cache_miss_tokens`). Streams send
//! `delta.role` first, `delta.reasoning_content` / `delta.content`, tool-call
//! deltas (index, id, type and name first; argument fragments after), an
//! empty delta with the finish reason, an optional usage chunk with
//! `choices: []`, then `data: [DONE]`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use dsv4_tokenizer::chat::{ChatMessage, ChatRequest};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::errors::{ApiError, OpenAiError};
use crate::generate::{
    self, Collected, Ev, Finish, GenSpec, ParseMode, SamplingFields, Stop, TokenLogprob,
};
use crate::ids;
use crate::prompt;
use crate::sse::{self, SseWriter};
use crate::state::AppState;
use crate::tools::{self, Choice, DecodingRequest, ToolSet};

#[derive(Debug, Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct ChatCompletionRequest {
    model: Option<String>,
    messages: Vec<Value>,
    tools: Option<Vec<Value>>,
    tool_choice: Option<Value>,
    parallel_tool_calls: Option<bool>,
    response_format: Option<Value>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    #[serde(flatten)]
    sampling: SamplingFields,
    stop: Option<Stop>,
    n: Option<u32>,
    logprobs: Option<bool>,
    top_logprobs: Option<u32>,
    prompt_cache_key: Option<String>,
    thinking: Option<Value>,
    reasoning_effort: Option<String>,
    chat_template_kwargs: Option<Map<String, Value>>,
    think: Option<bool>,
    /// OpenRouter-style `{"effort": …, "enabled": …, "max_tokens": …}`.
    reasoning: Option<Value>,
}

/// Non-text content parts become text placeholders.
fn normalize_content(content: &mut Value) {
    let Value::Array(parts) = content else { return };
    for part in parts.iter_mut() {
        let kind = part
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("text")
            .to_string();
        let text = match kind.as_str() {
            "text" | "input_text" | "output_text" => {
                part.get("text").and_then(Value::as_str).map(String::from)
            }
            "refusal" => part
                .get("refusal")
                .and_then(Value::as_str)
                .map(String::from),
            _ => None,
        };
        let text = text.unwrap_or_else(|| prompt::placeholder(kind.trim_start_matches("input_")));
        *part = json!({"type": "text", "text": text});
    }
}

/// One OpenAI message into the renderer's message type.
pub(crate) fn message(i: usize, mut m: Value) -> Result<ChatMessage, ApiError> {
    let path = format!("messages[{i}]");
    let o = m
        .as_object_mut()
        .ok_or_else(|| ApiError::invalid_param(&path, format!("{path} must be an object")))?;
    let role = o
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if role == "function" {
        o.insert("role".into(), json!("tool"));
        if let Some(name) = o.get("name").cloned() {
            o.entry("tool_call_id").or_insert(name);
        }
    }
    if let Some(c) = o.get_mut("content") {
        normalize_content(c);
    }
    if !o.contains_key("reasoning_content") {
        let details = o
            .get("reasoning_details")
            .and_then(Value::as_array)
            .map(|d| {
                d.iter()
                    .filter_map(|x| x.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("")
            });
        if let Some(r) = o
            .remove("reasoning")
            .filter(Value::is_string)
            .or(details.map(Value::String))
        {
            o.insert("reasoning_content".into(), r);
        }
    }
    o.remove("reasoning");
    if let Some(Value::Array(calls)) = o.get_mut("tool_calls") {
        for call in calls.iter_mut() {
            if let Some(f) = call.get_mut("function").and_then(Value::as_object_mut) {
                match f.get("arguments") {
                    None | Some(Value::Null) => {
                        f.insert("arguments".into(), json!("{}"));
                    }
                    _ => {}
                }
            }
        }
    }
    if o.get("tool_calls").is_some_and(Value::is_null) {
        o.remove("tool_calls");
    }
    serde_json::from_value(m)
        .map_err(|e| ApiError::invalid_param(&path, format!("invalid value for `{path}`: {e}")))
}

/// Everything derived from a parsed request that the answer needs.
struct Prepared {
    spec: GenSpec,
    model: String,
    stream: bool,
    include_usage: bool,
}

async fn prepare(
    st: &AppState,
    ready: &Arc<crate::state::Ready>,
    headers: &axum::http::HeaderMap,
    r: ChatCompletionRequest,
) -> Result<Prepared, ApiError> {
    if r.n.is_some_and(|n| n != 1) {
        return Err(ApiError::invalid_param(
            "n",
            "only n = 1 is supported (one completion per request)",
        ));
    }
    if let Some(last) = r.messages.last() {
        let role = last.get("role").and_then(Value::as_str).unwrap_or_default();
        let content = last.get("content").unwrap_or(&Value::Null);
        prompt::reject_media_in_last_turn(
            &format!("messages[{}]", r.messages.len() - 1),
            role,
            content,
        )?;
    }
    if r.messages.is_empty() {
        return Err(ApiError::invalid_param(
            "messages",
            "messages must not be empty",
        ));
    }
    let messages = r
        .messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| message(i, m))
        .collect::<Result<Vec<_>, _>>()?;
    let toolset = ToolSet::from_openai_chat(r.tools.as_deref().unwrap_or_default())?;
    let mut reasoning_effort = r.reasoning_effort;
    let mut thinking = r.thinking;
    let mut think_budget = thinking
        .as_ref()
        .and_then(|t| t.get("budget_tokens"))
        .and_then(Value::as_u64);
    if let Some(rs) = &r.reasoning {
        if reasoning_effort.is_none() {
            reasoning_effort = rs.get("effort").and_then(Value::as_str).map(String::from);
        }
        if thinking.is_none() {
            thinking = rs.get("enabled").filter(|v| v.is_boolean()).cloned();
        }
        think_budget = think_budget.or_else(|| rs.get("max_tokens").and_then(Value::as_u64));
    }
    let chat = ChatRequest {
        model: r.model.clone(),
        messages,
        tools: (!toolset.is_empty()).then(|| toolset.render.clone()),
        response_format: r.response_format.clone(),
        thinking,
        reasoning_effort,
        chat_template_kwargs: r.chat_template_kwargs,
        think: r.think,
    };
    let opts = prompt::options(&st.cfg, &chat)?;
    let ids = prompt::render(ready, chat, opts).await?;
    let max_tokens = generate::max_tokens(
        r.max_completion_tokens.or(r.max_tokens),
        st.cfg.default_max_tokens,
    );
    let decoding = tools::decoding(
        ready,
        DecodingRequest {
            tools: &toolset,
            choice: Choice::from_openai(r.tool_choice.as_ref())?,
            parallel: r.parallel_tool_calls.unwrap_or(true),
            format: tools::json_format(r.response_format.as_ref())?,
            thinking: opts.thinking,
            max_tokens,
            constrain_auto: st.cfg.constrain_auto_tools,
        },
    )?;
    let logprobs = match (r.logprobs, r.top_logprobs) {
        (Some(true), n) => Some(n.unwrap_or(0).min(20) as usize),
        (_, Some(_)) | (_, None) => None,
    };
    let stream = r.stream.unwrap_or(false);
    let spec = GenSpec {
        prompt: ids,
        sampling: r
            .sampling
            .params(&decoding.ban, ready.tokenizer.vocab_size())?,
        max_tokens,
        stop: generate::stops(r.stop)?,
        thinking: opts.thinking,
        think_budget: think_budget.map(|b| b as usize),
        logprobs,
        session_key: crate::body::session_key(headers, r.prompt_cache_key.as_deref()),
        mask: decoding.mask,
        parse: ParseMode::Chat {
            plain_tags: decoding.plain_tags,
        },
    };
    Ok(Prepared {
        spec,
        model: r.model.unwrap_or_else(|| st.cfg.model_id.clone()),
        stream,
        include_usage: stream
            && r.stream_options
                .and_then(|o| o.include_usage)
                .unwrap_or(false),
    })
}

fn usage_json(f: &Finish) -> Value {
    let u = &f.usage;
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "prompt_cache_hit_tokens": u.cached_tokens,
        "prompt_cache_miss_tokens": u.prompt_tokens - u.cached_tokens.min(u.prompt_tokens),
    })
}

fn finish_reason(f: &Finish, calls: bool) -> &'static str {
    if f.truncated() {
        "length"
    } else if calls {
        "tool_calls"
    } else {
        "stop"
    }
}

fn logprob_json(lp: &TokenLogprob) -> Value {
    json!({
        "token": lp.token,
        "logprob": lp.logprob,
        "bytes": lp.bytes,
        "top_logprobs": lp.top.iter().map(|(t, b, l)| json!({"token": t, "logprob": l, "bytes": b})).collect::<Vec<_>>(),
    })
}

/// The handler.
pub(crate) async fn handle(
    State(st): State<Arc<AppState>>,
    req: Request,
) -> Result<Response, OpenAiError> {
    let ready = st.ready()?;
    let (parts, body) = req.into_parts();
    let r: ChatCompletionRequest = crate::body::json(body, st.cfg.max_body_bytes).await?;
    let p = prepare(&st, &ready, &parts.headers, r).await?;
    let id = ids::new_id("chatcmpl-");
    let created = ids::now();
    let gen_ = generate::start(&ready, &st.metrics, p.spec)?;
    if p.stream {
        let writer = ChatStream {
            id,
            created,
            model: p.model,
            include_usage: p.include_usage,
            call_ids: Vec::new(),
            any_call: false,
        };
        let first = vec![writer.chunk(json!({"role": "assistant", "content": ""}), None, None)];
        return Ok(sse::stream(gen_, writer, first, st.cfg.keepalive));
    }
    let c = gen_.collect().await;
    Ok(axum::Json(complete(&c, &id, created, &p.model)?).into_response())
}

fn complete(c: &Collected, id: &str, created: u64, model: &str) -> Result<Value, ApiError> {
    let f = c.outcome()?;
    let calls: Vec<Value> = c
        .presented_calls()
        .iter()
        .map(|call| json!({"id": ids::new_id("call_"), "type": "function", "function": {"name": call.name, "arguments": call.arguments}}))
        .collect();
    let mut message = json!({"role": "assistant", "content": c.content});
    if !c.reasoning.is_empty() {
        message["reasoning_content"] = json!(c.reasoning);
    }
    if !calls.is_empty() {
        if c.content.is_empty() {
            message["content"] = Value::Null;
        }
        message["tool_calls"] = json!(calls);
    }
    let logprobs = if c.logprobs.is_empty() {
        Value::Null
    } else {
        json!({"content": c.logprobs.iter().map(logprob_json).collect::<Vec<_>>()})
    };
    Ok(json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": "dsv4",
        "choices": [{"index": 0, "message": message, "logprobs": logprobs, "finish_reason": finish_reason(f, !calls.is_empty())}],
        "usage": usage_json(f),
    }))
}

/// The streaming writer.
struct ChatStream {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    call_ids: Vec<String>,
    any_call: bool,
}

impl ChatStream {
    fn chunk(&self, delta: Value, finish: Option<&str>, logprobs: Option<Value>) -> Bytes {
        let mut v = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "dsv4",
            "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}],
        });
        if self.include_usage {
            v["usage"] = Value::Null;
        }
        sse::data(&v)
    }
}

impl SseWriter for ChatStream {
    fn events(&mut self, evs: Vec<Ev>, out: &mut Vec<Bytes>) {
        // Content of this batch, with the log-probabilities of its tokens.
        let mut content = String::new();
        let mut lps: Vec<Value> = Vec::new();
        let flush =
            |s: &mut Self, content: &mut String, lps: &mut Vec<Value>, out: &mut Vec<Bytes>| {
                if !content.is_empty() || !lps.is_empty() {
                    let logprobs =
                        (!lps.is_empty()).then(|| json!({"content": std::mem::take(lps)}));
                    out.push(s.chunk(json!({"content": std::mem::take(content)}), None, logprobs));
                }
            };
        for ev in evs {
            match ev {
                Ev::Content(t) | Ev::Promoted(t) => content.push_str(&t),
                Ev::Logprob(lp) => lps.push(logprob_json(&lp)),
                Ev::Reasoning(t) => {
                    flush(self, &mut content, &mut lps, out);
                    out.push(self.chunk(json!({"reasoning_content": t}), None, None));
                }
                Ev::ToolStart { index, name } => {
                    flush(self, &mut content, &mut lps, out);
                    let id = ids::new_id("call_");
                    self.call_ids.push(id.clone());
                    self.any_call = true;
                    let delta = json!({"tool_calls": [{"index": index, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]});
                    out.push(self.chunk(delta, None, None));
                }
                Ev::ToolArgs { index, fragment } => {
                    flush(self, &mut content, &mut lps, out);
                    out.push(self.chunk(json!({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}), None, None));
                }
                Ev::Finished(f) => {
                    flush(self, &mut content, &mut lps, out);
                    out.push(self.chunk(json!({}), Some(finish_reason(&f, self.any_call)), None));
                    if self.include_usage {
                        let v = json!({
                            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                            "model": self.model, "system_fingerprint": "dsv4", "choices": [], "usage": usage_json(&f),
                        });
                        out.push(sse::data(&v));
                    }
                    out.push(sse::done());
                }
                Ev::Failed(e) => {
                    flush(self, &mut content, &mut lps, out);
                    out.push(sse::data(&json!({"error": e.openai_object()})));
                }
                Ev::Started { .. } | Ev::Progress { .. } | Ev::ToolEnd { .. } => {}
            }
        }
        flush(self, &mut content, &mut lps, out);
    }

    fn keepalive(&mut self, out: &mut Vec<Bytes>) {
        out.push(sse::comment("keepalive"));
    }
}
