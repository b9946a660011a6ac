//! Vocabulary sources: GGUF metadata arrays and HF `tokenizer.json`.
//!
//! Owns [`Parts`], the source-independent description of a byte-level BPE
//! vocabulary (token bytes, token kinds, merges as id triples), and the two
//! converters that produce it:
//! * GGUF: `tokenizer.ggml.tokens` (byte-level strings for normal tokens, literal
//!   text for control/user-defined ones), `tokenizer.ggml.token_type`
//!   (llama.cpp `llama_token_type`: 1 normal, 2 unknown, 3 control,
//!   4 user-defined, 5 unused, 6 byte), `tokenizer.ggml.merges` (`"left right"`)
//!   and `tokenizer.ggml.pre`;
//! * `tokenizer.json`: `model.vocab`, `model.merges` (strings or pairs) and
//!   `added_tokens`, after checking that the normaliser, pre-tokenizer and BPE
//!   options are the DeepSeek V3/V4 ones this crate implements.
//!
//! Validation (byte tables, merge consistency, special tokens) happens once, in
//! [`crate::Tokenizer::from_parts`]. Reading GGUF files is not done here.

use rustc_hash::FxHashMap;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::bytelevel;
use crate::error::TokenizerError;

/// What kind of vocabulary entry a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// An ordinary byte-level BPE token; produced by plain-text encoding.
    Normal,
    /// A control token (HF added token with `special = true`, GGUF type 3).
    Control,
    /// A user-defined added token (HF `special = false`, GGUF type 4), such as
    /// `<｜User｜>` or `<think>` in DeepSeek V4.
    UserDefined,
    /// An id with no usable token (GGUF types 2 and 5, or a hole in tokenizer.json).
    Unused,
}

impl TokenKind {
    /// Whether the token is an added/special token (anything but [`Self::Normal`]).
    pub fn is_special(self) -> bool {
        self != Self::Normal
    }
}

/// A vocabulary in source-independent form.
#[derive(Debug, Default)]
pub(crate) struct Parts {
    /// Concatenated token bytes; token `i` is `data[offsets[i]..offsets[i + 1]]`.
    pub(crate) data: Vec<u8>,
    /// `n_tokens + 1` offsets into `data`.
    pub(crate) offsets: Vec<u32>,
    /// Kind of each token.
    pub(crate) kinds: Vec<TokenKind>,
    /// `(left, right, merged)` by rank.
    pub(crate) merges: Vec<(u32, u32, u32)>,
}

impl Parts {
    pub(crate) fn with_capacity(n_tokens: usize, n_merges: usize) -> Self {
        let mut offsets = Vec::with_capacity(n_tokens + 1);
        offsets.push(0);
        Self {
            data: Vec::with_capacity(n_tokens * 8),
            offsets,
            kinds: Vec::with_capacity(n_tokens),
            merges: Vec::with_capacity(n_merges),
        }
    }

    pub(crate) fn push_token(
        &mut self,
        bytes: &[u8],
        kind: TokenKind,
    ) -> Result<(), TokenizerError> {
        self.data.extend_from_slice(bytes);
        let end = u32::try_from(self.data.len())
            .map_err(|_| TokenizerError::InvalidVocab("token data exceeds 4 GiB".into()))?;
        self.offsets.push(end);
        self.kinds.push(kind);
        Ok(())
    }
}

/// Pre-tokenizer names (GGUF `tokenizer.ggml.pre`) that mean the DeepSeek V3/V4 rules.
pub(crate) const SUPPORTED_GGUF_PRE: [&str; 2] = ["joyai-llm", "deepseek-v3"];

