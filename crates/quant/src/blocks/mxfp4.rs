//! MXFP4: 32 elements in 17 bytes (4.25 bits per weight), OCP microscaling FP4.
//!
//! Layout (`block_mxfp4` in ggml `ggml-common.h`, llama.cpp `0c1e57098`; ggml
//! type id 39):
//!
//! | offset | bytes | field | meaning |
//! |---:|---:|---|---|
//! | 0 | 1 | `e` | E8M0 shared exponent |
//! | 1 | 16 | `qs` | E2M1 nibbles: element `j` from `qs[j] & 0xF`, element `j + 16` from `qs[j] >> 4` |
//!
//! Value of a code `c`: `kvalues_mxfp4[c] · 2^(e − 128)`. ggml stores the E2M1
//! values doubled (`0, 1, 2, 3, 4, 6, 8, 12` and negatives, see
//! [`crate::tables::KVALUES_MXFP4`]) and halves the scale
//! (`ggml_e8m0_to_fp32_half`), so the product is the real MX value
//! `2^(e − 127) · {0, 0.5, 1, 1.5, 2, 3, 4, 6}`. Paired with Q8_0 activations
//! like ggml (`ggml_vec_dot_mxfp4_q8_0`). The quantizer is ggml's
//! `quantize_row_mxfp4_ref`.

use bytemuck::{Pod, Zeroable};
use dsv4_gguf::GgmlType;

use super::{QK8_0, QuantBlock};
use crate::act::{ActType, ActView, Q8_0Row};
use crate::tables::{KVALUES_MXFP4, e8m0_to_f32_half};

/// One MXFP4 block.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockMxfp4 {
    /// E8M0 exponent.
    pub e: u8,
    /// Packed E2M1 codes.
    pub qs: [u8; 16],
}

const _: () = assert!(std::mem::size_of::<BlockMxfp4>() == 17);

impl BlockMxfp4 {
    /// The (halved) block scale `2^(e − 128)`.
    #[inline]
    pub fn d(&self) -> f32 {
        e8m0_to_f32_half(self.e)
    }

    /// Doubled E2M1 value of element `j` (−12..=12).
    #[inline]
    pub fn kvalue(&self, j: usize) -> i32 {
        let byte = self.qs[j % 16];
        let nib = if j < 16 { byte & 0xF } else { byte >> 4 };
        i32::from(KVALUES_MXFP4[usize::from(nib)])
    }
}

/// Index of the doubled E2M1 value closest to `x / d` (first one on ties), as
/// ggml's `best_index_mxfp4`.
fn best_index(x: f32, d: f32) -> u8 {
    let mut best = 0u8;
    let mut best_err = (f32::from(KVALUES_MXFP4[0]) * d - x).abs();
    for (i, &kv) in KVALUES_MXFP4.iter().enumerate().skip(1) {
        let err = (f32::from(kv) * d - x).abs();
        if err < best_err {
            best = i as u8;
            best_err = err;
        }
    }
    best
}

/// Quantizes 32 values with ggml's reference rule: `e = floor(log2(amax)) − 2 +
/// 127` (0 for an all-zero block; clamped to 0..=255 where ggml's cast would be
/// undefined), then the nearest representable value per element.
pub fn quantize_mxfp4_block(x: &[f32]) -> BlockMxfp4 {
    let mut amax = 0.0f32;
    for &v in &x[..QK8_0] {
        if amax < v.abs() {
            amax = v.abs();
        }
    }
    let e = if amax > 0.0 {
        (amax.log2().floor() - 2.0 + 127.0).clamp(0.0, 255.0) as u8
    } else {
        0
    };
    let d = e8m0_to_f32_half(e);
    let mut qs = [0u8; 16];
    for (j, q) in qs.iter_mut().enumerate() {
        *q = best_index(x[j], d) | (best_index(x[j + 16], d) << 4);
    }
    BlockMxfp4 { e, qs }
}

/// Quantizes a row (`x.len() == 32 · out.len()`).
pub fn quantize_row_mxfp4(x: &[f32], out: &mut [BlockMxfp4]) {
    for (xb, b) in x.chunks_exact(QK8_0).zip(out.iter_mut()) {
        *b = quantize_mxfp4_block(xb);
    }
}

impl QuantBlock for BlockMxfp4 {
    const TYPE: GgmlType = GgmlType::MXFP4;
    const ELEMS: usize = QK8_0;
    const ACT: ActType = ActType::Q8_0;
    type Act<'a> = Q8_0Row<'a>;

    fn act_row<'a>(buf: &ActView<'a>, t: usize) -> Option<Self::Act<'a>> {
        buf.row_q8_0(t)
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d();
        for (j, o) in out[..QK8_0].iter_mut().enumerate() {
            *o = self.kvalue(j) as f32 * d;
        }
    }

    /// `Σ_b (d_a · d_w) · float(Σ_j kvalue_j a_j)`, as ggml's
    /// `ggml_vec_dot_mxfp4_q8_0_generic`.
    fn dot_ref(row: &[Self], act: Q8_0Row<'_>) -> f32 {
        let mut sumf = 0.0f32;
        for (b, blk) in row.iter().enumerate() {
            let a = &act.qs[b * QK8_0..(b + 1) * QK8_0];
            let sumi: i32 = (0..QK8_0).map(|j| blk.kvalue(j) * i32::from(a[j])).sum();
            sumf += (act.d[b] * blk.d()) * sumi as f32;
        }
        sumf
    }
}
