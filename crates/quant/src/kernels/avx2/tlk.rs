//! AVX2 tokens-in-lanes kernels for the Q8_K family (Q2_K, Q4_K, Q6_K,
//! IQ2_XXS × Q8_K): batched decode, routed experts with several tokens, and
//! prefill without VNNI.
//!
//! As in the AVX-512 version (`avx512::tlk`), rows are unpacked once into
//! [`SbUnpacked`] super-blocks and lane `t` of an accumulator belongs to
//! token `t` of an 8-token panel tile ([`Q8KPanel`]). Per 4-byte group of
//! codes: `maddubs(u, a)` of the broadcast unsigned codes with the panel's
//! signed codes gives two i16 pair sums per lane (no saturation: `u ≤ 86`),
//! and `madd` with the broadcast pair `[sc, sc]` of the group's sub-block
//! scale adds `sc · Σ_4 u a` as one i32 per lane. The min/bias term takes one
//! `madd` per pair of sub-blocks with the panel's i16 sum pairs. The sums are
//! exact i32, the same integers as the reference.
//!
//! Safety contract of every `unsafe fn` here: the CPU supports AVX2, FMA and
//! F16C (checked by the kernel table) and the job and panel describe
//! validated buffers.

use std::arch::x86_64::*;

use super::q8k::Avx2Unpack;
use super::unpack_row;
use crate::blocks::QK_K;
use crate::kernels::MatmulJob;
use crate::kernels::panel::{Q8KPanel, Tile, grow, plan_tiles, with_pool};
use crate::kernels::unpack::SbUnpacked;
use crate::out::OutCols;

/// `R` rows (`rows[i]`: their `nsb` unpacked super-blocks) × one 8-lane
/// tile.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_rows<const R: usize, const MIN: bool, const BIAS: bool>(
    rows: &[*const SbUnpacked; R],
    panel: &Q8KPanel<'_>,
    tile: &Tile,
) -> [[f32; 8]; R] {
    let mut f = [_mm256_setzero_ps(); R];
    for s in 0..panel.nsb() {
        // SAFETY: super-block `s` exists in every row (caller contract) and
        // in the panel tile: 64 groups of 32 code bytes, 8 sum-pair vectors
        // and 8 scales.
        unsafe {
            let codes = panel.codes(tile, s);
            let sb: [&SbUnpacked; R] = std::array::from_fn(|i| &*rows[i].add(s));
            let mut acc = [_mm256_setzero_si256(); R];
            for i16b in 0..16 {
                // `[sc, sc]`: the pre-broadcast scales hold eight copies.
                let sc: [__m256i; R] = std::array::from_fn(|i| {
                    let p = sb[i].sc.as_ptr().add(8 * i16b);
                    _mm256_set1_epi32(p.cast::<i32>().read_unaligned())
                });
                for u in 0..4 {
                    let g = 4 * i16b + u;
                    let a = _mm256_loadu_si256(codes.add(32 * g).cast());
                    for i in 0..R {
                        let w = sb[i].u.as_ptr().add(4 * g).cast::<i32>().read_unaligned();
                        let p = _mm256_maddubs_epi16(_mm256_set1_epi32(w), a);
                        acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(p, sc[i]));
                    }
                }
            }
            let sums = panel.sums(tile, s);
            let mut mt = [_mm256_setzero_si256(); R];
            for q in 0..8 {
                let bs = _mm256_loadu_si256(sums.add(8 * q).cast());
                for i in 0..R {
                    let mb = if MIN { &sb[i].mins } else { &sb[i].bias };
                    let m = mb.as_ptr().add(2 * q).cast::<i32>().read_unaligned();
                    mt[i] = _mm256_add_epi32(mt[i], _mm256_madd_epi16(bs, _mm256_set1_epi32(m)));
                }
            }
            let da = _mm256_loadu_ps(panel.scales(tile, s));
            for i in 0..R {
                let main = if BIAS {
                    _mm256_sub_epi32(acc[i], mt[i])
                } else {
                    acc[i]
                };
                let sd = _mm256_mul_ps(da, _mm256_set1_ps(sb[i].d));
                f[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(main), sd, f[i]);
                if MIN {
                    let sm = _mm256_mul_ps(da, _mm256_set1_ps(sb[i].dmin));
                    f[i] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mt[i]), sm, f[i]);
                }
            }
        }
    }
    let mut out = [[0.0f32; 8]; R];
    for i in 0..R {
        // SAFETY: `out[i]` holds 8 floats.
        unsafe { _mm256_storeu_ps(out[i].as_mut_ptr(), f[i]) };
    }
    out
}

/// Rows unpacked together (two rows share each activation load; more would
/// not fit the sixteen registers).
const ROWS: usize = 2;

