//! Incremental detokenization for streamed generation.
//!
//! Owns [`StreamDecoder`], which turns generated ids into text one id at a time
//! without ever emitting part of a UTF-8 sequence: bytes of an incomplete
//! character are held until the character completes. Bytes that can never form
//! a character (and an incomplete sequence cut off by a special token or by
//! [`StreamDecoder::finish`]) become U+FFFD, exactly as [`crate::Tokenizer::decode`]
//! renders them, so the concatenated output of a stream equals `decode` of all
//! its ids. It does not interpret the text (see [`crate::dsml::OutputParser`]).

use crate::error::TokenizerError;
use crate::special::SpecialToken;
use crate::tokenizer::Tokenizer;

/// The text one generated id contributed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedToken {
    /// The id.
    pub id: u32,
    /// Complete UTF-8 text released by this id (may be empty while a character
    /// is incomplete, or hold text from earlier ids that completes here). For a
    /// special token, its string.
    pub text: String,
    /// Whether the id is an added/special token.
    pub special: bool,
    /// Which [`SpecialToken`] it is, if it is one the chat format names.
    pub special_token: Option<SpecialToken>,
}

/// Incremental decoder; see the module documentation.
#[derive(Debug)]
pub struct StreamDecoder<'t> {
    tokenizer: &'t Tokenizer,
    pending: Vec<u8>,
}

impl<'t> StreamDecoder<'t> {
    /// A decoder with nothing pending.
    pub fn new(tokenizer: &'t Tokenizer) -> Self {
        Self {
            tokenizer,
            pending: Vec::new(),
        }
    }

    /// Feeds one id and returns the text it releases.
    pub fn push(&mut self, id: u32) -> Result<DecodedToken, TokenizerError> {
        let bytes = self.tokenizer.bytes_or_err(id)?;
        let special = self.tokenizer.is_special(id);
        let mut text = String::new();
        if special {
            self.flush_lossy(&mut text);
            text.push_str(&String::from_utf8_lossy(bytes));
        } else {
            self.pending.extend_from_slice(bytes);
            self.release_complete(&mut text);
        }
        Ok(DecodedToken {
            id,
            text,
            special,
            special_token: self.tokenizer.special_token(id),
        })
    }

    /// Bytes held back because they end in an incomplete character.
    pub fn pending_bytes(&self) -> &[u8] {
        &self.pending
    }

    /// Ends the stream: an incomplete trailing character becomes U+FFFD.
    pub fn finish(&mut self) -> String {
        let mut text = String::new();
        self.flush_lossy(&mut text);
        text
    }

    /// Moves every complete character (and U+FFFD for invalid bytes) from
    /// `pending` to `out`, keeping only an incomplete tail.
    fn release_complete(&mut self, out: &mut String) {
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(valid) => {
                    out.push_str(valid);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid_end = start + e.valid_up_to();
                    // The prefix up to `valid_up_to` is valid UTF-8 by definition.
                    out.push_str(&String::from_utf8_lossy(&self.pending[start..valid_end]));
                    match e.error_len() {
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            start = valid_end + bad;
                        }
                        None => {
                            start = valid_end;
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..start);
    }

    fn flush_lossy(&mut self, out: &mut String) {
        if !self.pending.is_empty() {
            out.push_str(&String::from_utf8_lossy(&self.pending));
            self.pending.clear();
        }
    }
}
