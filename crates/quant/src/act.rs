//! Activations: which format each weight type is multiplied with, and the
//! reusable buffer that holds quantized activation rows.
//!
//! [`ActBuf`] stores `n` rows of length `k` in a *planar* layout: all codes in
//! one 64-byte-aligned plane (each row starting on a cache line), the per-block
//! scales in a second plane and, for Q8_K, the per-16 code sums in a third.
//! The values are exactly those of ggml's `block_q8_0` / `block_q8_K` (Q8_0
//! scales are stored as the f32 value of their f16 rounding), only the
//! arrangement differs, so SIMD kernels get aligned code loads and scales
//! without f16 conversions. The buffer only grows; refilling it with a shape
//! that fits reuses the allocation.

use bytemuck::{Pod, Zeroable};
use dsv4_gguf::GgmlType;

use crate::blocks::{QK_K, QK8_0, f16_le, q8_0::quantize_q8_0_block, q8_k::quantize_q8k_block};
use crate::error::QuantError;

/// The format activations take for a matmul.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum ActType {
    /// Plain f32 (float weights).
    F32,
    /// Q8_0 blocks of 32 (Q8_0, Q4_0 and MXFP4 weights).
    Q8_0,
    /// Q8_K blocks of 256 (Q2_K, Q4_K, Q6_K and IQ2_XXS weights).
    Q8_K,
}

impl ActType {
    /// Elements per activation block.
    pub fn block_elems(self) -> usize {
        match self {
            ActType::F32 => 1,
            ActType::Q8_0 => QK8_0,
            ActType::Q8_K => QK_K,
        }
    }
}

/// The activation format ggml pairs with weights of type `ty` (its
/// `vec_dot_type`), except that F16/BF16 weights take f32 activations here.
pub fn act_type_for(ty: GgmlType) -> Result<ActType, QuantError> {
    match ty {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => Ok(ActType::F32),
        GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::MXFP4 => Ok(ActType::Q8_0),
        GgmlType::Q2_K | GgmlType::Q4_K | GgmlType::Q6_K | GgmlType::IQ2_XXS => Ok(ActType::Q8_K),
        ty => Err(QuantError::UnsupportedType { ty }),
    }
}

/// One Q8_0 activation row: `qs[32b + j]` has scale `d[b]`.
#[derive(Debug, Clone, Copy)]
pub struct Q8_0Row<'a> {
    /// Codes, `k` of them.
    pub qs: &'a [i8],
    /// Scales (f16-rounded), `k / 32` of them.
    pub d: &'a [f32],
}

/// One Q8_K activation row.
#[derive(Debug, Clone, Copy)]
pub struct Q8KRow<'a> {
    /// Codes, `k` of them.
    pub qs: &'a [i8],
    /// Scales, `k / 256` of them.
    pub d: &'a [f32],
    /// Sums of the codes of each run of 16, `k / 16` of them.
    pub bsums: &'a [i16],
}

/// One cache line; the unit of the buffer's allocation (gives 64-byte alignment).
#[repr(C, align(64))]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct Line(pub(crate) [u8; 64]);

/// Quantized (or copied) activations for `n` rows of length `k`.
#[derive(Clone)]
pub struct ActBuf {
    act: ActType,
    n: usize,
    k: usize,
    /// Codes (Q8 types, i8, row stride `qs_stride` bytes) or values (F32,
    /// row stride `qs_stride / 4` floats).
    qs: Vec<Line>,
    qs_stride: usize,
    /// Per-block scales, row stride `k / block`.
    d: Vec<f32>,
    /// Q8_K per-16 sums, row stride `k / 16`.
    bsums: Vec<i16>,
}

impl std::fmt::Debug for ActBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActBuf")
            .field("act", &self.act)
            .field("n", &self.n)
            .field("k", &self.k)
            .field("capacity_bytes", &(self.qs.capacity() * 64))
            .finish()
    }
}