/// Folds the sub-block scales of unpacked super-blocks into their codes:
/// `u ← u · sc`, then every scale 1, so each block still describes exactly
/// the same weights and the tokens-in-lanes kernels need no per-sub-block
/// multiply. Only for types whose `u · sc` fits a byte
/// ([`Avx2Unpack::FOLDABLE`]).
///
/// One `vpmullw` per 32 codes does it: a word of two codes `u₀ + 256 u₁`
/// times the pre-broadcast scale of their sub-block is `u₀ sc + 256 u₁ sc`
/// with no carry between the bytes (both products ≤ 255).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) fn fold_scales(sbs: &mut [SbUnpacked]) {
    let one = _mm256_set1_epi16(1);
    for sb in sbs {
        for c in 0..8 {
            // SAFETY: chunk `c` is 32 code bytes and 16 i16 scales (the
            // struct holds 256 codes and 128 scales); unaligned accesses.
            unsafe {
                let u = sb.u.as_mut_ptr().add(32 * c).cast::<__m256i>();
                let sc = sb.sc.as_mut_ptr().add(16 * c).cast::<__m256i>();
                let v = _mm256_mullo_epi16(_mm256_loadu_si256(u), _mm256_loadu_si256(sc));
                _mm256_storeu_si256(u, v);
                _mm256_storeu_si256(sc, one);
            }
        }
        sb.sc32 = [1; 16];
    }
}

/// The driver shared by the AVX2 and AVX-512 tokens-in-lanes Q8_K kernels:
/// builds the activation panel (tiles of `wide` lanes, the rest in one of
/// `narrow` lanes if it fits), unpacks `R` weight rows at a time into pooled
/// scratch (with the scales folded into the codes when `fold`, see
/// [`fold_scales`]), and calls `run(rows, g, panel, r0)` for each group of
/// `g` rows starting at row `r0` (`rows[g..]` repeat the last row and must be
/// ignored).
///
/// # Safety
/// The CPU supports AVX2, FMA and F16C; the job is validated.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn drive<U: Avx2Unpack, const R: usize>(
    job: &MatmulJob<'_>,
    wide: usize,
    narrow: usize,
    fold: bool,
    mut run: impl FnMut(&[*const SbUnpacked; R], usize, &Q8KPanel<'_>, usize),
) {
    let nsb = job.k / QK_K;
    let plan = plan_tiles(job.act.n(), wide, narrow);
    with_pool(|pool| {
        let panel = Q8KPanel::build(
            &job.act,
            &plan,
            &mut pool.codes,
            &mut pool.scales,
            &mut pool.sums,
        );
        grow(&mut pool.sbs, R * nsb, bytemuck::Zeroable::zeroed());
        let base = job.w.as_ptr();
        let mut r0 = 0;
        while r0 < job.nrows {
            let g = R.min(job.nrows - r0);
            for i in 0..g {
                // SAFETY: row `r0 + i` lies inside the validated weights and
                // holds `nsb` super-blocks; the scratch holds `R · nsb`.
                unsafe {
                    let row = base.add((r0 + i) * job.row_bytes);
                    unpack_row::<U>(row, &mut pool.sbs[i * nsb..(i + 1) * nsb]);
                }
                if fold {
                    fold_scales(&mut pool.sbs[i * nsb..(i + 1) * nsb]);
                }
            }
            let rows: [*const SbUnpacked; R] =
                std::array::from_fn(|i| pool.sbs[i.min(g - 1) * nsb..].as_ptr());
            run(&rows, g, &panel, r0);
            r0 += g;
        }
    });
}

/// Q8_K-family matmul, tokens in lanes (any `n >= 1`).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn matmul_q8k<U: Avx2Unpack>(job: &MatmulJob<'_>, out: &mut OutCols<'_>) {
    let run = |rows: &[*const SbUnpacked; ROWS], g: usize, panel: &Q8KPanel<'_>, r0: usize| {
        for tile in panel.tiles() {
            // SAFETY: `rows[..g]` hold `nsb` unpacked super-blocks each.
            let res: [[f32; 8]; ROWS] = unsafe {
                match (g, U::MIN, U::BIAS) {
                    (2, true, _) => tile_rows::<2, true, false>(rows, panel, tile),
                    (2, false, b) => {
                        if b {
                            tile_rows::<2, false, true>(rows, panel, tile)
                        } else {
                            tile_rows::<2, false, false>(rows, panel, tile)
                        }
                    }
                    (_, true, _) => {
                        let r = tile_rows::<1, true, false>(&[rows[0]], panel, tile);
                        [r[0], [0.0; 8]]
                    }
                    (_, false, b) => {
                        let r = if b {
                            tile_rows::<1, false, true>(&[rows[0]], panel, tile)
                        } else {
                            tile_rows::<1, false, false>(&[rows[0]], panel, tile)
                        };
                        [r[0], [0.0; 8]]
                    }
                }
            };
            for (i, r) in res[..g].iter().enumerate() {
                for t in 0..tile.count {
                    out.row_mut(tile.t0 + t)[r0 + i] = r[t];
                }
            }
        }
    };
    // SAFETY: forwarded contract.
    unsafe { drive::<U, ROWS>(job, 8, 8, false, run) };
}
