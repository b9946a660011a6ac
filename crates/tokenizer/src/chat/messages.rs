//! Input types: OpenAI-style chat messages, tools and requests.
//!
//! Owns the serde structs the renderer reads. They mirror the OpenAI Chat
//! Completions message format (content as a string, an array of parts or null;
//! `tool_calls[].function.{name, arguments}`; `tool_call_id`;
//! `reasoning_content`, also accepted as `reasoning`) plus the fields of the
//! official encoder's own message dicts (`developer` and `latest_reminder`
//! roles, message-level `tools`/`response_format`, `task`, `wo_eos`), so a
//! server can deserialize requests straight into them. Unknown fields are
//! ignored. [`ChatRequest`] adds the request-level switches (`tools`,
//! `response_format`, thinking and effort spellings) and resolves them into
//! [`RenderOptions`]. Nothing here renders text.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::effort::{Checkpoint, EffortName};
use super::render::{Prompt, RenderOptions, render_messages};
use crate::error::RenderError;

/// A message author.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// System prompt; carries the tools and response-format blocks.
    System,
    /// User turn.
    User,
    /// Model turn.
    Assistant,
    /// Tool result; merged into a user turn as `<tool_result>…</tool_result>`.
    Tool,
    /// Developer instructions; rendered as a user turn (dropped before the last
    /// user turn when old reasoning is dropped).
    Developer,
    /// `<｜latest_reminder｜>` context.
    LatestReminder,
}

/// Message content: a string or an array of parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Typed parts (`{"type": "text", "text": …}`, `image_url`, …).
    Parts(Vec<ContentPart>),
}

/// One content part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentPart {
    /// Part type (`text`, `image_url`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// Text of a `text` part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Other fields, kept as given.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MessageContent {
    /// The content as one string: text parts joined by a blank line, other
    /// parts as `[Unsupported TYPE]` (the official encoder's rule for tool
    /// results, applied to every role).
    pub fn flatten(&self) -> String {
        match self {
            Self::Text(text) => text.clone(),
            Self::Parts(parts) => parts
                .iter()
                .map(|p| match (p.kind.as_str(), &p.text) {
                    ("text", text) => text.clone().unwrap_or_default(),
                    (other, _) => format!("[Unsupported {other}]"),
                })
                .collect::<Vec<_>>()
                .join("\n\n"),
        }
    }
}

/// Internal classification tasks of the official encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// `<｜action｜>`.
    Action,
    /// `<｜query｜>`.
    Query,
    /// `<｜authority｜>`.
    Authority,
    /// `<｜domain｜>`.
    Domain,
    /// `<｜title｜>`.
    Title,
    /// `<｜read_url｜>`.
    ReadUrl,
}

/// A tool call made by the assistant (OpenAI format).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Call id, used to order tool results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `"function"`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The function called.
    pub function: FunctionCall,
}

/// The function part of a [`ToolCall`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// Function name.
    pub name: String,
    /// Arguments: normally a JSON-object string. An object is also accepted and
    /// rendered key by key; other values follow the official encoder (one
    /// `arguments` parameter).
    #[serde(default)]
    pub arguments: Value,
    /// Some clients put the call id here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// A tool definition (OpenAI format); `function` is rendered as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// `"function"`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The function schema (`name`, `description`, `parameters`, …), key order kept.
    pub function: Map<String, Value>,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Author.
    pub role: Role,
    /// Content (null on assistant messages that only call tools).
    #[serde(default)]
    pub content: Option<MessageContent>,
    /// Reasoning of an assistant turn (`reasoning` is accepted as an alias).
    #[serde(default, alias = "reasoning", skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Tool calls of an assistant turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// The call a `tool` message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Optional author name (ignored by the format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Message-level tools (system/developer), as the official encoder takes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Message-level response format (system/developer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    /// Internal classification task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<Task>,
    /// Render an assistant turn without its EOS (continuation).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub wo_eos: bool,
}

impl ChatMessage {
    /// A message with only a role and text content.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: Some(MessageContent::Text(content.into())),
            reasoning_content: None,
            tool_calls: None,
            tool_call_id: None,
            name: None,
            tools: None,
            response_format: None,
            task: None,
            wo_eos: false,
        }
    }
}

