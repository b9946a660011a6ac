//! Benchmarks: prefill and decode speed (per context length), batched decode
//! of several sessions, weight bytes read per decoded token, and a
//! STREAM-style read-bandwidth probe giving the ceiling decode can reach.
//!
//! Measurements drive the forward pass directly with random tokens (what a
//! real request does, minus detokenization), after a warm-up pass that pages
//! the weights in. Timings are wall-clock; report them with the machine.

use std::time::Instant;

use dsv4_model::{Backend, CpuBackend, Model, RowMeta, Scratch, SessionStateOps, forward};
use rayon::prelude::*;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Prompt lengths for prefill measurements.
    pub prompt_tokens: Vec<usize>,
    /// Tokens generated per decode measurement.
    pub gen_tokens: usize,
    /// Context lengths at which decode speed is measured (after prefilling that many tokens).
    pub ctx_sweep: Vec<usize>,
    /// Session counts for batched decode.
    pub batch: Vec<usize>,
    /// Prompt tokens per forward pass during prefill.
    pub prefill_chunk: usize,
    /// Repetitions per measurement (the median is reported).
    pub runs: usize,
}

/// One measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRow {
    /// `prefill`, `decode` or `batch`.
    pub kind: &'static str,
    /// Prompt tokens (prefill) or context length (decode).
    pub ctx: usize,
    /// Sessions decoding together.
    pub sessions: usize,
    /// Tokens processed in the measurement.
    pub tokens: usize,
    /// Median seconds.
    pub seconds: f64,
    /// Tokens per second (aggregate over sessions).
    pub tokens_per_s: f64,
    /// Weight bytes read per second (decode rows only).
    pub gb_per_s: Option<f64>,
}

/// Measures the machine's read bandwidth (GB/s) by summing a buffer larger
/// than any cache with `threads` threads; the best of several passes.
pub fn bandwidth_probe(pool: &rayon::ThreadPool, bytes: usize) -> f64 {
    let n = bytes / 8;
    let buf: Vec<u64> = pool.install(|| (0..n).into_par_iter().map(|i| i as u64).collect());
    let mut best = 0.0f64;
    for _ in 0..5 {
        let t0 = Instant::now();
        let s: u64 = pool.install(|| {
            buf.par_chunks(1 << 16)
                .map(|c| c.iter().fold(0u64, |a, &b| a.wrapping_add(b)))
                .reduce(|| 0, u64::wrapping_add)
        });
        let dt = t0.elapsed().as_secs_f64();
        std::hint::black_box(s);
        best = best.max(bytes as f64 / dt / 1e9);
    }
    best
}

fn random_tokens(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Skip the low ids (control tokens of the real vocabulary).
            (1000 + x % (vocab.saturating_sub(2000).max(1) as u64)) as u32 % vocab as u32
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Runner<'a> {
    model: &'a Model,
    be: &'a CpuBackend,
    chunk: usize,
    scratch: Scratch,
    logits: Vec<f32>,
}

impl Runner<'_> {
    /// Feeds `toks` into `st` in chunks; returns seconds.
    fn prefill(
        &mut self,
        st: &mut <CpuBackend as Backend>::State,
        toks: &[u32],
    ) -> dsv4_model::Result<f64> {
        let t0 = Instant::now();
        for c in toks.chunks(self.chunk) {
            let p0 = st.pos();
            let rows: Vec<RowMeta> = c
                .iter()
                .enumerate()
                .map(|(j, &t)| RowMeta {
                    seq: 0,
                    token: t,
                    pos: p0 + j,
                })
                .collect();
            forward(
                self.model,
                self.be,
                &rows,
                &mut [&mut *st],
                &[rows.len() - 1],
                &mut self.logits,
                &mut self.scratch,
                None,
            )?;
        }
        Ok(t0.elapsed().as_secs_f64())
    }

    /// Decodes `n` tokens in every state together (greedy); returns seconds.
    fn decode(
        &mut self,
        states: &mut [<CpuBackend as Backend>::State],
        n: usize,
    ) -> dsv4_model::Result<f64> {
        let v = self.model.cfg.n_vocab;
        let mut next: Vec<u32> = vec![1000; states.len()];
        let t0 = Instant::now();
        for _ in 0..n {
            let rows: Vec<RowMeta> = states
                .iter()
                .enumerate()
                .map(|(s, st)| RowMeta {
                    seq: s,
                    token: next[s],
                    pos: st.pos(),
                })
                .collect();
            let sel: Vec<usize> = (0..rows.len()).collect();
            let mut refs: Vec<&mut _> = states.iter_mut().collect();
            forward(
                self.model,
                self.be,
                &rows,
                &mut refs,
                &sel,
                &mut self.logits,
                &mut self.scratch,
                None,
            )?;
            for (s, nx) in next.iter_mut().enumerate() {
                *nx = crate::sampling::argmax(&self.logits[s * v..(s + 1) * v]);
            }
        }
        Ok(t0.elapsed().as_secs_f64())
    }
}

