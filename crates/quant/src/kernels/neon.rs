//! The AArch64 Advanced SIMD (NEON) kernel set, base ARMv8-A only (no
//! `dotprod`/`i8mm` yet).
//!
//! - Q8_0 family: each block is decoded to two `int8x16_t` and multiplied
//!   with the activation codes by `vmull_s8`/`vmlal_high_s8` (at most two
//!   products per i16 lane, so no overflow) and `vpadalq_s16`; exact i32 block
//!   sums, then `sum · (d_w · d_a)` in f32.
//! - Q8_K family: rows are unpacked with the portable unpacker into the
//!   common [`SbUnpacked`] form once per call, then every token is a NEON
//!   integer dot over it (`u ≤ 86` fits a signed byte), with the bias and min
//!   terms from the activation sums as in the other ISAs.
//! - Float weights: F16 via `vcvt_f32_f16`, BF16 via a widening shift, with
//!   four f32x4 accumulators.
//! - Dequantization and activation quantization use the scalar reference
//!   (they are exact by definition, and cheap next to the matmuls).
//!
//! Safety contract of every `unsafe fn` here: the CPU has NEON (checked by
//! the kernel table) and the job was validated.

use std::arch::aarch64::*;

use crate::blocks::{
    Bf16Elem, BlockIq2Xxs, BlockMxfp4, BlockQ2K, BlockQ4_0, BlockQ4K, BlockQ6K, BlockQ8_0, F16Elem,
    F32Elem, QK_K, QuantBlock, f16_le,
};
use crate::kernels::unpack::{SbUnpacked, Unpack};
use crate::kernels::{CommonFns, DequantFn, FloatJob, MatmulFn, MatmulJob, scalar};
use crate::out::OutCols;
use crate::rows::RowSet;
use crate::tables::{KVALUES_MXFP4, e8m0_to_f32_half};

/// A block type's NEON table entries.
pub(crate) trait NeonBlock: QuantBlock {
    /// Matmul entry.
    const MATMUL: MatmulFn;
    /// Row dequantization entry.
    const DEQUANT: DequantFn;
}

/// A 32-element block decoded to two halves of signed bytes and a scale.
pub(crate) trait NeonDec32 {
    /// Bytes per block.
    const BYTES: usize;
    /// Decodes the block at `p`.
    unsafe fn load(p: *const u8) -> (int8x16_t, int8x16_t, f32);
}

pub(crate) struct NDecQ8_0;
pub(crate) struct NDecQ4_0;
pub(crate) struct NDecMxfp4;

impl NeonDec32 for NDecQ8_0 {
    const BYTES: usize = 34;
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn load(p: *const u8) -> (int8x16_t, int8x16_t, f32) {
        // SAFETY: a Q8_0 block is 34 readable bytes.
        unsafe {
            let d = f16_le([*p, *p.add(1)]);
            (vld1q_s8(p.add(2).cast()), vld1q_s8(p.add(18).cast()), d)
        }
    }
}

/// Splits 16 nibble bytes into low nibbles (elements 0..16) and high ones.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn nibbles(p: *const u8) -> (uint8x16_t, uint8x16_t) {
    // SAFETY: 16 readable bytes at `p`.
    let q = unsafe { vld1q_u8(p) };
    (vandq_u8(q, vdupq_n_u8(0x0F)), vshrq_n_u8::<4>(q))
}

impl NeonDec32 for NDecQ4_0 {
    const BYTES: usize = 18;
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn load(p: *const u8) -> (int8x16_t, int8x16_t, f32) {
        // SAFETY: a Q4_0 block is 18 readable bytes.
        unsafe {
            let (lo, hi) = nibbles(p.add(2));
            let eight = vdupq_n_s8(8);
            let d = f16_le([*p, *p.add(1)]);
            (
                vsubq_s8(vreinterpretq_s8_u8(lo), eight),
                vsubq_s8(vreinterpretq_s8_u8(hi), eight),
                d,
            )
        }
    }
}