/// The parts of an OpenAI-style chat request the prompt depends on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// Model id (`deepseek-chat` means thinking off, `deepseek-reasoner` on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Tools, rendered into the system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// Response format; anything but `{"type": "text"}` is rendered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Value>,
    /// `{"type": "enabled" | "disabled"}` or a boolean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Value>,
    /// `none`, `minimal`, `low`, `medium`, `high`, `xhigh` or `max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
    /// `thinking` / `enable_thinking` (bool), `thinking_mode` ("thinking"/"chat"),
    /// `drop_thinking` (bool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_template_kwargs: Option<Map<String, Value>>,
    /// Ollama-style thinking switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think: Option<bool>,
}

fn switch_value(value: &Value) -> Result<Option<bool>, RenderError> {
    match value {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "enabled" | "thinking" | "true" | "on" => Ok(Some(true)),
            "disabled" | "chat" | "false" | "off" => Ok(Some(false)),
            _ => Err(RenderError::UnknownThinkingMode(s.clone())),
        },
        Value::Object(map) => map.get("type").map_or(Ok(None), switch_value),
        other => Err(RenderError::UnknownThinkingMode(other.to_string())),
    }
}

impl ChatRequest {
    /// The explicit thinking switch of the request, if any: `thinking`, then
    /// `chat_template_kwargs.{thinking, enable_thinking, thinking_mode}`, then
    /// `think`.
    pub fn thinking_switch(&self) -> Result<Option<bool>, RenderError> {
        if let Some(v) = &self.thinking
            && let Some(b) = switch_value(v)?
        {
            return Ok(Some(b));
        }
        if let Some(kwargs) = &self.chat_template_kwargs {
            for key in ["thinking", "enable_thinking", "thinking_mode"] {
                if let Some(b) = kwargs.get(key).map(switch_value).transpose()?.flatten() {
                    return Ok(Some(b));
                }
            }
        }
        Ok(self.think)
    }

    /// Resolves thinking and effort (user-needs.md §2.2 precedence): explicit
    /// switches, then `reasoning_effort` (`effort_override` replaces it; `none`
    /// turns thinking off), then the model id (`deepseek-chat` off,
    /// `deepseek-reasoner` on), then `default_thinking`, then on.
    pub fn options(
        &self,
        checkpoint: Checkpoint,
        effort_override: Option<&str>,
        default_thinking: Option<bool>,
    ) -> Result<RenderOptions, RenderError> {
        let mut options = RenderOptions::new(checkpoint);
        let effort_name = effort_override
            .or(self.reasoning_effort.as_deref())
            .map(str::parse::<EffortName>)
            .transpose()?;
        let level = effort_name.map(|name| checkpoint.level(name));
        let by_model = match self.model.as_deref() {
            Some("deepseek-chat") => Some(false),
            Some("deepseek-reasoner") => Some(true),
            _ => None,
        };
        options.thinking = self
            .thinking_switch()?
            .or(level.map(|l| l.is_some()))
            .or(by_model)
            .or(default_thinking)
            .unwrap_or(true);
        if let Some(Some(effort)) = level {
            options.effort = effort;
        }
        if let Some(drop) = self
            .chat_template_kwargs
            .as_ref()
            .and_then(|k| k.get("drop_thinking"))
            .and_then(Value::as_bool)
        {
            options.drop_thinking = drop;
        }
        Ok(options)
    }

    /// The messages with the request-level `tools` and `response_format`
    /// attached to the first message if it is a system message, or to a new
    /// empty system message inserted first. `{"type": "text"}` is no format.
    pub fn conversation(&self) -> Vec<ChatMessage> {
        let mut messages = self.messages.clone();
        let tools = self.tools.clone().filter(|t| !t.is_empty());
        let format = self
            .response_format
            .clone()
            .filter(|f| f.get("type") != Some(&Value::String("text".into())) && !f.is_null());
        if tools.is_none() && format.is_none() {
            return messages;
        }
        if messages.first().is_none_or(|m| m.role != Role::System) {
            messages.insert(0, ChatMessage::new(Role::System, ""));
        }
        let system = &mut messages[0];
        if tools.is_some() {
            system.tools = tools;
        }
        if format.is_some() {
            system.response_format = format;
        }
        messages
    }

    /// Renders the request with resolved options.
    pub fn render(&self, options: &RenderOptions) -> Result<Prompt, RenderError> {
        render_messages(&self.conversation(), options)
    }
}
