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

/// One SwiGLU FFN on `x` `[m, D]`, writing `y` `[m, D]`.
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

/// The MoE sub-layer (see [`crate::backend::Backend::moe`]).
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
    let cfg = &model.cfg;
    let lc = cfg.layers[layer];
    let (n, d, e) = (rows.len(), cfg.n_embd, cfg.n_expert);
    let mut logits = Buf::zeros(n * e);
    be.linear(model, &lw.gate_inp, a, n, &mut logits)?;
    let routes: Vec<Route> = (0..n)
        .map(|i| route(model, lw, &logits[i * e..(i + 1) * e], rows[i].token))
        .collect();

    // Group (row, weight) pairs by expert.
    let mut by_expert: Vec<Vec<(usize, f32)>> = vec![Vec::new(); e];
    for (i, r) in routes.iter().enumerate() {
        for (&ex, &w) in r.experts.iter().zip(&r.weights) {
            by_expert[ex as usize].push((i, w));
        }
    }
    out[..n * d].fill(0.0);
    let most = by_expert.iter().map(Vec::len).max().unwrap_or(0);
    let (mut xe_all, mut ye_all) = (Buf::zeros(most * d), Buf::zeros(most * d));
    for (ex, members) in by_expert.iter().enumerate() {
        if members.is_empty() {
            continue;
        }
        let m = members.len();
        let (xe, ye) = (&mut xe_all[..m * d], &mut ye_all[..m * d]);
        for (j, &(i, _)) in members.iter().enumerate() {
            xe[j * d..(j + 1) * d].copy_from_slice(&a[i * d..(i + 1) * d]);
        }
        let (g, u, dn) = (
            lw.gate_exps.expert(ex),
            lw.up_exps.expert(ex),
            lw.down_exps.expert(ex),
        );
        ffn(be, model, &g, &u, &dn, lc.clamp_exp, xe, m, ye)?;
        for (j, &(i, w)) in members.iter().enumerate() {
            for (o, &v) in out[i * d..(i + 1) * d]
                .iter_mut()
                .zip(&ye[j * d..(j + 1) * d])
            {
                *o += w * v;
            }
        }
    }
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
