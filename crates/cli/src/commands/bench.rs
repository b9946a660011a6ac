//! `dsv4 bench`: prefill and decode speed, batched decode, bytes read per
//! token, achieved bandwidth and the machine's measured ceiling; CSV and an
//! SVG chart on request.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use dsv4_engine::bench::{BenchConfig, BenchRow, bandwidth_probe, run as run_bench};
use dsv4_engine::{Kernels, KvFormat};
use dsv4_gguf::GgufFile;
use dsv4_model::{Model, ModelOptions};

use super::common::CpuArgs;

/// Arguments of `dsv4 bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The model GGUF (e.g. from `dsv4 synth --preset slice --quant q2`).
    #[arg(long, short = 'm')]
    pub(crate) model: Option<PathBuf>,
    /// Benchmark the built-in demo model instead.
    #[arg(long, conflicts_with = "model")]
    pub(crate) demo: bool,
    /// Prompt lengths to measure prefill at (comma separated).
    #[arg(long, default_value = "512", value_delimiter = ',')]
    pub(crate) prompt_tokens: Vec<usize>,
    /// Tokens generated per decode measurement.
    #[arg(long = "gen", default_value_t = 32)]
    pub(crate) gen_tokens: usize,
    /// Context lengths to measure decode at (comma separated).
    #[arg(long, default_value = "64", value_delimiter = ',')]
    pub(crate) ctx_sweep: Vec<usize>,
    /// Sessions decoding together (comma separated; 1 = single session).
    #[arg(long, default_value = "1,4", value_delimiter = ',')]
    pub(crate) batch: Vec<usize>,
    /// Prompt tokens per forward pass.
    #[arg(long, default_value_t = 512)]
    pub(crate) prefill_chunk: usize,
    /// Repetitions per measurement (median reported).
    #[arg(long, default_value_t = 3)]
    pub(crate) runs: usize,
    /// Size of the bandwidth probe buffer, MiB.
    #[arg(long, default_value_t = 2048)]
    pub(crate) probe_mib: usize,
    /// QAT simulation.
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub(crate) qat_sim: String,
    /// Page the model in before measuring (with a progress bar).
    #[arg(long)]
    pub(crate) warm: bool,
    /// Write the rows as CSV.
    #[arg(long)]
    pub(crate) csv: Option<PathBuf>,
    /// Write an SVG chart.
    #[arg(long)]
    pub(crate) plot: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) cpu: CpuArgs,
}

