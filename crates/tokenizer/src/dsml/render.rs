//! Rendering assistant tool calls as DSML.
//!
//! Owns the conversion of OpenAI tool calls (name + JSON arguments) into the
//! DSML block the official encoder writes (model-spec.md §9.2):
//!
//! ```text
//! \n\n<｜DSML｜tool_calls>\n
//! <｜DSML｜invoke name="NAME">\n
//! <｜DSML｜parameter name="K" string="true|false">V</｜DSML｜parameter>   (joined by \n)
//! \n</｜DSML｜invoke>                                                   (invokes joined by \n)
//! \n</｜DSML｜tool_calls>
//! ```
//!
//! A string argument is written raw with `string="true"`; any other value as
//! Python `json.dumps(v, ensure_ascii=False)` with `string="false"`. Arguments
//! that are not a JSON object become one parameter named `arguments` (the
//! official rule for invalid JSON, extended to valid non-object JSON, where the
//! official encoder crashes). Only `｜DSML｜` is a control token; tag words,
//! names and values are text.

use serde_json::Value;

use crate::chat::FunctionCall;
use crate::chat::render::SegmentBuilder;
use crate::pyjson::{self, PyValue};
use crate::special::SpecialToken;
use crate::tokenizer::Segment;

/// One DSML parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsmlParam {
    /// Parameter name.
    pub name: String,
    /// Raw value text (the string itself, or JSON).
    pub value: String,
    /// `string="true"`.
    pub is_string: bool,
}

fn param_from_py(name: String, value: &PyValue) -> DsmlParam {
    match value {
        PyValue::Str(s) => DsmlParam {
            name,
            value: s.clone(),
            is_string: true,
        },
        other => {
            let mut json = String::new();
            pyjson::dumps(other, &mut json);
            DsmlParam {
                name,
                value: json,
                is_string: false,
            }
        }
    }
}

/// The DSML parameters of a call's `arguments` (see the module rules).
pub fn arguments_to_params(arguments: &Value) -> Vec<DsmlParam> {
    match arguments {
        Value::String(raw) => match pyjson::loads(raw) {
            Ok(PyValue::Object(items)) => items
                .into_iter()
                .map(|(name, value)| param_from_py(name, &value))
                .collect(),
            _ => vec![DsmlParam {
                name: "arguments".into(),
                value: raw.clone(),
                is_string: true,
            }],
        },
        Value::Object(map) => map
            .iter()
            .map(|(name, value)| match value {
                Value::String(s) => DsmlParam {
                    name: name.clone(),
                    value: s.clone(),
                    is_string: true,
                },
                other => {
                    let mut json = String::new();
                    pyjson::dumps_serde(other, &mut json);
                    DsmlParam {
                        name: name.clone(),
                        value: json,
                        is_string: false,
                    }
                }
            })
            .collect(),
        other => {
            let mut json = String::new();
            pyjson::dumps_serde(other, &mut json);
            vec![DsmlParam {
                name: "arguments".into(),
                value: json,
                is_string: false,
            }]
        }
    }
}

fn open_tag(out: &mut SegmentBuilder, closing: bool) {
    out.text(if closing { "</" } else { "<" });
    out.special(SpecialToken::Dsml);
}

pub(crate) fn render_tool_calls(out: &mut SegmentBuilder, calls: &[&FunctionCall]) {
    out.text("\n\n");
    open_tag(out, false);
    out.text("tool_calls>\n");
    for (k, call) in calls.iter().enumerate() {
        if k > 0 {
            out.text("\n");
        }
        open_tag(out, false);
        out.text("invoke name=\"");
        out.text(&call.name);
        out.text("\">\n");
        for (j, param) in arguments_to_params(&call.arguments).iter().enumerate() {
            if j > 0 {
                out.text("\n");
            }
            open_tag(out, false);
            out.text("parameter name=\"");
            out.text(&param.name);
            out.text(if param.is_string {
                "\" string=\"true\">"
            } else {
                "\" string=\"false\">"
            });
            out.text(&param.value);
            open_tag(out, true);
            out.text("parameter>");
        }
        out.text("\n");
        open_tag(out, true);
        out.text("invoke>");
    }
    out.text("\n");
    open_tag(out, true);
    out.text("tool_calls>");
}

/// The segments of a DSML tool-call block (with its leading `\n\n`), as the
/// renderer writes it after an assistant's content.
pub fn tool_calls_segments(calls: &[FunctionCall]) -> Vec<Segment> {
    let mut out = SegmentBuilder::default();
    let refs: Vec<&FunctionCall> = calls.iter().collect();
    render_tool_calls(&mut out, &refs);
    out.finish()
}
