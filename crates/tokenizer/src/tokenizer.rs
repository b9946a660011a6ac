//! The [`Tokenizer`]: encoding text and segments, decoding ids.
//!
//! Owns the validated vocabulary (token bytes, kinds, the BPE merge table and
//! the resolved special-token ids) and the encode/decode entry points.
//!
//! Invariants, checked once when a tokenizer is built:
//! * every byte 0..=255 has a normal single-byte token, so any text encodes;
//! * every merge joins two normal tokens into the normal token whose bytes are
//!   their concatenation, so decoding an encoding gives the text back;
//! * every [`SpecialToken`] resolves to a non-normal token.
//!
//! Policy: [`Tokenizer::encode_text`] is plain byte-level BPE. It never looks
//! for special-token strings, so no text can become a control token; control
//! tokens enter a sequence only as [`Segment::Special`] from the renderer. No
//! BOS/EOS is ever added implicitly.

use std::borrow::Cow;

use rustc_hash::FxHashMap;

use crate::bpe::{Bpe, Scratch};
use crate::builtin;
use crate::error::TokenizerError;
use crate::pretokenize::pretokenize;
use crate::special::SpecialToken;
use crate::stream::StreamDecoder;
use crate::vocab::{self, Parts, TokenKind};

/// One part of a rendered prompt: a control token or plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A control token, emitted by the renderer only.
    Special(SpecialToken),
    /// Plain text; encoded with [`Tokenizer::encode_text`], never scanned for
    /// special-token strings.
    Text(String),
}

/// A DeepSeek V4 byte-level BPE tokenizer.
pub struct Tokenizer {
    data: Vec<u8>,
    offsets: Vec<u32>,
    kinds: Vec<TokenKind>,
    bpe: Bpe,
    merges: Vec<(u32, u32, u32)>,
    specials: [u32; SpecialToken::ALL.len()],
    special_of: FxHashMap<u32, SpecialToken>,
}

/// A vocabulary in GGUF metadata form (see [`Tokenizer::to_gguf_vocab`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufVocab {
    /// `tokenizer.ggml.tokens`.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.merges`.
    pub merges: Vec<String>,
    /// `tokenizer.ggml.token_type`.
    pub token_types: Vec<i32>,
    /// `tokenizer.ggml.pre`.
    pub pre: String,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("merges", &self.merges.len())
            .finish_non_exhaustive()
    }
}

impl Tokenizer {
    /// Loads the DeepSeek V4 vocabulary embedded in the crate (see
    /// [`crate::BUILTIN_SOURCE_SHA256`]). Takes tens of milliseconds; keep the
    /// result (it is `Send + Sync`).
    pub fn builtin() -> Result<Self, TokenizerError> {
        Self::from_parts(builtin::builtin_parts()?)
    }

    /// Builds a tokenizer from GGUF metadata arrays: `tokenizer.ggml.tokens`,
    /// `tokenizer.ggml.merges`, `tokenizer.ggml.token_type` and
    /// `tokenizer.ggml.pre` (`joyai-llm` or `deepseek-v3`). Strings may be
    /// `String` or `&str` (e.g. borrowed from a memory-mapped GGUF).
    pub fn from_gguf_vocab<S: AsRef<str>>(
        tokens: &[S],
        merges: &[S],
        token_types: &[i32],
        pre: &str,
    ) -> Result<Self, TokenizerError> {
        Self::from_parts(vocab::parts_from_gguf(tokens, merges, token_types, pre)?)
    }

    /// Builds a tokenizer from the bytes of a HF `tokenizer.json` with the
    /// DeepSeek V3/V4 pre-tokenizer.
    pub fn from_tokenizer_json(json: &[u8]) -> Result<Self, TokenizerError> {
        Self::from_parts(vocab::parts_from_tokenizer_json(json)?)
    }

