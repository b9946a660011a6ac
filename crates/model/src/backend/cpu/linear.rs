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

thread_local! {
    /// Reused activation buffer of the calling thread (no allocation on the
    /// steady decode path).
    static ACT: RefCell<ActBuf> = RefCell::new(ActBuf::new());
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
        if self.exact {
            return self.run_parts(m, out, parts, 1, |rows, o| {
                self.kernels.matmul_f32(m.ty, w, m.k, rows, x, n, o)
            });
        }
        let packed = self
            .packed_store(model)?
            .and_then(|store| store.find(model, m));
        let act_ty = act_type_for(m.ty).map_err(|e| kernel_err(m, e))?;
        ACT.with(|cell| {
            let mut act = cell.borrow_mut();
            self.kernels
                .quantize_act(act_ty, x, n, m.k, &mut act)
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
