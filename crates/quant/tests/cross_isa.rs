//! Every kernel variant the host supports, against the scalar reference
//! (ripgrep's `SearcherTester` idea: one driver, all paths, random and
//! adversarial inputs).
//!
//! Tolerances and why:
//! - Dequantization and activation quantization: **bit-exact**. The SIMD code
//!   performs the same IEEE operations in the same order per element (no FMA
//!   contraction), so any difference is a bug.
//! - Quantized matmul: the integer block sums are exact in every variant; only
//!   the f32 accumulation of the per-block products (lane partial sums,
//!   `fma` vs `mul` + `add`, the order of the scale products) differs. The
//!   bound used is `4 ε (blocks + 2) M`, where `ε = 2^-24` and `M = Σ_i
//!   (|w_i| + |m_i|) |a_i|` over dequantized weights `w`, min terms `m` (Q2_K,
//!   Q4_K: the `dmin · min` part, which can cancel against the scale part) and
//!   dequantized activations `a`: the standard forward error bound of a
//!   re-associated sum of `blocks` terms, with slack for the per-block
//!   products.
//! - Float matmul and `matmul_f32`: the same bound with `k` terms.

// Test helpers report failures by panicking, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;
use common::assert_bits;

use std::ops::Range;

use dsv4_gguf::GgmlType;
use dsv4_quant::{
    ActBuf, ActType, INVARIANT_ROWS, Isa, Kernels, OutCols, WEIGHT_TYPES, act_type_for,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const EPS: f64 = 1.0 / (1u64 << 24) as f64;

/// How to fill weight bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum WFill {
    Random,
    /// Random codes with extreme f16 scales (max, subnormal, zero, negative).
    ExtremeScales,
    /// Every code byte 0xFF (max codes, all sign bits, all high nibbles).
    AllOnes,
    /// All-zero blocks.
    Zero,
}

/// How to fill activations.
#[derive(Debug, Clone, Copy, PartialEq)]
enum XFill {
    Normal,
    /// Rows with huge dynamic range, negative maxima and exact ties.
    Spiky,
    Zero,
}

fn f16_bytes(v: f32) -> [u8; 2] {
    half::f16::from_f32(v).to_bits().to_le_bytes()
}

/// Byte offsets of the f16 fields (or the E8M0 byte for MXFP4) inside a block.
fn scale_offsets(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::IQ2_XXS => &[0],
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q4_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        _ => &[],
    }
}

fn make_weights(ty: GgmlType, rows: usize, k: usize, fill: WFill, rng: &mut StdRng) -> Vec<u8> {
    let bb = ty.block_bytes() as usize;
    let nblk = rows * k / ty.block_elems() as usize;
    let mut w: Vec<u8> = (0..nblk * bb).map(|_| rng.random()).collect();
    match ty {
        GgmlType::F32 => {
            for c in w.chunks_exact_mut(4) {
                let v: f32 = match fill {
                    WFill::Zero => 0.0,
                    WFill::ExtremeScales => *[3.0e30f32, -1.0e-30, 0.0, 1.0e-40]
                        .get(rng.random_range(0..4))
                        .unwrap_or(&0.0),
                    _ => rng.random_range(-2.0..2.0),
                };
                c.copy_from_slice(&v.to_le_bytes());
            }
            return w;
        }
        GgmlType::F16 | GgmlType::BF16 => {
            for c in w.chunks_exact_mut(2) {
                let v: f32 = match fill {
                    WFill::Zero => 0.0,
                    WFill::ExtremeScales => *[65504.0f32, -6.0e-8, 0.0, 1.0e-5]
                        .get(rng.random_range(0..4))
                        .unwrap_or(&0.0),
                    WFill::AllOnes => -1.0,
                    WFill::Random => rng.random_range(-2.0..2.0),
                };
                let b = if ty == GgmlType::F16 {
                    f16_bytes(v)
                } else {
                    ((v.to_bits() >> 16) as u16).to_le_bytes()
                };
                c.copy_from_slice(&b);
            }
            return w;
        }
        _ => {}
    }
    for blk in w.chunks_exact_mut(bb) {
        match fill {
            WFill::Zero => blk.fill(0),
            WFill::AllOnes => blk.fill(0xFF),
            WFill::Random | WFill::ExtremeScales => {}
        }
        if ty == GgmlType::MXFP4 {
            blk[0] = match fill {
                WFill::ExtremeScales => [0u8, 1, 2, 160][rng.random_range(0..4)],
                WFill::Zero => 0,
                _ => rng.random_range(110..135),
            };
            continue;
        }
        for &o in scale_offsets(ty) {
            let v = match fill {
                WFill::Zero => 0.0,
                WFill::ExtremeScales => [65504.0f32, -6.0e-8, 0.0, -1024.0][rng.random_range(0..4)],
                WFill::AllOnes => -0.5,
                WFill::Random => rng.random_range(-0.05f32..0.05),
            };
            blk[o..o + 2].copy_from_slice(&f16_bytes(v));
        }
    }
    w
}

