//! Engine errors: what went wrong with a request or with starting the engine.

use dsv4_model::ModelError;
use dsv4_tokenizer::TokenizerError;

/// An engine error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The model failed (load or evaluation).
    #[error("model: {0}")]
    Model(String),
    /// The tokenizer failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A request is invalid (the message says which field).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The prompt does not fit the context.
    #[error(
        "the prompt has {prompt} tokens but the context holds {ctx}; shorten the conversation or raise --ctx"
    )]
    ContextOverflow {
        /// Prompt tokens.
        prompt: usize,
        /// Context size.
        ctx: usize,
    },
    /// Not enough memory for the configuration.
    #[error("{0}")]
    OutOfMemory(String),
    /// The engine thread is gone.
    #[error("the engine has stopped")]
    Stopped,
    /// A session file could not be saved or loaded.
    #[error("session file: {0}")]
    SessionFile(String),
    /// A constraint rejected every token or failed.
    #[error("constrained decoding: {0}")]
    Constraint(String),
}

impl From<ModelError> for EngineError {
    fn from(e: ModelError) -> Self {
        EngineError::Model(e.to_string())
    }
}

impl From<TokenizerError> for EngineError {
    fn from(e: TokenizerError) -> Self {
        EngineError::Tokenizer(e.to_string())
    }
}

/// Result alias.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
