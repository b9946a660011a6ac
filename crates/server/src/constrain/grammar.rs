//! Lark grammars (llguidance dialect) for DSML tool-call blocks and JSON.
//!
//! The block is exactly what the official encoder renders for an assistant
//! turn with empty content (`crates/tokenizer/src/dsml/render.rs`):
//!
//! ```text
//! \n\n<｜DSML｜tool_calls>\n
//! <｜DSML｜invoke name="NAME">\n
//! <｜DSML｜parameter name="K" string="true">raw text</｜DSML｜parameter>\n   (one per argument)
//! </｜DSML｜invoke>                                               (invokes joined by \n)
//! \n</｜DSML｜tool_calls>
//! ```
//!
//! with `｜DSML｜` the special token (`<[id]>` here). A call without arguments
//! renders `invoke name="NAME">\n\n</｜DSML｜invoke>`. Arguments follow the
//! tool's JSON schema: declared properties in schema order, required ones
//! mandatory; a property whose schema is exactly a string is a raw
//! `string="true"` value (enum, const and length limits enforced), anything
//! else a `string="false"` JSON value constrained by `%json` with the
//! encoder's separators (`, ` and `: `, Python `json.dumps`). A tool whose
//! schema declares no properties takes any parameters.
//!
//! Lexing note: llguidance lexes greedily, so a raw value is one lexeme that
//! ends with the `</` of its closing tag (the `｜DSML｜` token that follows
//! cannot extend text); raw values exclude anything the output parser would
//! read as a DSML tag, so what the grammar allows is what the parser returns.

use serde_json::{Map, Value, json};

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolSpec {
    /// Function name.
    pub(crate) name: String,
    /// JSON schema of the arguments object (`None`: anything).
    pub(crate) parameters: Option<Value>,
}

/// `tool_choice`, once `none` has been handled (it needs no grammar).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ToolMode {
    /// Free generation; a block the model opens is completed well-formed.
    Auto,
    /// A call to some tool is forced.
    Required,
    /// A call to this tool is forced.
    Named(String),
}

/// Tokens reserved to close a JSON document at the end of the budget.
pub(crate) const JSON_RESERVE: usize = 32;

/// llguidance JSON options: the Python `json.dumps` layout the model was
/// trained on, unknown schema keywords ignored rather than refused.
fn json_options() -> Value {
    json!({
        "whitespace_flexible": false,
        "item_separator": ", ",
        "key_separator": ": ",
        "lenient": true,
        "coerce_one_of": true
    })
}

/// `%json{…}` for a schema (with the options attached).
fn json_term(schema: Option<&Value>) -> String {
    let mut s = match schema {
        Some(Value::Object(m)) => m.clone(),
        Some(Value::Bool(false)) => {
            // Nothing validates; any value is the closest usable constraint.
            Map::new()
        }
        _ => Map::new(),
    };
    s.insert("x-guidance".into(), json_options());
    format!("%json{}", Value::Object(s))
}

/// A grammar for one JSON document (`response_format`): an object when no
/// schema is given (`json_object`).
pub(crate) fn json_grammar(schema: Option<&Value>) -> String {
    let schema = schema.cloned().unwrap_or_else(|| json!({"type": "object"}));
    format!("start: {}\n", json_term(Some(&schema)))
}

/// A Lark string literal (JSON string syntax; DEL escaped as lark requires).
fn lit(s: &str) -> String {
    serde_json::to_string(s)
        .unwrap_or_default()
        .replace('\u{7f}', "\\u007f")
}

/// Text the output parser would read as a DSML tag (see
/// `crates/tokenizer/src/dsml/lexer.rs`): excluded from raw values.
const TAG_LIKE: &str = r"<\/?[｜|]*((?i:dsml)[｜|]+)?(?i:tool_calls|invoke|parameter)[\s\/>]";

