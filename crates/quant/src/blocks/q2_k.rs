//! Q2_K: 256 elements in 84 bytes (2.625 bits per weight).
//!
//! Layout (`block_q2_K` in ggml `ggml-common.h`, llama.cpp `0c1e57098`):
//!
//! | offset | bytes | field | meaning |
//! |---:|---:|---|---|
//! | 0 | 16 | `scales` | sub-block `i`: low nibble = scale, high nibble = min |
//! | 16 | 64 | `qs` | 2-bit codes |
//! | 80 | 2 | `d` | f16 super-scale of the scales |
//! | 82 | 2 | `dmin` | f16 super-scale of the mins |
//!
//! Element `128h + 32s + l` (h = 0..1, s = 0..3, l = 0..31) has code
//! `(qs[32h + l] >> 2s) & 3` and belongs to sub-block `i = 8h + 2s + l/16`
//! (= element / 16); its value is `d · (scales[i] & 0xF) · q − dmin ·
//! (scales[i] >> 4)`. Paired with Q8_K activations. The quantizer is ggml's
//! `quantize_row_q2_K_ref`.

use bytemuck::{Pod, Zeroable};
use dsv4_gguf::GgmlType;

use super::kq::{Qkx2Params, make_qkx2_quants};
use super::{QK_K, QuantBlock, f16_le, f16_to_le, nearest_int};
use crate::act::{ActType, ActView, Q8KRow};

/// One Q2_K super-block.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ2K {
    /// Per-sub-block 4-bit scale (low) and min (high).
    pub scales: [u8; 16],
    /// Packed 2-bit codes.
    pub qs: [u8; 64],
    /// f16 scale of the scales.
    pub d: [u8; 2],
    /// f16 scale of the mins.
    pub dmin: [u8; 2],
}

const _: () = assert!(std::mem::size_of::<BlockQ2K>() == 84);

impl BlockQ2K {
    /// Code (0..=3) of element `j` (0..256).
    #[inline]
    pub fn code(&self, j: usize) -> u8 {
        let (h, s, l) = (j / 128, (j % 128) / 32, j % 32);
        (self.qs[32 * h + l] >> (2 * s)) & 3
    }
}

/// Quantizes 256 values with ggml's reference rule.
pub fn quantize_q2k_block(x: &[f32]) -> BlockQ2K {
    const Q4SCALE: f32 = 15.0;
    let x = &x[..QK_K];
    let mut codes = [0u8; QK_K];
    let mut scales = [0.0f32; 16];
    let mut mins = [0.0f32; 16];
    let params = Qkx2Params {
        nmax: 3,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: true,
    };
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..16 {
        let xs = &x[16 * j..16 * j + 16];
        let mut weights = [0.0f32; 16];
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = v.abs();
        }
        let (scale, min) = make_qkx2_quants(xs, &weights, &mut codes[16 * j..], params);
        scales[j] = scale;
        mins[j] = min;
        if scale > max_scale {
            max_scale = scale;
        }
        if min > max_min {
            max_min = min;
        }
    }

    let mut b = BlockQ2K::zeroed();
    if max_scale > 0.0 {
        let iscale = Q4SCALE / max_scale;
        for j in 0..16 {
            b.scales[j] = nearest_int(iscale * scales[j]) as u8;
        }
        b.d = f16_to_le(max_scale / Q4SCALE);
    } else {
        b.d = f16_to_le(0.0);
    }
    if max_min > 0.0 {
        let iscale = Q4SCALE / max_min;
        for j in 0..16 {
            b.scales[j] |= (nearest_int(iscale * mins[j]) << 4) as u8;
        }
        b.dmin = f16_to_le(max_min / Q4SCALE);
    } else {
        b.dmin = f16_to_le(0.0);
    }

    // Re-fit the codes to the rounded scales.
    let (d_all, dmin_all) = (f16_le(b.d), f16_le(b.dmin));
    for j in 0..16 {
        let d = d_all * f32::from(b.scales[j] & 0xF);
        if d == 0.0 {
            continue;
        }
        let dm = dmin_all * f32::from(b.scales[j] >> 4);
        for ii in 0..16 {
            let l = nearest_int((x[16 * j + ii] + dm) / d);
            codes[16 * j + ii] = l.clamp(0, 3) as u8;
        }
    }

    for h in 0..2 {
        for l in 0..32 {
            let c = |s: usize| codes[128 * h + 32 * s + l] << (2 * s);
            b.qs[32 * h + l] = c(0) | c(1) | c(2) | c(3);
        }
    }
    b
}

/// Quantizes a row (`x.len() == 256 · out.len()`).
pub fn quantize_row_q2k(x: &[f32], out: &mut [BlockQ2K]) {
    for (xb, b) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
        *b = quantize_q2k_block(xb);
    }
}

impl QuantBlock for BlockQ2K {
    const TYPE: GgmlType = GgmlType::Q2_K;
    const ELEMS: usize = QK_K;
    const ACT: ActType = ActType::Q8_K;
    type Act<'a> = Q8KRow<'a>;

    fn act_row<'a>(buf: &ActView<'a>, t: usize) -> Option<Self::Act<'a>> {
        buf.row_q8k(t)
    }

    fn dequantize(&self, out: &mut [f32]) {
        let (d, dmin) = (f16_le(self.d), f16_le(self.dmin));
        for (i, chunk) in out[..QK_K].chunks_exact_mut(16).enumerate() {
            let sc = self.scales[i];
            let dl = d * f32::from(sc & 0xF);
            let ml = dmin * f32::from(sc >> 4);
            for (l, o) in chunk.iter_mut().enumerate() {
                *o = dl * f32::from(self.code(16 * i + l)) - ml;
            }
        }
    }

    /// Per super-block: `(d_a · d_w) · float(Σ_i sc_i Σ q·a) − (d_a · dmin_w) ·
    /// float(Σ_i m_i · bsum_i)`, as ggml's `ggml_vec_dot_q2_K_q8_K_generic`.
    fn dot_ref(row: &[Self], act: Q8KRow<'_>) -> f32 {
        let mut sumf = 0.0f32;
        for (sb, blk) in row.iter().enumerate() {
            let a = &act.qs[sb * QK_K..(sb + 1) * QK_K];
            let bsums = &act.bsums[sb * 16..(sb + 1) * 16];
            let mut summs = 0i32;
            let mut isum = 0i32;
            for i in 0..16 {
                summs += i32::from(bsums[i]) * i32::from(blk.scales[i] >> 4);
                let isuml: i32 = (16 * i..16 * i + 16)
                    .map(|j| i32::from(blk.code(j)) * i32::from(a[j]))
                    .sum();
                isum += i32::from(blk.scales[i] & 0xF) * isuml;
            }
            let dall = act.d[sb] * f16_le(blk.d);
            let dmin = act.d[sb] * f16_le(blk.dmin);
            sumf += dall * isum as f32 - dmin * summs as f32;
        }
        sumf
    }
}
