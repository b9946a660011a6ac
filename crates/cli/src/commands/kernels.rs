//! `dsv4 kernels`: which kernel variants this CPU can run.

use anyhow::Result;
use dsv4_quant::Kernels;

/// Arguments of `dsv4 kernels`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

/// Prints the variants, best first, and the one chosen by default.
pub(crate) fn run(_: &Args) -> Result<()> {
    let best = Kernels::detect();
    println!("default: {}", best.describe());
    for isa in Kernels::available() {
        println!("available: {isa}");
    }
    Ok(())
}
