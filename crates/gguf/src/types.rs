//! The ggml tensor type table: type ids, names and block geometry.
//!
//! The ids and sizes are those of upstream ggml at llama.cpp commit `0c1e57098`
//! (`ggml/include/ggml.h`, and `GGML_QUANT_SIZES` in gguf-py `constants.py`).
//! This module owns only the *storage geometry* (elements per block, bytes per
//! block) that the reader needs to validate a tensor directory. Which types a
//! model accepts for which tensor, and what the bytes mean, is decided elsewhere:
//! several forks reuse ids (42 is `Q2_0` upstream but FP8 E4M3 in a community
//! fork), so a caller must never interpret a type id without first checking the
//! file's architecture conventions.

use std::fmt;

/// A ggml tensor storage type, as numbered by upstream ggml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
#[allow(non_camel_case_types)]
pub enum GgmlType {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// 4-bit, 32-element blocks with an f16 scale.
    Q4_0,
    /// 4-bit with scale and min.
    Q4_1,
    /// 5-bit, 32-element blocks.
    Q5_0,
    /// 5-bit with scale and min.
    Q5_1,
    /// 8-bit, 32-element blocks with an f16 scale.
    Q8_0,
    /// 8-bit with scale and sum.
    Q8_1,
    /// 2.625-bit k-quant, 256-element super-blocks.
    Q2_K,
    /// 3-bit k-quant.
    Q3_K,
    /// 4.5-bit k-quant.
    Q4_K,
    /// 5-bit k-quant.
    Q5_K,
    /// 6.5625-bit k-quant.
    Q6_K,
    /// 8-bit k-quant activation format.
    Q8_K,
    /// 2.0625-bit lattice i-quant.
    IQ2_XXS,
    /// 2.3125-bit i-quant.
    IQ2_XS,
    /// 3.0625-bit i-quant.
    IQ3_XXS,
    /// 1.5625-bit i-quant.
    IQ1_S,
    /// 4-bit non-linear, 32-element blocks.
    IQ4_NL,
    /// 3.4375-bit i-quant.
    IQ3_S,
    /// 2.5-bit i-quant.
    IQ2_S,
    /// 4.25-bit i-quant.
    IQ4_XS,
    /// Signed 8-bit integer.
    I8,
    /// Signed 16-bit integer.
    I16,
    /// Signed 32-bit integer.
    I32,
    /// Signed 64-bit integer.
    I64,
    /// IEEE binary64.
    F64,
    /// 1.75-bit i-quant.
    IQ1_M,
    /// bfloat16: the upper half of an f32.
    BF16,
    /// Ternary, 1.6875 bits.
    TQ1_0,
    /// Ternary, 2.0625 bits.
    TQ2_0,
    /// OCP microscaling FP4: an E8M0 exponent and 32 E2M1 codes.
    MXFP4,
    /// NVIDIA FP4 with E4M3 sub-block scales.
    NVFP4,
    /// 1-bit, 128-element blocks (upstream id 41).
    Q1_0,
    /// 2-bit, 64-element blocks (upstream id 42; FP8 in some forks).
    Q2_0,
}

/// One row of the type table.
struct TypeInfo {
    ty: GgmlType,
    id: u32,
    name: &'static str,
    block_elems: u64,
    block_bytes: u64,
}

const fn t(
    ty: GgmlType,
    id: u32,
    name: &'static str,
    block_elems: u64,
    block_bytes: u64,
) -> TypeInfo {
    TypeInfo {
        ty,
        id,
        name,
        block_elems,
        block_bytes,
    }
}

const QK_K: u64 = 256;

