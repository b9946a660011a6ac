//! Tool definitions and `tool_choice` / structured-output handling shared by
//! the three APIs.
//!
//! Function tools become the encoder's `## Tools` schemas (rendered as given,
//! key order kept) and grammar [`ToolSpec`]s. Freeform `custom` tools (Codex's
//! `apply_patch`) become a function with one string parameter `input`, and
//! calls to them are turned back into custom calls on output. Hosted tool
//! types the model cannot run (web search, code interpreter, Anthropic server
//! tools…) are skipped, not refused.
//!
//! Decoding policy ([`decoding`]): no tools or `tool_choice: none` bans the
//! `｜DSML｜` token (the tools stay in the prompt, so the cached prefix is
//! kept); `required` / named / a JSON `response_format` are enforced by a
//! grammar (`constrain`); `auto` constrains a block once the model opens one.

use std::collections::HashSet;

use dsv4_engine::LogitMask;
use dsv4_tokenizer::chat::Tool;
use serde_json::{Map, Value, json};

use crate::constrain::{Constraint, ToolMode, ToolSpec};
use crate::errors::ApiError;
use crate::state::Ready;

/// The tools of a request, in both forms.
#[derive(Debug, Clone, Default)]
pub(crate) struct ToolSet {
    /// For the prompt.
    pub(crate) render: Vec<Tool>,
    /// For the grammar.
    pub(crate) specs: Vec<ToolSpec>,
    /// Names of freeform (custom) tools.
    pub(crate) custom: HashSet<String>,
}

/// The parameters schema given to a freeform tool.
fn custom_parameters() -> Value {
    json!({
        "type": "object",
        "properties": {"input": {"type": "string", "description": "The raw input of the tool (freeform text, not JSON)."}},
        "required": ["input"]
    })
}

impl ToolSet {
    /// Adds a function tool. `parameters` may be absent (no arguments).
    pub(crate) fn function(
        &mut self,
        name: &str,
        description: Option<&str>,
        parameters: Option<&Value>,
    ) {
        let mut f = Map::new();
        f.insert("name".into(), Value::String(name.to_string()));
        if let Some(d) = description {
            f.insert("description".into(), Value::String(d.to_string()));
        }
        if let Some(p) = parameters {
            f.insert("parameters".into(), p.clone());
        }
        self.render.push(Tool {
            kind: Some("function".into()),
            function: f,
        });
        self.specs.push(ToolSpec {
            name: name.to_string(),
            parameters: parameters.cloned(),
        });
    }

    /// Adds a freeform tool (`format` is its grammar description, if any).
    pub(crate) fn custom(&mut self, name: &str, description: Option<&str>, format: Option<&Value>) {
        let mut d = description.unwrap_or_default().to_string();
        if let Some(def) = format
            .and_then(|f| f.get("definition"))
            .and_then(Value::as_str)
        {
            let syntax = format
                .and_then(|f| f.get("syntax"))
                .and_then(Value::as_str)
                .unwrap_or("grammar");
            d.push_str(&format!(
                "\n\nThe input must follow this {syntax} grammar:\n{def}"
            ));
        }
        let params = custom_parameters();
        self.function(name, Some(d.trim()), Some(&params));
        self.custom.insert(name.to_string());
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// OpenAI chat `tools`: `{type: function, function: {...}}` and
    /// `{type: custom, custom: {...}}`; other types are skipped.
    pub(crate) fn from_openai_chat(tools: &[Value]) -> Result<ToolSet, ApiError> {
        let mut set = ToolSet::default();
        for (i, t) in tools.iter().enumerate() {
            let kind = t.get("type").and_then(Value::as_str).unwrap_or("function");
            let body = match kind {
                "function" => t.get("function"),
                "custom" => t.get("custom"),
                other => {
                    tracing::debug!(kind = other, "tool type skipped");
                    continue;
                }
            };
            let name = tool_name(body, i, "")?;
            let description = body
                .and_then(|b| b.get("description"))
                .and_then(Value::as_str);
            if kind == "custom" {
                set.custom(name, description, body.and_then(|b| b.get("format")));
            } else {
                set.function(name, description, body.and_then(|b| b.get("parameters")));
            }
        }
        Ok(set)
    }
}

/// `tool_choice`, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Choice {
    Auto,
    None,
    Required,
    Named(String),
}

