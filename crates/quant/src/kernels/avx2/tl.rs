//! AVX2 tokens-in-lanes kernels for the Q8_0 family (Q8_0, Q4_0, MXFP4 ×
//! Q8_0): batched decode and prefill without VNNI.
//!
//! As in the AVX-512 version ([`crate::kernels::avx512`]'s `tl`), lane `t`
//! of an accumulator belongs to token `t` of an 8-token panel tile
//! ([`crate::kernels::panel`]) and weights are broadcast, so no per-token
//! reduction is needed and each block ends in one convert, one multiply and
//! one FMA per row for eight tokens. Two integer forms:
//! - Q8_0 (codes up to ±128): activations widened to i16 pairs and weights
//!   to i16 (a row scratch); `madd` of a broadcast weight pair with the
//!   panel adds `w_j a_j + w_{j+1} a_{j+1}` for every lane, exactly.
//! - Q4_0, MXFP4 (4-bit codes): weights as unsigned `u = w + OFF` (at most
//!   24), `maddubs(u, a)` then `madd(·, 1)` adds `Σ_4 u a` per lane without
//!   saturating; the panel supplies `−OFF · Σ a` per block and lane as the
//!   accumulator's start, so the block sums are `Σ w a` exactly.
//!
//! Safety contract of every `unsafe fn` here: the CPU supports AVX2, FMA and
//! F16C (checked by the kernel table) and the job and panel describe
//! validated buffers.

use std::arch::x86_64::*;

use super::q8_0fam::{Dec32, PrepOut, prep_row};
use crate::act::Line;
use crate::kernels::MatmulJob;
use crate::kernels::panel::{Q8Form, Q8Panel, Tile, grow, plan_tiles, with_pool};
use crate::out::OutCols;

/// One prepared weight row.
#[derive(Clone, Copy)]
struct RowSrc {
    /// Widened (i16, 64 bytes per block) or unsigned (32 bytes per block)
    /// codes of block 0.
    codes: *const u8,
    /// Block scales as f32.
    dw: *const f32,
}

/// Rows prepared together.
const ROWS: usize = 4;

