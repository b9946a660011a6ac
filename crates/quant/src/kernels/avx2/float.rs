//! AVX2 float kernels: F32/F16/BF16 weights × f32 activations (converted on
//! the fly with F16C / integer shifts), the f32 helpers of the forward pass,
//! and the SIMD activation quantizers (bit-identical to the scalar rules).
//!
//! Safety contract of every `unsafe fn` here: the CPU supports AVX2, FMA and
//! F16C, and pointers/lengths describe validated buffers.

use std::arch::x86_64::*;

use crate::act::{ActBuf, ActType};
use crate::blocks::{QK_K, QK8_0, f16_le};
use crate::kernels::SCORE_BLOCK;
use crate::kernels::panel::{return_qt, take_qt};
use crate::rows::RowSet;

use super::q8_0fam::hsum_ps;

/// A float storage type that loads as f32 lanes.
pub(crate) trait FLoad {
    /// Bytes per element.
    const ELEM: usize;
    /// Loads 8 elements at `p`.
    unsafe fn load8(p: *const u8) -> __m256;
    /// Loads one element at `p`.
    unsafe fn load1(p: *const u8) -> f32;
}

/// F32 weights.
pub(crate) struct LF32;
/// F16 weights.
pub(crate) struct LF16;
/// BF16 weights.
pub(crate) struct LBf16;

impl FLoad for LF32 {
    const ELEM: usize = 4;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(p: *const u8) -> __m256 {
        // SAFETY: the caller guarantees 32 readable bytes.
        unsafe { _mm256_loadu_ps(p.cast()) }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load1(p: *const u8) -> f32 {
        // SAFETY: the caller guarantees 4 readable bytes.
        unsafe { p.cast::<f32>().read_unaligned() }
    }
}

impl FLoad for LF16 {
    const ELEM: usize = 2;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(p: *const u8) -> __m256 {
        // SAFETY: the caller guarantees 16 readable bytes.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load1(p: *const u8) -> f32 {
        // SAFETY: the caller guarantees 2 readable bytes.
        unsafe { super::q8_0fam::f16_at(p) }
    }
}

impl FLoad for LBf16 {
    const ELEM: usize = 2;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load8(p: *const u8) -> __m256 {
        // SAFETY: the caller guarantees 16 readable bytes.
        let h = unsafe { _mm_loadu_si128(p.cast()) };
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load1(p: *const u8) -> f32 {
        // SAFETY: the caller guarantees 2 readable bytes.
        let b = unsafe { p.cast::<u16>().read_unaligned() };
        f32::from_bits(u32::from(b) << 16)
    }
}

/// One float weight row of `k` elements against `T` f32 activation rows.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn row_tile<L: FLoad, const T: usize>(
    row: *const u8,
    k: usize,
    xs: &[*const f32; T],
) -> [f32; T] {
    let mut acc = [[_mm256_setzero_ps(); T]; 2];
    let mut i = 0;
    // Every token sums in the same order whatever `T` is (two accumulators
    // over alternating 8-element chunks, then the tail), so a row of a batch
    // gets the bits of a one-token call (`INVARIANT_ROWS`).
    while i + 16 <= k {
        if T > 1 && (i * L::ELEM) % 64 == 0 {
            // One line per 64 bytes (see `prefetch_ahead`).
            super::prefetch_ahead(row.wrapping_add(i * L::ELEM));
        }
        // SAFETY: elements `i .. i + 16` are in bounds.
        unsafe {
            let w0 = L::load8(row.add(i * L::ELEM));
            let w1 = L::load8(row.add((i + 8) * L::ELEM));
            for t in 0..T {
                acc[0][t] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xs[t].add(i)), acc[0][t]);
                acc[1][t] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xs[t].add(i + 8)), acc[1][t]);
            }
        }
        i += 16;
    }
    if i + 8 <= k {
        // SAFETY: elements `i .. i + 8` are in bounds.
        unsafe {
            let w = L::load8(row.add(i * L::ELEM));
            for t in 0..T {
                acc[0][t] = _mm256_fmadd_ps(w, _mm256_loadu_ps(xs[t].add(i)), acc[0][t]);
            }
        }
        i += 8;
    }
    let mut out = [0.0f32; T];
    for t in 0..T {
        out[t] = hsum_ps(_mm256_add_ps(acc[0][t], acc[1][t]));
    }
    while i < k {
        // SAFETY: element `i` is in bounds.
        unsafe {
            let w = L::load1(row.add(i * L::ELEM));
            for t in 0..T {
                out[t] += w * *xs[t].add(i);
            }
        }
        i += 1;
    }
    out
}

