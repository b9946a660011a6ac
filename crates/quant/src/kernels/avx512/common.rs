//! AVX-512 (F/BW/VL) pieces shared by the plain-BW and the VNNI kernel sets:
//! float-weight kernels and the f32 helpers.
//!
//! Safety contract of every `unsafe fn` here: the CPU supports AVX-512 F, BW
//! and VL plus AVX2, FMA and F16C (guaranteed by the kernel table), and the
//! pointers/lengths describe validated buffers.

use std::arch::x86_64::*;

use crate::kernels::avx2::float::{FLoad, transpose_queries};
use crate::kernels::avx2::{for_token_tiles, for_token_tiles8, prefetch_ahead};
use crate::kernels::panel::{return_qt, take_qt};
use crate::kernels::{FloatJob, INVARIANT_ROWS, MatmulJob, SCORE_BLOCK};
use crate::out::OutCols;
use crate::rows::RowSet;

/// Loads 16 float weights at `p` (16 elements readable).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn load16<L: FLoad>(p: *const u8) -> __m512 {
    // SAFETY: the caller guarantees 16 readable elements.
    let (lo, hi) = unsafe { (L::load8(p), L::load8(p.add(8 * L::ELEM))) };
    _mm512_castpd_ps(_mm512_insertf64x4::<1>(
        _mm512_castps_pd(_mm512_castps256_ps512(lo)),
        _mm256_castps_pd(hi),
    ))
}

