//! Plain float storage: F32 (32 bits), F16 (IEEE binary16, 16 bits), BF16 (the
//! upper half of an f32, 16 bits), and I32 copies.
//!
//! Each "block" is one little-endian element. Float weights are multiplied
//! with f32 activations directly (no activation quantization). Reading BF16 is
//! a shift; writing it rounds to nearest even and quiets NaNs, as ggml's
//! `ggml_compute_fp32_to_bf16` (`ggml/src/ggml-impl.h`, llama.cpp
//! `0c1e57098`) and gguf-py's `BF16.quantize_blocks`. Writing F16 rounds to
//! nearest even (ggml's `GGML_FP32_TO_FP16`, NumPy's `astype(float16)`).

use bytemuck::{Pod, Zeroable};
use dsv4_gguf::GgmlType;

use super::QuantBlock;
use crate::act::{ActType, ActView};

/// One little-endian f32.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct F32Elem(pub [u8; 4]);

/// One little-endian IEEE binary16.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct F16Elem(pub [u8; 2]);

/// One little-endian bfloat16.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Bf16Elem(pub [u8; 2]);

const _: () = assert!(std::mem::size_of::<F32Elem>() == 4);
const _: () = assert!(std::mem::size_of::<F16Elem>() == 2);
const _: () = assert!(std::mem::size_of::<Bf16Elem>() == 2);

/// Decodes a bfloat16 bit pattern.
#[inline]
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// Encodes an f32 as bfloat16: NaNs become quiet NaNs with the same sign and
/// upper payload, everything else rounds to nearest even.
#[inline]
pub fn f32_to_bf16(x: f32) -> u16 {
    let u = x.to_bits();
    if (u & 0x7fff_ffff) > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    ((u64::from(u) + 0x7fff + u64::from((u >> 16) & 1)) >> 16) as u16
}

/// Writes `x` as bfloat16 little-endian bytes (`out.len() == 2 · x.len()`).
pub fn quantize_row_bf16(x: &[f32], out: &mut [Bf16Elem]) {
    for (o, &v) in out.iter_mut().zip(x) {
        o.0 = f32_to_bf16(v).to_le_bytes();
    }
}

/// Writes `x` as IEEE half little-endian bytes.
pub fn quantize_row_f16(x: &[f32], out: &mut [F16Elem]) {
    for (o, &v) in out.iter_mut().zip(x) {
        o.0 = super::f16_to_le(v);
    }
}

/// Sequential f32 dot product `Σ w_i · x_i` (no fused multiply-add), the
/// reference for every float-weight kernel.
fn dot_seq(w: impl Iterator<Item = f32>, x: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for (wi, &xi) in w.zip(x) {
        s += wi * xi;
    }
    s
}

impl QuantBlock for F32Elem {
    const TYPE: GgmlType = GgmlType::F32;
    const ELEMS: usize = 1;
    const ACT: ActType = ActType::F32;
    type Act<'a> = &'a [f32];

    fn act_row<'a>(buf: &ActView<'a>, t: usize) -> Option<&'a [f32]> {
        (buf.act_type() == ActType::F32 && t < buf.n()).then(|| buf.row_f32(t))
    }

    fn dequantize(&self, out: &mut [f32]) {
        out[0] = f32::from_le_bytes(self.0);
    }

    fn dot_ref(row: &[Self], act: &[f32]) -> f32 {
        dot_seq(row.iter().map(|e| f32::from_le_bytes(e.0)), act)
    }
}

impl QuantBlock for F16Elem {
    const TYPE: GgmlType = GgmlType::F16;
    const ELEMS: usize = 1;
    const ACT: ActType = ActType::F32;
    type Act<'a> = &'a [f32];

    fn act_row<'a>(buf: &ActView<'a>, t: usize) -> Option<&'a [f32]> {
        (buf.act_type() == ActType::F32 && t < buf.n()).then(|| buf.row_f32(t))
    }

    fn dequantize(&self, out: &mut [f32]) {
        out[0] = super::f16_le(self.0);
    }

    fn dot_ref(row: &[Self], act: &[f32]) -> f32 {
        dot_seq(row.iter().map(|e| super::f16_le(e.0)), act)
    }
}

impl QuantBlock for Bf16Elem {
    const TYPE: GgmlType = GgmlType::BF16;
    const ELEMS: usize = 1;
    const ACT: ActType = ActType::F32;
    type Act<'a> = &'a [f32];

    fn act_row<'a>(buf: &ActView<'a>, t: usize) -> Option<&'a [f32]> {
        (buf.act_type() == ActType::F32 && t < buf.n()).then(|| buf.row_f32(t))
    }

    fn dequantize(&self, out: &mut [f32]) {
        out[0] = bf16_to_f32(u16::from_le_bytes(self.0));
    }

    fn dot_ref(row: &[Self], act: &[f32]) -> f32 {
        dot_seq(
            row.iter().map(|e| bf16_to_f32(u16::from_le_bytes(e.0))),
            act,
        )
    }
}
