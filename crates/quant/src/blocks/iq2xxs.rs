//! IQ2_XXS: 256 elements in 66 bytes (2.0625 bits per weight), a lattice
//! ("i-quant") format.
//!
//! Layout (`block_iq2_xxs` in ggml `ggml-common.h`, llama.cpp `0c1e57098`):
//!
//! | offset | bytes | field | meaning |
//! |---:|---:|---|---|
//! | 0 | 2 | `d` | f16 super-scale |
//! | 2 | 64 | `qs` | eight groups of 8 bytes (ggml: `uint16_t qs[32]`) |
//!
//! Group `g` (32 elements) reads its 8 bytes as two little-endian u32 words
//! `a` and `b`. Byte `l` of `a` indexes [`IQ2XXS_GRID`] (8 magnitudes in
//! {8, 25, 43} for elements `8l .. 8l + 7`); bits `7l .. 7l + 6` of `b` index
//! [`KSIGNS_IQ2XS`] (bit `j` set: element `8l + j` negative); bits 28–31 of `b`
//! are the group scale `s`. Value: `d · (0.5 + s) · 0.25 · grid · (±1)`
//! (ggml's `dequantize_row_iq2_xxs`, evaluated in that order). Paired with Q8_K
//! activations; the dot product uses the integer group weight `2s + 1` and a
//! final factor 1/8.
//!
//! [`quantize_iq2xxs_block`] is a simple nearest-grid quantizer (not ggml's
//! importance-weighted search): good enough to produce realistic test data.

use bytemuck::{Pod, Zeroable};
use dsv4_gguf::GgmlType;

use super::{QK_K, QuantBlock, f16_le, f16_to_le};
use crate::act::{ActType, ActView, Q8KRow};
use crate::tables::{IQ2XXS_GRID, KSIGNS_IQ2XS};

/// One IQ2_XXS super-block.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockIq2Xxs {
    /// f16 super-scale.
    pub d: [u8; 2],
    /// Eight 8-byte groups (see the module table).
    pub qs: [u8; 64],
}

const _: () = assert!(std::mem::size_of::<BlockIq2Xxs>() == 66);

impl BlockIq2Xxs {
    /// The `(a, b)` words of group `g` (0..8).
    #[inline]
    pub fn words(&self, g: usize) -> (u32, u32) {
        let q = &self.qs[8 * g..8 * g + 8];
        (
            u32::from_le_bytes([q[0], q[1], q[2], q[3]]),
            u32::from_le_bytes([q[4], q[5], q[6], q[7]]),
        )
    }

    /// Signed lattice value (±8, ±25, ±43) of element `8l + j` of group `g`.
    #[inline]
    pub fn signed_grid(&self, g: usize, l: usize, j: usize) -> i32 {
        let (a, b) = self.words(g);
        let grid = IQ2XXS_GRID[((a >> (8 * l)) & 0xFF) as usize];
        let mag = ((grid >> (8 * j)) & 0xFF) as i32;
        let signs = KSIGNS_IQ2XS[((b >> (7 * l)) & 127) as usize];
        if (signs >> j) & 1 == 1 { -mag } else { mag }
    }
}

impl QuantBlock for BlockIq2Xxs {
    const TYPE: GgmlType = GgmlType::IQ2_XXS;
    const ELEMS: usize = QK_K;
    const ACT: ActType = ActType::Q8_K;
    type Act<'a> = Q8KRow<'a>;

