//! The streaming output parser on well-formed and misbehaving model output.
//!
//! Every scenario is fed at four granularities: all at once, char by char,
//! token by token (real DeepSeek V4 tokens through `StreamDecoder`, with
//! `</think>`, `｜DSML｜` and EOS as special tokens) and in random chunks. All
//! must give the same final result, equal to the expected one, and the streamed
//! events must add up to that result.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dsv4_tokenizer::dsml::{
    DiagnosticKind, OutputEvent, OutputParser, ParsedOutput, ParserOptions, TokenPiece,
    ToolCallIssue,
};
use dsv4_tokenizer::{Segment, SpecialToken, Tokenizer};
use rand::{Rng, SeedableRng};

const EOS: &str = "<｜end▁of▁sentence｜>";

/// Splits model output text at the special tokens the model emits as tokens.
fn segments(raw: &str) -> Vec<Segment> {
    let specials = [
        SpecialToken::Eos,
        SpecialToken::ThinkStart,
        SpecialToken::ThinkEnd,
        SpecialToken::Dsml,
        SpecialToken::User,
    ];
    let mut out = Vec::new();
    let mut rest = raw;
    while !rest.is_empty() {
        let next = specials
            .iter()
            .filter_map(|t| rest.find(t.content()).map(|at| (at, *t)))
            .min_by_key(|&(at, _)| at);
        match next {
            Some((at, t)) => {
                if at > 0 {
                    out.push(Segment::Text(rest[..at].to_owned()));
                }
                out.push(Segment::Special(t));
                rest = &rest[at + t.content().len()..];
            }
            None => {
                out.push(Segment::Text(rest.to_owned()));
                break;
            }
        }
    }
    out
}

type Pieces = Vec<(String, bool)>;

fn by_tokens(tok: &Tokenizer, raw: &str) -> Pieces {
    let ids = tok.encode_segments(&segments(raw));
    let mut dec = tok.stream_decoder();
    ids.iter()
        .map(|&id| {
            let t = dec.push(id).unwrap();
            (t.text, t.special)
        })
        .collect()
}

/// Text pieces of `size(i)` chars each; EOS stays one special piece.
fn by_chunks(raw: &str, mut size: impl FnMut() -> usize) -> Pieces {
    let (body, eos) = match raw.strip_suffix(EOS) {
        Some(body) => (body, true),
        None => (raw, false),
    };
    let chars: Vec<char> = body.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let n = size().max(1).min(chars.len() - i);
        out.push((chars[i..i + n].iter().collect(), false));
        i += n;
    }
    if eos {
        out.push((EOS.to_owned(), true));
    }
    out
}

fn run(opts: ParserOptions, pieces: &Pieces, strict: bool) -> ParsedOutput {
    let mut parser = OutputParser::new(opts);
    let mut events = Vec::new();
    for (text, special) in pieces {
        events.extend(parser.push(TokenPiece {
            id: 0,
            text,
            special: *special,
        }));
    }
    events.extend(parser.finish());
    let out = parser.into_output();
    check_events(&events, &out, strict);
    out
}

