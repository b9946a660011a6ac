//! The attention kernels of every kernel table: `weighted_rows` (P·V) must
//! give exactly the bits of the `axpy` loop it replaces on the same table,
//! `scores` (q·kᵀ) exactly the bits of the scalar definition (fused
//! multiply-add chains over blocks of elements, block sums added in order) on
//! every table, and both must read a
//! selection of rows (`RowSet::selected`) exactly as the same rows copied
//! into a block of their own. Independent checks: the scores against an f64
//! dot product within the FMA-chain rounding bound, and bad shapes as typed
//! errors.

// Test helpers report failures by panicking, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;
use common::assert_bits;

use dsv4_quant::{Isa, Kernels, RowSet};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const EPS: f64 = 1.0 / (1u64 << 24) as f64;

fn uniform(rng: &mut StdRng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// A selection of `m` rows out of `n` (repeats allowed, any order) and the
/// same rows copied into a block of their own.
fn select(rng: &mut StdRng, block: &[f32], hd: usize, m: usize) -> (Vec<u32>, Vec<f32>) {
    let n = block.len() / hd;
    let sel: Vec<u32> = (0..m).map(|_| rng.random_range(0..n as u32)).collect();
    let mut copy = Vec::with_capacity(m * hd);
    for &s in &sel {
        copy.extend_from_slice(&block[s as usize * hd..(s as usize + 1) * hd]);
    }
    (sel, copy)
}

/// `out[h] += Σ_j p[h · ldp + j] · rows[j]` as one `axpy` per row and output
/// row on the same table: what `weighted_rows` must reproduce bit for bit.
fn weighted_rows_by_axpy(
    kern: &Kernels,
    p: &[f32],
    ldp: usize,
    rows: &[f32],
    hd: usize,
    out: &mut [f32],
) {
    for (j, row) in rows.chunks_exact(hd).enumerate() {
        for (h, o) in out.chunks_exact_mut(hd).enumerate() {
            kern.axpy(p[h * ldp + j], row, o);
        }
    }
}

#[test]
fn weighted_rows_match_the_axpy_loop_bit_for_bit_and_the_scalar_table_closely() {
    let scalar = Kernels::with_isa(Isa::Scalar).expect("scalar");
    let mut rng = StdRng::seed_from_u64(0x5EED_0007);
    // Column counts around the 8/16/32/64-wide tiles, output rows around the
    // 2- and 4-row tiles, one and many summed rows.
    for hd in [1usize, 7, 16, 37, 64, 100, 512] {
        for nh in [1usize, 2, 3, 4, 5, 9] {
            for m in [1usize, 6, 131] {
                let ldp = m + 3;
                let p = uniform(&mut rng, (nh - 1) * ldp + m, 0.0, 1.0);
                let rows = uniform(&mut rng, m * hd, -4.0, 4.0);
                let init = uniform(&mut rng, nh * hd, -1.0, 1.0);
                let set = RowSet::all(&rows, hd).unwrap();
                let mut want_s = init.clone();
                scalar
                    .weighted_rows(&p, ldp, set, &mut want_s)
                    .expect("scalar weighted rows");
                for kern in Kernels::all_variants() {
                    let what = format!("{} hd={hd} nh={nh} m={m}", kern.describe());
                    let mut want = init.clone();
                    weighted_rows_by_axpy(&kern, &p, ldp, &rows, hd, &mut want);
                    let mut got = init.clone();
                    kern.weighted_rows(&p, ldp, set, &mut got)
                        .expect("weighted rows");
                    assert_bits(&what, &got, &want);
                    // Against the scalar definition: one rounding per step
                    // (FMA) against two, over `m` steps of terms up to 4.
                    for (g, s) in got.iter().zip(&want_s) {
                        let bound = 4.0 * EPS * (m as f64 + 1.0) * (4.0 * m as f64 + 1.0);
                        assert!(f64::from(g - s).abs() <= bound, "{what}: {g} vs {s}");
                    }
                }
            }
        }
    }
}

#[test]
fn weighted_rows_of_a_selection_equal_those_of_the_copied_rows() {
    let mut rng = StdRng::seed_from_u64(0x5EED_0008);
    for (hd, nh, n, m) in [
        (64usize, 4usize, 50usize, 17usize),
        (100, 5, 9, 30),
        (512, 16, 40, 12),
    ] {
        let block = uniform(&mut rng, n * hd, -4.0, 4.0);
        let (sel, copy) = select(&mut rng, &block, hd, m);
        let p = uniform(&mut rng, nh * m, 0.0, 1.0);
        for kern in Kernels::all_variants() {
            let what = format!("{} hd={hd} nh={nh} m={m}", kern.describe());
            let mut want = vec![0.5f32; nh * hd];
            kern.weighted_rows(&p, m, RowSet::all(&copy, hd).unwrap(), &mut want)
                .unwrap();
            let mut got = vec![0.5f32; nh * hd];
            kern.weighted_rows(&p, m, RowSet::selected(&block, hd, &sel).unwrap(), &mut got)
                .unwrap();
            assert_bits(&what, &got, &want);
        }
    }
}

#[test]
fn weighted_rows_reject_shapes_that_do_not_fit() {
    let kern = Kernels::detect();
    let mut out = vec![0.0f32; 8];
    let rows = vec![1.0f32; 12];
    let set = RowSet::all(&rows, 4).unwrap();
    // An output that is not whole rows.
    assert!(
        kern.weighted_rows(&[1.0; 3], 3, set, &mut out[..5])
            .is_err()
    );
    // Stride shorter than the rows, and too few weights for 2 output rows.
    assert!(kern.weighted_rows(&[1.0; 8], 2, set, &mut out).is_err());
    assert!(kern.weighted_rows(&[1.0; 5], 3, set, &mut out).is_err());
    // The smallest fitting weights work: (2 − 1) · 3 + 3 = 6.
    assert!(kern.weighted_rows(&[1.0; 6], 3, set, &mut out).is_ok());
    assert_eq!(out, vec![3.0f32; 8]);
}

/// `Σ_d q[d] · k[d]` in f64, and `Σ_d |q[d] · k[d]|` for the error bound.
fn dot_f64(q: &[f32], k: &[f32]) -> (f64, f64) {
    q.iter().zip(k).fold((0.0, 0.0), |(s, a), (&x, &y)| {
        let p = f64::from(x) * f64::from(y);
        (s + p, a + p.abs())
    })
}

#[test]
fn scores_match_the_scalar_definition_bit_for_bit_and_an_f64_dot_closely() {
    let scalar = Kernels::with_isa(Isa::Scalar).expect("scalar");
    let mut rng = StdRng::seed_from_u64(0x5EED_0009);
    // Query rows around the 8- and 16-lane vectors and the 64-row passes, key
    // rows around the 4- to 8-row groups, row lengths from one element to 512.
    for hd in [1usize, 5, 64, 128, 512] {
        for nh in [1usize, 3, 8, 16, 17, 33, 64, 70] {
            for m in [1usize, 7, 8, 9, 41] {
                let (ldo, col0) = (m + 5, 2);
                let q = uniform(&mut rng, nh * hd, -2.0, 2.0);
                let keys = uniform(&mut rng, m * hd, -2.0, 2.0);
                let set = RowSet::all(&keys, hd).unwrap();
                let mut want = vec![f32::NAN; nh * ldo];
                scalar.scores(&q, set, &mut want, ldo, col0).unwrap();
                for h in 0..nh {
                    for j in 0..m {
                        let (exact, mag) =
                            dot_f64(&q[h * hd..(h + 1) * hd], &keys[j * hd..(j + 1) * hd]);
                        let got = f64::from(want[h * ldo + col0 + j]);
                        // FMA chains and block sums: one rounding per step.
                        let bound = 2.0 * EPS * hd as f64 * mag + 1e-30;
                        assert!(
                            (got - exact).abs() <= bound,
                            "scalar hd={hd} nh={nh} m={m} ({h},{j}): {got} vs {exact}"
                        );
                    }
                    // Columns outside `col0 .. col0 + m` are not written.
                    assert!(want[h * ldo].is_nan() && want[h * ldo + col0 + m].is_nan());
                }
                for kern in Kernels::all_variants() {
                    let what = format!("{} hd={hd} nh={nh} m={m}", kern.describe());
                    let mut got = vec![f32::NAN; nh * ldo];
                    kern.scores(&q, set, &mut got, ldo, col0).unwrap();
                    // NaN placeholders compare by bits too.
                    assert_bits(&what, &got, &want);
                }
            }
        }
    }
}

#[test]
fn scores_of_a_selection_equal_those_of_the_copied_rows() {
    let mut rng = StdRng::seed_from_u64(0x5EED_000A);
    for (hd, nh, n, m) in [(128usize, 64usize, 30usize, 19usize), (512, 16, 70, 33)] {
        let block = uniform(&mut rng, n * hd, -2.0, 2.0);
        let (sel, copy) = select(&mut rng, &block, hd, m);
        let q = uniform(&mut rng, nh * hd, -2.0, 2.0);
        for kern in Kernels::all_variants() {
            let what = format!("{} hd={hd} nh={nh} m={m}", kern.describe());
            let mut want = vec![0.0f32; nh * m];
            kern.scores(&q, RowSet::all(&copy, hd).unwrap(), &mut want, m, 0)
                .unwrap();
            let mut got = vec![0.0f32; nh * m];
            kern.scores(
                &q,
                RowSet::selected(&block, hd, &sel).unwrap(),
                &mut got,
                m,
                0,
            )
            .unwrap();
            assert_bits(&what, &got, &want);
        }
    }
}

#[test]
fn scores_reject_shapes_that_do_not_fit() {
    let kern = Kernels::detect();
    let keys = vec![1.0f32; 12];
    let set = RowSet::all(&keys, 4).unwrap();
    let mut out = vec![0.0f32; 16];
    // Queries that are not whole rows.
    assert!(kern.scores(&[1.0; 6], set, &mut out, 8, 0).is_err());
    // Columns past the stride, and an output too short for 2 query rows.
    assert!(kern.scores(&[1.0; 8], set, &mut out, 4, 2).is_err());
    assert!(kern.scores(&[1.0; 8], set, &mut out[..10], 8, 0).is_err());
    // The smallest fitting output works: (2 − 1) · 8 + 1 + 3 = 12.
    assert!(kern.scores(&[1.0; 8], set, &mut out[..12], 8, 1).is_ok());
    assert_eq!(
        &out[..12],
        &[0.0, 4.0, 4.0, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0, 4.0, 4.0, 4.0]
    );
}
