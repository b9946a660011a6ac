//! Token panels for the tokens-in-lanes kernels (batched decode and prefill).
//!
//! The row-at-a-time kernels put the elements of one activation row in the
//! SIMD lanes, so every block of every token ends in a horizontal reduction
//! and a scale multiply. The tokens-in-lanes kernels turn this around: lane
//! `t` of an accumulator belongs to token `t` of a tile, and a weight group
//! of four elements is *broadcast* to all lanes, so one `dpbusd` (or `madd`)
//! advances `L` tokens at once and no reduction is needed. This module builds
//! the activation side of that layout, once per call, from an [`ActView`]:
//!
//! - [`Q8Panel`]: Q8_0 activations (for Q8_0, Q4_0 and MXFP4 weights). Per
//!   tile of `L` tokens and block `b`: codes as `[group g (8)][lane (L)][4]`
//!   bytes, either flipped to unsigned (`a ^ 0x80 = a + 128`, for VNNI
//!   `dpbusd` with signed weights) or widened to i16 as `[pair p (16)][lane
//!   (L)][2]` (for AVX2 `madd`); then the `L` block scales (f32).
//! - [`Q8KPanel`]: Q8_K activations (for Q2_K, Q4_K, Q6_K and IQ2_XXS
//!   weights). Per tile and super-block: codes as `[group g (64)][lane][4]`
//!   signed bytes, the per-16 sums as i16 pairs `[pair q (8)][lane][2]`
//!   (sub-blocks `2q`, `2q + 1`, for `madd`/`vpdpwssd` with a broadcast pair
//!   of per-sub-block weights) and the super-block scales (f32).
//!
//! Lanes past the last token of a partial tile hold zero codes (flipped:
//! 0x80), zero sums and zero scales, so they compute zeros that are never
//! stored. Everything here is safe, portable Rust; the values are copied
//! exactly, so the kernels' integer sums stay exact.
//!
//! The buffers are reused through a thread-local pool ([`with_pool`]): a
//! panel of a few hundred KiB per call would otherwise be freshly mapped and
//! zero-filled by the kernel on every matmul.

use std::cell::RefCell;

use crate::act::{ActView, Line};
use crate::blocks::{QK_K, QK8_0};

/// Lane counts a panel tile can have.
#[cfg(test)]
const LANES: [usize; 2] = [8, 16];

/// One tile of a panel: `count` tokens from `t0`, padded to `lanes`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tile {
    /// First token.
    pub t0: usize,
    /// Tokens in the tile (`1..=lanes`).
    pub count: usize,
    /// SIMD lanes (8 or 16).
    pub lanes: usize,
    /// Lane of the first token: 1 when the tile has a spare lane (lane 0 then
    /// holds all-zero activations, the correction lane of the flipped Q8_0
    /// kernels), else 0.
    pub lane0: usize,
    /// Byte offset of the tile's codes in the code buffer.
    code_off: usize,
    /// Index of the tile's first scale in the scale buffer.
    scale_off: usize,
    /// Index of the tile's first sum in the sum buffer (Q8_K panels).
    sum_off: usize,
}

/// Splits `n` tokens into tiles: as many full `wide`-lane tiles as fit, then
/// one tile for the rest, `narrow` lanes wide if the rest fits in it.
pub(crate) fn plan_tiles(n: usize, wide: usize, narrow: usize) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::with_capacity(n / wide + 1);
    let mut t0 = 0;
    while t0 < n {
        let left = n - t0;
        let lanes = if left >= wide || left > narrow {
            wide
        } else {
            narrow
        };
        let count = left.min(lanes);
        out.push((t0, count, lanes));
        t0 += count;
    }
    out
}