/// The events must add up to the final output; with `strict`, no marker may
/// appear in reasoning or content. (Random garbage can spell a marker out of
/// text on both sides of a dropped tag, so the random test is not strict.)
fn check_events(events: &[OutputEvent], out: &ParsedOutput, strict: bool) {
    let (mut reasoning, mut content) = (String::new(), String::new());
    let mut args: Vec<String> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut promoted = None;
    for e in events {
        match e {
            OutputEvent::Reasoning(t) => reasoning.push_str(t),
            OutputEvent::Content(t) => content.push_str(t),
            OutputEvent::ToolCallStart { index, name } => {
                assert_eq!(*index, names.len());
                names.push(name.clone());
                args.push(String::new());
            }
            OutputEvent::ToolCallArgumentsDelta { index, fragment } => {
                args[*index].push_str(fragment)
            }
            OutputEvent::ToolCallEnd { index, call } => {
                assert_eq!(
                    call.arguments, args[*index],
                    "end carries the streamed arguments"
                );
            }
            OutputEvent::ReasoningPromoted(t) => promoted = Some(t.clone()),
            OutputEvent::Diagnostic(_) => {}
        }
    }
    match promoted {
        Some(p) => {
            assert_eq!(p, reasoning);
            assert_eq!(out.content, p);
            assert!(out.reasoning.is_empty());
        }
        None => {
            assert_eq!(reasoning, out.reasoning);
            assert_eq!(content, out.content);
        }
    }
    assert_eq!(
        names,
        out.tool_calls
            .iter()
            .map(|c| c.name.clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        args,
        out.tool_calls
            .iter()
            .map(|c| c.arguments.clone())
            .collect::<Vec<_>>()
    );
    for text in [&out.reasoning, &out.content]
        .into_iter()
        .filter(|_| strict)
    {
        for marker in ["｜DSML｜", "<think>", "</think>", EOS] {
            assert!(!text.contains(marker), "{marker:?} leaked into {text:?}");
        }
    }
    for call in &out.tool_calls {
        let parsed: serde_json::Value = serde_json::from_str(&call.arguments)
            .unwrap_or_else(|e| panic!("arguments {:?} are not JSON: {e}", call.arguments));
        assert!(parsed.is_object());
    }
}

/// Parses `raw` at every granularity and returns the common result.
fn parse_all_ways(tok: &Tokenizer, opts: ParserOptions, raw: &str) -> ParsedOutput {
    parse_all_ways_checked(tok, opts, raw, true)
}

fn parse_all_ways_checked(
    tok: &Tokenizer,
    opts: ParserOptions,
    raw: &str,
    strict: bool,
) -> ParsedOutput {
    let whole = run(opts, &by_chunks(raw, || usize::MAX / 2), strict);
    let chars = run(opts, &by_chunks(raw, || 1), strict);
    let tokens = run(opts, &by_tokens(tok, raw), strict);
    assert_eq!(chars, whole, "char by char differs for {raw:?}");
    assert_eq!(tokens, whole, "token by token differs for {raw:?}");
    for seed in 0..8 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let chunked = run(opts, &by_chunks(raw, || rng.random_range(1..12)), strict);
        assert_eq!(
            chunked, whole,
            "random chunks (seed {seed}) differ for {raw:?}"
        );
    }
    whole
}

/// Like [`parse_all_ways`], for output whose values hold no DSML text: no
/// DSML may remain in any call's arguments either.
fn parse_clean(tok: &Tokenizer, opts: ParserOptions, raw: &str) -> ParsedOutput {
    let out = parse_all_ways(tok, opts, raw);
    for call in &out.tool_calls {
        assert!(!call.arguments.contains("DSML"), "{:?}", call.arguments);
    }
    out
}

fn think() -> ParserOptions {
    ParserOptions::new(true)
}

fn chat() -> ParserOptions {
    ParserOptions::new(false)
}

fn call(name: &str, params: &[(&str, &str, &str)]) -> String {
    let mut s = format!("<｜DSML｜invoke name=\"{name}\">\n");
    let p: Vec<String> = params
        .iter()
        .map(|(k, is_str, v)| {
            format!("<｜DSML｜parameter name=\"{k}\" string=\"{is_str}\">{v}</｜DSML｜parameter>")
        })
        .collect();
    s.push_str(&p.join("\n"));
    s.push_str("\n</｜DSML｜invoke>");
    s
}

fn block(calls: &[String]) -> String {
    format!(
        "\n\n<｜DSML｜tool_calls>\n{}\n</｜DSML｜tool_calls>",
        calls.join("\n")
    )
}

fn kinds(out: &ParsedOutput) -> Vec<DiagnosticKind> {
    out.diagnostics.iter().map(|d| d.kind).collect()
}

