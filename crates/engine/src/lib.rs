//! The engine: turns the forward pass into something people use.
//!
//! [`Engine`] owns the model, backend, tokenizer and an engine thread holding
//! several resident [`Session`]s. Requests are routed to the session sharing
//! the longest prefix (or named by a session key), rewound cheaply through
//! frontier checkpoints, prefilled in chunks interleaved fairly with other
//! sessions, and decoded together in one batched pass. Sampling, stop strings,
//! thinking budgets and constrained-decoding masks are applied per request.
//! This is the narrow public boundary used by the server and the CLI.

pub mod bench;
pub mod demo;
pub mod detok;
mod engine;
pub mod error;
pub mod plan;
pub mod request;
pub mod sampling;
pub mod session;
pub mod stats;
pub mod stop;
mod worker;

pub use engine::{Engine, EngineConfig, EngineInfo, tokenizer_for};
pub use error::{EngineError, Result};
pub use request::{
    FinishReason, GenerationRequest, RequestHandle, Sampled, Thinking, TokenEvent, Usage,
};
pub use sampling::{LogitMask, SamplingParams};
pub use session::{CheckpointPolicy, Session};
pub use stats::StatsSnapshot;

/// Re-exported model types the front ends need (kernel selection, KV format).
pub use dsv4_model::KvFormat;
pub use dsv4_quant::{Isa, Kernels};
