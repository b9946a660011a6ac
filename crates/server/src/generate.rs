//! One generation, as the API front ends see it.
//!
//! [`start`] submits a [`GenSpec`] (the prompt ids and everything translated
//! from the request) to the engine; [`Generation::next`] turns the engine's
//! token events into [`Ev`]s: reasoning and content text and tool-call
//! pieces from the tokenizer crate's streaming DSML/reasoning parser (or raw
//! text for plain completions), log-probabilities, and exactly one final
//! `Finished` or `Failed`. [`Generation::collect`] drains it for
//! non-streaming answers.
//!
//! Dropping a `Generation` before the end drops the engine handle, which
//! cancels the request within one prefill chunk or decode step; the drop is
//! counted as a client cancellation.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use dsv4_engine::{
    FinishReason, GenerationRequest, LogitMask, RequestHandle, SamplingParams, Thinking,
    TokenEvent, Usage,
};
use dsv4_tokenizer::dsml::{
    DiagnosticKind, OutputEvent, OutputParser, ParsedToolCall, ParserOptions, TokenPiece,
};
use dsv4_tokenizer::{SpecialToken, Tokenizer};

use crate::errors::ApiError;
use crate::state::{Metrics, Ready};

/// How generated text is interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParseMode {
    /// Chat: reasoning, content and DSML tool calls.
    Chat {
        /// DSML tags without the `｜DSML｜` marker count as tool calls.
        plain_tags: bool,
    },
    /// Plain completion: the text as generated (control tokens dropped).
    Raw,
}

/// Everything the engine request needs, translated from an API request.
#[derive(Debug)]
pub(crate) struct GenSpec {
    pub(crate) prompt: Vec<u32>,
    pub(crate) sampling: SamplingParams,
    pub(crate) max_tokens: Option<usize>,
    pub(crate) stop: Vec<String>,
    /// The prompt ends inside `<think>`.
    pub(crate) thinking: bool,
    pub(crate) think_budget: Option<usize>,
    /// Log-probabilities: `Some(n)` with `n` alternatives per token.
    pub(crate) logprobs: Option<usize>,
    pub(crate) session_key: Option<String>,
    pub(crate) mask: Option<Box<dyn LogitMask>>,
    pub(crate) parse: ParseMode,
}

/// A token's log-probability and its best alternatives.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TokenLogprob {
    pub(crate) token: String,
    pub(crate) bytes: Vec<u8>,
    pub(crate) logprob: f32,
    pub(crate) top: Vec<(String, Vec<u8>, f32)>,
}

/// How a generation ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Finish {
    pub(crate) reason: FinishReason,
    pub(crate) usage: Usage,
}

impl Finish {
    /// The budget (max tokens or the context) ended it.
    pub(crate) fn truncated(&self) -> bool {
        matches!(
            self.reason,
            FinishReason::Length | FinishReason::ContextFull
        )
    }

    /// The matched stop string, if any.
    pub(crate) fn stop_string(&self) -> Option<&str> {
        match &self.reason {
            FinishReason::StopString(s) => Some(s),
            _ => None,
        }
    }
}

/// An event of a generation, API-neutral.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ev {
    /// Admitted: prompt size and tokens reused from a resident session.
    Started {
        prompt_tokens: usize,
        cached_tokens: usize,
    },
    /// Prompt evaluation advanced.
    Progress {
        done: usize,
        total: usize,
    },
    Reasoning(String),
    Content(String),
    ToolStart {
        index: usize,
        name: String,
    },
    ToolArgs {
        index: usize,
        fragment: String,
    },
    ToolEnd {
        index: usize,
        call: ParsedToolCall,
    },
    /// At the end: the reasoning was the answer (EOS inside unclosed reasoning).
    Promoted(String),
    /// A content token's log-probability (after its text).
    Logprob(TokenLogprob),
    Finished(Finish),
    Failed(ApiError),
}

/// A running generation.
#[derive(Debug)]
pub(crate) struct Generation {
    handle: RequestHandle,
    parser: Option<OutputParser>,
    tokenizer: Arc<Tokenizer>,
    metrics: Arc<Metrics>,
    eos: u32,
    think_end: u32,
    in_reasoning: bool,
    want_logprobs: bool,
    done: bool,
    t0: Instant,
    first_token: bool,
    /// Prompt tokens (known before admission).
    pub(crate) prompt_tokens: usize,
}