impl Default for ActBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl ActBuf {
    /// An empty buffer (no allocation until first use).
    pub fn new() -> Self {
        ActBuf {
            act: ActType::F32,
            n: 0,
            k: 0,
            qs: Vec::new(),
            qs_stride: 0,
            d: Vec::new(),
            bsums: Vec::new(),
        }
    }

    /// The format currently held.
    pub fn act_type(&self) -> ActType {
        self.act
    }

    /// Rows held.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Row length.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Shapes the buffer for `n` rows of length `k` in format `act`, growing the
    /// allocation only if it is too small. `k` must be a multiple of the
    /// format's block (checked by the caller).
    pub(crate) fn prepare(&mut self, act: ActType, n: usize, k: usize) {
        let elem_bytes = if act == ActType::F32 { 4 } else { 1 };
        self.qs_stride = (k * elem_bytes).div_ceil(64) * 64;
        let lines = n * self.qs_stride / 64;
        if self.qs.len() < lines {
            self.qs.resize(lines, Line([0; 64]));
        }
        let (nd, nb) = match act {
            ActType::F32 => (0, 0),
            ActType::Q8_0 => (k / QK8_0, 0),
            ActType::Q8_K => (k / QK_K, k / 16),
        };
        if self.d.len() < n * nd {
            self.d.resize(n * nd, 0.0);
        }
        if self.bsums.len() < n * nb {
            self.bsums.resize(n * nb, 0);
        }
        self.act = act;
        self.n = n;
        self.k = k;
    }

    fn qs_bytes(&self) -> &[u8] {
        bytemuck::cast_slice(&self.qs)
    }

    /// Row `t` of an F32 buffer. Empty if the buffer holds another format or
    /// `t` is out of range.
    pub fn row_f32(&self, t: usize) -> &[f32] {
        if self.act != ActType::F32 || t >= self.n {
            return &[];
        }
        let all: &[f32] = bytemuck::cast_slice(&self.qs);
        let stride = self.qs_stride / 4;
        &all[t * stride..t * stride + self.k]
    }

    /// Row `t` of a Q8_0 buffer, or `None` if the buffer holds another format
    /// or `t` is out of range.
    pub fn row_q8_0(&self, t: usize) -> Option<Q8_0Row<'_>> {
        if self.act != ActType::Q8_0 || t >= self.n {
            return None;
        }
        let nd = self.k / QK8_0;
        Some(Q8_0Row {
            qs: self.codes(t),
            d: &self.d[t * nd..(t + 1) * nd],
        })
    }

    /// Row `t` of a Q8_K buffer, or `None` if the buffer holds another format
    /// or `t` is out of range.
    pub fn row_q8k(&self, t: usize) -> Option<Q8KRow<'_>> {
        if self.act != ActType::Q8_K || t >= self.n {
            return None;
        }
        let (nd, nb) = (self.k / QK_K, self.k / 16);
        Some(Q8KRow {
            qs: self.codes(t),
            d: &self.d[t * nd..(t + 1) * nd],
            bsums: &self.bsums[t * nb..(t + 1) * nb],
        })
    }

    /// Codes of row `t` (Q8 formats).
    fn codes(&self, t: usize) -> &[i8] {
        let b = &self.qs_bytes()[t * self.qs_stride..t * self.qs_stride + self.k];
        bytemuck::cast_slice(b)
    }

    /// Raw planes for the kernels: (codes or values as bytes, byte stride,
    /// scales, sums).
    pub(crate) fn planes(&self) -> (&[u8], usize, &[f32], &[i16]) {
        (self.qs_bytes(), self.qs_stride, &self.d, &self.bsums)
    }

    /// Mutable planes, as [`ActBuf::planes`].
    pub(crate) fn planes_mut(&mut self) -> (&mut [u8], usize, &mut [f32], &mut [i16]) {
        (
            bytemuck::cast_slice_mut(&mut self.qs),
            self.qs_stride,
            &mut self.d,
            &mut self.bsums,
        )
    }
}

impl ActBuf {
    /// A borrowed view of activation rows `tokens` (clamped to the rows held).
    pub fn view(&self, tokens: std::ops::Range<usize>) -> ActView<'_> {
        let t0 = tokens.start.min(self.n);
        let t1 = tokens.end.clamp(t0, self.n);
        ActView {
            buf: self,
            t0,
            n: t1 - t0,
        }
    }
}

