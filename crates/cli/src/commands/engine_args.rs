//! Flags shared by the commands that start an engine (`run`, `chat`, `bench`),
//! and their resolution into a running [`Engine`].

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use dsv4_engine::{Engine, EngineConfig, KvFormat, tokenizer_for};
use dsv4_model::{Model, ModelOptions};

use super::common::CpuArgs;

/// How to get a model, and how to run it.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct EngineArgs {
    /// The model GGUF (DeepSeek V4 Flash in llama.cpp's deepseek4 layout).
    #[arg(long, short = 'm')]
    pub(crate) model: Option<PathBuf>,
    /// Use the built-in random-weight demo model (no download; output is gibberish).
    #[arg(long, conflicts_with = "model")]
    pub(crate) demo: bool,
    /// Context per session, in tokens.
    #[arg(long, default_value_t = 32768)]
    pub(crate) ctx: usize,
    /// QAT simulation (FP8 KV rows, Hadamard + FP4 indexer; compact KV needs it).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub(crate) qat_sim: String,
    /// KV storage: compact (FP8/FP4, ~3.5 KB/token on Flash) or f32.
    #[arg(long, default_value = "compact", value_parser = ["compact", "f32"])]
    pub(crate) kv: String,
    /// Prompt tokens per forward pass.
    #[arg(long, default_value_t = 128)]
    pub(crate) prefill_chunk: usize,
    /// Run even if the memory plan does not fit in RAM.
    #[arg(long)]
    pub(crate) no_mem_check: bool,
    /// Read the whole model into the page cache at start (progress bar), so the
    /// first tokens do not wait on the disk.
    #[arg(long)]
    pub(crate) warm: bool,
    #[command(flatten)]
    pub(crate) cpu: CpuArgs,
}

/// What to tell a user who gave neither `--model` nor `--demo`.
pub(crate) const NO_MODEL: &str = "no model given. Pass --model FILE.gguf with DeepSeek V4 Flash weights in llama.cpp's \
`deepseek4` GGUF layout (for example antirez's deepseek-v4-gguf files on Hugging Face — the q2 file is about 81 GiB and \
needs a 128 GB machine — or a ggml-org/unsloth conversion), or try the whole pipeline in seconds with --demo \
(a built-in random-weight model: it runs every part of the engine but its output is gibberish).";

impl EngineArgs {
    /// The engine configuration these flags describe.
    pub(crate) fn config(&self, sessions: usize) -> Result<EngineConfig> {
        let qat = self.qat_sim == "on";
        let kv_format = if self.kv == "f32" {
            KvFormat::F32
        } else {
            KvFormat::Compact
        };
        if kv_format == KvFormat::Compact && !qat {
            bail!("--kv compact stores KV rows on the QAT grids; with --qat-sim off use --kv f32");
        }
        Ok(EngineConfig {
            ctx: self.ctx,
            sessions,
            prefill_chunk: self.prefill_chunk,
            threads: self.cpu.threads,
            kernels: Some(self.cpu.kernel_table()?),
            qat_sim: qat,
            exact: false,
            kv_format,
            memory_check: !self.no_mem_check,
            pack_weights: !self.cpu.no_pack,
            ..Default::default()
        })
    }

    /// Starts the engine.
    pub(crate) fn start(&self, sessions: usize) -> Result<Engine> {
        let cfg = self.config(sessions)?;
        if self.demo {
            eprintln!("dsv4: building the demo model (random weights, real tokenizer)…");
            return Ok(dsv4_engine::demo::demo_engine(cfg)?);
        }
        let Some(path) = &self.model else {
            bail!("{NO_MODEL}")
        };
        let model = Model::load(
            path,
            ModelOptions {
                qat_sim: cfg.qat_sim,
            },
        )
        .with_context(|| format!("loading {}", path.display()))?;
        if self.warm {
            warm(&model);
        }
        let tok = tokenizer_for(model.file(), model.cfg.n_vocab)?;
        let be = cfg.cpu_backend()?;
        Engine::start(model, be, tok, cfg)
            .with_context(|| format!("starting the engine on {}", path.display()))
    }
}

/// Pages the model in with a progress bar.
pub(crate) fn warm(model: &Model) {
    let total: u64 = model.file().tensors().iter().map(|t| t.size_bytes).sum();
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "warming {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    model.warm(|done, _| bar.set_position(done));
    bar.finish_and_clear();
}
