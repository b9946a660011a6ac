//! The AVX2 (+FMA +F16C) kernel set: table entries and the matmul drivers.
//!
//! Drivers walk weight rows in the outer loop and activation rows in tiles of
//! up to four inside, so each weight block is fetched from memory once per
//! call and then reused from L1 for every token tile; the Q8_K family unpacks
//! a group of rows once into an L1/L2-resident scratch and runs all token
//! tiles over it (see [`matmul_q8k`]). These drivers are also used by the
//! AVX-512 set for the parts it does not widen.
//!
//! Every function here is `#[target_feature(enable = "avx2,fma,f16c")]`; the
//! kernel table only stores them after checking those features.

use crate::blocks::{
    Bf16Elem, BlockIq2Xxs, BlockMxfp4, BlockQ2K, BlockQ4_0, BlockQ4K, BlockQ6K, BlockQ8_0, F16Elem,
    F32Elem, QK_K, QuantBlock,
};
use crate::kernels::unpack::SbUnpacked;
use crate::kernels::{CommonFns, DequantFn, FloatJob, INVARIANT_ROWS, MatmulFn, MatmulJob};
use crate::out::OutCols;

pub(crate) mod float;
pub(crate) mod q8_0fam;
pub(crate) mod q8k;
pub(crate) mod q8k_fused;
pub(crate) mod tl;
pub(crate) mod tlk;

use float::{FLoad, LBf16, LF16, LF32};
use q8_0fam::{Dec32, DecMxfp4, DecQ4_0, DecQ8_0};
use q8k::{Avx2Unpack, Q8KTok, UnIq2Xxs, UnQ2K, UnQ4K, UnQ6K};

/// How far ahead of the current weight byte the small-batch row kernels
/// prefetch: about one 4096-wide Q8_0 row. Decode of 2..=4 sessions streams
/// each weight once but spends more time per byte than one session, and the
/// hardware prefetchers alone then leave the kernels waiting on DRAM. On
/// Zen 4 (`cargo bench -p dsv4-quant --bench gbps`, column `n4 D`, per core)
/// 4-token Q8_0 goes from about 7.5 to 12.5 GB/s with AVX-512 and from 6.2
/// to 9.5 with AVX2, and F16 from 6.0 to 7.6; 4 KiB was the best of 512 B to
/// 16 KiB. Used by the Q8_0-family and float row kernels for 2..=4 tokens
/// only: one token streams at DRAM speed without it (it measured about 4 %
/// slower with it), and the Q8_K-family kernels are bound by their unpacking
/// arithmetic, where the extra instructions cost more than they save.
pub(crate) const PREFETCH_AHEAD: usize = 4096;

/// Asks for the cache line `PREFETCH_AHEAD` bytes past `p` (weights that a
/// row-at-a-time kernel reads soon). A prefetch never faults, and the
/// address is formed with `wrapping_add`, so `p` may be near the end of the
/// weights.
#[inline(always)]
pub(crate) fn prefetch_ahead(p: *const u8) {
    // SAFETY: `prefetcht0` only hints the cache; it reads no data the
    // program sees and never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            p.wrapping_add(PREFETCH_AHEAD).cast(),
        )
    };
}

/// A block type's AVX2 table entries.
pub(crate) trait Avx2Block: QuantBlock {
    /// Matmul entry.
    const MATMUL: MatmulFn;
    /// Row dequantization entry.
    const DEQUANT: DequantFn;
}

macro_rules! q8_0_family {
    ($($b:ty => $d:ty),*) => {$(
        impl Avx2Block for $b {
            const MATMUL: MatmulFn = matmul_q8_0::<$d>;
            const DEQUANT: DequantFn = dequant_q8_0::<$d>;
        }
    )*};
}
q8_0_family!(BlockQ8_0 => DecQ8_0, BlockQ4_0 => DecQ4_0, BlockMxfp4 => DecMxfp4);

macro_rules! q8k_family {
    ($($b:ty => $u:ty),*) => {$(
        impl Avx2Block for $b {
            const MATMUL: MatmulFn = matmul_q8k::<$u>;
            const DEQUANT: DequantFn = dequant_q8k::<$u>;
        }
    )*};
}
q8k_family!(BlockQ2K => UnQ2K, BlockQ4K => UnQ4K, BlockQ6K => UnQ6K, BlockIq2Xxs => UnIq2Xxs);

