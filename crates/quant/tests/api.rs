//! The public API: argument validation (typed errors, never panics), output
//! windows, buffer reuse, and the link between the reference dot products and
//! the (golden-checked) dequantizers.

// Test helpers report failures by panicking, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use dsv4_gguf::GgmlType;
use dsv4_quant::{ActBuf, ActType, Isa, Kernels, OutCols, QuantError, WEIGHT_TYPES, act_type_for};

fn kern() -> Kernels {
    Kernels::detect()
}

/// Deterministic bytes with finite f16 scales for `ty`.
fn weights(ty: GgmlType, rows: usize, k: usize, seed: u64) -> Vec<u8> {
    let bb = ty.block_bytes() as usize;
    let n = rows * k / ty.block_elems() as usize * bb;
    let mut s = seed | 1;
    let mut w: Vec<u8> = (0..n)
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
    for blk in w.chunks_exact_mut(bb) {
        for &o in offsets {
            blk[o + 1] = (blk[o + 1] & 0x3B) | 0x30;
        }
        if ty == GgmlType::MXFP4 {
            blk[0] = 120 + (blk[0] & 7);
        }
    }
    w
}

fn x(n: usize, k: usize) -> Vec<f32> {
    (0..n * k)
        .map(|i| ((i * 7919 % 1013) as f32 / 506.5 - 1.0) * 3.0)
        .collect()
}

#[test]
fn act_pairing_follows_ggml() {
    assert_eq!(act_type_for(GgmlType::Q8_0).unwrap(), ActType::Q8_0);
    assert_eq!(act_type_for(GgmlType::MXFP4).unwrap(), ActType::Q8_0);
    assert_eq!(act_type_for(GgmlType::IQ2_XXS).unwrap(), ActType::Q8_K);
    assert_eq!(act_type_for(GgmlType::Q6_K).unwrap(), ActType::Q8_K);
    assert_eq!(act_type_for(GgmlType::BF16).unwrap(), ActType::F32);
    assert!(matches!(
        act_type_for(GgmlType::Q5_K),
        Err(QuantError::UnsupportedType { .. })
    ));
}

#[test]
fn matmul_rejects_bad_arguments_with_typed_errors() {
    let k = kern();
    let (kk, rows, n) = (256usize, 4usize, 2usize);
    let w = weights(GgmlType::Q4_K, rows, kk, 1);
    let mut q8k = ActBuf::new();
    k.quantize_act(ActType::Q8_K, &x(n, kk), n, kk, &mut q8k)
        .unwrap();
    let mut q80 = ActBuf::new();
    k.quantize_act(ActType::Q8_0, &x(n, kk), n, kk, &mut q80)
        .unwrap();
    let mut y = vec![0.0f32; n * rows];

    let mut out = OutCols::new(&mut y, n, rows).unwrap();
    let e = k
        .matmul(GgmlType::Q4_K, &w, kk, 0..rows, &q80, &mut out)
        .unwrap_err();
    assert!(matches!(e, QuantError::ActMismatch { .. }), "{e}");
    assert!(e.to_string().contains("act_type_for"), "{e}");

    let e = k
        .matmul(GgmlType::Q4_K, &w, 128, 0..rows, &q8k, &mut out)
        .unwrap_err();
    assert!(matches!(e, QuantError::RowNotBlockAligned { .. }), "{e}");
    let e = k
        .matmul(
            GgmlType::Q4_K,
            &w[..w.len() - 1],
            kk,
            0..rows,
            &q8k,
            &mut out,
        )
        .unwrap_err();
    assert!(matches!(e, QuantError::BadLength { .. }), "{e}");
    let e = k
        .matmul(GgmlType::Q4_K, &w, kk, 2..rows + 1, &q8k, &mut out)
        .unwrap_err();
    assert!(matches!(e, QuantError::RowsOutOfRange { .. }), "{e}");
    let e = k
        .matmul(GgmlType::Q4_K, &w, kk, 0..rows - 1, &q8k, &mut out)
        .unwrap_err();
    assert!(matches!(e, QuantError::OutMismatch { .. }), "{e}");
    let e = k
        .matmul(GgmlType::Q5_K, &w, kk, 0..rows, &q8k, &mut out)
        .unwrap_err();
    assert!(matches!(e, QuantError::UnsupportedType { .. }), "{e}");
    let e = k
        .matmul(GgmlType::I32, &w, kk, 0..rows, &q8k, &mut out)
        .unwrap_err();
    assert!(matches!(e, QuantError::UnsupportedType { .. }), "{e}");
    k.matmul(GgmlType::Q4_K, &w, kk, 0..rows, &q8k, &mut out)
        .unwrap();

    let e = k
        .quantize_act(ActType::Q8_K, &x(n, kk)[1..], n, kk, &mut q8k)
        .unwrap_err();
    assert!(matches!(e, QuantError::BadLength { .. }), "{e}");
    let e = k
        .quantize_act(ActType::Q8_0, &x(1, 48), 1, 48, &mut q80)
        .unwrap_err();
    assert!(matches!(e, QuantError::RowNotBlockAligned { .. }), "{e}");

    let mut f = vec![0.0f32; 3];
    let e = k
        .dequantize_row(GgmlType::Q8_0, &w[..34], &mut f)
        .unwrap_err();
    assert!(matches!(e, QuantError::RowNotBlockAligned { .. }), "{e}");
    let mut f = vec![0.0f32; 32];
    let e = k
        .dequantize_row(GgmlType::Q8_0, &w[..33], &mut f)
        .unwrap_err();
    assert!(matches!(e, QuantError::BadLength { .. }), "{e}");
    let e = k.f16_to_f32(&[0u8; 3], &mut f[..2]).unwrap_err();
    assert!(matches!(e, QuantError::BadLength { .. }), "{e}");
}

