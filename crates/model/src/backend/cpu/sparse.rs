//! The core of sparse attention on the CPU: the lightning indexer's top-k and
//! one softmax (with a sink) over the raw window rows plus only the selected
//! compressed rows (model-spec §5.4–5.5), on the SIMD f32 kernels.
//!
//! Keys of one session and layer are exposed once per call as f32 row blocks
//! ([`LayerKeys`]): borrowed from f32 storage, or decoded once from the compact
//! storage; scores are products of the query heads with those rows (heads in
//! SIMD lanes), and the values (K = V) are accumulated as weighted sums of
//! those rows by a register-tiled kernel. Both kernels read a query's
//! selected CSA rows where they lie ([`RowSet::selected`]). Nothing here
//! scans the compressed rows a query does not attend.

use std::borrow::Cow;
use std::ops::Range;

use dsv4_quant::{Kernels, RowSet};

use crate::config::{LayerKind, ModelConfig};
use crate::error::{ModelError, Result};
use crate::kv::SessionState;

fn kerr(e: impl std::fmt::Display) -> ModelError {
    ModelError::Kernel {
        tensor: "attention".into(),
        reason: e.to_string(),
    }
}

/// f32 views of one session-layer's keys for the queries of this call.
pub(super) struct LayerKeys<'a> {
    kind: LayerKind,
    ratio: usize,
    hd: usize,
    /// Raw rows for positions `raw_first ..`.
    raw: Cow<'a, [f32]>,
    raw_first: usize,
    /// Compressed rows `[0, n)` (all of them for HCA, and for f32 storage).
    comp: Cow<'a, [f32]>,
    /// The compressed-row store, for gathering selected rows of compact CSA layers.
    comp_store: Option<&'a crate::kv::RowStore>,
    /// Indexer keys `[0, n)` (CSA).
    idx: Cow<'a, [f32]>,
}

impl<'a> LayerKeys<'a> {
    /// Keys for queries at positions `lo..=hi` of one session.
    pub(super) fn new(
        cfg: &ModelConfig,
        st: &'a SessionState,
        layer: usize,
        lo: usize,
        hi: usize,
    ) -> Self {
        let ls = &st.layers[layer];
        let lc = cfg.layers[layer];
        let from = lo.saturating_sub(cfg.window - 1).max(ls.raw.first_pos);
        let (a, b) = (
            from - ls.raw.first_pos,
            (hi + 1)
                .saturating_sub(ls.raw.first_pos)
                .min(ls.raw.rows.len()),
        );
        let raw = ls.raw.rows.rows_cow(a, b.max(a));
        let (comp, comp_store) = match (lc.kind, ls.comp.as_ref()) {
            (LayerKind::Csa, Some(c)) => match c.rows.rows_f32(0, c.rows.len()) {
                Some(s) => (Cow::Borrowed(s), None),
                None => {
                    // Compact rows: decode every visible row once when the
                    // queries of this call would together decode at least as
                    // many (a prefill chunk), else gather only the selected
                    // rows of each query (decode). Both use the same decoder.
                    let n_vis = ((hi + 1) / lc.ratio.max(1)).min(c.rows.len());
                    let queries = hi + 1 - lo.min(hi);
                    if queries * cfg.index_topk.min(n_vis) >= n_vis {
                        (c.rows.rows_cow(0, n_vis), None)
                    } else {
                        (Cow::Borrowed(&[][..]), Some(&c.rows))
                    }
                }
            },
            (_, Some(c)) => (
                c.rows
                    .rows_cow(0, ((hi + 1) / lc.ratio.max(1)).min(c.rows.len())),
                None,
            ),
            _ => (Cow::Borrowed(&[][..]), None),
        };
        let idx = match ls.index.as_ref() {
            Some(ix) => ix
                .rows
                .rows_cow(0, ((hi + 1) / lc.ratio.max(1)).min(ix.rows.len())),
            None => Cow::Borrowed(&[][..]),
        };
        LayerKeys {
            kind: lc.kind,
            ratio: lc.ratio,
            hd: cfg.head_dim,
            raw,
            raw_first: from,
            comp,
            comp_store,
            idx,
        }
    }

    /// Raw rows visible to a query at `pos`.
    fn window(&self, pos: usize, w: usize) -> &[f32] {
        let lo = pos.saturating_sub(w - 1).max(self.raw_first) - self.raw_first;
        let hi = (pos + 1 - self.raw_first).min(self.raw.len() / self.hd);
        &self.raw[lo * self.hd..hi * self.hd]
    }
}