macro_rules! float_family {
    ($($b:ty => $l:ty),*) => {$(
        impl Avx2Block for $b {
            const MATMUL: MatmulFn = matmul_float_act::<$l>;
            const DEQUANT: DequantFn = float::convert::<$l>;
        }
    )*};
}
float_family!(F32Elem => LF32, F16Elem => LF16, Bf16Elem => LBf16);

/// The type-independent AVX2 entries.
pub(crate) fn common() -> CommonFns {
    CommonFns {
        float_mm: [
            matmul_float::<LF32>,
            matmul_float::<LF16>,
            matmul_float::<LBf16>,
        ],
        quant_act: [float::quantize_act; 3],
        dot: float::dot,
        axpy: float::axpy,
        weighted_rows: float::weighted_rows,
        scores: float::scores,
        scale: float::scale,
        f16: float::convert::<LF16>,
        bf16: float::convert::<LBf16>,
    }
}

/// Largest token tile.
const TILE: usize = 4;

/// Calls `f(t0, [t0 .. t0 + T])` for consecutive token tiles of `n` tokens
/// with `T` = 4, 3, 2, 1 as needed (a macro so each arm gets a const `T`).
macro_rules! for_token_tiles {
    ($n:expr, |$t0:ident, $T:ident| $body:block) => {{
        let n = $n;
        let mut $t0 = 0;
        while $t0 < n {
            let left = n - $t0;
            if left >= 4 {
                const $T: usize = 4;
                $body
                $t0 += 4;
            } else if left == 3 {
                const $T: usize = 3;
                $body
                $t0 += 3;
            } else if left == 2 {
                const $T: usize = 2;
                $body
                $t0 += 2;
            } else {
                const $T: usize = 1;
                $body
                $t0 += 1;
            }
        }
    }};
}
pub(crate) use for_token_tiles;

/// The row-at-a-time Q8_K-family driver: for every weight row of `$job`
/// (`row`: its first super-block, `nsb` super-blocks) and every tile of up
/// to four tokens (`tk: [Q8KTok; T]`), evaluates `$tile` (a `[f32; T]`) and
/// stores it in `$out`. Shared by the AVX2 fused kernels and the AVX-512
/// IQ2_XXS kernel; `$tile` is evaluated in the caller's target features.
macro_rules! q8k_row_tiles {
    ($job:expr, $out:expr, |$row:ident, $nsb:ident, $tk:ident| $tile:expr) => {{
        let (job, out): (&MatmulJob<'_>, &mut OutCols<'_>) = ($job, $out);
        let n = job.act.n();
        let $nsb = job.k / crate::blocks::QK_K;
        let toks = $crate::kernels::avx2::q8k_tokens(job);
        let base = job.w.as_ptr();
        for r in 0..job.nrows {
            // SAFETY: row `r` lies inside the validated weights.
            let $row = unsafe { base.add(r * job.row_bytes) };
            $crate::kernels::avx2::for_token_tiles!(n, |t0, T| {
                let $tk: [$crate::kernels::avx2::q8k::Q8KTok; T] =
                    std::array::from_fn(|i| toks[t0 + i]);
                let res: [f32; T] = $tile;
                for (j, v) in res.into_iter().enumerate() {
                    out.row_mut(t0 + j)[r] = v;
                }
            });
        }
    }};
}
pub(crate) use q8k_row_tiles;

/// As [`for_token_tiles!`] with tiles of up to 8 tokens (for the 32-register
/// AVX-512 kernels).
macro_rules! for_token_tiles8 {
    ($n:expr, |$t0:ident, $T:ident| $body:block) => {{
        let n = $n;
        let mut base = 0;
        while n - base >= 8 {
            let $t0 = base;
            const $T: usize = 8;
            $body
            base += 8;
        }
        $crate::kernels::avx2::for_token_tiles!(n - base, |off, $T| {
            let $t0 = base + off;
            $body
        });
    }};
}
pub(crate) use for_token_tiles8;

