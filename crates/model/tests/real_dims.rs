//! The real-dimension check: a random-weight model with DeepSeek V4 Flash's
//! own dimensions (hidden 4096, 64 heads of 512, q rank 1024, 8 output groups,
//! indexer 64 × 128 with top-512, 2048-wide experts, top-6 routing, hash
//! routing on the first layers) but only the four layers of the `slice`
//! preset ([SWA, CSA, HCA, CSA]), 8 experts and a small vocabulary, all in
//! Q8_0 (generating ds4's q2 mix at these sizes takes minutes: its IQ2_XXS
//! quantizer searches the grid; those kernels are covered by the tiny q2-mix
//! fixtures and the benchmark slice). It must load through the same
//! tensor-role table as the real file and run prefill and decode through
//! every layer flavour with finite logits, on the fast path the real model
//! uses.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use dsv4_gguf::GgufFile;
use dsv4_model::synth::{Preset, QuantMix, SynthSpec, VocabMeta, preset_config, to_bytes};
use dsv4_model::{CpuBackend, CpuOptions, KvFormat, Model, ModelOptions, run_sequence};
use dsv4_quant::Kernels;

#[test]
fn flash_dimensions_load_and_run_every_layer_flavour() {
    let vocab = 2048;
    let cfg = preset_config(Preset::Slice, vocab, None, Some(8));
    let flash = preset_config(Preset::Flash, vocab, None, None);
    // The dimensions are Flash's own.
    assert_eq!(cfg.n_embd, flash.n_embd);
    assert_eq!((cfg.n_head, cfg.head_dim), (flash.n_head, flash.head_dim));
    assert_eq!(cfg.n_ff_exp, flash.n_ff_exp);
    assert_eq!(cfg.index_topk, flash.index_topk);
    assert_eq!(cfg.n_expert_used, flash.n_expert_used);
    let spec = SynthSpec {
        cfg,
        mix: QuantMix::parse("q8_0").unwrap(),
        seed: 11,
        name: "flash-dims-test".into(),
    };
    let bytes = to_bytes(&spec, &VocabMeta::default()).unwrap();
    let file = GgufFile::from_bytes(bytes).unwrap();
    let model = Model::from_file(Arc::new(file), ModelOptions { qat_sim: true }).unwrap();
    let kinds: Vec<String> = model
        .cfg
        .layers
        .iter()
        .map(|l| format!("{:?}", l.kind))
        .collect();
    assert_eq!(kinds, ["Swa", "Csa", "Hca", "Csa"]);
    let be = CpuBackend::new(
        Kernels::detect(),
        CpuOptions {
            threads: 2,
            exact: false,
            kv_format: KvFormat::Compact,
            raw_history: 0,
            pack_weights: true,
        },
    )
    .unwrap();
    let tokens: Vec<u32> = (0..6u32).map(|i| (i * 337 + 5) % vocab as u32).collect();
    // Prefill of four tokens, then two decode steps.
    let v = model.cfg.n_vocab;
    let whole = run_sequence(&model, &be, &tokens, 4, None).unwrap();
    assert_eq!(whole.len(), tokens.len() * v);
    assert!(whole.iter().all(|x| x.is_finite()), "non-finite logits");
    // Logits vary across positions (the layers did something).
    let spread = whole[..v]
        .iter()
        .zip(&whole[5 * v..])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(spread > 0.0, "every position gave the same logits");
}