impl NeonDec32 for NDecMxfp4 {
    const BYTES: usize = 17;
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn load(p: *const u8) -> (int8x16_t, int8x16_t, f32) {
        // SAFETY: an MXFP4 block is 17 readable bytes; the table is 16 bytes.
        unsafe {
            let table = vld1q_s8(KVALUES_MXFP4.as_ptr());
            let (lo, hi) = nibbles(p.add(1));
            (
                vqtbl1q_s8(table, lo),
                vqtbl1q_s8(table, hi),
                e8m0_to_f32_half(*p),
            )
        }
    }
}

macro_rules! q8_0_family {
    ($($b:ty => $d:ty),*) => {$(
        impl NeonBlock for $b {
            const MATMUL: MatmulFn = matmul_q8_0::<$d>;
            const DEQUANT: DequantFn = scalar::dequant::<$b>;
        }
    )*};
}
q8_0_family!(BlockQ8_0 => NDecQ8_0, BlockQ4_0 => NDecQ4_0, BlockMxfp4 => NDecMxfp4);

macro_rules! q8k_family {
    ($($b:ty),*) => {$(
        impl NeonBlock for $b {
            const MATMUL: MatmulFn = matmul_q8k::<$b>;
            const DEQUANT: DequantFn = scalar::dequant::<$b>;
        }
    )*};
}
q8k_family!(BlockQ2K, BlockQ4K, BlockQ6K, BlockIq2Xxs);

impl NeonBlock for F32Elem {
    const MATMUL: MatmulFn = matmul_float_act::<NF32>;
    const DEQUANT: DequantFn = convert::<NF32>;
}
impl NeonBlock for F16Elem {
    const MATMUL: MatmulFn = matmul_float_act::<NF16>;
    const DEQUANT: DequantFn = convert::<NF16>;
}
impl NeonBlock for Bf16Elem {
    const MATMUL: MatmulFn = matmul_float_act::<NBf16>;
    const DEQUANT: DequantFn = convert::<NBf16>;
}

/// The type-independent NEON entries.
pub(crate) fn common() -> CommonFns {
    CommonFns {
        float_mm: [
            matmul_float::<NF32>,
            matmul_float::<NF16>,
            matmul_float::<NBf16>,
        ],
        quant_act: [scalar::quantize_act; 3],
        dot,
        axpy,
        weighted_rows,
        // The portable definition: `f32::mul_add` is one NEON `fmadd`.
        scores: scalar::scores,
        scale,
        f16: convert::<NF16>,
        bf16: convert::<NBf16>,
    }
}

/// Exact i32 sum of 16 signed-byte products (two per i16 lane at most).
#[inline]
#[target_feature(enable = "neon")]
fn dot16(acc: int32x4_t, w: int8x16_t, a: int8x16_t) -> int32x4_t {
    let p = vmlal_high_s8(vmull_s8(vget_low_s8(w), vget_low_s8(a)), w, a);
    vpadalq_s16(acc, p)
}

/// Q8_0-family matmul.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn matmul_q8_0<D: NeonDec32>(job: &MatmulJob<'_>, out: &mut OutCols<'_>) {
    let n = job.act.n();
    let nb = job.k / 32;
    let base = job.w.as_ptr();
    for r in 0..job.nrows {
        for t in 0..n {
            let Some(act) = job.act.row_q8_0(t) else {
                continue;
            };
            let mut sumf = 0.0f32;
            for b in 0..nb {
                // SAFETY: block `b` of row `r` and 32 activation codes exist.
                unsafe {
                    let (w0, w1, dw) = D::load(base.add(r * job.row_bytes + b * D::BYTES));
                    let a = act.qs.as_ptr().add(32 * b);
                    let acc = dot16(vdupq_n_s32(0), w0, vld1q_s8(a));
                    let acc = dot16(acc, w1, vld1q_s8(a.add(16)));
                    sumf += vaddvq_s32(acc) as f32 * (dw * act.d[b]);
                }
            }
            out.row_mut(t)[r] = sumf;
        }
    }
}

