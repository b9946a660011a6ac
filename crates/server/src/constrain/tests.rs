//! Constrained decoding against the real DeepSeek V4 vocabulary: the
//! encoder's own renderings pass the grammar token by token, and a simulated
//! random-weight model (pseudo-random logits, greedy pick among what the mask
//! allows) always ends with a well-formed call or a schema-valid JSON document
//! within its budget, as parsed by the tokenizer crate's output parser.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, LazyLock};

use dsv4_engine::LogitMask;
use dsv4_tokenizer::chat::FunctionCall;
use dsv4_tokenizer::dsml::{
    OutputParser, ParsedOutput, ParserOptions, TokenPiece, tool_calls_segments,
};
use dsv4_tokenizer::{SpecialToken, Tokenizer};
use serde_json::{Value, json};

use super::{Constraint, Constraints, ToolMode, ToolSpec};

static TOK: LazyLock<Arc<Tokenizer>> = LazyLock::new(|| Arc::new(Tokenizer::builtin().unwrap()));
static C: LazyLock<Constraints> = LazyLock::new(|| Constraints::new(Arc::clone(&TOK)).unwrap());

fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "get_weather".into(),
            parameters: Some(json!({
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                    "days": {"type": "integer", "minimum": 1, "maximum": 7}
                },
                "required": ["city", "days"]
            })),
        },
        ToolSpec {
            name: "search".into(),
            parameters: Some(json!({
                "type": "object",
                "properties": {
                    "query": {"type": "string", "maxLength": 40},
                    "filters": {
                        "type": "object",
                        "properties": {"lang": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}},
                        "required": ["lang"]
                    },
                    "limit": {"type": "number"}
                },
                "required": ["query", "filters"]
            })),
        },
        ToolSpec {
            name: "list_files".into(),
            parameters: Some(json!({"type": "object", "properties": {}})),
        },
    ]
}

/// Feeds `ids` through the mask as the engine would; panics on a refused token.
fn feed(mask: &mut dyn LogitMask, ids: &[u32]) {
    let n = TOK.vocab_size();
    for (i, &id) in ids.iter().enumerate() {
        let mut logits = vec![0.0f32; n];
        mask.apply(&mut logits).unwrap();
        assert!(
            logits[id as usize].is_finite(),
            "token {i} ({:?}) refused after {:?}",
            TOK.decode(&[id]).unwrap(),
            TOK.decode(&ids[..i]).unwrap()
        );
        mask.accept(id).unwrap();
    }
}

fn render(calls: &[(&str, Value)]) -> Vec<u32> {
    let calls: Vec<FunctionCall> = calls
        .iter()
        .map(|(name, args)| FunctionCall {
            name: (*name).into(),
            arguments: Value::String(args.to_string()),
            id: None,
        })
        .collect();
    TOK.encode_segments(&tool_calls_segments(&calls))
}

#[test]
fn the_encoders_renderings_are_accepted() {
    let eos = TOK.special_id(SpecialToken::Eos);
    let cases = [
        vec![(
            "get_weather",
            json!({"city": "Paris </div> <b>", "unit": "celsius", "days": 3}),
        )],
        vec![
            ("get_weather", json!({"city": "Oslo", "days": 1})),
            ("list_files", json!({})),
        ],
        vec![(
            "search",
            json!({"query": "rust \"quotes\"", "filters": {"lang": "en", "tags": ["a", "b"]}, "limit": 2.5}),
        )],
    ];
    for calls in cases {
        let c = Constraint::Tools {
            tools: tools(),
            mode: ToolMode::Required,
            parallel: true,
        };
        let mut mask = C.mask(&c, false, Some(500)).unwrap();
        let mut ids = render(&calls);
        ids.push(eos);
        feed(&mut mask, &ids);
    }
    // A wrong tool name, a missing required parameter and a bad enum value are refused.
    for bad in [
        vec![("delete_all", json!({}))],
        vec![("get_weather", json!({"city": "Oslo"}))],
        vec![(
            "get_weather",
            json!({"city": "Oslo", "unit": "kelvin", "days": 2}),
        )],
    ] {
        let c = Constraint::Tools {
            tools: tools(),
            mode: ToolMode::Required,
            parallel: true,
        };
        let mut mask = C.mask(&c, false, Some(500)).unwrap();
        let ids = render(&bad);
        let n = TOK.vocab_size();
        let refused = ids.iter().any(|&id| {
            let mut logits = vec![0.0f32; n];
            mask.apply(&mut logits).unwrap();
            !logits[id as usize].is_finite() || mask.accept(id).is_err()
        });
        assert!(refused, "{bad:?} must be refused");
    }
}