fn make_x(n: usize, k: usize, fill: XFill, rng: &mut StdRng) -> Vec<f32> {
    let mut x = vec![0.0f32; n * k];
    match fill {
        XFill::Zero => {}
        XFill::Normal => x.iter_mut().for_each(|v| *v = rng.random_range(-3.0..3.0)),
        XFill::Spiky => {
            for (i, v) in x.iter_mut().enumerate() {
                *v = match i % 7 {
                    0 => -1.0e6,
                    1 => 1.0e6, // a tie in magnitude with opposite sign
                    2 => 1.0e-6,
                    3 => 0.0,
                    _ => rng.random_range(-100.0..100.0),
                };
            }
        }
    }
    x
}

/// Dequantized weights and, for types with mins, the min part of each value.
fn weight_magnitudes(ty: GgmlType, w: &[u8], k: usize, rows: usize) -> Vec<f64> {
    let scalar = Kernels::with_isa(Isa::Scalar).expect("scalar");
    let rb = w.len() / rows;
    let mut deq = vec![0.0f32; k];
    let mut mins = vec![0.0f32; k];
    let mut out = Vec::with_capacity(rows * k);
    for r in 0..rows {
        let row = &w[r * rb..(r + 1) * rb];
        scalar
            .dequantize_row(ty, row, &mut deq)
            .expect("dequantize");
        let code_range = match ty {
            GgmlType::Q2_K => Some(16..80),
            GgmlType::Q4_K => Some(16..144),
            _ => None,
        };
        if let Some(cr) = code_range {
            let mut zeroed = row.to_vec();
            for blk in zeroed.chunks_exact_mut(ty.block_bytes() as usize) {
                blk[cr.clone()].fill(0);
            }
            scalar
                .dequantize_row(ty, &zeroed, &mut mins)
                .expect("dequantize");
        } else {
            mins.fill(0.0);
        }
        out.extend(
            deq.iter()
                .zip(&mins)
                .map(|(&a, &m)| f64::from(a).abs() + f64::from(m).abs()),
        );
    }
    out
}

/// Dequantized activation magnitudes `|a_i|` of row `t`.
fn act_magnitudes(act: &ActBuf, t: usize) -> Vec<f64> {
    match act.act_type() {
        ActType::F32 => act.row_f32(t).iter().map(|v| f64::from(*v).abs()).collect(),
        ActType::Q8_0 => {
            let r = act.row_q8_0(t).expect("row");
            r.qs.iter()
                .enumerate()
                .map(|(i, &q)| f64::from(r.d[i / 32] * f32::from(q)).abs())
                .collect()
        }
        ActType::Q8_K => {
            let r = act.row_q8k(t).expect("row");
            r.qs.iter()
                .enumerate()
                .map(|(i, &q)| f64::from(r.d[i / 256] * f32::from(q)).abs())
                .collect()
        }
    }
}

