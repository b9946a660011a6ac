//! Q8_K: the activation format of the k-quants and IQ2_XXS, 256 elements in
//! 292 bytes (9.125 bits per value).
//!
//! Layout (`block_q8_K` in ggml `ggml-common.h`, llama.cpp `0c1e57098`):
//!
//! | offset | bytes | field | meaning |
//! |---:|---:|---|---|
//! | 0 | 4 | `d` | f32 scale (negative when the largest-magnitude value is positive) |
//! | 4 | 256 | `qs` | i8 codes in −127..=127; element `j` = `d · qs[j]` |
//! | 260 | 32 | `bsums` | i16 sums of the codes of elements `16i .. 16i + 15` |
//!
//! The quantizer is ggml's `quantize_row_q8_K_ref`: with `max` the value of
//! largest magnitude (sign kept, first one on ties), `iscale = −127 / max`,
//! codes `min(127, nearest_int(iscale · x))` (round half to even), `d = 1 /
//! iscale`. The −127 keeps codes in −127..=127, which the sign tricks of the
//! SIMD kernels rely on. An all-zero block gets `d = 0`, zero codes and zero
//! sums (ggml leaves `bsums` unwritten there).
//!
//! The kernels keep Q8_K activations in a planar layout instead
//! ([`crate::act::Q8KRow`]): the same values, with codes, scales and sums in
//! separate aligned arrays. This struct is the interchange form.

use bytemuck::{Pod, Zeroable};

use super::{QK_K, nearest_int};

/// One Q8_K block.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ8K {
    /// Scale.
    pub d: f32,
    /// Codes.
    pub qs: [i8; QK_K],
    /// Per-16 sums of `qs`.
    pub bsums: [i16; QK_K / 16],
}

const _: () = assert!(std::mem::size_of::<BlockQ8K>() == 292);

impl BlockQ8K {
    /// Writes the 256 values `d · qs[j]` to `out`.
    pub fn dequantize(&self, out: &mut [f32]) {
        for (o, &q) in out[..QK_K].iter_mut().zip(&self.qs) {
            *o = self.d * f32::from(q);
        }
    }
}

/// Quantizes 256 values into `qs` (256) and `bsums` (16); returns `d`.
#[inline]
pub fn quantize_q8k_block(x: &[f32], qs: &mut [i8], bsums: &mut [i16]) -> f32 {
    let (x, qs, bsums) = (&x[..QK_K], &mut qs[..QK_K], &mut bsums[..QK_K / 16]);
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax == 0.0 {
        qs.fill(0);
        bsums.fill(0);
        return 0.0;
    }
    let iscale = -127.0 / max;
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = nearest_int(iscale * v).min(127) as i8;
    }
    for (s, chunk) in bsums.iter_mut().zip(qs.chunks_exact(16)) {
        *s = chunk.iter().map(|&q| i16::from(q)).sum();
    }
    1.0 / iscale
}

/// Quantizes a row (`x.len() == 256 · out.len()`).
pub fn quantize_row_q8k(x: &[f32], out: &mut [BlockQ8K]) {
    for (xb, b) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
        b.d = quantize_q8k_block(xb, &mut b.qs, &mut b.bsums);
    }
}
