//! The attention sub-layer on the CPU (model-spec §5): projections, RoPE,
//! raw-window and compressor state updates, the lightning indexer, sparse
//! attention over the gathered rows only (never a mask over all rows), the
//! inverse RoPE and the grouped output projection.

use rayon::prelude::*;

use super::CpuBackend;
use super::bufs::Buf;
use super::sparse::{self, LayerKeys};
use crate::backend::{RowMeta, Trace};
use crate::config::{LayerKind, ModelConfig};
use crate::error::{ModelError, Result};
use crate::kv::{Compressed, SessionState};
use crate::model::Model;
use crate::numerics::{fp4_roundtrip, fp8_roundtrip, hadamard, rms_norm, rms_norm_unweighted};
use crate::rope::{self, RopeTable};
use crate::weights::{CompressorWeights, LayerWeights};

/// Heads attended per work item when a call has few rows (decode), so the
/// threads share one row's heads.
const HEAD_BLOCK: usize = 16;
/// Rows from which each work item takes all heads of one row instead
/// (prefill): the kernels then read each key row once for all heads.
const ALL_HEADS_FROM: usize = 8;

/// FP8 KV simulation block (model-spec §2.4).
const KV_FP8_BLOCK: usize = 64;
/// FP4 indexer simulation block.
const IDX_FP4_BLOCK: usize = 32;

/// Per-row projections computed for the whole batch.
struct Projected {
    /// `[n, q_lora]` normed query latent (also the indexer's input).
    q_lat: Buf,
    /// `[n, H, hd]` roped, normed queries.
    q: Buf,
    /// `[n, hd]` raw KV rows (normed, roped, QAT-rounded).
    kv: Buf,
    /// `[n, c·hd]` compressor KV / score rows.
    ckv: Buf,
    csc: Buf,
    /// `[n, 2·ihd]` indexer compressor KV / score rows.
    ikv: Buf,
    isc: Buf,
    /// `[n, ih, ihd]` indexer queries (roped, QAT-rounded).
    iq: Buf,
    /// `[n, ih]` indexer head weights (scaled).
    iw: Buf,
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

    let mut q_lat = Buf::zeros(n * cfg.q_lora_rank);
    be.linear(model, &lw.q_a, a, n, &mut q_lat)?;
    for row in q_lat.chunks_mut(cfg.q_lora_rank) {
        rms_norm(row, &lw.q_a_norm, cfg.rms_eps);
    }
    let mut q = Buf::zeros(n * cfg.n_head * hd);
    be.linear(model, &lw.q_b, &q_lat, n, &mut q)?;
    q.par_chunks_mut(hd)
        .for_each(|head| rms_norm_unweighted(head, cfg.rms_eps));
    rope_rows(&mut q, hd, rd, table, rows, false);