/// `R` rows × one 8-lane tile. `WIDE`: i16 codes and panel (Q8_0); else
/// unsigned codes and a signed panel with corrections (Q4_0, MXFP4).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_rows<const R: usize, const WIDE: bool>(
    rows: &[RowSrc; R],
    panel: &Q8Panel<'_>,
    tile: &Tile,
) -> [[f32; 8]; R] {
    let nb = panel.nb();
    let mut f = [_mm256_setzero_ps(); R];
    let codes = panel.codes(tile, 0);
    let scales = panel.scales(tile, 0);
    let corr = panel.corrections(tile, 0);
    let ones = _mm256_set1_epi16(1);
    for b in 0..nb {
        // SAFETY: block `b` exists in every prepared row and in the panel
        // tile (64 bytes of i16 or 32 of bytes per lane, 8 scales and, for
        // signed panels, 8 corrections per block).
        unsafe {
            // One accumulator per row: `vpaddd` has a one-cycle latency, and
            // the 16 registers are needed for rows, scales and operands.
            let mut acc = if WIDE {
                [_mm256_setzero_si256(); R]
            } else {
                [_mm256_loadu_si256(corr.add(8 * b).cast()); R]
            };
            if WIDE {
                let a_blk = codes.add(b * 512);
                for p in 0..16 {
                    let a = _mm256_loadu_si256(a_blk.add(32 * p).cast());
                    for i in 0..R {
                        let wp = rows[i].codes.add(64 * b + 4 * p);
                        let w = _mm256_set1_epi32(wp.cast::<i32>().read_unaligned());
                        acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(a, w));
                    }
                }
            } else {
                let a_blk = codes.add(b * 256);
                for g in 0..8 {
                    let a = _mm256_loadu_si256(a_blk.add(32 * g).cast());
                    for i in 0..R {
                        let wp = rows[i].codes.add(32 * b + 4 * g);
                        let w = _mm256_set1_epi32(wp.cast::<i32>().read_unaligned());
                        let pr = _mm256_madd_epi16(_mm256_maddubs_epi16(w, a), ones);
                        acc[i] = _mm256_add_epi32(acc[i], pr);
                    }
                }
            }
            let da = _mm256_loadu_ps(scales.add(8 * b));
            for i in 0..R {
                let s = _mm256_cvtepi32_ps(acc[i]);
                let sc = _mm256_mul_ps(da, _mm256_set1_ps(*rows[i].dw.add(b)));
                f[i] = _mm256_fmadd_ps(s, sc, f[i]);
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

/// Runs every tile of `panel` over the `g` prepared rows `srcs[..g]`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn run_rows<const WIDE: bool>(
    srcs: &[RowSrc; ROWS],
    g: usize,
    panel: &Q8Panel<'_>,
    r0: usize,
    out: &mut OutCols<'_>,
) {
    let s = srcs;
    for tile in panel.tiles() {
        let mut res = [[0.0f32; 8]; ROWS];
        // SAFETY: forwarded contract.
        unsafe {
            match g {
                4 => res = tile_rows::<4, WIDE>(s, panel, tile),
                3 => res[..3].copy_from_slice(&tile_rows::<3, WIDE>(
                    &[s[0], s[1], s[2]],
                    panel,
                    tile,
                )),
                2 => res[..2].copy_from_slice(&tile_rows::<2, WIDE>(&[s[0], s[1]], panel, tile)),
                _ => res[0] = tile_rows::<1, WIDE>(&[s[0]], panel, tile)[0],
            }
        }
        for (i, r) in res[..g].iter().enumerate() {
            for t in 0..tile.count {
                out.row_mut(tile.t0 + t)[r0 + i] = r[t];
            }
        }
    }
}

/// Q8_0-family matmul, tokens in lanes (any `n >= 1`).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn matmul_q8_0<D: Dec32>(job: &MatmulJob<'_>, out: &mut OutCols<'_>) {
    let nb = job.k / 32;
    let plan = plan_tiles(job.act.n(), 8, 8);
    // Q8_0 codes need 16-bit products; the 4-bit types fit `maddubs`.
    let wide = D::RAW;
    let form = if wide {
        Q8Form::Wide
    } else {
        Q8Form::Signed(D::OFF)
    };
    with_pool(|pool| {
        let panel = Q8Panel::build(
            &job.act,
            &plan,
            form,
            &mut pool.codes,
            &mut pool.scales,
            &mut pool.sums,
        );
        // 64 bytes per block and row covers both forms.
        grow(&mut pool.rows, ROWS * nb, Line([0; 64]));
        grow(&mut pool.rowf, ROWS * nb, 0.0);
        let codes: &mut [u8] = bytemuck::cast_slice_mut(pool.rows.as_mut_slice());
        let dw = &mut pool.rowf;
        let base = job.w.as_ptr();
        let mut r0 = 0;
        while r0 < job.nrows {
            let g = ROWS.min(job.nrows - r0);
            let mut srcs = [RowSrc {
                codes: codes.as_ptr(),
                dw: dw.as_ptr(),
            }; ROWS];
            for i in 0..g {
                // SAFETY: row `r0 + i` lies inside the validated weights; the
                // scratch holds `ROWS · nb` blocks of 64 bytes and floats.
                unsafe {
                    let row = base.add((r0 + i) * job.row_bytes);
                    let c = codes.as_mut_ptr().add(i * 64 * nb);
                    prep_row::<D>(
                        row,
                        nb,
                        PrepOut {
                            codes: None,
                            unsigned: (!wide).then_some(c),
                            wide: wide.then_some(c.cast()),
                            corr: None,
                            dw: dw.as_mut_ptr().add(i * nb),
                        },
                    );
                    srcs[i] = RowSrc {
                        codes: c.cast_const(),
                        dw: dw.as_ptr().add(i * nb),
                    };
                }
            }
            // SAFETY: `srcs[..g]` are prepared rows of `nb` blocks.
            unsafe {
                if wide {
                    run_rows::<true>(&srcs, g, &panel, r0, out);
                } else {
                    run_rows::<false>(&srcs, g, &panel, r0, out);
                }
            }
            r0 += g;
        }
    });
}
