//! AVX2 kernels for the 32-element types paired with Q8_0 activations: Q8_0,
//! Q4_0 and MXFP4.
//!
//! Each weight block is decoded once into 32 signed bytes plus an f32 scale
//! ([`Dec32`]) and multiplied with up to four activation rows while it is in
//! registers. The integer product uses ggml's sign trick
//! (`maddubs(|w|, sign(a, w))`, see `ggml-cpu/arch/x86/quants.c` at llama.cpp
//! `0c1e57098`): exact i32 block sums, which are then converted and scaled by
//! `d_w · d_a` in f32. Only the float accumulation order differs from the
//! scalar reference.
//!
//! Safety contract of every `unsafe fn` here: the CPU supports AVX2, FMA and
//! F16C (guaranteed by the kernel table), and the pointers/lengths describe
//! validated rows (`nb` whole blocks, activations of `32 · nb` codes and `nb`
//! scales).

use std::arch::x86_64::*;

use crate::kernels::avx2::prefetch_ahead;
use crate::tables::{KVALUES_MXFP4, e8m0_to_f32_half};

/// A 32-element weight block that decodes to i8 values and an f32 scale.
pub(crate) trait Dec32 {
    /// Bytes per block.
    const BYTES: usize;
    /// Whether the block stores its 32 signed codes verbatim at byte offset 2
    /// (Q8_0), so kernels can read them in place instead of decoding.
    const RAW: bool = false;
    /// Offset that makes every code non-negative: [`Dec32::load_u`] returns
    /// `w + OFF` as unsigned bytes.
    const OFF: i32;
    /// Decodes the block at `p` (`BYTES` readable bytes).
    unsafe fn load(p: *const u8) -> (__m256i, f32);
    /// Decodes the block at `p` to unsigned codes `w + OFF` and the scale.
    unsafe fn load_u(p: *const u8) -> (__m256i, f32);
}

/// Reads a little-endian f16 at `p` (2 readable bytes) as f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn f16_at(p: *const u8) -> f32 {
    // SAFETY: the caller guarantees two readable bytes at `p`.
    let bits = unsafe { p.cast::<u16>().read_unaligned() };
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}

/// Splits 16 bytes of nibbles into 32 bytes: low nibbles first, then high.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibbles(p: *const u8) -> __m256i {
    // SAFETY: the caller guarantees 16 readable bytes at `p`.
    let q = unsafe { _mm_loadu_si128(p.cast()) };
    let m4 = _mm_set1_epi8(0x0F);
    let lo = _mm_and_si128(q, m4);
    let hi = _mm_and_si128(_mm_srli_epi16::<4>(q), m4);
    _mm256_set_m128i(hi, lo)
}

/// Q8_0 weights.
pub(crate) struct DecQ8_0;
/// Q4_0 weights.
pub(crate) struct DecQ4_0;
/// MXFP4 weights.
pub(crate) struct DecMxfp4;

