//! Matrix products on the CPU: `y[n, rows] = x[n, k] · Wᵀ` through the
//! quantized kernel table, split by weight rows over the backend's threads.
//!
//! Fast mode quantizes the activations once per call (as ggml does: Q8_0 for
//! Q8_0/Q4_0/MXFP4 weights, Q8_K for k-quants and IQ2_XXS, f32 for float
//! weights) and runs integer dot products; exact mode computes in f32 from
//! dequantized weights, for verification against the reference. Matrices
//! with a packed copy (see [`super::packed`]) run the packed kernel, split
//! over the threads on packed row groups.

use std::cell::RefCell;

use dsv4_quant::{ActBuf, OutCols, PACK_ROWS, act_type_for};

use super::CpuBackend;
use crate::error::{ModelError, Result};
use crate::model::Model;
use crate::weights::Matrix;

/// Weight rows below which a product is not worth splitting across threads.
const MIN_ROWS_PER_THREAD: usize = 32;

/// Tokens per thread from which a matrix with too few rows to split by rows
/// splits by tokens (more than the kernels' one-token path takes, see
/// [`dsv4_quant::INVARIANT_ROWS`]).
const TOKEN_SPLIT_MIN: usize = 16;

thread_local! {
    /// Reused activation buffer of the calling thread (no allocation on the
    /// steady decode path).
    static ACT: RefCell<ActBuf> = RefCell::new(ActBuf::new());
}

/// Runs `f` with this thread's activation buffer, or with a fresh one when
/// the buffer is in use further up this thread's stack (a rayon worker
/// waiting inside one product can pick up another task that runs one).
fn with_act<R>(f: impl FnOnce(&mut ActBuf) -> R) -> R {
    ACT.with(|cell| match cell.try_borrow_mut() {
        Ok(mut act) => f(&mut act),
        Err(_) => f(&mut ActBuf::new()),
    })
}

fn kernel_err(m: &Matrix, e: impl std::fmt::Display) -> ModelError {
    ModelError::Kernel {
        tensor: m.name.clone(),
        reason: e.to_string(),
    }
}

impl CpuBackend {
    /// `y[n, m.rows] = x[n, m.k] · Wᵀ`.
    pub(crate) fn linear(
        &self,
        model: &Model,
        m: &Matrix,
        x: &[f32],
        n: usize,
        y: &mut [f32],
    ) -> Result<()> {
        debug_assert_eq!(x.len(), n * m.k, "{}", m.name);
        let y = &mut y[..n * m.rows];
        let w = model.bytes(m);
        let out = OutCols::new(y, n, m.rows).map_err(|e| kernel_err(m, e))?;
        let parts = self.split_count(m.rows);
        if parts == 1 && self.threads > 1 && n >= TOKEN_SPLIT_MIN * self.threads {
            return self.linear_by_tokens(model, m, x, n, y);
        }
        if self.exact {
            return self.run_parts(m, out, parts, 1, |rows, o| {
                self.kernels.matmul_f32(m.ty, w, m.k, rows, x, n, o)
            });
        }
        let packed = self
            .packed_store(model)?
            .and_then(|store| store.find(model, m));
        let act_ty = act_type_for(m.ty).map_err(|e| kernel_err(m, e))?;
        with_act(|act| {
            self.kernels
                .quantize_act(act_ty, x, n, m.k, act)
                .map_err(|e| kernel_err(m, e))?;
            let act = &*act;
            match &packed {
                // Work splits on packed groups.
                Some((p, prows)) => self.run_parts(m, out, parts, PACK_ROWS, |rows, o| {
                    let r = prows.start + rows.start..prows.start + rows.end;
                    self.kernels.matmul_packed(p, r, act, o)
                }),
                None => self.run_parts(m, out, parts, 1, |rows, o| {
                    self.kernels.matmul(m.ty, w, m.k, rows, act, o)
                }),
            }
        })
    }

