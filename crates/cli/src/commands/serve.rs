//! `dsv4 serve`: the OpenAI/Anthropic/Responses-compatible HTTP server.
//!
//! Resolves the flags into a `dsv4_server::ServerConfig`, binds the port at
//! once (`/health` answers 503 while the model loads), loads the model on a
//! background thread and serves until Ctrl-C. Without `--model` or `--demo`
//! it explains where weights come from before binding anything.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use dsv4_server::{ServerConfig, ThinkingDefault};
use dsv4_tokenizer::chat::Checkpoint;

use super::engine_args::{EngineArgs, NO_MODEL};

/// `dsv4 serve` flags.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) engine: EngineArgs,
    /// Address to listen on (use 0.0.0.0 to accept other machines; set an API key then).
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) host: String,
    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, default_value_t = 8000)]
    pub(crate) port: u16,
    /// Require this API key (`Authorization: Bearer KEY` or `x-api-key: KEY`) on every route but /health.
    #[arg(long, conflicts_with = "api_key_file")]
    pub(crate) api_key: Option<String>,
    /// Read accepted API keys from a file, one per line.
    #[arg(long)]
    pub(crate) api_key_file: Option<PathBuf>,
    /// Send CORS headers for these origins (comma-separated, or `*` for any).
    #[arg(long)]
    pub(crate) cors: Option<String>,
    /// Resident sessions: conversations kept in memory for prefix reuse.
    #[arg(long, default_value_t = 4)]
    pub(crate) sessions: usize,
    /// Prompt format of the checkpoint: april or 0731.
    #[arg(long, default_value = "april", value_parser = ["april", "0731"])]
    pub(crate) checkpoint: String,
    /// Thinking when a request does not say: on, off, or max (on with maximum effort).
    #[arg(long, default_value = "on", value_parser = ["on", "off", "max"])]
    pub(crate) default_thinking: String,
    /// Output cap for requests that set no max_tokens (default: until the context
    /// is full; 256 with --demo).
    #[arg(long)]
    pub(crate) max_tokens: Option<usize>,
    /// Model id listed by /v1/models (default: deepseek-v4-flash, or dsv4-demo with --demo).
    #[arg(long)]
    pub(crate) model_name: Option<String>,
    /// Largest request body, in MiB.
    #[arg(long, default_value_t = 32)]
    pub(crate) max_body_mb: usize,
    /// Seconds between keepalives on streams waiting for the model.
    #[arg(long, default_value_t = 5)]
    pub(crate) keepalive_secs: u64,
    /// Responses kept in memory for previous_response_id.
    #[arg(long, default_value_t = 64)]
    pub(crate) stored_responses: usize,
    /// Do not constrain tool-call blocks the model opens under tool_choice auto.
    #[arg(long)]
    pub(crate) no_constrain_auto: bool,
}

fn api_keys(a: &Args) -> Result<Vec<String>> {
    if let Some(k) = &a.api_key {
        if k.trim().is_empty() {
            bail!("--api-key is empty");
        }
        return Ok(vec![k.trim().to_string()]);
    }
    let Some(path) = &a.api_key_file else {
        return Ok(Vec::new());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    if keys.is_empty() {
        bail!("{} holds no API key (one per line)", path.display());
    }
    Ok(keys)
}

/// The server settings the flags describe.
pub(crate) fn config(a: &Args) -> Result<ServerConfig> {
    let demo = a.engine.demo;
    Ok(ServerConfig {
        api_keys: api_keys(a)?,
        cors_origins: a.cors.as_ref().map(|c| {
            c.split(',')
                .map(|o| o.trim().to_string())
                .filter(|o| !o.is_empty())
                .collect()
        }),
        model_id: a.model_name.clone().unwrap_or_else(|| {
            if demo {
                "dsv4-demo".into()
            } else {
                "deepseek-v4-flash".into()
            }
        }),
        checkpoint: if a.checkpoint == "0731" {
            Checkpoint::V0731
        } else {
            Checkpoint::April
        },
        default_thinking: match a.default_thinking.as_str() {
            "off" => ThinkingDefault::Off,
            "max" => ThinkingDefault::Max,
            _ => ThinkingDefault::On,
        },
        default_max_tokens: a.max_tokens.or(if demo { Some(256) } else { None }),
        max_body_bytes: a.max_body_mb.max(1) << 20,
        keepalive: std::time::Duration::from_secs(a.keepalive_secs.max(1)),
        stored_responses: a.stored_responses,
        constrain_auto_tools: !a.no_constrain_auto,
    })
}

/// Runs the server until Ctrl-C.
pub(crate) fn run(a: &Args) -> Result<()> {
    if !a.engine.demo && a.engine.model.is_none() {
        bail!("{NO_MODEL}");
    }
    if a.sessions == 0 {
        bail!("--sessions must be at least 1");
    }
    let cfg = config(a)?;
    let auth = !cfg.api_keys.is_empty();
    let engine = a.engine.clone();
    let sessions = a.sessions;
    let load = move || engine.start(sessions).map_err(|e| format!("{e:#}"));
    let on_listen = move |addr: std::net::SocketAddr| {
        eprintln!(
            "dsv4 serve: listening on http://{addr} (loading the model; GET /health answers 200 when ready)"
        );
        if !auth && !addr.ip().is_loopback() {
            eprintln!("dsv4 serve: warning: listening beyond this machine without --api-key");
        }
    };
    let on_ready = |r: Result<(), String>| match r {
        Ok(()) => eprintln!("dsv4 serve: model ready"),
        Err(e) => eprintln!("dsv4 serve: error: the model failed to load: {e}"),
    };
    dsv4_server::run_blocking(cfg, &a.host, a.port, load, on_listen, on_ready)
        .context("serving")?;
    Ok(())
}
