//! AVX-512 VNNI row-at-a-time kernel for the Q8_0 family (Q8_0, Q4_0, MXFP4
//! weights × Q8_0 activations) at decode batch sizes, 1 to
//! [`INVARIANT_ROWS`] tokens.
//!
//! It computes exactly what the AVX2 row kernel (`avx2::q8_0fam::row_tile`)
//! computes, bit for bit, with fewer instructions per token, so that batched
//! decode of a few sessions stays memory bound instead of compute bound:
//!
//! - The integer part. AVX2 forms each 4-byte group's sum `Σ w·a` with
//!   `maddubs(|w|, sign(a, w))` + `madd`; here the activation codes are
//!   flipped once per call to unsigned bytes `a ^ 0x80 = a + 128` and laid
//!   out in token pairs (block `b` of tokens `2p` and `2p + 1` side by side,
//!   64 bytes), the weight block is broadcast to both 256-bit halves of a
//!   512-bit register, and one `vpdpbusd` per block and token pair, started
//!   from the block's correction `−128 · Σ w` (computed once per block),
//!   gives the same exact i32 group sums (`Σ (a + 128)·w − 128 Σ w`). Neither
//!   form can overflow: activation codes are in −127..=127.
//! - The float part is the AVX2 kernel's, operation for operation, in each
//!   256-bit half: per block `s = d_w · d_a` (one f32 multiply),
//!   `acc = fma(f32(group sums), s, acc)` with even blocks in one
//!   accumulator and odd blocks in another, then `even + odd` and the same
//!   horizontal sum.
//!
//! Per block and token pair that is one `vpdpbusd`, one conversion, one
//! permute of the scales and one FMA, against twelve 256-bit operations on
//! AVX2. One token takes the AVX2 kernel itself (there is nothing to share).
//! (Measured on Zen 4 and rejected: weights as unsigned `w + OFF` against
//! signed codes, with the per-token corrections `−OFF · Σ a` computed once
//! per call instead of one correction per block: faster at 2 tokens in cache,
//! 23.4 against 19.6 GB/s per core, but slower at 4 tokens from DRAM, 5.4
//! against 7.3 GB/s, the decode case.)
//! `tests/cross_isa.rs` checks the bit identity with the AVX2 table.

use std::arch::x86_64::*;

use crate::act::Line;
use crate::kernels::avx2;
use crate::kernels::avx2::prefetch_ahead;
use crate::kernels::avx2::q8_0fam::{Dec32, even_odd_blocks, hsum_ps};
use crate::kernels::panel::{grow, with_pool};
use crate::kernels::{INVARIANT_ROWS, MatmulJob};
use crate::out::OutCols;

/// Q8_0-family matmul of up to [`INVARIANT_ROWS`] activation rows.
///
/// # Safety
/// The CPU supports AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C; the job is
/// validated, its weights are `D` blocks and it has 1..=`INVARIANT_ROWS`
/// activation rows.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) unsafe fn matmul_q8_0_rows<D: Dec32>(job: &MatmulJob<'_>, out: &mut OutCols<'_>) {
    let n = job.act.n();
    debug_assert!((1..=INVARIANT_ROWS).contains(&n));
    if n == 1 {
        // SAFETY: forwarded contract (AVX2 is implied by the features above).
        unsafe { avx2::matmul_q8_0_rows::<D>(job, out) };
        return;
    }
    let (qs, stride, dplane, _) = job.act.planes();
    let nb = job.k / 32;
    let pairs = n.div_ceil(2);
    with_pool(|pool| {
        // Flipped codes in pair layout: `[pair p][block b][token (2)][32]`,
        // a missing odd token as zero codes (0x80); scales transposed to
        // `panel[4b + t]` (zero for absent tokens).
        grow(&mut pool.codes, pairs * nb, Line([0; 64]));
        grow(&mut pool.scales, 4 * nb, 0.0);
        let codes = &mut pool.codes[..pairs * nb];
        for (i, line) in codes.iter_mut().enumerate() {
            let (p, b) = (i / nb, i % nb);
            for h in 0..2 {
                let t = 2 * p + h;
                let dst = &mut line.0[32 * h..32 * h + 32];
                if t < n {
                    let src = &qs[t * stride + 32 * b..t * stride + 32 * b + 32];
                    for (d, &s) in dst.iter_mut().zip(src) {
                        *d = s ^ 0x80;
                    }
                } else {
                    dst.fill(0x80);
                }
            }
        }
        let panel = &mut pool.scales[..4 * nb];
        panel.fill(0.0);
        for t in 0..n {
            for b in 0..nb {
                panel[4 * b + t] = dplane[t * nb + b];
            }
        }
        let (u, dp) = (codes.as_ptr().cast::<u8>(), panel.as_ptr());
        let base = job.w.as_ptr();
        for r in 0..job.nrows {
            // SAFETY: row `r` lies inside the validated weights; `u` holds
            // `pairs · nb` lines of codes and `dp` `4 · nb` scales.
            unsafe {
                let row = base.add(r * job.row_bytes);
                if pairs == 1 {
                    store(out, r, n, row_pairs::<D, 1>(row, nb, u, dp));
                } else {
                    store(out, r, n, row_pairs::<D, 2>(row, nb, u, dp));
                }
            }
        }
    });
}