/// Submits a generation.
pub(crate) fn start(
    ready: &Ready,
    metrics: &Arc<Metrics>,
    spec: GenSpec,
) -> Result<Generation, ApiError> {
    let prompt_tokens = spec.prompt.len();
    if prompt_tokens >= ready.ctx {
        return Err(ApiError::context_length(prompt_tokens, ready.ctx));
    }
    let mut req = GenerationRequest::new(spec.prompt);
    req.sampling = spec.sampling;
    req.sampling.validate().map_err(ApiError::invalid)?;
    req.max_tokens = spec.max_tokens;
    req.stop = spec.stop;
    req.thinking = Thinking {
        starts_in_reasoning: spec.thinking,
        budget: spec.think_budget,
    };
    req.logprobs = spec.logprobs.is_some();
    req.top_logprobs = spec.logprobs.unwrap_or(0);
    req.session_key = spec.session_key;
    if spec.mask.is_some() {
        metrics.constrained.fetch_add(1, Ordering::Relaxed);
    }
    req.mask = spec.mask;
    let handle = ready.engine.submit(req)?;
    metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    let parser = match spec.parse {
        ParseMode::Chat { plain_tags } => {
            let mut opts = ParserOptions::new(spec.thinking);
            opts.accept_plain_tags = plain_tags;
            Some(OutputParser::new(opts))
        }
        ParseMode::Raw => None,
    };
    Ok(Generation {
        handle,
        parser,
        tokenizer: Arc::clone(&ready.tokenizer),
        metrics: Arc::clone(metrics),
        eos: ready.ids.eos,
        think_end: ready.ids.think_end,
        in_reasoning: spec.thinking,
        want_logprobs: spec.logprobs.is_some(),
        done: false,
        t0: Instant::now(),
        first_token: true,
        prompt_tokens,
    })
}

fn parser_events(evs: Vec<OutputEvent>, out: &mut Vec<Ev>) {
    for e in evs {
        match e {
            OutputEvent::Reasoning(t) => out.push(Ev::Reasoning(t)),
            OutputEvent::Content(t) => out.push(Ev::Content(t)),
            OutputEvent::ToolCallStart { index, name } => out.push(Ev::ToolStart { index, name }),
            OutputEvent::ToolCallArgumentsDelta { index, fragment } => {
                out.push(Ev::ToolArgs { index, fragment })
            }
            OutputEvent::ToolCallEnd { index, call } => {
                if call.has_errors() {
                    tracing::warn!(tool = %call.name, issues = ?call.issues, "tool call with invalid arguments");
                }
                out.push(Ev::ToolEnd { index, call })
            }
            OutputEvent::ReasoningPromoted(t) => out.push(Ev::Promoted(t)),
            OutputEvent::Diagnostic(d) => match d.kind {
                DiagnosticKind::UnterminatedToolCalls | DiagnosticKind::ToolCallsInReasoning => {
                    tracing::warn!(kind = ?d.kind, detail = %d.detail, "model output repaired")
                }
                _ => tracing::debug!(kind = ?d.kind, detail = %d.detail, "model output repaired"),
            },
        }
    }
}

impl Generation {
    fn logprob(&self, id: u32, logprob: f32, top: &[(u32, f32)]) -> TokenLogprob {
        let piece = |t: u32| {
            let bytes = self.tokenizer.token_bytes(t).unwrap_or_default().to_vec();
            (String::from_utf8_lossy(&bytes).into_owned(), bytes)
        };
        let (token, bytes) = piece(id);
        let top = top
            .iter()
            .map(|&(t, lp)| {
                let (s, b) = piece(t);
                (s, b, lp)
            })
            .collect();
        TokenLogprob {
            token,
            bytes,
            logprob,
            top,
        }
    }

    fn text(&mut self, text: &str, out: &mut Vec<Ev>) {
        match &mut self.parser {
            Some(p) => parser_events(p.push_text(text), out),
            None => {
                if !text.is_empty() {
                    out.push(Ev::Content(text.to_string()))
                }
            }
        }
    }

