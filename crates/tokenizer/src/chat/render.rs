//! The DeepSeek V4 prompt renderer.
//!
//! Owns the rendering of a message list into [`Segment`]s, reproducing the
//! official April `encoding_dsv4.py` byte for byte (checked against it by
//! tests/chat_golden.rs). Pipeline, as the official `encode_messages`:
//! 1. merge `tool` messages (and consecutive user messages) into user turns made
//!    of blocks; 2. reorder each turn's tool results to the order of the
//!    preceding assistant's `tool_calls` ids; 3. in thinking mode with
//!    `drop_thinking` (forced off when any message carries tools), drop old
//!    reasoning and old developer messages; 4. render each message plus the
//!    transition after it (`<｜Assistant｜>` + `<think>`/`</think>`, task tokens).
//!
//! Injection safety: text from messages (content, reasoning, tool names,
//! arguments, schemas) becomes [`Segment::Text`] only. Control tokens come from
//! the format itself; template text is split at the special strings it contains
//! (`｜DSML｜`, `<think>`, `</think>`), exactly where HF would split the
//! official prompt string.
//!
//! Deliberate extensions where the official encoder errors or has no input
//! form (documented on the types): array content for any role (flattened),
//! user content null (empty), non-object or object `arguments`.

use serde_json::Value;

use super::effort::{Checkpoint, Effort};
use super::messages::{ChatMessage, FunctionCall, MessageContent, Role, Task, Tool};
use crate::dsml::render::render_tool_calls;
use crate::error::RenderError;
use crate::pyjson;
use crate::special::SpecialToken;
use crate::tokenizer::{Segment, Tokenizer};

/// How to render a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderOptions {
    /// Which release's effort table to use.
    pub checkpoint: Checkpoint,
    /// Thinking mode (`<think>` after `<｜Assistant｜>`) or chat mode (`</think>`).
    pub thinking: bool,
    /// Effort level (affects thinking mode only).
    pub effort: Effort,
    /// Drop reasoning before the last user turn (official default true; forced
    /// off when any message has tools).
    pub drop_thinking: bool,
    /// Start with the BOS token (official default true).
    pub add_bos: bool,
}

impl RenderOptions {
    /// Thinking on, the checkpoint's default effort, drop_thinking and BOS on.
    pub fn new(checkpoint: Checkpoint) -> Self {
        Self {
            checkpoint,
            thinking: true,
            effort: checkpoint.default_effort(),
            drop_thinking: true,
            add_bos: true,
        }
    }
}

/// A rendered prompt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prompt {
    /// Control tokens and text, adjacent text merged.
    pub segments: Vec<Segment>,
}

impl Prompt {
    /// The prompt as one string (control tokens as their text), i.e. what the
    /// official encoder returns.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Special(tok) => out.push_str(tok.content()),
                Segment::Text(text) => out.push_str(text),
            }
        }
        out
    }

    /// Token ids of the prompt.
    pub fn encode(&self, tokenizer: &Tokenizer) -> Vec<u32> {
        tokenizer.encode_segments(&self.segments)
    }
}

/// Builds segments, merging adjacent text.
#[derive(Debug, Default)]
pub(crate) struct SegmentBuilder {
    segments: Vec<Segment>,
}

/// Special strings that occur in the format's own template text.
const TEMPLATE_SPECIALS: [SpecialToken; 3] = [
    SpecialToken::Dsml,
    SpecialToken::ThinkStart,
    SpecialToken::ThinkEnd,
];

impl SegmentBuilder {
    pub(crate) fn special(&mut self, token: SpecialToken) {
        self.segments.push(Segment::Special(token));
    }

    /// Untrusted text: always plain text.
    pub(crate) fn text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if let Some(Segment::Text(last)) = self.segments.last_mut() {
            last.push_str(text);
        } else {
            self.segments.push(Segment::Text(text.to_owned()));
        }
    }

    /// Template text: the special strings it contains become control tokens.
    pub(crate) fn template(&mut self, mut text: &str) {
        while !text.is_empty() {
            let next = TEMPLATE_SPECIALS
                .iter()
                .filter_map(|t| text.find(t.content()).map(|at| (at, *t)))
                .min_by_key(|&(at, _)| at);
            match next {
                Some((at, tok)) => {
                    self.text(&text[..at]);
                    self.special(tok);
                    text = &text[at + tok.content().len()..];
                }
                None => {
                    self.text(text);
                    break;
                }
            }
        }
    }

    pub(crate) fn finish(self) -> Vec<Segment> {
        self.segments
    }
}

