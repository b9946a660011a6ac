//! A compact GB/s table for every kernel table on the host: weight bytes
//! processed per second, best of several runs. Time is the thread's CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`), so other processes competing for the cores do
//! not inflate it; they can still compete for memory bandwidth and caches.
//!
//! Columns: `dequant` (rows of 4096 into an L1 buffer, 64 MiB matrix); `n1
//! D`, `n4 D` (1 and 4 activation rows over a 64 MiB matrix: DRAM streaming,
//! the decode case); `n1` … `n16` (the same over a 4 MiB matrix: in-cache
//! compute speed, where `time(n) / time(1) = n · GB/s(1) / GB/s(n)`). A second
//! table gives prefill throughput in GMAC/s (multiply-accumulates of weights ×
//! activations per second) for 64 and 256 activation rows over a 4 MiB
//! matrix, and for 32 rows over a 1 MiB matrix (a routed expert's handful of
//! tokens). Tables that pack a type (`Kernels::packs`) get a second row,
//! `<type> packed`, measured on the packed copy of the same weights.
//!
//! Run: `cargo bench -p dsv4-quant --bench gbps [-- <filter> [<type>]]`, where
//! the optional filter keeps tables whose name contains it (`avx2`, `vnni`, `vbmi`,
//! ...) and the optional type keeps one weight type (`Q8_0`, ...).

#![allow(clippy::print_stdout, clippy::unwrap_used, missing_docs)]
// One libc call to read the thread's CPU clock.
#![allow(unsafe_code)]

use std::hint::black_box;
use std::time::Instant;

use dsv4_gguf::GgmlType;
use dsv4_quant::{ActBuf, Kernels, OutCols, WEIGHT_TYPES, act_type_for};

const K: usize = 4096;
const REPS: usize = 7;

fn weights(ty: GgmlType, rows: usize) -> Vec<u8> {
    let row_bytes = ty.row_bytes(K as u64).unwrap() as usize;
    let mut s = 0x9E37_79B9_u64 ^ u64::from(ty.id());
    let mut w: Vec<u8> = (0..rows * row_bytes)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 32) as u8
        })
        .collect();
    let offsets: &[usize] = match ty {
        GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::IQ2_XXS => &[0],
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q4_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        GgmlType::F16 | GgmlType::BF16 => &[0],
        GgmlType::F32 => &[2],
        _ => &[],
    };
    for blk in w.chunks_exact_mut(ty.block_bytes() as usize) {
        for &o in offsets {
            blk[o + 1] = (blk[o + 1] & 0x3B) | 0x30;
        }
        if ty == GgmlType::MXFP4 {
            blk[0] = 120 + (blk[0] & 7);
        }
    }
    w
}

/// CPU time of this thread in seconds.
fn cpu_time() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant
    // every POSIX system defines.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Best time of at least `REPS` runs of `f` (more, up to 200, until 0.2 s
/// have been spent: the shared machine's noise only ever adds time), in
/// seconds (CPU time, or wall time if the CPU clock is unavailable).
fn best(mut f: impl FnMut()) -> f64 {
    f();
    let (mut best, mut spent, mut reps) = (f64::MAX, 0.0, 0);
    while reps < REPS || (spent < 0.2 && reps < 200) {
        let (c0, w0) = (cpu_time(), Instant::now());
        f();
        let c = cpu_time() - c0;
        let t = if c.is_finite() {
            c
        } else {
            w0.elapsed().as_secs_f64()
        };
        best = best.min(t);
        spent += t;
        reps += 1;
    }
    best
}

/// Seconds per call of the matmul of `w` (whole rows of `ty`) with `n` rows,
/// in the table's packed layout when `packed` (and the table packs `ty`).
fn matmul_secs(kern: &Kernels, ty: GgmlType, w: &[u8], n: usize, packed: bool) -> f64 {
    let row_bytes = ty.row_bytes(K as u64).unwrap() as usize;
    let rows = w.len() / row_bytes;
    let p = if packed {
        kern.pack(ty, w, rows, K).unwrap()
    } else {
        None
    };
    let x: Vec<f32> = (0..n * K)
        .map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0)
        .collect();
    let mut act = ActBuf::new();
    kern.quantize_act(act_type_for(ty).unwrap(), &x, n, K, &mut act)
        .unwrap();
    let mut y = vec![0.0f32; n * rows];
    best(|| {
        let mut out = OutCols::new(&mut y, n, rows).unwrap();
        match &p {
            Some(p) => kern.matmul_packed(p, 0..rows, &act, &mut out).unwrap(),
            None => kern.matmul(ty, w, K, 0..rows, &act, &mut out).unwrap(),
        }
        black_box(&y);
    })
}

