//! `POST /v1/responses` and `GET /v1/responses/{id}` (OpenAI Responses, as
//! Codex CLI uses it).
//!
//! Input (user-needs §2.4), parsed tolerantly: a plain string or items —
//! `message` (also without `type`; parts `input_text`/`output_text`/`text`,
//! images and files as placeholders), `function_call`,
//! `function_call_output`, `custom_tool_call`, `custom_tool_call_output`,
//! `local_shell_call(_output)`, and `reasoning` (our own `encrypted_content`
//! restores the exact reasoning; otherwise its `content`/`summary` text).
//! Consecutive assistant-side items form one assistant turn. Other item types
//! are skipped. `instructions` is the system prompt (not carried over by
//! `previous_response_id`, as in OpenAI's API); `previous_response_id` is
//! served from an in-memory store of recent responses ([`ResponseStore`],
//! unless `store: false`) and is a 400 when unknown. Tools: `function` and
//! freeform `custom` (Codex's `apply_patch`, round-tripped as
//! `custom_tool_call`); hosted types are skipped. `reasoning.effort`
//! (`minimal` and `none` turn thinking off), `reasoning.summary` (summary
//! events carry the reasoning text), `text.format` json_schema enforced.
//!
//! Stream: `response.created`, `response.in_progress`, per item
//! `output_item.added` → (reasoning text / summary deltas | content part,
//! `output_text.delta`…, `output_text.done` | `function_call_arguments.delta`…,
//! `.done` | `custom_tool_call_input.delta`, `.done`) → `output_item.done`,
//! then `response.completed` (full output and usage), `response.incomplete`
//! (`max_output_tokens`) or `response.failed`; every event has a
//! `sequence_number`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use dsv4_tokenizer::chat::{ChatMessage, ChatRequest, FunctionCall, Role, ToolCall};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::errors::{ApiError, OpenAiError};
use crate::generate::{self, Collected, Ev, Finish, GenSpec, ParseMode, SamplingFields};
use crate::ids;
use crate::prompt;
use crate::sse::{self, SseWriter};
use crate::state::AppState;
use crate::tools::{self, Choice, DecodingRequest, ToolSet};

/// Recent responses for `previous_response_id` (bounded, oldest evicted).
#[derive(Debug)]
pub(crate) struct ResponseStore {
    cap: usize,
    map: HashMap<String, Stored>,
    order: VecDeque<String>,
}

#[derive(Debug, Clone)]
struct Stored {
    /// The conversation including this response's output (no instructions).
    messages: Vec<ChatMessage>,
    response: Value,
}

