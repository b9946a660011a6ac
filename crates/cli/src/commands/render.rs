//! `dsv4 render`: the exact prompt a chat request becomes.
//!
//! Reads an OpenAI-style chat request (messages, tools, response_format,
//! thinking / reasoning_effort and their usual spellings), resolves thinking
//! mode and effort for the chosen checkpoint, and prints the prompt text the
//! DeepSeek V4 chat format gives (byte-identical to DeepSeek's official
//! encoder), or its token ids with `--ids`.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use dsv4_tokenizer::chat::{ChatRequest, Checkpoint};

use super::tokenize::load_tokenizer;

/// Arguments of `dsv4 render`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The chat request as JSON (`-` reads standard input).
    #[arg(long, value_name = "REQ.json")]
    pub(crate) request: PathBuf,
    /// Reasoning effort, replacing the request's: none, minimal, low, medium,
    /// high, xhigh or max (`none` turns thinking off).
    #[arg(long, value_name = "E")]
    pub(crate) effort: Option<String>,
    /// Which release's effort table to use: april or 0731.
    #[arg(long, default_value = "april")]
    pub(crate) checkpoint: Checkpoint,
    /// Print the prompt's token ids as a JSON array instead of its text.
    #[arg(long)]
    pub(crate) ids: bool,
    /// With --ids: read the tokenizer from this GGUF file (default: embedded).
    #[arg(long, value_name = "F")]
    pub(crate) model: Option<PathBuf>,
}

/// Runs `dsv4 render`: prints the prompt exactly (no newline added).
pub(crate) fn run(a: &Args) -> Result<()> {
    let mut json = String::new();
    if a.request.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut json)
            .context("reading the request from stdin")?;
    } else {
        json = std::fs::read_to_string(&a.request)
            .with_context(|| format!("cannot read {}", a.request.display()))?;
    }
    let request: ChatRequest = serde_json::from_str(&json)
        .with_context(|| format!("{} is not a chat request", a.request.display()))?;
    let options = request.options(a.checkpoint, a.effort.as_deref(), None)?;
    let prompt = request.render(&options)?;
    let out = &mut std::io::stdout().lock();
    if a.ids {
        let tok = load_tokenizer(a.model.as_deref())?;
        writeln!(out, "{}", serde_json::to_string(&prompt.encode(&tok))?)?;
    } else {
        out.write_all(prompt.text().as_bytes())?;
    }
    out.flush()?;
    Ok(())
}