/// The lightning indexer: the top-k compressed rows for a query at `pos`,
/// ascending. `iq` is `[ih, ihd]` (roped, QAT-rounded), `iw` `[ih]` (scaled).
pub(super) fn select(
    k: &Kernels,
    cfg: &ModelConfig,
    keys: &LayerKeys<'_>,
    iq: &[f32],
    iw: &[f32],
    pos: usize,
) -> Result<Vec<u32>> {
    if keys.kind != LayerKind::Csa {
        return Ok(Vec::new());
    }
    let ihd = cfg.index_head_dim;
    let n_vis = ((pos + 1) / keys.ratio).min(keys.idx.len() / ihd);
    let topk = cfg.index_topk.min(n_vis);
    if topk == n_vis {
        return Ok((0..n_vis as u32).collect());
    }
    let ih = iw.len();
    let mut s = vec![0.0f32; ih * n_vis]; // [ih, n_vis]
    let keys_set = RowSet::all(&keys.idx[..n_vis * ihd], ihd).map_err(kerr)?;
    k.scores(iq, keys_set, &mut s, n_vis, 0).map_err(kerr)?;
    let mut total = vec![0.0f32; n_vis];
    for (h, row) in s.chunks(n_vis).enumerate() {
        for (t, &x) in total.iter_mut().zip(row) {
            *t += iw[h] * x.max(0.0);
        }
    }
    let mut order: Vec<(f32, u32)> = total
        .into_iter()
        .enumerate()
        .map(|(i, v)| (v, i as u32))
        .collect();
    order.select_nth_unstable_by(topk - 1, |a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut sel: Vec<u32> = order[..topk].iter().map(|&(_, i)| i).collect();
    sel.sort_unstable();
    Ok(sel)
}

/// Attention of heads `heads` of one query at `pos` (model-spec §5.5): writes
/// `out` `[heads.len(), hd]` (before the inverse RoPE). `q` holds those heads.
#[allow(clippy::too_many_arguments)]
pub(super) fn attend(
    k: &Kernels,
    cfg: &ModelConfig,
    keys: &LayerKeys<'_>,
    selected: &[u32],
    q: &[f32],
    sinks: &[f32],
    heads: Range<usize>,
    pos: usize,
    out: &mut [f32],
) -> Result<()> {
    let hd = cfg.head_dim;
    let nh = heads.len();
    let win = RowSet::all(keys.window(pos, cfg.window), hd).map_err(kerr)?;
    // Compressed rows this query attends: read where they lie (HCA: the
    // visible prefix; CSA: the selected rows), or, for compact CSA storage
    // read one query at a time, decoded into a block of their own.
    let decoded: Vec<f32>;
    let comp = match keys.kind {
        LayerKind::Swa => RowSet::all(&[], hd),
        LayerKind::Hca => {
            let n = ((pos + 1) / keys.ratio).min(keys.comp.len() / hd);
            RowSet::all(&keys.comp[..n * hd], hd)
        }
        LayerKind::Csa => match keys.comp_store {
            Some(store) => {
                let mut v = vec![0.0f32; selected.len() * hd];
                for (&s, dst) in selected.iter().zip(v.chunks_exact_mut(hd)) {
                    store.read(s as usize, dst);
                }
                decoded = v;
                RowSet::all(&decoded, hd)
            }
            None => RowSet::selected(&keys.comp, hd, selected),
        },
    }
    .map_err(kerr)?;
    let (mw, mc) = (win.len(), comp.len());
    let m = mw + mc;
    let mut p = vec![0.0f32; nh * m]; // [nh, m] scores, then probabilities
    k.scores(q, win, &mut p, m, 0).map_err(kerr)?;
    k.scores(q, comp, &mut p, m, mw).map_err(kerr)?;
    let scale = 1.0 / (hd as f32).sqrt();
    for (hh, row) in p.chunks_mut(m.max(1)).enumerate() {
        let sink = sinks[heads.start + hh];
        let mut mx = sink;
        for v in row.iter_mut() {
            *v *= scale;
            mx = mx.max(*v);
        }
        let mut den = (sink - mx).exp();
        for v in row.iter_mut() {
            *v = (*v - mx).exp();
            den += *v;
        }
        let inv = 1.0 / den;
        for v in row.iter_mut() {
            *v *= inv;
        }
    }
    // out[nh, hd] = P[nh, m] · [window rows; compressed rows], rows in order.
    let out = &mut out[..nh * hd];
    out.fill(0.0);
    k.weighted_rows(&p, m, win, out).map_err(kerr)?;
    if mc > 0 {
        k.weighted_rows(&p[mw..], m, comp, out).map_err(kerr)?;
    }
    Ok(())
}
