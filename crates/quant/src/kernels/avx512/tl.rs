//! AVX-512 VNNI tokens-in-lanes kernels for the Q8_0 family (Q8_0, Q4_0,
//! MXFP4 × Q8_0): batched decode and prefill.
//!
//! Lane `t` of every accumulator belongs to token `t` of a panel tile
//! ([`crate::kernels::panel`]); the activations are stored flipped (`a + 128`,
//! unsigned) and each four-byte group of signed weights is broadcast to all
//! lanes, so one `vpdpbusd` adds `Σ_4 (a + 128) · w` for 8 (ymm) or 16 (zmm)
//! tokens at once. The `128 · Σ w` excess is removed per block either with a
//! per-row correction computed when the row is prepared (`−128 · Σ w`, the
//! accumulator's start value) or, in tiles with a spare lane, from lane 0:
//! the panel leaves it free with codes 0x80 (`a = 0`), so it accumulates
//! exactly `128 · Σ w`, and subtracting it from every lane leaves `Σ a · w`. The block's i32
//! sums are therefore exact; each block then costs one convert, one multiply
//! (`d_a · d_w`) and one FMA per row for all lanes.
//!
//! Rows are processed four at a time (one activation load feeds four
//! `vpdpbusd`); Q8_0 weights are broadcast straight from the matrix, Q4_0 and
//! MXFP4 rows are first decoded into an L1-resident scratch of signed codes.
//!
//! Safety contract of every `unsafe fn` here: the CPU supports AVX-512
//! F/BW/VL/VNNI plus AVX2/FMA/F16C (checked by the kernel table), and the job
//! and panel describe validated buffers.

use std::arch::x86_64::*;

use crate::kernels::MatmulJob;
use crate::kernels::avx2::q8_0fam::{Dec32, PrepOut, prep_row};
use crate::kernels::panel::{Q8Form, Q8Panel, Tile, grow, plan_tiles, with_pool};
use crate::out::OutCols;

/// One SIMD width of accumulator for the tokens-in-lanes kernels.
pub(crate) trait Lanes {
    /// Lanes (tokens per vector).
    const L: usize;
    /// i32 vector.
    type I: Copy;
    /// f32 vector.
    type F: Copy;
    /// All-zero f32 vector.
    unsafe fn zero_f() -> Self::F;
    /// `x` in every lane.
    unsafe fn splat(x: i32) -> Self::I;
    /// Loads `4 · L` bytes.
    unsafe fn load(p: *const u8) -> Self::I;
    /// `acc + Σ_4 a_u8 · b_i8` per lane.
    unsafe fn dpbusd(acc: Self::I, a: Self::I, b: Self::I) -> Self::I;
    /// `a + b` per lane.
    unsafe fn add(a: Self::I, b: Self::I) -> Self::I;
    /// `acc − acc[0]` in every lane.
    unsafe fn sub_first(acc: Self::I) -> Self::I;
    /// `f + float(acc) · (load(da) · dw)`.
    unsafe fn fma_scaled(f: Self::F, acc: Self::I, da: *const f32, dw: f32) -> Self::F;
    /// As [`Lanes::fma_scaled`] with `dw` the little-endian f16 at `dw16`.
    unsafe fn fma_scaled_f16(f: Self::F, acc: Self::I, da: *const f32, dw16: *const u8) -> Self::F;
    /// Stores the `L` lanes of `f` at `p`.
    unsafe fn store(p: *mut f32, f: Self::F);
    /// `a · b` per i32 lane (low 32 bits).
    unsafe fn mullo(a: Self::I, b: Self::I) -> Self::I;
    /// `a − b` per i32 lane.
    unsafe fn sub(a: Self::I, b: Self::I) -> Self::I;
    /// `acc + a.lo · b.lo + a.hi · b.hi` per i32 lane of i16 pairs.
    unsafe fn dpwssd(acc: Self::I, a: Self::I, b: Self::I) -> Self::I;
    /// `f + float(x) · (load(da) · m)`, `m` a scalar.
    unsafe fn fma_da(f: Self::F, x: Self::I, da: *const f32, m: f32) -> Self::F;
    /// `f − float(x) · (load(da) · m)`.
    unsafe fn fnma_da(f: Self::F, x: Self::I, da: *const f32, m: f32) -> Self::F;
}

