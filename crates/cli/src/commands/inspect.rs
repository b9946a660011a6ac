//! `dsv4 inspect FILE.gguf`: what a GGUF file holds and, for `deepseek4`
//! files, whether it follows the model's conventions.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use dsv4_gguf::{GgmlType, GgufFile};
use dsv4_model::config::{ARCH, ModelConfig};
use dsv4_model::tensors::{Severity, check_file};

/// Arguments of `dsv4 inspect`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The GGUF file.
    pub(crate) file: PathBuf,
    /// Items shown per metadata array.
    #[arg(long, default_value_t = 8)]
    pub(crate) array_items: usize,
    /// Skip the per-tensor table.
    #[arg(long)]
    pub(crate) no_tensors: bool,
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// Runs the command; returns an error when the file cannot be read, and
/// reports (without failing) convention findings.
pub(crate) fn run(a: &Args) -> Result<()> {
    let t0 = std::time::Instant::now();
    let f = GgufFile::open(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
    let opened = t0.elapsed();
    let out = &mut std::io::stdout().lock();
    let arch = f
        .metadata()
        .string("general.architecture")
        .unwrap_or("(none)")
        .to_string();
    writeln!(out, "file:          {}", a.file.display())?;
    writeln!(
        out,
        "size:          {} ({} bytes), opened in {:.1} ms",
        human(f.file_size()),
        f.file_size(),
        opened.as_secs_f64() * 1e3
    )?;
    writeln!(out, "gguf version:  {}", f.version())?;
    writeln!(out, "architecture:  {arch}")?;
    writeln!(out, "alignment:     {}", f.alignment())?;
    writeln!(out, "tensors:       {}", f.tensors().len())?;
    writeln!(out, "\nmetadata ({} keys):", f.metadata().len())?;
    for (k, v) in f.metadata().iter() {
        writeln!(out, "  {k:<52} {}", v.summary(a.array_items))?;
    }
    if !a.no_tensors {
        writeln!(
            out,
            "\n{:<48} {:<8} {:<24} {:>12}",
            "tensor", "type", "shape (ggml order)", "bytes"
        )?;
        for t in f.tensors() {
            writeln!(
                out,
                "{:<48} {:<8} {:<24} {:>12}",
                t.name,
                t.ty.name(),
                t.shape_string(),
                t.size_bytes
            )?;
        }
    }
    let mut per_type: BTreeMap<GgmlType, (usize, u64, u64)> = BTreeMap::new();
    for t in f.tensors() {
        let e = per_type.entry(t.ty).or_default();
        e.0 += 1;
        e.1 += t.size_bytes;
        e.2 += t.n_elements;
    }
    writeln!(out, "\ntotals per type:")?;
    let mut total = 0u64;
    for (ty, (n, bytes, elems)) in &per_type {
        total += bytes;
        writeln!(
            out,
            "  {:<8} {:>5} tensors {:>12} {:>16} params  ({:.3} bits/weight)",
            ty.name(),
            n,
            human(*bytes),
            elems,
            ty.bits_per_weight()
        )?;
    }
    writeln!(
        out,
        "  {:<8} {:>5} tensors {:>12}",
        "all",
        f.tensors().len(),
        human(total)
    )?;
    if arch == ARCH {
        conventions(out, &f)?;
    }
    Ok(())
}

fn conventions(out: &mut impl Write, f: &GgufFile) -> Result<()> {
    writeln!(out, "\nDeepSeek V4 conventions check:")?;
    let cfg = match ModelConfig::from_gguf(f) {
        Ok(c) => c,
        Err(e) => {
            writeln!(out, "  ERROR    configuration: {e}")?;
            return Ok(());
        }
    };
    writeln!(out, "  model:   {}", cfg.summary())?;
    let kinds: Vec<&str> = cfg.layers.iter().map(|l| l.kind.name()).collect();
    writeln!(out, "  layers:  {}", kinds.join(" "))?;
    let findings = check_file(f, &cfg);
    let errors = findings
        .iter()
        .filter(|x| x.severity == Severity::Error)
        .count();
    for x in &findings {
        let tag = match x.severity {
            Severity::Error => "ERROR  ",
            Severity::Warning => "WARNING",
            Severity::Note => "note   ",
        };
        writeln!(out, "  {tag}  {}: {}", x.subject, x.message)?;
    }
    if errors == 0 {
        writeln!(
            out,
            "  OK: every tensor of the {} layers is present with the expected shape and a usable type",
            cfg.n_layer
        )?;
    } else {
        writeln!(out, "  {errors} error(s): dsv4 cannot load this file as is")?;
    }
    Ok(())
}
