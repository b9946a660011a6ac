//! AVX-512 integer kernels, instantiated twice from one body: `bw` (AVX-512
//! F/BW/VL: `maddubs` + `madd`) and `vnni` (adds AVX-512 VNNI: `dpbusd`,
//! `dpwssd`).
//!
//! Q8_0 family (Q8_0, Q4_0, MXFP4 × Q8_0): two blocks per zmm, up to eight
//! tokens per weight row pass (a single token uses the AVX2 kernel). The activations are first rearranged into a
//! [`Q8Panel`] (once per call). With VNNI the codes are stored as `a + 128`
//! (unsigned) so one `dpbusd` gives `Σ (a + 128) w`; the `128 Σ w` term is a
//! per-row-block correction computed once and preloaded into the accumulator,
//! which makes each block pair's i32 sums exact in a single instruction per
//! token. Without VNNI ggml's sign trick is used (`maddubs(|w|, ±a)`).
//!
//! Q8_K family: up to four tokens use the AVX2 fused kernels (decode is
//! bound by decoding the weights, which is 256-bit work); more tokens unpack
//! rows once (AVX2 unpackers) and run a 64-element-wide dot over the unpacked
//! form: `maddubs(u, a)` then `dpwssd`/`madd` with the pre-broadcast scales.
//!
//! Safety contract of every `unsafe fn` here: the CPU has the module's
//! features (checked by the kernel table) and the job was validated.

/// `acc + madd(p, scv)` per i32 lane.
macro_rules! madd_acc {
    (vnni, $acc:expr, $p:expr, $scv:expr) => {
        _mm512_dpwssd_epi32($acc, $p, $scv)
    };
    (bw, $acc:expr, $p:expr, $scv:expr) => {
        _mm512_add_epi32($acc, _mm512_madd_epi16($p, $scv))
    };
}

/// Whether the Q8_0 panel stores `a + 128`.
macro_rules! flip {
    (vnni) => {
        true
    };
    (bw) => {
        false
    };
}

/// Per-block-pair weight preparation: `(x, y)` for [`q8_step!`].
macro_rules! q8_prep {
    (vnni, $w:expr) => {{
        // −128 · Σ w per 4-byte group, the correction of `Σ (a + 128) w`.
        let corr = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(-128), $w);
        (
            $w,
            _mm512_sub_epi32(_mm512_setzero_si512(), corr),
            0 as __mmask64,
        )
    }};
    (bw, $w:expr) => {{
        (
            _mm512_abs_epi8($w),
            _mm512_setzero_si512(),
            _mm512_movepi8_mask($w),
        )
    }};
}

/// Exact i32 sums (16 lanes, 8 per block) of weights × one token's codes `a`.
macro_rules! q8_step {
    (vnni, $prep:expr, $a:expr) => {{ _mm512_dpbusd_epi32($prep.1, $a, $prep.0) }};
    (bw, $prep:expr, $a:expr) => {{
        let signed = _mm512_mask_sub_epi8($a, $prep.2, _mm512_setzero_si512(), $a);
        _mm512_madd_epi16(_mm512_maddubs_epi16($prep.0, signed), _mm512_set1_epi16(1))
    }};
}

/// The last block of an odd-length row, 256 bits wide: i32 sums of block `w`
/// with the panel codes at `a` (flipped or not, as the panel).
macro_rules! q8_tail {
    (vnni, $w:expr, $a:expr) => {{
        let corr = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(-128), $w);
        _mm256_dpbusd_epi32(_mm256_sub_epi32(_mm256_setzero_si256(), corr), $a, $w)
    }};
    (bw, $w:expr, $a:expr) => {{
        let p = _mm256_maddubs_epi16(_mm256_sign_epi8($w, $w), _mm256_sign_epi8($a, $w));
        _mm256_madd_epi16(p, _mm256_set1_epi16(1))
    }};
}