/// A contiguous range of the rows of an [`ActBuf`]; row `t` of the view is row
/// `t0 + t` of the buffer. What kernels and [`crate::QuantBlock::act_row`]
/// read, so a long batch can be processed in chunks that stay in cache.
#[derive(Debug, Clone, Copy)]
pub struct ActView<'a> {
    buf: &'a ActBuf,
    t0: usize,
    n: usize,
}

impl<'a> ActView<'a> {
    /// Rows in the view.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Row length.
    pub fn k(&self) -> usize {
        self.buf.k
    }

    /// The format held.
    pub fn act_type(&self) -> ActType {
        self.buf.act
    }

    /// Row `t` of an F32 view (empty if another format or out of range).
    pub fn row_f32(&self, t: usize) -> &'a [f32] {
        if t >= self.n {
            return &[];
        }
        self.buf.row_f32(self.t0 + t)
    }

    /// Row `t` of a Q8_0 view.
    pub fn row_q8_0(&self, t: usize) -> Option<Q8_0Row<'a>> {
        if t >= self.n {
            return None;
        }
        self.buf.row_q8_0(self.t0 + t)
    }

    /// Row `t` of a Q8_K view.
    pub fn row_q8k(&self, t: usize) -> Option<Q8KRow<'a>> {
        if t >= self.n {
            return None;
        }
        self.buf.row_q8k(self.t0 + t)
    }

    /// Raw planes starting at the view's first row (see [`ActBuf::planes`]).
    pub(crate) fn planes(&self) -> (&'a [u8], usize, &'a [f32], &'a [i16]) {
        let (qs, stride, d, bs) = self.buf.planes();
        let k = self.buf.k;
        let (nd, nb) = match self.buf.act {
            ActType::F32 => (0, 0),
            ActType::Q8_0 => (k / QK8_0, 0),
            ActType::Q8_K => (k / QK_K, k / 16),
        };
        (
            &qs[self.t0 * stride..],
            stride,
            &d[self.t0 * nd..],
            &bs[self.t0 * nb..],
        )
    }
}

/// Scalar quantization of `x: [n, k]` into a prepared buffer (the reference
/// rule for each format; SIMD quantizers must produce identical bytes).
pub(crate) fn quantize_act_scalar(x: &[f32], out: &mut ActBuf) {
    let (act, n, k) = (out.act, out.n, out.k);
    let (qs, stride, d, bsums) = out.planes_mut();
    for t in 0..n {
        let xr = &x[t * k..(t + 1) * k];
        let row = &mut qs[t * stride..(t + 1) * stride];
        match act {
            ActType::F32 => {
                let dst: &mut [f32] = bytemuck::cast_slice_mut(row);
                dst[..k].copy_from_slice(xr);
            }
            ActType::Q8_0 => {
                let nd = k / QK8_0;
                let codes: &mut [i8] = bytemuck::cast_slice_mut(&mut row[..k]);
                for b in 0..nd {
                    let mut xa = [0.0f32; QK8_0];
                    xa.copy_from_slice(&xr[b * QK8_0..(b + 1) * QK8_0]);
                    let mut qa = [0i8; QK8_0];
                    let dh = quantize_q8_0_block(&xa, &mut qa);
                    codes[b * QK8_0..(b + 1) * QK8_0].copy_from_slice(&qa);
                    d[t * nd + b] = f16_le(dh);
                }
            }
            ActType::Q8_K => {
                let (nd, nb) = (k / QK_K, k / 16);
                let codes: &mut [i8] = bytemuck::cast_slice_mut(&mut row[..k]);
                for b in 0..nd {
                    d[t * nd + b] = quantize_q8k_block(
                        &xr[b * QK_K..(b + 1) * QK_K],
                        &mut codes[b * QK_K..(b + 1) * QK_K],
                        &mut bsums[t * nb + 16 * b..t * nb + 16 * (b + 1)],
                    );
                }
            }
        }
    }
}
