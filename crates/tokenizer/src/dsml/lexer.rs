//! Recognising think and DSML tags in streamed text, leniently.
//!
//! Owns [`lex`], which looks at text starting with `<` and says whether it is a
//! complete tag, can still become one (so the caller must hold it back), or is
//! not a tag. Accepted forms:
//!
//! * `<think>`, `</think>`;
//! * `<` `/`? MARKER? NAME ATTRS? `/`? `>` with NAME one of `tool_calls`,
//!   `invoke`, `parameter`. The canonical MARKER is `｜DSML｜`; the lexer also
//!   accepts what models emit when they garble it: ASCII or doubled bars
//!   (`|DSML|`, `｜｜DSML｜｜`), a missing leading bar (`DSML｜`), any case of
//!   `dsml`, and no marker at all (`<invoke …>`, reported as `marked = false`
//!   so callers decide whether to trust it);
//! * attributes `key="value"` with `"`, `'`, `“”` quotes or unquoted values,
//!   with spaces around `=`.
//!
//! A tag longer than [`MAX_TAG_BYTES`] is not a tag (bounds the hold-back).
//! The lexer never interprets what a tag means in context.

/// Longest tag the lexer will wait for.
pub(crate) const MAX_TAG_BYTES: usize = 1024;

/// Tag names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TagName {
    Think,
    ToolCalls,
    Invoke,
    Parameter,
}

/// A recognised tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tag {
    pub(crate) name: TagName,
    pub(crate) closing: bool,
    /// Had a DSML marker (always false for think tags).
    pub(crate) marked: bool,
    /// Exactly the canonical spelling (`<｜DSML｜name` / `</｜DSML｜name>`).
    pub(crate) canonical: bool,
    pub(crate) attrs: Vec<(String, String)>,
}

impl Tag {
    pub(crate) fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// Result of [`lex`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lexed {
    /// A tag of `len` bytes.
    Tag { len: usize, tag: Tag },
    /// The text so far is a prefix of a possible tag.
    NeedMore,
    /// Not a tag; the leading `<` is ordinary text.
    NotTag,
}

enum Stop {
    NeedMore,
    NotTag,
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

const BARS: [char; 2] = ['｜', '|'];

impl Cursor<'_> {
    fn peek(&self) -> Result<char, Stop> {
        if self.pos >= MAX_TAG_BYTES {
            return Err(Stop::NotTag);
        }
        self.s[self.pos..].chars().next().ok_or(Stop::NeedMore)
    }