    /// Validates `parts` (see the module invariants) and builds the tokenizer.
    pub(crate) fn from_parts(parts: Parts) -> Result<Self, TokenizerError> {
        let Parts {
            data,
            offsets,
            kinds,
            merges,
        } = parts;
        let n = kinds.len();
        if n == 0 || offsets.len() != n + 1 {
            return Err(TokenizerError::InvalidVocab("empty vocabulary".into()));
        }
        let bytes_of =
            |id: u32| &data[offsets[id as usize] as usize..offsets[id as usize + 1] as usize];

        let mut byte_ids = [u32::MAX; 256];
        for (id, kind) in kinds.iter().enumerate() {
            let id = id as u32; // n <= u32::MAX: offsets were built with u32 checks
            if *kind == TokenKind::Normal
                && let [b] = bytes_of(id)
                && byte_ids[usize::from(*b)] == u32::MAX
            {
                byte_ids[usize::from(*b)] = id;
            }
        }
        if let Some(b) = byte_ids.iter().position(|&id| id == u32::MAX) {
            return Err(TokenizerError::InvalidVocab(format!(
                "no normal token for byte 0x{b:02X}; a byte-level BPE vocabulary needs all 256"
            )));
        }

        for (rank, &(left, right, merged)) in merges.iter().enumerate() {
            let valid = [left, right, merged]
                .iter()
                .all(|&id| (id as usize) < n && kinds[id as usize] == TokenKind::Normal)
                && {
                    let (l, r, m) = (bytes_of(left), bytes_of(right), bytes_of(merged));
                    m.len() == l.len() + r.len() && m.starts_with(l) && m.ends_with(r)
                };
            if !valid {
                return Err(TokenizerError::InvalidVocab(format!(
                    "merge {rank} ({left}, {right}) -> {merged} does not join two normal tokens \
                     into their concatenation"
                )));
            }
        }

        let mut by_content: FxHashMap<&[u8], u32> = FxHashMap::default();
        for (id, kind) in kinds.iter().enumerate() {
            if kind.is_special() {
                by_content.entry(bytes_of(id as u32)).or_insert(id as u32);
            }
        }
        let mut specials = [0u32; SpecialToken::ALL.len()];
        let mut special_of = FxHashMap::default();
        for tok in SpecialToken::ALL {
            // llama.cpp's converter writes user-defined tokens with `▁` replaced by a space.
            let spaced = tok.content().replace('\u{2581}', " ");
            let id = by_content
                .get(tok.content().as_bytes())
                .or_else(|| by_content.get(spaced.as_bytes()))
                .copied()
                .ok_or(TokenizerError::MissingSpecialToken {
                    content: tok.content(),
                })?;
            specials[tok.index()] = id;
            special_of.insert(id, tok);
        }

        let bpe = Bpe::new(byte_ids, &merges);
        Ok(Self {
            data,
            offsets,
            kinds,
            bpe,
            merges,
            specials,
            special_of,
        })
    }

    /// Number of token ids (129 280 for DeepSeek V4).
    pub fn vocab_size(&self) -> usize {
        self.kinds.len()
    }