    /// `ys[j][n, mats[j].rows] = x[n, k] · W_jᵀ` for matrices sharing their
    /// input, on the calling thread only (for callers that already run one
    /// such task per thread, like the routed experts): the activations are
    /// quantized once per activation type, and each product runs whole. The
    /// results are the bits [`Self::linear`] gives (a row's sum does not
    /// depend on how the rows are split).
    pub(crate) fn linear_local(
        &self,
        model: &Model,
        mats: &mut [(&Matrix, &mut [f32])],
        x: &[f32],
        n: usize,
    ) -> Result<()> {
        let store = if self.exact {
            None
        } else {
            self.packed_store(model)?
        };
        with_act(|act| {
            let mut quantized = None;
            for (m, y) in mats.iter_mut() {
                debug_assert_eq!(x.len(), n * m.k, "{}", m.name);
                let w = model.bytes(m);
                let y = &mut y[..n * m.rows];
                let mut out = OutCols::new(y, n, m.rows).map_err(|e| kernel_err(m, e))?;
                if self.exact {
                    self.kernels
                        .matmul_f32(m.ty, w, m.k, 0..m.rows, x, n, &mut out)
                        .map_err(|e| kernel_err(m, e))?;
                    continue;
                }
                let act_ty = act_type_for(m.ty).map_err(|e| kernel_err(m, e))?;
                if quantized != Some((act_ty, m.k)) {
                    self.kernels
                        .quantize_act(act_ty, x, n, m.k, act)
                        .map_err(|e| kernel_err(m, e))?;
                    quantized = Some((act_ty, m.k));
                }
                match store.and_then(|store| store.find(model, m)) {
                    Some((p, prows)) => self.kernels.matmul_packed(p, prows, act, &mut out),
                    None => self.kernels.matmul(m.ty, w, m.k, 0..m.rows, act, &mut out),
                }
                .map_err(|e| kernel_err(m, e))?;
            }
            Ok(())
        })
    }

    /// [`Self::linear`] for a matrix too small to split by rows (the
    /// hyper-connection mixes, the router) with many tokens: the tokens split
    /// over the threads instead, at least [`TOKEN_SPLIT_MIN`] each, so every
    /// part runs the kernels' many-token path and gives the bits of the
    /// whole.
    fn linear_by_tokens(
        &self,
        model: &Model,
        m: &Matrix,
        x: &[f32],
        n: usize,
        y: &mut [f32],
    ) -> Result<()> {
        use rayon::prelude::*;
        let per = n.div_ceil(self.threads);
        self.pool.install(|| {
            x[..n * m.k]
                .par_chunks(per * m.k)
                .zip(y[..n * m.rows].par_chunks_mut(per * m.rows))
                .try_for_each(|(xs, ys)| {
                    self.linear_local(model, &mut [(m, ys)], xs, xs.len() / m.k)
                })
        })
    }

    fn split_count(&self, rows: usize) -> usize {
        (rows / MIN_ROWS_PER_THREAD).clamp(1, self.threads)
    }

    /// Splits the rows into `parts` nearly even ranges starting at multiples
    /// of `align` and runs `f` on each in parallel.
    fn run_parts<F, E>(
        &self,
        m: &Matrix,
        out: OutCols<'_>,
        parts: usize,
        align: usize,
        f: F,
    ) -> Result<()>
    where
        F: Fn(std::ops::Range<usize>, &mut OutCols<'_>) -> std::result::Result<(), E> + Sync,
        E: std::fmt::Display + Send,
    {
        if parts <= 1 {
            let mut out = out;
            return f(0..m.rows, &mut out).map_err(|e| kernel_err(m, e));
        }
        let windows = out.split_aligned(parts, align);
        let mut results: Vec<std::result::Result<(), E>> = Vec::with_capacity(parts);
        self.pool.install(|| {
            use rayon::prelude::*;
            let mut starts = Vec::with_capacity(windows.len());
            let mut r0 = 0;
            for w in &windows {
                starts.push(r0);
                r0 += w.cols();
            }
            windows
                .into_par_iter()
                .zip(starts)
                .map(|(mut w, s)| f(s..s + w.cols(), &mut w))
                .collect_into_vec(&mut results);
        });
        results
            .into_iter()
            .collect::<std::result::Result<Vec<()>, E>>()
            .map(|_| ())
            .map_err(|e| kernel_err(m, e))
    }
}