/// Pseudo-random logits for (seed, step): a stand-in for a random-weight model.
fn random_logits(seed: u64, step: u64, n: usize) -> Vec<f32> {
    (0..n as u64)
        .map(|i| {
            let mut z = (seed << 40) ^ (step << 20) ^ i;
            z = z.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            z ^= z >> 29;
            z = z.wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z ^= z >> 32;
            (z >> 40) as f32 / (1u64 << 24) as f32 * 8.0
        })
        .collect()
}

/// Runs the simulated model until EOS or the budget; returns the parsed output.
fn simulate(
    mask: &mut dyn LogitMask,
    seed: u64,
    max_tokens: usize,
    thinking: bool,
) -> (ParsedOutput, usize) {
    let n = TOK.vocab_size();
    let eos = TOK.special_id(SpecialToken::Eos);
    let mut parser = OutputParser::new(ParserOptions::new(thinking));
    let mut decoder = TOK.stream_decoder();
    for step in 0..max_tokens {
        let mut logits = random_logits(seed, step as u64, n);
        mask.apply(&mut logits).unwrap();
        let id = dsv4_engine::sampling::argmax(&logits);
        assert!(
            logits[id as usize].is_finite(),
            "every token masked at step {step}"
        );
        mask.accept(id).unwrap();
        let piece = decoder.push(id).unwrap();
        parser.push(TokenPiece::from(&piece));
        if id == eos {
            parser.finish();
            return (parser.into_output(), step + 1);
        }
    }
    parser.finish();
    (parser.into_output(), max_tokens)
}

fn check_weather_args(args: &Value) {
    assert!(args["city"].is_string(), "{args}");
    let days = args["days"].as_i64().unwrap();
    assert!((1..=7).contains(&days), "{args}");
    if let Some(u) = args.get("unit") {
        assert!(u == "celsius" || u == "fahrenheit", "{args}");
    }
}

#[test]
fn a_random_model_returns_a_well_formed_call_to_the_named_tool() {
    for seed in 0..6 {
        for (mode, max_tokens) in [
            (ToolMode::Named("get_weather".into()), 200),
            (ToolMode::Required, 250),
        ] {
            let c = Constraint::Tools {
                tools: tools(),
                mode: mode.clone(),
                parallel: seed % 2 == 0,
            };
            let mut mask = C.mask(&c, false, Some(max_tokens)).unwrap();
            let (out, used) = simulate(&mut mask, seed, max_tokens, false);
            assert!(
                out.ended_by_eos,
                "seed {seed} {mode:?}: no EOS within {max_tokens} tokens: {out:?}"
            );
            assert!(used <= max_tokens);
            assert!(!out.tool_calls.is_empty(), "seed {seed}: {out:?}");
            assert!(
                out.content.trim().is_empty(),
                "no text around a forced call: {:?}",
                out.content
            );
            for call in &out.tool_calls {
                assert!(call.closed && !call.has_errors(), "seed {seed}: {call:?}");
                let args: Value = serde_json::from_str(&call.arguments).unwrap();
                match call.name.as_str() {
                    "get_weather" => check_weather_args(&args),
                    "search" => {
                        assert!(
                            args["query"]
                                .as_str()
                                .is_some_and(|q| q.chars().count() <= 40)
                        );
                        assert!(args["filters"]["lang"].is_string());
                    }
                    "list_files" => assert_eq!(args, json!({})),
                    other => panic!("unknown tool {other}"),
                }
                if let ToolMode::Named(n) = &mode {
                    assert_eq!(&call.name, n);
                }
            }
        }
    }
}

#[test]
fn reasoning_stays_free_and_is_closed_in_time() {
    let c = Constraint::Tools {
        tools: tools(),
        mode: ToolMode::Named("get_weather".into()),
        parallel: false,
    };
    let mut mask = C.mask(&c, true, Some(300)).unwrap();
    let (out, _) = simulate(&mut mask, 7, 300, true);
    assert!(!out.reasoning.is_empty(), "the model reasoned freely first");
    assert!(out.ended_by_eos, "{out:?}");
    assert_eq!(out.tool_calls.len(), 1);
    check_weather_args(&serde_json::from_str(&out.tool_calls[0].arguments).unwrap());
}