/// Two float weight rows against `T` activation rows: each activation load
/// feeds both rows and each weight load all tokens (register tiling for
/// batches, where one row at a time is bound by loads).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn row_pair_tile<L: FLoad, const T: usize>(
    rows: [*const u8; 2],
    k: usize,
    xs: &[*const f32; T],
) -> [[f32; T]; 2] {
    let mut acc = [[_mm256_setzero_ps(); T]; 2];
    let mut i = 0;
    while i + 8 <= k {
        // SAFETY: elements `i .. i + 8` exist in both rows and every x.
        unsafe {
            let w = [
                L::load8(rows[0].add(i * L::ELEM)),
                L::load8(rows[1].add(i * L::ELEM)),
            ];
            for t in 0..T {
                let x = _mm256_loadu_ps(xs[t].add(i));
                acc[0][t] = _mm256_fmadd_ps(w[0], x, acc[0][t]);
                acc[1][t] = _mm256_fmadd_ps(w[1], x, acc[1][t]);
            }
        }
        i += 8;
    }
    let mut out = [[0.0f32; T]; 2];
    for r in 0..2 {
        for t in 0..T {
            out[r][t] = hsum_ps(acc[r][t]);
        }
    }
    while i < k {
        for r in 0..2 {
            // SAFETY: element `i` exists.
            unsafe {
                let w = L::load1(rows[r].add(i * L::ELEM));
                for t in 0..T {
                    out[r][t] += w * *xs[t].add(i);
                }
            }
        }
        i += 1;
    }
    out
}

/// `Σ a_i b_i` with four accumulators.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (j, s) in acc.iter_mut().enumerate() {
            // SAFETY: `i + 8j + 8 <= n`.
            unsafe {
                *s = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(i + 8 * j)),
                    _mm256_loadu_ps(pb.add(i + 8 * j)),
                    *s,
                );
            }
        }
        i += 32;
    }
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n`.
        unsafe {
            acc[0] = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(i)),
                _mm256_loadu_ps(pb.add(i)),
                acc[0],
            );
        }
        i += 8;
    }
    let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut s = hsum_ps(v);
    for j in i..n {
        s += a[j] * b[j];
    }
    s
}

/// `y += a · x`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let av = _mm256_set1_ps(a);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n` for both slices.
        unsafe {
            let py = y.as_mut_ptr().add(i);
            _mm256_storeu_ps(
                py,
                _mm256_fmadd_ps(av, _mm256_loadu_ps(x.as_ptr().add(i)), _mm256_loadu_ps(py)),
            );
        }
        i += 8;
    }
    for j in i..n {
        y[j] += a * x[j];
    }
}

