//! The CPU backend: the quantized kernel table (runtime-selected SIMD), a
//! dedicated thread pool, and the CPU implementation of every forward step.
//!
//! `exact` selects the verification path (f32 products from dequantized
//! weights) instead of the fast path (activations quantized as ggml does).

mod attention;
mod bufs;
mod linear;
mod moe;
mod packed;
mod sparse;

use dsv4_quant::Kernels;

use crate::backend::{Backend, RowMeta, SessionStateOps, Trace};
use crate::error::{ModelError, Result};
use crate::hc::{self, HcMix};
use crate::kv::{KvFormat, SessionState};
use crate::model::Model;
use crate::numerics::{inv_rms, rms_norm};
use crate::weights::{HcWeights, LayerWeights};

/// Token counts from which the per-token hyper-connection work (mix,
/// collapse, expand) is spread over the threads; decode steps stay on the
/// calling thread.
const PAR_TOKENS: usize = 8;

/// Construction options of the CPU backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuOptions {
    /// Worker threads (0: one per available core).
    pub threads: usize,
    /// Exact f32 products (verification) instead of quantized kernels.
    pub exact: bool,
    /// KV storage format of new sessions.
    pub kv_format: KvFormat,
    /// Raw rows kept beyond the window per session (cheap short rewinds).
    pub raw_history: usize,
    /// Keep packed copies of the weights the kernel table multiplies faster
    /// in its own layout (extra memory the size of those weights; built by
    /// `Backend::prepare` or on first use). Ignored in exact mode.
    pub pack_weights: bool,
}

impl Default for CpuOptions {
    fn default() -> Self {
        CpuOptions {
            threads: 0,
            exact: false,
            kv_format: KvFormat::Compact,
            raw_history: 0,
            pack_weights: true,
        }
    }
}

/// The CPU backend.
#[derive(Debug)]
pub struct CpuBackend {
    kernels: Kernels,
    pool: rayon::ThreadPool,
    threads: usize,
    exact: bool,
    kv_format: KvFormat,
    raw_history: usize,
    pack_weights: bool,
    /// Packed weights, built on first use (or by `Backend::prepare`).
    packed: std::sync::OnceLock<std::result::Result<packed::PackedStore, String>>,
}

impl SessionStateOps for SessionState {
    type Checkpoint = crate::kv::Checkpoint;
    fn pos(&self) -> usize {
        self.pos
    }
    fn checkpoint(&self, window: usize) -> Self::Checkpoint {
        SessionState::checkpoint(self, window)
    }
    fn checkpoint_pos(cp: &Self::Checkpoint) -> usize {
        cp.pos
    }
    fn checkpoint_bytes(cp: &Self::Checkpoint) -> usize {
        cp.bytes()
    }
    fn restore(&mut self, cp: &Self::Checkpoint) -> Result<()> {
        SessionState::restore(self, cp)
    }
    fn kv_bytes(&self) -> usize {
        SessionState::kv_bytes(self) + self.frontier_bytes()
    }
    fn reset(&mut self) {
        SessionState::reset(self)
    }
    fn save(
        &self,
        model: &Model,
        checkpoints: &[Self::Checkpoint],
        w: &mut dyn std::io::Write,
    ) -> Result<()> {
        crate::persist::save(&model.cfg, self, checkpoints, w)
    }
    fn load(
        &mut self,
        model: &Model,
        r: &mut dyn std::io::Read,
        len: u64,
    ) -> Result<Vec<Self::Checkpoint>> {
        crate::persist::load(&model.cfg, self, r, len)
    }
}

impl CpuBackend {
    /// A backend with the given kernel table.
    pub fn new(kernels: Kernels, opts: CpuOptions) -> Result<CpuBackend> {
        let threads = if opts.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            opts.threads
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("dsv4-cpu-{i}"))
            .build()
            .map_err(|e| {
                ModelError::Batch(format!("cannot start {threads} worker threads: {e}"))
            })?;
        Ok(CpuBackend {
            kernels,
            pool,
            threads,
            exact: opts.exact,
            kv_format: opts.kv_format,
            raw_history: opts.raw_history,
            pack_weights: opts.pack_weights,
            packed: std::sync::OnceLock::new(),
        })
    }

    /// The kernel table in use.
    pub fn kernels(&self) -> &Kernels {
        &self.kernels
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Whether products run in exact f32.
    pub fn exact(&self) -> bool {
        self.exact
    }

    /// The KV format of new sessions.
    pub fn kv_format(&self) -> KvFormat {
        self.kv_format
    }
}