/// The table, from `GGML_QUANT_SIZES` (gguf-py, llama.cpp `0c1e57098`).
const TABLE: &[TypeInfo] = &[
    t(GgmlType::F32, 0, "F32", 1, 4),
    t(GgmlType::F16, 1, "F16", 1, 2),
    t(GgmlType::Q4_0, 2, "Q4_0", 32, 2 + 16),
    t(GgmlType::Q4_1, 3, "Q4_1", 32, 2 + 2 + 16),
    t(GgmlType::Q5_0, 6, "Q5_0", 32, 2 + 4 + 16),
    t(GgmlType::Q5_1, 7, "Q5_1", 32, 2 + 2 + 4 + 16),
    t(GgmlType::Q8_0, 8, "Q8_0", 32, 2 + 32),
    t(GgmlType::Q8_1, 9, "Q8_1", 32, 2 + 2 + 32),
    t(
        GgmlType::Q2_K,
        10,
        "Q2_K",
        QK_K,
        2 + 2 + QK_K / 16 + QK_K / 4,
    ),
    t(
        GgmlType::Q3_K,
        11,
        "Q3_K",
        QK_K,
        2 + QK_K / 4 + QK_K / 8 + 12,
    ),
    t(GgmlType::Q4_K, 12, "Q4_K", QK_K, 2 + 2 + QK_K / 2 + 12),
    t(
        GgmlType::Q5_K,
        13,
        "Q5_K",
        QK_K,
        2 + 2 + QK_K / 2 + QK_K / 8 + 12,
    ),
    t(
        GgmlType::Q6_K,
        14,
        "Q6_K",
        QK_K,
        2 + QK_K / 2 + QK_K / 4 + QK_K / 16,
    ),
    t(GgmlType::Q8_K, 15, "Q8_K", QK_K, 4 + QK_K + QK_K / 8),
    t(GgmlType::IQ2_XXS, 16, "IQ2_XXS", QK_K, 2 + QK_K / 4),
    t(
        GgmlType::IQ2_XS,
        17,
        "IQ2_XS",
        QK_K,
        2 + QK_K / 4 + QK_K / 32,
    ),
    t(
        GgmlType::IQ3_XXS,
        18,
        "IQ3_XXS",
        QK_K,
        2 + QK_K / 4 + QK_K / 8,
    ),
    t(GgmlType::IQ1_S, 19, "IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 16),
    t(GgmlType::IQ4_NL, 20, "IQ4_NL", 32, 2 + 16),
    t(
        GgmlType::IQ3_S,
        21,
        "IQ3_S",
        QK_K,
        2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4,
    ),
    t(GgmlType::IQ2_S, 22, "IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 16),
    t(
        GgmlType::IQ4_XS,
        23,
        "IQ4_XS",
        QK_K,
        2 + 2 + QK_K / 2 + QK_K / 64,
    ),
    t(GgmlType::I8, 24, "I8", 1, 1),
    t(GgmlType::I16, 25, "I16", 1, 2),
    t(GgmlType::I32, 26, "I32", 1, 4),
    t(GgmlType::I64, 27, "I64", 1, 8),
    t(GgmlType::F64, 28, "F64", 1, 8),
    t(
        GgmlType::IQ1_M,
        29,
        "IQ1_M",
        QK_K,
        QK_K / 8 + QK_K / 16 + QK_K / 32,
    ),
    t(GgmlType::BF16, 30, "BF16", 1, 2),
    t(GgmlType::TQ1_0, 34, "TQ1_0", QK_K, 2 + 4 * 13),
    t(GgmlType::TQ2_0, 35, "TQ2_0", QK_K, 2 + 64),
    t(GgmlType::MXFP4, 39, "MXFP4", 32, 1 + 16),
    t(GgmlType::NVFP4, 40, "NVFP4", 64, 4 + 32),
    t(GgmlType::Q1_0, 41, "Q1_0", 128, 2 + 16),
    t(GgmlType::Q2_0, 42, "Q2_0", 64, 2 + 16),
];

impl GgmlType {
    fn info(self) -> &'static TypeInfo {
        // Every variant has exactly one row; `all_types_have_rows` checks it.
        let mut i = 0;
        while i < TABLE.len() {
            if TABLE[i].ty as u32 == self as u32 {
                return &TABLE[i];
            }
            i += 1;
        }
        &TABLE[0]
    }

    /// Looks a type up by its ggml id. `None` for ids upstream ggml does not define.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        TABLE.iter().find(|r| r.id == id).map(|r| r.ty)
    }

    /// Looks a type up by its ggml name (`"Q8_0"`, `"IQ2_XXS"`, case-insensitive).
    pub fn from_name(name: &str) -> Option<GgmlType> {
        TABLE
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(name))
            .map(|r| r.ty)
    }

    /// The ggml type id written in GGUF tensor infos.
    pub fn id(self) -> u32 {
        self.info().id
    }

    /// The ggml name, e.g. `"Q4_K"`.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Elements per block (1 for plain scalar types).
    pub fn block_elems(self) -> u64 {
        self.info().block_elems
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> u64 {
        self.info().block_bytes
    }

    /// Bits per weight, for reports.
    pub fn bits_per_weight(self) -> f64 {
        self.block_bytes() as f64 * 8.0 / self.block_elems() as f64
    }

    /// Bytes taken by a row of `n` elements, or `None` if `n` is not a whole
    /// number of blocks (or the product overflows).
    pub fn row_bytes(self, n: u64) -> Option<u64> {
        if !n.is_multiple_of(self.block_elems()) {
            return None;
        }
        (n / self.block_elems()).checked_mul(self.block_bytes())
    }

    /// Every type in the table, in id order.
    pub fn all() -> impl Iterator<Item = GgmlType> {
        TABLE.iter().map(|r| r.ty)
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_types_have_rows_and_roundtrip() {
        for row in TABLE {
            assert_eq!(GgmlType::from_id(row.id), Some(row.ty));
            assert_eq!(row.ty.id(), row.id);
            assert_eq!(GgmlType::from_name(row.name), Some(row.ty));
        }
        assert_eq!(GgmlType::from_id(4), None);
        assert_eq!(GgmlType::from_id(43), None);
    }

    #[test]
    fn sizes_match_the_documented_layouts() {
        // peers-and-formats.md §2.
        assert_eq!(GgmlType::Q8_0.block_bytes(), 34);
        assert_eq!(GgmlType::Q2_K.block_bytes(), 84);
        assert_eq!(GgmlType::Q4_K.block_bytes(), 144);
        assert_eq!(GgmlType::Q6_K.block_bytes(), 210);
        assert_eq!(GgmlType::IQ2_XXS.block_bytes(), 66);
        assert_eq!(GgmlType::Q8_K.block_bytes(), 292);
        assert_eq!(GgmlType::MXFP4.block_bytes(), 17);
        assert_eq!(GgmlType::Q4_0.row_bytes(64), Some(36));
        assert_eq!(GgmlType::Q4_0.row_bytes(65), None);
    }
}