/// Weighted sums of rows (see `Kernels::weighted_rows`): tiles of two output
/// rows × 32 columns stay in eight registers while every row `j` is added
/// with one FMA per element, as [`axpy`] does; columns past the last whole
/// tile and a last odd output row go through [`axpy`] itself.
///
/// # Safety
/// AVX2 and FMA available; shapes as checked by `Kernels::weighted_rows`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn weighted_rows(p: &[f32], ldp: usize, rows: RowSet<'_>, out: &mut [f32]) {
    let hd = rows.hd();
    let (m, nh) = (rows.len(), out.len() / hd);
    let main = hd / 32 * 32;
    let (pp, o) = (p.as_ptr(), out.as_mut_ptr());
    let mut h0 = 0;
    while h0 + 2 <= nh {
        for d0 in (0..main).step_by(32) {
            let mut acc = [[_mm256_setzero_ps(); 4]; 2];
            for (hh, a) in acc.iter_mut().enumerate() {
                for (c, v) in a.iter_mut().enumerate() {
                    // SAFETY: columns `d0 + 8c .. + 8 <= main <= hd` of row `h0 + hh < nh`.
                    *v = unsafe { _mm256_loadu_ps(o.add((h0 + hh) * hd + d0 + 8 * c)) };
                }
            }
            for j in 0..m {
                let r = rows.row_ptr(j);
                // SAFETY: row `j < m` has `hd` elements; columns below `main`.
                let x: [__m256; 4] =
                    std::array::from_fn(|c| unsafe { _mm256_loadu_ps(r.add(d0 + 8 * c)) });
                for (hh, a) in acc.iter_mut().enumerate() {
                    // SAFETY: `(h0 + hh) · ldp + j < p.len()` (checked shapes).
                    let w = _mm256_set1_ps(unsafe { *pp.add((h0 + hh) * ldp + j) });
                    for c in 0..4 {
                        a[c] = _mm256_fmadd_ps(w, x[c], a[c]);
                    }
                }
            }
            for (hh, a) in acc.iter().enumerate() {
                for (c, v) in a.iter().enumerate() {
                    // SAFETY: as the loads.
                    unsafe { _mm256_storeu_ps(o.add((h0 + hh) * hd + d0 + 8 * c), *v) };
                }
            }
        }
        h0 += 2;
    }
    // SAFETY (both calls): AVX2 and FMA are available (this function's contract).
    let axpy_avx2 = |a: f32, x: &[f32], y: &mut [f32]| unsafe { axpy(a, x, y) };
    // Columns past the whole tiles of the paired rows.
    if main < hd {
        super::super::weighted_rows_by_axpy(axpy_avx2, p, ldp, rows, main..hd, &mut out[..h0 * hd]);
    }
    // The last odd output row, all columns.
    if h0 < nh {
        super::super::weighted_rows_by_axpy(
            axpy_avx2,
            &p[h0 * ldp..],
            ldp,
            rows,
            0..hd,
            &mut out[h0 * hd..],
        );
    }
}

/// Rows scored together by [`scores`] (six block accumulators, six totals,
/// one query vector and one broadcast fit the sixteen registers).
const SCORE_ROWS: usize = 6;

/// Scores (see `Kernels::scores`): query rows in the 8 lanes of a vector
/// (the queries transposed once per 8 rows into `[hd][8]`), each key element
/// broadcast, one FMA per element in blocks of [`SCORE_BLOCK`] from zero,
/// the block sums added: the bits of the scalar definition, with no
/// horizontal sums.
///
/// # Safety
/// AVX2 and FMA available; shapes as checked by `Kernels::scores`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn scores(q: &[f32], rows: RowSet<'_>, out: &mut [f32], ldo: usize, col0: usize) {
    let hd = rows.hd();
    let (m, nh) = (rows.len(), q.len() / hd);
    let mut scratch = take_qt(8 * hd);
    let qt = &mut scratch[..8 * hd];
    for h0 in (0..nh).step_by(8) {
        let lanes = (nh - h0).min(8);
        transpose_queries(q, hd, h0, lanes, 8, qt);
        for j0 in (0..m).step_by(SCORE_ROWS) {
            // A last partial group repeats its last row (results dropped).
            let r: [*const f32; SCORE_ROWS] =
                std::array::from_fn(|i| rows.row_ptr((j0 + i).min(m - 1)));
            let mut total = [_mm256_setzero_ps(); SCORE_ROWS];
            for d0 in (0..hd).step_by(SCORE_BLOCK) {
                let mut acc = [_mm256_setzero_ps(); SCORE_ROWS];
                for d in d0..(d0 + SCORE_BLOCK).min(hd) {
                    // SAFETY: `qt` holds `8 · hd` floats; every row has `hd`.
                    unsafe {
                        let qv = _mm256_loadu_ps(qt.as_ptr().add(8 * d));
                        for i in 0..SCORE_ROWS {
                            acc[i] =
                                _mm256_fmadd_ps(_mm256_broadcast_ss(&*r[i].add(d)), qv, acc[i]);
                        }
                    }
                }
                for i in 0..SCORE_ROWS {
                    total[i] = _mm256_add_ps(total[i], acc[i]);
                }
            }
            let acc = total;
            for (i, a) in acc.iter().enumerate().take(m - j0) {
                let mut v = [0.0f32; 8];
                // SAFETY: `v` is 8 writable floats.
                unsafe { _mm256_storeu_ps(v.as_mut_ptr(), *a) };
                for (l, &x) in v.iter().enumerate().take(lanes) {
                    out[(h0 + l) * ldo + col0 + j0 + i] = x;
                }
            }
        }
    }
    return_qt(scratch);
}