impl Backend for CpuBackend {
    type State = SessionState;

    fn name(&self) -> String {
        format!(
            "cpu/{}{}",
            self.kernels.describe(),
            if self.exact { " exact" } else { "" }
        )
    }

    fn prepared_bytes(&self, model: &Model) -> u64 {
        if self.exact || !self.pack_weights {
            return 0;
        }
        packed::PackedStore::planned_bytes(&self.kernels, model)
    }

    fn prepare(&self, model: &Model) -> Result<u64> {
        Ok(self.packed_store(model)?.map_or(0, |s| s.bytes() as u64))
    }

    fn new_state(&self, model: &Model) -> SessionState {
        SessionState::new(&model.cfg, self.kv_format, self.raw_history)
    }

    fn embed(&self, model: &Model, tokens: &[u32], x: &mut [f32]) -> Result<()> {
        let cfg = &model.cfg;
        let (d, hc) = (cfg.n_embd, cfg.hc_mult);
        let m = &model.weights.token_embd;
        let bytes = model.bytes(m);
        let rb = m.row_bytes();
        for (i, &t) in tokens.iter().enumerate() {
            let row = &mut x[i * hc * d..(i + 1) * hc * d];
            let src = bytes.get(t as usize * rb..(t as usize + 1) * rb).ok_or(
                ModelError::TokenOutOfRange {
                    id: t,
                    row: i,
                    vocab: cfg.n_vocab,
                },
            )?;
            self.kernels
                .dequantize_row(m.ty, src, &mut row[..d])
                .map_err(|e| ModelError::Kernel {
                    tensor: m.name.clone(),
                    reason: e.to_string(),
                })?;
            let (first, rest) = row.split_at_mut(d);
            for s in rest.chunks_mut(d) {
                s.copy_from_slice(first);
            }
        }
        Ok(())
    }

    fn hc_pre(
        &self,
        model: &Model,
        hcw: &HcWeights,
        norm: &[f32],
        x: &[f32],
        n: usize,
        a: &mut [f32],
        post: &mut [f32],
        comb: &mut [f32],
    ) -> Result<()> {
        let cfg = &model.cfg;
        let (d, h) = (cfg.n_embd, cfg.hc_mult);
        let mix = cfg.hc_mix_dim();
        let mut mm = bufs::Buf::zeros(n * mix);
        self.pool
            .install(|| self.linear(model, &hcw.func, x, n, &mut mm))?;
        // One token: mix weights from its row of `mm`, then the collapsed,
        // normalised input; tokens are independent.
        let one = |i: usize, ai: &mut [f32], pi: &mut [f32], ci: &mut [f32], out: &mut HcMix| {
            let xi = &x[i * h * d..(i + 1) * h * d];
            let s = inv_rms(xi, cfg.rms_eps);
            // From this thread's recycled buffers: no allocation per token.
            let mut mi = bufs::Buf::zeros(mix);
            for (m, v) in mi.iter_mut().zip(&mm[i * mix..(i + 1) * mix]) {
                *m = v * s;
            }
            hc::mix(
                &mi,
                &hcw.scale,
                &hcw.base,
                h,
                cfg.hc_sinkhorn_iters,
                cfg.hc_eps,
                out,
            );
            hc::collapse(xi, &out.pre, ai);
            rms_norm(ai, norm, cfg.rms_eps);
            pi.copy_from_slice(&out.post);
            ci.copy_from_slice(&out.comb);
        };
        let new_mix = || HcMix {
            pre: vec![0.0; h],
            post: vec![0.0; h],
            comb: vec![0.0; h * h],
        };
        let chunks = a[..n * d]
            .chunks_mut(d)
            .zip(post[..n * h].chunks_mut(h))
            .zip(comb[..n * h * h].chunks_mut(h * h));
        if n < PAR_TOKENS {
            let mut out = new_mix();
            for (i, ((ai, pi), ci)) in chunks.enumerate() {
                one(i, ai, pi, ci, &mut out);
            }
        } else {
            use rayon::prelude::*;
            self.pool.install(|| {
                a[..n * d]
                    .par_chunks_mut(d)
                    .zip(post[..n * h].par_chunks_mut(h))
                    .zip(comb[..n * h * h].par_chunks_mut(h * h))
                    .enumerate()
                    .for_each_init(new_mix, |out, (i, ((ai, pi), ci))| one(i, ai, pi, ci, out));
            });
        }
        Ok(())
    }

