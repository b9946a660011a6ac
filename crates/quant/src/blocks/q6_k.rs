//! Q6_K: 256 elements in 210 bytes (6.5625 bits per weight).
//!
//! Layout (`block_q6_K` in ggml `ggml-common.h`, llama.cpp `0c1e57098`):
//!
//! | offset | bytes | field | meaning |
//! |---:|---:|---|---|
//! | 0 | 128 | `ql` | low 4 bits of the codes |
//! | 128 | 64 | `qh` | high 2 bits of the codes |
//! | 192 | 16 | `scales` | signed 8-bit sub-block scales |
//! | 208 | 2 | `d` | f16 super-scale |
//!
//! Two halves of 128 elements; half `h` uses `ql[64h..]`, `qh[32h..]`. For
//! `l` in 0..32 within a half: element `l` takes `ql[l] & 0xF` and `qh[l]` bits
//! 0–1; element `l + 32`: `ql[l + 32] & 0xF`, bits 2–3; element `l + 64`:
//! `ql[l] >> 4`, bits 4–5; element `l + 96`: `ql[l + 32] >> 4`, bits 6–7.
//! Element `j` has sub-block `j / 16` and value `d · scales[j/16] · (q − 32)`.
//! Paired with Q8_K activations. No quantizer here (not needed by dsv4).

use bytemuck::{Pod, Zeroable};
use dsv4_gguf::GgmlType;

use super::{QK_K, QuantBlock, f16_le};
use crate::act::{ActType, ActView, Q8KRow};

/// One Q6_K super-block.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ6K {
    /// Low 4 bits of the codes.
    pub ql: [u8; 128],
    /// High 2 bits of the codes.
    pub qh: [u8; 64],
    /// Signed sub-block scales.
    pub scales: [i8; 16],
    /// f16 super-scale.
    pub d: [u8; 2],
}

const _: () = assert!(std::mem::size_of::<BlockQ6K>() == 210);

impl BlockQ6K {
    /// Unsigned code (0..=63) of element `j` (0..256); the value uses `q − 32`.
    #[inline]
    pub fn code(&self, j: usize) -> u8 {
        let (h, e) = (j / 128, j % 128);
        let (g, l) = (e / 32, e % 32);
        let lo_byte = self.ql[64 * h + l + 32 * (g & 1)];
        let lo = if g < 2 { lo_byte & 0xF } else { lo_byte >> 4 };
        let hi = (self.qh[32 * h + l] >> (2 * g)) & 3;
        lo | (hi << 4)
    }
}

impl QuantBlock for BlockQ6K {
    const TYPE: GgmlType = GgmlType::Q6_K;
    const ELEMS: usize = QK_K;
    const ACT: ActType = ActType::Q8_K;
    type Act<'a> = Q8KRow<'a>;

    fn act_row<'a>(buf: &ActView<'a>, t: usize) -> Option<Self::Act<'a>> {
        buf.row_q8k(t)
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16_le(self.d);
        for (i, chunk) in out[..QK_K].chunks_exact_mut(16).enumerate() {
            let ds = d * f32::from(self.scales[i]);
            for (l, o) in chunk.iter_mut().enumerate() {
                *o = ds * f32::from(self.code(16 * i + l) as i8 - 32);
            }
        }
    }

    /// Per super-block: `(d_w · d_a) · float(Σ_i sc_i Σ (q − 32)·a)`, as ggml's
    /// `ggml_vec_dot_q6_K_q8_K_generic` (which sums the same integers in a
    /// different order).
    fn dot_ref(row: &[Self], act: Q8KRow<'_>) -> f32 {
        let mut sumf = 0.0f32;
        for (sb, blk) in row.iter().enumerate() {
            let a = &act.qs[sb * QK_K..(sb + 1) * QK_K];
            let mut isum = 0i32;
            for i in 0..16 {
                let isuml: i32 = (16 * i..16 * i + 16)
                    .map(|j| (i32::from(blk.code(j)) - 32) * i32::from(a[j]))
                    .sum();
                isum += i32::from(blk.scales[i]) * isuml;
            }
            sumf += (f16_le(blk.d) * act.d[sb]) * isum as f32;
        }
        sumf
    }
}