impl Choice {
    /// OpenAI (chat and Responses) spellings: `"auto" | "none" | "required"`,
    /// `{type: function, function: {name}}`, `{type: function|custom, name}`,
    /// `{type: allowed_tools, mode}`.
    pub(crate) fn from_openai(v: Option<&Value>) -> Result<Choice, ApiError> {
        let Some(v) = v else { return Ok(Choice::Auto) };
        let bad = || {
            ApiError::invalid_param(
                "tool_choice",
                "tool_choice must be \"auto\", \"none\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": …}}",
            )
        };
        match v {
            Value::Null => Ok(Choice::Auto),
            Value::String(s) => match s.as_str() {
                "auto" => Ok(Choice::Auto),
                "none" => Ok(Choice::None),
                "required" | "any" => Ok(Choice::Required),
                _ => Err(bad()),
            },
            Value::Object(o) => {
                let name = o
                    .get("function")
                    .and_then(|f| f.get("name"))
                    .or_else(|| o.get("name"))
                    .or_else(|| o.get("custom").and_then(|c| c.get("name")))
                    .and_then(Value::as_str);
                match (o.get("type").and_then(Value::as_str), name) {
                    (Some("allowed_tools"), _) => match o.get("mode").and_then(Value::as_str) {
                        Some("required") => Ok(Choice::Required),
                        _ => Ok(Choice::Auto),
                    },
                    (_, Some(n)) => Ok(Choice::Named(n.to_string())),
                    _ => Err(bad()),
                }
            }
            _ => Err(bad()),
        }
    }
}

/// The non-empty string `name` of tool definition `obj` (`None` counts as
/// missing), or a 400 naming `tools[i]` (`at` is the path inside it).
pub(crate) fn tool_name<'a>(
    obj: Option<&'a Value>,
    i: usize,
    at: &str,
) -> Result<&'a str, ApiError> {
    obj.and_then(|b| b.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::invalid_param(&format!("tools[{i}]{at}"), "a tool needs a non-empty name")
        })
}

/// Structured output requested by `response_format` (chat) or `text.format`
/// (Responses).
pub(crate) fn json_format(v: Option<&Value>) -> Result<Option<Constraint>, ApiError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    match v.get("type").and_then(Value::as_str) {
        Some("text") | None => Ok(None),
        Some("json_object") => Ok(Some(Constraint::Json { schema: None })),
        Some("json_schema") => {
            let schema = v
                .get("json_schema")
                .and_then(|j| j.get("schema"))
                .or_else(|| v.get("schema"))
                .cloned()
                .ok_or_else(|| {
                    ApiError::invalid_param("response_format", "json_schema needs a `schema`")
                })?;
            Ok(Some(Constraint::Json {
                schema: Some(schema),
            }))
        }
        Some(other) => Err(ApiError::invalid_param(
            "response_format",
            format!(
                "unsupported response_format type {other:?}; use text, json_object or json_schema"
            ),
        )),
    }
}

/// What the engine request carries for tools and formats.
#[derive(Debug)]
pub(crate) struct Decoding {
    pub(crate) mask: Option<Box<dyn LogitMask>>,
    /// Tokens to ban with logit bias (`｜DSML｜` when no call may be made).
    pub(crate) ban: Vec<u32>,
    /// Plain (marker-less) DSML tags count as calls.
    pub(crate) plain_tags: bool,
}

/// Inputs of [`decoding`].
#[derive(Debug)]
pub(crate) struct DecodingRequest<'a> {
    pub(crate) tools: &'a ToolSet,
    pub(crate) choice: Choice,
    pub(crate) parallel: bool,
    pub(crate) format: Option<Constraint>,
    pub(crate) thinking: bool,
    pub(crate) max_tokens: Option<usize>,
    pub(crate) constrain_auto: bool,
}

