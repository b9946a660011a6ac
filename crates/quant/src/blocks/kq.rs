//! Shared pieces of the k-quant reference quantizers.
//!
//! [`make_qkx2_quants`] is our rendition of ggml's `make_qkx2_quants`
//! (`ggml/src/ggml-quants.c`, llama.cpp `0c1e57098`): fit `x ≈ scale · L − min`
//! with integer codes `L` in `0..=nmax`, by a grid search over candidate
//! inverse scales followed by a weighted least-squares refit. Floating-point
//! operations are evaluated in the same order as the C code (no fused
//! multiply-adds), so results match a non-contracting C build.

use super::nearest_int;

/// Parameters of the candidate search.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Qkx2Params {
    /// Largest code.
    pub nmax: i32,
    /// First candidate offset added to `nmax`.
    pub rmin: f32,
    /// Step between candidates.
    pub rdelta: f32,
    /// Number of steps (candidates are `0..=nstep`).
    pub nstep: i32,
    /// Minimise absolute instead of squared error.
    pub use_mad: bool,
}

/// Fits codes for `x` (length ≤ 32) with per-element `weights`; writes the codes
/// to `codes` and returns `(scale, the_min)` where `x ≈ scale · code − the_min`.
pub(crate) fn make_qkx2_quants(
    x: &[f32],
    weights: &[f32],
    codes: &mut [u8],
    p: Qkx2Params,
) -> (f32, f32) {
    let n = x.len();
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        codes[..n].fill(0);
        return (0.0, -min);
    }
    let err = |diff: f32| if p.use_mad { diff.abs() } else { diff * diff };

    let iscale = p.nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min)).clamp(0, p.nmax);
        codes[i] = l as u8;
        best_error += weights[i] * err(scale * l as f32 + min - x[i]);
    }
    if p.nstep < 1 {
        return (scale, -min);
    }
    let mut aux = [0u8; 32];
    // As in the C code, a winning candidate moves `min`, and later candidates
    // are measured against the moved value.
    for is in 0..=p.nstep {
        let iscale = (p.rmin + p.rdelta * is as f32 + p.nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, p.nmax);
            aux[i] = l as u8;
            let w = weights[i];
            let lf = l as f32;
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                cur_error += weights[i] * err(this_scale * f32::from(aux[i]) + this_min - x[i]);
            }
            if cur_error < best_error {
                codes[..n].copy_from_slice(&aux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}
