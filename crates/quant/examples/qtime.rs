#![allow(clippy::print_stdout, clippy::unwrap_used, missing_docs)]
use dsv4_gguf::GgmlType;
use dsv4_quant::{ActBuf, Isa, Kernels, OutCols, act_type_for};
use std::time::Instant;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kern = if args[1] == "avx512bw" {
        *Kernels::all_variants().last().unwrap()
    } else {
        Kernels::with_isa(Isa::from_name(&args[1]).unwrap()).unwrap()
    };
    let ty = GgmlType::from_name(&args[2]).unwrap();
    let n: usize = args[3].parse().unwrap();
    let mb: usize = args[4].parse().unwrap();
    let k = 4096usize;
    let rb = ty.row_bytes(k as u64).unwrap() as usize;
    let rows = (mb << 20) / rb;
    let mut s = 12345u64;
    let mut w: Vec<u8> = (0..rows * rb)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 32) as u8
        })
        .collect();
    let bb = ty.block_bytes() as usize;
    let offs: &[usize] = match ty {
        GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::IQ2_XXS => &[0],
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q4_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        GgmlType::F16 | GgmlType::BF16 => &[0],
        GgmlType::F32 => &[2],
        _ => &[],
    };
    for blk in w.chunks_exact_mut(bb) {
        for &o in offs {
            blk[o + 1] = (blk[o + 1] & 0x3B) | 0x30;
        }
        if ty == GgmlType::MXFP4 {
            blk[0] = 120 + (blk[0] & 7);
        }
    }
    let x: Vec<f32> = (0..n * k)
        .map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0)
        .collect();
    let mut act = ActBuf::new();
    kern.quantize_act(act_type_for(ty).unwrap(), &x, n, k, &mut act)
        .unwrap();
    let mut y = vec![0.0f32; n * rows];
    let mut best = f64::MAX;
    for _ in 0..15 {
        let t0 = Instant::now();
        let mut out = OutCols::new(&mut y, n, rows).unwrap();
        kern.matmul(ty, &w, k, 0..rows, &act, &mut out).unwrap();
        best = best.min(t0.elapsed().as_secs_f64());
    }
    let bytes = (rows * rb) as f64;
    let blocks = (rows * k / 32) as f64;
    println!(
        "{} {} n={} {}MB: {:.2} GB/s, {:.2} ns/row, {:.3} ns per 32-elem x token, {:.1} GMAC/s",
        kern.describe(),
        ty,
        n,
        mb,
        bytes / best / 1e9,
        best * 1e9 / rows as f64,
        best * 1e9 / (blocks * n as f64),
        (rows * k * n) as f64 / best / 1e9
    );
}
