//! `dsv4 run`: one prompt, streamed answer, tokens/s summary.

use anyhow::{Result, bail};
use dsv4_engine::{GenerationRequest, SamplingParams, Thinking};
use dsv4_tokenizer::chat::{ChatMessage, Checkpoint, Effort, RenderOptions, Role, render_messages};

use super::engine_args::EngineArgs;
use super::stream;

/// Thinking-mode flags shared by `run` and `chat`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ModeArgs {
    /// Think before answering (default).
    #[arg(long, group = "mode")]
    pub(crate) think: bool,
    /// Answer directly, no reasoning.
    #[arg(long, group = "mode")]
    pub(crate) nothink: bool,
    /// Maximum reasoning effort (inserts the checkpoint's effort paragraph).
    #[arg(long, group = "mode")]
    pub(crate) think_max: bool,
    /// Prompt format of the checkpoint: april or 0731.
    #[arg(long, default_value = "april", value_parser = ["april", "0731"])]
    pub(crate) checkpoint: String,
    /// Force `</think>` after this many reasoning tokens.
    #[arg(long)]
    pub(crate) think_budget: Option<usize>,
}

/// The current mode of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Chat mode.
    NoThink,
    /// Thinking, default effort.
    Think,
    /// Thinking, maximum effort.
    ThinkMax,
}

impl ModeArgs {
    /// The selected mode.
    pub(crate) fn mode(&self) -> Mode {
        if self.nothink {
            Mode::NoThink
        } else if self.think_max {
            Mode::ThinkMax
        } else {
            Mode::Think
        }
    }

    /// The checkpoint.
    pub(crate) fn checkpoint(&self) -> Checkpoint {
        if self.checkpoint == "0731" {
            Checkpoint::V0731
        } else {
            Checkpoint::April
        }
    }
}

/// Render options for a mode.
pub(crate) fn render_options(checkpoint: Checkpoint, mode: Mode) -> RenderOptions {
    let mut o = RenderOptions::new(checkpoint);
    o.thinking = mode != Mode::NoThink;
    if mode == Mode::ThinkMax {
        o.effort = Effort::Max;
    }
    o
}

/// Sampling flags shared by `run` and `chat`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SampleArgs {
    /// Temperature (0 = greedy).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) temp: f32,
    /// Nucleus sampling.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) top_p: f32,
    /// Top-k (0 = off).
    #[arg(long, default_value_t = 0)]
    pub(crate) top_k: usize,
    /// Min-p (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) min_p: f32,
    /// Random seed.
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Maximum tokens to generate.
    #[arg(short = 'n', long, default_value_t = 4096)]
    pub(crate) max_tokens: usize,
}

impl SampleArgs {
    /// The sampling parameters.
    pub(crate) fn params(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.temp,
            top_p: self.top_p,
            top_k: self.top_k,
            min_p: self.min_p,
            seed: self.seed,
            ..Default::default()
        }
    }
}

/// Arguments of `dsv4 run`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) engine: EngineArgs,
    /// The prompt.
    #[arg(short = 'p', long)]
    pub(crate) prompt: String,
    /// A system prompt.
    #[arg(long)]
    pub(crate) system: Option<String>,
    #[command(flatten)]
    pub(crate) mode: ModeArgs,
    #[command(flatten)]
    pub(crate) sample: SampleArgs,
}

/// Runs the command.
pub(crate) fn run(a: &Args) -> Result<()> {
    if a.prompt.is_empty() {
        bail!("the prompt is empty");
    }
    let engine = a.engine.start(1)?;
    if engine.info().synthetic {
        eprintln!(
            "dsv4: {} — random weights, expect gibberish",
            engine.info().model_name
        );
    }
    let mut msgs = Vec::new();
    if let Some(s) = &a.system {
        msgs.push(ChatMessage::new(Role::System, s.clone()));
    }
    msgs.push(ChatMessage::new(Role::User, a.prompt.clone()));
    let mode = a.mode.mode();
    let prompt = render_messages(&msgs, &render_options(a.mode.checkpoint(), mode))?
        .encode(engine.tokenizer());
    let mut req = GenerationRequest::new(prompt);
    req.sampling = a.sample.params();
    req.max_tokens = Some(a.sample.max_tokens);
    req.thinking = Thinking {
        starts_in_reasoning: mode != Mode::NoThink,
        budget: a.mode.think_budget,
    };
    let out = stream::stream(&engine, req, mode != Mode::NoThink, None)?;
    println!();
    eprintln!("{}", stream::summary(&out.usage, &out.reason));
    Ok(())
}
