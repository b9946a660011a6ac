//! Python `json` compatibility: `json.loads` and `json.dumps(ensure_ascii=False)`.
//!
//! The official encoder serialises tool schemas, response formats and
//! non-string tool arguments with Python's `json.dumps(value, ensure_ascii=False)`
//! (separators `", "` and `": "`), after parsing arguments with `json.loads`. A
//! byte-exact renderer must reproduce both, so this module owns:
//! * [`PyValue`]: a JSON value as Python holds it (ints of any size, floats,
//!   objects in insertion order where a repeated key keeps its first position and
//!   takes the last value, as `dict` does);
//! * [`loads`]: Python's grammar (accepts `NaN`, `Infinity`, `-Infinity`; rejects
//!   raw control characters in strings; `1.0`/`1e5` are floats, `10` an int);
//! * [`dumps`] / [`dumps_serde`]: Python's output, including `float.__repr__`
//!   (shortest round-trip digits, exponent form below 1e-4 and from 1e16).
//!
//! Known gaps, where Python itself misbehaves: a lone surrogate escape
//! (`"\ud800"`) is rejected here (Python accepts it, then cannot UTF-8-encode
//! the prompt); integers above 64 bits inside serde values (tool schemas) have
//! already been rounded by `serde_json`. Nesting deeper than [`MAX_DEPTH`] is an
//! error, as Python's recursion limit makes it one.

use std::fmt::Write as _;

use rustc_hash::FxHashMap;
use serde_json::Value;

/// Deepest nesting [`loads`] accepts.
pub(crate) const MAX_DEPTH: usize = 512;

/// A JSON value as Python's `json.loads` produces it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PyValue {
    Null,
    Bool(bool),
    /// An integer, as its decimal digits (optional `-`, no leading zeros).
    Int(String),
    Float(f64),
    Str(String),
    Array(Vec<PyValue>),
    Object(Vec<(String, PyValue)>),
}

/// Why [`loads`] rejected its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoadError {
    pub(crate) pos: usize,
    pub(crate) what: &'static str,
}

