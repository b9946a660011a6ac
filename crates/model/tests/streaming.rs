//! Streaming equivalence on a synthetic model: one prefill, chunked prefill
//! of several chunk sizes, pure decode and interleaved batches of several
//! sessions must all give the same logits (model-spec §5.8).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use dsv4_gguf::GgufFile;
use dsv4_model::synth::{Preset, QuantMix, SynthSpec, VocabMeta, preset_config, to_bytes};
use dsv4_model::{
    Backend, CpuBackend, CpuOptions, KvFormat, Model, ModelOptions, RowMeta, Scratch, forward,
    run_sequence,
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
    run_sequence(model, be, toks, chunk, None).unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn backend(exact: bool) -> CpuBackend {
    backend_kv(exact, KvFormat::F32)
}

fn backend_kv(exact: bool, kv_format: KvFormat) -> CpuBackend {
    backend_opts(exact, kv_format, true)
}

fn backend_opts(exact: bool, kv_format: KvFormat, pack_weights: bool) -> CpuBackend {
    CpuBackend::new(
        Kernels::detect(),
        CpuOptions {
            threads: 2,
            exact,
            kv_format,
            raw_history: 0,
            pack_weights,
        },
    )
    .unwrap()
}

/// Packed Q8_0 weights (on kernel tables that pack them) are held as
/// planned and make the logits independent of the chunking; tables that do
/// not pack hold nothing extra. (Their agreement with the reference is
/// `reference.rs`, whose fast-mode backends pack.)
#[test]
fn packed_weights_match_row_major_weights() {
    use dsv4_model::Backend;
    let model = tiny_model(false, "q8_0");
    let packed = backend_opts(false, KvFormat::F32, true);
    let plain = backend_opts(false, KvFormat::F32, false);
    let held = packed.prepare(&model).unwrap();
    assert_eq!(held, packed.prepared_bytes(&model));
    assert_eq!(plain.prepare(&model).unwrap(), 0);
    if Kernels::detect().packs(dsv4_gguf::GgmlType::Q8_0) {
        assert!(held > 0, "a packing table packed nothing");
    } else {
        assert_eq!(held, 0);
    }
    // Q8_0 products give every token the reference bits whatever the batch,
    // so the chunking of a sequence matters far less than with row-major
    // weights, where long and short batches run different kernels (in this
    // tiny random model without QAT, such last-bit differences move the
    // logits by ~1: measured 1.07 between chunkings with row-major weights).
    let toks = tokens(140);
    let whole = run_chunked(&model, &packed, &toks, toks.len());
    for chunk in [1, 5] {
        let got = run_chunked(&model, &packed, &toks, chunk);
        let d = max_diff(&whole, &got);
        assert!(d < 1e-4, "chunk {chunk}: max |Δ| = {d}");
    }
}

/// Logit tolerance between runs that use different kernels (long against
/// short batches) under QAT. The kernels round differently by ~1e-7, and a
/// value that lands that close to an E4M3 rounding boundary of the FP8 KV
/// simulation moves by a whole rounding step (up to 1/16 of it) in one run
/// only: measured jumps of the logits (magnitude ~3) are ~2e-4. Without
/// QAT, and between runs of the same kernels, the checks are 1e-4 and exact.
const QAT_TOLERANCE: f32 = 2e-3;

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
            let tol = if qat { QAT_TOLERANCE } else { 1e-4 };
            assert!(d < tol, "qat={qat} chunk={chunk}: max |Δ| = {d}");
        }
    }
}

/// Compact KV rows are read two ways: a prefill chunk decodes every visible
/// compressed row once, a single query gathers only its top-k rows (the tiny
/// model selects 8 of up to 75). Both must give the same attention: a wrong
/// or shifted row moves the logits by far more than the QAT tolerance of
/// runs with different kernels (see [`QAT_TOLERANCE`]).
#[test]
fn chunked_prefill_with_compact_kv_matches_full_prefill() {
    let model = tiny_model(true, "f32");
    let be = backend_kv(true, KvFormat::Compact);
    let toks = tokens(300);
    let full = run_chunked(&model, &be, &toks, toks.len());
    assert!(full.iter().all(|v| v.is_finite()));
    for chunk in [1, 3, 64] {
        let got = run_chunked(&model, &be, &toks, chunk);
        let d = max_diff(&full, &got);
        assert!(
            d < QAT_TOLERANCE,
            "compact KV, chunk={chunk}: max |Δ| = {d}"
        );
    }
}

