//! Packed (row-interleaved) Q8_0 weights: every table with a packed kernel
//! gives, for every batch size and row range, exactly the bits of the scalar
//! reference (`QuantBlock::dot_ref` through the scalar table) on the
//! row-major weights; tables without one decline to pack.

// Test helpers report failures by panicking, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;
use common::assert_bits;

use dsv4_gguf::GgmlType;
use dsv4_quant::{ActBuf, ActType, Isa, Kernels, OutCols, PACK_ROWS, QuantError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Row-major Q8_0 weights: random codes (every byte value, −128 included)
/// and scales drawn from `scales`.
fn q8_0_weights(rows: usize, k: usize, scales: &[f32], rng: &mut StdRng) -> Vec<u8> {
    let mut w: Vec<u8> = (0..rows * k / 32 * 34).map(|_| rng.random()).collect();
    for blk in w.chunks_exact_mut(34) {
        let d = scales[rng.random_range(0..scales.len())];
        blk[..2].copy_from_slice(&half::f16::from_f32(d).to_bits().to_le_bytes());
    }
    w
}

fn quantize(k: usize, x: &[f32]) -> ActBuf {
    let scalar = Kernels::with_isa(Isa::Scalar).unwrap();
    let mut act = ActBuf::new();
    scalar
        .quantize_act(ActType::Q8_0, x, x.len() / k, k, &mut act)
        .unwrap();
    act
}

fn packing_tables() -> Vec<Kernels> {
    Kernels::all_variants()
        .into_iter()
        .filter(|k| k.packs(GgmlType::Q8_0))
        .collect()
}

#[test]
fn packed_matmul_gives_the_reference_bits() {
    let tables = packing_tables();
    if tables.is_empty() {
        eprintln!("no kernel table of this CPU packs Q8_0; nothing to compare");
    }
    let scalar = Kernels::with_isa(Isa::Scalar).unwrap();
    let mut rng = StdRng::seed_from_u64(0x9ac4ed);
    let normal = [0.01f32, -0.02, 0.05, 0.003];
    let extreme = [65504.0f32, -6.0e-8, 0.0, -1024.0, 0.01];
    for (rows, k) in [
        (1, 32),
        (15, 96),
        (16, 64),
        (17, 256),
        (40, 4096),
        (70, 1024),
    ] {
        for scales in [&normal[..], &extreme[..]] {
            let w = q8_0_weights(rows, k, scales, &mut rng);
            // 72 tokens at k = 4096 take two L2 passes over the panel.
            for n in [1usize, 2, 3, 4, 5, 8, 9, 17, 72] {
                let x: Vec<f32> = (0..n * k).map(|_| rng.random_range(-3.0..3.0)).collect();
                let act = quantize(k, &x);
                let mut want = vec![0.0f32; n * rows];
                let mut out = OutCols::new(&mut want, n, rows).unwrap();
                scalar
                    .matmul(GgmlType::Q8_0, &w, k, 0..rows, &act, &mut out)
                    .unwrap();
                for kern in &tables {
                    let p = kern.pack(GgmlType::Q8_0, &w, rows, k).unwrap().unwrap();
                    assert_eq!((p.rows(), p.k()), (rows, k));
                    // The whole matrix, and every group-aligned sub-range.
                    for r0 in (0..rows).step_by(PACK_ROWS) {
                        for r1 in [r0 + 1, (r0 + PACK_ROWS).min(rows), rows] {
                            let cols = r1 - r0;
                            let mut got = vec![f32::NAN; n * cols];
                            let mut out = OutCols::new(&mut got, n, cols).unwrap();
                            kern.matmul_packed(&p, r0..r1, &act, &mut out).unwrap();
                            let sub: Vec<f32> = (0..n)
                                .flat_map(|t| want[t * rows + r0..t * rows + r1].to_vec())
                                .collect();
                            let what = format!(
                                "{} rows {r0}..{r1} of {rows}, k {k}, n {n}",
                                kern.describe()
                            );
                            assert_bits(&what, &got, &sub);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn bad_packed_calls_are_errors() {
    let mut rng = StdRng::seed_from_u64(7);
    let (rows, k) = (40, 64);
    let w = q8_0_weights(rows, k, &[0.01], &mut rng);
    let scalar = Kernels::with_isa(Isa::Scalar).unwrap();
    // A table without a packed kernel declines to pack.
    assert!(!scalar.packs(GgmlType::Q8_0));
    assert!(scalar.pack(GgmlType::Q8_0, &w, rows, k).unwrap().is_none());
    for kern in packing_tables() {
        assert!(!kern.packs(GgmlType::Q2_K));
        assert!(kern.pack(GgmlType::Q2_K, &w, rows, k).unwrap().is_none());
        let err = kern.pack(GgmlType::Q8_0, &w[1..], rows, k).unwrap_err();
        assert!(matches!(err, QuantError::BadLength { .. }), "{err}");
        let p = kern.pack(GgmlType::Q8_0, &w, rows, k).unwrap().unwrap();
        let act = quantize(k, &vec![0.5; 2 * k]);
        let mut y = vec![0.0f32; 2 * rows];
        // A range that does not start on a group.
        let mut out = OutCols::new(&mut y, 2, 8).unwrap();
        let err = kern.matmul_packed(&p, 8..16, &act, &mut out).unwrap_err();
        assert!(err.to_string().contains("multiple of 16"), "{err}");
        // Past the end.
        let mut out = OutCols::new(&mut y, 2, 9).unwrap();
        let err = kern.matmul_packed(&p, 32..41, &act, &mut out).unwrap_err();
        assert!(matches!(err, QuantError::RowsOutOfRange { .. }), "{err}");
        // Activations of the wrong format or length.
        let mut k8 = ActBuf::new();
        scalar
            .quantize_act(ActType::Q8_K, &vec![0.5; 2 * 256], 2, 256, &mut k8)
            .unwrap();
        let mut out = OutCols::new(&mut y, 2, rows).unwrap();
        let err = kern.matmul_packed(&p, 0..rows, &k8, &mut out).unwrap_err();
        assert!(matches!(err, QuantError::ActMismatch { .. }), "{err}");
        // An output window of the wrong width.
        let mut out = OutCols::new(&mut y, 2, rows - 1).unwrap();
        assert!(kern.matmul_packed(&p, 0..rows, &act, &mut out).is_err());
    }
}

#[test]
fn aligned_splits_start_on_groups_and_cover_every_column() {
    for (cols, parts, align) in [
        (40, 2, 16),
        (33, 3, 16),
        (16, 4, 16),
        (7, 2, 1),
        (100, 3, 16),
    ] {
        let mut y = vec![0.0f32; 2 * cols];
        let out = OutCols::new(&mut y, 2, cols).unwrap();
        let windows = out.split_aligned(parts, align);
        assert!(!windows.is_empty() && windows.len() <= parts);
        let mut start = 0;
        for (i, w) in windows.iter().enumerate() {
            assert_eq!(start % align, 0, "window {i} of {cols}/{parts}/{align}");
            assert!(w.cols() > 0);
            start += w.cols();
        }
        assert_eq!(start, cols);
    }
}
