//! DSML, DeepSeek's tool-call markup: rendering and streaming parsing.
//!
//! * [`render`]: tool calls → DSML segments (used by the chat renderer).
//! * [`OutputParser`]: generated pieces → reasoning, content and tool calls.
//!
//! Only `｜DSML｜` (id 128825 in V4) is a control token; tag words, attribute
//! names and values are ordinary text, which is why garbled variants exist and
//! the parser repairs them.

mod lexer;
mod parser;
pub mod render;

pub use parser::{
    Diagnostic, DiagnosticKind, OutputEvent, OutputParser, ParsedOutput, ParsedToolCall,
    ParserOptions, TokenPiece, ToolCallIssue,
};
pub use render::{DsmlParam, arguments_to_params, tool_calls_segments};