/// Q8_K-family matmul: unpack each row once, then one dot per token.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn matmul_q8k<B: Unpack>(job: &MatmulJob<'_>, out: &mut OutCols<'_>) {
    let nsb = job.k / QK_K;
    let mut row: Vec<SbUnpacked> = vec![bytemuck::Zeroable::zeroed(); nsb];
    for r in 0..job.nrows {
        let blocks: &[B] = bytemuck::cast_slice(&job.w[r * job.row_bytes..(r + 1) * job.row_bytes]);
        for (s, b) in row.iter_mut().zip(blocks) {
            b.unpack_ref(s);
        }
        for t in 0..job.act.n() {
            let Some(act) = job.act.row_q8k(t) else {
                continue;
            };
            let mut sumf = 0.0f32;
            for (sb, s) in row.iter().enumerate() {
                let mut acc = vdupq_n_s32(0);
                for i in 0..16 {
                    // SAFETY: 16 unpacked codes and 16 activation codes exist.
                    unsafe {
                        let u = vreinterpretq_s8_u8(vld1q_u8(s.u.as_ptr().add(16 * i)));
                        let a = vld1q_s8(act.qs.as_ptr().add(QK_K * sb + 16 * i));
                        let p = vmlal_high_s8(vmull_s8(vget_low_s8(u), vget_low_s8(a)), u, a);
                        acc = vmlaq_n_s32(acc, vpaddlq_s16(p), i32::from(s.scale(i)));
                    }
                }
                let bs = &act.bsums[16 * sb..16 * sb + 16];
                let mut isum = vaddvq_s32(acc);
                let da = act.d[sb];
                if B::BIAS {
                    isum -= (0..16)
                        .map(|i| i32::from(s.bias[i]) * i32::from(bs[i]))
                        .sum::<i32>();
                }
                sumf += (s.d * da) * isum as f32;
                if B::MIN {
                    let imin: i32 = (0..16)
                        .map(|i| i32::from(s.mins[i]) * i32::from(bs[i]))
                        .sum();
                    sumf -= (s.dmin * da) * imin as f32;
                }
            }
            out.row_mut(t)[r] = sumf;
        }
    }
}

/// A float storage type loaded as f32x4.
pub(crate) trait NLoad {
    /// Bytes per element.
    const ELEM: usize;
    /// Loads four elements.
    unsafe fn load4(p: *const u8) -> float32x4_t;
    /// Loads one element.
    unsafe fn load1(p: *const u8) -> f32;
}

pub(crate) struct NF32;
pub(crate) struct NF16;
pub(crate) struct NBf16;

impl NLoad for NF32 {
    const ELEM: usize = 4;
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn load4(p: *const u8) -> float32x4_t {
        // SAFETY: 16 readable bytes.
        unsafe { vld1q_f32(p.cast()) }
    }
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn load1(p: *const u8) -> f32 {
        // SAFETY: 4 readable bytes.
        unsafe { p.cast::<f32>().read_unaligned() }
    }
}

impl NLoad for NF16 {
    const ELEM: usize = 2;
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn load4(p: *const u8) -> float32x4_t {
        // SAFETY: 8 readable bytes.
        unsafe { vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p.cast()))) }
    }
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn load1(p: *const u8) -> f32 {
        // SAFETY: 2 readable bytes.
        unsafe { f16_le([*p, *p.add(1)]) }
    }
}

impl NLoad for NBf16 {
    const ELEM: usize = 2;
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn load4(p: *const u8) -> float32x4_t {
        // SAFETY: 8 readable bytes.
        unsafe { vreinterpretq_f32_u32(vshll_n_u16::<16>(vld1_u16(p.cast()))) }
    }
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn load1(p: *const u8) -> f32 {
        // SAFETY: 2 readable bytes.
        unsafe { f32::from_bits(u32::from(p.cast::<u16>().read_unaligned()) << 16) }
    }
}

