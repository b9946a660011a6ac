//! AVX-512 VNNI tokens-in-lanes kernels for the Q8_K family (Q2_K, Q4_K,
//! Q6_K, IQ2_XXS × Q8_K): batched decode, routed experts with several tokens,
//! and prefill.
//!
//! Rows are first unpacked (the AVX2 unpackers of [`crate::kernels::avx2`])
//! into [`SbUnpacked`] super-blocks: unsigned codes `u = w + off`, one
//! integer scale per 16-element sub-block (`sc32`) and the min or bias
//! multipliers. Lane `t` of
//! every accumulator belongs to token `t` of a panel tile ([`Q8KPanel`]:
//! signed Q8_K codes, i16 pairs of per-16 sums, scales). Per sub-block, four
//! `vpdpbusd` of a broadcast 4-byte code group with the panel give `Σ u a`
//! for all lanes; one `vpmulld` by the sub-block scale folds it into the
//! super-block sum (types with 32-element scales fold every eight groups).
//! Q2_K's scales are instead folded into its codes when the rows are
//! unpacked (`3 · 15` fits a byte, see `avx2::tlk::fold_scales`), so its 64
//! groups accumulate with no multiply at all.
//! The activation-sum term `Σ_i m_i · bsum_i` (mins, or the code offset's
//! `off · sc_i`) takes eight `vpdpwssd` of broadcast i16 pairs with the
//! panel's sum pairs. All of this is exact i32 arithmetic, the same integers
//! as the reference; each super-block then costs two or three float
//! operations per row for all lanes.
//!
//! Safety contract of every `unsafe fn` here: the CPU supports AVX-512
//! F/BW/VL/VNNI plus AVX2/FMA/F16C (checked by the kernel table), and the job
//! and panel describe validated buffers.

use crate::kernels::MatmulJob;
use crate::kernels::avx2::q8k::Avx2Unpack;
use crate::kernels::panel::{Q8KPanel, Tile};
use crate::kernels::unpack::SbUnpacked;
use crate::out::OutCols;

use super::tl::{Lanes, Y8, Z16};

/// `R` rows (`rows[i]`: their `nsb` unpacked super-blocks) × one tile.
/// `SUB`: 4-byte code groups per scale (4 for 16-element sub-blocks, 8 when
/// pairs of sub-blocks share a scale). `FOLDED`: the scales were folded into
/// the codes and are all 1 (`fold_scales`), so there is no multiply and the
/// two partial sums run over the whole super-block.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn tile_rows<
    V: Lanes,
    const R: usize,
    const MIN: bool,
    const BIAS: bool,
    const SUB: usize,
    const FOLDED: bool,
>(
    rows: &[*const SbUnpacked; R],
    panel: &Q8KPanel<'_>,
    tile: &Tile,
    out: &mut [[f32; 16]; R],
) {
    let mut f = [unsafe { V::zero_f() }; R];
    for s in 0..panel.nsb() {
        // SAFETY: super-block `s` exists in every row (caller contract) and
        // in the panel tile: 64 groups of `4 · L` code bytes, 8 sum-pair
        // vectors and `L` scales.
        unsafe {
            let codes = panel.codes(tile, s);
            let sb: [&SbUnpacked; R] = std::array::from_fn(|i| &*rows[i].add(s));
            let mut acc = [V::splat(0); R];
            // Two partial sums per row halve the `vpdpbusd` chains.
            let mut part = [[V::splat(0); 2]; R];
            for q in 0..64 / SUB {
                if !FOLDED {
                    part = [[V::splat(0); 2]; R];
                }
                for u in 0..SUB {
                    let g = q * SUB + u;
                    let a = V::load(codes.add(g * 4 * V::L));
                    for i in 0..R {
                        let w = sb[i].u.as_ptr().add(4 * g).cast::<i32>().read_unaligned();
                        part[i][u % 2] = V::dpbusd(part[i][u % 2], V::splat(w), a);
                    }
                }
                if !FOLDED {
                    for i in 0..R {
                        let sc = V::splat(sb[i].sc32[q * SUB / 4]);
                        acc[i] = V::add(acc[i], V::mullo(V::add(part[i][0], part[i][1]), sc));
                    }
                }
            }
            if FOLDED {
                for i in 0..R {
                    acc[i] = V::add(part[i][0], part[i][1]);
                }
            }
            let sums = panel.sums(tile, s);
            let mut mt = [V::splat(0); R];
            for q in 0..8 {
                let bs = V::load(sums.add(q * V::L).cast());
                for i in 0..R {
                    let mb = if MIN { &sb[i].mins } else { &sb[i].bias };
                    let m = mb.as_ptr().add(2 * q).cast::<i32>().read_unaligned();
                    mt[i] = V::dpwssd(mt[i], bs, V::splat(m));
                }
            }
            let da = panel.scales(tile, s);
            for i in 0..R {
                let main = if BIAS { V::sub(acc[i], mt[i]) } else { acc[i] };
                f[i] = V::fma_da(f[i], main, da, sb[i].d);
                if MIN {
                    f[i] = V::fnma_da(f[i], mt[i], da, sb[i].dmin);
                }
            }
        }
    }
    for i in 0..R {
        // SAFETY: `out[i]` holds 16 floats, `L <= 16`.
        unsafe { V::store(out[i].as_mut_ptr(), f[i]) };
    }
}