fn run_matmul(
    kernels: &Kernels,
    ty: GgmlType,
    w: &[u8],
    k: usize,
    rows: Range<usize>,
    act: &ActBuf,
) -> Vec<f32> {
    let n = act.n();
    let cols = rows.len();
    // Write into the middle of a wider output to exercise the window offsets.
    let stride = cols + 3;
    let mut y = vec![f32::NAN; n * stride];
    let mut out = OutCols::window(&mut y, n, stride, 2, cols).expect("window");
    kernels
        .matmul(ty, w, k, rows, act, &mut out)
        .expect("matmul");
    (0..n)
        .flat_map(|t| y[t * stride + 2..t * stride + 2 + cols].to_vec())
        .collect()
}

fn run_matmul_f32(
    kernels: &Kernels,
    ty: GgmlType,
    w: &[u8],
    k: usize,
    rows: Range<usize>,
    x: &[f32],
    n: usize,
) -> Vec<f32> {
    let cols = rows.len();
    let mut y = vec![f32::NAN; n * cols];
    let mut out = OutCols::new(&mut y, n, cols).expect("out");
    kernels
        .matmul_f32(ty, w, k, rows, x, n, &mut out)
        .expect("matmul_f32");
    y
}

#[allow(clippy::too_many_arguments)]
fn compare(
    what: &str,
    got: &[f32],
    want: &[f32],
    wmag: &[f64],
    amag: &[Vec<f64>],
    k: usize,
    rows: &Range<usize>,
    terms: usize,
) {
    let cols = rows.len();
    for (t, am) in amag.iter().enumerate() {
        for (c, r) in rows.clone().enumerate() {
            let m: f64 = wmag[r * k..(r + 1) * k]
                .iter()
                .zip(am)
                .map(|(w, a)| w * a)
                .sum();
            let tol = 4.0 * EPS * (terms as f64 + 2.0) * m + 1e-30;
            let (g, e) = (got[t * cols + c], want[t * cols + c]);
            let ok =
                (f64::from(g) - f64::from(e)).abs() <= tol || (g.is_nan() && e.is_nan()) || g == e;
            assert!(
                ok,
                "{what}: token {t}, row {r}: got {g:e}, reference {e:e}, tolerance {tol:e}"
            );
        }
    }
}