/// The raw-value terminal for a string schema: value text and the `</` of
/// the closing tag.
fn raw_value_terminal(schema: &Map<String, Value>) -> String {
    let strings = |v: &Value| -> Option<Vec<String>> {
        v.as_array()?
            .iter()
            .map(|x| x.as_str().map(String::from))
            .collect()
    };
    if let Some(c) = schema.get("const").and_then(Value::as_str) {
        return format!("{} \"</\"", lit(c));
    }
    if let Some(values) = schema
        .get("enum")
        .and_then(strings)
        .filter(|v| !v.is_empty())
    {
        let alts: Vec<String> = values.iter().map(|v| lit(v)).collect();
        return format!("({}) \"</\"", alts.join(" | "));
    }
    let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0);
    let len = match schema.get("maxLength").and_then(Value::as_u64) {
        Some(max) if max >= min => format!("{{{min},{max}}}"),
        _ if min > 0 => format!("{{{min},}}"),
        _ => "*".to_string(),
    };
    format!("/(?s:.{len}<\\/)/ & ~/(?s:.*{TAG_LIKE}.*)/")
}

/// Whether a property schema is exactly a string (rendered `string="true"`).
fn is_string_schema(schema: &Map<String, Value>) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("string")
        && !schema.contains_key("anyOf")
        && !schema.contains_key("oneOf")
        && !schema.contains_key("allOf")
}

/// Grammar rules being written.
struct Writer {
    dsml: String,
    rules: Vec<String>,
    n: usize,
}

impl Writer {
    fn fresh(&mut self, prefix: &str) -> String {
        self.n += 1;
        format!("{prefix}_{}", self.n)
    }

    fn rule(&mut self, name: &str, body: &str) {
        self.rules.push(format!("{name}: {body}"));
    }

    fn terminal(&mut self, body: &str) -> String {
        let name = self.fresh("VAL").to_uppercase();
        self.rules.push(format!("{name}: {body}"));
        name
    }

    /// One parameter element, as a rule; returns its name.
    fn param(
        &mut self,
        name: &str,
        schema: Option<&Value>,
        check: &dyn Fn(&Value) -> bool,
    ) -> String {
        let d = self.dsml.clone();
        let open = |string: bool| {
            format!(
                "\"<\" {d} {} ",
                lit(&format!("parameter name=\"{name}\" string=\"{string}\">"))
            )
        };
        let json = |schema: Option<&Value>| {
            let usable = schema.filter(|s| check(s));
            if schema.is_some() && usable.is_none() {
                tracing::warn!(
                    parameter = name,
                    "parameter schema cannot be enforced; any JSON value allowed"
                );
            }
            format!("{}{} \"</\"", open(false), json_term(usable))
        };
        let rule = self.fresh("param");
        let body = match schema.and_then(Value::as_object) {
            Some(s) if is_string_schema(s) => {
                let t = raw_value_terminal(s);
                let t = self.terminal(&t);
                format!("{}{t}", open(true))
            }
            Some(s) if !s.is_empty() => json(schema),
            // No schema: either form, as the encoder writes strings raw.
            _ => {
                let t = raw_value_terminal(&Map::new());
                let t = self.terminal(&t);
                format!("{}{t} | {}", open(true), json(None))
            }
        };
        self.rule(&rule, &format!("({body}) {d} \"parameter>\""));
        rule
    }