/// Q8_0-family matmul entry: row at a time for up to [`INVARIANT_ROWS`]
/// tokens (so every token gets the bits of a one-token call), tokens in
/// lanes ([`tl`]) for larger batches.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn matmul_q8_0<D: Dec32>(job: &MatmulJob<'_>, out: &mut OutCols<'_>) {
    // SAFETY: forwarded contract.
    unsafe {
        if job.act.n() <= INVARIANT_ROWS {
            matmul_q8_0_rows::<D>(job, out);
        } else {
            tl::matmul_q8_0::<D>(job, out);
        }
    }
}

/// Q8_0-family matmul, one weight row at a time against token tiles.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn matmul_q8_0_rows<D: Dec32>(job: &MatmulJob<'_>, out: &mut OutCols<'_>) {
    let n = job.act.n();
    let (qs, stride, dplane, _) = job.act.planes();
    let nb = job.k / 32;
    // Scales transposed per tile of 4 tokens: panel[tile][4b + t] (see
    // `q8_0fam::row_tile`); built once, used by every row.
    let tiles = n.div_ceil(TILE);
    crate::kernels::panel::with_pool(|pool| {
        crate::kernels::panel::grow(&mut pool.scales, tiles * 4 * nb, 0.0);
        let panel = &mut pool.scales[..tiles * 4 * nb];
        panel.fill(0.0);
        for t in 0..n {
            let (tile, lane) = (t / TILE, t % TILE);
            for b in 0..nb {
                panel[tile * 4 * nb + 4 * b + lane] = dplane[t * nb + b];
            }
        }
        let base = job.w.as_ptr();
        for r in 0..job.nrows {
            // SAFETY: row `r` lies inside the validated weights.
            let row = unsafe { base.add(r * job.row_bytes) };
            for_token_tiles!(n, |t0, T| {
                let q: [*const i8; T] =
                    std::array::from_fn(|i| qs[(t0 + i) * stride..].as_ptr().cast());
                let d: [*const f32; T] = std::array::from_fn(|i| dplane[(t0 + i) * nb..].as_ptr());
                // Tiles start at multiples of 4 except the 3-2-1 tail, whose
                // tokens sit in the last panel tile at lanes `t0 % 4 ..`.
                let (tile, lane) = (t0 / TILE, t0 % TILE);
                let dp = panel[tile * 4 * nb + lane..].as_ptr();
                // SAFETY: `nb` blocks per row; each token has `32 · nb` codes
                // and `nb` scales; the panel holds `4 · nb` floats per tile.
                let res = unsafe { q8_0fam::row_tile::<D, T>(row, nb, &q, &d, dp) };
                for (i, v) in res.into_iter().enumerate() {
                    out.row_mut(t0 + i)[r] = v;
                }
            });
        }
    });
}

/// Q8_0-family dequantization of whole blocks.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dequant_q8_0<D: Dec32>(src: &[u8], dst: &mut [f32]) {
    let nb = (src.len() / D::BYTES).min(dst.len() / 32);
    // SAFETY: `nb` whole blocks are readable and `32 · nb` floats writable.
    unsafe { q8_0fam::dequant::<D>(src.as_ptr(), nb, dst.as_mut_ptr()) }
}

/// Q8_K-family matmul: the fused row-at-a-time kernels for up to
/// [`INVARIANT_ROWS`] tokens (every token gets the bits of a one-token call),
/// tokens in lanes ([`tlk`]) for larger batches.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn matmul_q8k<U: Avx2Unpack>(job: &MatmulJob<'_>, out: &mut OutCols<'_>) {
    let n = job.act.n();
    if n > INVARIANT_ROWS {
        // SAFETY: forwarded contract.
        unsafe { tlk::matmul_q8k::<U>(job, out) };
        return;
    }
    // SAFETY: `nsb` super-blocks per row and per token (validated job).
    q8k_row_tiles!(job, out, |row, nsb, tk| unsafe {
        U::fused::<T>(row, nsb, &tk)
    });
}

