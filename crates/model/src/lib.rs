//! DeepSeek V4 Flash itself: configuration from GGUF metadata, weight
//! binding through a typed table of tensor roles, the forward pass (prefill,
//! chunked prefill, decode and batched decode through one streaming layer
//! loop), the in-memory KV layout, and the [`Backend`] interface with its CPU
//! implementation. Maths follow `model-spec.md`; the verification reference is
//! HF transformers' `DeepseekV4ForCausalLM` (fixtures under
//! `tests/fixtures/reference/`). See GLOSSARY.md for HC, CSA/HCA, indexer, MTP.

pub mod backend;
pub mod compressor;
pub mod config;
pub mod error;
pub mod forward;
pub mod hc;
pub mod kv;
pub mod model;
pub mod numerics;
pub mod persist;
pub mod rope;
pub mod synth;
pub mod tensors;
pub mod weights;

pub use backend::cpu::{CpuBackend, CpuOptions};
pub use backend::{Backend, RowMeta, SessionStateOps, Trace};
pub use config::{LayerKind, ModelConfig};
pub use error::{ModelError, Result};
pub use forward::{Scratch, forward, run_sequence};
pub use kv::{Checkpoint, KvFormat, SessionState};
pub use model::{Model, ModelOptions};