/// Reusable buffers of one thread (see the module docs).
#[derive(Default)]
pub(crate) struct Pool {
    /// Code bytes (64-byte aligned).
    pub codes: Vec<Line>,
    /// Scales.
    pub scales: Vec<f32>,
    /// Sums (Q8_K panels) or per-row corrections.
    pub sums: Vec<i32>,
    /// Weight scratch of the row decoders (64-byte aligned).
    pub rows: Vec<Line>,
    /// f32 scratch of the row decoders.
    pub rowf: Vec<f32>,
    /// Unpacked super-blocks of the Q8_K-family row decoders.
    pub sbs: Vec<crate::kernels::unpack::SbUnpacked>,
    /// Transposed queries of the attention-scores kernels.
    pub qt: Vec<f32>,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

/// Runs `f` with this thread's buffer pool. A nested call (which the kernels
/// never make) gets a fresh, unpooled set instead of failing.
pub(crate) fn with_pool<R>(f: impl FnOnce(&mut Pool) -> R) -> R {
    POOL.with(|cell| match cell.try_borrow_mut() {
        Ok(mut pool) => f(&mut pool),
        Err(_) => f(&mut Pool::default()),
    })
}

/// This thread's transposed-query scratch, at least `len` floats (contents
/// unspecified); hand it back with [`return_qt`] so the next call reuses it
/// instead of allocating (attention calls it once per query and layer).
pub(crate) fn take_qt(len: usize) -> Vec<f32> {
    let mut v = with_pool(|pool| std::mem::take(&mut pool.qt));
    grow(&mut v, len, 0.0);
    v
}

/// Returns the scratch taken by [`take_qt`] to this thread's pool.
pub(crate) fn return_qt(v: Vec<f32>) {
    with_pool(|pool| pool.qt = v);
}

/// Grows `v` to at least `len` elements (never shrinks; contents unspecified).
pub(crate) fn grow<T: Clone>(v: &mut Vec<T>, len: usize, fill: T) {
    if v.len() < len {
        v.resize(len, fill);
    }
}

/// How Q8_0 codes are stored in a [`Q8Panel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Q8Form {
    /// `a ^ 0x80` bytes, `[g][lane][4]` per block (VNNI with signed weights).
    Flip,
    /// `a` bytes, `[g][lane][4]` per block, plus `−off · Σ a` per block and
    /// lane, for weights stored as unsigned codes `w + off` (VNNI: `w ^ 0x80`,
    /// off 128; AVX2 `maddubs`: Q4_0 nibbles, off 8; MXFP4, off 12).
    Signed(i32),
    /// i16, `[p][lane][2]` per block (AVX2 `madd`).
    Wide,
}

/// Q8_0 activations in tokens-in-lanes layout (see the module docs).
pub(crate) struct Q8Panel<'p> {
    tiles: Vec<Tile>,
    nb: usize,
    form: Q8Form,
    codes: &'p [Line],
    scales: &'p [f32],
    sums: &'p [i32],
}

impl<'p> Q8Panel<'p> {
    /// Builds the panel of `act` (Q8_0, `n` rows of `32 · nb`) into `pool`'s
    /// code and scale buffers, with tiles `plan` (from [`plan_tiles`]).
    pub(crate) fn build(
        act: &ActView<'_>,
        plan: &[(usize, usize, usize)],
        form: Q8Form,
        codes: &'p mut Vec<Line>,
        scales: &'p mut Vec<f32>,
        sums: &'p mut Vec<i32>,
    ) -> Q8Panel<'p> {
        let nb = act.k() / QK8_0;
        let per_lane = match form {
            Q8Form::Flip | Q8Form::Signed(_) => QK8_0,
            Q8Form::Wide => 2 * QK8_0,
        };
        let mut tiles = Vec::with_capacity(plan.len());
        let (mut code_off, mut scale_off) = (0, 0);
        for &(t0, count, lanes) in plan {
            tiles.push(Tile {
                t0,
                count,
                lanes,
                lane0: usize::from(form == Q8Form::Flip && count < lanes),
                code_off,
                scale_off,
                sum_off: scale_off,
            });
            code_off += nb * per_lane * lanes;
            scale_off += nb * lanes;
        }
        grow(codes, code_off.div_ceil(64), Line([0; 64]));
        grow(scales, scale_off, 0.0);
        if matches!(form, Q8Form::Signed(_)) {
            grow(sums, scale_off, 0);
        }
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(codes.as_mut_slice());
        for tile in &tiles {
            fill_q8_tile(act, tile, nb, form, bytes, scales, sums);
        }
        Q8Panel {
            tiles,
            nb,
            form,
            codes: codes.as_slice(),
            scales: scales.as_slice(),
            sums: sums.as_slice(),
        }
    }

    /// The tiles, in token order.
    pub(crate) fn tiles(&self) -> &[Tile] {
        &self.tiles
    }

    /// Blocks per row.
    pub(crate) fn nb(&self) -> usize {
        self.nb
    }

    /// Codes of block `b` of `tile` (`8 · 4 · lanes` bytes flipped, or `16 ·
    /// 2 · lanes` i16 wide), 64-byte aligned when `lanes` is 16.
    pub(crate) fn codes(&self, tile: &Tile, b: usize) -> *const u8 {
        let per = match self.form {
            Q8Form::Flip | Q8Form::Signed(_) => QK8_0,
            Q8Form::Wide => 2 * QK8_0,
        } * tile.lanes;
        let bytes: &[u8] = bytemuck::cast_slice(self.codes);
        bytes[tile.code_off + b * per..].as_ptr()
    }

    /// The `lanes` scales of block `b` of `tile`.
    pub(crate) fn scales(&self, tile: &Tile, b: usize) -> *const f32 {
        self.scales[tile.scale_off + b * tile.lanes..].as_ptr()
    }

    /// The `lanes` corrections `−off · Σ a` of block `b` of `tile`
    /// ([`Q8Form::Signed`] panels only; for others the pointer must not be
    /// read).
    pub(crate) fn corrections(&self, tile: &Tile, b: usize) -> *const i32 {
        let at = (tile.sum_off + b * tile.lanes).min(self.sums.len());
        self.sums[at..].as_ptr()
    }
}

