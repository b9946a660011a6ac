//! AVX2 kernels for the types paired with Q8_K activations: Q2_K, Q4_K, Q6_K
//! and IQ2_XXS.
//!
//! Weights are first unpacked into the common [`SbUnpacked`] form (one SIMD
//! unpacker per type, checked against the portable `Unpack::unpack_ref`),
//! then one integer kernel multiplies unpacked super-blocks with up to four
//! activation rows: `maddubs(u, a)` pairs, `madd` with the pre-broadcast
//! sub-block scales, exact i32 sums per super-block, then the bias and min
//! terms from the activation sums (`madd(bsums, bias|mins)`), and one f32
//! multiply-add per super-block and token. The packing rules reproduced here
//! are those of ggml `ggml-common.h` / `ggml-quants.c` at llama.cpp
//! `0c1e57098` (see the block modules).
//!
//! Safety contract of every `unsafe fn` here: the CPU supports AVX2, FMA and
//! F16C, and pointers/lengths describe validated whole super-blocks.

use std::arch::x86_64::*;

use crate::kernels::unpack::SbUnpacked;
use crate::tables::IQ2XXS_GRID;

use super::q8_0fam::f16_at;

/// `pshufb` controls that spread byte `2c` over the low 128-bit lane and byte
/// `2c + 1` over the high lane (for pre-broadcasting 16 sub-block scales).
pub(crate) static PAIR_CTRL: [[u8; 32]; 8] = build_pair_ctrl();
/// `pshufb` controls that spread byte `c` over both lanes (Q4_K: one scale per
/// 32-element chunk).
static SAME_CTRL: [[u8; 32]; 8] = build_same_ctrl();

const fn build_pair_ctrl() -> [[u8; 32]; 8] {
    let mut out = [[0u8; 32]; 8];
    let mut c = 0;
    while c < 8 {
        let mut i = 0;
        while i < 16 {
            out[c][i] = 2 * c as u8;
            out[c][16 + i] = 2 * c as u8 + 1;
            i += 1;
        }
        c += 1;
    }
    out
}

const fn build_same_ctrl() -> [[u8; 32]; 8] {
    let mut out = [[0u8; 32]; 8];
    let mut c = 0;
    while c < 8 {
        let mut i = 0;
        while i < 32 {
            out[c][i] = c as u8;
            i += 1;
        }
        c += 1;
    }
    out
}

/// A Q8_K-paired weight type with an AVX2 unpacker.
pub(crate) trait Avx2Unpack {
    /// Bytes per super-block.
    const BYTES: usize;
    /// Whether the type has a min term.
    const MIN: bool;
    /// Whether the type has a code offset.
    const BIAS: bool;
    /// Whether each scale covers 32 elements (two sub-blocks of 16).
    const SCALE32: bool = false;
    /// Whether every code times its sub-block scale fits a byte (Q2_K:
    /// `3 · 15 = 45`), so the scales can be folded into the codes
    /// ([`super::tlk::fold_scales`]).
    const FOLDABLE: bool = false;
    /// Unpacks the super-block at `p` into `out`.
    unsafe fn unpack(p: *const u8, out: &mut SbUnpacked);
    /// Fused row × `T` tokens kernel (see [`super::q8k_fused`]).
    unsafe fn fused<const T: usize>(row: *const u8, nsb: usize, toks: &[Q8KTok; T]) -> [f32; T];
}

/// Stores 32 bytes at element offset `at` of `out.u`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn put_u(out: &mut SbUnpacked, at: usize, v: __m256i) {
    let dst = &mut out.u[at..at + 32];
    // SAFETY: `dst` is 32 writable bytes.
    unsafe { _mm256_storeu_si256(dst.as_mut_ptr().cast(), v) }
}

/// Stores 16 i16 lanes at lane offset `at` of `dst`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn put_i16(dst: &mut [i16], at: usize, v: __m256i) {
    let d = &mut dst[at..at + 16];
    // SAFETY: `d` is 16 writable i16.
    unsafe { _mm256_storeu_si256(d.as_mut_ptr().cast(), v) }
}

/// Stores the 16 sub-block scales as i32 (`lo`: sub-blocks 0..8, `hi`: 8..16).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn put_sc32(out: &mut SbUnpacked, lo: __m256i, hi: __m256i) {
    let d = &mut out.sc32;
    // SAFETY: `sc32` is 16 writable i32.
    unsafe {
        _mm256_storeu_si256(d.as_mut_ptr().cast(), lo);
        _mm256_storeu_si256(d.as_mut_ptr().add(8).cast(), hi);
    }
}

