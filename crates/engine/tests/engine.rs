//! End-to-end engine behaviour on the built-in demo model (random weights,
//! real tokenizer): generation, prefix reuse with cheap rewind, concurrent
//! sessions, stop strings, limits, cancellation and the thinking budget.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, LazyLock};

use dsv4_engine::demo::demo_engine;
use dsv4_engine::{
    Engine, EngineConfig, FinishReason, GenerationRequest, SamplingParams, Thinking, TokenEvent,
    Usage,
};

static ENGINE: LazyLock<Engine> = LazyLock::new(|| {
    demo_engine(EngineConfig {
        ctx: 4096,
        sessions: 8,
        threads: 2,
        ..Default::default()
    })
    .unwrap()
});

struct Outcome {
    tokens: Vec<u32>,
    text: String,
    reason: FinishReason,
    usage: Usage,
    started: bool,
}

fn run(req: GenerationRequest) -> Outcome {
    run_on(&ENGINE, req)
}

fn run_on(engine: &Engine, req: GenerationRequest) -> Outcome {
    let mut h = engine.submit(req).unwrap();
    let mut o = Outcome {
        tokens: vec![],
        text: String::new(),
        reason: FinishReason::Cancelled,
        usage: Usage::default(),
        started: false,
    };
    while let Some(ev) = h.next_blocking() {
        match ev {
            TokenEvent::Started { .. } => o.started = true,
            TokenEvent::Prefill { .. } => {}
            TokenEvent::Text(t) => o.text.push_str(&t),
            TokenEvent::Token(s) => {
                o.tokens.push(s.id);
                o.text.push_str(&s.text);
            }
            TokenEvent::Finished { reason, usage } => {
                o.reason = reason;
                o.usage = usage;
                return o;
            }
            TokenEvent::Error(e) => panic!("engine error: {e}"),
        }
    }
    panic!("channel closed without Finished");
}

fn prompt(n: usize, salt: u32) -> Vec<u32> {
    (0..n as u32)
        .map(|i| 1000 + (i.wrapping_mul(7919).wrapping_add(salt * 104_729)) % 50_000)
        .collect()
}

fn greedy(p: Vec<u32>, n: usize) -> GenerationRequest {
    let mut r = GenerationRequest::new(p);
    r.sampling = SamplingParams::greedy();
    r.max_tokens = Some(n);
    r.ignore_eos = true;
    r
}

#[test]
fn greedy_generation_is_reproducible() {
    let a = run(greedy(prompt(20, 1), 12));
    assert!(a.started);
    assert_eq!(a.tokens.len(), 12);
    assert_eq!(a.reason, FinishReason::Length);
    assert_eq!(a.usage.completion_tokens, 12);
    let mut r = greedy(prompt(20, 1), 12);
    r.session_key = Some("other".into());
    let b = run(r);
    assert_eq!(a.tokens, b.tokens);
}

#[test]
fn rewind_reuses_the_prefix_and_regenerates_identically() {
    let key = Some("rewind".to_string());
    let p = prompt(300, 2);
    let mut r = greedy(p.clone(), 16);
    r.session_key = key.clone();
    let first = run(r);
    assert_eq!(first.usage.cached_tokens, 0);
    // Same prompt again (a regenerate): the mark left at the end of the prompt
    // is restored with its logits, nothing is evaluated.
    let mut r = greedy(p.clone(), 16);
    r.session_key = key.clone();
    let again = run(r);
    assert_eq!(
        again.tokens, first.tokens,
        "regenerate after rewind must equal the first run"
    );
    assert_eq!(
        (again.usage.cached_tokens, again.usage.replayed_tokens),
        (300, 0)
    );
    // An edit at position 290: the checkpoint at 256 is restored and only the
    // 34 known tokens before the edit are re-evaluated; the result equals a
    // fresh run of the edited prompt on an empty session.
    let mut edited = p.clone();
    edited.truncate(290);
    edited.extend(prompt(12, 77));
    let mut r = greedy(edited.clone(), 8);
    r.session_key = key.clone();
    let e = run(r);
    assert_eq!((e.usage.cached_tokens, e.usage.replayed_tokens), (256, 34));
    assert!(
        e.usage.replayed_tokens < 128,
        "rewind re-evaluates a bounded tail"
    );
    let mut r = greedy(edited, 8);
    r.session_key = Some("rewind-fresh".into());
    assert_eq!(
        run(r).tokens,
        e.tokens,
        "rewound run equals a fresh run token for token"
    );
    // Back to the original prompt and its continuation.
    let mut r = greedy(p.clone(), 16);
    r.session_key = key.clone();
    assert_eq!(run(r).tokens, first.tokens);
    // A continuation shares the whole first exchange: nothing replayed.
    let mut cont = p.clone();
    cont.extend_from_slice(&first.tokens[..15]);
    cont.extend(prompt(5, 9));
    let mut r = greedy(cont, 4);
    r.session_key = key;
    let c = run(r);
    assert_eq!(c.usage.cached_tokens, 315);
    assert_eq!(c.usage.replayed_tokens, 0);
}

