//! The streaming output parser: reasoning, content and DSML tool calls.
//!
//! Owns [`OutputParser`]. It is fed generated pieces (text + special flag + id,
//! e.g. from [`crate::StreamDecoder`]) and emits [`OutputEvent`]s as soon as they
//! are certain, plus a final [`ParsedOutput`].
//!
//! Rules (model-spec.md §9.2, user-needs.md §2.2 and §4):
//! * In thinking mode the prompt ends with `<think>`, so output starts as
//!   reasoning until `</think>`. In chat mode it starts as content.
//! * A DSML block (`<｜DSML｜tool_calls>` … `</｜DSML｜tool_calls>`) ends content;
//!   the blank line before it belongs to the format. A block inside unclosed
//!   reasoning implicitly ends reasoning. An `invoke` without a block opener,
//!   garbled markers (`|DSML|`, no leading bar, no marker), smart quotes and
//!   missing closing tags are repaired and reported.
//! * `invoke` → name + a JSON-object arguments string `{"k": v, …}` (Python
//!   separators, like the official `decode_dsml_to_arguments`): `string="true"`
//!   values become JSON strings and are streamed as they arrive; other values are
//!   validated as JSON when the parameter closes and emitted verbatim, or, if
//!   invalid, kept as a JSON string with a [`ToolCallIssue::InvalidJsonValue`]
//!   (never replaced by `{}`). The concatenated argument fragments of a call are
//!   always exactly its final `arguments`.
//! * Nothing of a marker reaches reasoning or content: text that may still
//!   become a tag is held back until it is decided, and stray `<think>`,
//!   `</think>`, `｜DSML｜` and orphan DSML tags are dropped with a diagnostic.
//! * On EOS inside reasoning that never closed, with no content and no tool
//!   call, the reasoning is promoted to content (configurable).
//!
//! The final result does not depend on how the output is split into pieces.

use super::lexer::{Lexed, Tag, TagName, lex};
use crate::pyjson::{self, PyValue};
use crate::special::SpecialToken;
use crate::stream::DecodedToken;

/// Parser configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParserOptions {
    /// The prompt ended with `<think>`: output starts as reasoning.
    pub thinking: bool,
    /// Accept DSML tags without any `DSML` marker (`<tool_calls>`, `<invoke …>`).
    pub accept_plain_tags: bool,
    /// On EOS in unclosed reasoning with no content and no tool call, treat the
    /// reasoning as the answer.
    pub promote_unclosed_reasoning: bool,
}

impl ParserOptions {
    /// Defaults: plain tags accepted, unclosed reasoning promoted.
    pub fn new(thinking: bool) -> Self {
        Self {
            thinking,
            accept_plain_tags: true,
            promote_unclosed_reasoning: true,
        }
    }
}

/// One generated piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenPiece<'a> {
    /// Token id (informational).
    pub id: u32,
    /// Complete UTF-8 text of the piece.
    pub text: &'a str,
    /// Whether the token is an added/special token.
    pub special: bool,
}

impl<'a> From<&'a DecodedToken> for TokenPiece<'a> {
    fn from(t: &'a DecodedToken) -> Self {
        Self {
            id: t.id,
            text: &t.text,
            special: t.special,
        }
    }
}

/// A problem found in one tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolCallIssue {
    /// A `string="false"` value is not valid JSON (or is NaN/Infinity); it was
    /// kept as a JSON string. An error: the model did not produce valid arguments.
    InvalidJsonValue {
        /// Parameter name.
        parameter: String,
        /// The raw value text.
        raw: String,
    },
    /// The `invoke` tag has no `name`. An error.
    MissingName,
    /// No usable `string` attribute; the type was inferred (valid JSON → JSON,
    /// otherwise a string). A warning.
    MissingStringAttribute {
        /// Parameter name.
        parameter: String,
    },
    /// A parameter name repeated in one call (the JSON has the key twice). A warning.
    DuplicateParameter {
        /// Parameter name.
        parameter: String,
    },
    /// A closing tag was missing and has been supplied. A warning.
    MissingCloseTag {
        /// `parameter` or `invoke`.
        tag: &'static str,
    },
}

impl ToolCallIssue {
    /// Whether the issue makes the call's arguments untrustworthy.
    pub fn is_error(&self) -> bool {
        matches!(self, Self::InvalidJsonValue { .. } | Self::MissingName)
    }
}