/// Pre-broadcast scales from 16 scale bytes (`signed`: sign-extend them).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn put_pair_scales(out: &mut SbUnpacked, bytes16: __m128i, signed: bool) {
    let b = _mm256_broadcastsi128_si256(bytes16);
    for c in 0..8 {
        // SAFETY: `PAIR_CTRL[c]` is 32 readable bytes.
        let ctrl = unsafe { _mm256_loadu_si256(PAIR_CTRL[c].as_ptr().cast()) };
        // Each i16 lane holds the byte twice; shift it down (with its sign).
        let dup = _mm256_shuffle_epi8(b, ctrl);
        let v = if signed {
            _mm256_srai_epi16::<8>(dup)
        } else {
            _mm256_srli_epi16::<8>(dup)
        };
        put_i16(&mut out.sc, 16 * c, v);
    }
}

/// `pshufb` control and bit masks that map the 28 stored sign bits of an
/// IQ2_XXS group (bits `7l + j` of its `b` word, `j < 7`) onto the bytes of
/// elements `8l + j`; byte `8l + 7` (the parity sign) gets control 0x80 and a
/// mask that never matches.
static SIGN_CTRL: [u8; 32] = build_sign_tables().0;
static SIGN_MASK: [u8; 32] = build_sign_tables().1;

const fn build_sign_tables() -> ([u8; 32], [u8; 32]) {
    let mut ctrl = [0x80u8; 32];
    let mut mask = [1u8; 32];
    let mut e = 0;
    while e < 32 {
        let (l, j) = (e / 8, e % 8);
        if j < 7 {
            let bit = 7 * l + j;
            ctrl[e] = (bit / 8) as u8;
            mask[e] = 1 << (bit % 8);
        }
        e += 1;
    }
    (ctrl, mask)
}

/// Sign masks (0xFF = negative) of the 32 elements of an IQ2_XXS group from
/// its `b` word, computed instead of looked up: seven stored bits per eight
/// elements, the eighth is their parity (`ksigns_iq2xs`'s rule).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn iq2_signs(b: u32) -> __m256i {
    // SAFETY: both tables are 32 readable bytes.
    let (ctrl, mask) = unsafe {
        (
            _mm256_loadu_si256(SIGN_CTRL.as_ptr().cast()),
            _mm256_loadu_si256(SIGN_MASK.as_ptr().cast()),
        )
    };
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(b as i32), ctrl);
    let m = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, mask), mask);
    // Count the negatives among the seven stored signs of each 8-byte group;
    // an odd count makes the eighth element negative.
    let cnt = _mm256_sad_epu8(
        _mm256_and_si256(m, _mm256_set1_epi8(1)),
        _mm256_setzero_si256(),
    );
    let parity = _mm256_srai_epi32::<7>(_mm256_slli_epi64::<63>(cnt));
    _mm256_or_si256(m, parity)
}

/// Q2_K.
pub(crate) struct UnQ2K;
/// Q4_K.
pub(crate) struct UnQ4K;
/// Q6_K.
pub(crate) struct UnQ6K;
/// IQ2_XXS.
pub(crate) struct UnIq2Xxs;

impl Avx2Unpack for UnQ2K {
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn fused<const T: usize>(row: *const u8, nsb: usize, toks: &[Q8KTok; T]) -> [f32; T] {
        // SAFETY: forwarded contract.
        unsafe { super::q8k_fused::tile_q2k::<T>(row, nsb, toks) }
    }
    const BYTES: usize = 84;
    const MIN: bool = true;
    const BIAS: bool = false;
    // Codes are 2-bit, scales 4-bit nibbles: products ≤ 45.
    const FOLDABLE: bool = true;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn unpack(p: *const u8, out: &mut SbUnpacked) {
        let m3 = _mm256_set1_epi8(3);
        for h in 0..2 {
            // SAFETY: bytes 16..80 of the block are the codes.
            let q = unsafe { _mm256_loadu_si256(p.add(16 + 32 * h).cast()) };
            put_u(out, 128 * h, _mm256_and_si256(q, m3));
            put_u(
                out,
                128 * h + 32,
                _mm256_and_si256(_mm256_srli_epi16::<2>(q), m3),
            );
            put_u(
                out,
                128 * h + 64,
                _mm256_and_si256(_mm256_srli_epi16::<4>(q), m3),
            );
            put_u(
                out,
                128 * h + 96,
                _mm256_and_si256(_mm256_srli_epi16::<6>(q), m3),
            );
        }
        // SAFETY: bytes 0..16 are the scales, 80..84 the two f16 factors.
        let (sc, d, dmin) = unsafe {
            (
                _mm_loadu_si128(p.cast()),
                f16_at(p.add(80)),
                f16_at(p.add(82)),
            )
        };
        let m4 = _mm_set1_epi8(0x0F);
        let sc_lo = _mm_and_si128(sc, m4);
        put_pair_scales(out, sc_lo, false);
        put_sc32(
            out,
            _mm256_cvtepu8_epi32(sc_lo),
            _mm256_cvtepu8_epi32(_mm_srli_si128::<8>(sc_lo)),
        );
        let mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(sc), m4));
        put_i16(&mut out.mins, 0, mins);
        out.d = d;
        out.dmin = dmin;
        out.off = 0;
    }
}

