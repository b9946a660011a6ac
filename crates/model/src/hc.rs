//! Manifold-constrained hyper-connections (model-spec §4): the per-token math
//! of HC pre (mixing weights, Sinkhorn-normalised comb matrix, collapse), HC
//! post (expand and mix) and the HC head.
//!
//! The mixer projection `fn · f` is a matrix product done by the backend; the
//! functions here take its output `m` (before the RMS scaling) and finish the
//! job in f32, in the reference order.

/// Mixing weights of one HC site for one token.
#[derive(Debug, Clone, PartialEq)]
pub struct HcMix {
    /// Collapse weights `[hc]`.
    pub pre: Vec<f32>,
    /// Expand gates `[hc]`.
    pub post: Vec<f32>,
    /// Doubly stochastic mixing matrix `[hc, hc]`, row-major (`comb[j·hc + k]`).
    pub comb: Vec<f32>,
}

/// Computes pre/post/comb from the mixer output `m` (`[(2+hc)·hc]`, already
/// multiplied by the RMS inverse of the flattened streams), the site's
/// `scale` (3) and `base` (`[(2+hc)·hc]`).
pub fn mix(
    m: &[f32],
    scale: &[f32],
    base: &[f32],
    hc: usize,
    iters: usize,
    eps: f32,
    out: &mut HcMix,
) {
    let sig = crate::numerics::sigmoid;
    for j in 0..hc {
        out.pre[j] = sig(m[j] * scale[0] + base[j]) + eps;
        out.post[j] = 2.0 * sig(m[hc + j] * scale[1] + base[hc + j]);
    }
    let c = &mut out.comb;
    for j in 0..hc {
        let row = &mut c[j * hc..(j + 1) * hc];
        for k in 0..hc {
            row[k] = m[2 * hc + j * hc + k] * scale[2] + base[2 * hc + j * hc + k];
        }
        let mx = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let mut sum = 0.0f32;
        for v in row.iter_mut() {
            *v = (*v - mx).exp();
            sum += *v;
        }
        for v in row.iter_mut() {
            *v = *v / sum + eps;
        }
    }
    normalize_cols(c, hc, eps);
    for _ in 1..iters {
        normalize_rows(c, hc, eps);
        normalize_cols(c, hc, eps);
    }
}

fn normalize_rows(c: &mut [f32], hc: usize, eps: f32) {
    for j in 0..hc {
        let row = &mut c[j * hc..(j + 1) * hc];
        let s: f32 = row.iter().sum::<f32>() + eps;
        for v in row.iter_mut() {
            *v /= s;
        }
    }
}

fn normalize_cols(c: &mut [f32], hc: usize, eps: f32) {
    for k in 0..hc {
        let s: f32 = (0..hc).map(|j| c[j * hc + k]).sum::<f32>() + eps;
        for j in 0..hc {
            c[j * hc + k] /= s;
        }
    }
}

/// Collapses the streams: `a = Σ_j pre_j · X_j`. `x` is `[hc, D]`.
pub fn collapse(x: &[f32], pre: &[f32], a: &mut [f32]) {
    let d = a.len();
    a.fill(0.0);
    for (j, &p) in pre.iter().enumerate() {
        for (o, &v) in a.iter_mut().zip(&x[j * d..(j + 1) * d]) {
            *o += p * v;
        }
    }
}

/// HC post: `X'_k = post_k · o + Σ_j comb[j,k] · X_j`, writing `[hc, D]` into `out`.
pub fn expand(x: &[f32], o: &[f32], post: &[f32], comb: &[f32], out: &mut [f32]) {
    let d = o.len();
    let hc = post.len();
    for k in 0..hc {
        let dst = &mut out[k * d..(k + 1) * d];
        for (v, &ov) in dst.iter_mut().zip(o) {
            *v = post[k] * ov;
        }
        for j in 0..hc {
            let w = comb[j * hc + k];
            for (v, &xv) in dst.iter_mut().zip(&x[j * d..(j + 1) * d]) {
                *v += w * xv;
            }
        }
    }
}

/// HC head weights from the head mixer output `m` (`[hc]`, RMS-scaled).
pub fn head_pre(m: &[f32], scale: f32, base: &[f32], eps: f32, pre: &mut [f32]) {
    for (j, p) in pre.iter_mut().enumerate() {
        *p = crate::numerics::sigmoid(m[j] * scale + base[j]) + eps;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comb_is_doubly_stochastic() {
        let hc = 4;
        let m: Vec<f32> = (0..24).map(|i| (i as f32 * 0.7).sin() * 3.0).collect();
        let base: Vec<f32> = (0..24).map(|i| (i as f32 * 0.3).cos()).collect();
        let mut out = HcMix {
            pre: vec![0.0; 4],
            post: vec![0.0; 4],
            comb: vec![0.0; 16],
        };
        mix(&m, &[1.0, 0.5, 2.0], &base, hc, 20, 1e-6, &mut out);
        for j in 0..hc {
            let r: f32 = out.comb[j * hc..(j + 1) * hc].iter().sum();
            let c: f32 = (0..hc).map(|i| out.comb[i * hc + j]).sum();
            // The last pass normalises columns exactly; rows converge within 20 rounds.
            assert!((r - 1.0).abs() < 2e-2 && (c - 1.0).abs() < 1e-5, "{r} {c}");
        }
        assert!(out.post.iter().all(|&p| p > 0.0 && p < 2.0));
    }
}
