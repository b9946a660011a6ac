//! Streaming one generation to the terminal: reasoning shown dimmed (or
//! between markers when not on a TTY), content plain, tool calls as JSON,
//! a progress bar for long prefills, and a tokens/s summary.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use dsv4_engine::{Engine, FinishReason, GenerationRequest, TokenEvent, Usage};
use dsv4_tokenizer::dsml::{OutputEvent, OutputParser, ParserOptions, TokenPiece};

/// What one generation produced.
#[derive(Debug, Default)]
pub(crate) struct GenOutput {
    /// Reasoning text.
    pub(crate) reasoning: String,
    /// Visible content.
    pub(crate) content: String,
    /// Why it ended (`None` if it failed).
    pub(crate) reason: Option<FinishReason>,
    /// Counts and timings.
    pub(crate) usage: Usage,
}

struct Printer {
    tty: bool,
    in_reasoning: bool,
}

impl Printer {
    fn reasoning(&mut self, out: &mut impl Write, s: &str) -> std::io::Result<()> {
        if !self.in_reasoning {
            self.in_reasoning = true;
            if self.tty {
                write!(out, "\x1b[2m")?
            } else {
                writeln!(out, "<think>")?
            }
        }
        write!(out, "{s}")
    }
    fn end_reasoning(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        if self.in_reasoning {
            self.in_reasoning = false;
            if self.tty {
                writeln!(out, "\x1b[0m")?
            } else {
                write!(out, "\n</think>\n")?
            }
        }
        Ok(())
    }
}

/// Runs a request, printing as it streams. `cancel` is raised by Ctrl-C.
pub(crate) fn stream(
    engine: &Engine,
    req: GenerationRequest,
    thinking: bool,
    cancel_slot: Option<&std::sync::Mutex<Option<Arc<AtomicBool>>>>,
) -> Result<GenOutput> {
    let mut h = engine.submit(req)?;
    if let Some(slot) = cancel_slot
        && let Ok(mut s) = slot.lock()
    {
        *s = Some(h.cancel_flag());
    }
    let tty = std::io::stdout().is_terminal();
    let mut p = Printer {
        tty,
        in_reasoning: false,
    };
    let mut parser = OutputParser::new(ParserOptions::new(thinking));
    let mut out = GenOutput::default();
    let stdout = &mut std::io::stdout().lock();
    let mut bar: Option<indicatif::ProgressBar> = None;
    let handle = |events: Vec<OutputEvent>,
                  p: &mut Printer,
                  out: &mut GenOutput,
                  w: &mut std::io::StdoutLock<'_>|
     -> std::io::Result<()> {
        for ev in events {
            match ev {
                OutputEvent::Reasoning(s) => {
                    out.reasoning.push_str(&s);
                    p.reasoning(w, &s)?;
                }
                OutputEvent::Content(s) | OutputEvent::ReasoningPromoted(s) => {
                    p.end_reasoning(w)?;
                    out.content.push_str(&s);
                    write!(w, "{s}")?;
                }
                OutputEvent::ToolCallStart { name, .. } => {
                    p.end_reasoning(w)?;
                    write!(w, "\n[tool call] {name}(")?;
                }
                OutputEvent::ToolCallArgumentsDelta { fragment, .. } => write!(w, "{fragment}")?,
                OutputEvent::ToolCallEnd { .. } => writeln!(w, ")")?,
                OutputEvent::Diagnostic(d) => tracing::debug!("output parser: {d:?}"),
            }
        }
        w.flush()
    };
    while let Some(ev) = h.next_blocking() {
        match ev {
            TokenEvent::Started { .. } => {}
            TokenEvent::Prefill { done, total } => {
                if total >= 512 {
                    let b = bar.get_or_insert_with(|| {
                        let b = indicatif::ProgressBar::new(total as u64);
                        b.set_style(
                            indicatif::ProgressStyle::with_template(
                                "prefill {bar:40} {pos}/{len} tokens {per_sec} eta {eta}",
                            )
                            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                        );
                        b
                    });
                    b.set_position(done as u64);
                    if done >= total {
                        b.finish_and_clear();
                    }
                }
            }
            TokenEvent::Text(t) => {
                let evs = parser.push_text(&t);
                handle(evs, &mut p, &mut out, stdout)?;
            }
            TokenEvent::Token(s) => {
                let evs = parser.push(TokenPiece {
                    id: s.id,
                    text: &s.text,
                    special: s.special,
                });
                handle(evs, &mut p, &mut out, stdout)?;
            }
            TokenEvent::Finished { reason, usage } => {
                let evs = parser.finish();
                handle(evs, &mut p, &mut out, stdout)?;
                p.end_reasoning(stdout)?;
                out.reason = Some(reason);
                out.usage = usage;
            }
            TokenEvent::Error(e) => {
                p.end_reasoning(stdout)?;
                return Err(e.into());
            }
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(out)
}

/// The closing summary line.
pub(crate) fn summary(u: &Usage, reason: &Option<FinishReason>) -> String {
    let pre = if u.prefill_seconds > 0.0 {
        (u.prompt_tokens - u.cached_tokens) as f64 / u.prefill_seconds
    } else {
        0.0
    };
    let dec = if u.decode_seconds > 0.0 {
        u.completion_tokens as f64 / u.decode_seconds
    } else {
        0.0
    };
    format!(
        "[{} prompt tokens ({} cached) at {:.1} t/s, {} generated at {:.2} t/s{}{}]",
        u.prompt_tokens,
        u.cached_tokens,
        pre,
        u.completion_tokens,
        dec,
        if u.reasoning_tokens > 0 {
            format!(", {} reasoning", u.reasoning_tokens)
        } else {
            String::new()
        },
        match reason {
            Some(FinishReason::Length) => ", stopped at the token limit",
            Some(FinishReason::Cancelled) => ", interrupted",
            Some(FinishReason::ContextFull) => ", context full",
            _ => "",
        }
    )
}
