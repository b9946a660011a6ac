//! `dsv4 tokenize` and `dsv4 detokenize`: text ↔ token ids.
//!
//! The tokenizer is the DeepSeek V4 vocabulary embedded in `dsv4-tokenizer`, or,
//! with `--model F.gguf`, the one described by that file's `tokenizer.ggml.*`
//! metadata. Text is always encoded as plain text: special-token strings in it
//! stay ordinary text (only the chat renderer emits control tokens).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use dsv4_gguf::GgufFile;
use dsv4_tokenizer::Tokenizer;

/// Arguments of `dsv4 tokenize`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["text", "file"])))]
pub(crate) struct TokenizeArgs {
    /// Read the tokenizer from this GGUF file's metadata (default: the embedded
    /// DeepSeek V4 vocabulary).
    #[arg(long, value_name = "F")]
    pub(crate) model: Option<PathBuf>,
    /// The text to tokenize.
    #[arg(long, value_name = "T")]
    pub(crate) text: Option<String>,
    /// Tokenize the whole content of this UTF-8 file as one text.
    #[arg(long, value_name = "F")]
    pub(crate) file: Option<PathBuf>,
    /// Print one JSON array of ids instead of a listing.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Arguments of `dsv4 detokenize`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["ids", "file"])))]
pub(crate) struct DetokenizeArgs {
    /// Read the tokenizer from this GGUF file's metadata (default: the embedded
    /// DeepSeek V4 vocabulary).
    #[arg(long, value_name = "F")]
    pub(crate) model: Option<PathBuf>,
    /// Comma-separated ids, e.g. `--ids 0,19923,3`.
    #[arg(long, value_name = "IDS")]
    pub(crate) ids: Option<String>,
    /// A file of ids (a JSON array, or ids separated by commas or whitespace).
    #[arg(long, value_name = "F")]
    pub(crate) file: Option<PathBuf>,
}

/// Loads the tokenizer from a GGUF file's metadata, or the embedded vocabulary.
pub(crate) fn load_tokenizer(model: Option<&Path>) -> Result<Tokenizer> {
    let Some(path) = model else {
        return Tokenizer::builtin().context("loading the embedded DeepSeek V4 vocabulary");
    };
    let file = GgufFile::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let md = file.metadata();
    let key = |k: &'static str| move || format!("{}: metadata key `{k}`", path.display());
    let kind = md
        .string("tokenizer.ggml.model")
        .with_context(key("tokenizer.ggml.model"))?;
    if kind != "gpt2" {
        bail!(
            "{}: `tokenizer.ggml.model` is {kind:?}, but DeepSeek V4 uses a byte-level BPE \
             (\"gpt2\") tokenizer",
            path.display()
        );
    }
    let tokens = md
        .strings("tokenizer.ggml.tokens")
        .with_context(key("tokenizer.ggml.tokens"))?;
    let merges = md
        .strings("tokenizer.ggml.merges")
        .with_context(key("tokenizer.ggml.merges"))?;
    let types = md
        .ints("tokenizer.ggml.token_type")
        .with_context(key("tokenizer.ggml.token_type"))?
        .into_iter()
        .map(i32::try_from)
        .collect::<Result<Vec<i32>, _>>()
        .with_context(key("tokenizer.ggml.token_type"))?;
    let pre = md
        .string("tokenizer.ggml.pre")
        .with_context(key("tokenizer.ggml.pre"))?;
    Tokenizer::from_gguf_vocab(&tokens, &merges, &types, pre)
        .with_context(|| format!("{}: tokenizer metadata", path.display()))
}

/// Makes a token's bytes readable on one line: escapes control characters,
/// quotes and backslashes, and shows bytes that are not (yet) UTF-8 as `\xNN`.
pub(crate) fn escape_piece(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                c if c.is_control()
                    || (c.is_whitespace() && c != ' ')
                    || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}') =>
                {
                    out.push_str(&format!("\\u{{{:x}}}", c as u32));
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

/// Runs `dsv4 tokenize`.
pub(crate) fn run_tokenize(a: &TokenizeArgs) -> Result<()> {
    let text = match (&a.text, &a.file) {
        (Some(text), _) => text.clone(),
        (None, Some(path)) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            String::from_utf8(bytes).map_err(|e| {
                anyhow::anyhow!(
                    "{} is not UTF-8 text (invalid byte at offset {})",
                    path.display(),
                    e.utf8_error().valid_up_to()
                )
            })?
        }
        (None, None) => bail!("give --text or --file"),
    };
    let tok = load_tokenizer(a.model.as_deref())?;
    let ids = tok.encode_text(&text);
    let out = &mut std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string(&ids)?)?;
        return Ok(());
    }
    for &id in &ids {
        let bytes = tok.token_bytes(id).unwrap_or_default();
        writeln!(out, "{id:>7}  \"{}\"", escape_piece(bytes))?;
    }
    writeln!(out, "{} tokens, {} bytes", ids.len(), text.len())?;
    Ok(())
}

/// Parses ids separated by commas and/or whitespace, optionally in `[...]`.
pub(crate) fn parse_ids(text: &str) -> Result<Vec<u32>> {
    let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
    inner
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>()
                .with_context(|| format!("{s:?} is not a token id"))
        })
        .collect()
}

/// Runs `dsv4 detokenize`: prints the decoded text exactly (no newline added).
pub(crate) fn run_detokenize(a: &DetokenizeArgs) -> Result<()> {
    let ids = match (&a.ids, &a.file) {
        (Some(list), _) => parse_ids(list)?,
        (None, Some(path)) => parse_ids(
            &std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        )?,
        (None, None) => bail!("give --ids or --file"),
    };
    let tok = load_tokenizer(a.model.as_deref())?;
    let text = tok.decode(&ids)?;
    let out = &mut std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_pieces() {
        assert_eq!(parse_ids("[0, 19923,3]\n").unwrap(), [0, 19923, 3]);
        assert_eq!(parse_ids("1 2\t3").unwrap(), [1, 2, 3]);
        assert!(parse_ids("1,x").is_err());
        assert_eq!(escape_piece(b" a\n\"\\"), " a\\n\\\"\\\\");
        assert_eq!(escape_piece(&[0xE4, 0xB8]), "\\xE4\\xB8");
        assert_eq!(
            escape_piece("\u{200D}\u{3000}".as_bytes()),
            "\\u{200d}\\u{3000}"
        );
    }
}
