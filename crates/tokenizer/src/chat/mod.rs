//! Chat prompt rendering for DeepSeek V4.
//!
//! There is no Jinja template: DeepSeek ships a Python encoder
//! (`encoding_dsv4.py`), and this module reimplements its behaviour (not its
//! code) byte for byte, producing typed [`crate::Segment`]s so control tokens can
//! only come from the format. Start from [`ChatRequest`] (an OpenAI-style
//! request) or [`render_messages`] with [`RenderOptions`].
//!
//! * [`messages`]: serde input types (messages, tools, requests).
//! * [`effort`]: checkpoints and reasoning-effort levels.
//! * [`render`]: the renderer.

pub mod effort;
pub mod messages;
pub mod render;

pub use effort::{APRIL_MAX_PREFIX, Checkpoint, Effort, EffortName, V0731_MAX_PREFIX};
pub use messages::{
    ChatMessage, ChatRequest, ContentPart, FunctionCall, MessageContent, Role, Task, Tool, ToolCall,
};
pub use render::{Prompt, RenderOptions, render_messages};
