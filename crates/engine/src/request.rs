//! What callers send to the engine and what they get back.
//!
//! A [`GenerationRequest`] is one completion over a prompt of token ids; the
//! engine answers on the request's channel with [`TokenEvent`]s, ending with
//! exactly one `Finished` (or `Error`) event. Dropping the receiver or calling
//! [`RequestHandle::cancel`] stops the work within one prefill chunk or one
//! decode step.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc::UnboundedReceiver;

use crate::error::EngineError;
use crate::sampling::{LogitMask, SamplingParams};

/// Reasoning handling of a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Thinking {
    /// The prompt ends inside `<think>`: generation starts in reasoning.
    pub starts_in_reasoning: bool,
    /// Force `</think>` after this many reasoning tokens.
    pub budget: Option<usize>,
}

/// One generation.
#[derive(Debug)]
pub struct GenerationRequest {
    /// The prompt (rendered and tokenized by the caller).
    pub prompt: Vec<u32>,
    /// Sampling parameters.
    pub sampling: SamplingParams,
    /// Maximum generated tokens (`None`: until the context is full).
    pub max_tokens: Option<usize>,
    /// Stop strings (matched on plain generated text).
    pub stop: Vec<String>,
    /// Reasoning handling.
    pub thinking: Thinking,
    /// Alternatives per token to report with log-probabilities (0: none).
    pub top_logprobs: usize,
    /// Report the sampled token's log-probability.
    pub logprobs: bool,
    /// Keep generating after EOS (benchmarks).
    pub ignore_eos: bool,
    /// Decode the tokens of DSML tag structure greedily.
    pub greedy_dsml: bool,
    /// Route to the resident session with this key.
    pub session_key: Option<String>,
    /// Constrained decoding.
    pub mask: Option<Box<dyn LogitMask>>,
}

impl GenerationRequest {
    /// A request with default settings.
    pub fn new(prompt: Vec<u32>) -> Self {
        GenerationRequest {
            prompt,
            sampling: SamplingParams::default(),
            max_tokens: None,
            stop: Vec::new(),
            thinking: Thinking::default(),
            top_logprobs: 0,
            logprobs: false,
            ignore_eos: false,
            greedy_dsml: true,
            session_key: None,
            mask: None,
        }
    }
}

/// Why a generation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    /// The model emitted end-of-sequence.
    Eos,
    /// A stop string matched (the string).
    StopString(String),
    /// `max_tokens` reached.
    Length,
    /// The session's context is full.
    ContextFull,
    /// The constraint completed.
    MaskFinished,
    /// Cancelled by the caller or a disconnect.
    Cancelled,
}

/// Token counts and timings of a finished request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Prompt tokens served from a resident session without recomputation.
    pub cached_tokens: usize,
    /// Tokens re-evaluated to rewind to the shared prefix.
    pub replayed_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
    /// Generated tokens inside reasoning.
    pub reasoning_tokens: usize,
    /// Seconds spent evaluating the prompt.
    pub prefill_seconds: f64,
    /// Seconds spent generating.
    pub decode_seconds: f64,
}

/// One sampled token.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampled {
    /// Token id.
    pub id: u32,
    /// A special (control) token.
    pub special: bool,
    /// Text released with this token: for plain tokens the visible text (UTF-8
    /// completed, stop strings withheld); for special tokens their string.
    pub text: String,
    /// Log-probability, when requested.
    pub logprob: Option<f32>,
    /// Alternatives `(id, logprob)`, when requested.
    pub top: Vec<(u32, f32)>,
    /// The token was forced (thinking budget) rather than sampled.
    pub forced: bool,
}

/// An event of a running request.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenEvent {
    /// Admitted to a session; prompt evaluation starts.
    Started {
        /// Prompt tokens.
        prompt_tokens: usize,
        /// Prompt tokens reused from a resident session.
        cached_tokens: usize,
    },
    /// Prompt evaluation progress.
    Prefill {
        /// Tokens evaluated so far.
        done: usize,
        /// Tokens to evaluate.
        total: usize,
    },
    /// Plain text released late (held back for a stop string or an incomplete
    /// UTF-8 sequence) before a special token or the end.
    Text(String),
    /// A generated token.
    Token(Sampled),
    /// The end.
    Finished {
        /// Why.
        reason: FinishReason,
        /// Counts and timings.
        usage: Usage,
    },
    /// The request failed.
    Error(EngineError),
}

/// The caller's side of a submitted request.
#[derive(Debug)]
pub struct RequestHandle {
    /// Request id.
    pub id: u64,
    /// Events, ending with `Finished` or `Error`.
    pub events: UnboundedReceiver<TokenEvent>,
    cancel: Arc<AtomicBool>,
}

impl RequestHandle {
    pub(crate) fn new(
        id: u64,
        events: UnboundedReceiver<TokenEvent>,
        cancel: Arc<AtomicBool>,
    ) -> Self {
        RequestHandle { id, events, cancel }
    }

    /// Asks the engine to stop this request at the next chunk or step.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// A cancel flag that can be moved elsewhere (e.g. a Ctrl-C handler).
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancel)
    }

    /// Blocks until the next event (for synchronous callers such as the CLI).
    pub fn next_blocking(&mut self) -> Option<TokenEvent> {
        self.events.blocking_recv()
    }
}