/// 8 lanes (ymm).
pub(crate) struct Y8;
/// 16 lanes (zmm).
pub(crate) struct Z16;

impl Lanes for Y8 {
    const L: usize = 8;
    type I = __m256i;
    type F = __m256;
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn zero_f() -> __m256 {
        _mm256_setzero_ps()
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn splat(x: i32) -> __m256i {
        _mm256_set1_epi32(x)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn load(p: *const u8) -> __m256i {
        // SAFETY: the caller guarantees 32 readable bytes.
        unsafe { _mm256_loadu_si256(p.cast()) }
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn dpbusd(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(acc, a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn add(a: __m256i, b: __m256i) -> __m256i {
        _mm256_add_epi32(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn sub_first(acc: __m256i) -> __m256i {
        _mm256_sub_epi32(acc, _mm256_broadcastd_epi32(_mm256_castsi256_si128(acc)))
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn fma_scaled(f: __m256, acc: __m256i, da: *const f32, dw: f32) -> __m256 {
        // SAFETY: the caller guarantees 8 readable floats at `da`.
        let s = unsafe { _mm256_mul_ps(_mm256_loadu_ps(da), _mm256_set1_ps(dw)) };
        _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), s, f)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn fma_scaled_f16(f: __m256, acc: __m256i, da: *const f32, dw16: *const u8) -> __m256 {
        // SAFETY: the caller guarantees 8 floats at `da` and 2 bytes at `dw16`.
        let s = unsafe {
            let h = _mm_set1_epi16(dw16.cast::<i16>().read_unaligned());
            _mm256_mul_ps(_mm256_loadu_ps(da), _mm256_cvtph_ps(h))
        };
        _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), s, f)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn store(p: *mut f32, f: __m256) {
        // SAFETY: the caller guarantees 8 writable floats.
        unsafe { _mm256_storeu_ps(p, f) }
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn mullo(a: __m256i, b: __m256i) -> __m256i {
        _mm256_mullo_epi32(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn sub(a: __m256i, b: __m256i) -> __m256i {
        _mm256_sub_epi32(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn dpwssd(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        _mm256_dpwssd_epi32(acc, a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn fma_da(f: __m256, x: __m256i, da: *const f32, m: f32) -> __m256 {
        // SAFETY: the caller guarantees 8 readable floats at `da`.
        let s = unsafe { _mm256_mul_ps(_mm256_loadu_ps(da), _mm256_set1_ps(m)) };
        _mm256_fmadd_ps(_mm256_cvtepi32_ps(x), s, f)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn fnma_da(f: __m256, x: __m256i, da: *const f32, m: f32) -> __m256 {
        // SAFETY: the caller guarantees 8 readable floats at `da`.
        let s = unsafe { _mm256_mul_ps(_mm256_loadu_ps(da), _mm256_set1_ps(m)) };
        _mm256_fnmadd_ps(_mm256_cvtepi32_ps(x), s, f)
    }
}

impl Lanes for Z16 {
    const L: usize = 16;
    type I = __m512i;
    type F = __m512;
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn zero_f() -> __m512 {
        _mm512_setzero_ps()
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn splat(x: i32) -> __m512i {
        _mm512_set1_epi32(x)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn load(p: *const u8) -> __m512i {
        // SAFETY: the caller guarantees 64 readable bytes.
        unsafe { _mm512_loadu_si512(p.cast()) }
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn dpbusd(acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
        _mm512_dpbusd_epi32(acc, a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn add(a: __m512i, b: __m512i) -> __m512i {
        _mm512_add_epi32(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn sub_first(acc: __m512i) -> __m512i {
        _mm512_sub_epi32(acc, _mm512_broadcastd_epi32(_mm512_castsi512_si128(acc)))
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn fma_scaled(f: __m512, acc: __m512i, da: *const f32, dw: f32) -> __m512 {
        // SAFETY: the caller guarantees 16 readable floats at `da`.
        let s = unsafe { _mm512_mul_ps(_mm512_loadu_ps(da), _mm512_set1_ps(dw)) };
        _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), s, f)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn fma_scaled_f16(f: __m512, acc: __m512i, da: *const f32, dw16: *const u8) -> __m512 {
        // SAFETY: the caller guarantees 16 floats at `da` and 2 bytes at `dw16`.
        let s = unsafe {
            let h = _mm256_set1_epi16(dw16.cast::<i16>().read_unaligned());
            _mm512_mul_ps(_mm512_loadu_ps(da), _mm512_cvtph_ps(h))
        };
        _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), s, f)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn store(p: *mut f32, f: __m512) {
        // SAFETY: the caller guarantees 16 writable floats.
        unsafe { _mm512_storeu_ps(p, f) }
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn mullo(a: __m512i, b: __m512i) -> __m512i {
        _mm512_mullo_epi32(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn sub(a: __m512i, b: __m512i) -> __m512i {
        _mm512_sub_epi32(a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn dpwssd(acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
        _mm512_dpwssd_epi32(acc, a, b)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn fma_da(f: __m512, x: __m512i, da: *const f32, m: f32) -> __m512 {
        // SAFETY: the caller guarantees 16 readable floats at `da`.
        let s = unsafe { _mm512_mul_ps(_mm512_loadu_ps(da), _mm512_set1_ps(m)) };
        _mm512_fmadd_ps(_mm512_cvtepi32_ps(x), s, f)
    }
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    unsafe fn fnma_da(f: __m512, x: __m512i, da: *const f32, m: f32) -> __m512 {
        // SAFETY: the caller guarantees 16 readable floats at `da`.
        let s = unsafe { _mm512_mul_ps(_mm512_loadu_ps(da), _mm512_set1_ps(m)) };
        _mm512_fnmadd_ps(_mm512_cvtepi32_ps(x), s, f)
    }
}

/// One prepared weight row: where its codes are and its per-block data.
#[derive(Clone, Copy)]
pub(crate) struct RowSrc {
    /// Codes of block 0: 32 bytes per block, signed (flipped panels) or
    /// unsigned `w + D::OFF` (signed panels).
    pub codes: *const u8,
    /// Bytes from one block's codes to the next.
    pub stride: usize,
    /// Block scales as f32 (decoded rows other than Q8_0).
    pub dw: *const f32,
    /// Q8_0 rows: the f16 scale of block 0 in the matrix (block `b`'s is
    /// `D::BYTES · b` further).
    pub d16: *const u8,
}

/// `R` rows × one tile: the tile's `L` results per row, in `out[i][..L]`.
///
/// `SIGNED`: the panel holds signed codes and `−128 · Σ a` per block, and
/// the rows hold unsigned codes `w + 128` (prefill and large batches); else
/// the panel holds flipped codes with lane 0 free and the rows signed codes
/// (small batches). `F16`: the block scales are Q8_0's f16 fields, read from
/// the matrix (34 bytes apart) instead of the f32 scratch.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn tile_rows<V: Lanes, const R: usize, const SIGNED: bool, const F16: bool>(
    rows: &[RowSrc; R],
    panel: &Q8Panel<'_>,
    tile: &Tile,
    out: &mut [[f32; 16]; R],
) {
    let nb = panel.nb();
    let mut f = [unsafe { V::zero_f() }; R];
    let codes = panel.codes(tile, 0);
    let scales = panel.scales(tile, 0);
    let corr = panel.corrections(tile, 0);
    for b in 0..nb {
        // SAFETY: block `b` exists in every row and in the panel tile (32 ·
        // L code bytes, L scales and, for signed panels, L corrections per
        // block); `dw` holds `nb` values.
        unsafe {
            // Two accumulators per row (even and odd groups) halve the
            // dependency chains of `vpdpbusd` (latency 4-5 cycles).
            let c0 = if SIGNED {
                V::load(corr.add(b * V::L).cast())
            } else {
                V::splat(0)
            };
            let mut acc: [[V::I; 2]; R] = [[c0, V::splat(0)]; R];
            let a_blk = codes.add(b * 32 * V::L);
            for g in 0..8 {
                let a = V::load(a_blk.add(g * 4 * V::L));
                for i in 0..R {
                    let wp = rows[i].codes.add(b * rows[i].stride + 4 * g);
                    let w = V::splat(wp.cast::<i32>().read_unaligned());
                    let k = g % 2;
                    acc[i][k] = if SIGNED {
                        V::dpbusd(acc[i][k], w, a)
                    } else {
                        V::dpbusd(acc[i][k], a, w)
                    };
                }
            }
            let da = scales.add(b * V::L);
            for i in 0..R {
                let sum = V::add(acc[i][0], acc[i][1]);
                let s = if SIGNED { sum } else { V::sub_first(sum) };
                f[i] = if F16 {
                    V::fma_scaled_f16(f[i], s, da, rows[i].d16.add(34 * b))
                } else {
                    V::fma_scaled(f[i], s, da, *rows[i].dw.add(b))
                };
            }
        }
    }
    for i in 0..R {
        // SAFETY: `out[i]` holds 16 floats, `L <= 16`.
        unsafe { V::store(out[i].as_mut_ptr(), f[i]) };
    }
}

/// Runs one tile over `R` prepared rows and writes its results.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn run_tile<const R: usize, const SIGNED: bool, const F16: bool>(
    rows: &[RowSrc; R],
    panel: &Q8Panel<'_>,
    tile: &Tile,
    r0: usize,
    out: &mut OutCols<'_>,
) {
    let mut res = [[0.0f32; 16]; R];
    // SAFETY: forwarded contract; the panel was built with these tiles.
    unsafe {
        if tile.lanes == 16 {
            tile_rows::<Z16, R, SIGNED, F16>(rows, panel, tile, &mut res);
        } else {
            tile_rows::<Y8, R, SIGNED, F16>(rows, panel, tile, &mut res);
        }
    }
    for (i, r) in res.iter().enumerate() {
        for t in 0..tile.count {
            out.row_mut(tile.t0 + t)[r0 + i] = r[tile.lane0 + t];
        }
    }
}

/// Runs every tile of `panel` over the `g` prepared rows `srcs[..g]`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn run_rows<const SIGNED: bool, const F16: bool>(
    srcs: &[RowSrc; ROWS],
    g: usize,
    panel: &Q8Panel<'_>,
    r0: usize,
    out: &mut OutCols<'_>,
) {
    let s = srcs;
    for tile in panel.tiles() {
        // SAFETY: forwarded contract.
        unsafe {
            match g {
                4 => run_tile::<4, SIGNED, F16>(s, panel, tile, r0, out),
                3 => run_tile::<3, SIGNED, F16>(&[s[0], s[1], s[2]], panel, tile, r0, out),
                2 => run_tile::<2, SIGNED, F16>(&[s[0], s[1]], panel, tile, r0, out),
                _ => run_tile::<1, SIGNED, F16>(&[s[0]], panel, tile, r0, out),
            }
        }
    }
}

/// Rows prepared together.
const ROWS: usize = 4;

/// Largest batch run with flipped activations and a spare lane (one ymm
/// tile); larger batches decode rows into flipped scratch instead.
const SMALL: usize = 7;

/// Q8_0-family matmul, tokens in lanes (any `n >= 1`; the table uses it past
/// [`INVARIANT_ROWS`](crate::kernels::INVARIANT_ROWS)).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) unsafe fn matmul_q8_0<D: Dec32>(job: &MatmulJob<'_>, out: &mut OutCols<'_>) {
    let n = job.act.n();
    let nb = job.k / 32;
    let small = n <= SMALL;
    let plan = if small {
        vec![(0, n, 8)]
    } else {
        plan_tiles(n, 16, 8)
    };
    let form = if small {
        Q8Form::Flip
    } else {
        Q8Form::Signed(D::OFF)
    };
    // In-place rows: Q8_0 with a small batch. Everything else is decoded.
    let raw = D::RAW && small;
    with_pool(|pool| {
        let panel = Q8Panel::build(
            &job.act,
            &plan,
            form,
            &mut pool.codes,
            &mut pool.scales,
            &mut pool.sums,
        );
        grow(&mut pool.rows, ROWS * nb / 2, crate::act::Line([0; 64]));
        grow(&mut pool.rowf, ROWS * nb, 0.0);
        let codes: &mut [u8] = bytemuck::cast_slice_mut(pool.rows.as_mut_slice());
        let dw = &mut pool.rowf;
        let base = job.w.as_ptr();
        let mut r0 = 0;
        while r0 < job.nrows {
            let g = ROWS.min(job.nrows - r0);
            let mut srcs = [RowSrc {
                codes: base,
                stride: 0,
                dw: dw.as_ptr(),
                d16: base,
            }; ROWS];
            for i in 0..g {
                // SAFETY: row `r0 + i` lies inside the validated weights; the
                // scratch slices hold `ROWS · nb` blocks.
                unsafe {
                    let row = base.add((r0 + i) * job.row_bytes);
                    let c = codes.as_mut_ptr().add(i * 32 * nb);
                    if raw {
                        // Read in place.
                    } else if D::RAW {
                        // `w ^ 0x80 = w + 128 = w + D::OFF`.
                        flip_q8_0_row(row, nb, c);
                    } else {
                        prep_row::<D>(
                            row,
                            nb,
                            PrepOut {
                                codes: small.then_some(c.cast()),
                                unsigned: (!small).then_some(c),
                                wide: None,
                                corr: None,
                                dw: dw.as_mut_ptr().add(i * nb),
                            },
                        );
                    }
                    srcs[i] = RowSrc {
                        codes: if raw { row.add(2) } else { c.cast_const() },
                        stride: if raw { D::BYTES } else { 32 },
                        dw: dw.as_ptr().add(i * nb),
                        d16: row,
                    };
                }
            }
            // SAFETY: `srcs[..g]` are prepared rows of `nb` blocks.
            unsafe {
                match (small, D::RAW) {
                    (true, true) => run_rows::<false, true>(&srcs, g, &panel, r0, out),
                    (true, false) => run_rows::<false, false>(&srcs, g, &panel, r0, out),
                    (false, true) => run_rows::<true, true>(&srcs, g, &panel, r0, out),
                    (false, false) => run_rows::<true, false>(&srcs, g, &panel, r0, out),
                }
            }
            r0 += g;
        }
    });
}

/// Copies the codes of a Q8_0 row (`nb` blocks at `row`) to `dst` flipped to
/// unsigned (`w ^ 0x80`), 32 bytes per block.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn flip_q8_0_row(row: *const u8, nb: usize, dst: *mut u8) {
    let flip = _mm256_set1_epi8(-128);
    for b in 0..nb {
        // SAFETY: block `b` (34 bytes) is readable, 32 bytes at `dst + 32 b`
        // are writable (caller contract).
        unsafe {
            let w = _mm256_loadu_si256(row.add(34 * b + 2).cast());
            _mm256_storeu_si256(dst.add(32 * b).cast(), _mm256_xor_si256(w, flip));
        }
    }
}
