//! Q4_0: 32 elements in 18 bytes (4.5 bits per weight).
//!
//! Layout (`block_q4_0` in ggml `ggml-common.h`, llama.cpp `0c1e57098`):
//!
//! | offset | bytes | field | meaning |
//! |---:|---:|---|---|
//! | 0 | 2 | `d` | f16 scale |
//! | 2 | 16 | `qs` | nibbles: element `j` = `d · ((qs[j] & 0xF) − 8)`, element `j + 16` = `d · ((qs[j] >> 4) − 8)` |
//!
//! Low nibbles hold the first half of the block, high nibbles the second half.
//! Paired with Q8_0 activations. The quantizer is ggml's
//! `quantize_row_q4_0_ref`: the signed value of largest magnitude `max` gives
//! `d = max / −8`, codes `min(15, trunc(x / d + 8.5))`.

use bytemuck::{Pod, Zeroable};
use dsv4_gguf::GgmlType;

use super::{QK8_0, QuantBlock, f16_le, f16_to_le};
use crate::act::{ActType, ActView, Q8_0Row};

/// One Q4_0 block.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ4_0 {
    /// f16 scale, little-endian.
    pub d: [u8; 2],
    /// Packed 4-bit codes (see the module table).
    pub qs: [u8; 16],
}

const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 18);

impl BlockQ4_0 {
    /// The block scale as f32.
    #[inline]
    pub fn d(&self) -> f32 {
        f16_le(self.d)
    }

    /// Signed code of element `j` (−8..=7).
    #[inline]
    pub fn code(&self, j: usize) -> i32 {
        let byte = self.qs[j % 16];
        let nib = if j < 16 { byte & 0xF } else { byte >> 4 };
        i32::from(nib) - 8
    }
}

/// Quantizes 32 values with ggml's reference rule.
pub fn quantize_q4_0_block(x: &[f32]) -> BlockQ4_0 {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in &x[..QK8_0] {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0u8; 16];
    for (j, q) in qs.iter_mut().enumerate() {
        // `(int8_t)(x + 8.5f)` truncates toward zero; the value is in [0.5, 16.5].
        let lo = ((x[j] * id + 8.5) as i8).min(15) as u8;
        let hi = ((x[j + 16] * id + 8.5) as i8).min(15) as u8;
        *q = lo | (hi << 4);
    }
    BlockQ4_0 {
        d: f16_to_le(d),
        qs,
    }
}

/// Quantizes a row (`x.len() == 32 · out.len()`).
pub fn quantize_row_q4_0(x: &[f32], out: &mut [BlockQ4_0]) {
    for (xb, b) in x.chunks_exact(QK8_0).zip(out.iter_mut()) {
        *b = quantize_q4_0_block(xb);
    }
}

impl QuantBlock for BlockQ4_0 {
    const TYPE: GgmlType = GgmlType::Q4_0;
    const ELEMS: usize = QK8_0;
    const ACT: ActType = ActType::Q8_0;
    type Act<'a> = Q8_0Row<'a>;

    fn act_row<'a>(buf: &ActView<'a>, t: usize) -> Option<Self::Act<'a>> {
        buf.row_q8_0(t)
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d();
        for (j, o) in out[..QK8_0].iter_mut().enumerate() {
            *o = self.code(j) as f32 * d;
        }
    }

    /// `Σ_b float(Σ_j (q_j − 8) a_j) · d_w · d_a`, as ggml's
    /// `ggml_vec_dot_q4_0_q8_0_generic`.
    fn dot_ref(row: &[Self], act: Q8_0Row<'_>) -> f32 {
        let mut sumf = 0.0f32;
        for (b, blk) in row.iter().enumerate() {
            let a = &act.qs[b * QK8_0..(b + 1) * QK8_0];
            let sumi: i32 = (0..QK8_0).map(|j| blk.code(j) * i32::from(a[j])).sum();
            sumf += sumi as f32 * blk.d() * act.d[b];
        }
        sumf
    }
}
