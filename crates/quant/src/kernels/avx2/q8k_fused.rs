//! AVX2 fused kernels for Q2_K, Q4_K, Q6_K and IQ2_XXS against at most four
//! activation rows (decode and small batches).
//!
//! Unlike the unpack-then-dot path of [`super::q8k`], these decode each
//! 32-element chunk straight into registers and use it for every token of the
//! tile, so a super-block costs no stores and reloads: the n = 1 case is as
//! close to ggml's per-type AVX2 `vec_dot` kernels (`ggml-cpu/arch/x86/quants.c`,
//! llama.cpp `0c1e57098`) as our layout allows, with the same exact integer
//! sums. IQ2_XXS applies its signs to the activations (`sign_epi8`) as ggml
//! does, instead of offsetting the weights.
//!
//! Safety contract of every `unsafe fn` here: the CPU supports AVX2, FMA and
//! F16C, `row` holds `nsb` super-blocks of the type, and every token has `nsb`
//! super-blocks of Q8_K activations.

use std::arch::x86_64::*;

use super::q8_0fam::{f16_at, hsum_ps};
use super::q8k::{PAIR_CTRL, Q8KTok, iq2_signs};
use crate::tables::{IQ2XXS_GRID, KSIGNS64};

/// `pshufb` controls putting byte `2c` (zero-extended to i16) in every lane of
/// the low 128 bits and byte `2c + 1` in the high 128 bits.
static PAIR_Z: [[u8; 32]; 8] = build_ctrl(true);
/// `pshufb` controls putting byte `c` (zero-extended to i16) in every lane.
static SAME_Z: [[u8; 32]; 8] = build_ctrl(false);

const fn build_ctrl(pair: bool) -> [[u8; 32]; 8] {
    let mut out = [[0x80u8; 32]; 8];
    let mut c = 0;
    while c < 8 {
        let mut i = 0;
        while i < 16 {
            let (lo, hi) = if pair {
                (2 * c as u8, 2 * c as u8 + 1)
            } else {
                (c as u8, c as u8)
            };
            if i % 2 == 0 {
                out[c][i] = lo;
                out[c][16 + i] = hi;
            }
            i += 1;
        }
        c += 1;
    }
    out
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn ctrl(table: &[[u8; 32]; 8], c: usize) -> __m256i {
    // SAFETY: each row of the table is 32 readable bytes.
    unsafe { _mm256_loadu_si256(table[c].as_ptr().cast()) }
}

/// `isum[t] += madd(maddubs(u, a_t), scv)` for the chunk at code offset `at`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn chunk<const T: usize>(
    isum: &mut [__m256i; T],
    u: __m256i,
    scv: __m256i,
    toks: &[Q8KTok; T],
    at: usize,
) {
    for t in 0..T {
        // SAFETY: `at + 32` codes exist for every token (caller contract).
        let a = unsafe { _mm256_loadu_si256(toks[t].qs.add(at).cast()) };
        isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(_mm256_maddubs_epi16(u, a), scv));
    }
}

/// Adds super-block `sb`'s contribution: `d·d_a·(isum − madd(bsums, bias)) −
/// dmin·d_a·madd(bsums, mins)`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn finish<const T: usize, const MIN: bool, const BIAS: bool>(
    acc: &mut [__m256; T],
    isum: &[__m256i; T],
    toks: &[Q8KTok; T],
    sb: usize,
    d: f32,
    dmin: f32,
    mins: __m256i,
    bias: __m256i,
) {
    for t in 0..T {
        // SAFETY: every token has 16 sums and one scale per super-block.
        let (bs, da) = unsafe {
            (
                _mm256_loadu_si256(toks[t].bs.add(16 * sb).cast()),
                *toks[t].d.add(sb),
            )
        };
        let mut s = isum[t];
        if BIAS {
            s = _mm256_sub_epi32(s, _mm256_madd_epi16(bs, bias));
        }
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d * da), acc[t]);
        if MIN {
            let m = _mm256_cvtepi32_ps(_mm256_madd_epi16(bs, mins));
            acc[t] = _mm256_fnmadd_ps(m, _mm256_set1_ps(dmin * da), acc[t]);
        }
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn reduce<const T: usize>(acc: &[__m256; T]) -> [f32; T] {
    let mut out = [0.0f32; T];
    for t in 0..T {
        out[t] = hsum_ps(acc[t]);
    }
    out
}

