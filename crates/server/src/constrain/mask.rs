//! The engine's `LogitMask` over an llguidance matcher.
//!
//! Phases: reasoning (free, until `</think>`), free content (tool_choice auto,
//! until the model writes `<｜DSML｜`), grammar, done (only EOS). For forced
//! structures (required/named tools, JSON) `｜DSML｜` and EOS are banned while
//! reasoning, so the answer cannot end or open a block before `</think>`.
//!
//! Closing at the end of the budget: when no more than `reserve` tokens are
//! left (twice that while still reasoning), the mask steers towards the end of
//! the structure, one token at a time, among the tokens the grammar allows:
//! EOS when complete; inside a raw DSML value the `</` of its closing tag;
//! inside a JSON string the closing quote; otherwise the first allowed of
//! `} ] </ , " 0 null false true [ { \n <` (closing brackets and tags first,
//! then the smallest values). Which context applies is tracked
//! from the accepted text ([`Tracker`]). The grammar itself decides what is
//! valid; the steering only picks among valid tokens, so it can never break
//! the structure, and with a random-weight model it ends calls within the
//! reserve for every schema whose minimal completion fits in it.

use std::sync::Arc;

use dsv4_engine::LogitMask;
use dsv4_tokenizer::Tokenizer;
use llguidance::Matcher;

use super::Vocab;

/// Where the grammar starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// At the start of the answer (after `</think>` in thinking mode).
    AfterThink,
    /// After the model's own `<｜DSML｜` (lazy: tool_choice auto).
    OnDsml,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Reasoning,
    Free,
    Grammar,
    Done,
}

/// Single-token strings used to steer towards the end of a structure.
#[derive(Debug, Clone, Default)]
pub(crate) struct Closers {
    eos: u32,
    lt_slash: Option<u32>,
    quote: Option<u32>,
    general: Vec<u32>,
}

impl Closers {
    pub(crate) fn new(tok: &Tokenizer, eos: u32) -> Closers {
        let one = |s: &str| match tok.encode_text(s).as_slice() {
            [id] => Some(*id),
            _ => None,
        };
        let general = [
            "}", "]", "</", ",", "\"", "0", "null", "false", "true", "[", "{", "\n", "<",
        ]
        .iter()
        .filter_map(|s| one(s))
        .collect();
        Closers {
            eos,
            lt_slash: one("</"),
            quote: one("\""),
            general,
        }
    }
}

/// What kind of text the structure is in, from the accepted tokens.
#[derive(Debug, Clone, Default)]
struct Tracker {
    /// The whole answer is JSON (`response_format`).
    json_mode: bool,
    /// Text of a DSML tag after its `｜DSML｜` token, until `>`.
    tag: Option<String>,
    /// Inside a `string="true"` parameter value.
    raw: bool,
    /// Inside a `string="false"` parameter value.
    json: bool,
    in_string: bool,
    escape: bool,
}

impl Tracker {
    fn dsml(&mut self) {
        self.raw = false;
        self.json = false;
        self.in_string = false;
        self.escape = false;
        self.tag = Some(String::new());
    }

    fn text(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if let Some(tag) = &mut self.tag {
                if b == b'>' {
                    let t = std::mem::take(tag);
                    self.tag = None;
                    if t.starts_with("parameter") && t.contains("string=") {
                        self.raw = t.contains("string=\"true\"");
                        self.json = !self.raw;
                    }
                } else if tag.len() < 4096 {
                    tag.push(char::from(b));
                }
                continue;
            }
            if !(self.json || self.json_mode) {
                continue;
            }
            if self.in_string {
                if self.escape {
                    self.escape = false;
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
            } else if b == b'"' {
                self.in_string = true;
            }
        }
    }

    fn in_json_string(&self) -> bool {
        (self.json || self.json_mode) && self.in_string
    }
}

/// A grammar constraint on one request.
pub(crate) struct ConstrainedMask {
    matcher: Matcher,
    vocab: Arc<Vocab>,
    tokenizer: Arc<Tokenizer>,
    trigger: Trigger,
    phase: Phase,
    max_tokens: Option<usize>,
    generated: usize,
    reserve: usize,
    tracker: Tracker,
    /// The last plain text ended with `<` (a DSML tag may open).
    after_lt: bool,
}

impl std::fmt::Debug for ConstrainedMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConstrainedMask")
            .field("phase", &self.phase)
            .field("trigger", &self.trigger)
            .field("generated", &self.generated)
            .finish_non_exhaustive()
    }
}

impl ConstrainedMask {
    pub(crate) fn new(
        matcher: Matcher,
        vocab: Arc<Vocab>,
        tokenizer: Arc<Tokenizer>,
        trigger: Trigger,
        thinking: bool,
        max_tokens: Option<usize>,
        reserve: usize,
    ) -> ConstrainedMask {
        let phase = match (thinking, trigger) {
            (true, _) => Phase::Reasoning,
            (false, Trigger::AfterThink) => Phase::Grammar,
            (false, Trigger::OnDsml) => Phase::Free,
        };
        ConstrainedMask {
            matcher,
            vocab,
            tokenizer,
            trigger,
            phase,
            max_tokens,
            generated: 0,
            reserve,
            tracker: Tracker::default(),
            after_lt: false,
        }
    }