#[test]
fn reasoning_then_content() {
    let tok = Tokenizer::builtin().unwrap();
    let out = parse_all_ways(
        &tok,
        think(),
        &format!("Let me think.\n2+2=4.</think>The answer is **4**.{EOS}"),
    );
    assert_eq!(out.reasoning, "Let me think.\n2+2=4.");
    assert_eq!(out.content, "The answer is **4**.");
    assert!(out.tool_calls.is_empty() && out.diagnostics.is_empty() && out.ended_by_eos);
    let out = parse_all_ways(
        &tok,
        chat(),
        &format!("Hello! a < b, <b>bold</b>, x<y, a｜b, </think-ish>{EOS}"),
    );
    assert_eq!(
        out.content,
        "Hello! a < b, <b>bold</b>, x<y, a｜b, </think-ish>"
    );
    assert_eq!(out.reasoning, "");
    let out = parse_clean(&tok, chat(), &format!("trailing whitespace kept \n\n{EOS}"));
    assert_eq!(out.content, "trailing whitespace kept \n\n");
}

#[test]
fn canonical_tool_calls() {
    let tok = Tokenizer::builtin().unwrap();
    let raw = format!(
        "Need the tool.</think>{}{EOS}",
        block(&[call(
            "get_time",
            &[("tz", "true", "Europe/Rome"), ("fmt24", "false", "true")]
        )])
    );
    let out = parse_clean(&tok, think(), &raw);
    assert_eq!(out.reasoning, "Need the tool.");
    assert_eq!(out.content, "");
    assert_eq!(out.tool_calls.len(), 1);
    let c = &out.tool_calls[0];
    assert_eq!((c.index, c.name.as_str()), (0, "get_time"));
    assert_eq!(c.arguments, r#"{"tz": "Europe/Rome", "fmt24": true}"#);
    assert!(c.issues.is_empty() && c.closed && out.diagnostics.is_empty());

    let raw = format!(
        "</think>Checking both.{}{EOS}",
        block(&[
            call(
                "search",
                &[(
                    "query",
                    "true",
                    "llamas \"quoted\" \\ <tags> </think> 日本\n2nd line"
                )]
            ),
            call(
                "calc",
                &[
                    ("expr", "false", "{\"a\": [1, 2.5, null], \"b\": \"x\"}"),
                    ("n", "false", " 7 ")
                ]
            ),
            call("noargs", &[]),
        ])
    );
    let out = parse_clean(&tok, think(), &raw);
    assert_eq!(out.content, "Checking both.");
    let args: Vec<&str> = out
        .tool_calls
        .iter()
        .map(|c| c.arguments.as_str())
        .collect();
    assert_eq!(
        args,
        [
            r#"{"query": "llamas \"quoted\" \\ <tags> </think> 日本\n2nd line"}"#,
            r#"{"expr": {"a": [1, 2.5, null], "b": "x"}, "n":  7 }"#,
            "{}",
        ]
    );
    assert!(
        out.tool_calls
            .iter()
            .all(|c| c.issues.is_empty() && c.closed)
    );
}

#[test]
fn dsml_inside_unclosed_reasoning_ends_it() {
    let tok = Tokenizer::builtin().unwrap();
    let raw = format!(
        "I should call the tool.{}{EOS}",
        block(&[call("f", &[("a", "false", "1")])])
    );
    let out = parse_clean(&tok, think(), &raw);
    assert_eq!(out.reasoning, "I should call the tool.");
    assert_eq!(out.content, "");
    assert_eq!(out.tool_calls[0].arguments, r#"{"a": 1}"#);
    assert_eq!(kinds(&out), [DiagnosticKind::ToolCallsInReasoning]);
    // A late </think> after the block is dropped, never shown.
    let raw = format!("plan{}</think>{EOS}", block(&[call("f", &[])]));
    let out = parse_clean(&tok, think(), &raw);
    assert_eq!((out.reasoning.as_str(), out.content.as_str()), ("plan", ""));
    assert!(kinds(&out).contains(&DiagnosticKind::StrayTag));
}

#[test]
fn missing_closing_tags_at_eos() {
    let tok = Tokenizer::builtin().unwrap();
    let raw = format!(
        "</think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"search\">\n<｜DSML｜parameter name=\"q\" string=\"true\">llamas{EOS}"
    );
    let out = parse_clean(&tok, think(), &raw);
    let c = &out.tool_calls[0];
    assert_eq!(c.arguments, r#"{"q": "llamas"}"#);
    assert!(!c.closed);
    assert_eq!(
        c.issues,
        [
            ToolCallIssue::MissingCloseTag { tag: "parameter" },
            ToolCallIssue::MissingCloseTag { tag: "invoke" }
        ]
    );
    assert!(!c.has_errors());
    assert!(kinds(&out).contains(&DiagnosticKind::UnterminatedToolCalls));

    // Missing </invoke> and </parameter> mid-block are supplied by the next tag.
    let raw = format!(
        "</think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"a\">\n<｜DSML｜parameter name=\"x\" string=\"false\">1\n<｜DSML｜parameter name=\"y\" string=\"true\">two</｜DSML｜parameter>\n<｜DSML｜invoke name=\"b\">\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>{EOS}"
    );
    let out = parse_clean(&tok, think(), &raw);
    assert_eq!(out.tool_calls.len(), 2);
    assert_eq!(out.tool_calls[0].arguments, "{\"x\": 1\n, \"y\": \"two\"}");
    assert!(out.tool_calls.iter().all(|c| c.closed));
    assert!(
        out.tool_calls[0]
            .issues
            .contains(&ToolCallIssue::MissingCloseTag { tag: "parameter" })
    );
    assert!(
        out.tool_calls[0]
            .issues
            .contains(&ToolCallIssue::MissingCloseTag { tag: "invoke" })
    );

    // Cut by the length limit (no EOS): the call is reported as not closed.
    let raw = "</think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"w\">\n<｜DSML｜parameter name=\"path\" string=\"true\">/tmp/fi";
    let out = parse_clean(&tok, think(), raw);
    assert!(!out.ended_by_eos && !out.tool_calls[0].closed);
    assert_eq!(out.tool_calls[0].arguments, r#"{"path": "/tmp/fi"}"#);
}

#[test]
fn garbled_and_short_tag_forms() {
    let tok = Tokenizer::builtin().unwrap();
    let raw = format!(
        "</think>\n\n<|DSML|tool_calls>\n<DSML｜invoke name='get'>\n<｜｜DSML｜｜parameter name=“city” string=“true”>Paris</DSML｜parameter>\n</|DSML|invoke>\n</｜DSML｜tool_calls>{EOS}"
    );
    let out = parse_clean(&tok, think(), &raw);
    assert_eq!(out.tool_calls.len(), 1);
    assert_eq!(out.tool_calls[0].name, "get");
    assert_eq!(out.tool_calls[0].arguments, r#"{"city": "Paris"}"#);
    assert!(
        kinds(&out)
            .iter()
            .all(|k| *k == DiagnosticKind::NonCanonicalTag)
    );

    let raw = format!(
        "Sure.\n\n<tool_calls>\n<invoke name=\"x\">\n<parameter name=\"a\" string=\"false\">[1]</parameter>\n</invoke>\n</tool_calls>{EOS}"
    );
    let out = parse_clean(&tok, chat(), &raw);
    assert_eq!(out.content, "Sure.");
    assert_eq!(out.tool_calls[0].arguments, r#"{"a": [1]}"#);
    let strict = ParserOptions {
        accept_plain_tags: false,
        ..chat()
    };
    let out = parse_clean(&tok, strict, &raw);
    assert!(out.tool_calls.is_empty());
    assert!(out.content.starts_with("Sure.\n\n<tool_calls>"));

    // An invoke without its block opener.
    let raw = format!("</think>{}{EOS}", call("f", &[("k", "true", "v")]));
    let out = parse_clean(&tok, think(), &raw);
    assert_eq!(out.tool_calls[0].arguments, r#"{"k": "v"}"#);
    assert!(kinds(&out).contains(&DiagnosticKind::MissingToolCallsOpener));
}

#[test]
fn invalid_values_are_reported_not_replaced() {
    let tok = Tokenizer::builtin().unwrap();
    let raw = format!(
        "</think>{}{EOS}",
        block(&[call(
            "f",
            &[
                ("bad", "false", "{unquoted: 1,}"),
                ("nan", "false", "NaN"),
                ("ok", "false", "-0.5e3")
            ]
        )])
    );
    let out = parse_clean(&tok, think(), &raw);
    let c = &out.tool_calls[0];
    assert_eq!(
        c.arguments,
        r#"{"bad": "{unquoted: 1,}", "nan": "NaN", "ok": -0.5e3}"#
    );
    assert!(c.has_errors());
    assert_eq!(
        c.issues,
        [
            ToolCallIssue::InvalidJsonValue {
                parameter: "bad".into(),
                raw: "{unquoted: 1,}".into()
            },
            ToolCallIssue::InvalidJsonValue {
                parameter: "nan".into(),
                raw: "NaN".into()
            },
        ]
    );

    // No or unknown `string` attribute: inferred; a repeated name; a missing name.
    let raw = format!(
        "</think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter name=\"n\">42</｜DSML｜parameter>\n<｜DSML｜parameter name=\"s\" string=\"maybe\">hello</｜DSML｜parameter>\n<｜DSML｜parameter name=\"n\" string=\"true\">x</｜DSML｜parameter>\n</｜DSML｜invoke>\n<｜DSML｜invoke>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>{EOS}"
    );
    let out = parse_clean(&tok, think(), &raw);
    assert_eq!(
        out.tool_calls[0].arguments,
        r#"{"n": 42, "s": "hello", "n": "x"}"#
    );
    assert_eq!(
        out.tool_calls[0].issues,
        [
            ToolCallIssue::MissingStringAttribute {
                parameter: "n".into()
            },
            ToolCallIssue::MissingStringAttribute {
                parameter: "s".into()
            },
            ToolCallIssue::DuplicateParameter {
                parameter: "n".into()
            },
        ]
    );
    assert!(!out.tool_calls[0].has_errors());
    assert_eq!(out.tool_calls[1].issues, [ToolCallIssue::MissingName]);
    assert!(out.tool_calls[1].has_errors());
}

#[test]
fn unclosed_reasoning() {
    let tok = Tokenizer::builtin().unwrap();
    // EOS without </think>: the "reasoning" is the answer.
    let out = parse_clean(&tok, think(), &format!("The answer is 42.{EOS}"));
    assert_eq!(
        (out.reasoning.as_str(), out.content.as_str()),
        ("", "The answer is 42.")
    );
    assert_eq!(kinds(&out), [DiagnosticKind::UnclosedReasoningPromoted]);
    // Cut by length: everything stays reasoning.
    let out = parse_clean(&tok, think(), "Still thinking about");
    assert_eq!(
        (out.reasoning.as_str(), out.content.as_str()),
        ("Still thinking about", "")
    );
    // Promotion can be switched off.
    let keep = ParserOptions {
        promote_unclosed_reasoning: false,
        ..think()
    };
    let out = parse_clean(&tok, keep, &format!("r{EOS}"));
    assert_eq!((out.reasoning.as_str(), out.content.as_str()), ("r", ""));
}

#[test]
fn stray_markers_never_reach_content() {
    let tok = Tokenizer::builtin().unwrap();
    let raw = format!(
        "<think>plan</think>a</think>b ｜DSML｜ c</｜DSML｜tool_calls>d</｜DSML｜invoke>e{EOS}"
    );
    let out = parse_clean(&tok, think(), &raw);
    assert_eq!(out.reasoning, "plan");
    assert_eq!(out.content, "ab  cde");
    assert_eq!(out.diagnostics.len(), 5);
    assert!(kinds(&out).iter().all(|k| *k == DiagnosticKind::StrayTag));

    // Re-opened thinking in content goes to reasoning, not content.
    let out = parse_all_ways(
        &tok,
        chat(),
        &format!("Answer.<think>more thoughts</think> Done.{EOS}"),
    );
    assert_eq!(out.content, "Answer. Done.");
    assert_eq!(out.reasoning, "more thoughts");

    // Text after a tool block becomes content (leading whitespace dropped).
    let raw = format!("</think>{}\nextra words{EOS}", block(&[call("f", &[])]));
    let out = parse_clean(&tok, think(), &raw);
    assert_eq!(out.content, "extra words");
    let raw = format!("</think>{}\n\n{EOS}", block(&[call("f", &[])]));
    assert_eq!(parse_clean(&tok, think(), &raw).content, "");

    // Text inside a block, outside parameter values, is dropped and reported once.
    let raw = format!(
        "</think>\n\n<｜DSML｜tool_calls>\nnoise here\n<｜DSML｜invoke name=\"f\">\njunk text\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>{EOS}"
    );
    let out = parse_clean(&tok, think(), &raw);
    assert_eq!(out.tool_calls[0].arguments, "{}");
    let strays: Vec<&str> = out
        .diagnostics
        .iter()
        .filter(|d| d.kind == DiagnosticKind::StrayText)
        .map(|d| d.detail.as_str())
        .collect();
    assert_eq!(strays, ["noise here", "junk text"]);
}

#[test]
fn unexpected_special_tokens_and_text_after_eos() {
    let tok = Tokenizer::builtin().unwrap();
    let pieces = by_tokens(&tok, &format!("</think>Hi<｜User｜> there{EOS}"));
    let mut parser = OutputParser::new(think());
    for (text, special) in &pieces {
        parser.push(TokenPiece {
            id: 0,
            text,
            special: *special,
        });
    }
    parser.push(TokenPiece {
        id: 0,
        text: "late",
        special: false,
    });
    parser.finish();
    let out = parser.into_output();
    assert_eq!(out.content, "Hi there");
    assert_eq!(
        kinds(&out),
        [
            DiagnosticKind::UnexpectedSpecialToken,
            DiagnosticKind::TextAfterEos
        ]
    );
}

#[test]
fn streams_string_arguments_incrementally() {
    let mut parser = OutputParser::new(chat());
    let mut fragments = Vec::new();
    let mut started = false;
    for piece in [
        "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"write\">\n<｜DSML｜parameter name=\"text\" string=\"true\">",
        "line one\n",
        "line two </",
        "｜DSML｜param",
        "eter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>",
    ] {
        for e in parser.push_text(piece) {
            match e {
                OutputEvent::ToolCallStart { name, .. } => {
                    assert_eq!(name, "write");
                    started = true;
                }
                OutputEvent::ToolCallArgumentsDelta { fragment, .. } => fragments.push(fragment),
                _ => {}
            }
        }
        if piece == "line one\n" {
            assert!(started, "the header goes out as soon as the name is known");
            assert_eq!(fragments.concat(), "{\"text\": \"line one\\n");
        }
        if piece == "line two </" {
            assert!(
                fragments.concat().ends_with("line two "),
                "a possible closing tag is held back"
            );
        }
    }
    parser.finish();
    assert_eq!(fragments.concat(), "{\"text\": \"line one\\nline two \"}");
}

#[test]
fn random_outputs_parse_identically_at_every_split() {
    let tok = Tokenizer::builtin().unwrap();
    let fragments = [
        "text ",
        "\n",
        "\n\n",
        " ",
        "<",
        ">",
        "｜",
        "｜DSML｜",
        "</think>",
        "<think>",
        "<thi",
        "DSML",
        "<｜DSML｜tool_calls>",
        "</｜DSML｜tool_calls>",
        "<｜DSML｜invoke name=\"f\">",
        "</｜DSML｜invoke>",
        "<｜DSML｜parameter name=\"p\" string=\"true\">",
        "<｜DSML｜parameter name=\"q\" string=\"false\">",
        "</｜DSML｜parameter>",
        "{\"a\": 1}",
        "[1, 2",
        "<|DSML|invoke name='g'>",
        "<tool_calls>",
        "<invoke name=x>",
        "</parameter>",
        "日本語",
        "é\u{301}",
        "\"quoted\\\"",
        "a<b",
        "<b>",
        "｜x",
        "</",
        "<｜DSML｜",
        "name=\"",
        "}",
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
    for case in 0..300 {
        let n = rng.random_range(1..40);
        let mut raw: String = (0..n)
            .map(|_| fragments[rng.random_range(0..fragments.len())])
            .collect();
        if rng.random_bool(0.5) {
            raw.push_str(EOS);
        }
        let opts = ParserOptions {
            thinking: case % 2 == 0,
            accept_plain_tags: case % 3 != 0,
            promote_unclosed_reasoning: case % 5 != 0,
        };
        parse_all_ways_checked(&tok, opts, &raw, false);
    }
}