#[test]
fn i32_rows_dequantize_by_value() {
    let vals = [0i32, -7, 1 << 20, i32::MIN];
    let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut out = [0.0f32; 4];
    kern()
        .dequantize_row(GgmlType::I32, &bytes, &mut out)
        .unwrap();
    assert_eq!(out, [0.0, -7.0, 1048576.0, -2147483648.0]);
}

#[test]
fn output_windows_are_checked_and_split_disjointly() {
    let mut y = vec![0.0f32; 3 * 10];
    assert!(matches!(
        OutCols::window(&mut y, 3, 10, 8, 3),
        Err(QuantError::BadOutView { .. })
    ));
    assert!(matches!(
        OutCols::window(&mut y, 4, 10, 0, 10),
        Err(QuantError::BadOutView { .. })
    ));
    let w = OutCols::window(&mut y, 3, 10, 2, 7).unwrap();
    assert_eq!((w.n(), w.cols()), (3, 7));
    assert!(
        OutCols::window(&mut y, 3, 10, 2, 7)
            .unwrap()
            .split_at(8)
            .is_none()
    );
    let parts = OutCols::new(&mut y, 3, 10).unwrap().split_even(4);
    assert_eq!(
        parts.iter().map(|p| p.cols()).collect::<Vec<_>>(),
        vec![3, 3, 2, 2]
    );
    assert!(
        OutCols::new(&mut y, 3, 10)
            .unwrap()
            .split_even(0)
            .is_empty()
    );
    // n = 0 is a valid, empty product.
    let mut empty: Vec<f32> = Vec::new();
    let mut out = OutCols::new(&mut empty, 0, 4).unwrap();
    let mut act = ActBuf::new();
    kern()
        .quantize_act(ActType::Q8_0, &[], 0, 32, &mut act)
        .unwrap();
    let w = weights(GgmlType::Q8_0, 4, 32, 3);
    kern()
        .matmul(GgmlType::Q8_0, &w, 32, 0..4, &act, &mut out)
        .unwrap();
}

#[test]
fn act_buffer_is_reused_without_reallocation() {
    let k = kern();
    let mut act = ActBuf::new();
    k.quantize_act(ActType::Q8_K, &x(8, 1024), 8, 1024, &mut act)
        .unwrap();
    let p = act.row_q8k(0).unwrap().qs.as_ptr();
    k.quantize_act(ActType::Q8_K, &x(2, 512), 2, 512, &mut act)
        .unwrap();
    assert_eq!(act.row_q8k(0).unwrap().qs.as_ptr(), p);
    assert_eq!((act.n(), act.k(), act.act_type()), (2, 512, ActType::Q8_K));
    assert!(act.row_q8k(2).is_none() && act.row_q8_0(0).is_none() && act.row_f32(0).is_empty());
}