/// Builds [`Parts`] from GGUF tokenizer metadata arrays.
pub(crate) fn parts_from_gguf<S: AsRef<str>>(
    tokens: &[S],
    merges: &[S],
    token_types: &[i32],
    pre: &str,
) -> Result<Parts, TokenizerError> {
    if !SUPPORTED_GGUF_PRE.contains(&pre) {
        return Err(TokenizerError::UnsupportedPreTokenizer(format!(
            "`tokenizer.ggml.pre` = {pre:?}"
        )));
    }
    if tokens.len() != token_types.len() {
        return Err(TokenizerError::InvalidVocab(format!(
            "`tokenizer.ggml.tokens` has {} entries but `tokenizer.ggml.token_type` has {}",
            tokens.len(),
            token_types.len()
        )));
    }
    let mut parts = Parts::with_capacity(tokens.len(), merges.len());
    let mut normal_ids: FxHashMap<&str, u32> = FxHashMap::default();
    for (id, (text, &ty)) in tokens.iter().zip(token_types).enumerate() {
        let text = text.as_ref();
        let kind = match ty {
            1 => TokenKind::Normal,
            3 => TokenKind::Control,
            4 => TokenKind::UserDefined,
            2 | 5 => TokenKind::Unused,
            other => {
                return Err(TokenizerError::InvalidVocab(format!(
                    "token {id} {text:?} has token type {other}; a byte-level BPE vocabulary \
                     uses types 1-5 (6 = byte tokens belong to SentencePiece vocabularies)"
                )));
            }
        };
        if kind == TokenKind::Normal {
            let bytes = bytelevel::decode_token(text).ok_or_else(|| {
                TokenizerError::InvalidVocab(format!(
                    "normal token {id} {text:?} is not a byte-level BPE string"
                ))
            })?;
            parts.push_token(&bytes, kind)?;
            normal_ids.insert(text, id_u32(id)?);
        } else {
            parts.push_token(text.as_bytes(), kind)?;
        }
    }
    let mut joined = String::new();
    for (rank, merge) in merges.iter().enumerate() {
        let merge = merge.as_ref();
        let (left, right) = merge
            .split_once(' ')
            .ok_or_else(|| bad_merge(rank, merge))?;
        joined.clear();
        joined.push_str(left);
        joined.push_str(right);
        let get = |s: &str| {
            normal_ids
                .get(s)
                .copied()
                .ok_or_else(|| bad_merge(rank, merge))
        };
        parts.merges.push((get(left)?, get(right)?, get(&joined)?));
    }
    Ok(parts)
}

fn bad_merge(rank: usize, merge: &str) -> TokenizerError {
    TokenizerError::InvalidVocab(format!(
        "merge {rank} {merge:?} is not two normal tokens whose concatenation is a token"
    ))
}

fn id_u32(id: usize) -> Result<u32, TokenizerError> {
    u32::try_from(id).map_err(|_| TokenizerError::InvalidVocab("more than 2^32 tokens".into()))
}

#[derive(Deserialize)]
struct TokenizerJson {
    #[serde(default)]
    added_tokens: Vec<AddedToken>,
    #[serde(default)]
    normalizer: Value,
    #[serde(default)]
    pre_tokenizer: Value,
    model: ModelJson,
}

#[derive(Deserialize)]
struct AddedToken {
    id: u32,
    content: String,
    #[serde(default)]
    special: bool,
}

#[derive(Deserialize)]
struct ModelJson {
    #[serde(rename = "type")]
    kind: String,
    vocab: std::collections::HashMap<String, u32>,
    merges: Vec<MergeJson>,
    #[serde(default)]
    ignore_merges: bool,
    #[serde(default)]
    byte_fallback: bool,
    #[serde(default)]
    dropout: Option<f64>,
    #[serde(default)]
    continuing_subword_prefix: Option<String>,
    #[serde(default)]
    end_of_word_suffix: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum MergeJson {
    Joined(String),
    Pair(String, String),
}

/// The three regexes of the DeepSeek V3/V4 pre-tokenizer, as tokenizer.json spells them.
const DEEPSEEK_REGEXES: [&str; 3] = [
    "\\p{N}{1,3}",
    "[一-龥぀-ゟ゠-ヿ]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
];

fn check_pre_tokenizer(pre: &Value) -> Result<(), TokenizerError> {
    let unsupported = |why: &str| TokenizerError::UnsupportedPreTokenizer(format!("({why})"));
    let steps = pre
        .get("pretokenizers")
        .and_then(Value::as_array)
        .filter(|_| pre.get("type") == Some(&json!("Sequence")))
        .ok_or_else(|| unsupported("expected a Sequence pre-tokenizer"))?;
    if steps.len() != 4 {
        return Err(unsupported("expected three Split steps and ByteLevel"));
    }
    for (step, regex) in steps.iter().zip(DEEPSEEK_REGEXES) {
        let ok = step.get("type") == Some(&json!("Split"))
            && step.pointer("/pattern/Regex") == Some(&json!(regex))
            && step.get("behavior") == Some(&json!("Isolated"))
            && step.get("invert").is_none_or(|v| v == &json!(false));
        if !ok {
            return Err(unsupported(&format!("a Split step differs from `{regex}`")));
        }
    }
    let last = &steps[3];
    let ok = last.get("type") == Some(&json!("ByteLevel"))
        && last.get("add_prefix_space") == Some(&json!(false))
        && last.get("use_regex") == Some(&json!(false));
    if !ok {
        return Err(unsupported(
            "the last step must be ByteLevel without prefix space or regex",
        ));
    }
    Ok(())
}

fn check_normalizer(norm: &Value) -> Result<(), TokenizerError> {
    let empty_sequence = norm.get("type") == Some(&json!("Sequence"))
        && norm
            .get("normalizers")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty);
    if norm.is_null() || empty_sequence {
        Ok(())
    } else {
        Err(TokenizerError::InvalidVocab(format!(
            "unsupported normalizer {norm}; DeepSeek V4 has none"
        )))
    }
}