impl ResponseStore {
    pub(crate) fn new(cap: usize) -> ResponseStore {
        ResponseStore {
            cap,
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn put(&mut self, id: String, s: Stored) {
        if self.cap == 0 {
            return;
        }
        while self.order.len() >= self.cap {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
        self.order.push_back(id.clone());
        self.map.insert(id, s);
    }

    fn get(&self, id: &str) -> Option<&Stored> {
        self.map.get(id)
    }
}

#[derive(Debug, Deserialize)]
struct ReasoningCfg {
    effort: Option<String>,
    summary: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ResponsesRequest {
    model: Option<String>,
    input: Option<Value>,
    instructions: Option<String>,
    tools: Option<Vec<Value>>,
    tool_choice: Option<Value>,
    parallel_tool_calls: Option<bool>,
    max_output_tokens: Option<u64>,
    #[serde(flatten)]
    sampling: SamplingFields,
    stream: Option<bool>,
    reasoning: Option<ReasoningCfg>,
    text: Option<Value>,
    previous_response_id: Option<String>,
    store: Option<bool>,
    prompt_cache_key: Option<String>,
    metadata: Option<Value>,
}

fn part_text(p: &Value) -> String {
    match p.get("type").and_then(Value::as_str) {
        Some("input_text" | "output_text" | "text" | "summary_text" | "reasoning_text") | None => p
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        Some("refusal") => p
            .get("refusal")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        Some(kind) => prompt::placeholder(kind.trim_start_matches("input_")),
    }
}

fn content_text(c: Option<&Value>) -> String {
    match c {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts.iter().map(part_text).collect::<Vec<_>>().join("\n\n"),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Input items into the renderer's messages.
#[derive(Default)]
struct Builder {
    out: Vec<ChatMessage>,
    assistant: Option<ChatMessage>,
}

impl Builder {
    fn flush(&mut self) {
        if let Some(a) = self.assistant.take() {
            self.out.push(a);
        }
    }

    fn pending(&mut self) -> &mut ChatMessage {
        self.assistant.get_or_insert_with(|| {
            let mut m = ChatMessage::new(Role::Assistant, "");
            m.content = None;
            m
        })
    }

    fn reasoning(&mut self, text: String) {
        let starts_new = self.assistant.as_ref().is_some_and(|a| {
            a.tool_calls.is_some() || a.content.as_ref().is_some_and(|c| !c.flatten().is_empty())
        });
        if starts_new {
            self.flush();
        }
        let a = self.pending();
        let mut r = a.reasoning_content.take().unwrap_or_default();
        r.push_str(&text);
        a.reasoning_content = Some(r);
    }

    fn call(&mut self, call_id: Option<&str>, name: &str, arguments: Value) {
        let a = self.pending();
        a.tool_calls.get_or_insert_with(Vec::new).push(ToolCall {
            id: call_id.map(String::from),
            kind: Some("function".into()),
            function: FunctionCall {
                name: name.to_string(),
                arguments,
                id: None,
            },
        });
    }

    fn tool_output(&mut self, call_id: Option<&str>, output: Option<&Value>) {
        self.flush();
        let mut m = ChatMessage::new(Role::Tool, content_text(output));
        m.tool_call_id = call_id.map(String::from);
        self.out.push(m);
    }

    fn item(&mut self, item: &Value) {
        let s = |k: &str| item.get(k).and_then(Value::as_str);
        let kind = s("type").unwrap_or(if item.get("role").is_some() {
            "message"
        } else {
            ""
        });
        match kind {
            "message" => {
                let text = content_text(item.get("content"));
                match s("role").unwrap_or("user") {
                    "assistant" => {
                        let a = self.pending();
                        let prev = a.content.as_ref().map(|c| c.flatten()).unwrap_or_default();
                        *a = ChatMessage {
                            content: Some(dsv4_tokenizer::chat::MessageContent::Text(prev + &text)),
                            ..a.clone()
                        };
                    }
                    role => {
                        self.flush();
                        let role = match role {
                            "system" => Role::System,
                            "developer" => Role::Developer,
                            _ => Role::User,
                        };
                        self.out.push(ChatMessage::new(role, text));
                    }
                }
            }
            "reasoning" => {
                let text = s("encrypted_content")
                    .and_then(ids::reasoning_from_blob)
                    .or_else(|| {
                        item.get("content")
                            .filter(|c| c.is_array())
                            .map(|c| content_text(Some(c)))
                    })
                    .or_else(|| {
                        item.get("summary")
                            .filter(|c| c.is_array())
                            .map(|c| content_text(Some(c)))
                    })
                    .unwrap_or_default();
                self.reasoning(text);
            }
            "function_call" => {
                let args = item
                    .get("arguments")
                    .cloned()
                    .unwrap_or_else(|| json!("{}"));
                self.call(
                    s("call_id").or(s("id")),
                    s("name").unwrap_or_default(),
                    args,
                );
            }
            "custom_tool_call" => {
                let args = json!({"input": s("input").unwrap_or_default()}).to_string();
                self.call(
                    s("call_id").or(s("id")),
                    s("name").unwrap_or_default(),
                    Value::String(args),
                );
            }
            "local_shell_call" => {
                let args = item
                    .get("action")
                    .map_or_else(|| "{}".to_string(), Value::to_string);
                self.call(s("call_id").or(s("id")), "local_shell", Value::String(args));
            }
            "function_call_output" | "custom_tool_call_output" | "local_shell_call_output" => {
                self.tool_output(s("call_id").or(s("id")), item.get("output"));
            }
            other => tracing::debug!(kind = other, "input item skipped"),
        }
    }
}

fn input_messages(input: Option<&Value>) -> Vec<ChatMessage> {
    let mut b = Builder::default();
    match input {
        Some(Value::String(s)) => b.out.push(ChatMessage::new(Role::User, s.clone())),
        Some(Value::Array(items)) => items.iter().for_each(|i| b.item(i)),
        Some(Value::Object(_)) => b.item(input.unwrap_or(&Value::Null)),
        _ => {}
    }
    b.flush();
    b.out
}

fn toolset(tools: &[Value]) -> Result<ToolSet, ApiError> {
    let mut set = ToolSet::default();
    for (i, t) in tools.iter().enumerate() {
        let kind = t.get("type").and_then(Value::as_str).unwrap_or("function");
        if kind != "function" && kind != "custom" {
            tracing::debug!(kind, "hosted tool skipped");
            continue;
        }
        let name = crate::tools::tool_name(Some(t), i, ".name")?;
        let description = t.get("description").and_then(Value::as_str);
        if kind == "custom" {
            set.custom(name, description, t.get("format"));
        } else {
            set.function(name, description, t.get("parameters"));
        }
    }
    Ok(set)
}

/// Facts about the request that the response object echoes.
#[derive(Debug, Clone)]
struct Echo {
    id: String,
    created: u64,
    model: String,
    instructions: Option<String>,
    max_output_tokens: Option<u64>,
    parallel: bool,
    previous: Option<String>,
    effort: Option<String>,
    summary: Option<String>,
    store: bool,
    temperature: Option<f32>,
    top_p: Option<f32>,
    text: Value,
    tool_choice: Value,
    tools: Vec<Value>,
    metadata: Value,
}

impl Echo {
    fn response(
        &self,
        status: &str,
        output: &[Value],
        usage: Option<Value>,
        extra: Option<(&str, Value)>,
    ) -> Value {
        let mut v = json!({
            "id": self.id, "object": "response", "created_at": self.created, "status": status,
            "model": self.model, "output": output, "error": null, "incomplete_details": null,
            "instructions": self.instructions, "max_output_tokens": self.max_output_tokens,
            "parallel_tool_calls": self.parallel, "previous_response_id": self.previous,
            "reasoning": {"effort": self.effort, "summary": self.summary}, "store": self.store,
            "temperature": self.temperature, "top_p": self.top_p, "text": self.text,
            "tool_choice": self.tool_choice, "tools": self.tools, "truncation": "disabled",
            "usage": usage, "metadata": self.metadata,
        });
        if let Some((k, x)) = extra {
            v[k] = x;
        }
        v
    }
}

fn usage_json(f: &Finish) -> Value {
    let u = &f.usage;
    json!({
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_tokens},
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    })
}

/// Output items under construction.
fn reasoning_item(id: &str, text: &str, summary: bool, status: &str) -> Value {
    let s = if summary && !text.is_empty() {
        json!([{"type": "summary_text", "text": text}])
    } else {
        json!([])
    };
    json!({"type": "reasoning", "id": id, "summary": s, "content": [{"type": "reasoning_text", "text": text}],
        "encrypted_content": ids::reasoning_blob(text), "status": status})
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({"type": "message", "id": id, "status": status, "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]})
}

fn call_item(id: &str, call_id: &str, name: &str, args: &str, custom: bool, status: &str) -> Value {
    if custom {
        let input = serde_json::from_str::<Value>(args)
            .ok()
            .and_then(|v| v.get("input").and_then(Value::as_str).map(String::from))
            .unwrap_or_default();
        json!({"type": "custom_tool_call", "id": id, "call_id": call_id, "name": name, "input": input, "status": status})
    } else {
        json!({"type": "function_call", "id": id, "call_id": call_id, "name": name, "arguments": args, "status": status})
    }
}

/// The assistant turn an output adds to the conversation (for the store).
fn output_message(
    reasoning: &str,
    content: &str,
    calls: &[(String, String, String)],
) -> ChatMessage {
    let mut m = ChatMessage::new(Role::Assistant, content);
    m.reasoning_content = (!reasoning.is_empty()).then(|| reasoning.to_string());
    if !calls.is_empty() {
        m.tool_calls = Some(
            calls
                .iter()
                .map(|(call_id, name, args)| ToolCall {
                    id: Some(call_id.clone()),
                    kind: Some("function".into()),
                    function: FunctionCall {
                        name: name.clone(),
                        arguments: Value::String(args.clone()),
                        id: None,
                    },
                })
                .collect(),
        );
    }
    m
}

fn store(
    st: &AppState,
    echo: &Echo,
    mut messages: Vec<ChatMessage>,
    turn: ChatMessage,
    response: &Value,
) {
    if !echo.store {
        return;
    }
    messages.push(turn);
    if let Ok(mut s) = st.responses.lock() {
        s.put(
            echo.id.clone(),
            Stored {
                messages,
                response: response.clone(),
            },
        );
    }
}

/// `GET /v1/responses/{id}`.
pub(crate) async fn get(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, OpenAiError> {
    let found = st
        .responses
        .lock()
        .ok()
        .and_then(|s| s.get(&id).map(|x| x.response.clone()));
    match found {
        Some(v) => Ok(axum::Json(v).into_response()),
        None => Err(ApiError::not_found(format!("no stored response with id {id:?}")).into()),
    }
}

/// `POST /v1/responses`.
pub(crate) async fn create(
    State(st): State<Arc<AppState>>,
    req: Request,
) -> Result<Response, OpenAiError> {
    let ready = st.ready()?;
    let (parts, body) = req.into_parts();
    let r: ResponsesRequest = crate::body::json(body, st.cfg.max_body_bytes).await?;
    let mut history = match &r.previous_response_id {
        Some(prev) => st
            .responses
            .lock()
            .ok()
            .and_then(|s| s.get(prev).map(|x| x.messages.clone()))
            .ok_or_else(|| {
                ApiError::invalid_param(
                    "previous_response_id",
                    format!("previous response {prev:?} is not stored here (it expired, was sent with store: false, or the server restarted); send the full input instead"),
                )
            })?,
        None => Vec::new(),
    };
    if let Some(Value::Array(items)) = r.input.as_ref()
        && let Some(last) = items.last()
    {
        let role = last.get("role").and_then(Value::as_str).unwrap_or_default();
        let content = last.get("content").unwrap_or(&Value::Null);
        prompt::reject_media_in_last_turn(
            &format!("input[{}].content", items.len() - 1),
            role,
            content,
        )?;
    }
    history.extend(input_messages(r.input.as_ref()));
    let toolset = toolset(r.tools.as_deref().unwrap_or_default())?;
    let mut messages = Vec::new();
    if let Some(i) = r.instructions.as_ref().filter(|i| !i.is_empty()) {
        messages.push(ChatMessage::new(Role::System, i.clone()));
    }
    messages.extend(history.iter().cloned());
    let effort = r.reasoning.as_ref().and_then(|x| x.effort.clone());
    let format = r.text.as_ref().and_then(|t| t.get("format")).cloned();
    let chat = ChatRequest {
        model: r.model.clone(),
        messages,
        tools: (!toolset.is_empty()).then(|| toolset.render.clone()),
        response_format: format.clone(),
        reasoning_effort: effort.as_deref().map(|e| {
            if e == "minimal" {
                "none".to_string()
            } else {
                e.to_string()
            }
        }),
        ..Default::default()
    };
    let opts = prompt::options(&st.cfg, &chat)?;
    let prompt_ids = prompt::render(&ready, chat, opts).await?;
    let max_tokens = generate::max_tokens(r.max_output_tokens, st.cfg.default_max_tokens);
    let decoding = tools::decoding(
        &ready,
        DecodingRequest {
            tools: &toolset,
            choice: Choice::from_openai(r.tool_choice.as_ref())?,
            parallel: r.parallel_tool_calls.unwrap_or(true),
            format: tools::json_format(format.as_ref())?,
            thinking: opts.thinking,
            max_tokens,
            constrain_auto: st.cfg.constrain_auto_tools,
        },
    )?;
    let spec = GenSpec {
        prompt: prompt_ids,
        sampling: r
            .sampling
            .params(&decoding.ban, ready.tokenizer.vocab_size())?,
        max_tokens,
        stop: Vec::new(),
        thinking: opts.thinking,
        think_budget: None,
        logprobs: None,
        session_key: crate::body::session_key(&parts.headers, r.prompt_cache_key.as_deref()),
        mask: decoding.mask,
        parse: ParseMode::Chat {
            plain_tags: decoding.plain_tags,
        },
    };
    let echo = Echo {
        id: ids::new_id("resp_"),
        created: ids::now(),
        model: r.model.clone().unwrap_or_else(|| st.cfg.model_id.clone()),
        instructions: r.instructions.clone(),
        max_output_tokens: r.max_output_tokens,
        parallel: r.parallel_tool_calls.unwrap_or(true),
        previous: r.previous_response_id.clone(),
        effort,
        summary: r.reasoning.as_ref().and_then(|x| x.summary.clone()),
        store: r.store.unwrap_or(true),
        temperature: r.sampling.temperature,
        top_p: r.sampling.top_p,
        text: r
            .text
            .clone()
            .unwrap_or_else(|| json!({"format": {"type": "text"}})),
        tool_choice: r.tool_choice.clone().unwrap_or_else(|| json!("auto")),
        tools: r.tools.clone().unwrap_or_default(),
        metadata: r.metadata.clone().unwrap_or_else(|| json!({})),
    };
    let gen_ = generate::start(&ready, &st.metrics, spec)?;
    if r.stream.unwrap_or(false) {
        let mut w = ResponseStream::new(
            Arc::clone(&st),
            echo,
            history,
            toolset.custom.clone(),
            opts.thinking,
        );
        let created = w.response_event("response.created", "in_progress");
        let progress = w.response_event("response.in_progress", "in_progress");
        return Ok(sse::stream(
            gen_,
            w,
            vec![created, progress],
            st.cfg.keepalive,
        ));
    }
    let c = gen_.collect().await;
    let v = complete(&st, &echo, history, &toolset.custom, &c)?;
    Ok(axum::Json(v).into_response())
}

fn complete(
    st: &AppState,
    echo: &Echo,
    history: Vec<ChatMessage>,
    custom: &HashSet<String>,
    c: &Collected,
) -> Result<Value, ApiError> {
    let f = c.outcome()?;
    let mut output = Vec::new();
    if !c.reasoning.is_empty() {
        output.push(reasoning_item(
            &ids::new_id("rs_"),
            &c.reasoning,
            echo.summary.is_some(),
            "completed",
        ));
    }
    if !c.content.is_empty() {
        output.push(message_item(&ids::new_id("msg_"), &c.content, "completed"));
    }
    let mut calls = Vec::new();
    for call in c.presented_calls() {
        let call_id = ids::new_id("call_");
        let is_custom = custom.contains(&call.name);
        output.push(call_item(
            &ids::new_id(if is_custom { "ctc_" } else { "fc_" }),
            &call_id,
            &call.name,
            &call.arguments,
            is_custom,
            "completed",
        ));
        calls.push((call_id, call.name.clone(), call.arguments.clone()));
    }
    let v = if f.truncated() {
        echo.response(
            "incomplete",
            &output,
            Some(usage_json(f)),
            Some(("incomplete_details", json!({"reason": "max_output_tokens"}))),
        )
    } else {
        echo.response("completed", &output, Some(usage_json(f)), None)
    };
    store(
        st,
        echo,
        history,
        output_message(&c.reasoning, &c.content, &calls),
        &v,
    );
    Ok(v)
}

#[derive(Debug)]
enum Item {
    None,
    Reasoning {
        id: String,
        index: usize,
        text: String,
    },
    Message {
        id: String,
        index: usize,
        text: String,
    },
    Call {
        id: String,
        index: usize,
        call_id: String,
        name: String,
        args: String,
        custom: bool,
    },
}

struct ResponseStream {
    st: Arc<AppState>,
    echo: Echo,
    history: Vec<ChatMessage>,
    custom: HashSet<String>,
    thinking: bool,
    seq: u64,
    open: Item,
    output: Vec<Value>,
    reasoning: String,
    content: String,
    calls: Vec<(String, String, String)>,
    failed: bool,
}

impl ResponseStream {
    fn new(
        st: Arc<AppState>,
        echo: Echo,
        history: Vec<ChatMessage>,
        custom: HashSet<String>,
        thinking: bool,
    ) -> Self {
        ResponseStream {
            st,
            echo,
            history,
            custom,
            thinking,
            seq: 0,
            open: Item::None,
            output: Vec::new(),
            reasoning: String::new(),
            content: String::new(),
            calls: Vec::new(),
            failed: false,
        }
    }

    fn ev(&mut self, name: &str, mut body: Map<String, Value>) -> Bytes {
        body.insert("type".into(), json!(name));
        body.insert("sequence_number".into(), json!(self.seq));
        self.seq += 1;
        sse::event(name, &Value::Object(body))
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn response_event(&mut self, name: &str, status: &str) -> Bytes {
        let r = self.echo.response(status, &self.output, None, None);
        self.ev(name, Self::obj(json!({"response": r})))
    }

    fn summary(&self) -> bool {
        self.echo.summary.is_some()
    }

    fn close(&mut self, out: &mut Vec<Bytes>, status: &str) {
        match std::mem::replace(&mut self.open, Item::None) {
            Item::None => {}
            Item::Reasoning { id, index, text } => {
                if self.summary() {
                    let b = json!({"item_id": id, "output_index": index, "summary_index": 0, "text": text});
                    out.push(self.ev("response.reasoning_summary_text.done", Self::obj(b)));
                    let b = json!({"item_id": id, "output_index": index, "summary_index": 0, "part": {"type": "summary_text", "text": text}});
                    out.push(self.ev("response.reasoning_summary_part.done", Self::obj(b)));
                }
                let b =
                    json!({"item_id": id, "output_index": index, "content_index": 0, "text": text});
                out.push(self.ev("response.reasoning_text.done", Self::obj(b)));
                let item = reasoning_item(&id, &text, self.summary(), "completed");
                self.output.push(item.clone());
                out.push(self.ev(
                    "response.output_item.done",
                    Self::obj(json!({"output_index": index, "item": item})),
                ));
            }
            Item::Message { id, index, text } => {
                let b = json!({"item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": []});
                out.push(self.ev("response.output_text.done", Self::obj(b)));
                let part =
                    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []});
                let b =
                    json!({"item_id": id, "output_index": index, "content_index": 0, "part": part});
                out.push(self.ev("response.content_part.done", Self::obj(b)));
                let item = message_item(&id, &text, status);
                self.output.push(item.clone());
                out.push(self.ev(
                    "response.output_item.done",
                    Self::obj(json!({"output_index": index, "item": item})),
                ));
            }
            Item::Call {
                id,
                index,
                call_id,
                name,
                args,
                custom,
            } => {
                let item = call_item(&id, &call_id, &name, &args, custom, status);
                if custom {
                    let input = item.get("input").cloned().unwrap_or_else(|| json!(""));
                    let b = json!({"item_id": id, "output_index": index, "delta": input});
                    out.push(self.ev("response.custom_tool_call_input.delta", Self::obj(b)));
                    let b = json!({"item_id": id, "output_index": index, "input": input});
                    out.push(self.ev("response.custom_tool_call_input.done", Self::obj(b)));
                } else {
                    let b = json!({"item_id": id, "output_index": index, "name": name, "arguments": args});
                    out.push(self.ev("response.function_call_arguments.done", Self::obj(b)));
                }
                if status == "completed" {
                    self.calls.push((call_id, name, args));
                }
                self.output.push(item.clone());
                out.push(self.ev(
                    "response.output_item.done",
                    Self::obj(json!({"output_index": index, "item": item})),
                ));
            }
        }
    }

    fn added(&mut self, item: Value, out: &mut Vec<Bytes>) -> usize {
        let index = self.output.len();
        out.push(self.ev(
            "response.output_item.added",
            Self::obj(json!({"output_index": index, "item": item})),
        ));
        index
    }

    fn reasoning_delta(&mut self, t: &str, out: &mut Vec<Bytes>) {
        if !matches!(self.open, Item::Reasoning { .. }) {
            self.close(out, "completed");
            let id = ids::new_id("rs_");
            let index = self.added(
                json!({"type": "reasoning", "id": id, "summary": [], "status": "in_progress"}),
                out,
            );
            if self.summary() {
                let b = json!({"item_id": id, "output_index": index, "summary_index": 0, "part": {"type": "summary_text", "text": ""}});
                out.push(self.ev("response.reasoning_summary_part.added", Self::obj(b)));
            }
            self.open = Item::Reasoning {
                id,
                index,
                text: String::new(),
            };
        }
        let (id, index) = match &mut self.open {
            Item::Reasoning { id, index, text } => {
                text.push_str(t);
                (id.clone(), *index)
            }
            _ => return,
        };
        self.reasoning.push_str(t);
        if self.summary() {
            let b = json!({"item_id": id, "output_index": index, "summary_index": 0, "delta": t});
            out.push(self.ev("response.reasoning_summary_text.delta", Self::obj(b)));
        }
        let b = json!({"item_id": id, "output_index": index, "content_index": 0, "delta": t});
        out.push(self.ev("response.reasoning_text.delta", Self::obj(b)));
    }

    fn text_delta(&mut self, t: &str, out: &mut Vec<Bytes>) {
        if t.is_empty() {
            return;
        }
        if !matches!(self.open, Item::Message { .. }) {
            self.close(out, "completed");
            let id = ids::new_id("msg_");
            let item = json!({"type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": []});
            let index = self.added(item, out);
            let part =
                json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []});
            let b = json!({"item_id": id, "output_index": index, "content_index": 0, "part": part});
            out.push(self.ev("response.content_part.added", Self::obj(b)));
            self.open = Item::Message {
                id,
                index,
                text: String::new(),
            };
        }
        let (id, index) = match &mut self.open {
            Item::Message { id, index, text } => {
                text.push_str(t);
                (id.clone(), *index)
            }
            _ => return,
        };
        self.content.push_str(t);
        let b = json!({"item_id": id, "output_index": index, "content_index": 0, "delta": t, "logprobs": []});
        out.push(self.ev("response.output_text.delta", Self::obj(b)));
    }

    fn finish(&mut self, f: &Finish, out: &mut Vec<Bytes>) {
        let truncated = f.truncated();
        self.close(out, if truncated { "incomplete" } else { "completed" });
        let usage = Some(usage_json(f));
        let (name, v) = if truncated {
            let extra = Some(("incomplete_details", json!({"reason": "max_output_tokens"})));
            (
                "response.incomplete",
                self.echo.response("incomplete", &self.output, usage, extra),
            )
        } else {
            (
                "response.completed",
                self.echo.response("completed", &self.output, usage, None),
            )
        };
        let turn = output_message(&self.reasoning, &self.content, &self.calls);
        store(
            &self.st,
            &self.echo,
            std::mem::take(&mut self.history),
            turn,
            &v,
        );
        out.push(self.ev(name, Self::obj(json!({"response": v}))));
    }
}

impl SseWriter for ResponseStream {
    fn events(&mut self, evs: Vec<Ev>, out: &mut Vec<Bytes>) {
        for ev in evs {
            if self.failed {
                return;
            }
            match ev {
                Ev::Reasoning(t) if self.thinking => self.reasoning_delta(&t, out),
                Ev::Reasoning(_) => {}
                Ev::Content(t) | Ev::Promoted(t) => self.text_delta(&t, out),
                Ev::ToolStart { name, .. } => {
                    self.close(out, "completed");
                    let custom = self.custom.contains(&name);
                    let id = ids::new_id(if custom { "ctc_" } else { "fc_" });
                    let call_id = ids::new_id("call_");
                    let item = call_item(&id, &call_id, &name, "", custom, "in_progress");
                    let index = self.added(item, out);
                    self.open = Item::Call {
                        id,
                        index,
                        call_id,
                        name,
                        args: String::new(),
                        custom,
                    };
                }
                Ev::ToolArgs { fragment, .. } => {
                    let delta = match &mut self.open {
                        Item::Call {
                            id,
                            index,
                            args,
                            custom,
                            ..
                        } => {
                            args.push_str(&fragment);
                            (!*custom).then(|| (id.clone(), *index))
                        }
                        _ => None,
                    };
                    if let Some((id, index)) = delta {
                        let b = json!({"item_id": id, "output_index": index, "delta": fragment});
                        out.push(self.ev("response.function_call_arguments.delta", Self::obj(b)));
                    }
                }
                Ev::ToolEnd { call, .. } => self.close(
                    out,
                    if call.closed {
                        "completed"
                    } else {
                        "incomplete"
                    },
                ),
                Ev::Finished(f) => self.finish(&f, out),
                Ev::Failed(e) => {
                    self.failed = true;
                    let extra = Some((
                        "error",
                        json!({"code": "server_error", "message": e.message}),
                    ));
                    let v = self.echo.response("failed", &self.output, None, extra);
                    out.push(self.ev("response.failed", Self::obj(json!({"response": v}))));
                }
                Ev::Started { .. } | Ev::Progress { .. } | Ev::Logprob(_) => {}
            }
        }
    }

    fn keepalive(&mut self, out: &mut Vec<Bytes>) {
        out.push(sse::comment("keepalive"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_items_become_turns() {
        let blob = ids::reasoning_blob("exact thoughts");
        let input = json!([
            {"role": "user", "content": "fix it"},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "summary"}], "encrypted_content": blob},
            {"type": "function_call", "call_id": "c1", "name": "shell", "arguments": "{\"cmd\": \"ls\"}"},
            {"type": "custom_tool_call", "call_id": "c2", "name": "apply_patch", "input": "*** Begin Patch"},
            {"type": "function_call_output", "call_id": "c1", "output": "a.txt"},
            {"type": "custom_tool_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "done"}]},
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "foreign"}], "encrypted_content": "gAAAA-foreign"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
            {"type": "web_search_call", "id": "ws"},
            {"role": "user", "content": [{"type": "input_text", "text": "thanks"}, {"type": "input_image", "image_url": "data:"}]}
        ]);
        let m = input_messages(Some(&input));
        let roles: Vec<Role> = m.iter().map(|x| x.role).collect();
        assert_eq!(
            roles,
            [
                Role::User,
                Role::Assistant,
                Role::Tool,
                Role::Tool,
                Role::Assistant,
                Role::User
            ]
        );
        assert_eq!(m[1].reasoning_content.as_deref(), Some("exact thoughts"));
        let calls = m[1].tool_calls.as_ref().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(
            calls[1].function.arguments,
            json!("{\"input\":\"*** Begin Patch\"}")
        );
        assert_eq!(m[3].content.as_ref().unwrap().flatten(), "done");
        assert_eq!(m[4].reasoning_content.as_deref(), Some("foreign"));
        assert_eq!(m[4].content.as_ref().unwrap().flatten(), "ok");
        assert!(
            m[5].content
                .as_ref()
                .unwrap()
                .flatten()
                .contains("image omitted")
        );
        assert_eq!(input_messages(Some(&json!("hi"))).len(), 1);
        assert!(input_messages(Some(&json!([]))).is_empty());
    }

    #[test]
    fn store_is_bounded() {
        let mut s = ResponseStore::new(2);
        for i in 0..3 {
            s.put(
                format!("r{i}"),
                Stored {
                    messages: vec![],
                    response: json!(i),
                },
            );
        }
        assert!(s.get("r0").is_none());
        assert!(s.get("r2").is_some());
    }
}