const TOOLS_HEAD: &str = "## Tools

You have access to a set of tools to help answer the user's question. You can invoke tools by writing a \"<｜DSML｜tool_calls>\" block like the following:

<｜DSML｜tool_calls>
<｜DSML｜invoke name=\"$TOOL_NAME\">
<｜DSML｜parameter name=\"$PARAMETER_NAME\" string=\"true|false\">$PARAMETER_VALUE</｜DSML｜parameter>
...
</｜DSML｜invoke>
<｜DSML｜invoke name=\"$TOOL_NAME2\">
...
</｜DSML｜invoke>
</｜DSML｜tool_calls>

String parameters should be specified as is and set `string=\"true\"`. For all other types (numbers, booleans, arrays, objects), pass the value in JSON format and set `string=\"false\"`.

If thinking_mode is enabled (triggered by <think>), you MUST output your complete reasoning inside <think>...</think> BEFORE any tool calls or final response.

Otherwise, output directly after </think> with tool calls or final response.

### Available Tool Schemas

";

const TOOLS_TAIL: &str = "\n\nYou MUST strictly follow the above defined tool name and parameter schemas to invoke tool calls.\n";

const RESPONSE_FORMAT_HEAD: &str =
    "## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n";

/// A content block of a merged user turn.
#[derive(Debug, Clone)]
enum Block<'a> {
    Text(String),
    ToolResult {
        id: Option<&'a str>,
        content: String,
    },
}

/// A message after merging, as the official `render_message` sees it.
#[derive(Debug, Clone)]
struct Item<'a> {
    role: Role,
    /// The source message (the first one, for merged user turns).
    msg: &'a ChatMessage,
    /// Index of the source message in the input (for errors).
    index: usize,
    /// User turns only.
    blocks: Vec<Block<'a>>,
    /// Whether reasoning was dropped.
    reasoning_dropped: bool,
    /// The task (a user turn made from a tool message has none).
    task: Option<Task>,
}

impl<'a> Item<'a> {
    fn new(role: Role, msg: &'a ChatMessage, index: usize, blocks: Vec<Block<'a>>) -> Self {
        let task = if msg.role == Role::Tool {
            None
        } else {
            msg.task
        };
        Self {
            role,
            msg,
            index,
            blocks,
            reasoning_dropped: false,
            task,
        }
    }

    fn task(&self) -> Option<Task> {
        self.task
    }
}

fn tool_result_text(content: Option<&MessageContent>) -> String {
    // Python formats a missing/null tool content with str(None).
    content.map_or_else(|| "None".to_owned(), MessageContent::flatten)
}

/// Step 1: official `merge_tool_messages`.
fn merge(messages: &[ChatMessage]) -> Vec<Item<'_>> {
    let mut merged: Vec<Item<'_>> = Vec::with_capacity(messages.len());
    for (index, msg) in messages.iter().enumerate() {
        let last_user = merged.last_mut().filter(|m| m.role == Role::User);
        match msg.role {
            Role::Tool => {
                let block = Block::ToolResult {
                    id: msg.tool_call_id.as_deref(),
                    content: tool_result_text(msg.content.as_ref()),
                };
                match last_user {
                    Some(item) => item.blocks.push(block),
                    None => merged.push(Item::new(Role::User, msg, index, vec![block])),
                }
            }
            Role::User => {
                let block = Block::Text(
                    msg.content
                        .as_ref()
                        .map(MessageContent::flatten)
                        .unwrap_or_default(),
                );
                match last_user.filter(|item| item.task().is_none()) {
                    Some(item) => item.blocks.push(block),
                    None => merged.push(Item::new(Role::User, msg, index, vec![block])),
                }
            }
            role => merged.push(Item::new(role, msg, index, Vec::new())),
        }
    }
    merged
}