    fn hc_post(
        &self,
        model: &Model,
        x: &mut [f32],
        o: &[f32],
        post: &[f32],
        comb: &[f32],
        n: usize,
    ) -> Result<()> {
        let cfg = &model.cfg;
        let (d, h) = (cfg.n_embd, cfg.hc_mult);
        let one = |i: usize, xi: &mut [f32], tmp: &mut [f32]| {
            hc::expand(
                xi,
                &o[i * d..(i + 1) * d],
                &post[i * h..(i + 1) * h],
                &comb[i * h * h..(i + 1) * h * h],
                tmp,
            );
            xi.copy_from_slice(tmp);
        };
        let x = &mut x[..n * h * d];
        if n < PAR_TOKENS {
            let mut tmp = bufs::Buf::zeros(h * d);
            for (i, xi) in x.chunks_mut(h * d).enumerate() {
                one(i, xi, &mut tmp);
            }
        } else {
            use rayon::prelude::*;
            self.pool.install(|| {
                x.par_chunks_mut(h * d)
                    .enumerate()
                    .for_each_init(|| bufs::Buf::zeros(h * d), |tmp, (i, xi)| one(i, xi, tmp));
            });
        }
        Ok(())
    }

    fn attention(
        &self,
        model: &Model,
        layer: usize,
        lw: &LayerWeights,
        a: &[f32],
        rows: &[RowMeta],
        states: &mut [&mut SessionState],
        out: &mut [f32],
        trace: Option<&mut Trace>,
    ) -> Result<()> {
        self.pool
            .install(|| attention::attention(self, model, layer, lw, a, rows, states, out, trace))
    }

    fn moe(
        &self,
        model: &Model,
        layer: usize,
        lw: &LayerWeights,
        a: &[f32],
        rows: &[RowMeta],
        out: &mut [f32],
        trace: Option<&mut Trace>,
    ) -> Result<()> {
        self.pool
            .install(|| moe::moe(self, model, layer, lw, a, rows, out, trace))
    }

    fn head(&self, model: &Model, x: &[f32], select: &[usize], logits: &mut [f32]) -> Result<()> {
        let cfg = &model.cfg;
        let (d, h) = (cfg.n_embd, cfg.hc_mult);
        let w = &model.weights;
        let n = select.len();
        let mut xs = bufs::Buf::zeros(n * h * d);
        for (j, &i) in select.iter().enumerate() {
            xs[j * h * d..(j + 1) * h * d].copy_from_slice(&x[i * h * d..(i + 1) * h * d]);
        }
        let mut mm = bufs::Buf::zeros(n * h);
        self.pool
            .install(|| self.linear(model, &w.hc_head.func, &xs, n, &mut mm))?;
        let mut y = bufs::Buf::zeros(n * d);
        let (mut pre, mut mj) = (bufs::Buf::zeros(h), bufs::Buf::zeros(h));
        for j in 0..n {
            let xj = &xs[j * h * d..(j + 1) * h * d];
            let s = inv_rms(xj, cfg.rms_eps);
            for (m, v) in mj.iter_mut().zip(&mm[j * h..(j + 1) * h]) {
                *m = v * s;
            }
            hc::head_pre(
                &mj,
                w.hc_head.scale[0],
                &w.hc_head.base,
                cfg.hc_eps,
                &mut pre,
            );
            let yj = &mut y[j * d..(j + 1) * d];
            hc::collapse(xj, &pre, yj);
            rms_norm(yj, &w.output_norm, cfg.rms_eps);
        }
        self.pool
            .install(|| self.linear(model, &w.output, &y, n, logits))
    }

    fn finish(
        &self,
        model: &Model,
        rows: &[RowMeta],
        states: &mut [&mut SessionState],
    ) -> Result<()> {
        for r in rows {
            states[r.seq].pos = r.pos + 1;
        }
        let keep = model.cfg.window.saturating_sub(1);
        for st in states.iter_mut() {
            let from = st.pos.saturating_sub(keep + st.raw_history);
            for l in &mut st.layers {
                l.raw.forget_before(from, model.cfg.window);
            }
        }
        Ok(())
    }
}
