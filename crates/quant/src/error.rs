//! The crate's error type.
//!
//! Every public entry point validates its arguments (types, lengths, row
//! ranges, activation shapes) once and reports a [`QuantError`] that says what
//! is wrong and what the caller should do. Kernels below that boundary assume
//! validated inputs and never fail.

use dsv4_gguf::GgmlType;

use crate::Isa;

/// Errors returned by the quantization and kernel API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuantError {
    /// The ggml type has no kernels in this crate.
    #[error(
        "ggml type {ty} is not supported by dsv4-quant (supported: F32, F16, BF16, Q8_0, Q4_0, \
         Q2_K, Q4_K, Q6_K, IQ2_XXS, MXFP4, and I32 for copies): re-quantize the tensor"
    )]
    UnsupportedType {
        /// The offending type.
        ty: GgmlType,
    },
    /// The operation exists, but not for this type (e.g. a matmul over I32).
    #[error("{op} is not defined for ggml type {ty}")]
    UnsupportedOp {
        /// What was asked.
        op: &'static str,
        /// The type it was asked for.
        ty: GgmlType,
    },
    /// A row length is not a whole number of blocks.
    #[error("row length {k} is not a multiple of the {ty} block size {block}")]
    RowNotBlockAligned {
        /// The type.
        ty: GgmlType,
        /// Requested row length in elements.
        k: usize,
        /// Elements per block of `ty`.
        block: usize,
    },
    /// A buffer has the wrong length.
    #[error("{what}: expected {expected} {unit}, got {got}")]
    BadLength {
        /// Which buffer.
        what: &'static str,
        /// Expected length.
        expected: usize,
        /// Actual length.
        got: usize,
        /// Unit of the lengths ("bytes", "elements").
        unit: &'static str,
    },
    /// Buffers whose lengths do not fit together (e.g. a row length that
    /// does not divide a matrix).
    #[error("{what}: {reason}")]
    BadShape {
        /// Which operation.
        what: &'static str,
        /// What does not fit, with the lengths.
        reason: String,
    },
    /// A row range does not lie inside the weight matrix.
    #[error("row range {start}..{end} is outside the weight matrix of {rows} rows")]
    RowsOutOfRange {
        /// Range start.
        start: usize,
        /// Range end.
        end: usize,
        /// Rows in the matrix.
        rows: usize,
    },
    /// The activation buffer does not match the weight type or shape.
    #[error(
        "activation buffer holds {got:?} rows of length {got_k}, but {ty} weights with k = {k} \
         need {expected:?}: call Kernels::quantize_act with act_type_for({ty})"
    )]
    ActMismatch {
        /// Weight type.
        ty: GgmlType,
        /// Row length the weights expect.
        k: usize,
        /// Activation type the weights pair with.
        expected: crate::ActType,
        /// Activation type found in the buffer.
        got: crate::ActType,
        /// Row length found in the buffer.
        got_k: usize,
    },
    /// The output view does not match the product's shape.
    #[error(
        "output view is [{out_n} tokens, {out_cols} columns] but the product is \
         [{n} tokens, {cols} rows]"
    )]
    OutMismatch {
        /// Tokens in the activations.
        n: usize,
        /// Rows requested.
        cols: usize,
        /// Tokens in the output view.
        out_n: usize,
        /// Columns in the output view.
        out_cols: usize,
    },
    /// An output matrix description is inconsistent.
    #[error(
        "output matrix [{n}, stride {stride}] with columns {col0}..{col_end} does not fit a \
         buffer of {len} floats"
    )]
    BadOutView {
        /// Rows of the output matrix.
        n: usize,
        /// Row stride.
        stride: usize,
        /// First column.
        col0: usize,
        /// One past the last column.
        col_end: usize,
        /// Buffer length.
        len: usize,
    },
    /// Memory for a converted copy of weights could not be obtained.
    #[error(
        "cannot allocate {bytes} bytes for {what}: {reason}; free memory or run without packing (--no-pack)"
    )]
    Alloc {
        /// What the memory was for.
        what: &'static str,
        /// Bytes asked for.
        bytes: usize,
        /// The system's reason.
        reason: String,
    },
    /// A forced instruction set is not available on this CPU.
    #[error(
        "instruction set {isa} is not available on this CPU (available: {available}); \
         pick one of those"
    )]
    IsaUnavailable {
        /// The ISA that was asked for.
        isa: Isa,
        /// What the CPU supports, comma separated.
        available: String,
    },
}
