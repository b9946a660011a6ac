//! The AVX-512 kernel set (F/BW/VL, plus VNNI where the CPU has it).
//!
//! Matmul entries come in two variants per type (without and with VNNI),
//! picked when the table is built: small batches (up to
//! [`INVARIANT_ROWS`] tokens, decode) run row-at-a-time kernels that give
//! every token the bits of a one-token call: with VNNI, [`rows`] for the
//! Q8_0 family (the AVX2 kernel's bits with a third of its per-token work)
//! and [`iq2`] for IQ2_XXS (its byte-permute decode with VBMI), else the
//! AVX2 ones;
//! larger batches run the tokens-in-lanes kernels ([`tl`], [`tlk`] with VNNI,
//! their AVX2 versions without). Float kernels and f32 helpers are 512 bits
//! wide. Dequantization and activation quantization reuse the AVX2
//! code: they are memory bound, and the AVX2 versions are already
//! bit-identical to the reference.

use crate::blocks::{
    Bf16Elem, BlockIq2Xxs, BlockMxfp4, BlockQ2K, BlockQ4_0, BlockQ4K, BlockQ6K, BlockQ8_0, F16Elem,
    F32Elem, QuantBlock,
};
use crate::kernels::avx2::float::{LBf16, LF16, LF32};
use crate::kernels::avx2::q8_0fam::{Dec32, DecMxfp4, DecQ4_0, DecQ8_0};
use crate::kernels::avx2::q8k::{Avx2Unpack, UnIq2Xxs, UnQ2K, UnQ4K, UnQ6K};
use crate::kernels::avx2::{self, float as avx2_float};
use crate::kernels::{CommonFns, DequantFn, INVARIANT_ROWS, MatmulFn, MatmulJob};
use crate::out::OutCols;

pub(crate) mod common;
pub(crate) mod iq2;
pub(crate) mod packed;
pub(crate) mod rows;
pub(crate) mod tl;
pub(crate) mod tlk;

/// A block type's AVX-512 table entries.
pub(crate) trait Avx512Block: QuantBlock {
    /// Row dequantization entry.
    const DEQUANT: DequantFn;
    /// Matmul without VNNI.
    const MATMUL_BW: MatmulFn;
    /// Matmul with VNNI.
    const MATMUL_VNNI: MatmulFn;
    /// Matmul with VNNI and VBMI (the VNNI entry unless the type has one).
    const MATMUL_VBMI: MatmulFn = Self::MATMUL_VNNI;
}

/// The matmul entry of `B` for a CPU with (`vnni`, `vbmi`) or without VNNI
/// and VBMI (`vbmi` only counts with `vnni`).
pub(crate) fn matmul_entry<B: Avx512Block>(vnni: bool, vbmi: bool) -> MatmulFn {
    match (vnni, vbmi) {
        (true, true) => B::MATMUL_VBMI,
        (true, false) => B::MATMUL_VNNI,
        _ => B::MATMUL_BW,
    }
}

macro_rules! q8_0_family {
    ($($b:ty => $d:ty),*) => {$(
        impl Avx512Block for $b {
            const DEQUANT: DequantFn = avx2::dequant_q8_0::<$d>;
            const MATMUL_BW: MatmulFn = matmul_q8_0_bw::<$d>;
            const MATMUL_VNNI: MatmulFn = matmul_q8_0_vnni::<$d>;
        }
    )*};
}
q8_0_family!(BlockQ8_0 => DecQ8_0, BlockQ4_0 => DecQ4_0, BlockMxfp4 => DecMxfp4);

macro_rules! q8k_family {
    ($($b:ty => $u:ty),*) => {$(
        impl Avx512Block for $b {
            const DEQUANT: DequantFn = avx2::dequant_q8k::<$u>;
            const MATMUL_BW: MatmulFn = matmul_q8k_bw::<$u>;
            const MATMUL_VNNI: MatmulFn = matmul_q8k_vnni::<$u>;
        }
    )*};
}
q8k_family!(BlockQ2K => UnQ2K, BlockQ4K => UnQ4K, BlockQ6K => UnQ6K);

impl Avx512Block for BlockIq2Xxs {
    const DEQUANT: DequantFn = avx2::dequant_q8k::<UnIq2Xxs>;
    const MATMUL_BW: MatmulFn = matmul_q8k_bw::<UnIq2Xxs>;
    const MATMUL_VNNI: MatmulFn = matmul_iq2xxs_vnni;
    const MATMUL_VBMI: MatmulFn = matmul_iq2xxs_vbmi;
}

macro_rules! float_family {
    ($($b:ty => $l:ty),*) => {$(
        impl Avx512Block for $b {
            const DEQUANT: DequantFn = avx2_float::convert::<$l>;
            const MATMUL_BW: MatmulFn = common::matmul_float_act::<$l>;
            const MATMUL_VNNI: MatmulFn = common::matmul_float_act::<$l>;
        }
    )*};
}
float_family!(F32Elem => LF32, F16Elem => LF16, Bf16Elem => LBf16);