impl Dec32 for DecQ8_0 {
    const BYTES: usize = 34;
    const RAW: bool = true;
    const OFF: i32 = 128;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load(p: *const u8) -> (__m256i, f32) {
        // SAFETY: a Q8_0 block is 34 bytes: f16 scale, then 32 codes.
        unsafe { (_mm256_loadu_si256(p.add(2).cast()), f16_at(p)) }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load_u(p: *const u8) -> (__m256i, f32) {
        // SAFETY: as `load`; `w ^ 0x80 = w + 128` as unsigned bytes.
        unsafe {
            let (w, d) = Self::load(p);
            (_mm256_xor_si256(w, _mm256_set1_epi8(-128)), d)
        }
    }
}

impl Dec32 for DecQ4_0 {
    const BYTES: usize = 18;
    const OFF: i32 = 8;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load_u(p: *const u8) -> (__m256i, f32) {
        // SAFETY: a Q4_0 block is 18 bytes: f16 scale, then 16 nibble bytes;
        // the nibbles are `w + 8`.
        unsafe { (nibbles(p.add(2)), f16_at(p)) }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load(p: *const u8) -> (__m256i, f32) {
        // SAFETY: a Q4_0 block is 18 bytes: f16 scale, then 16 nibble bytes.
        unsafe {
            (
                _mm256_sub_epi8(nibbles(p.add(2)), _mm256_set1_epi8(8)),
                f16_at(p),
            )
        }
    }
}

/// [`KVALUES_MXFP4`] plus 12: the MXFP4 values as unsigned codes (0..=24).
static KVALUES_MXFP4_U: [u8; 16] = {
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        out[i] = (KVALUES_MXFP4[i] + 12) as u8;
        i += 1;
    }
    out
};

impl Dec32 for DecMxfp4 {
    const BYTES: usize = 17;
    const OFF: i32 = 12;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load_u(p: *const u8) -> (__m256i, f32) {
        // SAFETY: the table is 16 bytes; an MXFP4 block is 17 bytes: the
        // exponent, then 16 nibble bytes.
        unsafe {
            let table =
                _mm256_broadcastsi128_si256(_mm_loadu_si128(KVALUES_MXFP4_U.as_ptr().cast()));
            (
                _mm256_shuffle_epi8(table, nibbles(p.add(1))),
                e8m0_to_f32_half(*p),
            )
        }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load(p: *const u8) -> (__m256i, f32) {
        // SAFETY: the table is 16 bytes; an MXFP4 block is 17 bytes: the
        // exponent, then 16 nibble bytes.
        unsafe {
            let table = _mm256_broadcastsi128_si256(_mm_loadu_si128(KVALUES_MXFP4.as_ptr().cast()));
            (
                _mm256_shuffle_epi8(table, nibbles(p.add(1))),
                e8m0_to_f32_half(*p),
            )
        }
    }
}

/// Runs `$step!(b, $even)` for the even blocks `b < nb` and `$step!(b, $odd)`
/// for the odd ones, in block order: the float accumulation order the
/// Q8_0-family row kernels share (even blocks into one accumulator, odd
/// blocks into another), which the AVX-512 kernel must follow to give the
/// AVX2 kernel's bits.
macro_rules! even_odd_blocks {
    ($nb:expr, $step:ident, $even:expr, $odd:expr) => {{
        let nb: usize = $nb;
        let mut b = 0;
        while b + 2 <= nb {
            $step!(b, $even);
            $step!(b + 1, $odd);
            b += 2;
        }
        if b < nb {
            $step!(b, $even);
        }
    }};
}
pub(crate) use even_odd_blocks;

/// Horizontal sum of eight floats.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn hsum_ps(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// `Σ_j |w_j| · sign(a_j, w_j)` per 4-byte group as 8 i32 lanes converted to f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot32(aw: __m256i, w: __m256i, a: __m256i) -> __m256 {
    let p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(a, w));
    _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)))
}

/// One weight row (`nb` blocks at `row`) against `T` activation rows (`qs[t]`:
/// `32 · nb` codes; `ds[t]`: their `nb` scales, used when `T == 1`;
/// `dpanel`: the same scales transposed, `dpanel[4b + t] = ds[t][b]`, used
/// when `T > 1`).
///
/// For `T > 1` the scale products `d_w · d_a` of one block are formed for all
/// tokens with one 4-lane multiply and spread with a permute, which takes one
/// multiply per block and token off the (saturated) multiply ports.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn row_tile<D: Dec32, const T: usize>(
    row: *const u8,
    nb: usize,
    qs: &[*const i8; T],
    ds: &[*const f32; T],
    dpanel: *const f32,
) -> [f32; T] {
    let mut acc = [_mm256_setzero_ps(); T];
    if T == 1 {
        // Two independent accumulators hide the FMA latency at n = 1.
        let mut acc1 = _mm256_setzero_ps();
        let mut b = 0;
        while b + 2 <= nb {
            // SAFETY: blocks `b`, `b + 1` and their activations are in bounds.
            unsafe {
                let (w0, d0) = D::load(row.add(b * D::BYTES));
                let (w1, d1) = D::load(row.add((b + 1) * D::BYTES));
                let a0 = _mm256_loadu_si256(qs[0].add(32 * b).cast());
                let a1 = _mm256_loadu_si256(qs[0].add(32 * b + 32).cast());
                let s0 = _mm256_set1_ps(d0 * *ds[0].add(b));
                let s1 = _mm256_set1_ps(d1 * *ds[0].add(b + 1));
                acc[0] = _mm256_fmadd_ps(dot32(_mm256_sign_epi8(w0, w0), w0, a0), s0, acc[0]);
                acc1 = _mm256_fmadd_ps(dot32(_mm256_sign_epi8(w1, w1), w1, a1), s1, acc1);
            }
            b += 2;
        }
        if b < nb {
            // SAFETY: block `b` and its activations are in bounds.
            unsafe {
                let (w, d) = D::load(row.add(b * D::BYTES));
                let a = _mm256_loadu_si256(qs[0].add(32 * b).cast());
                let s = _mm256_set1_ps(d * *ds[0].add(b));
                acc[0] = _mm256_fmadd_ps(dot32(_mm256_sign_epi8(w, w), w, a), s, acc[0]);
            }
        }
        acc[0] = _mm256_add_ps(acc[0], acc1);
    } else {
        // The same sums as the `T == 1` path for every token (even blocks
        // into `acc`, odd ones into `odd`, then their sum), so a token of a
        // batch gets the bits of a one-token call (`INVARIANT_ROWS`).
        let mut odd = [_mm256_setzero_ps(); T];
        let lane: [__m256i; T] = std::array::from_fn(|t| _mm256_set1_epi32(t as i32));
        // Block `b` of every token into `dst` (a macro, not a closure, so the
        // body is compiled with this function's target features).
        macro_rules! step {
            ($b:expr, $dst:expr) => {{
                let (b, dst): (usize, &mut [__m256; T]) = ($b, $dst);
                // SAFETY: block `b`, the activations of every token and 4 panel
                // scales of block `b` are in bounds (`b < nb`).
                unsafe {
                    let (w, d) = D::load(row.add(b * D::BYTES));
                    prefetch_ahead(row.add(b * D::BYTES));
                    let aw = _mm256_sign_epi8(w, w);
                    let prods = _mm256_castps128_ps256(_mm_mul_ps(
                        _mm_set1_ps(d),
                        _mm_loadu_ps(dpanel.add(4 * b)),
                    ));
                    for t in 0..T {
                        let a = _mm256_loadu_si256(qs[t].add(32 * b).cast());
                        let s = _mm256_permutevar8x32_ps(prods, lane[t]);
                        dst[t] = _mm256_fmadd_ps(dot32(aw, w, a), s, dst[t]);
                    }
                }
            }};
        }
        even_odd_blocks!(nb, step, &mut acc, &mut odd);
        for t in 0..T {
            acc[t] = _mm256_add_ps(acc[t], odd[t]);
        }
    }
    let mut out = [0.0f32; T];
    for t in 0..T {
        out[t] = hsum_ps(acc[t]);
    }
    out
}