/// Logits of every position of `toks`: the first `prefill` tokens in one
/// call, then one token per call.
fn run_prefill_then_decode(
    model: &Model,
    be: &CpuBackend,
    toks: &[u32],
    prefill: usize,
) -> Vec<f32> {
    let mut st = be.new_state(model);
    let (mut scratch, mut logits, mut all) = (Scratch::default(), Vec::new(), Vec::new());
    let mut feed = |range: std::ops::Range<usize>| {
        let rows: Vec<RowMeta> = range
            .map(|p| RowMeta {
                seq: 0,
                token: toks[p],
                pos: p,
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
    };
    feed(0..prefill);
    for p in prefill..toks.len() {
        feed(p..p + 1);
    }
    all
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
    // Each session alone, fed the same way: one 10-token prefill, then one
    // token per call. Batched decode rows get the bits of single-row calls
    // (`INVARIANT_ROWS`), so the logits must be identical, not just close.
    let solo: Vec<Vec<f32>> = seqs
        .iter()
        .map(|s| run_prefill_then_decode(&model, &be, s, 10))
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
        assert_eq!(d, 0.0, "session {s}: max |Δ| = {d}");
    }
    // And close to the session fed in chunks of 5 (other kernels).
    for (s, seq) in seqs.iter().enumerate() {
        let d = max_diff(&run_chunked(&model, &be, seq, 5), &got[s]);
        assert!(d < QAT_TOLERANCE, "session {s} against chunks of 5: {d}");
    }
}

#[test]
fn compact_kv_bytes_per_token_for_flash() {
    use dsv4_model::kv::bytes_per_token;
    let cfg = preset_config(Preset::Flash, 129_280, None, None);
    let compact = bytes_per_token(&cfg, KvFormat::Compact);
    let f32s = bytes_per_token(&cfg, KvFormat::F32);
    // model-spec §5.7: 583 B per main row (448 E4M3 + 7 scales + 64 BF16), 68 B per
    // indexer key (64 B of E2M1 + 4 scales): 21·(583+68)/4 + 20·583/128 ≈ 3509 B.
    assert!(
        (compact - (21.0 * 651.0 / 4.0 + 20.0 * 583.0 / 128.0)).abs() < 1e-6,
        "{compact}"
    );
    assert!(compact <= 3600.0, "compact KV is {compact} B/token");
    // ds4 stores fp32 rows: 13,760 B/token.
    assert!((f32s - 13_760.0).abs() < 1e-6, "{f32s}");
}

#[test]
fn compact_kv_rows_are_lossless_under_qat() {
    // A model whose first layer is CSA, so the first layer's raw rows,
    // compressed rows and indexer keys come from inputs that do not depend on
    // the KV format; compare them between an f32 and a compact session.
    let mut cfg = preset_config(Preset::Tiny, 512, None, None);
    cfg.n_vocab = 512;
    cfg.layers = vec![cfg.layers[1], cfg.layers[2]];
    cfg.n_layer = 2;
    let spec = SynthSpec {
        cfg,
        mix: QuantMix::parse("f32").unwrap(),
        seed: 11,
        name: "csa-first".into(),
    };
    let file = GgufFile::from_bytes(to_bytes(&spec, &VocabMeta::default()).unwrap()).unwrap();
    let model = Model::from_file(Arc::new(file), ModelOptions { qat_sim: true }).unwrap();
    let mk = |kv| {
        CpuBackend::new(
            Kernels::detect(),
            CpuOptions {
                threads: 2,
                exact: true,
                kv_format: kv,
                raw_history: 0,
                pack_weights: true,
            },
        )
        .unwrap()
    };
    let (bf, bc) = (mk(KvFormat::F32), mk(KvFormat::Compact));
    let toks = tokens(64);
    let rows: Vec<RowMeta> = toks
        .iter()
        .enumerate()
        .map(|(p, &t)| RowMeta {
            seq: 0,
            token: t,
            pos: p,
        })
        .collect();
    let (mut sf, mut sc) = (bf.new_state(&model), bc.new_state(&model));
    let mut scratch = Scratch::default();
    let mut logits = Vec::new();
    forward(
        &model,
        &bf,
        &rows,
        &mut [&mut sf],
        &[],
        &mut logits,
        &mut scratch,
        None,
    )
    .unwrap();
    forward(
        &model,
        &bc,
        &rows,
        &mut [&mut sc],
        &[],
        &mut logits,
        &mut scratch,
        None,
    )
    .unwrap();
    let (hd, rd) = (model.cfg.head_dim, model.cfg.rope_dim);
    let (lf, lc) = (&sf.layers[0], &sc.layers[0]);
    let (mut a, mut b) = (vec![0.0f32; hd], vec![0.0f32; hd]);
    let check = |a: &[f32], b: &[f32], rope: usize, what: &str| {
        let nope = a.len() - rope;
        assert_eq!(
            &a[..nope],
            &b[..nope],
            "{what}: the FP8/FP4 part must be stored exactly"
        );
        for (x, y) in a[nope..].iter().zip(&b[nope..]) {
            assert!(
                (x - y).abs() <= x.abs() * 4e-3 + 1e-30,
                "{what}: BF16 RoPE part {x} vs {y}"
            );
        }
    };
    assert!(!lf.raw.rows.is_empty() && lf.raw.rows.len() == lc.raw.rows.len());
    for i in 0..lf.raw.rows.len() {
        lf.raw.rows.read(i, &mut a);
        lc.raw.rows.read(i, &mut b);
        check(&a, &b, rd, "raw row");
    }
    let (cf, cc) = (lf.comp.as_ref().unwrap(), lc.comp.as_ref().unwrap());
    assert_eq!(cf.rows.len(), 16);
    for i in 0..cf.rows.len() {
        cf.rows.read(i, &mut a);
        cc.rows.read(i, &mut b);
        check(&a, &b, rd, "compressed row");
    }
    let (xf, xc) = (lf.index.as_ref().unwrap(), lc.index.as_ref().unwrap());
    let ihd = model.cfg.index_head_dim;
    let (mut a, mut b) = (vec![0.0f32; ihd], vec![0.0f32; ihd]);
    for i in 0..xf.rows.len() {
        xf.rows.read(i, &mut a);
        xc.rows.read(i, &mut b);
        check(&a, &b, 0, "indexer key");
    }
    // Here half of each 128-dim row is RoPE (BF16), so the gain is smaller than
    // on Flash (512 dims, 64 RoPE: 4x); see compact_kv_bytes_per_token_for_flash.
    assert!(
        sc.kv_bytes() * 2 < sf.kv_bytes(),
        "compact rows are at least 2x smaller"
    );
}

/// Batch invariance of the fast path: sessions decoded together (up to
/// `INVARIANT_ROWS` of them) get exactly the logits each gets decoding alone,
/// so concurrent load never changes what a session generates.
#[test]
fn fast_batched_decode_is_bit_identical_to_solo_decode() {
    let model = tiny_model(true, "q8_0");
    let be = backend(false);
    let n = dsv4_quant::INVARIANT_ROWS;
    let seqs: Vec<Vec<u32>> = (0..n)
        .map(|s| {
            tokens(24 + 5 * s)
                .iter()
                .map(|t| (t + s as u32 * 13) % 512)
                .collect()
        })
        .collect();
    let prefill = 10;
    let v = model.cfg.n_vocab;
    let step = |states: &mut [&mut _], rows: &[RowMeta], logits: &mut Vec<f32>| {
        let sel: Vec<usize> = (0..rows.len()).collect();
        let mut scratch = Scratch::default();
        forward(&model, &be, rows, states, &sel, logits, &mut scratch, None).unwrap();
    };
    let row = |s: usize, p: usize, seq: usize| RowMeta {
        seq,
        token: seqs[s][p],
        pos: p,
    };
    // Alone: a prefill chunk, then one token at a time.
    let mut solo: Vec<Vec<f32>> = Vec::new();
    let mut logits = Vec::new();
    for (s, seq) in seqs.iter().enumerate() {
        let mut st = be.new_state(&model);
        let rows: Vec<RowMeta> = (0..prefill).map(|p| row(s, p, 0)).collect();
        step(&mut [&mut st], &rows, &mut logits);
        let mut out = Vec::new();
        for p in prefill..seq.len() {
            step(&mut [&mut st], &[row(s, p, 0)], &mut logits);
            out.extend_from_slice(&logits);
        }
        solo.push(out);
    }
    // Together: the same prefill chunks, then every step one batch.
    let mut states: Vec<_> = (0..n).map(|_| be.new_state(&model)).collect();
    for (s, st) in states.iter_mut().enumerate() {
        let rows: Vec<RowMeta> = (0..prefill).map(|p| row(s, p, 0)).collect();
        step(&mut [st], &rows, &mut logits);
    }
    let mut got: Vec<Vec<f32>> = vec![Vec::new(); n];
    for pos in prefill.. {
        let rows: Vec<RowMeta> = (0..n)
            .filter(|&s| pos < seqs[s].len())
            .map(|s| row(s, pos, s))
            .collect();
        if rows.is_empty() {
            break;
        }
        let mut refs: Vec<&mut _> = states.iter_mut().collect();
        step(&mut refs, &rows, &mut logits);
        for (j, r) in rows.iter().enumerate() {
            got[r.seq].extend_from_slice(&logits[j * v..(j + 1) * v]);
        }
    }
    for s in 0..n {
        let first = solo[s]
            .iter()
            .zip(&got[s])
            .position(|(a, b)| a.to_bits() != b.to_bits());
        assert!(
            first.is_none(),
            "session {s}: logit {first:?} differs (max |Δ| {})",
            max_diff(&solo[s], &got[s])
        );
    }
}

/// The logits' bits do not depend on the thread count: with one thread every
/// routed expert runs whole on it, with two or three the experts of a
/// one-token step split their products over the threads and a prompt's run
/// one per task, and each row sums its experts in the same order.
#[test]
fn logits_do_not_depend_on_the_thread_count() {
    let model = tiny_model(true, "q2");
    let toks = tokens(48);
    let run = |threads: usize, chunk: usize| {
        let be = CpuBackend::new(
            Kernels::detect(),
            CpuOptions {
                threads,
                exact: false,
                kv_format: KvFormat::F32,
                raw_history: 0,
                pack_weights: true,
            },
        )
        .unwrap();
        run_chunked(&model, &be, &toks, chunk)
    };
    for chunk in [1, 48] {
        let one = run(1, chunk);
        assert!(one.iter().all(|v| v.is_finite()));
        for threads in [2, 3] {
            let many = run(threads, chunk);
            assert!(
                one == many,
                "chunk {chunk}: {threads} threads differ from one by up to {}",
                max_diff(&one, &many)
            );
        }
    }
}