    /// The whole answer is JSON (so the closing steering tracks strings there).
    pub(crate) fn json_mode(mut self) -> Self {
        self.tracker.json_mode = true;
        self
    }

    fn remaining(&self) -> Option<usize> {
        self.max_tokens.map(|m| m.saturating_sub(self.generated))
    }

    fn closing(&self, reserve: usize) -> bool {
        self.remaining().is_some_and(|r| r <= reserve)
    }

    fn ban(logits: &mut [f32], ids: &[u32]) {
        for &id in ids {
            if let Some(l) = logits.get_mut(id as usize) {
                *l = f32::NEG_INFINITY;
            }
        }
    }

    fn only(logits: &mut [f32], id: u32) {
        for (i, l) in logits.iter_mut().enumerate() {
            if i != id as usize {
                *l = f32::NEG_INFINITY;
            }
        }
    }

    fn apply_grammar(&mut self, logits: &mut [f32]) -> Result<(), String> {
        let mask = if self.phase == Phase::Done || self.matcher.is_stopped() {
            None
        } else {
            Some(self.matcher.compute_mask().map_err(|e| e.to_string())?)
        };
        let Some(mask) = mask else {
            Self::only(logits, self.vocab.eos);
            return Ok(());
        };
        let allowed = |id: u32| (id as usize) < self.vocab.n_vocab && mask.is_allowed(id);
        if self.closing(self.reserve) {
            let c = &self.vocab.closers;
            let prefer: Vec<u32> = if self.tracker.raw {
                // The closing tag: `</`, then (once allowed) `｜DSML｜`.
                std::iter::once(self.vocab.dsml).chain(c.lt_slash).collect()
            } else if self.tracker.in_json_string() {
                c.quote.into_iter().collect()
            } else {
                std::iter::once(c.eos)
                    .chain(c.general.iter().copied())
                    .collect()
            };
            if let Some(&id) = prefer.iter().find(|&&id| allowed(id)) {
                Self::only(logits, id);
                return Ok(());
            }
        }
        let mut any = false;
        for (i, l) in logits.iter_mut().enumerate() {
            if allowed(i as u32) {
                any |= *l > f32::NEG_INFINITY;
            } else {
                *l = f32::NEG_INFINITY;
            }
        }
        if !any {
            // Every allowed token was banned by the request's logit bias:
            // the grammar wins (a forced structure must be completable).
            for (i, l) in logits.iter_mut().enumerate() {
                if allowed(i as u32) {
                    *l = 0.0;
                }
            }
        }
        Ok(())
    }

    fn start_grammar(&mut self) {
        self.phase = Phase::Grammar;
        if self.trigger == Trigger::OnDsml {
            // The lazy grammar starts right after `<｜DSML｜`.
            self.tracker.dsml();
        }
    }
}

impl LogitMask for ConstrainedMask {
    fn apply(&mut self, logits: &mut [f32]) -> Result<(), String> {
        match self.phase {
            Phase::Reasoning => {
                if self.trigger == Trigger::AfterThink {
                    Self::ban(logits, &[self.vocab.eos, self.vocab.dsml]);
                    if self.closing(2 * self.reserve) {
                        Self::only(logits, self.vocab.think_end);
                    }
                }
                Ok(())
            }
            Phase::Free => Ok(()),
            Phase::Grammar | Phase::Done => self.apply_grammar(logits),
        }
    }

    fn accept(&mut self, token: u32) -> Result<(), String> {
        self.generated += 1;
        let v = &self.vocab;
        match self.phase {
            Phase::Reasoning | Phase::Free => {
                if self.phase == Phase::Reasoning && token == v.think_end {
                    self.phase = match self.trigger {
                        Trigger::AfterThink => Phase::Grammar,
                        Trigger::OnDsml => Phase::Free,
                    };
                } else if self.trigger == Trigger::OnDsml && token == v.dsml && self.after_lt {
                    self.start_grammar();
                }
                if !self.tokenizer.is_special(token) {
                    let bytes = self.tokenizer.token_bytes(token).unwrap_or_default();
                    if !bytes.is_empty() {
                        self.after_lt = bytes.ends_with(b"<") && !bytes.ends_with(b"</");
                    }
                } else {
                    self.after_lt = false;
                }
                Ok(())
            }
            Phase::Grammar => {
                if token == v.eos {
                    return if self.matcher.is_accepting().unwrap_or(false) {
                        self.phase = Phase::Done;
                        Ok(())
                    } else {
                        Err("the answer ended before the required structure was complete".into())
                    };
                }
                self.matcher
                    .consume_token(token)
                    .map_err(|e| e.to_string())?;
                if token == v.dsml {
                    self.tracker.dsml();
                } else if !self.tokenizer.is_special(token) {
                    self.tracker
                        .text(self.tokenizer.token_bytes(token).unwrap_or_default());
                }
                if self.matcher.is_stopped() {
                    self.phase = Phase::Done;
                }
                Ok(())
            }
            Phase::Done if token == v.eos => Ok(()),
            Phase::Done => Err("token after the end of the constrained structure".into()),
        }
    }

    fn is_finished(&self) -> bool {
        false
    }
}
