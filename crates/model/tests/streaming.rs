//! Streaming equivalence on a synthetic model: one prefill, chunked prefill
//! of several chunk sizes, pure decode and interleaved batches of several
//! sessions must all give the same logits (model-spec §5.8).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use dsv4_gguf::GgufFile;
use dsv4_model::synth::{Preset, QuantMix, SynthSpec, VocabMeta, preset_config, to_bytes};
use dsv4_model::{
    Backend, CpuBackend, CpuOptions, KvFormat, Model, ModelOptions, RowMeta, Scratch, forward,
};
use dsv4_quant::Kernels;

fn tiny_model(qat: bool, mix: &str) -> Model {
    let mut cfg = preset_config(Preset::Tiny, 512, None, None);
    cfg.n_vocab = 512;
    let spec = SynthSpec {
        cfg,
        mix: QuantMix::parse(mix).unwrap(),
        seed: 7,
        name: "tiny-test".into(),
    };
    let bytes = to_bytes(&spec, &VocabMeta::default()).unwrap();
    let file = GgufFile::from_bytes(bytes).unwrap();
    Model::from_file(Arc::new(file), ModelOptions { qat_sim: qat }).unwrap()
}

fn tokens(n: usize) -> Vec<u32> {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(2654435761u32) >> 7) % 512)
        .collect()
}

/// Logits of every position, feeding the sequence `chunk` tokens at a time.
fn run_chunked(model: &Model, be: &CpuBackend, toks: &[u32], chunk: usize) -> Vec<f32> {
    let mut st = be.new_state(model);
    let mut scratch = Scratch::default();
    let mut all = Vec::new();
    let mut logits = Vec::new();
    for (ci, c) in toks.chunks(chunk).enumerate() {
        let rows: Vec<RowMeta> = c
            .iter()
            .enumerate()
            .map(|(j, &t)| RowMeta {
                seq: 0,
                token: t,
                pos: ci * chunk + j,
            })
            .collect();
        let sel: Vec<usize> = (0..rows.len()).collect();
        forward(
            model,
            be,
            &rows,
            &mut [&mut st],
            &sel,
            &mut logits,
            &mut scratch,
            None,
        )
        .unwrap();
        all.extend_from_slice(&logits);
    }
    all
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn backend(exact: bool) -> CpuBackend {
    CpuBackend::new(
        Kernels::detect(),
        CpuOptions {
            threads: 2,
            exact,
            kv_format: KvFormat::F32,
            raw_history: 0,
        },
    )
    .unwrap()
}

#[test]
fn chunked_prefill_and_decode_match_full_prefill() {
    for qat in [false, true] {
        let model = tiny_model(qat, "f32");
        let be = backend(true);
        let toks = tokens(300); // past one HCA window (128) and many CSA windows
        let full = run_chunked(&model, &be, &toks, toks.len());
        assert!(full.iter().all(|v| v.is_finite()));
        for chunk in [1, 3, 64] {
            let got = run_chunked(&model, &be, &toks, chunk);
            let d = max_diff(&full, &got);
            assert!(d < 1e-4, "qat={qat} chunk={chunk}: max |Δ| = {d}");
        }
    }
}

#[test]
fn interleaved_sessions_match_separate_runs() {
    let model = tiny_model(true, "f32");
    let be = backend(true);
    let seqs: Vec<Vec<u32>> = (0..3)
        .map(|s| {
            tokens(40 + 7 * s)
                .iter()
                .map(|t| (t + s as u32 * 13) % 512)
                .collect()
        })
        .collect();
    let solo: Vec<Vec<f32>> = seqs
        .iter()
        .map(|s| run_chunked(&model, &be, s, 5))
        .collect();
    // Prefill each with its first 10 tokens, then decode all three together.
    let mut states: Vec<_> = (0..3).map(|_| be.new_state(&model)).collect();
    let mut scratch = Scratch::default();
    let mut logits = Vec::new();
    let mut got: Vec<Vec<f32>> = vec![Vec::new(); 3];
    for (s, st) in states.iter_mut().enumerate() {
        let rows: Vec<RowMeta> = (0..10)
            .map(|p| RowMeta {
                seq: 0,
                token: seqs[s][p],
                pos: p,
            })
            .collect();
        let sel: Vec<usize> = (0..10).collect();
        forward(
            &model,
            &be,
            &rows,
            &mut [st],
            &sel,
            &mut logits,
            &mut scratch,
            None,
        )
        .unwrap();
        got[s].extend_from_slice(&logits);
    }
    let v = model.cfg.n_vocab;
    let mut pos = 10;
    loop {
        let rows: Vec<RowMeta> = (0..3)
            .filter(|&s| pos < seqs[s].len())
            .map(|s| RowMeta {
                seq: s,
                token: seqs[s][pos],
                pos,
            })
            .collect();
        if rows.is_empty() {
            break;
        }
        let sel: Vec<usize> = (0..rows.len()).collect();
        let mut refs: Vec<&mut _> = states.iter_mut().collect();
        forward(
            &model,
            &be,
            &rows,
            &mut refs,
            &sel,
            &mut logits,
            &mut scratch,
            None,
        )
        .unwrap();
        for (j, r) in rows.iter().enumerate() {
            got[r.seq].extend_from_slice(&logits[j * v..(j + 1) * v]);
        }
        pos += 1;
    }
    for s in 0..3 {
        let d = max_diff(&solo[s], &got[s]);
        assert!(d < 1e-4, "session {s}: {d}");
    }
}

#[test]
fn fast_kernels_track_exact_on_q8_0() {
    let model = tiny_model(true, "q8_0");
    let toks = tokens(48);
    let exact = run_chunked(&model, &backend(true), &toks, 48);
    let fast = run_chunked(&model, &backend(false), &toks, 48);
    let d = max_diff(&exact, &fast);
    let scale = exact.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(
        d < 0.05 * scale.max(1.0),
        "fast vs exact: {d} (logit scale {scale})"
    );
}
