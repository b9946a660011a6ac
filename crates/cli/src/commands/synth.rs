//! `dsv4 synth`: write a synthetic random-weight DeepSeek V4 model.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use dsv4_model::synth::{Preset, QuantMix, SynthSpec, VocabMeta, build_writer, preset_config};

/// Arguments of `dsv4 synth`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// tiny (tests, demo), slice (Flash dimensions, few layers/experts), flash (full shape).
    #[arg(long, default_value = "tiny")]
    pub(crate) preset: String,
    /// Number of layers (pattern SWA, CSA, HCA, CSA, …).
    #[arg(long)]
    pub(crate) layers: Option<usize>,
    /// Routed experts per layer.
    #[arg(long)]
    pub(crate) experts: Option<usize>,
    /// Quantization mix: f32, f16, bf16, q8_0, q2 (ds4's q2 file), q4, mxfp4.
    #[arg(long, default_value = "q8_0")]
    pub(crate) quant: String,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Only print the planned size (use for `--preset flash`).
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Output file.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
}

/// Runs the command.
pub(crate) fn run(a: &Args) -> Result<()> {
    let Some(preset) = Preset::parse(&a.preset) else {
        bail!("unknown preset {:?}; use tiny, slice or flash", a.preset)
    };
    let Some(mix) = QuantMix::parse(&a.quant) else {
        bail!(
            "unknown quant mix {:?}; use one of {}",
            a.quant,
            QuantMix::NAMES.join(", ")
        )
    };
    let vocab = builtin_vocab()?;
    let cfg = preset_config(preset, vocab.tokens.len(), a.layers, a.experts);
    let spec = SynthSpec {
        cfg,
        mix,
        seed: a.seed,
        name: format!("dsv4-synth-{}-{}", a.preset, a.quant),
    };
    let w = build_writer(&spec, &vocab)?;
    let size = w.file_size();
    println!(
        "{}: {}, {:.2} GiB",
        spec.name,
        spec.cfg.summary(),
        size as f64 / (1u64 << 30) as f64
    );
    if a.dry_run {
        return Ok(());
    }
    let Some(out) = &a.out else {
        bail!("--out FILE is required (or pass --dry-run)")
    };
    let t0 = std::time::Instant::now();
    w.write_to_path(out)
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "wrote {} in {:.1} s",
        out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The real DeepSeek V4 vocabulary shipped with the tokenizer crate.
pub(crate) fn builtin_vocab() -> Result<VocabMeta> {
    let tok = dsv4_tokenizer::Tokenizer::builtin()?;
    Ok(dsv4_engine::demo::builtin_vocab(&tok))
}