/// One float weight row against `T` activation rows, 16 lanes at a time.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn float_row_tile<L: FLoad, const T: usize>(
    row: *const u8,
    k: usize,
    xs: &[*const f32; T],
) -> [f32; T] {
    let mut acc = [[_mm512_setzero_ps(); T]; 2];
    let mut i = 0;
    while i + 32 <= k {
        if T > 1 {
            // The 64 or 128 bytes of the next-but-some iterations (see
            // `prefetch_ahead`; one token streams fast enough without).
            let p = row.wrapping_add(i * L::ELEM);
            prefetch_ahead(p);
            if L::ELEM > 2 {
                prefetch_ahead(p.wrapping_add(64));
            }
        }
        // SAFETY: elements `i .. i + 32` of the row exist.
        let (w0, w1) = unsafe {
            (
                load16::<L>(row.add(i * L::ELEM)),
                load16::<L>(row.add((i + 16) * L::ELEM)),
            )
        };
        for t in 0..T {
            // SAFETY: elements `i .. i + 32` of every activation row exist.
            unsafe {
                acc[0][t] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xs[t].add(i)), acc[0][t]);
                acc[1][t] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xs[t].add(i + 16)), acc[1][t]);
            }
        }
        i += 32;
    }
    if i + 16 <= k {
        // SAFETY: elements `i .. i + 16` of the row exist.
        let w0 = unsafe { load16::<L>(row.add(i * L::ELEM)) };
        for t in 0..T {
            // SAFETY: elements `i .. i + 16` exist.
            unsafe { acc[0][t] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xs[t].add(i)), acc[0][t]) };
        }
        i += 16;
    }
    let mut out = [0.0f32; T];
    for t in 0..T {
        out[t] = _mm512_reduce_add_ps(_mm512_add_ps(acc[0][t], acc[1][t]));
    }
    while i < k {
        // SAFETY: element `i` exists.
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

/// Two float weight rows against `T` activation rows (see the AVX2 version).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn float_pair_tile<L: FLoad, const T: usize>(
    rows: [*const u8; 2],
    k: usize,
    xs: &[*const f32; T],
) -> [[f32; T]; 2] {
    let mut acc = [[_mm512_setzero_ps(); T]; 2];
    let mut i = 0;
    while i + 16 <= k {
        // SAFETY: elements `i .. i + 16` exist in both rows and every x.
        unsafe {
            let w = [
                load16::<L>(rows[0].add(i * L::ELEM)),
                load16::<L>(rows[1].add(i * L::ELEM)),
            ];
            for t in 0..T {
                let x = _mm512_loadu_ps(xs[t].add(i));
                acc[0][t] = _mm512_fmadd_ps(w[0], x, acc[0][t]);
                acc[1][t] = _mm512_fmadd_ps(w[1], x, acc[1][t]);
            }
        }
        i += 16;
    }
    let mut out = [[0.0f32; T]; 2];
    for r in 0..2 {
        for t in 0..T {
            out[r][t] = _mm512_reduce_add_ps(acc[r][t]);
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

/// Activation bytes per token block of [`matmul_float`].
const FLOAT_X_BUDGET: usize = 384 << 10;

/// Float-weight matmul over f32 activations `job.x`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(crate) unsafe fn matmul_float<L: FLoad>(job: &FloatJob<'_>, out: &mut OutCols<'_>) {
    let base = job.w.as_ptr();
    let mut r = 0;
    // Pairs of rows share activation loads, but sum in another order than
    // the one-row kernel: only batches past `INVARIANT_ROWS` use them.
    if job.n > INVARIANT_ROWS {
        // Tokens in blocks whose activations stay in L2 while every row
        // pair passes over them (each token's sums are the same whatever
        // its block).
        let block = (FLOAT_X_BUDGET / (4 * job.k)).next_multiple_of(8).max(8);
        let pairs = job.nrows / 2;
        for b0 in (0..job.n).step_by(block) {
            for p in 0..pairs {
                let r = 2 * p;
                // SAFETY: rows `r`, `r + 1` lie inside the validated weights.
                let rows = unsafe {
                    [
                        base.add(r * job.row_bytes),
                        base.add((r + 1) * job.row_bytes),
                    ]
                };
                for_token_tiles8!(block.min(job.n - b0), |t, T| {
                    let t0 = b0 + t;
                    let xs: [*const f32; T] =
                        std::array::from_fn(|i| job.x[(t0 + i) * job.x_stride..].as_ptr());
                    // SAFETY: `k` elements per row and per activation row.
                    let res = unsafe { float_pair_tile::<L, T>(rows, job.k, &xs) };
                    for (j, pair) in res.into_iter().enumerate() {
                        for (i, v) in pair.into_iter().enumerate() {
                            out.row_mut(t0 + i)[r + j] = v;
                        }
                    }
                });
            }
        }
        r = 2 * pairs;
    }
    for r in r..job.nrows {
        // SAFETY: row `r` lies inside the validated weights.
        let row = unsafe { base.add(r * job.row_bytes) };
        for_token_tiles!(job.n, |t0, T| {
            let xs: [*const f32; T] =
                std::array::from_fn(|i| job.x[(t0 + i) * job.x_stride..].as_ptr());
            // SAFETY: `k` elements per row and per activation row.
            let res = unsafe { float_row_tile::<L, T>(row, job.k, &xs) };
            for (i, v) in res.into_iter().enumerate() {
                out.row_mut(t0 + i)[r] = v;
            }
        });
    }
}

/// Float-weight matmul with activations from an F32 [`ActBuf`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(crate) unsafe fn matmul_float_act<L: FLoad>(job: &MatmulJob<'_>, out: &mut OutCols<'_>) {
    // SAFETY: same CPU features; the F32 buffer holds `n` rows of `k` floats
    // at its stride.
    unsafe { matmul_float::<L>(&FloatJob::from_act(job), out) }
}

/// `Σ a_i b_i`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(crate) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 64 <= n {
        for (j, s) in acc.iter_mut().enumerate() {
            // SAFETY: `i + 16j + 16 <= n`.
            unsafe {
                *s = _mm512_fmadd_ps(
                    _mm512_loadu_ps(pa.add(i + 16 * j)),
                    _mm512_loadu_ps(pb.add(i + 16 * j)),
                    *s,
                );
            }
        }
        i += 64;
    }
    while i + 16 <= n {
        // SAFETY: `i + 16 <= n`.
        unsafe {
            acc[0] = _mm512_fmadd_ps(
                _mm512_loadu_ps(pa.add(i)),
                _mm512_loadu_ps(pb.add(i)),
                acc[0],
            );
        }
        i += 16;
    }
    if i < n {
        let m: __mmask16 = (1u32 << (n - i)).wrapping_sub(1) as __mmask16;
        // SAFETY: masked loads touch only the `n − i` valid elements.
        unsafe {
            acc[1] = _mm512_fmadd_ps(
                _mm512_maskz_loadu_ps(m, pa.add(i)),
                _mm512_maskz_loadu_ps(m, pb.add(i)),
                acc[1],
            );
        }
    }
    let v = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    _mm512_reduce_add_ps(v)
}

/// `y += a · x`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(crate) unsafe fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let av = _mm512_set1_ps(a);
    let mut i = 0;
    while i < n {
        let left = n - i;
        let m: __mmask16 = if left >= 16 {
            0xFFFF
        } else {
            ((1u32 << left) - 1) as __mmask16
        };
        // SAFETY: masked accesses touch only valid elements.
        unsafe {
            let py = y.as_mut_ptr().add(i);
            let v = _mm512_fmadd_ps(
                av,
                _mm512_maskz_loadu_ps(m, x.as_ptr().add(i)),
                _mm512_maskz_loadu_ps(m, py),
            );
            _mm512_mask_storeu_ps(py, m, v);
        }
        i += 16;
    }
}

