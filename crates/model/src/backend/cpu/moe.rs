//! The MoE sub-layer on the CPU (model-spec §6): sqrt-softplus router with the
//! selection-only bias or hash routing, normalised and scaled weights, the
//! routed experts (SwiGLU with the asymmetric clamp) grouped by expert so each
//! expert's weights are read once per batch, and the shared expert.

use super::CpuBackend;
use super::bufs::Buf;
use crate::backend::{RowMeta, Trace};
use crate::error::Result;
use crate::model::Model;
use crate::numerics::{silu, softplus};
use crate::weights::{LayerWeights, Matrix, Routing};

/// Chosen experts and their weights for one row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Route {
    pub experts: Vec<u32>,
    pub weights: Vec<f32>,
}

/// Routes one row from its router logits (model-spec §6.1).
pub(crate) fn route(model: &Model, lw: &LayerWeights, logits: &[f32], token: u32) -> Route {
    let cfg = &model.cfg;
    let k = cfg.n_expert_used;
    let scores: Vec<f32> = logits.iter().map(|&l| softplus(l).sqrt()).collect();
    let experts: Vec<u32> = match &lw.routing {
        Routing::Hash(table) => table[token as usize * k..(token as usize + 1) * k].to_vec(),
        Routing::Learned(bias) => {
            let mut order: Vec<(f32, u32)> = scores
                .iter()
                .enumerate()
                .map(|(e, &s)| (s + bias.as_ref().map_or(0.0, |b| b[e]), e as u32))
                .collect();
            order.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            order[..k].iter().map(|&(_, e)| e).collect()
        }
    };
    let mut weights: Vec<f32> = experts.iter().map(|&e| scores[e as usize]).collect();
    if cfg.expert_weights_norm {
        let sum: f32 = weights.iter().sum::<f32>() + 1e-20;
        for w in &mut weights {
            *w /= sum;
        }
    }
    for w in &mut weights {
        *w *= cfg.expert_weights_scale;
    }
    Route { experts, weights }
}

/// `silu(min(g, c)) · clamp(u, ±c)` in place into `g` (`c ≤ 0` disables the clamp).
fn swiglu(g: &mut [f32], u: &[f32], clamp: f32) {
    for (gv, &uv) in g.iter_mut().zip(u) {
        let (gc, uc) = if clamp > 0.0 {
            (gv.min(clamp), uv.clamp(-clamp, clamp))
        } else {
            (*gv, uv)
        };
        *gv = silu(gc) * uc;
    }
}

/// One SwiGLU FFN on `x` `[m, D]`, writing `y` `[m, D]`, each product split
/// over the threads.
#[allow(clippy::too_many_arguments)]
fn ffn(
    be: &CpuBackend,
    model: &Model,
    gate: &Matrix,
    up: &Matrix,
    down: &Matrix,
    clamp: f32,
    x: &[f32],
    m: usize,
    y: &mut [f32],
) -> Result<()> {
    let ff = gate.rows;
    let mut g = Buf::zeros(m * ff);
    let mut u = Buf::zeros(m * ff);
    be.linear(model, gate, x, m, &mut g)?;
    be.linear(model, up, x, m, &mut u)?;
    swiglu(&mut g, &u, clamp);
    be.linear(model, down, &g, m, y)
}

/// [`ffn`] on the calling thread only, gate and up from one quantization of
/// `x` (the same bits as [`ffn`]).
#[allow(clippy::too_many_arguments)]
fn ffn_local(
    be: &CpuBackend,
    model: &Model,
    gate: &Matrix,
    up: &Matrix,
    down: &Matrix,
    clamp: f32,
    x: &[f32],
    m: usize,
    y: &mut [f32],
) -> Result<()> {
    let ff = gate.rows;
    let mut g = Buf::zeros(m * ff);
    let mut u = Buf::zeros(m * ff);
    be.linear_local(model, &mut [(gate, &mut g[..]), (up, &mut u[..])], x, m)?;
    swiglu(&mut g, &u, clamp);
    be.linear_local(model, &mut [(down, y)], &g, m)
}

/// Whether an expert with `m` of the batch's `pairs` (row, expert) pairs is
/// large enough to split its products over the threads rather than run
/// whole on one: more than half of one thread's share of the work (one
/// decoded row's six experts on two threads run three per thread; a routing
/// that sends most of a prompt to one expert still uses every thread).
fn splits(m: usize, pairs: usize, threads: usize) -> bool {
    threads > 1 && m * threads * 2 > pairs
}

