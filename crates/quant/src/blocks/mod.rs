//! ggml block formats as data, with scalar reference kernels.
//!
//! Each submodule owns one storage format: a `#[repr(C)]` struct whose size is
//! asserted at compile time and whose fields are plain byte arrays (alignment 1,
//! so any byte slice of whole blocks can be viewed as `&[Block]` without
//! copying or `unsafe`), its scalar reference dequantizer, its scalar reference
//! dot product against the activation format it pairs with (ggml's
//! `vec_dot_type`), and, where we have one, its quantizer.
//!
//! The references are the ground truth for every SIMD kernel of the kernel
//! table ([`crate::Kernels`]): integer parts are computed exactly (i32 block
//! sums), float scales are applied once per block, in the order documented on
//! each function. They favour clarity over speed; the `Scalar` kernel table
//! runs them as they are, as the exact (slow) baseline.
//!
//! [`QuantBlock`] is the trait generic code is written against, and the
//! crate-internal `with_block!` macro is the single place where a runtime
//! [`GgmlType`] becomes a block type.

use bytemuck::Pod;
use dsv4_gguf::GgmlType;

use crate::act::{ActType, ActView};
use crate::error::QuantError;

pub mod float;
pub mod iq2xxs;
pub(crate) mod kq;
pub mod mxfp4;
pub mod q2_k;
pub mod q4_0;
pub mod q4_k;
pub mod q6_k;
pub mod q8_0;
pub mod q8_k;

pub use float::{Bf16Elem, F16Elem, F32Elem};
pub use iq2xxs::BlockIq2Xxs;
pub use mxfp4::BlockMxfp4;
pub use q2_k::BlockQ2K;
pub use q4_0::BlockQ4_0;
pub use q4_k::BlockQ4K;
pub use q6_k::BlockQ6K;
pub use q8_0::BlockQ8_0;
pub use q8_k::BlockQ8K;

/// Elements per k-quant super-block (`QK_K` in ggml).
pub const QK_K: usize = 256;
/// Elements per Q8_0 / Q4_0 / MXFP4 block (`QK8_0` in ggml).
pub const QK8_0: usize = 32;

/// A ggml storage block: plain bytes with a documented layout.
pub trait QuantBlock: Pod + std::fmt::Debug + Send + Sync + 'static {
    /// The ggml type this block encodes.
    const TYPE: GgmlType;
    /// Elements per block.
    const ELEMS: usize;
    /// The activation format this weight type is multiplied with.
    const ACT: ActType;
    /// The activation row view the reference dot product takes.
    type Act<'a>: Copy;

    /// Writes the block's `ELEMS` values to `out[..ELEMS]` (reference dequantizer).
    fn dequantize(&self, out: &mut [f32]);

    /// Reference dot product of one weight row with one activation row of the
    /// same length.
    fn dot_ref(row: &[Self], act: Self::Act<'_>) -> f32;

    /// Row `t` of `buf` in this type's activation format, or `None` if `buf`
    /// holds another format or fewer rows.
    fn act_row<'a>(buf: &ActView<'a>, t: usize) -> Option<Self::Act<'a>>;
}

/// Runs `$body` with `$B` bound to the block type of `$ty`, or evaluates `$other`
/// for types without a block implementation. This is the crate's one mapping from
/// a runtime [`GgmlType`] to generic code.
macro_rules! with_block {
    ($ty:expr, $B:ident => $body:expr, _ => $other:expr) => {{
        use ::dsv4_gguf::GgmlType as __T;
        use $crate::blocks::*;
        match $ty {
            __T::F32 => {
                type $B = F32Elem;
                $body
            }
            __T::F16 => {
                type $B = F16Elem;
                $body
            }
            __T::BF16 => {
                type $B = Bf16Elem;
                $body
            }
            __T::Q8_0 => {
                type $B = BlockQ8_0;
                $body
            }
            __T::Q4_0 => {
                type $B = BlockQ4_0;
                $body
            }
            __T::Q2_K => {
                type $B = BlockQ2K;
                $body
            }
            __T::Q4_K => {
                type $B = BlockQ4K;
                $body
            }
            __T::Q6_K => {
                type $B = BlockQ6K;
                $body
            }
            __T::IQ2_XXS => {
                type $B = BlockIq2Xxs;
                $body
            }
            __T::MXFP4 => {
                type $B = BlockMxfp4;
                $body
            }
            _ => $other,
        }
    }};
}
pub(crate) use with_block;

/// The weight types with block implementations, in a fixed order (the kernel
/// table's slot order).
pub const WEIGHT_TYPES: [GgmlType; 10] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q2_K,
    GgmlType::Q4_K,
    GgmlType::Q6_K,
    GgmlType::IQ2_XXS,
    GgmlType::MXFP4,
];

/// Index of `ty` in [`WEIGHT_TYPES`].
pub(crate) fn slot_of(ty: GgmlType) -> Result<usize, QuantError> {
    WEIGHT_TYPES
        .iter()
        .position(|&t| t == ty)
        .ok_or(QuantError::UnsupportedType { ty })
}

/// Views a byte slice of whole blocks as blocks.
pub fn as_blocks<B: QuantBlock>(bytes: &[u8]) -> Result<&[B], QuantError> {
    bytemuck::try_cast_slice(bytes).map_err(|_| QuantError::BadLength {
        what: "block data (must be a whole number of blocks)",
        expected: bytes.len() / std::mem::size_of::<B>() * std::mem::size_of::<B>(),
        got: bytes.len(),
        unit: "bytes",
    })
}

/// Reference dequantization of a row of blocks; `dst.len()` must be
/// `blocks.len() * B::ELEMS`.
pub fn dequantize_blocks_ref<B: QuantBlock>(blocks: &[B], dst: &mut [f32]) {
    for (b, out) in blocks.iter().zip(dst.chunks_exact_mut(B::ELEMS)) {
        b.dequantize(out);
    }
}

/// Decodes a little-endian IEEE half stored as two bytes.
#[inline]
pub fn f16_le(b: [u8; 2]) -> f32 {
    half::f16::from_bits(u16::from_le_bytes(b)).to_f32()
}

/// Encodes `x` as a little-endian IEEE half, rounding to nearest even (the
/// rounding of ggml's `GGML_FP32_TO_FP16` and of NumPy's `astype(float16)`).
#[inline]
pub fn f16_to_le(x: f32) -> [u8; 2] {
    half::f16::from_f32(x).to_bits().to_le_bytes()
}

/// ggml's `nearest_int`: round half to even, for |x| ≤ 2^22 (the magic-number
/// trick in `ggml-quants.c`). Larger or non-finite inputs saturate instead of
/// wrapping.
#[inline]
pub fn nearest_int(x: f32) -> i32 {
    x.round_ties_even() as i32
}

/// C's `roundf`: round half away from zero.
#[inline]
pub fn roundf(x: f32) -> f32 {
    x.round()
}