/// Weighted sums of rows (see `Kernels::weighted_rows`): tiles of up to four
/// output rows × 64 columns stay in sixteen registers while every row `j`
/// is added with one FMA per element, as the masked-FMA [`axpy`] would.
///
/// # Safety
/// AVX-512 F, FMA available; shapes as checked by `Kernels::weighted_rows`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(crate) unsafe fn weighted_rows(p: &[f32], ldp: usize, rows: RowSet<'_>, out: &mut [f32]) {
    let hd = rows.hd();
    let nh = out.len() / hd;
    let mut d0 = 0;
    while d0 < hd {
        // Columns `d0 + 16c ..` of this 64-column tile that exist.
        let masks: [__mmask16; 4] = std::array::from_fn(|c| {
            let left = hd.saturating_sub(d0 + 16 * c).min(16);
            ((1u32 << left) - 1) as __mmask16
        });
        let mut h = 0;
        while h + 4 <= nh {
            // SAFETY: forwarded shapes; `h + 4 <= nh`.
            unsafe { wr_tile::<4>(p, ldp, rows, out, h, d0, masks) };
            h += 4;
        }
        // SAFETY: as above, for the last `nh − h < 4` output rows.
        unsafe {
            match nh - h {
                3 => wr_tile::<3>(p, ldp, rows, out, h, d0, masks),
                2 => wr_tile::<2>(p, ldp, rows, out, h, d0, masks),
                1 => wr_tile::<1>(p, ldp, rows, out, h, d0, masks),
                _ => {}
            }
        }
        d0 += 64;
    }
}

/// Output rows `h0 .. h0 + H`, columns `d0 .. d0 + 64` (masked) of
/// [`weighted_rows`].
///
/// # Safety
/// As [`weighted_rows`]; `h0 + H <= nh`, `masks` select columns below `hd`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn wr_tile<const H: usize>(
    p: &[f32],
    ldp: usize,
    rows: RowSet<'_>,
    out: &mut [f32],
    h0: usize,
    d0: usize,
    masks: [__mmask16; 4],
) {
    let (m, hd) = (rows.len(), rows.hd());
    let o = out.as_mut_ptr();
    let mut acc = [[_mm512_setzero_ps(); 4]; H];
    for (hh, a) in acc.iter_mut().enumerate() {
        for (c, v) in a.iter_mut().enumerate() {
            // SAFETY: masked loads touch only columns below `hd` of row `h0 + hh < nh`.
            *v = unsafe { _mm512_maskz_loadu_ps(masks[c], o.add((h0 + hh) * hd + d0 + 16 * c)) };
        }
    }
    for j in 0..m {
        let r = rows.row_ptr(j);
        // The same columns of a row a few ahead (selected rows lie anywhere,
        // out of the hardware prefetcher's sight).
        let ahead = rows.row_ptr((j + 4).min(m - 1)).wrapping_add(d0);
        for c in 0..4 {
            prefetch_line(ahead.wrapping_add(16 * c));
        }
        // SAFETY: row `j < m` has `hd` elements; masked columns below `hd`.
        let x: [__m512; 4] =
            std::array::from_fn(|c| unsafe { _mm512_maskz_loadu_ps(masks[c], r.add(d0 + 16 * c)) });
        for (hh, a) in acc.iter_mut().enumerate() {
            // SAFETY: `(h0 + hh) · ldp + j < p.len()` (checked shapes).
            let w = _mm512_set1_ps(unsafe { *p.get_unchecked((h0 + hh) * ldp + j) });
            for c in 0..4 {
                a[c] = _mm512_fmadd_ps(w, x[c], a[c]);
            }
        }
    }
    for (hh, a) in acc.iter().enumerate() {
        for (c, v) in a.iter().enumerate() {
            // SAFETY: as the loads.
            unsafe { _mm512_mask_storeu_ps(o.add((h0 + hh) * hd + d0 + 16 * c), masks[c], *v) };
        }
    }
}