/// Parses `text` like Python's `json.loads`.
pub(crate) fn loads(text: &str) -> Result<PyValue, LoadError> {
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        pos: 0,
    };
    p.ws();
    let value = p.value(0)?;
    p.ws();
    if p.pos != p.s.len() {
        return Err(p.err("extra data"));
    }
    Ok(value)
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, what: &'static str) -> LoadError {
        LoadError {
            pos: self.pos,
            what,
        }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.pos) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.s[self.pos..].starts_with(lit.as_bytes()) {
            self.pos += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<PyValue, LoadError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        let Some(&first) = self.s.get(self.pos) else {
            return Err(self.err("expecting value"));
        };
        match first {
            b'"' => return Ok(PyValue::Str(self.string()?)),
            b'{' => return self.object(depth),
            b'[' => return self.array(depth),
            _ => {}
        }
        let literals = [
            ("null", PyValue::Null),
            ("true", PyValue::Bool(true)),
            ("false", PyValue::Bool(false)),
            ("NaN", PyValue::Float(f64::NAN)),
            ("Infinity", PyValue::Float(f64::INFINITY)),
            ("-Infinity", PyValue::Float(f64::NEG_INFINITY)),
        ];
        for (lit, value) in literals {
            if self.eat(lit) {
                return Ok(value);
            }
        }
        if first == b'-' || first.is_ascii_digit() {
            self.number()
        } else {
            Err(self.err("expecting value"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.s.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// `-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?`; the optional parts only count
    /// when complete, as in Python's scanner.
    fn number(&mut self) -> Result<PyValue, LoadError> {
        let start = self.pos;
        self.eat("-");
        match self.s.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("expecting value")),
        }
        let mut is_float = false;
        if self.s.get(self.pos) == Some(&b'.')
            && self.s.get(self.pos + 1).is_some_and(u8::is_ascii_digit)
        {
            self.pos += 1;
            self.digits();
            is_float = true;
        }
        if let Some(b'e' | b'E') = self.s.get(self.pos) {
            let save = self.pos;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.s.get(self.pos) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                self.pos = save;
            } else {
                is_float = true;
            }
        }
        let lexeme = &self.text[start..self.pos];
        if is_float {
            // Rust's float parsing is correctly rounded, as Python's float() is.
            lexeme
                .parse::<f64>()
                .map(PyValue::Float)
                .map_err(|_| self.err("bad number"))
        } else if lexeme == "-0" {
            Ok(PyValue::Int("0".into()))
        } else {
            Ok(PyValue::Int(lexeme.to_owned()))
        }
    }

    fn hex4(&mut self) -> Result<u32, LoadError> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.err("invalid \\uXXXX escape"))?;
        self.pos += 4;
        u32::from_str_radix(digits, 16).map_err(|_| self.err("invalid \\uXXXX escape"))
    }

    fn string(&mut self) -> Result<String, LoadError> {
        self.pos += 1; // opening quote
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            while let Some(&b) = self.s.get(self.pos) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(&self.text[run_start..self.pos]);
            match self.s.get(self.pos) {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    self.escape(&mut out)?;
                }
                Some(_) => return Err(self.err("invalid control character in string")),
            }
        }
    }

    fn escape(&mut self, out: &mut String) -> Result<(), LoadError> {
        let c = match self.s.get(self.pos) {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.pos += 1;
                let hi = self.hex4()?;
                let cp =
                    if (0xD800..0xDC00).contains(&hi) && self.text[self.pos..].starts_with("\\u") {
                        let save = self.pos;
                        self.pos += 2;
                        let lo = self.hex4()?;
                        if (0xDC00..0xE000).contains(&lo) {
                            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                        } else {
                            self.pos = save;
                            hi
                        }
                    } else {
                        hi
                    };
                out.push(char::from_u32(cp).ok_or_else(|| self.err("lone surrogate escape"))?);
                return Ok(());
            }
            _ => return Err(self.err("invalid escape")),
        };
        self.pos += 1;
        out.push(c);
        Ok(())
    }

    fn array(&mut self, depth: usize) -> Result<PyValue, LoadError> {
        self.pos += 1;
        let mut items = Vec::new();
        self.ws();
        if self.eat("]") {
            return Ok(PyValue::Array(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth + 1)?);
            self.ws();
            if self.eat("]") {
                return Ok(PyValue::Array(items));
            }
            if !self.eat(",") {
                return Err(self.err("expecting ',' delimiter"));
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<PyValue, LoadError> {
        self.pos += 1;
        let mut obj = ObjectBuilder::default();
        self.ws();
        if self.eat("}") {
            return Ok(PyValue::Object(obj.items));
        }
        loop {
            self.ws();
            if self.s.get(self.pos) != Some(&b'"') {
                return Err(self.err("expecting property name in double quotes"));
            }
            let key = self.string()?;
            self.ws();
            if !self.eat(":") {
                return Err(self.err("expecting ':' delimiter"));
            }
            self.ws();
            let value = self.value(depth + 1)?;
            obj.insert(key, value);
            self.ws();
            if self.eat("}") {
                return Ok(PyValue::Object(obj.items));
            }
            if !self.eat(",") {
                return Err(self.err("expecting ',' delimiter"));
            }
        }
    }
}

/// Insertion-ordered object with Python `dict` semantics for repeated keys.
#[derive(Default)]
struct ObjectBuilder {
    items: Vec<(String, PyValue)>,
    index: FxHashMap<String, usize>,
}

impl ObjectBuilder {
    fn insert(&mut self, key: String, value: PyValue) {
        if let Some(&i) = self.index.get(&key) {
            self.items[i].1 = value;
        } else {
            self.index.insert(key.clone(), self.items.len());
            self.items.push((key, value));
        }
    }
}

/// Appends Python's `json.dumps(value, ensure_ascii=False)` of `value`.
pub(crate) fn dumps(value: &PyValue, out: &mut String) {
    match value {
        PyValue::Null => out.push_str("null"),
        PyValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        PyValue::Int(digits) => out.push_str(digits),
        PyValue::Float(f) => float_repr(*f, out),
        PyValue::Str(s) => dumps_str(s, out),
        PyValue::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                dumps(item, out);
            }
            out.push(']');
        }
        PyValue::Object(items) => {
            out.push('{');
            for (i, (key, item)) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                dumps_str(key, out);
                out.push_str(": ");
                dumps(item, out);
            }
            out.push('}');
        }
    }
}