/// Step 2: official `sort_tool_results_by_call_order`.
fn sort_tool_results(items: &mut [Item<'_>]) {
    let mut order: Vec<(&str, usize)> = Vec::new();
    for item in items.iter_mut() {
        match item.role {
            Role::Assistant => {
                let calls = item.msg.tool_calls.as_deref().unwrap_or_default();
                if !calls.is_empty() {
                    order.clear();
                    for (k, call) in calls.iter().enumerate() {
                        let id = call
                            .id
                            .as_deref()
                            .filter(|s| !s.is_empty())
                            .or(call.function.id.as_deref());
                        if let Some(id) = id.filter(|s| !s.is_empty()) {
                            match order.iter_mut().find(|(known, _)| *known == id) {
                                Some(entry) => entry.1 = k,
                                None => order.push((id, k)),
                            }
                        }
                    }
                }
            }
            Role::User => {
                let n_results = item
                    .blocks
                    .iter()
                    .filter(|b| matches!(b, Block::ToolResult { .. }))
                    .count();
                if n_results > 1 && !order.is_empty() {
                    let rank = |b: &Block<'_>| match b {
                        Block::ToolResult { id: Some(id), .. } => order
                            .iter()
                            .find(|(known, _)| known == id)
                            .map_or(0, |e| e.1),
                        _ => 0,
                    };
                    let mut results: Vec<Block<'_>> = item
                        .blocks
                        .iter()
                        .filter(|b| matches!(b, Block::ToolResult { .. }))
                        .cloned()
                        .collect();
                    results.sort_by_key(|b| rank(b)); // stable, as Python's sorted
                    let mut sorted = results.into_iter();
                    for block in &mut item.blocks {
                        if matches!(block, Block::ToolResult { .. })
                            && let Some(next) = sorted.next()
                        {
                            *block = next;
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

fn last_user_index(items: &[Item<'_>]) -> Option<usize> {
    items
        .iter()
        .rposition(|m| matches!(m.role, Role::User | Role::Developer))
}

/// Step 3: official `_drop_thinking_messages`.
fn drop_thinking(items: Vec<Item<'_>>) -> Vec<Item<'_>> {
    let last_user = last_user_index(&items);
    items
        .into_iter()
        .enumerate()
        .filter_map(|(idx, mut item)| {
            let at_or_after = last_user.is_none_or(|l| idx >= l);
            match item.role {
                Role::User | Role::System | Role::LatestReminder | Role::Tool => Some(item),
                _ if at_or_after => Some(item),
                Role::Assistant => {
                    item.reasoning_dropped = true;
                    Some(item)
                }
                Role::Developer => None,
            }
        })
        .collect()
}

/// Python truthiness of an optional JSON value.
fn truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

fn render_tools(out: &mut SegmentBuilder, tools: &[Tool]) {
    out.template(TOOLS_HEAD);
    let mut schemas = String::new();
    for (i, tool) in tools.iter().enumerate() {
        if i > 0 {
            schemas.push('\n');
        }
        pyjson::dumps_serde(&Value::Object(tool.function.clone()), &mut schemas);
    }
    out.text(&schemas);
    out.template(TOOLS_TAIL);
}

/// Tools and response-format blocks of a system or developer message.
fn render_blocks(out: &mut SegmentBuilder, msg: &ChatMessage) {
    if let Some(tools) = msg.tools.as_deref().filter(|t| !t.is_empty()) {
        out.text("\n\n");
        render_tools(out, tools);
    }
    if truthy(msg.response_format.as_ref()) {
        out.text("\n\n");
        out.template(RESPONSE_FORMAT_HEAD);
        let mut schema = String::new();
        if let Some(format) = &msg.response_format {
            pyjson::dumps_serde(format, &mut schema);
        }
        out.text(&schema);
    }
}

fn content_text(msg: &ChatMessage) -> String {
    msg.content
        .as_ref()
        .map(MessageContent::flatten)
        .unwrap_or_default()
}

struct Ctx<'a, 'm> {
    items: &'a [Item<'m>],
    options: &'a RenderOptions,
    drop: bool,
    last_user: Option<usize>,
}

impl Ctx<'_, '_> {
    fn message(&self, i: usize, out: &mut SegmentBuilder) -> Result<(), RenderError> {
        let item = &self.items[i];
        let msg = item.msg;
        if i == 0 && self.options.thinking {
            out.template(self.options.checkpoint.effort_prefix(self.options.effort));
        }
        match item.role {
            Role::System => {
                out.text(&content_text(msg));
                render_blocks(out, msg);
            }
            Role::Developer => {
                let content = content_text(msg);
                if content.is_empty() {
                    return Err(RenderError::EmptyDeveloperMessage { index: item.index });
                }
                out.special(SpecialToken::User);
                out.text(&content);
                render_blocks(out, msg);
            }
            Role::User => {
                out.special(SpecialToken::User);
                for (k, block) in item.blocks.iter().enumerate() {
                    if k > 0 {
                        out.text("\n\n");
                    }
                    match block {
                        Block::Text(text) => out.text(text),
                        Block::ToolResult { content, .. } => {
                            out.text("<tool_result>");
                            out.text(content);
                            out.text("</tool_result>");
                        }
                    }
                }
            }
            Role::LatestReminder => {
                out.special(SpecialToken::LatestReminder);
                // Python formats a null content with str(None).
                let text = msg
                    .content
                    .as_ref()
                    .map_or_else(|| "None".to_owned(), MessageContent::flatten);
                out.text(&text);
            }
            Role::Assistant => self.assistant(i, out),
            // `merge` turns every tool message into a user block.
            Role::Tool => {}
        }
        self.transition(i, out);
        Ok(())
    }

    fn assistant(&self, i: usize, out: &mut SegmentBuilder) {
        let item = &self.items[i];
        let msg = item.msg;
        let prev_has_task = i > 0 && self.items[i - 1].task().is_some();
        if self.options.thinking
            && !prev_has_task
            && (!self.drop || self.last_user.is_none_or(|l| i > l))
        {
            if !item.reasoning_dropped {
                out.text(msg.reasoning_content.as_deref().unwrap_or_default());
            }
            out.special(SpecialToken::ThinkEnd);
        }
        out.text(&content_text(msg));
        if let Some(calls) = msg.tool_calls.as_deref().filter(|c| !c.is_empty()) {
            let functions: Vec<&FunctionCall> = calls.iter().map(|c| &c.function).collect();
            render_tool_calls(out, &functions);
        }
        if !msg.wo_eos {
            out.special(SpecialToken::Eos);
        }
    }

    fn transition(&self, i: usize, out: &mut SegmentBuilder) {
        let item = &self.items[i];
        if let Some(next) = self.items.get(i + 1)
            && !matches!(next.role, Role::Assistant | Role::LatestReminder)
        {
            return;
        }
        let think = |out: &mut SegmentBuilder, open: bool| {
            out.special(if open {
                SpecialToken::ThinkStart
            } else {
                SpecialToken::ThinkEnd
            });
        };
        if let Some(task) = item.task() {
            let token = match task {
                Task::Action => {
                    out.special(SpecialToken::Assistant);
                    think(out, self.options.thinking);
                    SpecialToken::TaskAction
                }
                Task::Query => SpecialToken::TaskQuery,
                Task::Authority => SpecialToken::TaskAuthority,
                Task::Domain => SpecialToken::TaskDomain,
                Task::Title => SpecialToken::TaskTitle,
                Task::ReadUrl => SpecialToken::TaskReadUrl,
            };
            out.special(token);
        } else if matches!(item.role, Role::User | Role::Developer) {
            out.special(SpecialToken::Assistant);
            let open =
                self.options.thinking && (!self.drop || self.last_user.is_some_and(|l| i >= l));
            think(out, open);
        }
    }
}

/// Renders `messages` into a prompt.
pub fn render_messages(
    messages: &[ChatMessage],
    options: &RenderOptions,
) -> Result<Prompt, RenderError> {
    let mut items = merge(messages);
    sort_tool_results(&mut items);
    let any_tools = items
        .iter()
        .any(|m| m.role != Role::User && m.msg.tools.as_ref().is_some_and(|t| !t.is_empty()));
    let drop = options.drop_thinking && !any_tools;
    if options.thinking && drop {
        items = drop_thinking(items);
    }
    let ctx = Ctx {
        last_user: last_user_index(&items),
        items: &items,
        options,
        drop,
    };
    let mut out = SegmentBuilder::default();
    if options.add_bos {
        out.special(SpecialToken::Bos);
    }
    for i in 0..items.len() {
        ctx.message(i, &mut out)?;
    }
    Ok(Prompt {
        segments: out.finish(),
    })
}
