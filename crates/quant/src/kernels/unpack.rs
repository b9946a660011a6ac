//! The unpacked super-block: one common form for every Q8_K-paired weight type
//! (Q2_K, Q4_K, Q6_K, IQ2_XXS), so that a single integer dot-product kernel
//! per ISA serves all of them.
//!
//! A super-block of 256 weights `w_j` (integers) with 16-element sub-block
//! scales becomes unsigned codes `u_j = w_j + off` (so `maddubs` can take them
//! as its unsigned operand), integer sub-block scales `sc_i`, and two per-16
//! multipliers of the activation sums: `bias_i = off · sc_i` and (for types
//! with mins) `min_i`. For activations `a` with per-16 sums `bsum_i` and scale
//! `d_a`, the block's contribution is exactly
//!
//! `d · d_a · (Σ_i sc_i Σ_{j∈i} u_j a_j − Σ_i bias_i bsum_i) − dmin · d_a · Σ_i min_i bsum_i`,
//!
//! the same integers as the per-type reference (`Σ u a − off Σ a = Σ w a`).
//! Per type: Q2_K `u = q`, `sc = scale nibble`, `min = min nibble`; Q4_K `u =
//! q`, `sc`/`min` the 6-bit values of the 32-element sub-block (repeated for
//! both halves); Q6_K `u = q` (0..63), `off = 32`, `sc` the signed scale;
//! IQ2_XXS `u = ±grid + 43`, `sc = 2s + 1`, `d = d_w / 8`.
//!
//! `sc32` holds the 16 scales once each (for the tokens-in-lanes kernels);
//! `sc` stores them pre-broadcast for the `madd` step: the 16 i16 lanes of chunk
//! `c` (elements `32c .. 32c + 31`) hold `sc_{2c}` eight times then
//! `sc_{2c+1}` eight times, matching the lanes of `maddubs` output; 32
//! consecutive lanes serve a 64-element AVX-512 chunk the same way.
//!
//! [`Unpack::unpack_ref`] is the portable unpacker (used on NEON and as the
//! reference the SIMD unpackers are tested against); [`dequant_unpacked`]
//! turns an unpacked block back into floats bit-identically to the types'
//! reference dequantizers.

use bytemuck::Zeroable;

use crate::blocks::QK_K;
#[cfg(any(test, target_arch = "aarch64"))]
use crate::blocks::q4_k::scale_min_k4;
#[cfg(any(test, target_arch = "aarch64"))]
use crate::blocks::{BlockIq2Xxs, BlockQ2K, BlockQ4K, BlockQ6K, QuantBlock, f16_le};

/// One unpacked super-block (see the module docs).
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq, Zeroable)]
pub(crate) struct SbUnpacked {
    /// Offset codes `w + off`, in element order.
    pub u: [u8; QK_K],
    /// Pre-broadcast sub-block scales, 16 lanes per 32-element chunk.
    pub sc: [i16; 128],
    /// The sub-block scales once each, as i32 (the tokens-in-lanes kernels
    /// broadcast them).
    pub sc32: [i32; 16],
    /// `off · sc_i` per 16-element sub-block.
    pub bias: [i16; 16],
    /// Min multiplier per 16-element sub-block (zero for types without mins).
    pub mins: [i16; 16],
    /// Factor of the main sum.
    pub d: f32,
    /// Factor of the min sum.
    pub dmin: f32,
    /// The code offset `off`.
    pub off: i32,
}

impl SbUnpacked {
    /// Integer scale of sub-block `i` (0..16).
    #[inline]
    pub(crate) fn scale(&self, i: usize) -> i16 {
        self.sc[16 * (i / 2) + 8 * (i % 2)]
    }

    /// Fills `sc` from 16 per-sub-block scales.
    #[inline]
    #[cfg(any(test, target_arch = "aarch64"))]
    pub(crate) fn set_scales(&mut self, s16: &[i16; 16]) {
        for (d, &v) in self.sc32.iter_mut().zip(s16) {
            *d = i32::from(v);
        }
        for c in 0..8 {
            self.sc[16 * c..16 * c + 8].fill(s16[2 * c]);
            self.sc[16 * c + 8..16 * c + 16].fill(s16[2 * c + 1]);
        }
    }
}

/// A Q8_K-paired block type that unpacks to [`SbUnpacked`] (the NEON kernels'
/// unpacker and, on x86, the reference of the SIMD unpackers' tests).
#[cfg(any(test, target_arch = "aarch64"))]
pub(crate) trait Unpack: QuantBlock {
    /// Whether the type has a min term.
    const MIN: bool;
    /// Whether the type has a code offset (bias term).
    const BIAS: bool;
    /// Portable unpacker.
    fn unpack_ref(&self, out: &mut SbUnpacked);
}

#[cfg(any(test, target_arch = "aarch64"))]
impl Unpack for BlockQ2K {
    const MIN: bool = true;
    const BIAS: bool = false;
    fn unpack_ref(&self, out: &mut SbUnpacked) {
        for (j, u) in out.u.iter_mut().enumerate() {
            *u = self.code(j);
        }
        let mut s16 = [0i16; 16];
        for i in 0..16 {
            s16[i] = i16::from(self.scales[i] & 0xF);
            out.mins[i] = i16::from(self.scales[i] >> 4);
        }
        out.set_scales(&s16);
        out.bias = [0; 16];
        out.d = f16_le(self.d);
        out.dmin = f16_le(self.dmin);
        out.off = 0;
    }
}