    fn eat(&mut self, c: char) -> Result<bool, Stop> {
        if self.peek()? == c {
            self.pos += c.len_utf8();
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn ws(&mut self) -> Result<(), Stop> {
        while self.peek()?.is_whitespace() {
            self.pos += self.peek()?.len_utf8();
        }
        Ok(())
    }

    /// Matches an ASCII keyword case-insensitively; `Ok(false)` leaves `pos`.
    fn keyword(&mut self, kw: &str) -> Result<bool, Stop> {
        let rest = &self.s[self.pos..];
        let n = rest.len().min(kw.len());
        if !rest.as_bytes()[..n].eq_ignore_ascii_case(&kw.as_bytes()[..n]) {
            return Ok(false);
        }
        if n < kw.len() {
            return Err(Stop::NeedMore);
        }
        self.pos += kw.len();
        Ok(true)
    }

    fn bars(&mut self) -> Result<usize, Stop> {
        let mut n = 0;
        while BARS.contains(&self.peek()?) {
            self.pos += self.peek()?.len_utf8();
            n += 1;
        }
        Ok(n)
    }

    fn value(&mut self) -> Result<String, Stop> {
        let open = self.peek()?;
        let close: &[char] = match open {
            '"' => &['"', '”'],
            '\'' => &['\''],
            '“' | '”' => &['”', '“', '"'],
            _ => {
                let start = self.pos;
                while !matches!(self.peek()?, '>' | '/') && !self.peek()?.is_whitespace() {
                    self.pos += self.peek()?.len_utf8();
                }
                return Ok(self.s[start..self.pos].to_owned());
            }
        };
        self.pos += open.len_utf8();
        let start = self.pos;
        while !close.contains(&self.peek()?) {
            self.pos += self.peek()?.len_utf8();
        }
        let value = self.s[start..self.pos].to_owned();
        self.pos += self.peek()?.len_utf8();
        Ok(value)
    }

    fn attrs(&mut self) -> Result<Vec<(String, String)>, Stop> {
        let mut attrs = Vec::new();
        loop {
            self.ws()?;
            let c = self.peek()?;
            if c == '>' || c == '/' {
                return Ok(attrs);
            }
            let start = self.pos;
            while matches!(self.peek()?, 'a'..='z' | 'A'..='Z' | '_' | '-') {
                self.pos += 1;
            }
            if self.pos == start {
                return Err(Stop::NotTag);
            }
            let key = self.s[start..self.pos].to_owned();
            self.ws()?;
            if !self.eat('=')? {
                return Err(Stop::NotTag);
            }
            self.ws()?;
            attrs.push((key, self.value()?));
        }
    }
}

/// Lexes the tag at the start of `s` (which starts with `<`). With `at_end`,
/// text that could still become a tag is reported as [`Lexed::NotTag`].
pub(crate) fn lex(s: &str, at_end: bool) -> Lexed {
    match lex_inner(s) {
        Ok((len, tag)) => Lexed::Tag { len, tag },
        Err(Stop::NeedMore) if !at_end => Lexed::NeedMore,
        Err(_) => Lexed::NotTag,
    }
}

fn lex_inner(s: &str) -> Result<(usize, Tag), Stop> {
    let mut c = Cursor { s, pos: 0 };
    if !c.eat('<')? {
        return Err(Stop::NotTag);
    }
    let closing = c.eat('/')?;
    if c.keyword("think")? {
        c.ws()?;
        if !c.eat('>')? {
            return Err(Stop::NotTag);
        }
        let tag = Tag {
            name: TagName::Think,
            closing,
            marked: false,
            canonical: true,
            attrs: Vec::new(),
        };
        return Ok((c.pos, tag));
    }
    let marker_start = c.pos;
    let leading = c.bars()?;
    let marked = if c.keyword("dsml")? {
        if c.bars()? == 0 {
            return Err(Stop::NotTag);
        }
        true
    } else if leading > 0 {
        return Err(Stop::NotTag);
    } else {
        false
    };
    let canonical_marker = &s[marker_start..c.pos] == "｜DSML｜";
    let name = if c.keyword("tool_calls")? {
        TagName::ToolCalls
    } else if c.keyword("invoke")? {
        TagName::Invoke
    } else if c.keyword("parameter")? {
        TagName::Parameter
    } else {
        return Err(Stop::NotTag);
    };
    let next = c.peek()?;
    if !(next == '>' || next == '/' || next.is_whitespace()) {
        return Err(Stop::NotTag);
    }
    let attrs = if closing { Vec::new() } else { c.attrs()? };
    c.ws()?;
    c.eat('/')?;
    if !c.eat('>')? {
        return Err(Stop::NotTag);
    }
    let canonical = canonical_marker && {
        let tail = &s[..c.pos];
        if closing {
            tail.ends_with(&format!("{}>", name_str(name)))
        } else {
            true
        }
    };
    Ok((
        c.pos,
        Tag {
            name,
            closing,
            marked,
            canonical,
            attrs,
        },
    ))
}

fn name_str(name: TagName) -> &'static str {
    match name {
        TagName::Think => "think",
        TagName::ToolCalls => "tool_calls",
        TagName::Invoke => "invoke",
        TagName::Parameter => "parameter",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(s: &str) -> (usize, Tag) {
        match lex(s, false) {
            Lexed::Tag { len, tag } => (len, tag),
            other => panic!("{s:?}: {other:?}"),
        }
    }

    #[test]
    fn canonical_tags() {
        let (len, t) = tag("<｜DSML｜invoke name=\"get\">\nrest");
        assert_eq!(len, "<｜DSML｜invoke name=\"get\">".len());
        assert_eq!(
            (t.name, t.closing, t.marked, t.canonical),
            (TagName::Invoke, false, true, true)
        );
        assert_eq!(t.attr("name"), Some("get"));
        let (_, t) = tag("<｜DSML｜parameter name=\"a b\" string=\"false\">1");
        assert_eq!(
            (t.attr("name"), t.attr("string")),
            (Some("a b"), Some("false"))
        );
        let (_, t) = tag("</｜DSML｜tool_calls>");
        assert!(t.closing && t.canonical);
        assert_eq!(tag("</think>x").0, 8);
    }

    #[test]
    fn garbled_tags() {
        for s in [
            "<|DSML|invoke name='x'>",
            "<｜｜DSML｜｜invoke name=“x”>",
            "<DSML｜invoke name = \"x\" >",
            "<invoke name=x>",
            "<dsml|invoke name=\"x\"/>",
        ] {
            let (_, t) = tag(s);
            assert_eq!(t.name, TagName::Invoke, "{s}");
            assert_eq!(t.attr("name"), Some("x"), "{s}");
            assert!(!t.canonical, "{s}");
        }
    }

    #[test]
    fn partial_and_non_tags() {
        for s in [
            "<",
            "<｜",
            "<｜DS",
            "<｜DSML｜inv",
            "<thi",
            "</",
            "<｜DSML｜invoke name=\"ge",
            "<tool_calls",
        ] {
            assert_eq!(lex(s, false), Lexed::NeedMore, "{s}");
            assert_eq!(lex(s, true), Lexed::NotTag, "{s}");
        }
        for s in [
            "< b",
            "<b>",
            "<thinking>",
            "<invoked>",
            "<｜User｜>",
            "<｜x",
            "<3",
            "<tool_calls x>",
        ] {
            assert_eq!(lex(s, false), Lexed::NotTag, "{s}");
        }
        let long = format!("<invoke name=\"{}", "x".repeat(2000));
        assert_eq!(lex(&long, false), Lexed::NotTag);
    }
}
