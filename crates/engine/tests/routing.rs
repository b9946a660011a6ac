//! Session routing: a side request (a title or summary request sharing only
//! the start of a conversation, even under the same session key) goes to
//! another session and leaves the conversation's KV intact, so the next turn
//! of the conversation still reuses everything it evaluated.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dsv4_engine::demo::demo_engine;
use dsv4_engine::{Engine, EngineConfig, GenerationRequest, SamplingParams, TokenEvent, Usage};

struct Outcome {
    tokens: Vec<u32>,
    usage: Usage,
}

fn run(engine: &Engine, req: GenerationRequest) -> Outcome {
    let mut h = engine.submit(req).unwrap();
    let mut tokens = Vec::new();
    while let Some(ev) = h.next_blocking() {
        match ev {
            TokenEvent::Token(s) => tokens.push(s.id),
            TokenEvent::Finished { usage, .. } => return Outcome { tokens, usage },
            TokenEvent::Error(e) => panic!("engine error: {e}"),
            _ => {}
        }
    }
    panic!("channel closed without Finished");
}

fn prompt(n: usize, salt: u32) -> Vec<u32> {
    (0..n as u32)
        .map(|i| 1000 + (i.wrapping_mul(7919).wrapping_add(salt * 104_729)) % 50_000)
        .collect()
}

fn greedy(p: Vec<u32>, n: usize, key: Option<&str>) -> GenerationRequest {
    let mut r = GenerationRequest::new(p);
    r.sampling = SamplingParams::greedy();
    r.max_tokens = Some(n);
    r.ignore_eos = true;
    r.session_key = key.map(String::from);
    r
}

/// The next turn of `p`: the prompt, the first `k` generated tokens, more text.
fn next_turn(p: &[u32], out: &[u32], k: usize, salt: u32) -> Vec<u32> {
    let mut next = p.to_vec();
    next.extend_from_slice(&out[..k]);
    next.extend(prompt(10, salt));
    next
}

#[test]
fn side_requests_do_not_evict_a_conversation() {
    let engine = demo_engine(EngineConfig {
        ctx: 2048,
        sessions: 3,
        threads: 2,
        ..Default::default()
    })
    .unwrap();

    // Without keys: conversation A, then a side request sharing A's first
    // 100 tokens (its "system prompt"), then A's next turn.
    let pa = prompt(300, 1);
    let a1 = run(&engine, greedy(pa.clone(), 8, None));
    let mut side = pa[..100].to_vec();
    side.extend(prompt(40, 2));
    let s1 = run(&engine, greedy(side, 4, None));
    assert_eq!(
        s1.usage.cached_tokens, 0,
        "the side request used an empty session"
    );
    let a2 = run(&engine, greedy(next_turn(&pa, &a1.tokens, 7, 3), 4, None));
    assert_eq!(
        a2.usage.cached_tokens, 307,
        "A's whole exchange is still resident"
    );

    // With one key for both (as agents send their session header on side
    // requests too): the side request goes elsewhere and the key stays.
    let pb = prompt(300, 4);
    let b1 = run(&engine, greedy(pb.clone(), 8, Some("conv")));
    assert_eq!(b1.usage.cached_tokens, 0);
    let mut side = pb[..100].to_vec();
    side.extend(prompt(40, 5));
    let s2 = run(&engine, greedy(side, 4, Some("conv")));
    assert!(
        s2.usage.cached_tokens < 100,
        "the side request did not rewind B"
    );
    let b2 = run(
        &engine,
        greedy(next_turn(&pb, &b1.tokens, 7, 6), 4, Some("conv")),
    );
    assert_eq!(
        b2.usage.cached_tokens, 307,
        "B keeps its session and its key"
    );

    // A regenerate (the same prompt again) still rewinds its own session.
    let b3 = run(&engine, greedy(pb.clone(), 8, Some("conv")));
    assert!(b3.usage.cached_tokens >= 256, "{:?}", b3.usage);
    assert_eq!(
        b3.tokens, b1.tokens,
        "regenerate reproduces the first answer"
    );
}
