//! Errors of the GGUF reader and writer.
//!
//! Every error names where it happened: the file (or `<memory>` for in-memory
//! buffers), and the byte offset, metadata key or tensor name at fault, and
//! says what a user can do about it where that is not obvious.

use std::path::PathBuf;

use crate::value::ValueType;

/// A GGUF error, with the file it concerns.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {kind}")]
pub struct GgufError {
    /// The file path, or `<memory>`.
    pub origin: String,
    /// What went wrong.
    pub kind: ErrorKind,
}

impl GgufError {
    pub(crate) fn new(origin: &str, kind: ErrorKind) -> Self {
        GgufError {
            origin: origin.to_string(),
            kind,
        }
    }
}

/// What went wrong while reading or writing a GGUF file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The operating system refused an operation.
    #[error("{action} failed: {source}")]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with `GGUF`.
    #[error(
        "not a GGUF file: the first four bytes are {found:02x?}, expected \"GGUF\" (47 47 55 46); \
         is this a safetensors or PyTorch checkpoint? convert it to GGUF first"
    )]
    BadMagic {
        /// The bytes found.
        found: [u8; 4],
    },
    /// A GGUF version this reader does not support.
    #[error("unsupported GGUF version {version} (this reader supports versions 2 and 3{hint})")]
    UnsupportedVersion {
        /// The version field.
        version: u32,
        /// Extra hint (e.g. big-endian files).
        hint: &'static str,
    },
    /// The file ends before a structure is complete.
    #[error(
        "truncated file: {what} at offset {offset} needs {needed} bytes but only {available} remain"
    )]
    Truncated {
        /// What was being read.
        what: String,
        /// Its offset.
        offset: u64,
        /// Bytes needed.
        needed: u64,
        /// Bytes left in the file.
        available: u64,
    },
    /// A count or length that cannot be right (it exceeds what the file could hold or a hard limit).
    #[error(
        "implausible {what} at offset {offset}: {value} (limit {limit}); the header is corrupt"
    )]
    Implausible {
        /// The field.
        what: String,
        /// Its offset.
        offset: u64,
        /// The value found.
        value: u64,
        /// The largest accepted value.
        limit: u64,
    },
    /// A string that is not valid UTF-8.
    #[error("{what} at offset {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// What the string is.
        what: String,
        /// Its offset.
        offset: u64,
    },
    /// An unknown metadata value type id.
    #[error("metadata key {key:?} at offset {offset} has unknown value type id {id}")]
    UnknownValueType {
        /// The key.
        key: String,
        /// The offset of the type field.
        offset: u64,
        /// The id.
        id: u32,
    },
    /// A metadata key appears twice.
    #[error("metadata key {key:?} appears more than once")]
    DuplicateKey {
        /// The key.
        key: String,
    },
    /// A tensor name appears twice.
    #[error("tensor {name:?} appears more than once in the tensor directory")]
    DuplicateTensor {
        /// The name.
        name: String,
    },
    /// A tensor type id that ggml does not define.
    #[error(
        "tensor {tensor:?} has unknown ggml type id {id}; the file was written by a tool or fork \
         with types this reader does not know"
    )]
    UnknownTensorType {
        /// The tensor.
        tensor: String,
        /// The type id.
        id: u32,
    },
    /// A tensor whose shape is invalid.
    #[error("tensor {tensor:?}: {reason}")]
    BadTensorShape {
        /// The tensor.
        tensor: String,
        /// Why.
        reason: String,
    },
    /// A tensor whose data is misplaced.
    #[error("tensor {tensor:?}: {reason}")]
    BadTensorData {
        /// The tensor.
        tensor: String,
        /// Why.
        reason: String,
    },
    /// Two tensors' data overlap.
    #[error("tensors {a:?} and {b:?} overlap in the data section")]
    OverlappingTensors {
        /// First tensor.
        a: String,
        /// Second tensor.
        b: String,
    },
    /// `general.alignment` is unusable.
    #[error("general.alignment = {value} is not a non-zero power of two")]
    BadAlignment {
        /// The value.
        value: u64,
    },
    /// A metadata key has the wrong type.
    #[error("metadata key {key:?} has type {found}, expected {expected}")]
    WrongType {
        /// The key.
        key: String,
        /// Expected type description.
        expected: &'static str,
        /// Found type.
        found: ValueType,
    },
    /// A metadata key is absent.
    #[error("metadata key {key:?} is missing")]
    MissingKey {
        /// The key.
        key: String,
    },
    /// A metadata value is out of the range the caller accepts.
    #[error("metadata key {key:?}: {reason}")]
    BadValue {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// Nested arrays deeper than the reader accepts.
    #[error("metadata key {key:?}: arrays nested more than {limit} deep")]
    TooDeep {
        /// The key.
        key: String,
        /// The depth limit.
        limit: usize,
    },
    /// The writer was given inconsistent input.
    #[error("cannot write tensor {tensor:?}: {reason}")]
    WriterInput {
        /// The tensor.
        tensor: String,
        /// Why.
        reason: String,
    },
}

/// Builds an I/O error kind.
pub(crate) fn io(action: &'static str, source: std::io::Error) -> ErrorKind {
    ErrorKind::Io { action, source }
}

/// A path rendered for messages.
pub(crate) fn origin_of(path: &std::path::Path) -> String {
    PathBuf::from(path).display().to_string()
}
