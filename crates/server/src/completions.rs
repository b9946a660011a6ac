//! `POST /v1/completions` (also `/completions` and DeepSeek's
//! `/beta/completions`): raw text completion and fill-in-the-middle.
//!
//! The prompt is not wrapped in the chat template. It is BOS + the prompt's
//! plain-text tokens (or the given token ids), or, with `suffix`, DeepSeek's
//! FIM layout `BOS <｜fim▁begin｜>prompt<｜fim▁hole｜>suffix<｜fim▁end｜>`
//! (user-needs §2.10), which Continue and Zed send for autocomplete.
//! Generated control tokens are not part of the text. `max_tokens` defaults to
//! 16 as in OpenAI's legacy API; `n` and `best_of` must be 1; `echo` returns
//! the prompt text before the completion. `logprobs: N` returns the legacy
//! `{tokens, token_logprobs, top_logprobs, text_offset}` object.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::errors::{ApiError, OpenAiError};
use crate::generate::{self, Ev, Finish, GenSpec, ParseMode, SamplingFields, Stop, TokenLogprob};
use crate::ids;
use crate::prompt;
use crate::sse::{self, SseWriter};
use crate::state::{AppState, Ready};

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PromptField {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct CompletionRequest {
    model: Option<String>,
    prompt: Option<PromptField>,
    suffix: Option<String>,
    max_tokens: Option<u64>,
    #[serde(flatten)]
    sampling: SamplingFields,
    stop: Option<Stop>,
    n: Option<u32>,
    best_of: Option<u32>,
    echo: Option<bool>,
    logprobs: Option<u32>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    prompt_cache_key: Option<String>,
}

/// Output of a completion: text plus legacy log-probabilities.
#[derive(Debug, Default)]
struct Legacy {
    tokens: Vec<String>,
    token_logprobs: Vec<f32>,
    top: Vec<Map<String, Value>>,
    offsets: Vec<usize>,
}

impl Legacy {
    fn push(&mut self, lp: &TokenLogprob, offset: usize) {
        self.tokens.push(lp.token.clone());
        self.token_logprobs.push(lp.logprob);
        self.top.push(
            lp.top
                .iter()
                .map(|(t, _, l)| (t.clone(), json!(l)))
                .collect(),
        );
        self.offsets.push(offset);
    }

    fn json(&self) -> Value {
        json!({"tokens": self.tokens, "token_logprobs": self.token_logprobs, "top_logprobs": self.top, "text_offset": self.offsets})
    }
}

async fn prompt_ids(
    ready: &Arc<Ready>,
    prompt: Option<PromptField>,
    suffix: Option<String>,
) -> Result<(Vec<u32>, String), ApiError> {
    let ids = &ready.ids;
    let (mut out, text) = (vec![ids.bos], String::new());
    let prompt = match prompt {
        None => PromptField::Text(String::new()),
        Some(PromptField::Texts(v)) if v.len() == 1 => {
            PromptField::Text(v.into_iter().next().unwrap_or_default())
        }
        Some(PromptField::Texts(_)) => {
            return Err(ApiError::invalid_param(
                "prompt",
                "one prompt per request is supported (n = 1)",
            ));
        }
        Some(p) => p,
    };
    match (prompt, suffix) {
        (PromptField::Tokens(t), None) => {
            if let Some(bad) = t
                .iter()
                .find(|&&id| id as usize >= ready.tokenizer.vocab_size())
            {
                return Err(ApiError::invalid_param(
                    "prompt",
                    format!("token id {bad} is outside the vocabulary"),
                ));
            }
            let text = ready.tokenizer.decode(&t).unwrap_or_default();
            out.extend(t);
            Ok((out, text))
        }
        (PromptField::Tokens(_), Some(_)) => Err(ApiError::invalid_param(
            "suffix",
            "suffix needs a text prompt",
        )),
        (PromptField::Text(p), None) => {
            out.extend(prompt::encode_text(ready, p.clone()).await?);
            Ok((out, p))
        }
        (PromptField::Text(p), Some(s)) => {
            out.push(ids.fim_begin);
            out.extend(prompt::encode_text(ready, p.clone()).await?);
            out.push(ids.fim_hole);
            out.extend(prompt::encode_text(ready, s).await?);
            out.push(ids.fim_end);
            Ok((out, p))
        }
        (PromptField::Texts(_), _) => Ok((out, text)),
    }
}

fn usage_json(f: &Finish) -> Value {
    let u = &f.usage;
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
    })
}

fn finish_reason(f: &Finish) -> &'static str {
    if f.truncated() { "length" } else { "stop" }
}

