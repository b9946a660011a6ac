//! ggml block formats and the CPU kernels of dsv4.
//!
//! This crate is the hot core of the CPU backend. It owns:
//! - the storage formats the DeepSeek V4 GGUFs use ([`blocks`]): F32, F16,
//!   BF16, Q8_0, Q4_0, Q2_K, Q4_K, Q6_K, IQ2_XXS, MXFP4 (and I32 copies), each
//!   a `#[repr(C)]` struct with a scalar reference dequantizer and dot product,
//!   plus reference quantizers for Q8_0, Q8_K, Q4_0, Q4_K, Q2_K, MXFP4, F16
//!   and BF16;
//! - the activation formats and their reusable buffer ([`act`]);
//! - the runtime-selected kernel table ([`Kernels`]): matmul for decode
//!   (`n = 1`, bandwidth bound), batched decode and prefill (compute bound),
//!   exact f32 matmul, row dequantization and the f32 helpers of the forward
//!   pass, for scalar, AVX2, AVX-512 (+VNNI) and NEON.
//!
//! Layouts and constants follow ggml at llama.cpp commit `0c1e57098` (cited per
//! module); dequantization is bit-identical to gguf-py 0.19.0 (golden tests in
//! `tests/golden.rs`). All CPU `unsafe` lives in `kernels::{avx2, avx512,
//! neon, unpack}` and [`out`]. Nothing here knows about the model.
//!
//! Typical use:
//! ```
//! use dsv4_quant::{act_type_for, ActBuf, Kernels, OutCols};
//! use dsv4_gguf::GgmlType;
//! # fn main() -> Result<(), dsv4_quant::QuantError> {
//! let kernels = Kernels::detect();
//! let (k, rows, n) = (64, 3, 2);
//! let w = vec![0u8; rows * GgmlType::Q8_0.row_bytes(k as u64).unwrap_or(0) as usize];
//! let x = vec![0.5f32; n * k];
//! let mut act = ActBuf::new();
//! kernels.quantize_act(act_type_for(GgmlType::Q8_0)?, &x, n, k, &mut act)?;
//! let mut y = vec![0.0f32; n * rows];
//! let mut out = OutCols::new(&mut y, n, rows)?;
//! kernels.matmul(GgmlType::Q8_0, &w, k, 0..rows, &act, &mut out)?;
//! # Ok(()) }
//! ```

// Kernels walk several parallel arrays (codes, scales, sums, lanes) with one
// index, mirroring the ggml references they are checked against.
#![allow(clippy::needless_range_loop)]

pub mod act;
pub mod blocks;
mod error;
mod kernels;
pub mod out;
mod rows;
pub mod tables;

pub use act::{ActBuf, ActType, ActView, Q8_0Row, Q8KRow, act_type_for};
pub use blocks::{QuantBlock, WEIGHT_TYPES};
pub use error::QuantError;
pub use kernels::{INVARIANT_ROWS, Isa, Kernels, PACK_ROWS, PackedMatrix};
pub use out::OutCols;
pub use rows::RowSet;