    /// The parameters of one invoke, up to and including the newline before
    /// `</｜DSML｜invoke>`.
    fn params(&mut self, schema: Option<&Value>, check: &dyn Fn(&Value) -> bool) -> String {
        let props = schema
            .and_then(|s| s.get("properties"))
            .and_then(Value::as_object)
            .filter(|p| !p.is_empty());
        let Some(props) = props else {
            // Any parameters, any names.
            let d = self.dsml.clone();
            let name = self.terminal(r#"/[^"<>\n]+/"#);
            let raw = raw_value_terminal(&Map::new());
            let raw = self.terminal(&raw);
            let rule = self.fresh("anyparam");
            let body = format!(
                "\"<\" {d} \"parameter name=\\\"\" {name} (\"\\\" string=\\\"true\\\">\" {raw} | \"\\\" string=\\\"false\\\">\" {} \"</\") {d} \"parameter>\"",
                json_term(None)
            );
            self.rule(&rule, &body);
            return format!("(({rule} \"\\n\")+ | \"\\n\")");
        };
        let required: Vec<&str> = schema
            .and_then(|s| s.get("required"))
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let items: Vec<(String, bool)> = props
            .iter()
            .map(|(k, v)| {
                (
                    self.param(k, Some(v), check),
                    required.contains(&k.as_str()),
                )
            })
            .collect();
        let seq = |from: usize| -> String {
            items[from..]
                .iter()
                .map(|(r, req)| {
                    if *req {
                        format!("{r} \"\\n\"")
                    } else {
                        format!("({r} \"\\n\")?")
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        if items.iter().any(|(_, req)| *req) {
            return format!("({})", seq(0));
        }
        // All optional: none ("\n" alone), or a non-empty ordered subset.
        let mut alts = vec!["\"\\n\"".to_string()];
        for (k, (r, _)) in items.iter().enumerate() {
            alts.push(format!("{r} \"\\n\" {}", seq(k + 1)));
        }
        format!("({})", alts.join(" | "))
    }
}

/// The grammar of a tool-call block. `lazy`: it starts after the model's own
/// `<｜DSML｜` (tool_choice auto); otherwise it starts at the beginning of the
/// content with the encoder's `\n\n` separator.
pub(crate) fn tool_grammar(
    tools: &[ToolSpec],
    mode: &ToolMode,
    parallel: bool,
    lazy: bool,
    check: &dyn Fn(&Value) -> bool,
    dsml: u32,
) -> String {
    let d = format!("<[{dsml}]>");
    let mut w = Writer {
        dsml: d.clone(),
        rules: Vec::new(),
        n: 0,
    };
    let chosen: Vec<&ToolSpec> = match mode {
        ToolMode::Named(name) => tools.iter().filter(|t| &t.name == name).collect(),
        _ => tools.iter().collect(),
    };
    let mut invokes = Vec::new();
    for tool in chosen {
        let params = w.params(tool.parameters.as_ref(), check);
        let rule = w.fresh("invoke");
        let head = lit(&format!("invoke name=\"{}\">", tool.name));
        w.rule(
            &rule,
            &format!("\"<\" {d} {head} \"\\n\" {params} \"</\" {d} \"invoke>\""),
        );
        invokes.push(rule);
    }
    if invokes.is_empty() {
        // Unreachable through the API (named tools are checked); a grammar
        // that matches nothing would wedge the request, so allow any tool.
        let params = w.params(None, check);
        w.rule("invoke_any", &format!("\"<\" {d} \"invoke name=\\\"\" /[^\"<>\\n]+/ \"\\\">\" \"\\n\" {params} \"</\" {d} \"invoke>\""));
        invokes.push("invoke_any".into());
    }
    let invoke = invokes.join(" | ");
    let calls = if parallel {
        "invoke (\"\\n\" invoke)*"
    } else {
        "invoke"
    };
    let head = if lazy {
        String::new()
    } else {
        format!("\"\\n\\n\" \"<\" {d} ")
    };
    let mut out = format!(
        "start: {head}\"tool_calls>\" \"\\n\" {calls} \"\\n\" \"</\" {d} \"tool_calls>\"\ninvoke: {invoke}\n"
    );
    for r in w.rules {
        out.push_str(&r);
        out.push('\n');
    }
    out
}

/// Tokens to keep for closing a block at the end of the budget: the closing
/// tags plus room for every parameter of the largest tool (a parameter costs
/// about 20 tokens of tags; optional ones may still be opened while closing).
pub(crate) fn tool_reserve(tools: &[ToolSpec], mode: &ToolMode) -> usize {
    let n_params = |t: &ToolSpec| {
        t.parameters
            .as_ref()
            .and_then(|s| s.get("properties"))
            .and_then(Value::as_object)
            .map_or(2, Map::len)
    };
    let most = tools
        .iter()
        .filter(|t| match mode {
            ToolMode::Named(n) => &t.name == n,
            _ => true,
        })
        .map(n_params)
        .max()
        .unwrap_or(0);
    40 + 24 * most.min(8)
}