    /// Encodes plain text with byte-level BPE. Special-token strings in `text`
    /// are ordinary text. No BOS/EOS is added.
    pub fn encode_text(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 4);
        self.encode_text_into(text, &mut out);
        out
    }

    /// Like [`Self::encode_text`], appending to `out`.
    pub fn encode_text_into(&self, text: &str, out: &mut Vec<u32>) {
        let mut scratch = Scratch::default();
        let bytes = text.as_bytes();
        pretokenize(text, |start, end| {
            self.bpe.encode(&bytes[start..end], &mut scratch, out);
        });
    }

    /// Encodes rendered segments: control tokens by id, text as plain text.
    /// Adjacent text segments should already be merged by the renderer (BPE
    /// over one contiguous text can differ from BPE over its parts).
    pub fn encode_segments(&self, segments: &[Segment]) -> Vec<u32> {
        let mut out = Vec::new();
        for segment in segments {
            match segment {
                Segment::Special(tok) => out.push(self.special_id(*tok)),
                Segment::Text(text) => self.encode_text_into(text, &mut out),
            }
        }
        out
    }

    /// The id of a special token in this vocabulary.
    pub fn special_id(&self, token: SpecialToken) -> u32 {
        self.specials[token.index()]
    }

    /// Which [`SpecialToken`] `id` is, if it is one of them.
    pub fn special_token(&self, id: u32) -> Option<SpecialToken> {
        self.special_of.get(&id).copied()
    }

    /// Whether `id` is an added/special token (any non-normal kind). Unknown ids
    /// are not special.
    pub fn is_special(&self, id: u32) -> bool {
        self.token_kind(id).is_some_and(TokenKind::is_special)
    }

    /// The kind of token `id`, or `None` if it is outside the vocabulary.
    pub fn token_kind(&self, id: u32) -> Option<TokenKind> {
        self.kinds.get(id as usize).copied()
    }

    /// The bytes token `id` stands for (raw bytes for normal tokens, the UTF-8
    /// text for special ones). A normal token may be part of a UTF-8 sequence.
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        let i = id as usize;
        let start = *self.offsets.get(i)? as usize;
        let end = *self.offsets.get(i + 1)? as usize;
        Some(&self.data[start..end])
    }

    /// Token `id` as display text: its bytes as UTF-8, with U+FFFD for bytes
    /// that are only part of a character.
    pub fn token_to_piece(&self, id: u32) -> Option<Cow<'_, str>> {
        self.token_bytes(id).map(String::from_utf8_lossy)
    }

    /// Concatenated bytes of `ids`.
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>, TokenizerError> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            out.extend_from_slice(self.bytes_or_err(id)?);
        }
        Ok(out)
    }

    /// Decodes `ids` to text; special tokens appear as their strings and invalid
    /// UTF-8 as U+FFFD. `decode(&encode_text(s)) == s` for every string `s`.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        let bytes = self.decode_bytes(ids)?;
        Ok(match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    /// An incremental decoder for generated ids.
    pub fn stream_decoder(&self) -> StreamDecoder<'_> {
        StreamDecoder::new(self)
    }

    /// The vocabulary as GGUF tokenizer metadata (`tokenizer.ggml.model` = `gpt2`,
    /// `tokenizer.ggml.pre` = `joyai-llm`); [`Self::from_gguf_vocab`] of the
    /// result encodes identically.
    pub fn to_gguf_vocab(&self) -> GgufVocab {
        let mut tokens = Vec::with_capacity(self.vocab_size());
        let mut token_types = Vec::with_capacity(self.vocab_size());
        for (id, kind) in self.kinds.iter().enumerate() {
            let bytes = &self.data[self.offsets[id] as usize..self.offsets[id + 1] as usize];
            tokens.push(match kind {
                TokenKind::Normal => crate::bytelevel::encode_token(bytes),
                _ => String::from_utf8_lossy(bytes).into_owned(),
            });
            token_types.push(match kind {
                TokenKind::Normal => 1,
                TokenKind::Control => 3,
                TokenKind::UserDefined => 4,
                TokenKind::Unused => 5,
            });
        }
        let merges = self
            .merges
            .iter()
            .map(|&(l, r, _)| format!("{} {}", tokens[l as usize], tokens[r as usize]))
            .collect();
        GgufVocab {
            tokens,
            merges,
            token_types,
            pre: vocab::SUPPORTED_GGUF_PRE[0].to_owned(),
        }
    }

    pub(crate) fn bytes_or_err(&self, id: u32) -> Result<&[u8], TokenizerError> {
        self.token_bytes(id).ok_or(TokenizerError::UnknownTokenId {
            id,
            vocab_size: self.vocab_size(),
        })
    }
}
