//! Q4_K: 256 elements in 144 bytes (4.5 bits per weight).
//!
//! Layout (`block_q4_K` in ggml `ggml-common.h`, llama.cpp `0c1e57098`):
//!
//! | offset | bytes | field | meaning |
//! |---:|---:|---|---|
//! | 0 | 2 | `d` | f16 super-scale of the scales |
//! | 2 | 2 | `dmin` | f16 super-scale of the mins |
//! | 4 | 12 | `scales` | eight 6-bit scales and eight 6-bit mins, packed (see [`scale_min_k4`]) |
//! | 16 | 128 | `qs` | 4-bit codes |
//!
//! Eight sub-blocks of 32. Chunk `c` (0..3) of 64 elements uses `qs[32c ..
//! 32c + 31]`: its first 32 elements are the low nibbles (sub-block `2c`), the
//! next 32 the high nibbles (sub-block `2c + 1`). Value: `d · sc_j · q − dmin ·
//! m_j`. Paired with Q8_K activations. The quantizer is ggml's
//! `quantize_row_q4_K_ref`.

use bytemuck::{Pod, Zeroable};
use dsv4_gguf::GgmlType;

use super::kq::{Qkx2Params, make_qkx2_quants};
use super::{QK_K, QuantBlock, f16_le, f16_to_le, nearest_int};
use crate::act::{ActType, ActView, Q8KRow};

/// One Q4_K super-block.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ4K {
    /// f16 scale of the scales.
    pub d: [u8; 2],
    /// f16 scale of the mins.
    pub dmin: [u8; 2],
    /// Packed 6-bit scales and mins.
    pub scales: [u8; 12],
    /// Packed 4-bit codes.
    pub qs: [u8; 128],
}

const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 144);

/// Scale and min of sub-block `j` (0..8), ggml's `get_scale_min_k4`:
/// for `j < 4`: `sc = s[j] & 63`, `m = s[j + 4] & 63`; for `j ≥ 4`:
/// `sc = (s[j + 4] & 0xF) | ((s[j − 4] >> 6) << 4)`, `m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4)`.
#[inline]
pub fn scale_min_k4(j: usize, s: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

impl BlockQ4K {
    /// Code (0..=15) of element `j` (0..256).
    #[inline]
    pub fn code(&self, j: usize) -> u8 {
        let (c, half, l) = (j / 64, (j % 64) / 32, j % 32);
        let byte = self.qs[32 * c + l];
        if half == 0 { byte & 0xF } else { byte >> 4 }
    }
}

/// Quantizes 256 values with ggml's reference rule.
pub fn quantize_q4k_block(x: &[f32]) -> BlockQ4K {
    let x = &x[..QK_K];
    let mut codes = [0u8; QK_K];
    let mut scales = [0.0f32; 8];
    let mut mins = [0.0f32; 8];
    let params = Qkx2Params {
        nmax: 15,
        rmin: -1.0,
        rdelta: 0.1,
        nstep: 20,
        use_mad: false,
    };
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        let mut sum_x2 = 0.0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        let mut weights = [0.0f32; 32];
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = av_x + v.abs();
        }
        let (scale, min) = make_qkx2_quants(xs, &weights, &mut codes[32 * j..], params);
        scales[j] = scale;
        mins[j] = min;
        if scale > max_scale {
            max_scale = scale;
        }
        if min > max_min {
            max_min = min;
        }
    }

    let mut b = BlockQ4K::zeroed();
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    for j in 0..8 {
        // `uint8_t ls = nearest_int(..)` wraps like `as u8`, then MIN(63, ..).
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            b.scales[j] = ls;
            b.scales[j + 4] = lm;
        } else {
            b.scales[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
            b.scales[j - 4] |= (ls >> 4) << 6;
            b.scales[j] |= (lm >> 4) << 6;
        }
    }
    b.d = f16_to_le(max_scale / 63.0);
    b.dmin = f16_to_le(max_min / 63.0);

    // Re-fit the codes to the rounded scales.
    let (d_all, dmin_all) = (f16_le(b.d), f16_le(b.dmin));
    for j in 0..8 {
        let (sc, m) = scale_min_k4(j, &b.scales);
        let d = d_all * f32::from(sc);
        if d == 0.0 {
            continue;
        }
        let dm = dmin_all * f32::from(m);
        for ii in 0..32 {
            let l = nearest_int((x[32 * j + ii] + dm) / d);
            codes[32 * j + ii] = l.clamp(0, 15) as u8;
        }
    }

    for c in 0..4 {
        for l in 0..32 {
            b.qs[32 * c + l] = codes[64 * c + l] | (codes[64 * c + 32 + l] << 4);
        }
    }
    b
}

/// Quantizes a row (`x.len() == 256 · out.len()`).
pub fn quantize_row_q4k(x: &[f32], out: &mut [BlockQ4K]) {
    for (xb, b) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
        *b = quantize_q4k_block(xb);
    }
}

impl QuantBlock for BlockQ4K {
    const TYPE: GgmlType = GgmlType::Q4_K;
    const ELEMS: usize = QK_K;
    const ACT: ActType = ActType::Q8_K;
    type Act<'a> = Q8KRow<'a>;

    fn act_row<'a>(buf: &ActView<'a>, t: usize) -> Option<Self::Act<'a>> {
        buf.row_q8k(t)
    }

    fn dequantize(&self, out: &mut [f32]) {
        let (d, dmin) = (f16_le(self.d), f16_le(self.dmin));
        for (j, chunk) in out[..QK_K].chunks_exact_mut(32).enumerate() {
            let (sc, m) = scale_min_k4(j, &self.scales);
            let d1 = d * f32::from(sc);
            let m1 = dmin * f32::from(m);
            for (l, o) in chunk.iter_mut().enumerate() {
                *o = d1 * f32::from(self.code(32 * j + l)) - m1;
            }
        }
    }

    /// Per super-block: `(d_w · d_a) · float(Σ_j sc_j Σ q·a) − (dmin_w · d_a) ·
    /// float(Σ_i m_{i/2} · bsum_i)`, as ggml's `ggml_vec_dot_q4_K_q8_K_generic`
    /// (which sums the same integers in a different order).
    fn dot_ref(row: &[Self], act: Q8KRow<'_>) -> f32 {
        let mut sumf = 0.0f32;
        for (sb, blk) in row.iter().enumerate() {
            let a = &act.qs[sb * QK_K..(sb + 1) * QK_K];
            let bsums = &act.bsums[sb * 16..(sb + 1) * 16];
            let mut summs = 0i32;
            let mut isum = 0i32;
            for j in 0..8 {
                let (sc, m) = scale_min_k4(j, &blk.scales);
                summs += (i32::from(bsums[2 * j]) + i32::from(bsums[2 * j + 1])) * i32::from(m);
                let isuml: i32 = (32 * j..32 * j + 32)
                    .map(|e| i32::from(blk.code(e)) * i32::from(a[e]))
                    .sum();
                isum += i32::from(sc) * isuml;
            }
            let d = f16_le(blk.d) * act.d[sb];
            let dmin = f16_le(blk.dmin) * act.d[sb];
            sumf += d * isum as f32 - dmin * summs as f32;
        }
        sumf
    }
}