/// Writes query rows `h0 .. h0 + lanes` of `q: [nh, hd]` transposed into
/// `qt: [hd][width]`, lanes past `lanes` zero.
pub(crate) fn transpose_queries(
    q: &[f32],
    hd: usize,
    h0: usize,
    lanes: usize,
    width: usize,
    qt: &mut [f32],
) {
    qt.fill(0.0);
    for l in 0..lanes {
        for (d, &v) in q[(h0 + l) * hd..(h0 + l + 1) * hd].iter().enumerate() {
            qt[d * width + l] = v;
        }
    }
}

/// `x *= a`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn scale(a: f32, x: &mut [f32]) {
    let av = _mm256_set1_ps(a);
    let n = x.len();
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n`.
        unsafe {
            let p = x.as_mut_ptr().add(i);
            _mm256_storeu_ps(p, _mm256_mul_ps(av, _mm256_loadu_ps(p)));
        }
        i += 8;
    }
    for v in &mut x[i..] {
        *v *= a;
    }
}

/// Float bytes of storage type `L` to f32 (`dst.len()` elements).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn convert<L: FLoad>(src: &[u8], dst: &mut [f32]) {
    let n = dst.len().min(src.len() / L::ELEM);
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: `i + 8 <= n` elements are readable and writable.
        unsafe {
            _mm256_storeu_ps(
                dst.as_mut_ptr().add(i),
                L::load8(src.as_ptr().add(i * L::ELEM)),
            )
        };
        i += 8;
    }
    while i < n {
        // SAFETY: element `i` is readable.
        dst[i] = unsafe { L::load1(src.as_ptr().add(i * L::ELEM)) };
        i += 1;
    }
}

/// `roundf` on eight lanes: round half away from zero, exactly.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn roundf_ps(v: __m256) -> __m256 {
    let sign = _mm256_set1_ps(-0.0);
    let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(v);
    // `v − t` is exact (the fraction bits of `v`).
    let frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
    let half = _mm256_cmp_ps::<_CMP_GE_OQ>(frac, _mm256_set1_ps(0.5));
    let one = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0));
    _mm256_add_ps(t, _mm256_and_ps(half, one))
}

/// Packs four vectors of 8 integral i32 values (in i8 range) into 32 i8, in order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn pack_i8(a: __m256i, b: __m256i, c: __m256i, d: __m256i) -> __m256i {
    let ab = _mm256_packs_epi32(a, b);
    let cd = _mm256_packs_epi32(c, d);
    let x = _mm256_packs_epi16(ab, cd);
    _mm256_permutevar8x32_epi32(x, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// Largest |x| of 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hmax_ps(v: __m256) -> f32 {
    let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let m = _mm_max_ss(m, _mm_movehdup_ps(m));
    _mm_cvtss_f32(m)
}

/// Q8_0 quantization of one block of 32 (`x`: 32 readable floats, `q`: 32
/// writable codes); returns the f16-rounded scale. Same bytes as the scalar
/// `quantize_q8_0_block`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_block(x: *const f32, q: *mut i8) -> f32 {
    let sign = _mm256_set1_ps(-0.0);
    // SAFETY: 32 readable floats at `x`.
    let v = unsafe { [0, 8, 16, 24].map(|o| _mm256_loadu_ps(x.add(o))) };
    let mut m = _mm256_andnot_ps(sign, v[0]);
    for vi in &v[1..] {
        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, *vi));
    }
    let amax = hmax_ps(m);
    let d = amax / 127.0;
    let id = _mm256_set1_ps(if d != 0.0 { 1.0 / d } else { 0.0 });
    let r = v.map(|vi| _mm256_cvtps_epi32(roundf_ps(_mm256_mul_ps(vi, id))));
    // SAFETY: 32 writable bytes at `q`.
    unsafe { _mm256_storeu_si256(q.cast(), pack_i8(r[0], r[1], r[2], r[3])) };
    f16_le(crate::blocks::f16_to_le(d))
}

/// Q8_K quantization of one block of 256; returns `d`. Same bytes as the scalar
/// `quantize_q8k_block`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8k_block(x: &[f32], q: &mut [i8], bsums: &mut [i16]) -> f32 {
    let sign = _mm256_set1_ps(-0.0);
    let px = x.as_ptr();
    let mut m = _mm256_setzero_ps();
    for c in 0..QK_K / 8 {
        // SAFETY: `x` has 256 floats.
        m = _mm256_max_ps(
            m,
            _mm256_andnot_ps(sign, unsafe { _mm256_loadu_ps(px.add(8 * c)) }),
        );
    }
    let amax = hmax_ps(m);
    if amax == 0.0 {
        q[..QK_K].fill(0);
        bsums[..QK_K / 16].fill(0);
        return 0.0;
    }
    // The signed value of the first element of largest magnitude.
    let max = x[..QK_K]
        .iter()
        .copied()
        .find(|v| v.abs() == amax)
        .unwrap_or(amax);
    let iscale = -127.0 / max;
    let is = _mm256_set1_ps(iscale);
    let top = _mm256_set1_epi32(127);
    for c in 0..QK_K / 32 {
        // SAFETY: `x` has 256 floats, `q` 256 codes.
        unsafe {
            let r = [0, 8, 16, 24].map(|o| {
                let v = _mm256_mul_ps(_mm256_loadu_ps(px.add(32 * c + o)), is);
                _mm256_min_epi32(_mm256_cvtps_epi32(v), top)
            });
            _mm256_storeu_si256(
                q.as_mut_ptr().add(32 * c).cast(),
                pack_i8(r[0], r[1], r[2], r[3]),
            );
        }
    }
    for (s, chunk) in bsums[..QK_K / 16]
        .iter_mut()
        .zip(q[..QK_K].chunks_exact(16))
    {
        *s = chunk.iter().map(|&v| i16::from(v)).sum();
    }
    1.0 / iscale
}

/// Activation quantization into a prepared buffer.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn quantize_act(x: &[f32], out: &mut ActBuf) {
    let (act, n, k) = (out.act_type(), out.n(), out.k());
    let (qs, stride, d, bsums) = out.planes_mut();
    for t in 0..n {
        let xr = &x[t * k..(t + 1) * k];
        let row = &mut qs[t * stride..t * stride + stride];
        match act {
            ActType::F32 => {
                let dst: &mut [f32] = bytemuck::cast_slice_mut(row);
                dst[..k].copy_from_slice(xr);
            }
            ActType::Q8_0 => {
                let nd = k / QK8_0;
                let codes: &mut [i8] = bytemuck::cast_slice_mut(&mut row[..k]);
                for b in 0..nd {
                    // SAFETY: block `b` of the row has 32 inputs and 32 codes.
                    d[t * nd + b] = unsafe {
                        q8_0_block(xr.as_ptr().add(32 * b), codes.as_mut_ptr().add(32 * b))
                    };
                }
            }
            ActType::Q8_K => {
                let (nd, nb) = (k / QK_K, k / 16);
                let codes: &mut [i8] = bytemuck::cast_slice_mut(&mut row[..k]);
                for b in 0..nd {
                    // SAFETY: slices of exactly one block.
                    d[t * nd + b] = unsafe {
                        q8k_block(
                            &xr[QK_K * b..QK_K * (b + 1)],
                            &mut codes[QK_K * b..QK_K * (b + 1)],
                            &mut bsums[t * nb + 16 * b..t * nb + 16 * (b + 1)],
                        )
                    };
                }
            }
        }
    }
}