fn fill_q8_tile(
    act: &ActView<'_>,
    tile: &Tile,
    nb: usize,
    form: Q8Form,
    bytes: &mut [u8],
    scales: &mut [f32],
    sums: &mut [i32],
) {
    let l = tile.lanes;
    match form {
        Q8Form::Flip | Q8Form::Signed(_) => {
            // Four codes at a time as one little-endian word (flipped with one
            // XOR): `[b][g][lane]` words.
            let flip = if form == Q8Form::Flip { 0x8080_8080 } else { 0 };
            let off = if let Q8Form::Signed(off) = form {
                off
            } else {
                0
            };
            let dst: &mut [u32] =
                bytemuck::cast_slice_mut(&mut bytes[tile.code_off..tile.code_off + nb * QK8_0 * l]);
            dst.fill(flip);
            if off != 0 {
                sums[tile.sum_off..tile.sum_off + nb * l].fill(0);
            }
            for t in 0..tile.count {
                let Some(row) = act.row_q8_0(tile.t0 + t) else {
                    continue;
                };
                let lane = tile.lane0 + t;
                let src: &[u8] = bytemuck::cast_slice(row.qs);
                for (b, blk) in src.chunks_exact(QK8_0).enumerate() {
                    let out = &mut dst[b * 8 * l..(b + 1) * 8 * l];
                    for (g, q) in blk.chunks_exact(4).enumerate() {
                        let word = u32::from_le_bytes([q[0], q[1], q[2], q[3]]);
                        out[g * l + lane] = word ^ flip;
                    }
                    if off != 0 {
                        let s: i32 = row.qs[QK8_0 * b..QK8_0 * (b + 1)]
                            .iter()
                            .map(|&v| i32::from(v))
                            .sum();
                        sums[tile.sum_off + b * l + lane] = -off * s;
                    }
                }
            }
        }
        Q8Form::Wide => {
            let dst: &mut [i16] = bytemuck::cast_slice_mut(
                &mut bytes[tile.code_off..tile.code_off + nb * 2 * QK8_0 * l],
            );
            dst.fill(0);
            for t in 0..tile.count {
                let Some(row) = act.row_q8_0(tile.t0 + t) else {
                    continue;
                };
                let lane = tile.lane0 + t;
                for b in 0..nb {
                    let blk = &mut dst[b * QK8_0 * l..(b + 1) * QK8_0 * l];
                    for p in 0..16 {
                        let o = 2 * (p * l + lane);
                        blk[o] = i16::from(row.qs[QK8_0 * b + 2 * p]);
                        blk[o + 1] = i16::from(row.qs[QK8_0 * b + 2 * p + 1]);
                    }
                }
            }
        }
    }
    let sc = &mut scales[tile.scale_off..tile.scale_off + nb * l];
    sc.fill(0.0);
    for t in 0..tile.count {
        if let Some(row) = act.row_q8_0(tile.t0 + t) {
            let lane = tile.lane0 + t;
            for b in 0..nb {
                sc[b * l + lane] = row.d[b];
            }
        }
    }
}

/// Q8_K activations in tokens-in-lanes layout (see the module docs).
pub(crate) struct Q8KPanel<'p> {
    tiles: Vec<Tile>,
    nsb: usize,
    codes: &'p [Line],
    scales: &'p [f32],
    sums: &'p [i32],
}

