//! Error types of the tokenizer crate.
//!
//! Owns [`TokenizerError`] (loading a vocabulary, encoding, decoding) and
//! [`RenderError`] (chat rendering). Messages name what is wrong and what to do.
//! Nothing here panics or logs.

/// Errors from building or using a [`crate::Tokenizer`].
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A token id outside the vocabulary was passed to a decoding function.
    #[error("token id {id} is outside the vocabulary (size {vocab_size})")]
    UnknownTokenId {
        /// The offending id.
        id: u32,
        /// Number of ids in the vocabulary.
        vocab_size: usize,
    },
    /// The vocabulary description is malformed or inconsistent.
    #[error("invalid vocabulary: {0}")]
    InvalidVocab(String),
    /// The GGUF `tokenizer.ggml.pre` or the tokenizer.json pre-tokenizer is not
    /// the DeepSeek V3/V4 one implemented here.
    #[error(
        "unsupported pre-tokenizer {0}: this tokenizer implements only the DeepSeek V3/V4 \
         pre-tokenizer (GGUF `tokenizer.ggml.pre` = `joyai-llm` or `deepseek-v3`)"
    )]
    UnsupportedPreTokenizer(String),
    /// A special token the chat format needs is missing from the vocabulary.
    #[error(
        "the vocabulary has no token {content:?}, which the DeepSeek V4 chat format needs; \
         is this a DeepSeek V4 vocabulary?"
    )]
    MissingSpecialToken {
        /// The token's text.
        content: &'static str,
    },
    /// The embedded or given compact vocabulary could not be decompressed or parsed.
    #[error("corrupt compact vocabulary: {0}")]
    CorruptCompactVocab(String),
    /// A tokenizer.json could not be parsed.
    #[error("cannot parse tokenizer.json: {0}")]
    Json(#[from] serde_json::Error),
}

/// Errors from rendering a chat conversation into a prompt.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The official encoder rejects developer messages without content.
    #[error("message {index}: a `developer` message must have non-empty content")]
    EmptyDeveloperMessage {
        /// Index of the message in the request.
        index: usize,
    },
    /// An effort name that is not one of none/minimal/low/medium/high/xhigh/max.
    #[error(
        "unknown reasoning effort {0:?}; use one of none, minimal, low, medium, high, xhigh, max"
    )]
    UnknownEffort(String),
    /// A `thinking_mode` / thinking switch value that is not understood.
    #[error("unknown thinking mode {0:?}; use \"thinking\" or \"chat\" (or a boolean)")]
    UnknownThinkingMode(String),
}