impl Avx2Unpack for UnQ4K {
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn fused<const T: usize>(row: *const u8, nsb: usize, toks: &[Q8KTok; T]) -> [f32; T] {
        // SAFETY: forwarded contract.
        unsafe { super::q8k_fused::tile_q4k::<T>(row, nsb, toks) }
    }
    const BYTES: usize = 144;
    const MIN: bool = true;
    const BIAS: bool = false;
    const SCALE32: bool = true;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn unpack(p: *const u8, out: &mut SbUnpacked) {
        let m4 = _mm256_set1_epi8(0x0F);
        for c in 0..4 {
            // SAFETY: bytes 16..144 of the block are the codes.
            let q = unsafe { _mm256_loadu_si256(p.add(16 + 32 * c).cast()) };
            put_u(out, 64 * c, _mm256_and_si256(q, m4));
            put_u(
                out,
                64 * c + 32,
                _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4),
            );
        }
        // Unpack the twelve 6-bit scale/min bytes as ggml's kernels do with
        // `kmask1..3` (`ggml-cpu/arch/x86/quants.c`): eight scales, eight mins.
        // SAFETY: bytes 4..16 are the packed scales, 0..4 the two f16 factors.
        let (s0, s1, s2, d, dmin) = unsafe {
            let s = p.add(4).cast::<u32>();
            (
                s.read_unaligned(),
                s.add(1).read_unaligned(),
                s.add(2).read_unaligned(),
                f16_at(p),
                f16_at(p.add(2)),
            )
        };
        const K1: u32 = 0x3f3f_3f3f;
        const K2: u32 = 0x0f0f_0f0f;
        const K3: u32 = 0x0303_0303;
        let scales = [s0 & K1, (s2 & K2) | (((s0 >> 6) & K3) << 4)];
        let mins = [s1 & K1, ((s2 >> 4) & K2) | (((s1 >> 6) & K3) << 4)];
        let sc8 = _mm_set_epi32(0, 0, scales[1] as i32, scales[0] as i32);
        // Sub-block `i` has the scale of 32-element chunk `i / 2`.
        let sc16 = _mm_unpacklo_epi8(sc8, sc8);
        put_sc32(
            out,
            _mm256_cvtepu8_epi32(sc16),
            _mm256_cvtepu8_epi32(_mm_srli_si128::<8>(sc16)),
        );
        let b = _mm256_broadcastsi128_si256(sc8);
        for c in 0..8 {
            // SAFETY: `SAME_CTRL[c]` is 32 readable bytes.
            let ctrl = unsafe { _mm256_loadu_si256(SAME_CTRL[c].as_ptr().cast()) };
            put_i16(
                &mut out.sc,
                16 * c,
                _mm256_srli_epi16::<8>(_mm256_shuffle_epi8(b, ctrl)),
            );
        }
        // mins16[i] = m[i / 2]: duplicate each byte, then widen.
        let m8 = _mm_set_epi32(0, 0, mins[1] as i32, mins[0] as i32);
        let dup = _mm_unpacklo_epi8(m8, m8);
        put_i16(&mut out.mins, 0, _mm256_cvtepu8_epi16(dup));
        out.d = d;
        out.dmin = dmin;
        out.off = 0;
    }
}