    let mut kv = Buf::zeros(n * hd);
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
        ckv: Buf::default(),
        csc: Buf::default(),
        ikv: Buf::default(),
        isc: Buf::default(),
        iq: Buf::default(),
        iw: Buf::default(),
    };
    if let Some(c) = &lw.compressor {
        let w = lc.compressor_width() * hd;
        p.ckv = Buf::zeros(n * w);
        p.csc = Buf::zeros(n * w);
        be.linear(model, &c.kv, a, n, &mut p.ckv)?;
        be.linear(model, &c.gate, a, n, &mut p.csc)?;
    }
    if let Some(ix) = &lw.indexer {
        let (ih, ihd) = (cfg.index_n_head, cfg.index_head_dim);
        p.ikv = Buf::zeros(n * 2 * ihd);
        p.isc = Buf::zeros(n * 2 * ihd);
        be.linear(model, &ix.comp.kv, a, n, &mut p.ikv)?;
        be.linear(model, &ix.comp.gate, a, n, &mut p.isc)?;
        p.iq = Buf::zeros(n * ih * ihd);
        be.linear(model, &ix.q_b, &p.q_lat, n, &mut p.iq)?;
        rope_rows(&mut p.iq, ihd, rd, table, rows, false);
        if qat {
            p.iq.par_chunks_mut(ihd).for_each(|head| {
                hadamard(head);
                fp4_roundtrip(head, IDX_FP4_BLOCK);
            });
        }
        p.iw = Buf::zeros(n * ih);
        be.linear(model, &ix.proj, a, n, &mut p.iw)?;
        let s = 1.0 / ((ihd as f32).sqrt() * (ih as f32).sqrt());
        for v in p.iw.iter_mut() {
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

    // Key views per session (read-only from here on), built once per call.
    let states_ro: Vec<&SessionState> = states.iter().map(|s| &**s).collect();
    let mut span: Vec<Option<(usize, usize)>> = vec![None; states_ro.len()];
    for r in rows {
        let e = span[r.seq].get_or_insert((r.pos, r.pos));
        e.0 = e.0.min(r.pos);
        e.1 = e.1.max(r.pos);
    }
    let keys: Vec<Option<LayerKeys<'_>>> = span
        .iter()
        .enumerate()
        .map(|(s, sp)| sp.map(|(lo, hi)| LayerKeys::new(cfg, states_ro[s], layer, lo, hi)))
        .collect();
    let key_of = |i: usize| {
        keys[rows[i].seq]
            .as_ref()
            .ok_or_else(|| ModelError::Batch("row without a session".into()))
    };
    let kern = &be.kernels;

    // Indexer selections per row.
    let (ih, ihd) = (cfg.index_n_head, cfg.index_head_dim);
    let csa = cfg.layers[layer].kind == LayerKind::Csa;
    let selections: Vec<Vec<u32>> = (0..n)
        .into_par_iter()
        .map(|i| {
            if !csa {
                return Ok(Vec::new());
            }
            let (iq, iw) = (
                &p.iq[i * ih * ihd..(i + 1) * ih * ihd],
                &p.iw[i * ih..(i + 1) * ih],
            );
            sparse::select(kern, cfg, key_of(i)?, iq, iw, rows[i].pos)
        })
        .collect::<Result<_>>()?;

    // Core attention per (row, block of heads).
    let block = if n >= ALL_HEADS_FROM { h } else { HEAD_BLOCK };
    let hb = (1..=block.min(h))
        .rev()
        .find(|d| h.is_multiple_of(*d))
        .unwrap_or(1);
    let mut o = Buf::zeros(n * h * hd); // [n, H, hd]
    o.par_chunks_mut(hb * hd)
        .enumerate()
        .map(|(item, dst)| {
            let per_row = h.div_ceil(hb);
            let (i, b) = (item / per_row, item % per_row);
            let heads = b * hb..((b + 1) * hb).min(h);
            let q = &p.q[(i * h + heads.start) * hd..(i * h + heads.end) * hd];
            sparse::attend(
                kern,
                cfg,
                key_of(i)?,
                &selections[i],
                q,
                &lw.sinks,
                heads,
                rows[i].pos,
                dst,
            )
        })
        .collect::<Result<()>>()?;
    rope_rows(&mut o, hd, rd, model.rope_for(layer), rows, true);

    // Grouped output projection: group g = heads [g·H/G, (g+1)·H/G).
    let (g, ol) = (cfg.o_groups, cfg.o_lora_rank);
    let gw = h / g * hd;
    let mut u = Buf::zeros(n * g * ol); // [n, G, o_lora]
    let mut og = Buf::zeros(n * gw);
    let mut ug = Buf::zeros(n * ol);
    for grp in 0..g {
        og[..n * gw]
            .par_chunks_mut(gw)
            .zip(o.par_chunks(h * hd))
            .for_each(|(dst, src)| dst.copy_from_slice(&src[grp * gw..(grp + 1) * gw]));
        be.linear(model, &lw.out_a.rows_slice(grp * ol, ol), &og, n, &mut ug)?;
        u[..n * g * ol]
            .par_chunks_mut(g * ol)
            .zip(ug.par_chunks(ol))
            .for_each(|(dst, src)| dst[grp * ol..(grp + 1) * ol].copy_from_slice(src));
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