    fn finish(&mut self, reason: FinishReason, usage: Usage, out: &mut Vec<Ev>) {
        if let Some(p) = &mut self.parser {
            if reason == FinishReason::Eos {
                let piece = TokenPiece {
                    id: self.eos,
                    text: SpecialToken::Eos.content(),
                    special: true,
                };
                parser_events(p.push(piece), out);
            }
            parser_events(p.finish(), out);
        }
        if reason == FinishReason::Length
            && usage.completion_tokens == usage.reasoning_tokens
            && usage.reasoning_tokens > 0
        {
            tracing::info!(
                tokens = usage.reasoning_tokens,
                "answer lost to thinking: max_tokens ended the reasoning"
            );
        }
        out.push(Ev::Finished(Finish { reason, usage }));
        self.end();
    }

    fn end(&mut self) {
        if !self.done {
            self.done = true;
            self.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The next batch of events; `None` after `Finished`/`Failed`.
    pub(crate) async fn next(&mut self) -> Option<Vec<Ev>> {
        if self.done {
            return None;
        }
        let mut out = Vec::new();
        let Some(ev) = self.handle.events.recv().await else {
            out.push(Ev::Failed(ApiError::internal(
                "the engine stopped before the answer ended",
            )));
            self.end();
            return Some(out);
        };
        match ev {
            TokenEvent::Started {
                prompt_tokens,
                cached_tokens,
            } => out.push(Ev::Started {
                prompt_tokens,
                cached_tokens,
            }),
            TokenEvent::Prefill { done, total } => out.push(Ev::Progress { done, total }),
            TokenEvent::Text(t) => self.text(&t, &mut out),
            TokenEvent::Token(s) => {
                if self.first_token {
                    self.first_token = false;
                    self.metrics.ttft(self.t0.elapsed().as_secs_f64());
                }
                let was_reasoning = self.in_reasoning;
                if s.id == self.think_end {
                    self.in_reasoning = false;
                }
                match (&mut self.parser, s.special) {
                    (Some(p), _) => parser_events(
                        p.push(TokenPiece {
                            id: s.id,
                            text: &s.text,
                            special: s.special,
                        }),
                        &mut out,
                    ),
                    (None, false) => self.text(&s.text, &mut out),
                    (None, true) => {}
                }
                if self.want_logprobs
                    && !was_reasoning
                    && !s.special
                    && let Some(lp) = s.logprob
                {
                    out.push(Ev::Logprob(self.logprob(s.id, lp, &s.top)));
                }
            }
            TokenEvent::Finished { reason, usage } => self.finish(reason, usage, &mut out),
            TokenEvent::Error(e) => {
                out.push(Ev::Failed(ApiError::from(e)));
                self.end();
            }
        }
        Some(out)
    }

    /// Drains the generation (non-streaming answers).
    pub(crate) async fn collect(mut self) -> Collected {
        let mut c = Collected::default();
        while let Some(evs) = self.next().await {
            for ev in evs {
                match ev {
                    Ev::Reasoning(t) => c.reasoning.push_str(&t),
                    Ev::Content(t) => c.content.push_str(&t),
                    Ev::Promoted(t) => {
                        c.content.insert_str(0, &t);
                        c.reasoning.clear();
                    }
                    Ev::ToolEnd { call, .. } => c.calls.push(call),
                    Ev::Logprob(lp) => c.logprobs.push(lp),
                    Ev::Finished(f) => c.finish = Some(f),
                    Ev::Failed(e) => c.error = Some(e),
                    Ev::Started { .. }
                    | Ev::Progress { .. }
                    | Ev::ToolStart { .. }
                    | Ev::ToolArgs { .. } => {}
                }
            }
        }
        c
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        if !self.done {
            self.metrics.cancelled.fetch_add(1, Ordering::Relaxed);
            self.end();
            tracing::debug!(
                id = self.handle.id,
                "client went away; generation cancelled"
            );
        }
    }
}

/// A whole answer.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    pub(crate) reasoning: String,
    pub(crate) content: String,
    /// Finished tool calls (a call cut off by the budget is not here).
    pub(crate) calls: Vec<ParsedToolCall>,
    pub(crate) logprobs: Vec<TokenLogprob>,
    pub(crate) finish: Option<Finish>,
    pub(crate) error: Option<ApiError>,
}

impl Collected {
    /// The finish, or the error that ended the generation.
    pub(crate) fn outcome(&self) -> Result<&Finish, ApiError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        self.finish
            .as_ref()
            .ok_or_else(|| ApiError::internal("the generation ended without a result"))
    }