/// Scores (see `Kernels::scores`): up to 64 query rows in the lanes of four
/// vectors (transposed once per 64 rows into `[hd][64]`), each key element
/// broadcast once for all of them, one FMA per element in blocks of
/// [`SCORE_BLOCK`] from zero, the block sums added: the bits of the scalar
/// definition, with no horizontal sums (the
/// row-at-a-time float matmul spends a quarter of its time reducing at
/// attention's short rows). Key rows are read once per 64 query rows.
///
/// # Safety
/// AVX-512 F, FMA available; shapes as checked by `Kernels::scores`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(crate) unsafe fn scores(q: &[f32], rows: RowSet<'_>, out: &mut [f32], ldo: usize, col0: usize) {
    let hd = rows.hd();
    let nh = q.len() / hd;
    let mut qt = take_qt(64 * hd);
    for h0 in (0..nh).step_by(64) {
        let lanes = (nh - h0).min(64);
        let vecs = lanes.div_ceil(16);
        transpose_queries(q, hd, h0, lanes, 16 * vecs, &mut qt[..16 * vecs * hd]);
        // SAFETY: forwarded shapes; `qt` holds `[hd][16 · vecs]`.
        unsafe {
            match vecs {
                4 => score_rows::<4, 3>(&qt, rows, out, ldo, col0, h0, lanes),
                3 => score_rows::<3, 4>(&qt, rows, out, ldo, col0, h0, lanes),
                2 => score_rows::<2, 6>(&qt, rows, out, ldo, col0, h0, lanes),
                _ => score_rows::<1, 8>(&qt, rows, out, ldo, col0, h0, lanes),
            }
        }
    }
    return_qt(qt);
}

/// Query rows `h0 .. h0 + lanes` (`V` vectors of 16 lanes in `qt:
/// [hd][16 V]`) against every row of `rows`, `R` key rows at a time: `R · V`
/// independent FMA chains.
///
/// # Safety
/// As [`scores`]; `lanes <= 16 V` and the output holds rows `h0 .. h0 + lanes`.
#[inline]
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn score_rows<const V: usize, const R: usize>(
    qt: &[f32],
    rows: RowSet<'_>,
    out: &mut [f32],
    ldo: usize,
    col0: usize,
    h0: usize,
    lanes: usize,
) {
    let (m, hd) = (rows.len(), rows.hd());
    let qp = qt.as_ptr();
    for j0 in (0..m).step_by(R) {
        // A last partial group repeats its last row (results dropped).
        let r: [*const f32; R] = std::array::from_fn(|i| rows.row_ptr((j0 + i).min(m - 1)));
        // The next group's rows, fetched a line at a time alongside (selected
        // rows lie anywhere, out of the hardware prefetcher's sight).
        let next: [*const f32; R] = std::array::from_fn(|i| rows.row_ptr((j0 + R + i).min(m - 1)));
        let mut total = [[_mm512_setzero_ps(); V]; R];
        for d0 in (0..hd).step_by(SCORE_BLOCK) {
            let mut acc = [[_mm512_setzero_ps(); V]; R];
            for d in d0..(d0 + SCORE_BLOCK).min(hd) {
                if d % 16 == 0 {
                    for p in next {
                        prefetch_line(p.wrapping_add(d));
                    }
                }
                // SAFETY: `qt` holds `16 V · hd` floats; every row has `hd`.
                unsafe {
                    let qv: [__m512; V] =
                        std::array::from_fn(|v| _mm512_loadu_ps(qp.add(16 * (V * d + v))));
                    for i in 0..R {
                        let k = _mm512_set1_ps(*r[i].add(d));
                        for v in 0..V {
                            acc[i][v] = _mm512_fmadd_ps(k, qv[v], acc[i][v]);
                        }
                    }
                }
            }
            for i in 0..R {
                for v in 0..V {
                    total[i][v] = _mm512_add_ps(total[i][v], acc[i][v]);
                }
            }
        }
        let acc = total;
        for (i, a) in acc.iter().enumerate().take(m - j0) {
            let mut v = [0.0f32; 64];
            for (c, x) in a.iter().enumerate() {
                // SAFETY: `v` holds 64 floats, `16 c + 16 <= 64`.
                unsafe { _mm512_storeu_ps(v.as_mut_ptr().add(16 * c), *x) };
            }
            for (l, &x) in v.iter().enumerate().take(lanes) {
                out[(h0 + l) * ldo + col0 + j0 + i] = x;
            }
        }
    }
}

/// Asks for the cache line at `p` (a hint: never faults, any address).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn prefetch_line(p: *const f32) {
    _mm_prefetch::<_MM_HINT_T0>(p.cast());
}

/// `x *= a`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
pub(crate) unsafe fn scale(a: f32, x: &mut [f32]) {
    let n = x.len();
    let av = _mm512_set1_ps(a);
    let mut i = 0;
    while i < n {
        let left = n - i;
        let m: __mmask16 = if left >= 16 {
            0xFFFF
        } else {
            ((1u32 << left) - 1) as __mmask16
        };
        // SAFETY: masked accesses touch only valid elements.
        unsafe {
            let p = x.as_mut_ptr().add(i);
            _mm512_mask_storeu_ps(p, m, _mm512_mul_ps(av, _mm512_maskz_loadu_ps(m, p)));
        }
        i += 16;
    }
}