impl<'p> Q8KPanel<'p> {
    /// Builds the panel of `act` (Q8_K, `n` rows of `256 · nsb`) with tiles
    /// `plan` into `pool`-style buffers.
    pub(crate) fn build(
        act: &ActView<'_>,
        plan: &[(usize, usize, usize)],
        codes: &'p mut Vec<Line>,
        scales: &'p mut Vec<f32>,
        sums: &'p mut Vec<i32>,
    ) -> Q8KPanel<'p> {
        let nsb = act.k() / QK_K;
        let mut tiles = Vec::with_capacity(plan.len());
        let (mut code_off, mut scale_off, mut sum_off) = (0, 0, 0);
        for &(t0, count, lanes) in plan {
            tiles.push(Tile {
                t0,
                count,
                lanes,
                lane0: 0,
                code_off,
                scale_off,
                sum_off,
            });
            code_off += nsb * QK_K * lanes;
            scale_off += nsb * lanes;
            sum_off += nsb * 8 * lanes;
        }
        grow(codes, code_off.div_ceil(64), Line([0; 64]));
        grow(scales, scale_off, 0.0);
        grow(sums, sum_off, 0);
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(codes.as_mut_slice());
        for tile in &tiles {
            let l = tile.lanes;
            let dst = &mut bytes[tile.code_off..tile.code_off + nsb * QK_K * l];
            dst.fill(0);
            let sc = &mut scales[tile.scale_off..tile.scale_off + nsb * l];
            sc.fill(0.0);
            let sm = &mut sums[tile.sum_off..tile.sum_off + nsb * 8 * l];
            sm.fill(0);
            for lane in 0..tile.count {
                let Some(row) = act.row_q8k(tile.t0 + lane) else {
                    continue;
                };
                for s in 0..nsb {
                    let blk = &mut dst[s * QK_K * l..(s + 1) * QK_K * l];
                    for g in 0..QK_K / 4 {
                        let src = &row.qs[QK_K * s + 4 * g..QK_K * s + 4 * g + 4];
                        let o = 4 * (g * l + lane);
                        for j in 0..4 {
                            blk[o + j] = src[j] as u8;
                        }
                    }
                    sc[s * l + lane] = row.d[s];
                    for q in 0..8 {
                        let lo = row.bsums[16 * s + 2 * q] as u16;
                        let hi = row.bsums[16 * s + 2 * q + 1] as u16;
                        sm[(s * 8 + q) * l + lane] = (u32::from(lo) | (u32::from(hi) << 16)) as i32;
                    }
                }
            }
        }
        Q8KPanel {
            tiles,
            nsb,
            codes: codes.as_slice(),
            scales: scales.as_slice(),
            sums: sums.as_slice(),
        }
    }

    /// The tiles, in token order.
    pub(crate) fn tiles(&self) -> &[Tile] {
        &self.tiles
    }

    /// Super-blocks per row.
    pub(crate) fn nsb(&self) -> usize {
        self.nsb
    }

    /// Codes of super-block `s` of `tile`: `64 · 4 · lanes` signed bytes.
    pub(crate) fn codes(&self, tile: &Tile, s: usize) -> *const u8 {
        let bytes: &[u8] = bytemuck::cast_slice(self.codes);
        bytes[tile.code_off + s * QK_K * tile.lanes..].as_ptr()
    }

    /// The `lanes` scales of super-block `s` of `tile`.
    pub(crate) fn scales(&self, tile: &Tile, s: usize) -> *const f32 {
        self.scales[tile.scale_off + s * tile.lanes..].as_ptr()
    }

    /// The per-16 sums of super-block `s` of `tile`: `[8][lanes]` i16 pairs.
    pub(crate) fn sums(&self, tile: &Tile, s: usize) -> *const i32 {
        self.sums[tile.sum_off + s * 8 * tile.lanes..].as_ptr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_plans_cover_every_token_once() {
        for n in 0..70 {
            for (wide, narrow) in [(16, 8), (8, 8)] {
                let plan = plan_tiles(n, wide, narrow);
                let mut next = 0;
                for &(t0, count, lanes) in &plan {
                    assert_eq!(t0, next);
                    assert!(count >= 1 && count <= lanes);
                    assert!(lanes == wide || lanes == narrow);
                    next += count;
                }
                assert_eq!(next, n);
                assert!(LANES.contains(&wide) && LANES.contains(&narrow));
            }
        }
    }
}