macro_rules! int_kernels {
    ($m:ident, $feat:literal, $kind:ident) => {
        pub(crate) mod $m {
            use std::arch::x86_64::*;

            use crate::blocks::QK_K;
            use crate::kernels::MatmulJob;
            use crate::kernels::avx2::q8_0fam::{Dec32, hsum_ps};
            use crate::kernels::avx2::q8k::{Avx2Unpack, Q8KTok};
            use crate::kernels::avx2::{for_token_tiles8, q8k_tokens, unpack_row};
            use crate::kernels::avx512::common::{Q8Panel, alternate_at, alternate_ps, interleave_pair};
            use crate::kernels::unpack::SbUnpacked;
            use crate::out::OutCols;

            /// One weight row (`nb` blocks) × `T` panel tokens from `t0`.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn q8_0_tile<D: Dec32, const T: usize>(
                row: *const u8,
                nb: usize,
                panel: &Q8Panel,
                t0: usize,
            ) -> [f32; T] {
                let codes: [*const u8; T] = std::array::from_fn(|i| panel.codes(t0 + i));
                let scales: [*const f32; T] = std::array::from_fn(|i| panel.scales(t0 + i));
                let mut acc = [_mm512_setzero_ps(); T];
                for p in 0..nb / 2 {
                    // SAFETY: blocks `2p`, `2p + 1` exist; every token has
                    // `64 · (p + 1)` panel codes and `2 · (p + 1)` scales.
                    unsafe {
                        let (w0, d0) = D::load(row.add(2 * p * D::BYTES));
                        let (w1, d1) = D::load(row.add((2 * p + 1) * D::BYTES));
                        let w = interleave_pair(w0, w1);
                        let dw = alternate_ps(d0, d1);
                        let prep = q8_prep!($kind, w);
                        for t in 0..T {
                            let a = _mm512_loadu_si512(codes[t].add(64 * p).cast());
                            let sums = q8_step!($kind, prep, a);
                            let wd = _mm512_mul_ps(_mm512_cvtepi32_ps(sums), dw);
                            acc[t] = _mm512_fmadd_ps(wd, alternate_at(scales[t].add(2 * p)), acc[t]);
                        }
                    }
                }
                let mut out = [0.0f32; T];
                for t in 0..T {
                    out[t] = _mm512_reduce_add_ps(acc[t]);
                }
                if nb % 2 == 1 {
                    let b = nb - 1;
                    // SAFETY: block `b` exists; its panel codes are the first
                    // 32 bytes of pair `b / 2` (not interleaved) and its scale
                    // is scale `b` of the token.
                    unsafe {
                        let (w, d) = D::load(row.add(b * D::BYTES));
                        for t in 0..T {
                            let a = _mm256_loadu_si256(codes[t].add(64 * (b / 2)).cast());
                            let sums = _mm256_cvtepi32_ps(q8_tail!($kind, w, a));
                            out[t] += hsum_ps(sums) * (d * *scales[t].add(b));
                        }
                    }
                }
                out
            }

            /// Q8_0-family matmul.
            #[target_feature(enable = $feat)]
            pub(crate) unsafe fn matmul_q8_0<D: Dec32>(job: &MatmulJob<'_>, out: &mut OutCols<'_>) {
                let n = job.act.n();
                if n == 1 {
                    // A single token cannot amortise the per-block-pair set-up
                    // of the 512-bit path (measured slower than AVX2 at n = 1
                    // on Zen 4, where zmm µops are double-pumped); decode is
                    // memory bound either way.
                    // SAFETY: AVX2/FMA/F16C are implied by this module's features.
                    unsafe { crate::kernels::avx2::matmul_q8_0::<D>(job, out) };
                    return;
                }
                let nb = job.k / 32;
                let panel = Q8Panel::new(job, flip!($kind));
                let base = job.w.as_ptr();
                for r in 0..job.nrows {
                    // SAFETY: row `r` lies inside the validated weights.
                    let row = unsafe { base.add(r * job.row_bytes) };
                    for_token_tiles8!(n, |t0, T| {
                        // SAFETY: `nb` blocks per row; the panel covers all tokens.
                        let res = unsafe { q8_0_tile::<D, T>(row, nb, &panel, t0) };
                        for (i, v) in res.into_iter().enumerate() {
                            out.row_mut(t0 + i)[r] = v;
                        }
                    });
                }
            }

            /// Unpacked super-blocks of one row × `T` tokens.
            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn q8k_tile<const T: usize, const MIN: bool, const BIAS: bool>(
                sbs: &[SbUnpacked],
                toks: &[Q8KTok; T],
            ) -> [f32; T] {
                let mut acc = [_mm256_setzero_ps(); T];
                for (sb, s) in sbs.iter().enumerate() {
                    let mut isum = [_mm512_setzero_si512(); T];
                    for j in 0..4 {
                        // SAFETY: `s.u`/`s.sc` hold four 64-byte chunks; each
                        // token has 256 codes per super-block.
                        unsafe {
                            let u = _mm512_load_si512(s.u.as_ptr().add(64 * j).cast());
                            let scv = _mm512_load_si512(s.sc.as_ptr().add(32 * j).cast());
                            for t in 0..T {
                                let a =
                                    _mm512_loadu_si512(toks[t].qs.add(QK_K * sb + 64 * j).cast());
                                isum[t] =
                                    madd_acc!($kind, isum[t], _mm512_maddubs_epi16(u, a), scv);
                            }
                        }
                    }
                    for t in 0..T {
                        // SAFETY: each token has 16 sums and one scale per super-block.
                        let (bs, da) = unsafe {
                            (
                                _mm256_loadu_si256(toks[t].bs.add(16 * sb).cast()),
                                *toks[t].d.add(sb),
                            )
                        };
                        let mut s8 = _mm256_add_epi32(
                            _mm512_castsi512_si256(isum[t]),
                            _mm512_extracti64x4_epi64::<1>(isum[t]),
                        );
                        if BIAS {
                            // SAFETY: `bias` is 16 i16.
                            let bias = unsafe { _mm256_loadu_si256(s.bias.as_ptr().cast()) };
                            s8 = _mm256_sub_epi32(s8, _mm256_madd_epi16(bs, bias));
                        }
                        acc[t] = _mm256_fmadd_ps(
                            _mm256_cvtepi32_ps(s8),
                            _mm256_set1_ps(s.d * da),
                            acc[t],
                        );
                        if MIN {
                            // SAFETY: `mins` is 16 i16.
                            let mins = unsafe { _mm256_loadu_si256(s.mins.as_ptr().cast()) };
                            let m = _mm256_cvtepi32_ps(_mm256_madd_epi16(bs, mins));
                            acc[t] = _mm256_fnmadd_ps(m, _mm256_set1_ps(s.dmin * da), acc[t]);
                        }
                    }
                }
                let mut out = [0.0f32; T];
                for t in 0..T {
                    out[t] = hsum_ps(acc[t]);
                }
                out
            }

            #[inline]
            #[target_feature(enable = $feat)]
            unsafe fn q8k_tile_for<U: Avx2Unpack, const T: usize>(
                sbs: &[SbUnpacked],
                toks: &[Q8KTok; T],
            ) -> [f32; T] {
                // SAFETY: forwarded contract.
                unsafe {
                    match (U::MIN, U::BIAS) {
                        (true, true) => q8k_tile::<T, true, true>(sbs, toks),
                        (true, false) => q8k_tile::<T, true, false>(sbs, toks),
                        (false, true) => q8k_tile::<T, false, true>(sbs, toks),
                        (false, false) => q8k_tile::<T, false, false>(sbs, toks),
                    }
                }
            }

            /// Q8_K-family matmul.
            #[target_feature(enable = $feat)]
            pub(crate) unsafe fn matmul_q8k<U: Avx2Unpack>(
                job: &MatmulJob<'_>,
                out: &mut OutCols<'_>,
            ) {
                let n = job.act.n();
                if n <= 4 {
                    // SAFETY: AVX2 is implied by this module's features.
                    unsafe { crate::kernels::avx2::matmul_q8k::<U>(job, out) };
                    return;
                }
                const GROUP: usize = 4;
                let nsb = job.k / QK_K;
                let toks = q8k_tokens(job);
                let base = job.w.as_ptr();
                let mut scratch = vec![bytemuck::Zeroable::zeroed(); GROUP * nsb];
                let mut r0 = 0;
                while r0 < job.nrows {
                    let g = GROUP.min(job.nrows - r0);
                    for i in 0..g {
                        // SAFETY: row `r0 + i` holds `nsb` super-blocks.
                        unsafe {
                            let row = base.add((r0 + i) * job.row_bytes);
                            unpack_row::<U>(row, &mut scratch[i * nsb..(i + 1) * nsb]);
                        }
                    }
                    for_token_tiles8!(n, |t0, T| {
                        let tk: [Q8KTok; T] = std::array::from_fn(|i| toks[t0 + i]);
                        for i in 0..g {
                            let sbs = &scratch[i * nsb..(i + 1) * nsb];
                            // SAFETY: every token has `nsb` super-blocks.
                            let res = unsafe { q8k_tile_for::<U, T>(sbs, &tk) };
                            for (j, v) in res.into_iter().enumerate() {
                                out.row_mut(t0 + j)[r0 + i] = v;
                            }
                        }
                    });
                    r0 += g;
                }
            }
        }
    };
}

int_kernels!(bw, "avx512f,avx512bw,avx512vl,avx2,fma,f16c", bw);
int_kernels!(
    vnni,
    "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c",
    vnni
);
