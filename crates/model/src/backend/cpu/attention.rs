//! The attention sub-layer on the CPU (model-spec §5): projections, RoPE,
//! raw-window and compressor state updates, the lightning indexer, sparse
//! attention over the gathered rows only (never a mask over all rows), the
//! inverse RoPE and the grouped output projection.

use rayon::prelude::*;

use super::CpuBackend;
use crate::backend::{RowMeta, Trace};
use crate::config::{LayerKind, ModelConfig};
use crate::error::Result;
use crate::kv::{Compressed, SessionState};
use crate::model::Model;
use crate::numerics::{fp4_roundtrip, fp8_roundtrip, hadamard, rms_norm, rms_norm_unweighted};
use crate::rope::{self, RopeTable};
use crate::weights::{CompressorWeights, LayerWeights};

/// FP8 KV simulation block (model-spec §2.4).
const KV_FP8_BLOCK: usize = 64;
/// FP4 indexer simulation block.
const IDX_FP4_BLOCK: usize = 32;

/// Per-row projections computed for the whole batch.
struct Projected {
    /// `[n, q_lora]` normed query latent (also the indexer's input).
    q_lat: Vec<f32>,
    /// `[n, H, hd]` roped, normed queries.
    q: Vec<f32>,
    /// `[n, hd]` raw KV rows (normed, roped, QAT-rounded).
    kv: Vec<f32>,
    /// `[n, c·hd]` compressor KV / score rows.
    ckv: Vec<f32>,
    csc: Vec<f32>,
    /// `[n, 2·ihd]` indexer compressor KV / score rows.
    ikv: Vec<f32>,
    isc: Vec<f32>,
    /// `[n, ih, ihd]` indexer queries (roped, QAT-rounded).
    iq: Vec<f32>,
    /// `[n, ih]` indexer head weights (scaled).
    iw: Vec<f32>,
}

fn rope_rows(
    x: &mut [f32],
    width: usize,
    rd: usize,
    table: &RopeTable,
    rows: &[RowMeta],
    inverse: bool,
) {
    let per_row = x.len() / rows.len().max(1);
    x.par_chunks_mut(per_row)
        .zip(rows.par_iter())
        .for_each(|(row, r)| {
            let mut cs = vec![0.0f32; rd];
            table.cos_sin(r.pos, &mut cs);
            for head in row.chunks_mut(width) {
                rope::apply(head, &cs, inverse);
            }
        });
}