#[cfg(any(test, target_arch = "aarch64"))]
impl Unpack for BlockQ4K {
    const MIN: bool = true;
    const BIAS: bool = false;
    fn unpack_ref(&self, out: &mut SbUnpacked) {
        for (j, u) in out.u.iter_mut().enumerate() {
            *u = self.code(j);
        }
        let mut s16 = [0i16; 16];
        for i in 0..16 {
            let (sc, m) = scale_min_k4(i / 2, &self.scales);
            s16[i] = i16::from(sc);
            out.mins[i] = i16::from(m);
        }
        out.set_scales(&s16);
        out.bias = [0; 16];
        out.d = f16_le(self.d);
        out.dmin = f16_le(self.dmin);
        out.off = 0;
    }
}

#[cfg(any(test, target_arch = "aarch64"))]
impl Unpack for BlockQ6K {
    const MIN: bool = false;
    const BIAS: bool = true;
    fn unpack_ref(&self, out: &mut SbUnpacked) {
        for (j, u) in out.u.iter_mut().enumerate() {
            *u = self.code(j);
        }
        let mut s16 = [0i16; 16];
        for i in 0..16 {
            s16[i] = i16::from(self.scales[i]);
            out.bias[i] = 32 * s16[i];
        }
        out.set_scales(&s16);
        out.mins = [0; 16];
        out.d = f16_le(self.d);
        out.dmin = 0.0;
        out.off = 32;
    }
}

#[cfg(any(test, target_arch = "aarch64"))]
impl Unpack for BlockIq2Xxs {
    const MIN: bool = false;
    const BIAS: bool = true;
    fn unpack_ref(&self, out: &mut SbUnpacked) {
        let mut s16 = [0i16; 16];
        for g in 0..8 {
            let (_, b) = self.words(g);
            let ls = 2 * (b >> 28) as i16 + 1;
            s16[2 * g] = ls;
            s16[2 * g + 1] = ls;
            out.bias[2 * g] = 43 * ls;
            out.bias[2 * g + 1] = 43 * ls;
            for l in 0..4 {
                for j in 0..8 {
                    out.u[32 * g + 8 * l + j] = (self.signed_grid(g, l, j) + 43) as u8;
                }
            }
        }
        out.set_scales(&s16);
        out.mins = [0; 16];
        out.d = f16_le(self.d) * 0.125;
        out.dmin = 0.0;
        out.off = 43;
    }
}

/// Dequantizes an unpacked block into 256 floats, bit-identically to the
/// source type's reference: `(d · sc_i) · float(u − off) − (dmin · min_i)`,
/// the subtraction only for types with mins. (For IQ2_XXS, `(d/8) · (2s + 1)`
/// equals ggml's `d · (0.5 + s) · 0.25` exactly: scaling by a power of two
/// commutes with rounding.)
#[cfg(test)]
pub(crate) fn dequant_unpacked<const MIN: bool>(s: &SbUnpacked, out: &mut [f32]) {
    for i in 0..16 {
        let dl = s.d * f32::from(s.scale(i));
        let ml = s.dmin * f32::from(s.mins[i]);
        for j in 16 * i..16 * i + 16 {
            let v = dl * (i32::from(s.u[j]) - s.off) as f32;
            out[j] = if MIN { v - ml } else { v };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::dequantize_blocks_ref;

    fn check<B: Unpack>(blocks: &[B]) {
        for b in blocks {
            let mut s = SbUnpacked::zeroed();
            b.unpack_ref(&mut s);
            let mut want = [0.0f32; QK_K];
            dequantize_blocks_ref(std::slice::from_ref(b), &mut want);
            let mut got = [0.0f32; QK_K];
            if B::MIN {
                dequant_unpacked::<true>(&s, &mut got);
            } else {
                dequant_unpacked::<false>(&s, &mut got);
            }
            for j in 0..QK_K {
                assert_eq!(
                    got[j].to_bits(),
                    want[j].to_bits(),
                    "{:?} element {j}",
                    B::TYPE
                );
            }
        }
    }

    fn pseudo_random_bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn blocks_with_finite_scales<B: QuantBlock>(seed: u64, scale_offsets: &[usize]) -> Vec<B> {
        let size = std::mem::size_of::<B>();
        let mut bytes = pseudo_random_bytes(32 * size, seed);
        for blk in bytes.chunks_exact_mut(size) {
            for &o in scale_offsets {
                // f16 with exponent field ≤ 0x1D: finite, moderate.
                blk[o + 1] &= 0x77;
            }
        }
        bytemuck::cast_slice(&bytes).to_vec()
    }

    #[test]
    fn unpacked_blocks_dequantize_like_the_reference() {
        check::<BlockQ2K>(&blocks_with_finite_scales(1, &[80, 82]));
        check::<BlockQ4K>(&blocks_with_finite_scales(2, &[0, 2]));
        check::<BlockQ6K>(&blocks_with_finite_scales(3, &[208]));
        check::<BlockIq2Xxs>(&blocks_with_finite_scales(4, &[0]));
    }
}