/// Batch invariance end to end: sessions decoding together (up to
/// `INVARIANT_ROWS` of them, prefills interleaved) generate exactly what each
/// generates alone. The test has its own engine so that requests of tests
/// running in parallel never join its batches.
#[test]
fn concurrent_sessions_match_sequential_runs() {
    let engine = Arc::new(
        demo_engine(EngineConfig {
            ctx: 4096,
            sessions: 8,
            threads: 2,
            ..Default::default()
        })
        .unwrap(),
    );
    let prompts: Vec<Vec<u32>> = (0..dsv4_quant::INVARIANT_ROWS)
        .map(|s| prompt(30 + s * 11, 100 + s as u32))
        .collect();
    let solo: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| run_on(&engine, greedy(p.clone(), 10)).tokens)
        .collect();
    let handles: Vec<_> = prompts
        .iter()
        .map(|p| {
            let (p, engine) = (p.clone(), Arc::clone(&engine));
            std::thread::spawn(move || run_on(&engine, greedy(p, 10)).tokens)
        })
        .collect();
    let together: Vec<Vec<u32>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(solo, together);
}

#[test]
fn stop_strings_limits_and_cancellation() {
    let base = run(greedy(prompt(15, 3), 30));
    // Pick a stop string from the generated text; generation must end before it.
    let text = base.text.clone();
    let chars: Vec<char> = text.chars().collect();
    if chars.len() > 10 {
        let stop: String = chars[6..9].iter().collect();
        let mut r = greedy(prompt(15, 3), 30);
        r.stop = vec![stop.clone()];
        let s = run(r);
        assert_eq!(s.reason, FinishReason::StopString(stop.clone()));
        let cut = text.find(&stop).unwrap();
        assert_eq!(s.text, text[..cut]);
    }
    let mut h = ENGINE.submit(greedy(prompt(2000, 4), 1000)).unwrap();
    h.cancel();
    let mut reason = None;
    while let Some(ev) = h.next_blocking() {
        if let TokenEvent::Finished { reason: r, .. } = ev {
            reason = Some(r);
        }
    }
    assert_eq!(reason, Some(FinishReason::Cancelled));
}

#[test]
fn thinking_budget_forces_the_end_of_reasoning() {
    let mut r = greedy(prompt(10, 5), 8);
    r.thinking = Thinking {
        starts_in_reasoning: true,
        budget: Some(3),
    };
    let mut h = ENGINE.submit(r).unwrap();
    let mut forced_at = None;
    let mut n = 0;
    while let Some(ev) = h.next_blocking() {
        if let TokenEvent::Token(s) = ev {
            if s.forced {
                forced_at.get_or_insert(n);
                assert_eq!(
                    s.id,
                    ENGINE
                        .tokenizer()
                        .special_id(dsv4_tokenizer::SpecialToken::ThinkEnd)
                );
            }
            n += 1;
        }
    }
    assert!(
        forced_at.is_some_and(|at| at <= 3),
        "</think> forced after at most 3 reasoning tokens"
    );
}

#[test]
fn invalid_requests_get_clear_errors() {
    let mut h = ENGINE.submit(GenerationRequest::new(vec![])).unwrap();
    assert!(
        matches!(h.next_blocking(), Some(TokenEvent::Error(e)) if e.to_string().contains("empty"))
    );
    let mut h = ENGINE
        .submit(GenerationRequest::new(vec![0; 5000]))
        .unwrap();
    assert!(
        matches!(h.next_blocking(), Some(TokenEvent::Error(e)) if e.to_string().contains("context"))
    );
    let mut r = GenerationRequest::new(vec![5]);
    r.sampling.top_p = 2.0;
    let mut h = ENGINE.submit(r).unwrap();
    assert!(
        matches!(h.next_blocking(), Some(TokenEvent::Error(e)) if e.to_string().contains("top_p"))
    );
}

#[test]
fn saved_sessions_restore_without_re_prefill() {
    let p = prompt(150, 7);
    let mut r = greedy(p.clone(), 6);
    r.session_key = Some("save-a".into());
    let first = run(r);
    let path = std::env::temp_dir().join(format!("dsv4-session-{}.kv", std::process::id()));
    let saved = ENGINE.save_session("save-a", &path).unwrap();
    assert_eq!(saved, 155, "prompt + 5 evaluated generated tokens");
    ENGINE.forget_session("save-a");
    let loaded = ENGINE.load_session("save-b", &path).unwrap();
    assert_eq!(loaded, 155);
    let mut cont = p.clone();
    cont.extend_from_slice(&first.tokens[..5]);
    let expect_next = first.tokens[5];
    let mut r = greedy(cont, 3);
    r.session_key = Some("save-b".into());
    let c = run(r);
    assert_eq!(
        c.usage.cached_tokens, 155,
        "the whole prompt comes from the file"
    );
    assert_eq!(c.tokens[0], expect_next, "restored state continues exactly");
    // A corrupt file is refused with a clear error and leaves nothing half-loaded.
    std::fs::write(&path, b"garbage").unwrap();
    let e = ENGINE.load_session("save-c", &path).unwrap_err();
    assert!(e.to_string().contains("session"), "{e}");
    std::fs::remove_file(&path).unwrap();
}