    /// Tool calls to present: closed ones only when the budget cut the answer.
    pub(crate) fn presented_calls(&self) -> Vec<&ParsedToolCall> {
        let truncated = self.finish.as_ref().is_some_and(Finish::truncated);
        self.calls
            .iter()
            .filter(|c| c.closed || !truncated)
            .collect()
    }
}

/// Sampling fields common to the APIs (all optional; DeepSeek's recommended
/// defaults, temperature 1 and top_p 1, apply when absent).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub(crate) struct SamplingFields {
    pub(crate) temperature: Option<f32>,
    pub(crate) top_p: Option<f32>,
    pub(crate) top_k: Option<u32>,
    pub(crate) min_p: Option<f32>,
    pub(crate) seed: Option<i64>,
    pub(crate) presence_penalty: Option<f32>,
    pub(crate) frequency_penalty: Option<f32>,
    pub(crate) repetition_penalty: Option<f32>,
    /// Token id (as a string) → bias; -100 bans the token.
    pub(crate) logit_bias: Option<std::collections::HashMap<String, f32>>,
}

impl SamplingFields {
    /// The engine's parameters; `ban` lists tokens to exclude outright.
    pub(crate) fn params(&self, ban: &[u32], n_vocab: usize) -> Result<SamplingParams, ApiError> {
        let d = SamplingParams::default();
        let mut p = SamplingParams {
            temperature: self.temperature.unwrap_or(d.temperature),
            top_p: self.top_p.unwrap_or(d.top_p),
            top_k: self.top_k.map_or(0, |k| k as usize),
            min_p: self.min_p.unwrap_or(0.0),
            seed: self.seed.map(|s| s as u64),
            presence_penalty: self.presence_penalty.unwrap_or(0.0),
            frequency_penalty: self.frequency_penalty.unwrap_or(0.0),
            repetition_penalty: self.repetition_penalty.unwrap_or(1.0),
            ..d
        };
        if let Some(bias) = &self.logit_bias {
            for (k, &v) in bias {
                let id: u32 = k
                    .parse()
                    .ok()
                    .filter(|&id: &u32| (id as usize) < n_vocab)
                    .ok_or_else(|| {
                        ApiError::invalid_param(
                            "logit_bias",
                            format!("{k:?} is not a token id of this model"),
                        )
                    })?;
                if !(-100.0..=100.0).contains(&v) {
                    return Err(ApiError::invalid_param(
                        "logit_bias",
                        format!("bias {v} for token {id} is outside [-100, 100]"),
                    ));
                }
                p.logit_bias
                    .insert(id, if v <= -100.0 { f32::NEG_INFINITY } else { v });
            }
        }
        for &id in ban {
            p.logit_bias.insert(id, f32::NEG_INFINITY);
        }
        p.validate().map_err(ApiError::invalid)?;
        Ok(p)
    }
}

/// `max_tokens`: 0 or absent means the server default.
pub(crate) fn max_tokens(requested: Option<u64>, default: Option<usize>) -> Option<usize> {
    requested
        .filter(|&n| n > 0)
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
        .or(default)
}

/// `stop`: a string or a list; empty strings are dropped.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum Stop {
    One(String),
    Many(Vec<String>),
}

/// The stop strings of a request (at most 16).
pub(crate) fn stops(stop: Option<Stop>) -> Result<Vec<String>, ApiError> {
    let v: Vec<String> = match stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    };
    let v: Vec<String> = v.into_iter().filter(|s| !s.is_empty()).collect();
    if v.len() > 16 {
        return Err(ApiError::invalid_param(
            "stop",
            format!("{} stop sequences given; at most 16 are supported", v.len()),
        ));
    }
    Ok(v)
}
