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
use super::q8k::{PAIR_CTRL, Q8KTok};
use crate::tables::IQ2XXS_GRID;

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

/// The eight `b` words of an IQ2_XXS super-block's groups (bytes `2 + 8g +
/// 4 .. 2 + 8g + 8`), from its 64 code bytes loaded as two halves.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn iq2_b_words(q0: __m256i, q1: __m256i) -> __m256i {
    // Odd dwords of each 128-bit lane: [q0 b0 b1 | q1 b2 b3 | q0 b2' ...];
    // `vshufps` keeps lanes, so restore group order with a qword permute.
    let odd = _mm256_castps_si256(_mm256_shuffle_ps::<0xDD>(
        _mm256_castsi256_ps(q0),
        _mm256_castsi256_ps(q1),
    ));
    _mm256_permute4x64_epi64::<0xD8>(odd)
}

/// The 32 sign bytes of a super-block: byte `4g + l` holds the signs of
/// elements `32g + 8l .. 32g + 8l + 7` (bit `j` set: negative), i.e. the
/// seven stored bits `7l .. 7l + 6` of `b_g` plus their parity as bit 7
/// (`ksigns_iq2xs`), computed for all eight groups at once.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn iq2_sign_bytes(bw: __m256i) -> __m256i {
    let m7 = _mm256_set1_epi32(0x7F);
    // Spread the four 7-bit fields of each word to its four bytes.
    let f0 = _mm256_and_si256(bw, m7);
    let f1 = _mm256_and_si256(_mm256_slli_epi32::<1>(bw), _mm256_set1_epi32(0x7F00));
    let f2 = _mm256_and_si256(_mm256_slli_epi32::<2>(bw), _mm256_set1_epi32(0x7F_0000));
    let f3 = _mm256_and_si256(_mm256_slli_epi32::<3>(bw), _mm256_set1_epi32(0x7F00_0000));
    let s = _mm256_or_si256(_mm256_or_si256(f0, f1), _mm256_or_si256(f2, f3));
    // Parity of each byte lands in its bit 0 (the shifts only pull in bits
    // of the same byte at the positions that reach bit 0).
    let t = _mm256_xor_si256(s, _mm256_srli_epi32::<4>(s));
    let t = _mm256_xor_si256(t, _mm256_srli_epi32::<2>(t));
    let t = _mm256_xor_si256(t, _mm256_srli_epi32::<1>(t));
    let parity = _mm256_and_si256(t, _mm256_set1_epi32(0x0101_0101));
    _mm256_or_si256(s, _mm256_slli_epi32::<7>(parity))
}

/// `pshufb` control spreading the four bytes of a broadcast dword over eight
/// lanes each, and the bit each lane then tests.
static SPREAD4: [u8; 32] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3,
];

/// Grid magnitudes of one IQ2_XXS group: the entries of the four index
/// bytes at `idx` (4 readable bytes), one per 64-bit lane.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn iq2_grid4(idx: *const u8) -> __m256i {
    let g = IQ2XXS_GRID.as_ptr();
    // SAFETY: four readable index bytes (caller contract); every index is
    // below 256, the table's length. Broadcast loads and dword blends keep
    // this off the shuffle ports.
    unsafe {
        let e0 = _mm256_castsi128_si256(_mm_loadl_epi64(g.add(usize::from(*idx)).cast()));
        let e1 = _mm256_set1_epi64x(*g.add(usize::from(*idx.add(1))) as i64);
        let e2 = _mm256_set1_epi64x(*g.add(usize::from(*idx.add(2))) as i64);
        let e3 = _mm256_set1_epi64x(*g.add(usize::from(*idx.add(3))) as i64);
        _mm256_blend_epi32::<0xF0>(
            _mm256_blend_epi32::<0x0C>(e0, e1),
            _mm256_blend_epi32::<0xC0>(e2, e3),
        )
    }
}

/// IQ2_XXS row × `T` tokens.
///
/// Per super-block the sign bytes and group scales of all eight groups are
/// computed at once ([`iq2_sign_bytes`]); per group the four grid entries
/// are assembled with broadcast loads and blends, the group's sign bytes are
/// spread to 0x00/0xFF lane masks, and every token's activations are signed
/// (`sign_epi8`) and multiplied with the unsigned magnitudes (`maddubs`),
/// weighted by `2s + 1` (`madd`). Two accumulators per token break the
/// dependency chains.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn tile_iq2xxs<const T: usize>(
    row: *const u8,
    nsb: usize,
    toks: &[Q8KTok; T],
) -> [f32; T] {
    let one = _mm256_set1_epi8(1);
    // SAFETY: `SPREAD4` is 32 readable bytes.
    let spread = unsafe { _mm256_loadu_si256(SPREAD4.as_ptr().cast()) };
    let bits = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    let mut acc = [_mm256_setzero_ps(); T];
    for sb in 0..nsb {
        // SAFETY: super-block `sb` is 66 readable bytes.
        let (p, d, q0, q1) = unsafe {
            let p = row.add(66 * sb);
            (
                p,
                f16_at(p),
                _mm256_loadu_si256(p.add(2).cast()),
                _mm256_loadu_si256(p.add(34).cast()),
            )
        };
        let bw = iq2_b_words(q0, q1);
        let signs = iq2_sign_bytes(bw);
        // 2s + 1 in both halves of each dword (the `madd` weights).
        let ls = _mm256_or_si256(
            _mm256_slli_epi32::<1>(_mm256_srli_epi32::<28>(bw)),
            _mm256_set1_epi32(1),
        );
        let ls = _mm256_or_si256(ls, _mm256_slli_epi32::<16>(ls));
        let mut isum = [[_mm256_setzero_si256(); 2]; T];
        // The eight groups written out (fixed accumulator indices; a loop
        // with a variable index keeps the sums in memory).
        macro_rules! group {
            ($g:expr, $h:expr) => {{
                // SAFETY: group `$g`'s index bytes are `p + 2 + 8g .. + 4`.
                let mag = unsafe { iq2_grid4(p.add(2 + 8 * $g)) };
                let sel = _mm256_set1_epi32($g);
                let sg = _mm256_permutevar8x32_epi32(signs, sel);
                let spread_g = _mm256_and_si256(_mm256_shuffle_epi8(sg, spread), bits);
                // ±1 per byte: 0xFF | 1 = −1, 0x00 | 1 = +1.
                let sgn = _mm256_or_si256(_mm256_cmpeq_epi8(spread_g, bits), one);
                let lsg = _mm256_permutevar8x32_epi32(ls, sel);
                for t in 0..T {
                    // SAFETY: chunk `$g` of super-block `sb` is in bounds.
                    let av =
                        unsafe { _mm256_loadu_si256(toks[t].qs.add(256 * sb + 32 * $g).cast()) };
                    let pr = _mm256_maddubs_epi16(mag, _mm256_sign_epi8(av, sgn));
                    isum[t][$h] = _mm256_add_epi32(isum[t][$h], _mm256_madd_epi16(pr, lsg));
                }
            }};
        }
        group!(0, 0);
        group!(1, 1);
        group!(2, 0);
        group!(3, 1);
        group!(4, 0);
        group!(5, 1);
        group!(6, 0);
        group!(7, 1);
        let sums: [__m256i; T] = std::array::from_fn(|t| _mm256_add_epi32(isum[t][0], isum[t][1]));
        let zero = _mm256_setzero_si256();
        // SAFETY: super-block `sb` of every token is in bounds.
        unsafe { finish::<T, false, false>(&mut acc, &sums, toks, sb, d * 0.125, 0.0, zero, zero) };
    }
    reduce(&acc)
}
