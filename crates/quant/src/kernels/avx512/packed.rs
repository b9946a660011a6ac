//! AVX-512 VNNI kernel for packed Q8_0 weights (the layout of
//! [`crate::kernels::packed`]): sixteen weight rows in the sixteen lanes,
//! tokens in tiles of up to [`TILE`].
//!
//! Per group of 16 rows, block `b` and token `t`: the i32 lanes start from
//! the token's correction `−128 · Σ a` of the block, eight `vpdpbusd`
//! (unsigned stored codes `q + 128` × four broadcast activation codes) add
//! `Σ (q + 128) · a`, which leaves each row's exact block sum `Σ q · a`;
//! then, as [`QuantBlock::dot_ref`](crate::QuantBlock::dot_ref) does,
//! `s = d_w · d_a`, `p = f32(sumi) · s`, `acc += p` (two multiplies and an
//! add, not an FMA, so the results are the reference's bits). The weight
//! lines of a block are loaded once per token tile; a group
//! (`k / 64 · 1088` bytes) stays in L2 while the tiles of a long batch pass
//! over it. A group is one sequential stream, which the hardware prefetcher
//! follows; there are no software prefetches (with one per cache line, Zen 4
//! spent two thirds of a decode step's samples of this kernel stalled on
//! them, and one-session decode ran ~11 % slower than the row-major kernel).

use std::arch::x86_64::*;

use crate::act::Line;
use crate::kernels::packed::{PACK_ROWS, PackedJob, code_offset, scale_offset};
use crate::kernels::panel::{grow, with_pool};
use crate::out::OutCols;

/// Tokens per tile: each takes an i32 and an f32 accumulator register.
const TILE: usize = 8;

/// Panel bytes one pass over the groups uses.
const PANEL_BUDGET: usize = 256 << 10;

