//! GGUF v2/v3 files: reading over a read-only memory map, and writing.
//!
//! This crate owns the container format only: the header, the metadata
//! key/value store, the tensor directory and the alignment rules. It knows the
//! storage geometry of every ggml type (to validate tensor sizes) but never
//! interprets tensor bytes; that is the job of `dsv4-quant` and `dsv4-model`.
//! Every malformed input yields a [`GgufError`] naming the file, offset, key or
//! tensor at fault; nothing in here panics on bad data.

mod error;
mod file;
mod mmap;
mod reader;
mod tensor;
pub mod types;
mod value;
mod writer;

pub use error::{ErrorKind, GgufError};
pub use file::{Advice, GgufFile};
pub use reader::{DEFAULT_ALIGNMENT, Header, MAX_DIMS, parse_header};
pub use tensor::{TensorInfo, TensorView};
pub use types::GgmlType;
pub use value::{Array, Metadata, Value, ValueType};
pub use writer::{GgufWriter, Producer};
