//! Greedy generation through the whole engine on a reference fixture
//! reproduces the transformers argmax chain (`tools/reference/greedy.py`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dsv4_engine::{
    Engine, EngineConfig, GenerationRequest, Kernels, KvFormat, SamplingParams, TokenEvent,
};
use dsv4_model::{CpuBackend, CpuOptions, Model, ModelOptions};
use dsv4_tokenizer::Tokenizer;

#[test]
fn greedy_generation_reproduces_the_reference_chain() {
    let root =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/reference");
    let chain: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("tiny/f32/greedy_chain.json")).unwrap())
            .unwrap();
    let ids = |k: &str| {
        chain[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect::<Vec<_>>()
    };
    let (prompt, want) = (ids("prompt"), ids("generated"));
    let cfg = EngineConfig {
        ctx: 1024,
        sessions: 1,
        threads: 2,
        qat_sim: false,
        exact: true,
        kv_format: KvFormat::F32,
        prefill_chunk: 7,
        ..Default::default()
    };
    // The fixture's 512-token vocabulary lacks the chat-format special tokens,
    // so the engine gets the built-in tokenizer; only token ids matter here.
    let model = Model::load(
        root.join("tiny/tiny-f32.gguf"),
        ModelOptions { qat_sim: false },
    )
    .unwrap();
    let be = CpuBackend::new(
        Kernels::detect(),
        CpuOptions {
            threads: 2,
            exact: true,
            kv_format: KvFormat::F32,
            raw_history: 0,
            pack_weights: true,
        },
    )
    .unwrap();
    let engine = Engine::start(model, be, Tokenizer::builtin().unwrap(), cfg).unwrap();
    let mut req = GenerationRequest::new(prompt);
    req.sampling = SamplingParams::greedy();
    req.max_tokens = Some(want.len());
    req.ignore_eos = true;
    req.greedy_dsml = false;
    let mut h = engine.submit(req).unwrap();
    let mut got = Vec::new();
    while let Some(ev) = h.next_blocking() {
        match ev {
            TokenEvent::Token(s) => got.push(s.id),
            TokenEvent::Error(e) => panic!("{e}"),
            _ => {}
        }
    }
    assert_eq!(got, want);
}