#[test]
fn every_isa_matches_the_scalar_reference() {
    let scalar = Kernels::with_isa(Isa::Scalar).expect("scalar");
    let variants = Kernels::all_variants();
    assert!(variants.len() >= Kernels::available().len());
    let mut rng = StdRng::seed_from_u64(0x5EED_0001);
    let mut checked = 0usize;
    for &ty in &WEIGHT_TYPES {
        // One block, several blocks, and an odd count of blocks; float rows
        // get lengths that are not multiples of any SIMD width.
        let ks = match ty.block_elems() {
            1 => [1, 37, 1001],
            32 => [32, 128, 7 * 32],
            _ => [256, 1024, 3 * 256],
        };
        let total_rows = 11;
        for (case, &(k, wfill, xfill, n)) in [
            (ks[0], WFill::Random, XFill::Normal, 1usize),
            (ks[1], WFill::Random, XFill::Normal, 2),
            (ks[2], WFill::Random, XFill::Spiky, 3),
            (ks[1], WFill::ExtremeScales, XFill::Normal, 5),
            (ks[2], WFill::AllOnes, XFill::Spiky, 8),
            (ks[0], WFill::Zero, XFill::Normal, 17),
            (ks[1], WFill::Random, XFill::Zero, 4),
            (ks[2], WFill::Random, XFill::Normal, 17),
        ]
        .iter()
        .enumerate()
        {
            let w = make_weights(ty, total_rows, k, wfill, &mut rng);
            let x = make_x(n, k, xfill, &mut rng);
            let act_ty = act_type_for(ty).expect("pairing");
            let wmag = weight_magnitudes(ty, &w, k, total_rows);
            let mut ref_act = ActBuf::new();
            scalar
                .quantize_act(act_ty, &x, n, k, &mut ref_act)
                .expect("quantize");
            let amag: Vec<Vec<f64>> = (0..n).map(|t| act_magnitudes(&ref_act, t)).collect();
            let xmag: Vec<Vec<f64>> = (0..n)
                .map(|t| {
                    x[t * k..(t + 1) * k]
                        .iter()
                        .map(|v| f64::from(*v).abs())
                        .collect()
                })
                .collect();
            let blocks = k / ty.block_elems() as usize;
            for rows in [0..total_rows, 3..10, 1..2, 5..5] {
                let want = run_matmul(&scalar, ty, &w, k, rows.clone(), &ref_act);
                let want_f32 = run_matmul_f32(&scalar, ty, &w, k, rows.clone(), &x, n);
                for kern in &variants {
                    let what = format!(
                        "{ty} on {} case {case} k={k} n={n} rows={rows:?}",
                        kern.describe()
                    );
                    let mut act = ActBuf::new();
                    kern.quantize_act(act_ty, &x, n, k, &mut act)
                        .expect("quantize");
                    assert_same_act(&what, &act, &ref_act);
                    let got = run_matmul(kern, ty, &w, k, rows.clone(), &act);
                    compare(&what, &got, &want, &wmag, &amag, k, &rows, blocks);
                    let got = run_matmul_f32(kern, ty, &w, k, rows.clone(), &x, n);
                    compare(
                        &format!("{what} (f32)"),
                        &got,
                        &want_f32,
                        &wmag,
                        &xmag,
                        k,
                        &rows,
                        k,
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= WEIGHT_TYPES.len() * 8 * 4);
}

fn assert_same_act(what: &str, a: &ActBuf, b: &ActBuf) {
    assert_eq!(
        (a.act_type(), a.n(), a.k()),
        (b.act_type(), b.n(), b.k()),
        "{what}"
    );
    for t in 0..a.n() {
        match a.act_type() {
            ActType::F32 => assert_eq!(a.row_f32(t), b.row_f32(t), "{what}: f32 row {t}"),
            ActType::Q8_0 => {
                let (x, y) = (a.row_q8_0(t).expect("row"), b.row_q8_0(t).expect("row"));
                assert_eq!(x.qs, y.qs, "{what}: Q8_0 codes of row {t}");
                assert_eq!(bits(x.d), bits(y.d), "{what}: Q8_0 scales of row {t}");
            }
            ActType::Q8_K => {
                let (x, y) = (a.row_q8k(t).expect("row"), b.row_q8k(t).expect("row"));
                assert_eq!(x.qs, y.qs, "{what}: Q8_K codes of row {t}");
                assert_eq!(bits(x.d), bits(y.d), "{what}: Q8_K scales of row {t}");
                assert_eq!(x.bsums, y.bsums, "{what}: Q8_K sums of row {t}");
            }
        }
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

#[test]
fn every_isa_dequantizes_bit_exactly() {
    let scalar = Kernels::with_isa(Isa::Scalar).expect("scalar");
    let mut rng = StdRng::seed_from_u64(0x5EED_0002);
    for &ty in &WEIGHT_TYPES {
        let k = 3 * 256;
        for fill in [
            WFill::Random,
            WFill::ExtremeScales,
            WFill::AllOnes,
            WFill::Zero,
        ] {
            let w = make_weights(ty, 1, k, fill, &mut rng);
            let mut want = vec![0.0f32; k];
            scalar
                .dequantize_row(ty, &w, &mut want)
                .expect("dequantize");
            for kern in Kernels::all_variants() {
                let mut got = vec![f32::NAN; k];
                kern.dequantize_row(ty, &w, &mut got).expect("dequantize");
                assert_bits(
                    &format!("{ty} {fill:?} on {}", kern.describe()),
                    &got,
                    &want,
                );
            }
        }
    }
}

#[test]
fn f32_helpers_agree_across_isas() {
    let scalar = Kernels::with_isa(Isa::Scalar).expect("scalar");
    let mut rng = StdRng::seed_from_u64(0x5EED_0003);
    for len in [0usize, 1, 7, 8, 9, 31, 64, 100, 1027] {
        let a: Vec<f32> = (0..len).map(|_| rng.random_range(-10.0..10.0)).collect();
        let b: Vec<f32> = (0..len).map(|_| rng.random_range(-10.0..10.0)).collect();
        let m: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(x * y).abs()).sum();
        let halves: Vec<u8> = a.iter().flat_map(|v| f16_bytes(*v)).collect();
        let bf: Vec<u8> = a
            .iter()
            .flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes())
            .collect();
        let mut want_h = vec![0.0f32; len];
        let mut want_b = vec![0.0f32; len];
        scalar.f16_to_f32(&halves, &mut want_h).expect("f16");
        scalar.bf16_to_f32(&bf, &mut want_b).expect("bf16");
        for kern in Kernels::all_variants() {
            let isa = kern.describe();
            let (d, e) = (kern.dot(&a, &b), scalar.dot(&a, &b));
            assert!(
                f64::from(d - e).abs() <= 4.0 * EPS * (len as f64 + 2.0) * m,
                "{isa} dot {len}"
            );

            let mut y1 = b.clone();
            let mut y2 = b.clone();
            kern.axpy(0.37, &a, &mut y1);
            scalar.axpy(0.37, &a, &mut y2);
            for (p, q) in y1.iter().zip(&y2) {
                // One rounding (FMA) versus two.
                assert!(
                    (p - q).abs() <= 2.0 * f32::EPSILON * (p.abs() + 4.0),
                    "{isa} axpy"
                );
            }
            let mut s1 = a.clone();
            let mut s2 = a.clone();
            kern.scale(-1.75, &mut s1);
            scalar.scale(-1.75, &mut s2);
            assert_bits(&format!("{isa} scale"), &s1, &s2);

            let mut h = vec![0.0f32; len];
            kern.f16_to_f32(&halves, &mut h).expect("f16");
            assert_bits(&format!("{isa} f16"), &h, &want_h);
            let mut g = vec![0.0f32; len];
            kern.bf16_to_f32(&bf, &mut g).expect("bf16");
            assert_bits(&format!("{isa} bf16"), &g, &want_b);
        }
    }
}

#[test]
fn forcing_an_unavailable_isa_is_an_error_not_a_crash() {
    for isa in Isa::ALL {
        match Kernels::with_isa(isa) {
            Ok(k) => assert!(isa.is_available() && k.isa() == isa),
            Err(e) => {
                assert!(!isa.is_available());
                assert!(e.to_string().contains("not available"), "{e}");
            }
        }
    }
    assert_eq!(Kernels::available().last(), Some(&Isa::Scalar));
    assert!(Kernels::available().contains(&Kernels::detect().isa()));
}

#[test]
fn threads_fill_disjoint_column_windows_of_one_output() {
    let kern = Kernels::detect();
    let (ty, k, rows, n) = (GgmlType::Q8_0, 256usize, 37usize, 3usize);
    let mut rng = StdRng::seed_from_u64(7);
    let w = make_weights(ty, rows, k, WFill::Random, &mut rng);
    let x = make_x(n, k, XFill::Normal, &mut rng);
    let mut act = ActBuf::new();
    kern.quantize_act(ActType::Q8_0, &x, n, k, &mut act)
        .expect("quantize");
    let want = run_matmul(&kern, ty, &w, k, 0..rows, &act);
    let mut y = vec![0.0f32; n * rows];
    let windows = OutCols::new(&mut y, n, rows).expect("out").split_even(4);
    std::thread::scope(|s| {
        let mut r0 = 0;
        for mut win in windows {
            let r = r0..r0 + win.cols();
            r0 = r.end;
            let (w, act, kern) = (&w, &act, &kern);
            s.spawn(move || kern.matmul(ty, w, k, r, act, &mut win).expect("matmul"));
        }
    });
    assert_bits("threaded windows", &y, &want);
}

/// Long batches are processed in token chunks (see `token_chunk`); with
/// k = 16384 a chunk is 16 tokens (32 for the Q8_K family), so 37 tokens
/// take three passes (two). Every
/// variant must still agree with the scalar reference (which runs the same
/// chunking over its own per-token dots), including `matmul_f32`.
#[test]
fn long_batches_are_chunked_consistently() {
    let scalar = Kernels::with_isa(Isa::Scalar).expect("scalar");
    let mut rng = StdRng::seed_from_u64(0x5EED_0004);
    let (k, rows, n) = (16384usize, 3usize, 37usize);
    for ty in [
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::F16,
        GgmlType::IQ2_XXS,
    ] {
        let w = make_weights(ty, rows, k, WFill::Random, &mut rng);
        let x = make_x(n, k, XFill::Normal, &mut rng);
        let act_ty = act_type_for(ty).expect("pairing");
        let wmag = weight_magnitudes(ty, &w, k, rows);
        let mut ref_act = ActBuf::new();
        scalar
            .quantize_act(act_ty, &x, n, k, &mut ref_act)
            .expect("quantize");
        let amag: Vec<Vec<f64>> = (0..n).map(|t| act_magnitudes(&ref_act, t)).collect();
        let xmag: Vec<Vec<f64>> = (0..n)
            .map(|t| {
                x[t * k..(t + 1) * k]
                    .iter()
                    .map(|v| f64::from(*v).abs())
                    .collect()
            })
            .collect();
        let want = run_matmul(&scalar, ty, &w, k, 0..rows, &ref_act);
        let want_f32 = run_matmul_f32(&scalar, ty, &w, k, 0..rows, &x, n);
        let blocks = k / ty.block_elems() as usize;
        for kern in Kernels::all_variants() {
            let what = format!("{ty} long batch on {}", kern.describe());
            let mut act = ActBuf::new();
            kern.quantize_act(act_ty, &x, n, k, &mut act)
                .expect("quantize");
            let got = run_matmul(&kern, ty, &w, k, 0..rows, &act);
            compare(&what, &got, &want, &wmag, &amag, k, &(0..rows), blocks);
            let got = run_matmul_f32(&kern, ty, &w, k, 0..rows, &x, n);
            compare(
                &format!("{what} (f32)"),
                &got,
                &want_f32,
                &wmag,
                &xmag,
                k,
                &(0..rows),
                k,
            );
        }
    }
}

/// Batch invariance ([`INVARIANT_ROWS`]): on every kernel table, each row of
/// a matmul with up to `INVARIANT_ROWS` activation rows has exactly the bits
/// of the same row multiplied alone, for the quantized and the f32 entry
/// points. This is what makes batched decode of a few sessions produce the
/// same tokens as each session alone.
#[test]
fn small_batches_give_each_row_the_bits_of_a_single_row_call() {
    let mut rng = StdRng::seed_from_u64(0x5EED_0005);
    let rows = 9usize;
    for &ty in &WEIGHT_TYPES {
        let k = match ty.block_elems() {
            1 => 1001,
            32 => 7 * 32,
            _ => 3 * 256,
        };
        let w = make_weights(ty, rows, k, WFill::Random, &mut rng);
        let act_ty = act_type_for(ty).expect("pairing");
        for n in 2..=INVARIANT_ROWS {
            let x = make_x(n, k, XFill::Normal, &mut rng);
            for kern in Kernels::all_variants() {
                let what = format!("{ty} n={n} on {}", kern.describe());
                let mut act = ActBuf::new();
                kern.quantize_act(act_ty, &x, n, k, &mut act)
                    .expect("quantize");
                let batch = run_matmul(&kern, ty, &w, k, 0..rows, &act);
                let batch_f32 = run_matmul_f32(&kern, ty, &w, k, 0..rows, &x, n);
                for t in 0..n {
                    let xt = &x[t * k..(t + 1) * k];
                    let mut one = ActBuf::new();
                    kern.quantize_act(act_ty, xt, 1, k, &mut one)
                        .expect("quantize");
                    let single = run_matmul(&kern, ty, &w, k, 0..rows, &one);
                    let got = &batch[t * rows..(t + 1) * rows];
                    assert_bits(&format!("{what} row {t}"), got, &single);
                    let single = run_matmul_f32(&kern, ty, &w, k, 0..rows, xt, 1);
                    let got = &batch_f32[t * rows..(t + 1) * rows];
                    assert_bits(&format!("{what} row {t} (f32)"), got, &single);
                }
            }
        }
    }
}

/// The AVX-512 tables run Q8_0, Q4_0 and MXFP4 weights at decode batch sizes
/// through their own row kernel (VNNI `dpbusd` on flipped codes, or the AVX2
/// kernel without VNNI), which keeps the AVX2 row kernel's float order: the
/// results must be the AVX2 table's bits exactly, on random and adversarial
/// weights and activations, for 1 to `INVARIANT_ROWS` tokens.
#[test]
fn avx512_small_batches_of_the_q8_0_family_match_avx2_bit_for_bit() {
    let Ok(avx2) = Kernels::with_isa(Isa::Avx2) else {
        eprintln!("no AVX2 on this CPU; nothing to compare");
        return;
    };
    let wide: Vec<Kernels> = Kernels::all_variants()
        .into_iter()
        .filter(|k| k.isa() == Isa::Avx512)
        .collect();
    if wide.is_empty() {
        eprintln!("no AVX-512 on this CPU; nothing to compare");
        return;
    }
    let mut rng = StdRng::seed_from_u64(0x5EED_0006);
    let rows = 11usize;
    for ty in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::MXFP4] {
        // Odd and even block counts (the tail block goes to the even sums).
        for k in [7 * 32, 8 * 32] {
            for wf in [WFill::Random, WFill::ExtremeScales, WFill::AllOnes] {
                let w = make_weights(ty, rows, k, wf, &mut rng);
                for n in 1..=INVARIANT_ROWS {
                    for xf in [XFill::Normal, XFill::Spiky] {
                        let x = make_x(n, k, xf, &mut rng);
                        let mut act = ActBuf::new();
                        avx2.quantize_act(ActType::Q8_0, &x, n, k, &mut act)
                            .expect("quantize");
                        let want = run_matmul(&avx2, ty, &w, k, 0..rows, &act);
                        for kern in &wide {
                            let got = run_matmul(kern, ty, &w, k, 0..rows, &act);
                            let what =
                                format!("{ty} k={k} {wf:?} n={n} {xf:?} on {}", kern.describe());
                            assert_bits(&what, &got, &want);
                        }
                    }
                }
            }
        }
    }
}

/// The two decodes of the AVX-512 VNNI IQ2_XXS small-batch kernel (word
/// permutes, and VBMI byte permutes where the CPU has VBMI) build the same
/// exact integer sums and run the same float operations: every AVX-512 VNNI
/// table must give the same bits, on random, adversarial and all-ones
/// weights, for 1 to `INVARIANT_ROWS` tokens.
#[test]
fn iq2_xxs_small_batches_match_across_avx512_decodes() {
    let vnni: Vec<Kernels> = Kernels::all_variants()
        .into_iter()
        .filter(|k| k.describe().contains("vnni"))
        .collect();
    if vnni.len() < 2 {
        eprintln!("fewer than two AVX-512 VNNI tables on this CPU; nothing to compare");
        return;
    }
    let mut rng = StdRng::seed_from_u64(0x5EED_0007);
    let (ty, rows) = (GgmlType::IQ2_XXS, 9usize);
    for k in [256, 5 * 256] {
        for wf in [WFill::Random, WFill::ExtremeScales, WFill::AllOnes] {
            let w = make_weights(ty, rows, k, wf, &mut rng);
            for n in 1..=INVARIANT_ROWS {
                for xf in [XFill::Normal, XFill::Spiky] {
                    let x = make_x(n, k, xf, &mut rng);
                    let mut act = ActBuf::new();
                    vnni[0]
                        .quantize_act(ActType::Q8_K, &x, n, k, &mut act)
                        .expect("quantize");
                    let want = run_matmul(&vnni[0], ty, &w, k, 0..rows, &act);
                    for kern in &vnni[1..] {
                        let got = run_matmul(kern, ty, &w, k, 0..rows, &act);
                        let what = format!(
                            "k={k} {wf:?} n={n} {xf:?}: {} against {}",
                            kern.describe(),
                            vnni[0].describe()
                        );
                        assert_bits(&what, &got, &want);
                    }
                }
            }
        }
    }
}