/// Decides and builds the decoding constraints of a request.
pub(crate) fn decoding(ready: &Ready, r: DecodingRequest<'_>) -> Result<Decoding, ApiError> {
    let no_calls = r.tools.is_empty() || r.choice == Choice::None;
    let mode = match &r.choice {
        Choice::Required if r.tools.is_empty() => {
            return Err(ApiError::invalid_param(
                "tool_choice",
                "tool_choice is \"required\" but the request has no tools",
            ));
        }
        Choice::Named(n) if !r.tools.specs.iter().any(|t| &t.name == n) => {
            return Err(ApiError::invalid_param(
                "tool_choice",
                format!("tool_choice names {n:?}, which is not among the request's tools"),
            ));
        }
        Choice::Required => Some(ToolMode::Required),
        Choice::Named(n) => Some(ToolMode::Named(n.clone())),
        Choice::Auto if !no_calls && r.format.is_none() && r.constrain_auto => Some(ToolMode::Auto),
        _ => None,
    };
    let constraint = match (mode, r.format) {
        (Some(mode), _) => Some(Constraint::Tools {
            tools: r.tools.specs.clone(),
            mode,
            parallel: r.parallel,
        }),
        (None, format) => format,
    };
    let mask = match &constraint {
        Some(c) => {
            let m: Box<dyn LogitMask> =
                Box::new(ready.constraints.mask(c, r.thinking, r.max_tokens)?);
            Some(m)
        }
        None => None,
    };
    let forbid_calls = no_calls || matches!(constraint, Some(Constraint::Json { .. }));
    Ok(Decoding {
        mask,
        ban: if forbid_calls {
            vec![ready.ids.dsml]
        } else {
            Vec::new()
        },
        plain_tags: !forbid_calls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_and_formats() {
        assert_eq!(Choice::from_openai(None).unwrap(), Choice::Auto);
        assert_eq!(
            Choice::from_openai(Some(&json!("required"))).unwrap(),
            Choice::Required
        );
        assert_eq!(
            Choice::from_openai(Some(
                &json!({"type": "function", "function": {"name": "f"}})
            ))
            .unwrap(),
            Choice::Named("f".into())
        );
        assert_eq!(
            Choice::from_openai(Some(&json!({"type": "function", "name": "g"}))).unwrap(),
            Choice::Named("g".into())
        );
        assert!(Choice::from_openai(Some(&json!("sometimes"))).is_err());
        assert!(Choice::from_openai(Some(&json!(3))).is_err());
        assert_eq!(json_format(Some(&json!({"type": "text"}))).unwrap(), None);
        assert_eq!(
            json_format(Some(&json!({"type": "json_object"}))).unwrap(),
            Some(Constraint::Json { schema: None })
        );
        let s = json_format(Some(
            &json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}),
        ));
        assert_eq!(
            s.unwrap(),
            Some(Constraint::Json {
                schema: Some(json!({"type": "object"}))
            })
        );
        assert!(json_format(Some(&json!({"type": "json_schema"}))).is_err());
        assert!(json_format(Some(&json!({"type": "yaml"}))).is_err());
    }

    #[test]
    fn tool_sets() {
        let t = ToolSet::from_openai_chat(&[
            json!({"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}),
            json!({"type": "web_search"}),
            json!({"type": "custom", "custom": {"name": "apply_patch", "format": {"type": "grammar", "syntax": "lark", "definition": "start: x"}}}),
        ])
        .unwrap();
        assert_eq!(t.specs.len(), 2);
        assert!(t.custom.contains("apply_patch"));
        assert_eq!(
            t.render[0].function.keys().collect::<Vec<_>>(),
            ["name", "description", "parameters"]
        );
        assert!(ToolSet::from_openai_chat(&[json!({"type": "function", "function": {}})]).is_err());
    }
}