fn project(
    be: &CpuBackend,
    model: &Model,
    layer: usize,
    lw: &LayerWeights,
    a: &[f32],
    rows: &[RowMeta],
) -> Result<Projected> {
    let cfg = &model.cfg;
    let lc = cfg.layers[layer];
    let n = rows.len();
    let (hd, rd) = (cfg.head_dim, cfg.rope_dim);
    let table = model.rope_for(layer);
    let qat = model.opts.qat_sim;

    let mut q_lat = vec![0.0f32; n * cfg.q_lora_rank];
    be.linear(model, &lw.q_a, a, n, &mut q_lat)?;
    for row in q_lat.chunks_mut(cfg.q_lora_rank) {
        rms_norm(row, &lw.q_a_norm, cfg.rms_eps);
    }
    let mut q = vec![0.0f32; n * cfg.n_head * hd];
    be.linear(model, &lw.q_b, &q_lat, n, &mut q)?;
    q.par_chunks_mut(hd)
        .for_each(|head| rms_norm_unweighted(head, cfg.rms_eps));
    rope_rows(&mut q, hd, rd, table, rows, false);

    let mut kv = vec![0.0f32; n * hd];
    be.linear(model, &lw.kv, a, n, &mut kv)?;
    for row in kv.chunks_mut(hd) {
        rms_norm(row, &lw.kv_norm, cfg.rms_eps);
    }
    rope_rows(&mut kv, hd, rd, table, rows, false);
    if qat {
        for row in kv.chunks_mut(hd) {
            fp8_roundtrip(&mut row[..hd - rd], KV_FP8_BLOCK);
        }
    }

    let mut p = Projected {
        q_lat,
        q,
        kv,
        ckv: Vec::new(),
        csc: Vec::new(),
        ikv: Vec::new(),
        isc: Vec::new(),
        iq: Vec::new(),
        iw: Vec::new(),
    };
    if let Some(c) = &lw.compressor {
        let w = lc.compressor_width() * hd;
        p.ckv = vec![0.0; n * w];
        p.csc = vec![0.0; n * w];
        be.linear(model, &c.kv, a, n, &mut p.ckv)?;
        be.linear(model, &c.gate, a, n, &mut p.csc)?;
    }
    if let Some(ix) = &lw.indexer {
        let (ih, ihd) = (cfg.index_n_head, cfg.index_head_dim);
        p.ikv = vec![0.0; n * 2 * ihd];
        p.isc = vec![0.0; n * 2 * ihd];
        be.linear(model, &ix.comp.kv, a, n, &mut p.ikv)?;
        be.linear(model, &ix.comp.gate, a, n, &mut p.isc)?;
        p.iq = vec![0.0; n * ih * ihd];
        be.linear(model, &ix.q_b, &p.q_lat, n, &mut p.iq)?;
        rope_rows(&mut p.iq, ihd, rd, table, rows, false);
        if qat {
            p.iq.par_chunks_mut(ihd).for_each(|head| {
                hadamard(head);
                fp4_roundtrip(head, IDX_FP4_BLOCK);
            });
        }
        p.iw = vec![0.0; n * ih];
        be.linear(model, &ix.proj, a, n, &mut p.iw)?;
        let s = 1.0 / ((ihd as f32).sqrt() * (ih as f32).sqrt());
        for v in &mut p.iw {
            *v *= s;
        }
    }
    Ok(p)
}

/// Feeds one token into a compressor; when its window closes, pools,
/// normalises, rotates at the window's first position, rounds and appends.
#[allow(clippy::too_many_arguments)]
fn feed(
    comp: &mut Compressed,
    cw: &CompressorWeights,
    kv: &[f32],
    score: &[f32],
    pos: usize,
    cfg: &ModelConfig,
    table: &RopeTable,
    indexer: bool,
    qat: bool,
) {
    if !comp.state.push(kv, score, &cw.ape, pos) {
        return;
    }
    let d = comp.state.dim;
    let mut row = vec![0.0f32; d];
    comp.state.pool(&mut row);
    rms_norm(&mut row, &cw.norm, cfg.rms_eps);
    let w = pos / comp.state.ratio;
    let mut cs = vec![0.0f32; cfg.rope_dim];
    table.cos_sin(w * comp.state.ratio, &mut cs);
    rope::apply(&mut row, &cs, false);
    if qat {
        if indexer {
            hadamard(&mut row);
            fp4_roundtrip(&mut row, IDX_FP4_BLOCK);
        } else {
            fp8_roundtrip(&mut row[..d - cfg.rope_dim], KV_FP8_BLOCK);
        }
    }
    comp.rows.push(&row);
}

/// Appends every row's raw KV and compressor contributions to its session.
fn update_states(
    model: &Model,
    layer: usize,
    lw: &LayerWeights,
    p: &Projected,
    rows: &[RowMeta],
    states: &mut [&mut SessionState],
) {
    let cfg = &model.cfg;
    let hd = cfg.head_dim;
    let table = model.rope_for(layer);
    let qat = model.opts.qat_sim;
    let cwidth = cfg.layers[layer].compressor_width() * hd;
    let iwidth = 2 * cfg.index_head_dim;
    for (i, r) in rows.iter().enumerate() {
        let ls = &mut states[r.seq].layers[layer];
        debug_assert_eq!(ls.raw.first_pos + ls.raw.rows.len(), r.pos);
        ls.raw.rows.push(&p.kv[i * hd..(i + 1) * hd]);
        if let (Some(comp), Some(cw)) = (ls.comp.as_mut(), lw.compressor.as_ref()) {
            let (k, s) = (
                &p.ckv[i * cwidth..(i + 1) * cwidth],
                &p.csc[i * cwidth..(i + 1) * cwidth],
            );
            feed(comp, cw, k, s, r.pos, cfg, table, false, qat);
        }
        if let (Some(ix), Some(iw)) = (ls.index.as_mut(), lw.indexer.as_ref()) {
            let (k, s) = (
                &p.ikv[i * iwidth..(i + 1) * iwidth],
                &p.isc[i * iwidth..(i + 1) * iwidth],
            );
            feed(ix, &iw.comp, k, s, r.pos, cfg, table, true, qat);
        }
    }
}