/// GB/s of weights.
fn matmul_gbps(kern: &Kernels, ty: GgmlType, w: &[u8], n: usize, packed: bool) -> f64 {
    w.len() as f64 / matmul_secs(kern, ty, w, n, packed) / 1e9
}

/// Multiply-accumulates per second, in billions.
fn matmul_gmacs(kern: &Kernels, ty: GgmlType, w: &[u8], n: usize, packed: bool) -> f64 {
    let row_bytes = ty.row_bytes(K as u64).unwrap() as usize;
    let macs = (w.len() / row_bytes * K * n) as f64;
    macs / matmul_secs(kern, ty, w, n, packed) / 1e9
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let filter = args.first().cloned();
    let only_ty = args.get(1).cloned();
    let (big, small, expert) = (64usize << 20, 4usize << 20, 1usize << 20);
    for kern in Kernels::all_variants() {
        let name = kern.describe();
        if kern.isa() == dsv4_quant::Isa::Scalar && filter.as_deref() != Some("scalar") {
            continue;
        }
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        let types: Vec<GgmlType> = WEIGHT_TYPES
            .iter()
            .copied()
            .filter(|t| {
                only_ty
                    .as_ref()
                    .is_none_or(|o| t.name().eq_ignore_ascii_case(o))
            })
            .collect();
        println!("\n### {name}: GB/s of weights (k = {K}, best of ≥ {REPS}, thread CPU time)\n");
        println!("| type | dequant | n1 D | n4 D | n1 | n2 | n4 | n8 | n16 |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        let mut prefill = Vec::new();
        let layouts = types.iter().flat_map(|&ty| {
            let packed = kern.packs(ty).then_some((ty, true));
            std::iter::once((ty, false)).chain(packed)
        });
        for (ty, packed) in layouts {
            let label = if packed {
                format!("{} packed", ty.name())
            } else {
                ty.name().to_string()
            };
            let row_bytes = ty.row_bytes(K as u64).unwrap() as usize;
            let w = weights(ty, big / row_bytes);
            let mut row = vec![0.0f32; K];
            let t = best(|| {
                for r in w.chunks_exact(row_bytes) {
                    kern.dequantize_row(ty, r, &mut row).unwrap();
                    black_box(&row);
                }
            });
            let deq = w.len() as f64 / t / 1e9;
            let small_w = &w[..small / row_bytes * row_bytes];
            let expert_w = &w[..expert / row_bytes * row_bytes];
            let mut cols = vec![
                matmul_gbps(&kern, ty, &w, 1, packed),
                matmul_gbps(&kern, ty, &w, 4, packed),
            ];
            for n in [1, 2, 4, 8, 16] {
                cols.push(matmul_gbps(&kern, ty, small_w, n, packed));
            }
            let cells: Vec<String> = cols.iter().map(|c| format!("{c:.2}")).collect();
            println!("| {label} | {deq:.1} | {} |", cells.join(" | "));
            prefill.push((
                label,
                [
                    matmul_gmacs(&kern, ty, expert_w, 32, packed),
                    matmul_gmacs(&kern, ty, small_w, 64, packed),
                    matmul_gmacs(&kern, ty, small_w, 256, packed),
                ],
            ));
        }
        println!("\n### {name}: prefill GMAC/s (k = {K})\n");
        println!("| type | n32 (1 MiB) | n64 | n256 |");
        println!("|---|---:|---:|---:|");
        for (label, g) in prefill {
            println!("| {label} | {:.1} | {:.1} | {:.1} |", g[0], g[1], g[2]);
        }
    }
}