/// Builds [`Parts`] from the bytes of a HF `tokenizer.json`.
pub(crate) fn parts_from_tokenizer_json(json: &[u8]) -> Result<Parts, TokenizerError> {
    let doc: TokenizerJson = serde_json::from_slice(json)?;
    let model = &doc.model;
    if model.kind != "BPE" {
        return Err(TokenizerError::InvalidVocab(format!(
            "model type {:?}; only BPE is supported",
            model.kind
        )));
    }
    let plain_bpe = !model.ignore_merges
        && !model.byte_fallback
        && model.dropout.is_none()
        && model
            .continuing_subword_prefix
            .as_deref()
            .unwrap_or("")
            .is_empty()
        && model.end_of_word_suffix.as_deref().unwrap_or("").is_empty();
    if !plain_bpe {
        return Err(TokenizerError::InvalidVocab(
            "BPE options (ignore_merges, byte_fallback, dropout, subword affixes) must be off"
                .into(),
        ));
    }
    check_normalizer(&doc.normalizer)?;
    check_pre_tokenizer(&doc.pre_tokenizer)?;

    let max_id = model
        .vocab
        .values()
        .chain(doc.added_tokens.iter().map(|t| &t.id))
        .copied()
        .max()
        .ok_or_else(|| TokenizerError::InvalidVocab("empty vocabulary".into()))?;
    let n = max_id as usize + 1;
    let mut slots: Vec<Option<(Vec<u8>, TokenKind)>> = vec![None; n];
    // Entries that are also added tokens (BOS/EOS/pad in DeepSeek V4) are literal
    // text, set by the added-token pass below.
    let added: rustc_hash::FxHashSet<u32> = doc.added_tokens.iter().map(|t| t.id).collect();
    for (text, &id) in &model.vocab {
        if added.contains(&id) {
            continue;
        }
        let bytes = bytelevel::decode_token(text).ok_or_else(|| {
            TokenizerError::InvalidVocab(format!(
                "vocab entry {id} {text:?} is not a byte-level BPE string"
            ))
        })?;
        slots[id as usize] = Some((bytes, TokenKind::Normal));
    }
    for tok in &doc.added_tokens {
        let kind = if tok.special {
            TokenKind::Control
        } else {
            TokenKind::UserDefined
        };
        slots[tok.id as usize] = Some((tok.content.clone().into_bytes(), kind));
    }
    let mut parts = Parts::with_capacity(n, model.merges.len());
    for slot in &slots {
        match slot {
            Some((bytes, kind)) => parts.push_token(bytes, *kind)?,
            None => parts.push_token(b"", TokenKind::Unused)?,
        }
    }
    let normal = |s: &str| {
        model
            .vocab
            .get(s)
            .copied()
            .filter(|&id| parts.kinds[id as usize] == TokenKind::Normal)
    };
    let mut merges = Vec::with_capacity(model.merges.len());
    let mut joined = String::new();
    for (rank, merge) in model.merges.iter().enumerate() {
        let (left, right) = match merge {
            MergeJson::Joined(s) => s.split_once(' ').ok_or_else(|| bad_merge(rank, s))?,
            MergeJson::Pair(a, b) => (a.as_str(), b.as_str()),
        };
        joined.clear();
        joined.push_str(left);
        joined.push_str(right);
        let shown = || format!("{left} {right}");
        let get = |s: &str| normal(s).ok_or_else(|| bad_merge(rank, &shown()));
        merges.push((get(left)?, get(right)?, get(&joined)?));
    }
    parts.merges = merges;
    Ok(parts)
}