/// Keys one query attends: raw window rows and chosen compressed rows, as f32.
struct Keys {
    /// `[m, hd]`.
    data: Vec<f32>,
    m: usize,
}

/// Reads a row of a store as f32 into `dst`.
fn read_row(store: &crate::kv::RowStore, i: usize, dst: &mut [f32]) {
    match store.row_f32(i) {
        Some(r) => dst.copy_from_slice(r),
        None => store.read(i, dst),
    }
}

/// The lightning indexer: top-k compressed rows for a query at `pos`.
fn select(
    cfg: &ModelConfig,
    st: &SessionState,
    layer: usize,
    iq: &[f32],
    iw: &[f32],
    pos: usize,
) -> Vec<u32> {
    let Some(ix) = st.layers[layer].index.as_ref() else {
        return Vec::new();
    };
    let ratio = cfg.layers[layer].ratio;
    let n_vis = ((pos + 1) / ratio).min(ix.rows.len());
    let topk = cfg.index_topk.min(n_vis);
    if topk == n_vis {
        return (0..n_vis as u32).collect();
    }
    let ihd = cfg.index_head_dim;
    let mut key = vec![0.0f32; ihd];
    let mut scores: Vec<(f32, u32)> = (0..n_vis)
        .map(|s| {
            read_row(&ix.rows, s, &mut key);
            let mut total = 0.0f32;
            for (h, q) in iq.chunks(ihd).enumerate() {
                let dot: f32 = q.iter().zip(&key).map(|(a, b)| a * b).sum();
                total += iw[h] * dot.max(0.0);
            }
            (total, s as u32)
        })
        .collect();
    scores.select_nth_unstable_by(topk - 1, |a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut sel: Vec<u32> = scores[..topk].iter().map(|&(_, s)| s).collect();
    sel.sort_unstable();
    sel
}

fn gather_keys(
    cfg: &ModelConfig,
    st: &SessionState,
    layer: usize,
    pos: usize,
    selected: &[u32],
) -> Keys {
    let hd = cfg.head_dim;
    let ls = &st.layers[layer];
    let from = pos.saturating_sub(cfg.window - 1);
    let mut idx_raw: Vec<usize> = Vec::with_capacity(cfg.window);
    for p in from..=pos {
        if let Some(i) = ls.raw.index_of(p) {
            idx_raw.push(i);
        }
    }
    let comp_rows: Vec<usize> = match (cfg.layers[layer].kind, ls.comp.as_ref()) {
        (LayerKind::Hca, Some(c)) => {
            (0..((pos + 1) / cfg.layers[layer].ratio).min(c.rows.len())).collect()
        }
        (LayerKind::Csa, Some(_)) => selected.iter().map(|&s| s as usize).collect(),
        _ => Vec::new(),
    };
    let m = idx_raw.len() + comp_rows.len();
    let mut data = vec![0.0f32; m * hd];
    for (j, &i) in idx_raw.iter().enumerate() {
        read_row(&ls.raw.rows, i, &mut data[j * hd..(j + 1) * hd]);
    }
    if let Some(c) = ls.comp.as_ref() {
        for (j, &i) in comp_rows.iter().enumerate() {
            let o = (idx_raw.len() + j) * hd;
            read_row(&c.rows, i, &mut data[o..o + hd]);
        }
    }
    Keys { data, m }
}

/// Softmax attention of one head over `keys` with a sink (model-spec §5.5).
fn attend_head(q: &[f32], keys: &Keys, sink: f32, scale: f32, out: &mut [f32]) {
    let hd = q.len();
    let mut logits = Vec::with_capacity(keys.m);
    let mut mx = sink;
    for k in keys.data.chunks_exact(hd) {
        let l = q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale;
        mx = mx.max(l);
        logits.push(l);
    }
    let mut den = (sink - mx).exp();
    out.fill(0.0);
    for (l, k) in logits.iter().zip(keys.data.chunks_exact(hd)) {
        let p = (l - mx).exp();
        den += p;
        for (o, &v) in out.iter_mut().zip(k) {
            *o += p * v;
        }
    }
    let inv = 1.0 / den;
    for o in out.iter_mut() {
        *o *= inv;
    }
}

/// The attention sub-layer (see [`crate::backend::Backend::attention`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn attention(
    be: &CpuBackend,
    model: &Model,
    layer: usize,
    lw: &LayerWeights,
    a: &[f32],
    rows: &[RowMeta],
    states: &mut [&mut SessionState],
    out: &mut [f32],
    trace: Option<&mut Trace>,
) -> Result<()> {
    let cfg = &model.cfg;
    let n = rows.len();
    let (h, hd, rd) = (cfg.n_head, cfg.head_dim, cfg.rope_dim);
    let p = project(be, model, layer, lw, a, rows)?;
    update_states(model, layer, lw, &p, rows, states);

    // Indexer selections and key sets per row (read-only from here on).
    let states_ro: Vec<&SessionState> = states.iter().map(|s| &**s).collect();
    let (ih, ihd) = (cfg.index_n_head, cfg.index_head_dim);
    let csa = cfg.layers[layer].kind == LayerKind::Csa;
    let selections: Vec<Vec<u32>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let r = rows[i];
            if !csa {
                return Vec::new();
            }
            select(
                cfg,
                states_ro[r.seq],
                layer,
                &p.iq[i * ih * ihd..(i + 1) * ih * ihd],
                &p.iw[i * ih..(i + 1) * ih],
                r.pos,
            )
        })
        .collect();
    let keys: Vec<Keys> = (0..n)
        .into_par_iter()
        .map(|i| {
            gather_keys(
                cfg,
                states_ro[rows[i].seq],
                layer,
                rows[i].pos,
                &selections[i],
            )
        })
        .collect();

    // Core attention per (row, head).
    let scale = 1.0 / (hd as f32).sqrt();
    let mut o = vec![0.0f32; n * h * hd]; // [n, H, hd]
    o.par_chunks_mut(hd).enumerate().for_each(|(ih_, dst)| {
        let (i, head) = (ih_ / h, ih_ % h);
        let q = &p.q[(i * h + head) * hd..(i * h + head + 1) * hd];
        attend_head(q, &keys[i], lw.sinks[head], scale, dst);
    });
    rope_rows(&mut o, hd, rd, model.rope_for(layer), rows, true);

    // Grouped output projection: group g = heads [g·H/G, (g+1)·H/G).
    let (g, ol) = (cfg.o_groups, cfg.o_lora_rank);
    let gw = h / g * hd;
    let mut u = vec![0.0f32; n * g * ol]; // [n, G, o_lora]
    let mut og = vec![0.0f32; n * gw];
    let mut ug = vec![0.0f32; n * ol];
    for grp in 0..g {
        for i in 0..n {
            og[i * gw..(i + 1) * gw]
                .copy_from_slice(&o[i * h * hd + grp * gw..i * h * hd + (grp + 1) * gw]);
        }
        be.linear(model, &lw.out_a.rows_slice(grp * ol, ol), &og, n, &mut ug)?;
        for i in 0..n {
            u[i * g * ol + grp * ol..i * g * ol + (grp + 1) * ol]
                .copy_from_slice(&ug[i * ol..(i + 1) * ol]);
        }
    }
    be.linear(model, &lw.out_b, &u, n, out)?;

    if let Some(t) = trace
        && csa
    {
        for (i, s) in selections.into_iter().enumerate() {
            t.indexer.push((layer, i, s));
        }
    }
    Ok(())
}