/// A parsed tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedToolCall {
    /// Position among the calls of this output (0, 1, …).
    pub index: usize,
    /// Function name.
    pub name: String,
    /// Arguments as a JSON object text.
    pub arguments: String,
    /// Repairs and problems.
    pub issues: Vec<ToolCallIssue>,
    /// False when the output ended inside the call (its closing tag never came;
    /// after a `length` stop the call is truncated, after EOS it was repaired).
    pub closed: bool,
}

impl ParsedToolCall {
    /// Whether any issue is an error.
    pub fn has_errors(&self) -> bool {
        self.issues.iter().any(ToolCallIssue::is_error)
    }
}

/// Kinds of output-level diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiagnosticKind {
    /// A DSML block started inside unclosed reasoning; reasoning was ended there.
    ToolCallsInReasoning,
    /// An `invoke` appeared without `<｜DSML｜tool_calls>`; a block was assumed.
    MissingToolCallsOpener,
    /// A DSML tag spelled differently from the canonical form was accepted.
    NonCanonicalTag,
    /// A tag that makes no sense where it appeared was dropped.
    StrayTag,
    /// Text inside a tool block (outside parameter values) was dropped.
    StrayText,
    /// A special token other than `<think>`, `</think>`, `｜DSML｜` or EOS was dropped.
    UnexpectedSpecialToken,
    /// Pieces after EOS were ignored.
    TextAfterEos,
    /// The output ended inside a tool block.
    UnterminatedToolCalls,
    /// Reasoning never closed before EOS and was promoted to content.
    UnclosedReasoningPromoted,
}

/// An output-level diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// What happened.
    pub kind: DiagnosticKind,
    /// Details (the offending text, shortened).
    pub detail: String,
}

/// An incremental parser event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputEvent {
    /// More reasoning text.
    Reasoning(String),
    /// More visible content.
    Content(String),
    /// A tool call started (its name is complete).
    ToolCallStart {
        /// Call index.
        index: usize,
        /// Function name.
        name: String,
    },
    /// More of a call's arguments JSON.
    ToolCallArgumentsDelta {
        /// Call index.
        index: usize,
        /// Fragment to append.
        fragment: String,
    },
    /// A tool call ended.
    ToolCallEnd {
        /// Call index.
        index: usize,
        /// The finished call.
        call: ParsedToolCall,
    },
    /// At the end of output: the reasoning streamed so far is the answer; it now
    /// counts as content (see [`ParserOptions::promote_unclosed_reasoning`]).
    ReasoningPromoted(String),
    /// Something was repaired or dropped.
    Diagnostic(Diagnostic),
}

/// Everything parsed so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedOutput {
    /// Reasoning text.
    pub reasoning: String,
    /// Visible content.
    pub content: String,
    /// Finished tool calls.
    pub tool_calls: Vec<ParsedToolCall>,
    /// Repairs and dropped text.
    pub diagnostics: Vec<Diagnostic>,
    /// Whether generation ended with EOS.
    pub ended_by_eos: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Reasoning,
    Content,
    Block,
    Invoke,
    Param,
}

#[derive(Debug)]
struct OpenCall {
    index: usize,
    name: String,
    arguments: String,
    param_names: Vec<String>,
    issues: Vec<ToolCallIssue>,
}

#[derive(Debug)]
struct OpenParam {
    name: String,
    string: Option<bool>,
    raw: String,
}

/// The streaming output parser; see the module documentation.
#[derive(Debug)]
pub struct OutputParser {
    opts: ParserOptions,
    mode: Mode,
    pending: String,
    call: Option<OpenCall>,
    param: Option<OpenParam>,
    /// Drop whitespace at the start of content that follows a tool block.
    after_block: bool,
    /// Stray text inside a tool block, reported as one diagnostic when the
    /// next tag (or the end) comes, so reports do not depend on chunking.
    stray: String,
    n_calls: usize,
    done: bool,
    finished: bool,
    out: ParsedOutput,
    events: Vec<OutputEvent>,
}

const SEPARATOR_NEWLINES: usize = 2;

