//! `dsv4 chat`: an interactive conversation with line editing and history.
//!
//! The conversation lives in one resident engine session, so each turn only
//! evaluates the new tokens; `/undo` and `/retry` edit the history and the
//! engine rewinds cheaply instead of re-reading the whole conversation.
//! Ctrl-C stops the current answer and keeps the conversation.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use dsv4_engine::{Engine, GenerationRequest, Thinking};
use dsv4_tokenizer::chat::{ChatMessage, MessageContent, Role, render_messages};
use rustyline::error::ReadlineError;

use super::engine_args::EngineArgs;
use super::run::{Mode, ModeArgs, SampleArgs, render_options};
use super::stream;

/// Arguments of `dsv4 chat`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) engine: EngineArgs,
    /// A system prompt.
    #[arg(long)]
    pub(crate) system: Option<String>,
    #[command(flatten)]
    pub(crate) mode: ModeArgs,
    #[command(flatten)]
    pub(crate) sample: SampleArgs,
}

const HELP: &str = "commands:
  /think /nothink /think-max   switch the reasoning mode
  /ctx N                       restart with a context of N tokens (keeps the conversation)
  /read FILE [question]        send a file's text (and an optional question)
  /retry                       regenerate the last answer
  /undo                        drop the last exchange
  /save NAME  /load NAME       save/restore the conversation and its KV state (NAME.json, NAME.kv)
  /reset                       start over
  /quit                        leave (also Ctrl-D)
Ctrl-C stops the current answer.";

const SESSION: &str = "chat";

struct Chat {
    engine: Engine,
    args_engine: EngineArgs,
    mode: Mode,
    messages: Vec<ChatMessage>,
    cancel: Arc<Mutex<Option<Arc<AtomicBool>>>>,
}

impl Chat {
    fn system(&self) -> Option<&ChatMessage> {
        self.messages.first().filter(|m| m.role == Role::System)
    }

    fn reply(&mut self, a: &Args) -> Result<()> {
        let opts = render_options(a.mode.checkpoint(), self.mode);
        let prompt = render_messages(&self.messages, &opts)?.encode(self.engine.tokenizer());
        let mut req = GenerationRequest::new(prompt);
        req.sampling = a.sample.params();
        req.max_tokens = Some(a.sample.max_tokens);
        req.session_key = Some(SESSION.into());
        req.thinking = Thinking {
            starts_in_reasoning: self.mode != Mode::NoThink,
            budget: a.mode.think_budget,
        };
        let out = stream::stream(
            &self.engine,
            req,
            self.mode != Mode::NoThink,
            Some(&self.cancel),
        )?;
        if let Ok(mut c) = self.cancel.lock() {
            *c = None;
        }
        println!();
        eprintln!("{}", stream::summary(&out.usage, &out.reason));
        let mut msg = ChatMessage::new(Role::Assistant, out.content);
        if !out.reasoning.is_empty() {
            msg.reasoning_content = Some(out.reasoning);
        }
        self.messages.push(msg);
        Ok(())
    }

    fn save(&self, name: &str) -> Result<()> {
        let json = PathBuf::from(format!("{name}.json"));
        let kv = PathBuf::from(format!("{name}.kv"));
        std::fs::write(&json, serde_json::to_vec_pretty(&self.messages)?)
            .with_context(|| format!("writing {}", json.display()))?;
        match self.engine.save_session(SESSION, &kv) {
            Ok(n) => eprintln!(
                "saved {} messages to {} and {n} tokens of KV state to {}",
                self.messages.len(),
                json.display(),
                kv.display()
            ),
            Err(e) => eprintln!(
                "saved {} (KV state not saved: {e}; it will be rebuilt on load)",
                json.display()
            ),
        }
        Ok(())
    }

    fn load(&mut self, name: &str) -> Result<()> {
        let json = PathBuf::from(format!("{name}.json"));
        let text = std::fs::read(&json).with_context(|| format!("reading {}", json.display()))?;
        let msgs: Vec<ChatMessage> = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not a saved conversation", json.display()))?;
        self.messages = msgs;
        let kv = PathBuf::from(format!("{name}.kv"));
        if Path::new(&kv).exists() {
            match self.engine.load_session(SESSION, &kv) {
                Ok(n) => eprintln!(
                    "loaded {} messages and {n} tokens of KV state",
                    self.messages.len()
                ),
                Err(e) => eprintln!(
                    "loaded {} messages; KV state not usable ({e}); it will be rebuilt",
                    self.messages.len()
                ),
            }
        }
        Ok(())
    }
}

fn content_of(m: &ChatMessage) -> String {
    match &m.content {
        Some(MessageContent::Text(t)) => t.clone(),
        Some(c) => c.flatten(),
        None => String::new(),
    }
}