/// Packed Q8_0 matmul (see the module docs).
///
/// # Safety
/// The CPU supports AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C; the job is
/// validated (its groups cover `nrows` rows of `k`, the activations are Q8_0).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) unsafe fn matmul_q8_0_packed(job: &PackedJob<'_>, out: &mut OutCols<'_>) {
    let n = job.act.n();
    let (qs, stride, dplane, _) = job.act.planes();
    let nb = job.k / 32;
    with_pool(|pool| {
        // Corrections `−128 · Σ a` per token and block.
        grow(&mut pool.sums, n * nb, 0);
        let corr = &mut pool.sums[..n * nb];
        for (t, c) in corr.chunks_exact_mut(nb).enumerate() {
            let row = &qs[t * stride..t * stride + job.k];
            for (c, blk) in c.iter_mut().zip(row.chunks_exact(32)) {
                let s: i32 = blk.iter().map(|&a| i32::from(a as i8)).sum();
                *c = -128 * s;
            }
        }
        // Codes in tile panels `[tile][b][q][tw]` of 4-byte groups, `tw` =
        // min(n, TILE) tokens wide, so the tokens of one step share a cache
        // line (token rows `k` bytes apart would share an L1 set when `k`
        // is a multiple of 4096) and one token's panel is its row.
        let tiles = n.div_ceil(TILE);
        let tw = n.min(TILE);
        let tile_dwords = nb * 8 * tw;
        let lines = (tiles * tile_dwords).div_ceil(16);
        grow(&mut pool.codes, lines, Line([0; 64]));
        let panel: &mut [i32] = bytemuck::cast_slice_mut(&mut pool.codes[..lines]);
        for t in 0..n {
            let row = &qs[t * stride..t * stride + job.k];
            let dst = &mut panel[(t / TILE) * tile_dwords..];
            for (j, c) in row.chunks_exact(4).enumerate() {
                dst[j * tw + t % TILE] = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        let (corr, panel) = (&pool.sums[..n * nb], &pool.codes[..lines]);
        let panel: &[i32] = bytemuck::cast_slice(panel);
        let groups = job.nrows.div_ceil(PACK_ROWS);
        let mut res = [[0.0f32; PACK_ROWS]; TILE];
        // Tiles per pass: one pass's panel stays in L2 while every group
        // streams past it once.
        let pass = (PANEL_BUDGET / (tile_dwords * 4)).max(1);
        for first in (0..tiles).step_by(pass) {
            for g in 0..groups {
                let base = job.groups[g * job.group_stride..].as_ptr();
                let r0 = g * PACK_ROWS;
                let live = PACK_ROWS.min(job.nrows - r0);
                for tile_i in first..tiles.min(first + pass) {
                    let t0 = tile_i * TILE;
                    let nt = TILE.min(n - t0);
                    let tile = Tile {
                        codes: base,
                        nb,
                        panel: panel[tile_i * tile_dwords..].as_ptr(),
                        tw,
                        d: dplane[t0 * nb..].as_ptr(),
                        corr: corr[t0 * nb..].as_ptr(),
                    };
                    // SAFETY: group `g` lies in the job's groups; tokens
                    // `t0 .. t0 + nt` have panel codes, scales and corrections.
                    unsafe {
                        match nt {
                            1 => tile.run::<1>(&mut res),
                            2 => tile.run::<2>(&mut res),
                            3 => tile.run::<3>(&mut res),
                            4 => tile.run::<4>(&mut res),
                            5 => tile.run::<5>(&mut res),
                            6 => tile.run::<6>(&mut res),
                            7 => tile.run::<7>(&mut res),
                            _ => tile.run::<8>(&mut res),
                        }
                    };
                    for (t, v) in res[..nt].iter().enumerate() {
                        out.row_mut(t0 + t)[r0..r0 + live].copy_from_slice(&v[..live]);
                    }
                }
            }
        }
    });
}

/// One group's weights against a tile of tokens (pointers valid for the
/// group's `nb` blocks and the tile's tokens).
struct Tile {
    codes: *const u8,
    nb: usize,
    /// The tile's panel: 4-byte code groups `[b][q][tw]`.
    panel: *const i32,
    /// Tokens per panel step (`T ≤ tw ≤ TILE`).
    tw: usize,
    d: *const f32,
    corr: *const i32,
}

impl Tile {
    /// Sixteen rows' results for each of `T` tokens into `res[..T]`.
    ///
    /// # Safety
    /// As [`matmul_q8_0_packed`]; the pointers cover the group and `T ≤
    /// TILE` tokens.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn run<const T: usize>(&self, res: &mut [[f32; PACK_ROWS]; TILE]) {
        let nb = self.nb;
        let mut acc = [_mm512_setzero_ps(); T];
        for b in 0..nb {
            // SAFETY (whole block): block `b < nb` of the group's codes and
            // scales, and of every token's codes, scales and corrections.
            unsafe {
                let mut sums: [__m512i; T] =
                    std::array::from_fn(|t| _mm512_set1_epi32(*self.corr.add(t * nb + b)));
                let lines = self.codes.add(code_offset(b));
                // With one or two tokens, odd steps go to a second chain so
                // the `vpdpbusd` latency does not serialise the block (the
                // integer sums are exact, so the split changes nothing).
                let mut odd = [_mm512_setzero_si512(); T];
                for q in 0..8 {
                    let w = _mm512_loadu_si512(lines.add(64 * q).cast());
                    for t in 0..T {
                        let a = _mm512_set1_epi32(*self.panel.add((8 * b + q) * self.tw + t));
                        if T <= 2 && q % 2 == 1 {
                            odd[t] = _mm512_dpbusd_epi32(odd[t], w, a);
                        } else {
                            sums[t] = _mm512_dpbusd_epi32(sums[t], w, a);
                        }
                    }
                }
                if T <= 2 {
                    for t in 0..T {
                        sums[t] = _mm512_add_epi32(sums[t], odd[t]);
                    }
                }
                let scales = self.codes.add(scale_offset(b));
                let dw = _mm512_cvtph_ps(_mm256_loadu_si256(scales.cast()));
                for t in 0..T {
                    let s = _mm512_mul_ps(dw, _mm512_set1_ps(*self.d.add(t * nb + b)));
                    let p = _mm512_mul_ps(_mm512_cvtepi32_ps(sums[t]), s);
                    acc[t] = _mm512_add_ps(acc[t], p);
                }
            }
        }
        for t in 0..T {
            // SAFETY: `res[t]` holds 16 floats (`T ≤ TILE`).
            unsafe { _mm512_storeu_ps(res[t].as_mut_ptr(), acc[t]) };
        }
    }
}