/// Runs the benchmark.
pub(crate) fn run(a: &Args) -> Result<()> {
    let qat = a.qat_sim == "on";
    let model = if a.demo {
        let tok = dsv4_tokenizer::Tokenizer::builtin()?;
        let file = GgufFile::from_bytes(dsv4_engine::demo::demo_gguf(&tok, 1)?)?;
        Model::from_file(Arc::new(file), ModelOptions { qat_sim: qat })?
    } else {
        let Some(p) = &a.model else {
            bail!(
                "pass --model FILE.gguf (e.g. made by `dsv4 synth --preset slice --quant q2`) or --demo"
            )
        };
        Model::load(p, ModelOptions { qat_sim: qat })
            .with_context(|| format!("loading {}", p.display()))?
    };
    let kv = if qat {
        KvFormat::Compact
    } else {
        KvFormat::F32
    };
    let be = a.cpu.backend(false, kv, 0)?;
    let threads = be.threads();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    eprintln!("model: {}", model.cfg.summary());
    eprintln!(
        "backend: {} with {threads} threads",
        dsv4_model::Backend::name(&be)
    );
    let bw = bandwidth_probe(&pool, a.probe_mib << 20);
    let bpt = model.bytes_per_decoded_token() as f64;
    eprintln!(
        "read bandwidth (STREAM-style sum, {threads} threads): {bw:.1} GB/s; weights read per decoded token: {:.3} GB; ceiling {:.2} t/s",
        bpt / 1e9,
        bw * 1e9 / bpt
    );
    let _ = Kernels::detect();
    let t = std::time::Instant::now();
    let packed = dsv4_model::Backend::prepare(&be, &model)?;
    if packed > 0 {
        eprintln!(
            "packed weights: {:.2} GB in {:.2} s",
            packed as f64 / 1e9,
            t.elapsed().as_secs_f64()
        );
    }
    let cfg = BenchConfig {
        prompt_tokens: a.prompt_tokens.clone(),
        gen_tokens: a.gen_tokens,
        ctx_sweep: a.ctx_sweep.clone(),
        batch: a.batch.clone(),
        prefill_chunk: a.prefill_chunk,
        runs: a.runs,
    };
    println!(
        "{:<8} {:>7} {:>8} {:>8} {:>10} {:>9} {:>9}",
        "kind", "ctx", "sessions", "tokens", "tok/s", "GB/s", "ceiling%"
    );
    let rows = run_bench(&model, &be, &cfg, |r| {
        let pct = r
            .gb_per_s
            .map_or(String::from("-"), |g| format!("{:.0}%", 100.0 * g / bw));
        let gbs = r.gb_per_s.map_or(String::from("-"), |g| format!("{g:.2}"));
        println!(
            "{:<8} {:>7} {:>8} {:>8} {:>10.2} {:>9} {:>9}",
            r.kind, r.ctx, r.sessions, r.tokens, r.tokens_per_s, gbs, pct
        );
    })?;
    if let Some(p) = &a.csv {
        write_csv(p, &rows, bw, bpt)?;
    }
    if let Some(p) = &a.plot {
        plot(p, &rows, bw * 1e9 / bpt)?;
    }
    Ok(())
}

fn write_csv(p: &PathBuf, rows: &[BenchRow], bw: f64, bpt: f64) -> Result<()> {
    let mut f = std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?;
    writeln!(
        f,
        "kind,ctx,sessions,tokens,seconds,tokens_per_s,gb_per_s,bandwidth_gb_per_s,bytes_per_token"
    )?;
    for r in rows {
        writeln!(
            f,
            "{},{},{},{},{:.6},{:.4},{},{:.2},{:.0}",
            r.kind,
            r.ctx,
            r.sessions,
            r.tokens,
            r.seconds,
            r.tokens_per_s,
            r.gb_per_s.map_or(String::new(), |g| format!("{g:.3}")),
            bw,
            bpt
        )?;
    }
    Ok(())
}

fn plot(p: &PathBuf, rows: &[BenchRow], ceiling: f64) -> Result<()> {
    use plotters::prelude::*;
    let root = SVGBackend::new(p, (900, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (left, right) = root.split_horizontally(450);
    let decode: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.kind == "decode")
        .map(|r| (r.ctx as f64, r.tokens_per_s))
        .collect();
    let prefill: Vec<(f64, f64)> = rows
        .iter()
        .filter(|r| r.kind == "prefill")
        .map(|r| (r.ctx as f64, r.tokens_per_s))
        .collect();
    let draw = |area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
                title: &str,
                pts: &[(f64, f64)],
                hline: Option<f64>|
     -> Result<()> {
        let xmax = pts.iter().map(|p| p.0).fold(1.0, f64::max) * 1.1;
        let ymax = pts.iter().map(|p| p.1).chain(hline).fold(1.0, f64::max) * 1.2;
        let mut c = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..xmax, 0.0..ymax)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        c.configure_mesh()
            .x_desc("context / prompt tokens")
            .y_desc("tokens/s")
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        c.draw_series(LineSeries::new(pts.iter().copied(), &BLUE))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        c.draw_series(pts.iter().map(|&p| Circle::new(p, 4, BLUE.filled())))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(h) = hline {
            c.draw_series(LineSeries::new(vec![(0.0, h), (xmax, h)], &RED))
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .label("bandwidth ceiling")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], RED));
            c.configure_series_labels()
                .border_style(BLACK)
                .draw()
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        Ok(())
    };
    draw(&left, "decode (1 session)", &decode, Some(ceiling))?;
    draw(&right, "prefill", &prefill, None)?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
