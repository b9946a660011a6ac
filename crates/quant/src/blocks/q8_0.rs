//! Q8_0: 32 elements in 34 bytes (8.5 bits per weight).
//!
//! Layout (`block_q8_0` in ggml `ggml-common.h`, llama.cpp `0c1e57098`):
//!
//! | offset | bytes | field | meaning |
//! |---:|---:|---|---|
//! | 0 | 2 | `d` | f16 scale |
//! | 2 | 32 | `qs` | i8 codes; element `j` = `d · qs[j]` |
//!
//! Q8_0 is both a weight type (all attention projections, shared experts and
//! the output head of the V4 GGUFs) and the activation type that Q8_0, Q4_0 and
//! MXFP4 weights are multiplied with. The quantizer is ggml's
//! `quantize_row_q8_0_ref` (`ggml-quants.c`): `d = amax / 127`, codes
//! `roundf(x / d)` (half away from zero) computed as `x · (1/d)`, `d` stored as
//! f16 (round to nearest even).

use bytemuck::{Pod, Zeroable};
use dsv4_gguf::GgmlType;

use super::{QK8_0, QuantBlock, f16_le, f16_to_le, roundf};
use crate::act::{ActType, ActView, Q8_0Row};

/// One Q8_0 block.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ8_0 {
    /// f16 scale, little-endian.
    pub d: [u8; 2],
    /// Signed codes.
    pub qs: [i8; QK8_0],
}

const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);

impl BlockQ8_0 {
    /// The block scale as f32.
    #[inline]
    pub fn d(&self) -> f32 {
        f16_le(self.d)
    }
}

/// Quantizes 32 values into `qs`; returns the f16 scale (little-endian bytes).
/// Exactly ggml's `quantize_row_q8_0_ref` for one block.
#[inline]
pub fn quantize_q8_0_block(x: &[f32; QK8_0], qs: &mut [i8; QK8_0]) -> [u8; 2] {
    let mut amax = 0.0f32;
    for &v in x {
        // `MAX(amax, fabsf(v))` in C.
        let a = v.abs();
        amax = if amax > a { amax } else { a };
    }
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = roundf(v * id) as i8;
    }
    f16_to_le(d)
}

/// Quantizes a row (`x.len() == 32 · out.len()`) with the reference rule.
pub fn quantize_row_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
    for (xb, b) in x.chunks_exact(QK8_0).zip(out.iter_mut()) {
        let mut xa = [0.0f32; QK8_0];
        xa.copy_from_slice(xb);
        b.d = quantize_q8_0_block(&xa, &mut b.qs);
    }
}

/// Integer dot of 32 codes with 32 activation codes.
#[inline]
pub(crate) fn dot_i8_32(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum()
}

impl QuantBlock for BlockQ8_0 {
    const TYPE: GgmlType = GgmlType::Q8_0;
    const ELEMS: usize = QK8_0;
    const ACT: ActType = ActType::Q8_0;
    type Act<'a> = Q8_0Row<'a>;

    fn act_row<'a>(buf: &ActView<'a>, t: usize) -> Option<Self::Act<'a>> {
        buf.row_q8_0(t)
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d();
        for (o, &q) in out.iter_mut().zip(&self.qs) {
            *o = f32::from(q) * d;
        }
    }

    /// `Σ_b float(Σ_j w_j a_j) · (d_w · d_a)`, as ggml's
    /// `ggml_vec_dot_q8_0_q8_0_generic`.
    fn dot_ref(row: &[Self], act: Q8_0Row<'_>) -> f32 {
        let mut sumf = 0.0f32;
        for (b, blk) in row.iter().enumerate() {
            let sumi = dot_i8_32(&blk.qs, &act.qs[b * QK8_0..(b + 1) * QK8_0]);
            sumf += sumi as f32 * (blk.d() * act.d[b]);
        }
        sumf
    }
}
