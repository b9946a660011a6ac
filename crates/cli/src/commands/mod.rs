//! One module per subcommand.

pub mod common;
pub mod inspect;
pub mod kernels;
pub mod logits;
pub mod synth;