/// Appends Python's `json.dumps(value, ensure_ascii=False)` of a serde value
/// (objects keep their order: serde_json is built with `preserve_order`).
pub(crate) fn dumps_serde(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                let _ = write!(out, "{i}");
            } else if let Some(u) = n.as_u64() {
                let _ = write!(out, "{u}");
            } else {
                float_repr(n.as_f64().unwrap_or(f64::NAN), out);
            }
        }
        Value::String(s) => dumps_str(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                dumps_serde(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                dumps_str(key, out);
                out.push_str(": ");
                dumps_serde(item, out);
            }
            out.push('}');
        }
    }
}

/// Python's JSON string encoding with `ensure_ascii=False`: only `"`, `\` and
/// control characters below U+0020 are escaped (`\u00XX` in lower-case hex).
pub(crate) fn dumps_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Python's `float.__repr__` (as `json.dumps` writes floats): the shortest
/// digits that round-trip, positional for 1e-4 <= |x| < 1e16, otherwise
/// `d.ddde±XX`; `NaN`, `Infinity`, `-Infinity`.
pub(crate) fn float_repr(x: f64, out: &mut String) {
    if x.is_nan() {
        out.push_str("NaN");
        return;
    }
    if x.is_infinite() {
        out.push_str(if x > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if x.is_sign_negative() {
        out.push('-');
    }
    // Rust's `{:e}` prints the shortest round-trip digits: "d.ddde-x".
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let n = digits.len() as i32;
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        if point <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-point) as usize));
            out.push_str(&digits);
        } else if point < n {
            out.push_str(&digits[..point as usize]);
            out.push('.');
            out.push_str(&digits[point as usize..]);
        } else {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', (point - n) as usize));
            out.push_str(".0");
        }
    } else {
        out.push_str(&digits[..1]);
        if n > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repr(x: f64) -> String {
        let mut s = String::new();
        float_repr(x, &mut s);
        s
    }

    fn roundtrip(text: &str) -> String {
        let mut s = String::new();
        dumps(&loads(text).expect(text), &mut s);
        s
    }

    #[test]
    fn float_repr_matches_python() {
        // Expected strings are CPython 3.11 `repr(float)` outputs.
        let cases = [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1.5, "1.5"),
            (100000.0, "100000.0"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345e20, "1.2345e+20"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e100, "1e+100"),
            (123456789.125, "123456789.125"),
            (1.0 / 3.0, "0.3333333333333333"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
        ];
        for (x, want) in cases {
            assert_eq!(repr(x), want, "{x:e}");
        }
    }

    #[test]
    fn loads_dumps_like_python() {
        assert_eq!(
            roundtrip(r#"{"a":1,"b":[true,null,1.0,2e3]}"#),
            r#"{"a": 1, "b": [true, null, 1.0, 2000.0]}"#
        );
        assert_eq!(roundtrip(r#"{"a":1,"b":2,"a":3}"#), r#"{"a": 3, "b": 2}"#);
        assert_eq!(
            roundtrip(r#"[NaN, Infinity, -Infinity, -0, -0.0]"#),
            "[NaN, Infinity, -Infinity, 0, -0.0]"
        );
        assert_eq!(
            roundtrip(r#""caf\u00e9 \ud83d\ude00 \n\t\"\\ \u0001 \/""#),
            "\"café 😀 \\n\\t\\\"\\\\ \\u0001 /\""
        );
        assert_eq!(
            roundtrip("123456789012345678901234567890"),
            "123456789012345678901234567890"
        );
        assert_eq!(roundtrip(" {} "), "{}");
        assert_eq!(roundtrip("1E400"), "Infinity");
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\" 1}",
            "01",
            "1.",
            ".5",
            "'a'",
            "\"a\u{1}\"",
            "tru",
            "\"\\ud800\"",
            "{} x",
            "-",
        ] {
            assert!(loads(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