/// Every reference dot product (the scalar table) equals the f64 product of
/// the dequantized weights and activations up to f32 rounding. Dequantization
/// is golden-checked against gguf-py, so this pins the dot products to gguf-py
/// semantics too.
#[test]
fn reference_dots_agree_with_dequantized_products() {
    let scalar = Kernels::with_isa(Isa::Scalar).unwrap();
    let (kk, rows, n) = (512usize, 5usize, 3usize);
    for &ty in &WEIGHT_TYPES {
        let w = weights(ty, rows, kk, u64::from(ty.id()) + 17);
        let xs = x(n, kk);
        let act_ty = act_type_for(ty).unwrap();
        let mut act = ActBuf::new();
        scalar.quantize_act(act_ty, &xs, n, kk, &mut act).unwrap();
        let mut y = vec![0.0f32; n * rows];
        scalar
            .matmul(
                ty,
                &w,
                kk,
                0..rows,
                &act,
                &mut OutCols::new(&mut y, n, rows).unwrap(),
            )
            .unwrap();
        let mut yf = vec![0.0f32; n * rows];
        scalar
            .matmul_f32(
                ty,
                &w,
                kk,
                0..rows,
                &xs,
                n,
                &mut OutCols::new(&mut yf, n, rows).unwrap(),
            )
            .unwrap();
        let rb = w.len() / rows;
        let mut deq = vec![0.0f32; kk];
        for r in 0..rows {
            scalar
                .dequantize_row(ty, &w[r * rb..(r + 1) * rb], &mut deq)
                .unwrap();
            for t in 0..n {
                let a: Vec<f64> = match act_ty {
                    ActType::F32 => act.row_f32(t).iter().map(|&v| f64::from(v)).collect(),
                    ActType::Q8_0 => {
                        let row = act.row_q8_0(t).unwrap();
                        row.qs
                            .iter()
                            .enumerate()
                            .map(|(i, &q)| f64::from(row.d[i / 32]) * f64::from(q))
                            .collect()
                    }
                    ActType::Q8_K => {
                        let row = act.row_q8k(t).unwrap();
                        row.qs
                            .iter()
                            .enumerate()
                            .map(|(i, &q)| f64::from(row.d[i / 256]) * f64::from(q))
                            .collect()
                    }
                };
                let exact: f64 = deq.iter().zip(&a).map(|(&w, a)| f64::from(w) * a).sum();
                let mag: f64 = deq
                    .iter()
                    .zip(&a)
                    .map(|(&w, a)| (f64::from(w) * a).abs())
                    .sum();
                // Q2_K/Q4_K scale and min parts can cancel; 1e-5 relative to the
                // magnitude still separates a wrong code or scale by orders.
                let tol = 1e-5 * mag + 1e-6;
                let got = f64::from(y[t * rows + r]);
                assert!(
                    (got - exact).abs() <= tol,
                    "{ty} row {r} token {t}: {got} vs {exact} (tol {tol})"
                );
                let xr = &xs[t * kk..(t + 1) * kk];
                let exact_f: f64 = deq
                    .iter()
                    .zip(xr)
                    .map(|(&w, &v)| f64::from(w) * f64::from(v))
                    .sum();
                let mag_f: f64 = deq
                    .iter()
                    .zip(xr)
                    .map(|(&w, &v)| (f64::from(w) * f64::from(v)).abs())
                    .sum();
                let got_f = f64::from(yf[t * rows + r]);
                assert!(
                    (got_f - exact_f).abs() <= 1e-5 * mag_f + 1e-6,
                    "{ty} f32 row {r} token {t}: {got_f} vs {exact_f}"
                );
            }
        }
    }
}

#[test]
fn kernel_table_describes_itself() {
    let k = kern();
    assert!(k.describe().starts_with(k.isa().name()));
    assert_eq!(Isa::from_name("AVX2"), Some(Isa::Avx2));
    assert_eq!(Isa::from_name("sse"), None);
    assert!(format!("{k:?}").contains("isa"));
}