/// Activation pointers of the tokens of a Q8_K job of at most
/// [`INVARIANT_ROWS`] tokens (the row-at-a-time kernels' batches), on the
/// stack: no allocation per call on the decode path. Entries past the job's
/// tokens are null and never read.
pub(crate) fn q8k_tokens(job: &MatmulJob<'_>) -> [Q8KTok; INVARIANT_ROWS] {
    let (qs, stride, d, bs) = job.act.planes();
    let (nsb, n16) = (job.k / QK_K, job.k / 16);
    let n = job.act.n();
    debug_assert!(
        n <= INVARIANT_ROWS,
        "row kernels take at most INVARIANT_ROWS tokens"
    );
    std::array::from_fn(|t| {
        if t < n {
            Q8KTok {
                qs: qs[t * stride..].as_ptr().cast(),
                d: d[t * nsb..].as_ptr(),
                bs: bs[t * n16..].as_ptr(),
            }
        } else {
            Q8KTok {
                qs: std::ptr::null(),
                d: std::ptr::null(),
                bs: std::ptr::null(),
            }
        }
    })
}

/// Unpacks one row of super-blocks.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn unpack_row<U: Avx2Unpack>(row: *const u8, out: &mut [SbUnpacked]) {
    for (i, s) in out.iter_mut().enumerate() {
        // SAFETY: super-block `i` of the row is readable.
        unsafe { U::unpack(row.add(i * U::BYTES), s) };
    }
}

/// Q8_K-family dequantization of whole super-blocks (unpack, then convert).
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dequant_q8k<U: Avx2Unpack>(src: &[u8], dst: &mut [f32]) {
    let nsb = (src.len() / U::BYTES).min(dst.len() / QK_K);
    let mut s: SbUnpacked = bytemuck::Zeroable::zeroed();
    for i in 0..nsb {
        // SAFETY: super-block `i` is readable and its 256 outputs writable.
        unsafe {
            U::unpack(src.as_ptr().add(i * U::BYTES), &mut s);
            let dst = dst.as_mut_ptr().add(i * QK_K);
            if U::MIN {
                q8k::dequant_unpacked::<true>(&s, dst);
            } else {
                q8k::dequant_unpacked::<false>(&s, dst);
            }
        }
    }
}

/// Float-weight matmul over f32 activations `job.x`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn matmul_float<L: FLoad>(job: &FloatJob<'_>, out: &mut OutCols<'_>) {
    let base = job.w.as_ptr();
    let mut r = 0;
    // Pairs of rows share activation loads, but sum in another order than
    // the one-row kernel: only batches past `INVARIANT_ROWS` use them.
    if job.n > INVARIANT_ROWS {
        while r + 2 <= job.nrows {
            // SAFETY: rows `r`, `r + 1` lie inside the validated weights.
            let rows = unsafe {
                [
                    base.add(r * job.row_bytes),
                    base.add((r + 1) * job.row_bytes),
                ]
            };
            for_token_tiles!(job.n, |t0, T| {
                let xs: [*const f32; T] =
                    std::array::from_fn(|i| job.x[(t0 + i) * job.x_stride..].as_ptr());
                // SAFETY: `k` elements per row and per activation row.
                let res = unsafe { float::row_pair_tile::<L, T>(rows, job.k, &xs) };
                for (j, pair) in res.into_iter().enumerate() {
                    for (i, v) in pair.into_iter().enumerate() {
                        out.row_mut(t0 + i)[r + j] = v;
                    }
                }
            });
            r += 2;
        }
    }
    for r in r..job.nrows {
        // SAFETY: row `r` lies inside the validated weights.
        let row = unsafe { base.add(r * job.row_bytes) };
        for_token_tiles!(job.n, |t0, T| {
            let xs: [*const f32; T] =
                std::array::from_fn(|i| job.x[(t0 + i) * job.x_stride..].as_ptr());
            // SAFETY: `k` elements per row and per activation row.
            let res = unsafe { float::row_tile::<L, T>(row, job.k, &xs) };
            for (i, v) in res.into_iter().enumerate() {
                out.row_mut(t0 + i)[r] = v;
            }
        });
    }
}

/// Float-weight matmul with activations from an F32 [`crate::ActBuf`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn matmul_float_act<L: FLoad>(job: &MatmulJob<'_>, out: &mut OutCols<'_>) {
    // SAFETY: same CPU features; the F32 buffer holds `n` rows of `k` floats
    // at its stride.
    unsafe { matmul_float::<L>(&FloatJob::from_act(job), out) }
}