impl Avx2Unpack for UnQ6K {
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn fused<const T: usize>(row: *const u8, nsb: usize, toks: &[Q8KTok; T]) -> [f32; T] {
        // SAFETY: forwarded contract.
        unsafe { super::q8k_fused::tile_q6k::<T>(row, nsb, toks) }
    }
    const BYTES: usize = 210;
    const MIN: bool = false;
    const BIAS: bool = true;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn unpack(p: *const u8, out: &mut SbUnpacked) {
        let m4 = _mm256_set1_epi8(0x0F);
        let m30 = _mm256_set1_epi8(0x30);
        for h in 0..2 {
            // SAFETY: `ql` is bytes 0..128, `qh` 128..192.
            let (ql0, ql1, qh) = unsafe {
                (
                    _mm256_loadu_si256(p.add(64 * h).cast()),
                    _mm256_loadu_si256(p.add(64 * h + 32).cast()),
                    _mm256_loadu_si256(p.add(128 + 32 * h).cast()),
                )
            };
            // The 16-bit shifts move bits across bytes; the masks keep only
            // each byte's own bits (see the module table of `blocks::q6_k`).
            let hi0 = _mm256_and_si256(_mm256_slli_epi16::<4>(qh), m30);
            let hi1 = _mm256_and_si256(_mm256_slli_epi16::<2>(qh), m30);
            let hi2 = _mm256_and_si256(qh, m30);
            let hi3 = _mm256_and_si256(_mm256_srli_epi16::<2>(qh), m30);
            put_u(
                out,
                128 * h,
                _mm256_or_si256(_mm256_and_si256(ql0, m4), hi0),
            );
            put_u(
                out,
                128 * h + 32,
                _mm256_or_si256(_mm256_and_si256(ql1, m4), hi1),
            );
            let lo2 = _mm256_and_si256(_mm256_srli_epi16::<4>(ql0), m4);
            let lo3 = _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), m4);
            put_u(out, 128 * h + 64, _mm256_or_si256(lo2, hi2));
            put_u(out, 128 * h + 96, _mm256_or_si256(lo3, hi3));
        }
        // SAFETY: scales are bytes 192..208, the f16 factor 208..210.
        let (sc, d) = unsafe { (_mm_loadu_si128(p.add(192).cast()), f16_at(p.add(208))) };
        put_pair_scales(out, sc, true);
        put_sc32(
            out,
            _mm256_cvtepi8_epi32(sc),
            _mm256_cvtepi8_epi32(_mm_srli_si128::<8>(sc)),
        );
        put_i16(
            &mut out.bias,
            0,
            _mm256_slli_epi16::<5>(_mm256_cvtepi8_epi16(sc)),
        );
        out.d = d;
        out.dmin = 0.0;
        out.off = 32;
    }
}

impl Avx2Unpack for UnIq2Xxs {
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn fused<const T: usize>(row: *const u8, nsb: usize, toks: &[Q8KTok; T]) -> [f32; T] {
        // SAFETY: forwarded contract.
        unsafe { super::q8k_fused::tile_iq2xxs::<T>(row, nsb, toks) }
    }
    const BYTES: usize = 66;
    const MIN: bool = false;
    const BIAS: bool = true;
    const SCALE32: bool = true;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn unpack(p: *const u8, out: &mut SbUnpacked) {
        let off = _mm256_set1_epi8(43);
        let grid = &IQ2XXS_GRID;
        for g in 0..8 {
            // SAFETY: group `g` is bytes 2 + 8g .. 2 + 8g + 8 of the block.
            let (a, b) = unsafe {
                let q = p.add(2 + 8 * g).cast::<u32>();
                (q.read_unaligned(), q.add(1).read_unaligned())
            };
            let gi = |l: u32| grid[((a >> (8 * l)) & 0xFF) as usize] as i64;
            let mag = _mm256_set_epi64x(gi(3), gi(2), gi(1), gi(0));
            let neg = iq2_signs(b);
            // (m ^ s) − s negates where the mask is all-ones; then add 43.
            let w = _mm256_sub_epi8(_mm256_xor_si256(mag, neg), neg);
            put_u(out, 32 * g, _mm256_add_epi8(w, off));
            let ls = 2 * (b >> 28) as i16 + 1;
            put_i16(&mut out.sc, 16 * g, _mm256_set1_epi16(ls));
            out.sc32[2 * g] = i32::from(ls);
            out.sc32[2 * g + 1] = i32::from(ls);
            out.bias[2 * g] = 43 * ls;
            out.bias[2 * g + 1] = 43 * ls;
        }
        // SAFETY: bytes 0..2 are the f16 super-scale.
        out.d = unsafe { f16_at(p) } * 0.125;
        out.dmin = 0.0;
        out.off = 43;
    }
}

