//! Portable kernels: the scalar reference implementations wired into the
//! kernel table, used for `Isa::Scalar` and as the fallback of any entry an ISA
//! does not specialise.
//!
//! Matmul computes every output with the block type's reference dot product
//! ([`QuantBlock::dot_ref`]), row by row, so `Isa::Scalar` *is* the reference.
//! Nothing here is fast; nothing here is `unsafe` (the table stores these as
//! `unsafe fn` pointers only to share one pointer type with the SIMD entries).

use crate::act::{ActBuf, quantize_act_scalar};
use crate::blocks::{QuantBlock, dequantize_blocks_ref};
use crate::kernels::SCORE_BLOCK;
use crate::kernels::{FloatJob, MatmulJob};
use crate::out::OutCols;
use crate::rows::RowSet;

/// Reference matmul over the rows of `job` for block type `B`.
pub(crate) fn matmul<B: QuantBlock>(job: &MatmulJob<'_>, out: &mut OutCols<'_>) {
    for r in 0..job.nrows {
        let bytes = &job.w[r * job.row_bytes..(r + 1) * job.row_bytes];
        let blocks: &[B] = bytemuck::cast_slice(bytes);
        for t in 0..job.act.n() {
            // `Kernels::matmul` checked the activation format and row count.
            let v = B::act_row(&job.act, t).map_or(0.0, |a| B::dot_ref(blocks, a));
            out.row_mut(t)[r] = v;
        }
    }
}

/// Reference dequantization of whole blocks.
pub(crate) fn dequant<B: QuantBlock>(src: &[u8], dst: &mut [f32]) {
    dequantize_blocks_ref::<B>(bytemuck::cast_slice(src), dst);
}

/// Float-weight matmul with f32 activations read from `job.x`, for block type
/// `B` (F32, F16 or BF16).
pub(crate) fn float_matmul<B: QuantBlock>(job: &FloatJob<'_>, out: &mut OutCols<'_>) {
    for r in 0..job.nrows {
        let blocks: &[B] = bytemuck::cast_slice(&job.w[r * job.row_bytes..(r + 1) * job.row_bytes]);
        let mut wf = vec![0.0f32; job.k];
        dequantize_blocks_ref(blocks, &mut wf);
        for t in 0..job.n {
            let x = &job.x[t * job.x_stride..t * job.x_stride + job.k];
            let mut s = 0.0f32;
            for (a, b) in wf.iter().zip(x) {
                s += a * b;
            }
            out.row_mut(t)[r] = s;
        }
    }
}

/// Activation quantization with the reference rules.
pub(crate) fn quantize_act(x: &[f32], out: &mut ActBuf) {
    quantize_act_scalar(x, out);
}

/// `Σ a_i · b_i`, sequential.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for (x, y) in a.iter().zip(b) {
        s += x * y;
    }
    s
}

/// `y += a · x`.
pub(crate) fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// Weighted sums of rows (see `Kernels::weighted_rows`): one [`axpy`] per
/// row and output row, rows in order.
pub(crate) fn weighted_rows(p: &[f32], ldp: usize, rows: RowSet<'_>, out: &mut [f32]) {
    super::weighted_rows_by_axpy(axpy, p, ldp, rows, 0..rows.hd(), out);
}

/// Scores (see `Kernels::scores`): per block of [`SCORE_BLOCK`] elements a
/// chain of fused multiply-adds from zero, the blocks' sums added in order
/// (the definition every table reproduces bit for bit).
pub(crate) fn scores(q: &[f32], rows: RowSet<'_>, out: &mut [f32], ldo: usize, col0: usize) {
    let hd = rows.hd();
    for (h, qh) in q.chunks_exact(hd).enumerate() {
        for j in 0..rows.len() {
            let mut total = 0.0f32;
            for (qb, kb) in qh.chunks(SCORE_BLOCK).zip(rows.row(j).chunks(SCORE_BLOCK)) {
                let mut acc = 0.0f32;
                for (&a, &b) in qb.iter().zip(kb) {
                    acc = a.mul_add(b, acc);
                }
                total += acc;
            }
            out[h * ldo + col0 + j] = total;
        }
    }
}

/// `x *= a`.
pub(crate) fn scale(a: f32, x: &mut [f32]) {
    for v in x {
        *v *= a;
    }
}

/// Little-endian f16 bytes to f32.
pub(crate) fn f16_to_f32(src: &[u8], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *d = crate::blocks::f16_le([s[0], s[1]]);
    }
}

/// Little-endian bf16 bytes to f32.
pub(crate) fn bf16_to_f32(src: &[u8], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *d = crate::blocks::float::bf16_to_f32(u16::from_le_bytes([s[0], s[1]]));
    }
}