fn shorten(text: &str) -> String {
    const MAX: usize = 80;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Length of the whitespace suffix of `s`.
fn trailing_ws(s: &str) -> usize {
    s.len() - s.trim_end().len()
}

impl OutputParser {
    /// A parser at the start of generation.
    pub fn new(opts: ParserOptions) -> Self {
        Self {
            opts,
            mode: if opts.thinking {
                Mode::Reasoning
            } else {
                Mode::Content
            },
            pending: String::new(),
            call: None,
            param: None,
            after_block: false,
            stray: String::new(),
            n_calls: 0,
            done: false,
            finished: false,
            out: ParsedOutput::default(),
            events: Vec::new(),
        }
    }

    /// Everything parsed so far (final after [`Self::finish`]).
    pub fn output(&self) -> &ParsedOutput {
        &self.out
    }

    /// Consumes the parser, returning its result.
    pub fn into_output(self) -> ParsedOutput {
        self.out
    }

    /// Feeds a decoded token.
    pub fn push_token(&mut self, token: &DecodedToken) -> Vec<OutputEvent> {
        self.push(TokenPiece::from(token))
    }

    /// Feeds one generated piece.
    pub fn push(&mut self, piece: TokenPiece<'_>) -> Vec<OutputEvent> {
        if self.done || self.finished {
            if !piece.text.is_empty() {
                self.diag(DiagnosticKind::TextAfterEos, piece.text);
            }
            return self.take_events();
        }
        if piece.special {
            let passes = [
                SpecialToken::ThinkStart,
                SpecialToken::ThinkEnd,
                SpecialToken::Dsml,
            ];
            if let Some(prefix) = piece.text.strip_suffix(SpecialToken::Eos.content()) {
                self.feed(prefix);
                self.out.ended_by_eos = true;
                self.done = true;
            } else if passes.iter().any(|t| piece.text.ends_with(t.content())) {
                self.feed(piece.text);
            } else {
                self.diag(DiagnosticKind::UnexpectedSpecialToken, piece.text);
            }
        } else {
            self.feed(piece.text);
        }
        self.take_events()
    }

    /// Feeds plain text (no special-token information; EOS must be pushed as a
    /// special piece to be recognised).
    pub fn push_text(&mut self, text: &str) -> Vec<OutputEvent> {
        self.push(TokenPiece {
            id: 0,
            text,
            special: false,
        })
    }

    /// Ends the output: releases held text, closes open structures.
    pub fn finish(&mut self) -> Vec<OutputEvent> {
        if self.finished {
            return Vec::new();
        }
        self.pump(true);
        self.flush_stray();
        match self.mode {
            Mode::Param | Mode::Invoke => {
                self.end_call(false);
                self.diag(DiagnosticKind::UnterminatedToolCalls, "");
            }
            Mode::Block => self.diag(DiagnosticKind::UnterminatedToolCalls, ""),
            Mode::Reasoning => {
                let promote = self.opts.promote_unclosed_reasoning
                    && self.out.ended_by_eos
                    && self.out.content.is_empty()
                    && self.out.tool_calls.is_empty();
                if promote {
                    let text = std::mem::take(&mut self.out.reasoning);
                    self.out.content.clone_from(&text);
                    self.diag(DiagnosticKind::UnclosedReasoningPromoted, "");
                    self.events.push(OutputEvent::ReasoningPromoted(text));
                }
            }
            Mode::Content => {}
        }
        self.finished = true;
        self.take_events()
    }

    fn take_events(&mut self) -> Vec<OutputEvent> {
        std::mem::take(&mut self.events)
    }

    fn feed(&mut self, text: &str) {
        self.pending.push_str(text);
        self.pump(false);
    }

    fn diag(&mut self, kind: DiagnosticKind, detail: &str) {
        let d = Diagnostic {
            kind,
            detail: shorten(detail),
        };
        self.out.diagnostics.push(d.clone());
        self.events.push(OutputEvent::Diagnostic(d));
    }

    fn pump(&mut self, at_end: bool) {
        loop {
            let progressed = match self.mode {
                Mode::Reasoning | Mode::Content => self.step_text(at_end),
                Mode::Block | Mode::Invoke => self.step_structure(at_end),
                Mode::Param => self.step_param(at_end),
            };
            if !progressed {
                break;
            }
        }
    }

    /// Emits reasoning or content text (per the current mode).
    fn emit_text(&mut self, mut text: &str) {
        if self.mode == Mode::Content && self.after_block {
            text = text.trim_start();
            if text.is_empty() {
                return;
            }
            self.after_block = false;
        }
        if text.is_empty() {
            return;
        }
        if self.mode == Mode::Reasoning {
            self.out.reasoning.push_str(text);
            self.events.push(OutputEvent::Reasoning(text.to_owned()));
        } else {
            self.out.content.push_str(text);
            self.events.push(OutputEvent::Content(text.to_owned()));
        }
    }

    /// Emits `pending[..upto]` and removes it.
    fn emit_pending(&mut self, upto: usize) {
        let head: String = self.pending.drain(..upto).collect();
        self.emit_text(&head);
    }

    /// Text modes: find the next possible marker; emit what is certain.
    fn step_text(&mut self, at_end: bool) -> bool {
        let Some(p) = self.pending.find(['<', '｜']) else {
            let keep = if at_end {
                0
            } else {
                trailing_ws(&self.pending)
            };
            self.emit_pending(self.pending.len() - keep);
            return false;
        };
        let hold = |s: &Self| {
            if at_end {
                0
            } else {
                trailing_ws(&s.pending[..p])
            }
        };
        if self.pending[p..].starts_with('｜') {
            let dsml = SpecialToken::Dsml.content();
            if self.pending[p..].starts_with(dsml) {
                self.emit_pending(p);
                self.pending.drain(..dsml.len());
                self.diag(DiagnosticKind::StrayTag, dsml);
                return true;
            }
            if !at_end && dsml.starts_with(&self.pending[p..]) {
                let keep = hold(self);
                self.emit_pending(p - keep);
                return false;
            }
            self.emit_pending(p + '｜'.len_utf8());
            return true;
        }
        match lex(&self.pending[p..], at_end) {
            Lexed::NeedMore => {
                let keep = hold(self);
                self.emit_pending(p - keep);
                false
            }
            Lexed::NotTag => {
                self.emit_pending(p + 1);
                true
            }
            Lexed::Tag { len, tag } => {
                self.text_tag(p, len, &tag);
                true
            }
        }
    }

    /// Handles a tag found at `pending[p..p + len]` in a text mode.
    fn text_tag(&mut self, p: usize, len: usize, tag: &Tag) {
        let tag_text = self.pending[p..p + len].to_owned();
        let opens_block = !tag.closing
            && ((tag.name == TagName::ToolCalls && (tag.marked || self.opts.accept_plain_tags))
                || (tag.name == TagName::Invoke && tag.marked));
        if opens_block {
            let before = &self.pending[..p];
            let mut keep = before.len();
            for _ in 0..SEPARATOR_NEWLINES {
                if self.pending[..keep].ends_with('\n') {
                    keep -= 1;
                }
            }
            self.emit_pending(keep);
            self.pending.drain(..p - keep);
            if self.mode == Mode::Reasoning {
                self.diag(DiagnosticKind::ToolCallsInReasoning, "");
            }
            if !tag.canonical {
                self.diag(DiagnosticKind::NonCanonicalTag, &tag_text);
            }
            self.mode = Mode::Block;
            if tag.name == TagName::ToolCalls {
                self.pending.drain(..len);
            } else {
                // Leave the invoke tag for the block to parse.
                self.diag(DiagnosticKind::MissingToolCallsOpener, &tag_text);
            }
            return;
        }
        self.emit_pending(p);
        match (tag.name, tag.closing, self.mode) {
            (TagName::Think, true, Mode::Reasoning) => {
                self.pending.drain(..len);
                self.mode = Mode::Content;
            }
            (TagName::Think, false, Mode::Content) => {
                self.pending.drain(..len);
                self.diag(DiagnosticKind::StrayTag, &tag_text);
                self.mode = Mode::Reasoning;
            }
            (TagName::Think, _, _) => {
                self.pending.drain(..len);
                self.diag(DiagnosticKind::StrayTag, &tag_text);
            }
            _ if tag.marked => {
                self.pending.drain(..len);
                self.diag(DiagnosticKind::StrayTag, &tag_text);
            }
            _ => self.emit_pending(len),
        }
    }

    /// Block and invoke modes: whitespace and tags only.
    fn step_structure(&mut self, at_end: bool) -> bool {
        if self.stray.is_empty() {
            let ws = self.pending.len() - self.pending.trim_start().len();
            self.pending.drain(..ws);
        }
        if self.pending.is_empty() {
            return false;
        }
        if self.pending.starts_with(SpecialToken::Dsml.content()) {
            self.pending.drain(..SpecialToken::Dsml.content().len());
            self.stray.push_str(SpecialToken::Dsml.content());
            return true;
        }
        if !self.pending.starts_with('<') {
            self.take_stray();
            return true;
        }
        match lex(&self.pending, at_end) {
            Lexed::NeedMore => false,
            Lexed::NotTag => {
                self.take_stray();
                true
            }
            Lexed::Tag { len, tag } => {
                self.flush_stray();
                let text: String = self.pending.drain(..len).collect();
                let structural =
                    tag.name != TagName::Think && (tag.marked || self.opts.accept_plain_tags);
                if !structural {
                    self.diag(DiagnosticKind::StrayTag, &text);
                } else {
                    if !tag.canonical {
                        self.diag(DiagnosticKind::NonCanonicalTag, &text);
                    }
                    self.structure_tag(&tag, &text);
                }
                true
            }
        }
    }

    /// Moves the first character of `pending` and the text up to the next `<`
    /// into the stray-text buffer.
    fn take_stray(&mut self) {
        let first = self.pending.chars().next().map_or(0, char::len_utf8);
        let end = self.pending[first..]
            .find('<')
            .map_or(self.pending.len(), |i| i + first);
        let text: String = self.pending.drain(..end).collect();
        self.stray.push_str(&text);
    }

    fn flush_stray(&mut self) {
        if !self.stray.trim().is_empty() {
            let text = std::mem::take(&mut self.stray);
            self.diag(DiagnosticKind::StrayText, text.trim());
        }
        self.stray.clear();
    }

    fn structure_tag(&mut self, tag: &Tag, text: &str) {
        match (self.mode, tag.name, tag.closing) {
            (Mode::Block, TagName::Invoke, false) => self.start_call(tag),
            (Mode::Block, TagName::ToolCalls, true) => self.close_block(),
            (Mode::Invoke, TagName::Parameter, false) => self.start_param(tag),
            (Mode::Invoke, TagName::Invoke, true) => {
                self.end_call(true);
                self.mode = Mode::Block;
            }
            (Mode::Invoke, TagName::Invoke, false) => {
                self.missing_close("invoke");
                self.end_call(true);
                self.start_call(tag);
            }
            (Mode::Invoke, TagName::ToolCalls, true) => {
                self.missing_close("invoke");
                self.end_call(true);
                self.close_block();
            }
            _ => self.diag(DiagnosticKind::StrayTag, text),
        }
    }

    fn close_block(&mut self) {
        self.mode = Mode::Content;
        self.after_block = true;
    }

    fn missing_close(&mut self, tag: &'static str) {
        if let Some(call) = &mut self.call {
            call.issues.push(ToolCallIssue::MissingCloseTag { tag });
        }
    }

    fn args_delta(&mut self, fragment: &str) {
        if let Some(call) = &mut self.call {
            call.arguments.push_str(fragment);
            self.events.push(OutputEvent::ToolCallArgumentsDelta {
                index: call.index,
                fragment: fragment.to_owned(),
            });
        }
    }

    fn start_call(&mut self, tag: &Tag) {
        let mut issues = Vec::new();
        let name = match tag.attr("name") {
            Some(name) => name.to_owned(),
            None => {
                issues.push(ToolCallIssue::MissingName);
                String::new()
            }
        };
        let index = self.n_calls;
        self.n_calls += 1;
        self.events.push(OutputEvent::ToolCallStart {
            index,
            name: name.clone(),
        });
        self.call = Some(OpenCall {
            index,
            name,
            arguments: String::new(),
            param_names: Vec::new(),
            issues,
        });
        self.mode = Mode::Invoke;
    }

    fn start_param(&mut self, tag: &Tag) {
        let name = tag.attr("name").unwrap_or_default().to_owned();
        let string = match tag.attr("string").map(str::to_ascii_lowercase).as_deref() {
            Some("true") => Some(true),
            Some("false") => Some(false),
            _ => None,
        };
        let mut prefix = String::new();
        if let Some(call) = &mut self.call {
            prefix.push_str(if call.param_names.is_empty() {
                "{"
            } else {
                ", "
            });
            if call.param_names.contains(&name) {
                call.issues.push(ToolCallIssue::DuplicateParameter {
                    parameter: name.clone(),
                });
            }
            call.param_names.push(name.clone());
        }
        pyjson::dumps_str(&name, &mut prefix);
        prefix.push_str(": ");
        if string == Some(true) {
            prefix.push('"');
        }
        self.args_delta(&prefix);
        self.param = Some(OpenParam {
            name,
            string,
            raw: String::new(),
        });
        self.mode = Mode::Param;
    }

    /// Adds raw value text to the open parameter (streamed if it is a string).
    fn param_text(&mut self, text: &str) {
        let Some(param) = &mut self.param else { return };
        if param.string == Some(true) {
            let mut escaped = String::new();
            pyjson::dumps_str(text, &mut escaped);
            // Drop the quotes dumps_str adds around the fragment.
            let inner = &escaped[1..escaped.len() - 1];
            self.args_delta(inner);
        } else {
            param.raw.push_str(text);
        }
    }

    fn end_param(&mut self) {
        let Some(param) = self.param.take() else {
            return;
        };
        let mut fragment = String::new();
        let mut issues = Vec::new();
        if param.string == Some(true) {
            fragment.push('"');
        } else {
            let valid = matches!(pyjson::loads(&param.raw), Ok(v) if finite(&v));
            if param.string.is_none() {
                issues.push(ToolCallIssue::MissingStringAttribute {
                    parameter: param.name.clone(),
                });
            } else if !valid {
                issues.push(ToolCallIssue::InvalidJsonValue {
                    parameter: param.name.clone(),
                    raw: param.raw.clone(),
                });
            }
            if valid {
                fragment.push_str(&param.raw);
            } else {
                pyjson::dumps_str(&param.raw, &mut fragment);
            }
        }
        if let Some(call) = &mut self.call {
            call.issues.extend(issues);
        }
        self.args_delta(&fragment);
        self.mode = Mode::Invoke;
    }

    fn end_call(&mut self, closed: bool) {
        if self.param.is_some() {
            if let Some(call) = &mut self.call {
                call.issues
                    .push(ToolCallIssue::MissingCloseTag { tag: "parameter" });
            }
            self.end_param();
        }
        let Some(call) = &self.call else { return };
        let tail = if call.param_names.is_empty() {
            "{}"
        } else {
            "}"
        };
        if !closed {
            self.missing_close("invoke");
        }
        self.args_delta(tail);
        let Some(call) = self.call.take() else { return };
        let parsed = ParsedToolCall {
            index: call.index,
            name: call.name,
            arguments: call.arguments,
            issues: call.issues,
            closed,
        };
        self.out.tool_calls.push(parsed.clone());
        self.events.push(OutputEvent::ToolCallEnd {
            index: parsed.index,
            call: parsed,
        });
        self.mode = Mode::Block;
    }

    /// Parameter mode: raw value text until the closing tag.
    fn step_param(&mut self, at_end: bool) -> bool {
        let Some(p) = self.pending.find('<') else {
            let text = std::mem::take(&mut self.pending);
            self.param_text(&text);
            return false;
        };
        if p > 0 {
            let text: String = self.pending.drain(..p).collect();
            self.param_text(&text);
        }
        match lex(&self.pending, at_end) {
            Lexed::NeedMore => false,
            Lexed::NotTag => {
                self.pending.drain(..1);
                self.param_text("<");
                true
            }
            Lexed::Tag { len, tag } => {
                let closes = tag.name == TagName::Parameter
                    && tag.closing
                    && (tag.marked || self.opts.accept_plain_tags);
                let implicit = tag.marked
                    && matches!(
                        (tag.name, tag.closing),
                        (TagName::Invoke, _)
                            | (TagName::ToolCalls, true)
                            | (TagName::Parameter, false)
                    );
                if closes {
                    let text: String = self.pending.drain(..len).collect();
                    if !tag.canonical {
                        self.diag(DiagnosticKind::NonCanonicalTag, &text);
                    }
                    self.end_param();
                } else if implicit {
                    self.missing_close("parameter");
                    self.end_param();
                } else {
                    self.pending.drain(..1);
                    self.param_text("<");
                }
                true
            }
        }
    }
}

/// JSON has no NaN or infinities; Python's `json.loads` accepts them.
fn finite(value: &PyValue) -> bool {
    match value {
        PyValue::Float(f) => f.is_finite(),
        PyValue::Array(items) => items.iter().all(finite),
        PyValue::Object(items) => items.iter().all(|(_, v)| finite(v)),
        _ => true,
    }
}