/// Activation row pointers of one token: `qs` (256 per super-block), `d` (1
/// per super-block), `bs` (16 per super-block).
#[derive(Clone, Copy)]
pub(crate) struct Q8KTok {
    pub qs: *const i8,
    pub d: *const f32,
    pub bs: *const i16,
}

/// Dequantizes an unpacked super-block into 256 floats at `dst`, bit-identical
/// to the reference (`(d · sc) · float(u − off) − dmin · min`, no FMA).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dequant_unpacked<const MIN: bool>(s: &SbUnpacked, dst: *mut f32) {
    let off = _mm256_set1_epi32(s.off);
    for i in 0..16 {
        let dl = _mm256_set1_ps(s.d * f32::from(s.scale(i)));
        let ml = _mm256_set1_ps(s.dmin * f32::from(s.mins[i]));
        for h in 0..2 {
            // SAFETY: 8 codes at `16i + 8h` are in `s.u`; `dst` has 256 floats.
            unsafe {
                let u8s = _mm_loadl_epi64(s.u.as_ptr().add(16 * i + 8 * h).cast());
                let q = _mm256_sub_epi32(_mm256_cvtepu8_epi32(u8s), off);
                let mut v = _mm256_mul_ps(dl, _mm256_cvtepi32_ps(q));
                if MIN {
                    v = _mm256_sub_ps(v, ml);
                }
                _mm256_storeu_ps(dst.add(16 * i + 8 * h), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::{BlockIq2Xxs, BlockQ2K, BlockQ4K, BlockQ6K};
    use crate::kernels::unpack::Unpack;
    use bytemuck::Zeroable;

    fn bytes(n: usize, mut s: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as u8
            })
            .collect()
    }

    fn check<B: Unpack, U: Avx2Unpack>(seed: u64) {
        let size = std::mem::size_of::<B>();
        assert_eq!(size, U::BYTES);
        assert_eq!((B::MIN, B::BIAS), (U::MIN, U::BIAS));
        let raw = bytes(64 * size, seed);
        for blk in raw.chunks_exact(size) {
            let b: &B = bytemuck::from_bytes(blk);
            let mut want = SbUnpacked::zeroed();
            b.unpack_ref(&mut want);
            let mut got = SbUnpacked::zeroed();
            // SAFETY: AVX2/FMA/F16C checked by the caller; `blk` is one block.
            unsafe { U::unpack(blk.as_ptr(), &mut got) };
            // Scales are compared by value so NaN scale bits (random f16) pass.
            assert_eq!(got.u, want.u, "{:?} codes", B::TYPE);
            assert_eq!(got.sc, want.sc, "{:?} scales", B::TYPE);
            assert_eq!(got.sc32, want.sc32, "{:?} i32 scales", B::TYPE);
            assert_eq!(got.bias, want.bias, "{:?} bias", B::TYPE);
            assert_eq!(got.mins, want.mins, "{:?} mins", B::TYPE);
            assert_eq!(got.off, want.off);
            assert_eq!(got.d.to_bits(), want.d.to_bits(), "{:?} d", B::TYPE);
            assert_eq!(
                got.dmin.to_bits(),
                want.dmin.to_bits(),
                "{:?} dmin",
                B::TYPE
            );
        }
    }

    #[test]
    fn computed_iq2_signs_match_the_table() {
        if !is_x86_feature_detected!("avx2") {
            return;
        }
        for seed in 0..2000u64 {
            let b = (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32;
            // SAFETY: AVX2 checked above (FMA/F16C are not used by the helper).
            let got: [u64; 4] = unsafe { std::mem::transmute(iq2_signs(b)) };
            for (l, g) in got.iter().enumerate() {
                let want = crate::tables::KSIGNS64[((b >> (7 * l)) & 127) as usize];
                assert_eq!(*g, want, "b = {b:#x}, group {l}");
            }
        }
    }

    #[test]
    fn simd_unpackers_match_the_portable_one() {
        if !(is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c"))
        {
            return;
        }
        check::<BlockQ2K, UnQ2K>(11);
        check::<BlockQ4K, UnQ4K>(12);
        check::<BlockQ6K, UnQ6K>(13);
        check::<BlockIq2Xxs, UnIq2Xxs>(14);
    }
}