    fn act_row<'a>(buf: &ActView<'a>, t: usize) -> Option<Self::Act<'a>> {
        buf.row_q8k(t)
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16_le(self.d);
        for g in 0..8 {
            let (a, b) = self.words(g);
            let db = d * (0.5 + (b >> 28) as f32) * 0.25;
            for l in 0..4 {
                let grid = IQ2XXS_GRID[((a >> (8 * l)) & 0xFF) as usize].to_le_bytes();
                let signs = KSIGNS_IQ2XS[((b >> (7 * l)) & 127) as usize];
                for j in 0..8 {
                    let sign = if (signs >> j) & 1 == 1 { -1.0 } else { 1.0 };
                    out[32 * g + 8 * l + j] = db * f32::from(grid[j]) * sign;
                }
            }
        }
    }

    /// `0.125 · Σ_sb (d_w · d_a) · float(Σ_g (2s_g + 1) · Σ grid·sign·a)`, as
    /// ggml's `ggml_vec_dot_iq2_xxs_q8_K_generic`.
    fn dot_ref(row: &[Self], act: Q8KRow<'_>) -> f32 {
        let mut sumf = 0.0f32;
        for (sb, blk) in row.iter().enumerate() {
            let a = &act.qs[sb * QK_K..(sb + 1) * QK_K];
            let mut bsum = 0i32;
            for g in 0..8 {
                let (_, b) = blk.words(g);
                let ls = 2 * (b >> 28) as i32 + 1;
                let mut sumi = 0i32;
                for l in 0..4 {
                    for j in 0..8 {
                        sumi += blk.signed_grid(g, l, j) * i32::from(a[32 * g + 8 * l + j]);
                    }
                }
                bsum += sumi * ls;
            }
            sumf += (f16_le(blk.d) * act.d[sb]) * bsum as f32;
        }
        0.125 * sumf
    }
}

/// Quantizes 256 values to IQ2_XXS by a plain nearest-point search: per group
/// of 32 a scale from the largest magnitude, per 8 elements the nearest grid
/// entry to the magnitudes, signs from the values (if the count of negatives is
/// odd, the smallest-magnitude element's sign is flipped, since only even sign
/// patterns exist).
pub fn quantize_iq2xxs_block(x: &[f32]) -> BlockIq2Xxs {
    let x = &x[..QK_K];
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let mut b = BlockIq2Xxs::zeroed();
    if amax == 0.0 || !amax.is_finite() {
        return b;
    }
    // Largest group scale: (0.5 + 15) / 4 · 43 · d = amax.
    let d = amax / (15.5 * 0.25 * 43.0);
    b.d = f16_to_le(d);
    let d = f16_le(b.d);
    if d == 0.0 {
        return b;
    }
    for g in 0..8 {
        let xs = &x[32 * g..32 * g + 32];
        let gmax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        // Group scale s so that 43 · (0.5 + s) / 4 · d ≈ gmax.
        let s = ((gmax / (d * 0.25 * 43.0)) - 0.5).round().clamp(0.0, 15.0) as u32;
        let db = d * (0.5 + s as f32) * 0.25;
        let (mut a_word, mut b_word) = (0u32, s << 28);
        for l in 0..4 {
            let v = &xs[8 * l..8 * l + 8];
            let (mut signs, mut neg) = (0u8, 0u32);
            for (j, &e) in v.iter().enumerate() {
                if e < 0.0 {
                    signs |= 1 << j;
                    neg += 1;
                }
            }
            if neg % 2 == 1 {
                let j_min = (0..8)
                    .min_by(|&i, &k| v[i].abs().total_cmp(&v[k].abs()))
                    .unwrap_or(0);
                signs ^= 1 << j_min;
            }
            let best = (0..256usize)
                .min_by(|&i, &k| {
                    grid_err(IQ2XXS_GRID[i], v, db).total_cmp(&grid_err(IQ2XXS_GRID[k], v, db))
                })
                .unwrap_or(0);
            a_word |= (best as u32) << (8 * l);
            b_word |= u32::from(signs & 0x7F) << (7 * l);
        }
        b.qs[8 * g..8 * g + 4].copy_from_slice(&a_word.to_le_bytes());
        b.qs[8 * g + 4..8 * g + 8].copy_from_slice(&b_word.to_le_bytes());
    }
    b
}

fn grid_err(grid: u64, v: &[f32], db: f32) -> f32 {
    grid.to_le_bytes()
        .iter()
        .zip(v)
        .map(|(&m, &e)| {
            let diff = db * f32::from(m) - e.abs();
            diff * diff
        })
        .sum()
}
