//! One module per subcommand.

pub(crate) mod bench;
pub(crate) mod chat;
pub(crate) mod common;
pub(crate) mod engine_args;
pub(crate) mod inspect;
pub(crate) mod kernels;
pub(crate) mod logits;
pub(crate) mod render;
pub(crate) mod run;
pub(crate) mod serve;
pub(crate) mod stream;
pub(crate) mod synth;
pub(crate) mod tokenize;
