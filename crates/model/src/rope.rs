//! Rotary position embedding: frequency tables (plain and YaRN, model-spec
//! §3.2–3.3) and the partial, interleaved rotation of the last `rope_dim`
//! dims of a head vector.
//!
//! Frequencies and angles are computed in f32 exactly as the reference
//! implementations do (`base ** (2i/dim)` then `1/x`, `pos · θ`, then cos/sin
//! in f32), so positions far into a long context round the same way.

use crate::config::Yarn;

/// The per-pair frequencies θ_i of one layer flavour.
#[derive(Debug, Clone, PartialEq)]
pub struct RopeTable {
    /// θ_i for i in 0..rope_dim/2.
    pub theta: Vec<f32>,
}

impl RopeTable {
    /// Plain RoPE: θ_i = base^(−2i/dim).
    pub fn plain(base: f64, rope_dim: usize) -> RopeTable {
        let b = base as f32;
        let theta = (0..rope_dim / 2)
            .map(|i| 1.0 / b.powf((2 * i) as f32 / rope_dim as f32))
            .collect();
        RopeTable { theta }
    }

    /// YaRN-blended frequencies (no magnitude scaling), as used on compressed layers.
    pub fn yarn(base: f64, rope_dim: usize, y: &Yarn) -> RopeTable {
        let dim = rope_dim as f64;
        let corr = |rot: f64| {
            dim * (y.original_context / (rot * 2.0 * std::f64::consts::PI)).ln() / (2.0 * base.ln())
        };
        let low = corr(y.beta_fast).floor().max(0.0);
        let mut high = corr(y.beta_slow).ceil().min(dim - 1.0);
        if low == high {
            high += 0.001;
        }
        let plain = RopeTable::plain(base, rope_dim);
        let b = base as f32;
        let theta = plain
            .theta
            .iter()
            .enumerate()
            .map(|(i, _)| {
                let pos_freq = b.powf((2 * i) as f32 / rope_dim as f32);
                let extrap = 1.0 / pos_freq;
                let interp = 1.0 / (y.factor as f32 * pos_freq);
                let ramp = ((i as f32 - low as f32) / (high as f32 - low as f32)).clamp(0.0, 1.0);
                let keep = 1.0 - ramp; // extrapolation factor
                interp * (1.0 - keep) + extrap * keep
            })
            .collect();
        RopeTable { theta }
    }

    /// cos/sin for one position: `cs[2i] = cos(p·θ_i)`, `cs[2i+1] = sin(p·θ_i)`.
    pub fn cos_sin(&self, pos: usize, cs: &mut [f32]) {
        let p = pos as f32;
        for (i, &t) in self.theta.iter().enumerate() {
            let a = p * t;
            cs[2 * i] = a.cos();
            cs[2 * i + 1] = a.sin();
        }
    }
}

/// Rotates the last `cs.len()` dims of `x` by the angles in `cs` (interleaved
/// pairs); `inverse` rotates by the negated angles.
pub fn apply(x: &mut [f32], cs: &[f32], inverse: bool) {
    let rd = cs.len();
    let off = x.len() - rd;
    let sign = if inverse { -1.0 } else { 1.0 };
    for i in 0..rd / 2 {
        let (c, s) = (cs[2 * i], sign * cs[2 * i + 1]);
        let (a, b) = (x[off + 2 * i], x[off + 2 * i + 1]);
        x[off + 2 * i] = a * c - b * s;
        x[off + 2 * i + 1] = b * c + a * s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        ((a - b) / b).abs() < 2e-6
    }

    #[test]
    fn flash_check_values() {
        // model-spec §3.3 check values.
        let y = Yarn {
            factor: 16.0,
            original_context: 65536.0,
            beta_fast: 32.0,
            beta_slow: 1.0,
        };
        let t = RopeTable::yarn(160000.0, 64, &y).theta;
        assert!(close(t[0], 1.0));
        assert!(close(t[1], 0.687_656_02), "{}", t[1]);
        assert!(close(t[15], 3.635_538_6e-3), "{}", t[15]);
        assert!(close(t[20], 2.969_777_8e-4), "{}", t[20]);
        assert!(close(t[25], 5.372_313e-6), "{}", t[25]);
        assert!(close(t[31], 5.680_529e-7), "{}", t[31]);
        let m = RopeTable::plain(10000.0, 64).theta;
        assert!(close(m[1], 0.749_894_24), "{}", m[1]);
        assert!(close(m[31], 1.333_521_4e-4), "{}", m[31]);
    }

    #[test]
    fn rotation_inverts() {
        let t = RopeTable::plain(10000.0, 8);
        let mut cs = vec![0.0; 8];
        t.cos_sin(37, &mut cs);
        let orig: Vec<f32> = (0..12).map(|i| i as f32 * 0.3 - 1.0).collect();
        let mut x = orig.clone();
        apply(&mut x, &cs, false);
        assert_eq!(&x[..4], &orig[..4]);
        apply(&mut x, &cs, true);
        for (a, b) in x.iter().zip(&orig) {
            assert!((a - b).abs() < 1e-6);
        }
    }
}