/// Q8_0-family matmul with VNNI: up to [`INVARIANT_ROWS`] tokens through
/// the VNNI row-at-a-time kernel ([`rows`]: bit-identical per token to a
/// one-token call, and to the AVX2 row kernel), larger batches through the
/// tokens-in-lanes kernels ([`tl`]).
///
/// # Safety
/// The CPU supports AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C; the job is
/// validated.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn matmul_q8_0_vnni<D: Dec32>(job: &MatmulJob<'_>, out: &mut OutCols<'_>) {
    // SAFETY: forwarded contract (AVX2 is implied by the features above).
    unsafe {
        if job.act.n() <= INVARIANT_ROWS {
            rows::matmul_q8_0_rows::<D>(job, out);
        } else {
            tl::matmul_q8_0::<D>(job, out);
        }
    }
}

/// Q8_0-family matmul without VNNI: the AVX2 kernels (row at a time for
/// small batches, tokens in lanes for larger ones; they need no 512-bit
/// multiply to be memory bound).
///
/// # Safety
/// The CPU supports AVX-512 F/BW/VL, AVX2, FMA and F16C; the job is
/// validated.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn matmul_q8_0_bw<D: Dec32>(job: &MatmulJob<'_>, out: &mut OutCols<'_>) {
    // SAFETY: forwarded contract (AVX2 is implied by the features above).
    unsafe { avx2::matmul_q8_0::<D>(job, out) }
}

/// Q8_K-family matmul without VNNI: the AVX2 kernels (see
/// [`matmul_q8_0_bw`]).
///
/// # Safety
/// The CPU supports AVX-512 F/BW/VL, AVX2, FMA and F16C; the job is
/// validated.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
unsafe fn matmul_q8k_bw<U: Avx2Unpack>(job: &MatmulJob<'_>, out: &mut OutCols<'_>) {
    // SAFETY: forwarded contract (AVX2 is implied by the features above).
    unsafe { avx2::matmul_q8k::<U>(job, out) }
}

/// Q8_K-family matmul with VNNI: up to [`INVARIANT_ROWS`] tokens through the
/// fused AVX2 row-at-a-time kernels, larger batches through the
/// tokens-in-lanes kernels ([`tlk`]).
///
/// # Safety
/// The CPU supports AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C; the job is
/// validated.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn matmul_q8k_vnni<U: Avx2Unpack>(job: &MatmulJob<'_>, out: &mut OutCols<'_>) {
    // SAFETY: forwarded contract (AVX2 is implied by the features above).
    unsafe {
        if job.act.n() <= INVARIANT_ROWS {
            avx2::matmul_q8k::<U>(job, out);
        } else {
            tlk::matmul_q8k::<U>(job, out);
        }
    }
}

/// IQ2_XXS matmul with VNNI: up to [`INVARIANT_ROWS`] tokens through the
/// 512-bit fused kernel ([`iq2`]; bit-identical per token to a one-token
/// call), larger batches through the tokens-in-lanes kernels ([`tlk`]).
///
/// # Safety
/// The CPU supports AVX-512 F/BW/VL/VNNI, AVX2, FMA and F16C; the job is
/// validated and holds IQ2_XXS weights.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn matmul_iq2xxs_vnni(job: &MatmulJob<'_>, out: &mut OutCols<'_>) {
    // SAFETY: forwarded contract.
    unsafe {
        if job.act.n() <= INVARIANT_ROWS {
            iq2::matmul_iq2xxs_rows(job, out);
        } else {
            tlk::matmul_q8k::<UnIq2Xxs>(job, out);
        }
    }
}

/// As [`matmul_iq2xxs_vnni`], the small batches decoding the weights with
/// VBMI byte permutes.
///
/// # Safety
/// As [`matmul_iq2xxs_vnni`], and the CPU supports AVX-512 VBMI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,avx2,fma,f16c")]
unsafe fn matmul_iq2xxs_vbmi(job: &MatmulJob<'_>, out: &mut OutCols<'_>) {
    // SAFETY: forwarded contract.
    unsafe {
        if job.act.n() <= INVARIANT_ROWS {
            iq2::matmul_iq2xxs_rows_vbmi(job, out);
        } else {
            tlk::matmul_q8k::<UnIq2Xxs>(job, out);
        }
    }
}

/// The type-independent AVX-512 entries.
pub(crate) fn common() -> CommonFns {
    CommonFns {
        float_mm: [
            common::matmul_float::<LF32>,
            common::matmul_float::<LF16>,
            common::matmul_float::<LBf16>,
        ],
        quant_act: [avx2_float::quantize_act; 3],
        dot: common::dot,
        axpy: common::axpy,
        weighted_rows: common::weighted_rows,
        scores: common::scores,
        scale: common::scale,
        f16: avx2_float::convert::<LF16>,
        bf16: avx2_float::convert::<LBf16>,
    }
}