/// Runs every measurement of `cfg`, calling `progress` with each row.
pub fn run(
    model: &Model,
    be: &CpuBackend,
    cfg: &BenchConfig,
    mut progress: impl FnMut(&BenchRow),
) -> dsv4_model::Result<Vec<BenchRow>> {
    let vocab = model.cfg.n_vocab;
    let bytes_tok = model.bytes_per_decoded_token() as f64;
    let mut r = Runner {
        model,
        be,
        chunk: cfg.prefill_chunk.max(1),
        scratch: Scratch::default(),
        logits: Vec::new(),
    };
    let mut out = Vec::new();
    let mut push = |row: BenchRow, out: &mut Vec<BenchRow>| {
        progress(&row);
        out.push(row);
    };
    // Warm-up: page in every weight once.
    let mut st = be.new_state(model);
    r.prefill(&mut st, &random_tokens(8, vocab, 1))?;
    for &p in &cfg.prompt_tokens {
        let toks = random_tokens(p, vocab, p as u64);
        let times: Vec<f64> = (0..cfg.runs.max(1))
            .map(|_| {
                let mut st = be.new_state(model);
                r.prefill(&mut st, &toks)
            })
            .collect::<dsv4_model::Result<_>>()?;
        let s = median(times);
        push(
            BenchRow {
                kind: "prefill",
                ctx: p,
                sessions: 1,
                tokens: p,
                seconds: s,
                tokens_per_s: p as f64 / s,
                gb_per_s: None,
            },
            &mut out,
        );
    }
    for &c in &cfg.ctx_sweep {
        let mut st = be.new_state(model);
        r.prefill(&mut st, &random_tokens(c.max(1), vocab, 7 + c as u64))?;
        let base = st.clone();
        let times: Vec<f64> = (0..cfg.runs.max(1))
            .map(|_| {
                let mut one = [base.clone()];
                r.decode(&mut one, cfg.gen_tokens)
            })
            .collect::<dsv4_model::Result<_>>()?;
        let s = median(times);
        let tps = cfg.gen_tokens as f64 / s;
        push(
            BenchRow {
                kind: "decode",
                ctx: c,
                sessions: 1,
                tokens: cfg.gen_tokens,
                seconds: s,
                tokens_per_s: tps,
                gb_per_s: Some(tps * bytes_tok / 1e9),
            },
            &mut out,
        );
    }
    for &b in &cfg.batch {
        let mut states: Vec<_> = (0..b)
            .map(|i| {
                let mut st = be.new_state(model);
                r.prefill(&mut st, &random_tokens(16, vocab, 100 + i as u64))
                    .map(|_| st)
            })
            .collect::<dsv4_model::Result<_>>()?;
        let base = states.clone();
        let times: Vec<f64> = (0..cfg.runs.max(1))
            .map(|_| {
                states.clone_from(&base);
                r.decode(&mut states, cfg.gen_tokens)
            })
            .collect::<dsv4_model::Result<_>>()?;
        let s = median(times);
        let tps = (b * cfg.gen_tokens) as f64 / s;
        push(
            BenchRow {
                kind: "batch",
                ctx: 16,
                sessions: b,
                tokens: b * cfg.gen_tokens,
                seconds: s,
                tokens_per_s: tps,
                gb_per_s: None,
            },
            &mut out,
        );
    }
    Ok(out)
}