/// Rows unpacked together.
const ROWS: usize = 4;

/// Runs every tile of `panel` over the `g` unpacked rows `rows[..g]`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn run_rows<const MIN: bool, const BIAS: bool, const SUB: usize, const FOLDED: bool>(
    rows: &[*const SbUnpacked; ROWS],
    g: usize,
    panel: &Q8KPanel<'_>,
    r0: usize,
    out: &mut OutCols<'_>,
) {
    for tile in panel.tiles() {
        let mut res = [[0.0f32; 16]; ROWS];
        macro_rules! go {
            ($r:literal) => {{
                let rs: [*const SbUnpacked; $r] = std::array::from_fn(|i| rows[i]);
                let mut part = [[0.0f32; 16]; $r];
                // SAFETY: forwarded contract.
                unsafe {
                    if tile.lanes == 16 {
                        tile_rows::<Z16, $r, MIN, BIAS, SUB, FOLDED>(&rs, panel, tile, &mut part);
                    } else {
                        tile_rows::<Y8, $r, MIN, BIAS, SUB, FOLDED>(&rs, panel, tile, &mut part);
                    }
                }
                res[..$r].copy_from_slice(&part);
            }};
        }
        match g {
            4 => go!(4),
            3 => go!(3),
            2 => go!(2),
            _ => go!(1),
        }
        for (i, r) in res[..g].iter().enumerate() {
            for t in 0..tile.count {
                out.row_mut(tile.t0 + t)[r0 + i] = r[t];
            }
        }
    }
}

/// Q8_K-family matmul, tokens in lanes (any `n >= 1`).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
pub(crate) unsafe fn matmul_q8k<U: Avx2Unpack>(job: &MatmulJob<'_>, out: &mut OutCols<'_>) {
    let run = |rows: &[*const SbUnpacked; ROWS], g: usize, panel: &Q8KPanel<'_>, r0: usize| {
        // SAFETY: `rows[..g]` hold `nsb` unpacked super-blocks each.
        unsafe {
            match (U::MIN, U::BIAS, U::SCALE32) {
                _ if U::FOLDABLE && U::MIN => {
                    run_rows::<true, false, 8, true>(rows, g, panel, r0, out)
                }
                _ if U::FOLDABLE => run_rows::<false, true, 8, true>(rows, g, panel, r0, out),
                (true, _, true) => run_rows::<true, false, 8, false>(rows, g, panel, r0, out),
                (true, _, false) => run_rows::<true, false, 4, false>(rows, g, panel, r0, out),
                (false, _, true) => run_rows::<false, true, 8, false>(rows, g, panel, r0, out),
                (false, _, false) => run_rows::<false, true, 4, false>(rows, g, panel, r0, out),
            }
        }
    };
    // SAFETY: forwarded contract (AVX2 is implied by the features above).
    unsafe { crate::kernels::avx2::tlk::drive::<U, ROWS>(job, 16, 8, U::FOLDABLE, run) };
}
