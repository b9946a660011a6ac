//! DeepSeek V4 tokenizer, chat encoding and DSML output parsing.
//!
//! A pure leaf crate (no other dsv4 crate, no I/O beyond its embedded data):
//!
//! * [`Tokenizer`]: byte-level BPE with the exact DeepSeek V3/V4 pre-tokenizer
//!   (Unicode 16.0 categories, checked against HF `tokenizers`), built from the
//!   embedded DeepSeek V4 vocabulary ([`Tokenizer::builtin`]), from GGUF metadata
//!   arrays ([`Tokenizer::from_gguf_vocab`]) or from a HF `tokenizer.json`
//!   ([`Tokenizer::from_tokenizer_json`]). Encoding ids equal HF `tokenizers` on
//!   a 2 MB multilingual corpus (tests/tokenizer_golden.rs).
//! * Special tokens ([`SpecialToken`]) enter a sequence only through
//!   [`Segment::Special`] produced by the renderer: plain text is never scanned
//!   for special strings, so prompt injection of control tokens is impossible.
//! * [`StreamDecoder`]: incremental decoding that never splits a character.
//! * [`chat`]: the prompt renderer, byte-identical to DeepSeek's official
//!   `encoding_dsv4.py` (April release), plus effort levels per checkpoint.
//! * [`dsml`]: DSML tool-call rendering and the streaming output parser that
//!   separates reasoning, content and tool calls.
//!
//! The model format is described in the project's `model-spec.md` §9.

mod bpe;
mod builtin;
mod bytelevel;
mod charclass;
mod error;
mod pretokenize;
mod special;
mod stream;
mod tokenizer;
mod unicode_tables;
mod vocab;

pub mod chat;
pub mod dsml;
mod pyjson;

pub use builtin::BUILTIN_SOURCE_SHA256;
pub use error::{RenderError, TokenizerError};
pub use special::SpecialToken;
pub use stream::{DecodedToken, StreamDecoder};
pub use tokenizer::{GgufVocab, Segment, Tokenizer};
pub use vocab::TokenKind;

/// Unicode version of the pre-tokenizer's category tables.
pub const UNICODE_VERSION: &str = unicode_tables::UNICODE_VERSION;

/// Converts raw token bytes to the byte-level string form used in GGUF
/// `tokenizer.ggml.tokens` and tokenizer.json vocabularies (GPT-2 byte map).
pub fn bytes_to_bytelevel(bytes: &[u8]) -> String {
    bytelevel::encode_token(bytes)
}
