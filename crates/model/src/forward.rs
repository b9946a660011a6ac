//! The forward pass: one layer loop for prefill, chunked prefill, decode and
//! batched decode of several sessions alike.
//!
//! A batch is a list of rows, each one token of one session at its next
//! position. Rows of a session must be consecutive positions continuing that
//! session's state, in order; rows of different sessions may interleave. The
//! streaming state makes every way of cutting a sequence into batches give the
//! same logits (model-spec §5.8).

use crate::backend::{Backend, RowMeta, SessionStateOps, Trace};
use crate::error::{ModelError, Result};
use crate::model::Model;

/// Scratch buffers reused across calls (no allocation on the steady decode path).
#[derive(Debug, Default)]
pub struct Scratch {
    x: Vec<f32>,
    a: Vec<f32>,
    o: Vec<f32>,
    post: Vec<f32>,
    comb: Vec<f32>,
}

fn grow(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

/// Checks that each session's rows continue its state in order.
fn validate<S: SessionStateOps>(model: &Model, rows: &[RowMeta], states: &[&mut S]) -> Result<()> {
    let mut next: Vec<usize> = states.iter().map(|s| s.pos()).collect();
    for (i, r) in rows.iter().enumerate() {
        let expected = next.get_mut(r.seq).ok_or_else(|| {
            ModelError::Batch(format!(
                "row {i} names session {} but only {} were given",
                r.seq,
                states.len()
            ))
        })?;
        if r.pos != *expected {
            return Err(ModelError::Batch(format!(
                "row {i} of session {} is at position {}, expected {}",
                r.seq, r.pos, *expected
            )));
        }
        if r.token as usize >= model.cfg.n_vocab {
            return Err(ModelError::TokenOutOfRange {
                id: r.token,
                row: i,
                vocab: model.cfg.n_vocab,
            });
        }
        *expected += 1;
    }
    Ok(())
}

/// Runs the model on a batch, advancing the sessions' states, and writes the
/// logits of the rows listed in `logits_rows` into `logits` (`[len, V]`).
#[allow(clippy::too_many_arguments)]
pub fn forward<B: Backend>(
    model: &Model,
    backend: &B,
    rows: &[RowMeta],
    states: &mut [&mut B::State],
    logits_rows: &[usize],
    logits: &mut Vec<f32>,
    scratch: &mut Scratch,
    mut trace: Option<&mut Trace>,
) -> Result<()> {
    validate(model, rows, states)?;
    let cfg = &model.cfg;
    let n = rows.len();
    if n == 0 {
        return Ok(());
    }
    let (d, hc) = (cfg.n_embd, cfg.hc_mult);
    grow(&mut scratch.x, n * hc * d);
    grow(&mut scratch.a, n * d);
    grow(&mut scratch.o, n * d);
    grow(&mut scratch.post, n * hc);
    grow(&mut scratch.comb, n * hc * hc);
    let x = &mut scratch.x[..n * hc * d]; // [n, hc, D]
    let a = &mut scratch.a[..n * d]; // [n, D]
    let o = &mut scratch.o[..n * d]; // [n, D]
    let post = &mut scratch.post[..n * hc]; // [n, hc]
    let comb = &mut scratch.comb[..n * hc * hc]; // [n, hc, hc]

    let tokens: Vec<u32> = rows.iter().map(|r| r.token).collect();
    backend.embed(model, &tokens, x)?;
    for (l, lw) in model.weights.layers.iter().enumerate() {
        let _span = tracing::trace_span!("layer", l).entered();
        backend.hc_pre(model, &lw.hc_attn, &lw.attn_norm, x, n, a, post, comb)?;
        backend.attention(model, l, lw, a, rows, states, o, trace.as_deref_mut())?;
        backend.hc_post(model, x, o, post, comb, n)?;
        backend.hc_pre(model, &lw.hc_ffn, &lw.ffn_norm, x, n, a, post, comb)?;
        backend.moe(model, l, lw, a, rows, o, trace.as_deref_mut())?;
        backend.hc_post(model, x, o, post, comb, n)?;
        if let Some(t) = trace.as_deref_mut()
            && t.want_hc_states
        {
            t.hc_states.push((l, x.to_vec()));
        }
    }
    backend.finish(model, rows, states)?;
    if !logits_rows.is_empty() {
        if let Some(&bad) = logits_rows.iter().find(|&&r| r >= n) {
            return Err(ModelError::Batch(format!(
                "logits requested for row {bad} of a {n}-row batch"
            )));
        }
        logits.resize(logits_rows.len() * cfg.n_vocab, 0.0);
        backend.head(model, x, logits_rows, logits)?;
    }
    Ok(())
}

/// Evaluates one sequence in a fresh session, `chunk` tokens per forward
/// pass (0: all at once), and returns the logits of every position
/// (`[tokens.len(), V]`). Verification and `dsv4 logits` use it.
pub fn run_sequence<B: Backend>(
    model: &Model,
    backend: &B,
    tokens: &[u32],
    chunk: usize,
    mut trace: Option<&mut Trace>,
) -> Result<Vec<f32>> {
    let chunk = if chunk == 0 {
        tokens.len().max(1)
    } else {
        chunk
    };
    let mut st = backend.new_state(model);
    let mut scratch = Scratch::default();
    let mut all = Vec::with_capacity(tokens.len() * model.cfg.n_vocab);
    let mut logits = Vec::new();
    for (ci, c) in tokens.chunks(chunk).enumerate() {
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
            backend,
            &rows,
            &mut [&mut st],
            &sel,
            &mut logits,
            &mut scratch,
            trace.as_deref_mut(),
        )?;
        all.extend_from_slice(&logits);
    }
    Ok(all)
}
