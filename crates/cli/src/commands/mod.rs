//! One module per subcommand.

pub mod chat;
pub mod common;
pub mod engine_args;
pub mod stream;
pub mod run;
pub mod inspect;
pub mod kernels;
pub mod logits;
pub mod render;
pub mod synth;
pub mod tokenize;