/// Runs the REPL.
pub(crate) fn run(a: &Args) -> Result<()> {
    let engine = a.engine.start(1)?;
    eprintln!(
        "dsv4 chat — {} ({}), context {} tokens. /help for commands.",
        engine.info().model_name,
        engine.info().backend,
        engine.info().ctx
    );
    if engine.info().synthetic {
        eprintln!(
            "note: this is a random-weight demo model; its answers are gibberish by construction."
        );
    }
    let mut chat = Chat {
        engine,
        args_engine: a.engine.clone(),
        mode: a.mode.mode(),
        messages: Vec::new(),
        cancel: Arc::new(Mutex::new(None)),
    };
    if let Some(s) = &a.system {
        chat.messages
            .push(ChatMessage::new(Role::System, s.clone()));
    }
    let slot = Arc::clone(&chat.cancel);
    ctrlc::set_handler(move || {
        if let Ok(c) = slot.lock()
            && let Some(flag) = c.as_ref()
        {
            flag.store(true, Ordering::Relaxed);
        }
    })
    .context("installing the Ctrl-C handler")?;
    let mut rl = rustyline::DefaultEditor::new().context("starting the line editor")?;
    loop {
        let line = match rl.readline("> ") {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => bail!("reading input: {e}"),
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = rl.add_history_entry(line);
        if let Some(cmd) = line.strip_prefix('/') {
            if !command(&mut chat, a, cmd)? {
                break;
            }
            continue;
        }
        chat.messages.push(ChatMessage::new(Role::User, line));
        if let Err(e) = chat.reply(a) {
            chat.messages.pop();
            eprintln!("error: {e:#}");
        }
    }
    Ok(())
}

/// Handles a slash command; returns false to quit.
fn command(chat: &mut Chat, a: &Args, cmd: &str) -> Result<bool> {
    let (name, rest) = cmd
        .split_once(' ')
        .map_or((cmd, ""), |(n, r)| (n, r.trim()));
    match name {
        "quit" | "exit" | "q" => return Ok(false),
        "help" => eprintln!("{HELP}"),
        "think" => chat.mode = Mode::Think,
        "nothink" => chat.mode = Mode::NoThink,
        "think-max" => chat.mode = Mode::ThinkMax,
        "reset" => {
            let sys = chat.system().cloned();
            chat.messages = sys.into_iter().collect();
            chat.engine.forget_session(SESSION);
            eprintln!("conversation cleared");
        }
        "undo" => {
            while chat
                .messages
                .last()
                .is_some_and(|m| m.role == Role::Assistant)
            {
                chat.messages.pop();
            }
            if chat.messages.last().is_some_and(|m| m.role == Role::User) {
                chat.messages.pop();
            }
            eprintln!(
                "dropped the last exchange ({} messages left)",
                chat.messages.len()
            );
        }
        "retry" => {
            if chat
                .messages
                .last()
                .is_some_and(|m| m.role == Role::Assistant)
            {
                chat.messages.pop();
                if let Err(e) = chat.reply(a) {
                    eprintln!("error: {e:#}");
                }
            } else {
                eprintln!("nothing to retry");
            }
        }
        "read" => {
            let (file, question) = rest
                .split_once(' ')
                .map_or((rest, ""), |(f, q)| (f, q.trim()));
            if file.is_empty() {
                eprintln!("usage: /read FILE [question]");
                return Ok(true);
            }
            match std::fs::read_to_string(file) {
                Ok(text) => {
                    let msg = if question.is_empty() {
                        format!("{file}:\n```\n{text}\n```")
                    } else {
                        format!("{file}:\n```\n{text}\n```\n\n{question}")
                    };
                    chat.messages.push(ChatMessage::new(Role::User, msg));
                    if let Err(e) = chat.reply(a) {
                        chat.messages.pop();
                        eprintln!("error: {e:#}");
                    }
                }
                Err(e) => eprintln!("cannot read {file}: {e}"),
            }
        }
        "ctx" => match rest.parse::<usize>() {
            Ok(n) if n > 0 => {
                let mut ea = chat.args_engine.clone();
                ea.ctx = n;
                match ea.start(1) {
                    Ok(e) => {
                        chat.engine.shutdown();
                        chat.engine = e;
                        chat.args_engine = ea;
                        eprintln!(
                            "context is now {n} tokens (the conversation will be re-read on the next turn)"
                        );
                    }
                    Err(e) => eprintln!("cannot restart with --ctx {n}: {e:#}"),
                }
            }
            _ => eprintln!("usage: /ctx N"),
        },
        "save" if !rest.is_empty() => chat.save(rest)?,
        "load" if !rest.is_empty() => {
            if let Err(e) = chat.load(rest) {
                eprintln!("error: {e:#}");
            }
        }
        "history" => {
            for m in &chat.messages {
                eprintln!("[{:?}] {}", m.role, content_of(m));
            }
        }
        _ => eprintln!("unknown command /{name}\n{HELP}"),
    }
    Ok(true)
}
