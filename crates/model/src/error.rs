//! Errors of model loading and evaluation.
//!
//! Loading errors name the file, the metadata key or tensor, what was
//! expected and what was found, and what to do. Evaluation errors name the
//! session and position involved.

use dsv4_gguf::GgufError;

/// An error while loading or running the model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The GGUF container is unreadable.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// A metadata key is missing, mistyped or out of range.
    #[error("{file}: metadata {key:?}: {reason}")]
    Metadata {
        /// The file.
        file: String,
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The file is not a DeepSeek V4 (`deepseek4`) model.
    #[error(
        "{file}: general.architecture is {found:?}, expected \"deepseek4\"; dsv4 runs only \
         DeepSeek V4 models in llama.cpp's deepseek4 GGUF layout"
    )]
    WrongArchitecture {
        /// The file.
        file: String,
        /// The architecture found.
        found: String,
    },
    /// The configuration is inconsistent.
    #[error("{file}: invalid configuration: {reason}")]
    Config {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A required tensor is absent.
    #[error(
        "{file}: tensor {tensor:?} is missing ({role}); the file is incomplete or made for a different model"
    )]
    MissingTensor {
        /// The file.
        file: String,
        /// The tensor name.
        tensor: String,
        /// What it is for.
        role: &'static str,
    },
    /// A tensor has the wrong shape.
    #[error("{file}: tensor {tensor:?} has shape {found}, expected {expected}")]
    TensorShape {
        /// The file.
        file: String,
        /// The tensor name.
        tensor: String,
        /// Expected shape (ggml order).
        expected: String,
        /// Found shape.
        found: String,
    },
    /// A tensor has a type the engine cannot use for its role.
    #[error("{file}: tensor {tensor:?} has type {found}, expected one of {expected}{hint}")]
    TensorType {
        /// The file.
        file: String,
        /// The tensor name.
        tensor: String,
        /// Accepted types.
        expected: String,
        /// Found type.
        found: String,
        /// Extra advice.
        hint: String,
    },
    /// A token id outside the vocabulary.
    #[error("token id {id} at batch row {row} is outside the vocabulary (size {vocab})")]
    TokenOutOfRange {
        /// The id.
        id: u32,
        /// Its row in the batch.
        row: usize,
        /// Vocabulary size.
        vocab: usize,
    },
    /// A batch or state is inconsistent with the request.
    #[error("invalid batch: {0}")]
    Batch(String),
    /// A kernel refused its input (indicates a bug or an unsupported type).
    #[error("kernel error on {tensor}: {reason}")]
    Kernel {
        /// The tensor being multiplied.
        tensor: String,
        /// The kernel's message.
        reason: String,
    },
    /// A snapshot could not be restored.
    #[error("state snapshot does not match this model: {0}")]
    Snapshot(String),
}

/// Result alias.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
