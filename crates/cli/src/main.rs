//! `dsv4`: the command-line front end of the dsv4 engine.
//!
//! Two-stage argument handling (code-style §9.2 habit 9): clap parses the
//! flags into per-command `Args` structs with no I/O; each command's `run`
//! resolves them (opens files, picks kernels and threads) and does the work.
//! This is the only crate that uses `anyhow`. Exit codes: 0 success, 1 error,
//! and a broken pipe (e.g. `dsv4 inspect | head`) exits quietly with 0.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod commands;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "dsv4", version, about = "DeepSeek V4 Flash inference engine", long_about = None)]
struct Cli {
    /// Log filter (e.g. `info`, `dsv4=debug`); also read from RUST_LOG.
    #[arg(long, global = true, default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show a GGUF file: metadata, tensors, totals, and DeepSeek V4 conventions check.
    Inspect(commands::inspect::Args),
    /// Write the logits of a token sequence as a float32 .npy file.
    Logits(commands::logits::Args),
    /// Write a synthetic random-weight DeepSeek V4 model.
    Synth(commands::synth::Args),
    /// List the CPU kernel variants available on this machine.
    Kernels(commands::kernels::Args),
    /// Answer one prompt, streaming (add --demo to try without weights).
    Run(commands::run::Args),
    /// Measure prefill/decode speed, batching and bandwidth use.
    Bench(commands::bench::Args),
    /// OpenAI/Anthropic-compatible HTTP server for coding agents (add --demo to try without weights).
    Serve(commands::serve::Args),
    /// Interactive conversation (add --demo to try without weights).
    Chat(commands::chat::Args),
    /// Tokenize text (the built-in DeepSeek V4 vocabulary, or a model's).
    Tokenize(commands::tokenize::TokenizeArgs),
    /// Turn token ids back into text.
    Detokenize(commands::tokenize::DetokenizeArgs),
    /// Print the exact prompt an OpenAI-style chat request renders to.
    Render(commands::render::Args),
}

fn main() {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Inspect(a) => commands::inspect::run(&a),
        Command::Logits(a) => commands::logits::run(&a),
        Command::Synth(a) => commands::synth::run(&a),
        Command::Kernels(a) => commands::kernels::run(&a),
        Command::Run(a) => commands::run::run(&a),
        Command::Chat(a) => commands::chat::run(&a),
        Command::Bench(a) => commands::bench::run(&a),
        Command::Serve(a) => commands::serve::run(&a),
        Command::Tokenize(a) => commands::tokenize::run_tokenize(&a),
        Command::Detokenize(a) => commands::tokenize::run_detokenize(&a),
        Command::Render(a) => commands::render::run(&a),
    };
    if let Err(e) = result {
        if e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        }) {
            std::process::exit(0);
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