/// Writes one weight row's results for the `n` real tokens.
fn store<const P: usize>(out: &mut OutCols<'_>, r: usize, n: usize, v: [[f32; 2]; P]) {
    for (t, v) in v.into_iter().flatten().take(n).enumerate() {
        out.row_mut(t)[r] = v;
    }
}

/// One weight row (`nb` blocks of `D` at `row`) against `P` token pairs:
/// codes of pair `p`, block `b` in the 64 bytes at `u + 64 (p · nb + b)`,
/// block scales at `dp[4b + t]`.
///
/// # Safety
/// As [`matmul_q8_0_rows`]; the pointers cover `nb` blocks, `P · nb` code
/// lines and `4 · nb` scales.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn row_pairs<D: Dec32, const P: usize>(
    row: *const u8,
    nb: usize,
    u: *const u8,
    dp: *const f32,
) -> [[f32; 2]; P] {
    let mut even = [_mm512_setzero_ps(); P];
    let mut odd = [_mm512_setzero_ps(); P];
    let flip = _mm512_set1_epi8(-128);
    // Scale lanes of pair `p`: `[s_2p × 8 | s_2p+1 × 8]`.
    let lanes: [__m512i; P] = std::array::from_fn(|p| {
        let (lo, hi) = (2 * p as i32, 2 * p as i32 + 1);
        _mm512_setr_epi32(
            lo, lo, lo, lo, lo, lo, lo, lo, hi, hi, hi, hi, hi, hi, hi, hi,
        )
    });
    // Block `b` of every pair into `dst` (a macro, so the body is compiled
    // with this function's target features).
    macro_rules! step {
        ($b:expr, $dst:expr) => {{
            let (b, dst): (usize, &mut [__m512; P]) = ($b, $dst);
            // SAFETY: block `b < nb` of the row, of every pair's codes and of
            // the scale panel are in bounds.
            unsafe {
                let (w, d) = D::load(row.add(b * D::BYTES));
                prefetch_ahead(row.add(b * D::BYTES));
                let w = _mm512_broadcast_i64x4(w);
                let zero = _mm512_setzero_si512();
                let corr = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, flip, w));
                // The same products as AVX2: `d · d_a` for the four lanes.
                let prods =
                    _mm512_castps128_ps512(_mm_mul_ps(_mm_set1_ps(d), _mm_loadu_ps(dp.add(4 * b))));
                for p in 0..P {
                    let a = _mm512_loadu_si512(u.add(64 * (p * nb + b)).cast());
                    let sums = _mm512_dpbusd_epi32(corr, a, w);
                    let s = _mm512_permutexvar_ps(lanes[p], prods);
                    dst[p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), s, dst[p]);
                }
            }
        }};
    }
    even_odd_blocks!(nb, step, &mut even, &mut odd);
    let mut out = [[0.0f32; 2]; P];
    for p in 0..P {
        let v = _mm512_add_ps(even[p], odd[p]);
        out[p] = [
            hsum_ps(_mm512_castps512_ps256(v)),
            hsum_ps(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
                _mm512_castps_pd(v),
            ))),
        ];
    }
    out
}