/// Dequantizes `nb` blocks at `src` into `dst` (`32 · nb` floats):
/// `float(w) · d`, bit-identical to the scalar reference.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dequant<D: Dec32>(src: *const u8, nb: usize, dst: *mut f32) {
    for b in 0..nb {
        // SAFETY: block `b` is readable and its 32 outputs writable.
        unsafe {
            let (w, d) = D::load(src.add(b * D::BYTES));
            let dv = _mm256_set1_ps(d);
            let lo = _mm256_castsi256_si128(w);
            let hi = _mm256_extracti128_si256::<1>(w);
            let parts = [lo, _mm_srli_si128::<8>(lo), hi, _mm_srli_si128::<8>(hi)];
            for (i, p) in parts.into_iter().enumerate() {
                let f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(p));
                _mm256_storeu_ps(dst.add(32 * b + 8 * i), _mm256_mul_ps(f, dv));
            }
        }
    }
}

/// Where [`prep_row`] writes a row's per-block data for the tokens-in-lanes
/// kernels; each destination is optional.
#[derive(Clone, Copy)]
pub(crate) struct PrepOut {
    /// Decoded signed codes, 32 per block.
    pub codes: Option<*mut i8>,
    /// Decoded unsigned codes `w + D::OFF` ([`Dec32::load_u`]), 32 per block.
    pub unsigned: Option<*mut u8>,
    /// Decoded codes widened to i16, 32 per block.
    pub wide: Option<*mut i16>,
    /// `−128 · Σ w` per block: the correction of `Σ (a + 128) · w`.
    pub corr: Option<*mut i32>,
    /// The block scale as f32, one per block (always written).
    pub dw: *mut f32,
}

/// Decodes the `nb` blocks of one row at `row` into `out` (one pass per row,
/// shared by every token tile of a call).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn prep_row<D: Dec32>(row: *const u8, nb: usize, out: PrepOut) {
    let flip = _mm256_set1_epi8(-128);
    for b in 0..nb {
        // SAFETY: block `b` of the row is readable; each destination holds
        // `nb` blocks' worth of its element type (caller contract).
        unsafe {
            let (w, d) = D::load(row.add(b * D::BYTES));
            *out.dw.add(b) = d;
            if let Some(c) = out.codes {
                _mm256_storeu_si256(c.add(32 * b).cast(), w);
            }
            if let Some(c) = out.unsigned {
                let (u, _) = D::load_u(row.add(b * D::BYTES));
                _mm256_storeu_si256(c.add(32 * b).cast(), u);
            }
            if let Some(wd) = out.wide {
                let lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(w));
                let hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(w));
                _mm256_storeu_si256(wd.add(32 * b).cast(), lo);
                _mm256_storeu_si256(wd.add(32 * b + 16).cast(), hi);
            }
            if let Some(c) = out.corr {
                // Σ (w + 128) over the block with `sad`, then remove 32 · 128.
                let s = _mm256_sad_epu8(_mm256_xor_si256(w, flip), _mm256_setzero_si256());
                let s = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
                let s = _mm_add_epi64(s, _mm_unpackhi_epi64(s, s));
                let sum = _mm_cvtsi128_si32(s) - 32 * 128;
                *c.add(b) = -128 * sum;
            }
        }
    }
}