/// Q2_K row × `T` tokens.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn tile_q2k<const T: usize>(
    row: *const u8,
    nsb: usize,
    toks: &[Q8KTok; T],
) -> [f32; T] {
    let m3 = _mm256_set1_epi8(3);
    let m4 = _mm_set1_epi8(0x0F);
    let mut acc = [_mm256_setzero_ps(); T];
    for sb in 0..nsb {
        // SAFETY: super-block `sb` is 84 readable bytes (module contract).
        let (sc, q0, q1, d, dmin) = unsafe {
            let p = row.add(84 * sb);
            (
                _mm_loadu_si128(p.cast()),
                _mm256_loadu_si256(p.add(16).cast()),
                _mm256_loadu_si256(p.add(48).cast()),
                f16_at(p.add(80)),
                f16_at(p.add(82)),
            )
        };
        let scb = _mm256_broadcastsi128_si256(_mm_and_si128(sc, m4));
        let mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(sc), m4));
        let mut isum = [_mm256_setzero_si256(); T];
        for (h, q) in [q0, q1].into_iter().enumerate() {
            let us = [
                _mm256_and_si256(q, m3),
                _mm256_and_si256(_mm256_srli_epi16::<2>(q), m3),
                _mm256_and_si256(_mm256_srli_epi16::<4>(q), m3),
                _mm256_and_si256(_mm256_srli_epi16::<6>(q), m3),
            ];
            for (s, u) in us.into_iter().enumerate() {
                let c = 4 * h + s;
                let scv = _mm256_shuffle_epi8(scb, ctrl(&PAIR_Z, c));
                // SAFETY: chunk `c` of super-block `sb` is in bounds.
                unsafe { chunk::<T>(&mut isum, u, scv, toks, 256 * sb + 32 * c) };
            }
        }
        // SAFETY: super-block `sb` of every token is in bounds.
        unsafe {
            finish::<T, true, false>(
                &mut acc,
                &isum,
                toks,
                sb,
                d,
                dmin,
                mins,
                _mm256_setzero_si256(),
            )
        };
    }
    reduce(&acc)
}

/// Q4_K row × `T` tokens.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn tile_q4k<const T: usize>(
    row: *const u8,
    nsb: usize,
    toks: &[Q8KTok; T],
) -> [f32; T] {
    const K1: u32 = 0x3f3f_3f3f;
    const K2: u32 = 0x0f0f_0f0f;
    const K3: u32 = 0x0303_0303;
    let m4 = _mm256_set1_epi8(0x0F);
    let mut acc = [_mm256_setzero_ps(); T];
    for sb in 0..nsb {
        // SAFETY: super-block `sb` is 144 readable bytes.
        let (p, s0, s1, s2, d, dmin) = unsafe {
            let p = row.add(144 * sb);
            let s = p.add(4).cast::<u32>();
            let words = (
                s.read_unaligned(),
                s.add(1).read_unaligned(),
                s.add(2).read_unaligned(),
            );
            (p, words.0, words.1, words.2, f16_at(p), f16_at(p.add(2)))
        };
        // ggml's kmask unpacking of the 6-bit scales and mins.
        let sc = [s0 & K1, (s2 & K2) | (((s0 >> 6) & K3) << 4)];
        let mn = [s1 & K1, ((s2 >> 4) & K2) | (((s1 >> 6) & K3) << 4)];
        let scb = _mm256_broadcastsi128_si256(_mm_set_epi32(0, 0, sc[1] as i32, sc[0] as i32));
        let m8 = _mm_set_epi32(0, 0, mn[1] as i32, mn[0] as i32);
        let mins = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
        let mut isum = [_mm256_setzero_si256(); T];
        for c in 0..4 {
            // SAFETY: codes are bytes 16..144 of the super-block.
            let q = unsafe { _mm256_loadu_si256(p.add(16 + 32 * c).cast()) };
            let lo = _mm256_and_si256(q, m4);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4);
            let sc_lo = _mm256_shuffle_epi8(scb, ctrl(&SAME_Z, 2 * c));
            let sc_hi = _mm256_shuffle_epi8(scb, ctrl(&SAME_Z, 2 * c + 1));
            // SAFETY: chunks `2c`, `2c + 1` of super-block `sb` are in bounds.
            unsafe {
                chunk::<T>(&mut isum, lo, sc_lo, toks, 256 * sb + 64 * c);
                chunk::<T>(&mut isum, hi, sc_hi, toks, 256 * sb + 64 * c + 32);
            }
        }
        // SAFETY: super-block `sb` of every token is in bounds.
        unsafe {
            finish::<T, true, false>(
                &mut acc,
                &isum,
                toks,
                sb,
                d,
                dmin,
                mins,
                _mm256_setzero_si256(),
            )
        };
    }
    reduce(&acc)
}

