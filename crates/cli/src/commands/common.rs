//! Options shared by several subcommands and their resolution.

use anyhow::{Context, Result, bail};
use dsv4_model::{CpuBackend, CpuOptions, KvFormat};
use dsv4_quant::{Isa, Kernels};

/// CPU selection flags.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct CpuArgs {
    /// Worker threads (default: all cores).
    #[arg(long, default_value_t = 0)]
    pub(crate) threads: usize,
    /// Force a kernel variant: scalar, avx2, avx512, neon (default: best available).
    #[arg(long)]
    pub(crate) kernels: Option<String>,
    /// Multiply the weights in their file layout only: no packed copies of
    /// the Q8_0 matrices (saves their size in memory; slower on CPUs whose
    /// kernels pack, such as AVX-512 VNNI).
    #[arg(long)]
    pub(crate) no_pack: bool,
}

impl CpuArgs {
    /// Resolves the kernel table.
    pub(crate) fn kernel_table(&self) -> Result<Kernels> {
        match &self.kernels {
            None => Ok(Kernels::detect()),
            Some(name) => {
                let Some(isa) = Isa::from_name(name) else {
                    bail!(
                        "unknown kernel variant {name:?}; choose one of scalar, avx2, avx512, neon"
                    );
                };
                Kernels::with_isa(isa).with_context(|| format!("kernel variant {name}"))
            }
        }
    }

    /// Builds a CPU backend.
    pub(crate) fn backend(
        &self,
        exact: bool,
        kv_format: KvFormat,
        raw_history: usize,
    ) -> Result<CpuBackend> {
        let kernels = self.kernel_table()?;
        Ok(CpuBackend::new(
            kernels,
            CpuOptions {
                threads: self.threads,
                exact,
                kv_format,
                raw_history,
                pack_weights: !self.no_pack,
            },
        )?)
    }
}
