//! Kernel microbenchmarks: dequantization and matmul throughput per weight type
//! and per instruction set available on the host.
//!
//! Throughput is reported as bytes of *weights* processed per second (criterion
//! prints GiB/s; multiply by 1.0737 for GB/s):
//! - `dequant/<isa>/<type>`: one row of 4096 dequantized into an L1-resident
//!   buffer, rows streamed from a 64 MiB matrix;
//! - `matmul/<isa>/<type>/n1`: matrix-vector product over a 64 MiB weight
//!   matrix (larger than the L3 cache, so it measures DRAM streaming);
//! - `matmul/<isa>/<type>/n{8,16,64}`: the same product for a batch of
//!   activation rows over a 4 MiB matrix (compute bound; divide by `n` for
//!   per-token cost).
//!
//! Every kernel table the host supports is measured (`avx512+vnni`, `avx512`
//! without VNNI, `avx2`, `scalar`, ...).
//!
//! Run: `cargo bench -p dsv4-quant --bench kernels` (append a filter such as
//! `matmul/avx2/Q8_0` to run a subset).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dsv4_gguf::GgmlType;
use dsv4_quant::{ActBuf, Kernels, OutCols, WEIGHT_TYPES, act_type_for};

const K: usize = 4096;

/// Random weights of `ty` with finite scales: `rows` rows of `K`.
fn weights(ty: GgmlType, rows: usize, seed: u64) -> Vec<u8> {
    let row_bytes = ty.row_bytes(K as u64).unwrap_or(0) as usize;
    let mut s = seed | 1;
    let mut w: Vec<u8> = (0..rows * row_bytes)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 32) as u8
        })
        .collect();
    let bb = ty.block_bytes() as usize;
    let offsets: &[usize] = match ty {
        GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::IQ2_XXS => &[0],
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q4_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        GgmlType::F16 | GgmlType::BF16 => &[0],
        GgmlType::F32 => &[2],
        _ => &[],
    };
    for blk in w.chunks_exact_mut(bb) {
        for &o in offsets {
            // A moderate, normal exponent (no infinities, NaNs or denormals).
            blk[o + 1] = (blk[o + 1] & 0x3B) | 0x30;
        }
        if ty == GgmlType::MXFP4 {
            blk[0] = 120 + (blk[0] & 7);
        }
    }
    w
}

fn bench(c: &mut Criterion) {
    let big_bytes = 64usize << 20;
    let small_bytes = 4usize << 20;
    for kern in Kernels::all_variants() {
        // "avx512 (+vnni +vbmi)" → "avx512+vnni+vbmi".
        let isa: String = kern
            .describe()
            .chars()
            .filter(|c| !matches!(c, ' ' | '(' | ')'))
            .collect();
        for &ty in &WEIGHT_TYPES {
            let row_bytes = ty.row_bytes(K as u64).unwrap_or(1) as usize;
            let rows = big_bytes / row_bytes;
            let w = weights(ty, rows, 0x9E37_79B9 ^ u64::from(ty.id()));
            let act_ty = match act_type_for(ty) {
                Ok(a) => a,
                Err(_) => continue,
            };

            let mut g = c.benchmark_group(format!("dequant/{isa}"));
            g.sample_size(10).warm_up_time(Duration::from_millis(300));
            g.measurement_time(Duration::from_secs(2));
            g.throughput(Throughput::Bytes((rows * row_bytes) as u64));
            let mut row = vec![0.0f32; K];
            g.bench_function(BenchmarkId::from_parameter(ty.name()), |b| {
                b.iter(|| {
                    for r in w.chunks_exact(row_bytes) {
                        kern.dequantize_row(ty, r, &mut row).unwrap_or(());
                        black_box(&row);
                    }
                })
            });
            g.finish();

            let mut g = c.benchmark_group(format!("matmul/{isa}/{}", ty.name()));
            g.sample_size(10).warm_up_time(Duration::from_millis(300));
            g.measurement_time(Duration::from_secs(2));
            for n in [1usize, 8, 16, 64] {
                let rows = if n == 1 {
                    rows
                } else {
                    (small_bytes / row_bytes).max(1)
                };
                let wm = &w[..rows * row_bytes];
                let x: Vec<f32> = (0..n * K)
                    .map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0)
                    .collect();
                let mut act = ActBuf::new();
                if kern.quantize_act(act_ty, &x, n, K, &mut act).is_err() {
                    continue;
                }
                let mut y = vec![0.0f32; n * rows];
                g.throughput(Throughput::Bytes((rows * row_bytes) as u64));
                g.bench_function(BenchmarkId::from_parameter(format!("n{n}")), |b| {
                    b.iter(|| {
                        if let Ok(mut out) = OutCols::new(&mut y, n, rows) {
                            kern.matmul(ty, wm, K, 0..rows, &act, &mut out)
                                .unwrap_or(());
                        }
                        black_box(&y);
                    })
                });
            }
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
