//! `dsv4 logits`: float32 logits `[n_tokens, vocab]` of a token sequence as .npy.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use dsv4_model::{Backend, KvFormat, Model, ModelOptions, run_sequence};

use super::common::CpuArgs;

/// Arguments of `dsv4 logits`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The model GGUF.
    #[arg(long)]
    pub(crate) model: PathBuf,
    /// Token ids separated by commas.
    #[arg(long, conflicts_with = "tokens_file")]
    pub(crate) tokens: Option<String>,
    /// A file of token ids separated by commas and/or whitespace.
    #[arg(long)]
    pub(crate) tokens_file: Option<PathBuf>,
    /// Output .npy file.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Feed the tokens this many at a time through the streaming path (1 = pure decode).
    #[arg(long)]
    pub(crate) chunk: Option<usize>,
    /// QAT simulation (FP8 KV rows, Hadamard + FP4 indexer).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub(crate) qat_sim: String,
    /// Exact f32 products from dequantized weights (verification mode).
    #[arg(long)]
    pub(crate) exact: bool,
    #[command(flatten)]
    pub(crate) cpu: CpuArgs,
}

/// Parses ids separated by commas and/or whitespace.
pub(crate) fn parse_ids(s: &str) -> Result<Vec<u32>> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<u32>()
                .with_context(|| format!("{p:?} is not a token id"))
        })
        .collect()
}

/// Writes a float32 C-order .npy file.
pub(crate) fn write_npy(path: &PathBuf, shape: &[usize], data: &[f32]) -> Result<()> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_s = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_s}, }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    f.write_all(b"\x93NUMPY\x01\x00")?;
    f.write_all(&(header.len() as u16).to_le_bytes())?;
    f.write_all(header.as_bytes())?;
    for v in data {
        f.write_all(&v.to_le_bytes())?;
    }
    f.flush()?;
    Ok(())
}

/// Runs the command.
pub(crate) fn run(a: &Args) -> Result<()> {
    let ids = match (&a.tokens, &a.tokens_file) {
        (Some(t), None) => parse_ids(t)?,
        (None, Some(f)) => parse_ids(
            &std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
        )?,
        _ => bail!("give the tokens with --tokens 1,2,3 or --tokens-file FILE"),
    };
    if ids.is_empty() {
        bail!("no token ids given");
    }
    let model = Model::load(
        &a.model,
        ModelOptions {
            qat_sim: a.qat_sim == "on",
        },
    )
    .with_context(|| format!("loading {}", a.model.display()))?;
    let be = a.cpu.backend(a.exact, KvFormat::F32, 0)?;
    let all = run_sequence(&model, &be, &ids, a.chunk.unwrap_or(0), None)?;
    write_npy(&a.out, &[ids.len(), model.cfg.n_vocab], &all)?;
    eprintln!(
        "wrote {} ({} × {}) with {}",
        a.out.display(),
        ids.len(),
        model.cfg.n_vocab,
        be.name()
    );
    Ok(())
}