/// The MoE sub-layer (see [`crate::backend::Backend::moe`]).
///
/// The routed experts' outputs `ye` `[pairs, D]` are computed first, large
/// experts one after another with their products split over the threads,
/// the others in parallel, one expert per task (no synchronisation inside
/// an expert, and the gather, SwiGLU and copies run on every thread). Each
/// row then sums its experts' outputs in ascending expert order, so the bits
/// do not depend on the thread count.
#[allow(clippy::too_many_arguments)]
pub(super) fn moe(
    be: &CpuBackend,
    model: &Model,
    layer: usize,
    lw: &LayerWeights,
    a: &[f32],
    rows: &[RowMeta],
    out: &mut [f32],
    trace: Option<&mut Trace>,
) -> Result<()> {
    use rayon::prelude::*;

    let cfg = &model.cfg;
    let lc = cfg.layers[layer];
    let (n, d, e) = (rows.len(), cfg.n_embd, cfg.n_expert);
    let mut logits = Buf::zeros(n * e);
    be.linear(model, &lw.gate_inp, a, n, &mut logits)?;
    let routes: Vec<Route> = (0..n)
        .map(|i| route(model, lw, &logits[i * e..(i + 1) * e], rows[i].token))
        .collect();

    // Group (row, weight) pairs by expert; `start[ex]`: the expert's first
    // output row in `ye`.
    let mut by_expert: Vec<Vec<(usize, f32)>> = vec![Vec::new(); e];
    for (i, r) in routes.iter().enumerate() {
        for (&ex, &w) in r.experts.iter().zip(&r.weights) {
            by_expert[ex as usize].push((i, w));
        }
    }
    let mut start = Vec::with_capacity(e);
    let mut pairs = 0;
    for members in &by_expert {
        start.push(pairs);
        pairs += members.len();
    }
    let mut ye = Buf::zeros(pairs * d);
    let mut jobs: Vec<(usize, &mut [f32])> = Vec::with_capacity(e);
    let mut rest = &mut ye[..];
    for (ex, members) in by_expert.iter().enumerate() {
        let (mine, tail) = rest.split_at_mut(members.len() * d);
        rest = tail;
        if !members.is_empty() {
            jobs.push((ex, mine));
        }
    }
    let expert = |ex: usize, y: &mut [f32], local: bool| -> Result<()> {
        let members = &by_expert[ex];
        let m = members.len();
        let mut xe = Buf::zeros(m * d);
        for (j, &(i, _)) in members.iter().enumerate() {
            xe[j * d..(j + 1) * d].copy_from_slice(&a[i * d..(i + 1) * d]);
        }
        let (g, u, dn) = (
            lw.gate_exps.expert(ex),
            lw.up_exps.expert(ex),
            lw.down_exps.expert(ex),
        );
        let run = if local { ffn_local } else { ffn };
        run(be, model, &g, &u, &dn, lc.clamp_exp, &xe, m, y)
    };
    let threads = be.threads;
    let (big, mut small): (Vec<_>, Vec<_>) = jobs
        .into_iter()
        .partition(|(ex, _)| splits(by_expert[*ex].len(), pairs, threads));
    // Largest first, so the last tasks to finish are short ones.
    small.sort_by_key(|(ex, _)| std::cmp::Reverse(by_expert[*ex].len()));
    for (ex, y) in big {
        expert(ex, y, false)?;
    }
    // One task per expert (rayon would otherwise hand each thread runs of
    // several experts, and the last run finishes alone).
    small
        .into_par_iter()
        .with_max_len(1)
        .try_for_each(|(ex, y)| expert(ex, y, true))?;

    // out[i] = Σ over row i's experts, ascending: w · ye[slot].
    let mut slots: Vec<(u32, usize, f32)> = Vec::with_capacity(n * cfg.n_expert_used);
    let mut seen = vec![0usize; e];
    let mut spans = Vec::with_capacity(n + 1);
    for r in &routes {
        spans.push(slots.len());
        let first = slots.len();
        for (&ex, &w) in r.experts.iter().zip(&r.weights) {
            let x = ex as usize;
            slots.push((ex, start[x] + seen[x], w));
            seen[x] += 1;
        }
        slots[first..].sort_unstable_by_key(|s| (s.0, s.1));
    }
    spans.push(slots.len());
    out[..n * d]
        .par_chunks_mut(d)
        .enumerate()
        .for_each(|(i, o)| {
            o.fill(0.0);
            for &(_, slot, w) in &slots[spans[i]..spans[i + 1]] {
                for (o, &v) in o.iter_mut().zip(&ye[slot * d..(slot + 1) * d]) {
                    *o += w * v;
                }
            }
        });
    if let Some(s) = &lw.shared {
        let mut ys = Buf::zeros(n * d);
        ffn(
            be,
            model,
            &s.gate,
            &s.up,
            &s.down,
            lc.clamp_shexp,
            a,
            n,
            &mut ys,
        )?;
        for (o, v) in out[..n * d].iter_mut().zip(ys.iter()) {
            *o += v;
        }
    }
    if let Some(t) = trace {
        for (i, r) in routes.into_iter().enumerate() {
            let mut ex = r.experts;
            ex.sort_unstable();
            t.experts.push((layer, i, ex));
        }
    }
    Ok(())
}