/// The handler.
pub(crate) async fn handle(
    State(st): State<Arc<AppState>>,
    req: Request,
) -> Result<Response, OpenAiError> {
    let ready = st.ready()?;
    let (parts, body) = req.into_parts();
    let r: CompletionRequest = crate::body::json(body, st.cfg.max_body_bytes).await?;
    if r.n.is_some_and(|n| n != 1) || r.best_of.is_some_and(|n| n != 1) {
        return Err(
            ApiError::invalid_param("n", "only n = 1 and best_of = 1 are supported").into(),
        );
    }
    let (ids_, prompt_text) = prompt_ids(&ready, r.prompt, r.suffix).await?;
    let echo = r.echo.unwrap_or(false).then_some(prompt_text);
    let spec = GenSpec {
        prompt: ids_,
        sampling: r.sampling.params(&[], ready.tokenizer.vocab_size())?,
        max_tokens: generate::max_tokens(r.max_tokens, Some(16)),
        stop: generate::stops(r.stop)?,
        thinking: false,
        think_budget: None,
        logprobs: r.logprobs.map(|n| n.min(20) as usize),
        session_key: crate::body::session_key(&parts.headers, r.prompt_cache_key.as_deref()),
        mask: None,
        parse: ParseMode::Raw,
    };
    let model = r.model.unwrap_or_else(|| st.cfg.model_id.clone());
    let id = ids::new_id("cmpl-");
    let created = ids::now();
    let stream = r.stream.unwrap_or(false);
    let include_usage = stream
        && r.stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
    let gen_ = generate::start(&ready, &st.metrics, spec)?;
    if stream {
        let w = CompletionStream {
            id,
            created,
            model,
            include_usage,
            offset: 0,
        };
        let mut first = vec![sse::comment("dsv4")];
        if let Some(e) = echo {
            first.push(w.chunk(&e, None, None));
        }
        return Ok(sse::stream(gen_, w, first, st.cfg.keepalive));
    }
    let mut text = echo.unwrap_or_default();
    let mut legacy = Legacy::default();
    let mut finish = None;
    let mut g = gen_;
    while let Some(evs) = g.next().await {
        for ev in evs {
            match ev {
                Ev::Content(t) => text.push_str(&t),
                Ev::Logprob(lp) => {
                    let at = text.len().saturating_sub(lp.token.len());
                    legacy.push(&lp, at);
                }
                Ev::Finished(f) => finish = Some(f),
                Ev::Failed(e) => return Err(e.into()),
                _ => {}
            }
        }
    }
    let f = finish.ok_or_else(|| ApiError::internal("the generation ended without a result"))?;
    let logprobs = if r.logprobs.is_some() {
        legacy.json()
    } else {
        Value::Null
    };
    Ok(axum::Json(json!({
        "id": id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "system_fingerprint": "dsv4",
        "choices": [{"text": text, "index": 0, "logprobs": logprobs, "finish_reason": finish_reason(&f)}],
        "usage": usage_json(&f),
    }))
    .into_response())
}

struct CompletionStream {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    offset: usize,
}

impl CompletionStream {
    fn chunk(&self, text: &str, finish: Option<&str>, logprobs: Option<Value>) -> Bytes {
        let mut v = json!({
            "id": self.id, "object": "text_completion", "created": self.created, "model": self.model,
            "system_fingerprint": "dsv4",
            "choices": [{"text": text, "index": 0, "logprobs": logprobs, "finish_reason": finish}],
        });
        if self.include_usage {
            v["usage"] = Value::Null;
        }
        sse::data(&v)
    }
}

impl SseWriter for CompletionStream {
    fn events(&mut self, evs: Vec<Ev>, out: &mut Vec<Bytes>) {
        let mut text = String::new();
        let mut legacy = Legacy::default();
        for ev in evs {
            match ev {
                Ev::Content(t) => text.push_str(&t),
                Ev::Logprob(lp) => {
                    let at = self.offset + text.len().saturating_sub(lp.token.len());
                    legacy.push(&lp, at);
                }
                Ev::Finished(f) => {
                    if !text.is_empty() {
                        let lp = (!legacy.tokens.is_empty()).then(|| legacy.json());
                        self.offset += text.len();
                        out.push(self.chunk(&std::mem::take(&mut text), None, lp));
                        legacy = Legacy::default();
                    }
                    out.push(self.chunk("", Some(finish_reason(&f)), None));
                    if self.include_usage {
                        let v = json!({"id": self.id, "object": "text_completion", "created": self.created,
                            "model": self.model, "choices": [], "usage": usage_json(&f)});
                        out.push(sse::data(&v));
                    }
                    out.push(sse::done());
                }
                Ev::Failed(e) => out.push(sse::data(&json!({"error": e.openai_object()}))),
                _ => {}
            }
        }
        if !text.is_empty() {
            let lp = (!legacy.tokens.is_empty()).then(|| legacy.json());
            self.offset += text.len();
            out.push(self.chunk(&text, None, lp));
        }
    }

    fn keepalive(&mut self, out: &mut Vec<Bytes>) {
        out.push(sse::comment("keepalive"));
    }
}