/// Q6_K row × `T` tokens (unsigned codes 0..63; the −32 offset is applied
/// through the activation sums).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn tile_q6k<const T: usize>(
    row: *const u8,
    nsb: usize,
    toks: &[Q8KTok; T],
) -> [f32; T] {
    let m4 = _mm256_set1_epi8(0x0F);
    let m30 = _mm256_set1_epi8(0x30);
    let mut acc = [_mm256_setzero_ps(); T];
    for sb in 0..nsb {
        // SAFETY: super-block `sb` is 210 readable bytes.
        let (p, sc, d) = unsafe {
            let p = row.add(210 * sb);
            (p, _mm_loadu_si128(p.add(192).cast()), f16_at(p.add(208)))
        };
        let sc16 = _mm256_cvtepi8_epi16(sc);
        let bias = _mm256_slli_epi16::<5>(sc16);
        // Both bytes of every i16 lane hold the scale; `srai` sign-extends it.
        let scb = _mm256_broadcastsi128_si256(sc);
        let mut isum = [_mm256_setzero_si256(); T];
        for h in 0..2 {
            // SAFETY: `ql` is bytes 0..128, `qh` 128..192.
            let (ql0, ql1, qh) = unsafe {
                (
                    _mm256_loadu_si256(p.add(64 * h).cast()),
                    _mm256_loadu_si256(p.add(64 * h + 32).cast()),
                    _mm256_loadu_si256(p.add(128 + 32 * h).cast()),
                )
            };
            let us = [
                _mm256_or_si256(
                    _mm256_and_si256(ql0, m4),
                    _mm256_and_si256(_mm256_slli_epi16::<4>(qh), m30),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(ql1, m4),
                    _mm256_and_si256(_mm256_slli_epi16::<2>(qh), m30),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16::<4>(ql0), m4),
                    _mm256_and_si256(qh, m30),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), m4),
                    _mm256_and_si256(_mm256_srli_epi16::<2>(qh), m30),
                ),
            ];
            for (g, u) in us.into_iter().enumerate() {
                let c = 4 * h + g;
                // SAFETY: `PAIR_CTRL[c]` is 32 readable bytes.
                let dup = unsafe { _mm256_loadu_si256(PAIR_CTRL[c].as_ptr().cast()) };
                let scv = _mm256_srai_epi16::<8>(_mm256_shuffle_epi8(scb, dup));
                // SAFETY: chunk `c` of super-block `sb` is in bounds.
                unsafe { chunk::<T>(&mut isum, u, scv, toks, 256 * sb + 32 * c) };
            }
        }
        // SAFETY: super-block `sb` of every token is in bounds.
        unsafe {
            finish::<T, false, true>(
                &mut acc,
                &isum,
                toks,
                sb,
                d,
                0.0,
                _mm256_setzero_si256(),
                bias,
            )
        };
    }
    reduce(&acc)
}

/// IQ2_XXS row × `T` tokens.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn tile_iq2xxs<const T: usize>(
    row: *const u8,
    nsb: usize,
    toks: &[Q8KTok; T],
) -> [f32; T] {
    let one = _mm256_set1_epi8(1);
    let mut acc = [_mm256_setzero_ps(); T];
    for sb in 0..nsb {
        // SAFETY: super-block `sb` is 66 readable bytes.
        let (p, d) = unsafe {
            let p = row.add(66 * sb);
            (p, f16_at(p))
        };
        let mut isum = [_mm256_setzero_si256(); T];
        for g in 0..8 {
            // SAFETY: group `g` is bytes 2 + 8g .. 10 + 8g.
            let (a, b) = unsafe {
                let q = p.add(2 + 8 * g).cast::<u32>();
                (q.read_unaligned(), q.add(1).read_unaligned())
            };
            let gi = |l: u32| IQ2XXS_GRID[((a >> (8 * l)) & 0xFF) as usize] as i64;
            let mag = _mm256_set_epi64x(gi(3), gi(2), gi(1), gi(0));
            // Computing the signs is cheaper at n = 1; with several tokens
            // live in registers the table lookups measured faster.
            let neg = if T == 1 {
                iq2_signs(b)
            } else {
                let si = |l: u32| KSIGNS64[((b >> (7 * l)) & 127) as usize] as i64;
                _mm256_set_epi64x(si(3), si(2), si(1), si(0))
            };
            // 0xFF | 1 = −1 and 0x00 | 1 = +1 per byte.
            let sgn = _mm256_or_si256(neg, one);
            let ls = _mm256_set1_epi16(2 * (b >> 28) as i16 + 1);
            for t in 0..T {
                // SAFETY: chunk `g` of super-block `sb` is in bounds.
                let av = unsafe { _mm256_loadu_si256(toks[t].qs.add(256 * sb + 32 * g).cast()) };
                let pr = _mm256_maddubs_epi16(mag, _mm256_sign_epi8(av, sgn));
                isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(pr, ls));
            }
        }
        let zero = _mm256_setzero_si256();
        // SAFETY: super-block `sb` of every token is in bounds.
        unsafe { finish::<T, false, false>(&mut acc, &isum, toks, sb, d * 0.125, 0.0, zero, zero) };
    }
    reduce(&acc)
}