#[test]
fn auto_completes_a_block_the_model_opens() {
    let c = Constraint::Tools {
        tools: tools(),
        mode: ToolMode::Auto,
        parallel: false,
    };
    let mut mask = C.mask(&c, false, Some(150)).unwrap();
    // The model writes some text, then opens a block by itself.
    let mut ids = TOK.encode_text("Let me check.\n\n<");
    ids.push(TOK.special_id(SpecialToken::Dsml));
    feed(&mut mask, &ids);
    let n = TOK.vocab_size();
    let eos = TOK.special_id(SpecialToken::Eos);
    let mut text = TOK.decode(&ids).unwrap();
    for step in 0..140 {
        let mut logits = random_logits(3, step, n);
        mask.apply(&mut logits).unwrap();
        let id = dsv4_engine::sampling::argmax(&logits);
        mask.accept(id).unwrap();
        if id == eos {
            break;
        }
        text.push_str(&TOK.decode(&[id]).unwrap());
    }
    let mut parser = OutputParser::new(ParserOptions::new(false));
    parser.push_text(&text);
    parser.push(TokenPiece {
        id: eos,
        text: SpecialToken::Eos.content(),
        special: true,
    });
    parser.finish();
    let out = parser.into_output();
    assert_eq!(out.content, "Let me check.");
    assert_eq!(out.tool_calls.len(), 1, "{text}");
    assert!(out.tool_calls[0].closed && !out.tool_calls[0].has_errors());
}

#[test]
fn json_schema_output_is_valid() {
    let schema = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 20},
            "age": {"type": "integer", "minimum": 0, "maximum": 150},
            "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}, "maxItems": 3},
            "ok": {"type": "boolean"}
        },
        "required": ["name", "age", "ok"],
        "additionalProperties": false
    });
    for seed in 0..5 {
        let c = Constraint::Json {
            schema: Some(schema.clone()),
        };
        let mut mask = C.mask(&c, false, Some(100)).unwrap();
        let (out, _) = simulate(&mut mask, seed, 100, false);
        assert!(out.ended_by_eos, "seed {seed}: {out:?}");
        let v: Value =
            serde_json::from_str(&out.content).unwrap_or_else(|e| panic!("{e}: {:?}", out.content));
        assert!(v["name"].as_str().is_some_and(|s| s.chars().count() <= 20));
        assert!(v["age"].as_i64().is_some_and(|a| (0..=150).contains(&a)));
        assert!(v["ok"].is_boolean());
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert!(
            keys.iter()
                .all(|k| ["name", "age", "tags", "ok"].contains(&k.as_str()))
        );
    }
    // json_object: any object.
    let c = Constraint::Json { schema: None };
    let mut mask = C.mask(&c, false, Some(60)).unwrap();
    let (out, _) = simulate(&mut mask, 11, 60, false);
    assert!(
        serde_json::from_str::<Value>(&out.content)
            .unwrap()
            .is_object()
    );
}

#[test]
fn unusable_schemas_are_reported_or_relaxed() {
    // A response_format llguidance cannot compile is a clear 400.
    let c = Constraint::Json {
        schema: Some(
            json!({"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}, "required": ["a"]}),
        ),
    };
    let e = C.mask(&c, false, Some(10)).unwrap_err();
    assert!(e.message.contains("cannot be enforced"), "{}", e.message);
    // The same schema on one tool parameter relaxes that parameter only.
    let t = vec![ToolSpec {
        name: "f".into(),
        parameters: Some(
            json!({"type": "object", "properties": {"a": {"$ref": "#/nowhere"}, "b": {"type": "integer"}}, "required": ["a", "b"]}),
        ),
    }];
    let c = Constraint::Tools {
        tools: t,
        mode: ToolMode::Required,
        parallel: false,
    };
    let mut mask = C.mask(&c, false, Some(200)).unwrap();
    let (out, _) = simulate(&mut mask, 1, 200, false);
    assert_eq!(out.tool_calls.len(), 1);
    let call = &out.tool_calls[0];
    assert!(call.closed && !call.has_errors(), "{call:?}");
    // `a` is any JSON value (possibly a number beyond f64, which serde_json
    // refuses); `b` is still an integer.
    let b = call.arguments.split("\"b\": ").nth(1).unwrap();
    assert!(
        b.trim_end_matches('}').parse::<i64>().is_ok(),
        "{}",
        call.arguments
    );
}