/// `Σ w_i x_i` for one float row.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn row_dot<L: NLoad>(row: *const u8, x: *const f32, k: usize) -> f32 {
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut i = 0;
    while i + 16 <= k {
        for (j, s) in acc.iter_mut().enumerate() {
            // SAFETY: elements `i + 4j .. i + 4j + 4` exist.
            unsafe {
                *s = vfmaq_f32(
                    *s,
                    L::load4(row.add((i + 4 * j) * L::ELEM)),
                    vld1q_f32(x.add(i + 4 * j)),
                )
            };
        }
        i += 16;
    }
    while i + 4 <= k {
        // SAFETY: elements `i .. i + 4` exist.
        unsafe { acc[0] = vfmaq_f32(acc[0], L::load4(row.add(i * L::ELEM)), vld1q_f32(x.add(i))) };
        i += 4;
    }
    let mut s = vaddvq_f32(vaddq_f32(
        vaddq_f32(acc[0], acc[1]),
        vaddq_f32(acc[2], acc[3]),
    ));
    while i < k {
        // SAFETY: element `i` exists.
        unsafe { s += L::load1(row.add(i * L::ELEM)) * *x.add(i) };
        i += 1;
    }
    s
}

/// Float-weight matmul over f32 activations `job.x`.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn matmul_float<L: NLoad>(job: &FloatJob<'_>, out: &mut OutCols<'_>) {
    for r in 0..job.nrows {
        for t in 0..job.n {
            let x = &job.x[t * job.x_stride..t * job.x_stride + job.k];
            // SAFETY: row `r` holds `k` elements; `x` holds `k` floats.
            out.row_mut(t)[r] =
                unsafe { row_dot::<L>(job.w.as_ptr().add(r * job.row_bytes), x.as_ptr(), job.k) };
        }
    }
}

/// Float-weight matmul with activations from an F32 buffer.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn matmul_float_act<L: NLoad>(job: &MatmulJob<'_>, out: &mut OutCols<'_>) {
    // SAFETY: same CPU features; the F32 buffer holds `n` rows of `k` floats
    // at its stride.
    unsafe { matmul_float::<L>(&FloatJob::from_act(job), out) }
}

/// Float bytes to f32.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn convert<L: NLoad>(src: &[u8], dst: &mut [f32]) {
    let n = dst.len().min(src.len() / L::ELEM);
    let mut i = 0;
    while i + 4 <= n {
        // SAFETY: four elements are readable and writable.
        unsafe {
            vst1q_f32(
                dst.as_mut_ptr().add(i),
                L::load4(src.as_ptr().add(i * L::ELEM)),
            )
        };
        i += 4;
    }
    while i < n {
        // SAFETY: element `i` is readable.
        dst[i] = unsafe { L::load1(src.as_ptr().add(i * L::ELEM)) };
        i += 1;
    }
}

/// `Σ a_i b_i`.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    // SAFETY: F32 bytes of `a` hold `n` elements; `b` has `n` floats.
    unsafe { row_dot::<NF32>(a.as_ptr().cast(), b.as_ptr(), n) }
}

/// `y += a · x`.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let mut i = 0;
    while i + 4 <= n {
        // SAFETY: four elements of both slices exist.
        unsafe {
            let py = y.as_mut_ptr().add(i);
            vst1q_f32(
                py,
                vfmaq_n_f32(vld1q_f32(py), vld1q_f32(x.as_ptr().add(i)), a),
            );
        }
        i += 4;
    }
    for j in i..n {
        y[j] += a * x[j];
    }
}

/// Weighted sums of rows (see `Kernels::weighted_rows`): one [`axpy`] per
/// row and output row, rows in order.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn weighted_rows(p: &[f32], ldp: usize, rows: RowSet<'_>, out: &mut [f32]) {
    // SAFETY: NEON is available (this function's own contract).
    let axpy_neon = |a: f32, x: &[f32], y: &mut [f32]| unsafe { axpy(a, x, y) };
    super::weighted_rows_by_axpy(axpy_neon, p, ldp, rows, 0..rows.hd(), out);
}

/// `x *= a`.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn scale(a: f32, x: &mut [f32]) {
    let n = x.len();
    let mut i = 0;
    while i + 4 <= n {
        // SAFETY: four elements exist.
        unsafe {
            let p = x.as_mut_ptr().add(i);
            vst1q_f32(p, vmulq_n_f32(vld1q_f32(p), a));
        }
        i += 4;
    }
    for v in &mut x[i..] {
        *v *= a;
    }
}
