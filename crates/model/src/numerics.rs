//! Scalar numerics of the model: RMSNorm, activations, and the official
//! graph's quantisation simulations (FP8 E4M3 and FP4 E2M1 round trips with
//! power-of-two block scales, and the Hadamard rotation of the indexer).
//!
//! These are the exact rules of model-spec §3.1, §3.4 and §3.5 (taken there
//! from the official `inference/kernel.py`), written as plain f32 code. They are
//! cheap relative to the matrix products, so one scalar version serves every
//! backend on the CPU side; a GPU backend must reproduce them bit for bit.

/// `x · (mean(x²) + eps)^(-1/2) · w`, in place, statistics accumulated in f64.
pub fn rms_norm(x: &mut [f32], w: &[f32], eps: f32) {
    let s = inv_rms(x, eps);
    for (v, &g) in x.iter_mut().zip(w) {
        *v = g * (*v * s);
    }
}

/// Unweighted RMSNorm in place.
pub fn rms_norm_unweighted(x: &mut [f32], eps: f32) {
    let s = inv_rms(x, eps);
    for v in x.iter_mut() {
        *v *= s;
    }
}

/// `(mean(x²) + eps)^(-1/2)` as f32.
pub fn inv_rms(x: &[f32], eps: f32) -> f32 {
    let ss: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    let mean = (ss / x.len().max(1) as f64) as f32;
    1.0 / (mean + eps).sqrt()
}

/// Logistic sigmoid.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// SiLU, `x · sigmoid(x)`.
pub fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}

/// Softplus as torch computes it (`beta = 1`, linear above the threshold 20).
pub fn softplus(x: f32) -> f32 {
    if x > 20.0 { x } else { x.exp().ln_1p() }
}

/// `ceil(log2(v))` for a positive normal or subnormal f32, from its bits
/// (the official kernel's `fast_log2_ceil`).
fn log2_ceil(v: f32) -> i32 {
    let bits = v.to_bits();
    let exp = ((bits >> 23) & 0xFF) as i32;
    let man = bits & 0x7F_FFFF;
    if exp == 0 {
        // Subnormal: value = man · 2^-149.
        let lz = man.leading_zeros() as i32 - 9; // leading zeros within the 23-bit field
        let e = -127 - lz; // floor(log2)
        let is_pow2 = man.is_power_of_two();
        return if is_pow2 { e } else { e + 1 };
    }
    exp - 127 + i32::from(man != 0)
}

/// `2^e` as f32 (e in the f32 exponent range, subnormals included).
fn pow2(e: i32) -> f32 {
    (e as f32).exp2()
}

/// The power-of-two scale `2^ceil(log2(max(amax, floor) / qmax))` (model-spec §3.5).
pub fn pow2_scale(amax: f32, floor: f32, qmax: f32) -> f32 {
    pow2(log2_ceil(amax.max(floor) / qmax))
}

/// Rounds to the nearest FP8 E4M3 (fn variant: no infinities, max 448) value,
/// ties to even. The input must already be clamped to ±448.
pub fn round_e4m3(v: f32) -> f32 {
    let a = v.abs();
    if a == 0.0 || a.is_nan() {
        return v;
    }
    // Quantum: 2^(e-3) for normals (e = floor(log2 a) ≥ -6), 2^-9 for subnormals.
    let e = (a.to_bits() >> 23) as i32 - 127;
    let q = if e < -6 { pow2(-9) } else { pow2(e - 3) };
    let r = (a / q).round_ties_even() * q;
    r.min(448.0).copysign(v)
}

/// The E2M1 (FP4) grid magnitudes, by code 0..7.
pub const E2M1_GRID: [f32; 8] = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0];

/// Rounds to the nearest E2M1 value, ties to the even code (model-spec §3.5).
/// The input must already be clamped to ±6.
pub fn round_e2m1(v: f32) -> f32 {
    let a = v.abs();
    let mut best = 0usize;
    for (c, &g) in E2M1_GRID.iter().enumerate().skip(1) {
        let d_best = (a - E2M1_GRID[best]).abs();
        let d = (a - g).abs();
        if d < d_best || (d == d_best && c % 2 == 0) {
            best = c;
        }
    }
    E2M1_GRID[best].copysign(v)
}

/// FP8 round trip of `x` in blocks of `block` values (per-block power-of-two scale,
/// Qmax 448, amax floor 1e-4): the KV-row QAT simulation (model-spec §2.4 item 3).
pub fn fp8_roundtrip(x: &mut [f32], block: usize) {
    for chunk in x.chunks_mut(block) {
        let amax = chunk.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
        let s = pow2_scale(amax, 1e-4, 448.0);
        for v in chunk.iter_mut() {
            *v = round_e4m3((*v / s).clamp(-448.0, 448.0)) * s;
        }
    }
}

/// FP4 round trip in blocks of `block` values (Qmax 6, amax floor 6·2⁻¹²⁶): the
/// indexer QAT simulation (model-spec §2.4 item 4).
pub fn fp4_roundtrip(x: &mut [f32], block: usize) {
    let floor = 6.0 * pow2(-126);
    for chunk in x.chunks_mut(block) {
        let amax = chunk.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
        let s = pow2_scale(amax, floor, 6.0);
        for v in chunk.iter_mut() {
            *v = round_e2m1((*v / s).clamp(-6.0, 6.0)) * s;
        }
    }
}

/// Normalised Sylvester–Hadamard transform `H x / sqrt(n)` in place (model-spec
/// §3.4); `x.len()` must be a power of two.
pub fn hadamard(x: &mut [f32]) {
    let n = x.len();
    debug_assert!(n.is_power_of_two());
    let mut h = 1;
    while h < n {
        for i in (0..n).step_by(2 * h) {
            for j in i..i + h {
                let (a, b) = (x[j], x[j + h]);
                x[j] = a + b;
                x[j + h] = a - b;
            }
        }
        h *= 2;
    }
    let s = 1.0 / (n as f32).sqrt();
    for v in x.iter_mut() {
        *v *= s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e4m3_grid_properties() {
        // Representable values stay put; midpoints go to the even mantissa.
        for v in [
            0.0f32,
            1.0,
            1.125,
            448.0,
            2f32.powi(-9),
            2f32.powi(-6),
            240.0,
            -3.5,
        ] {
            assert_eq!(round_e4m3(v), v, "{v}");
        }
        assert_eq!(round_e4m3(1.0625), 1.0); // tie between 1.0 (even) and 1.125
        assert_eq!(round_e4m3(1.1875), 1.25); // tie between 1.125 and 1.25 (even)
        assert_eq!(round_e4m3(2f32.powi(-10)), 0.0); // half the smallest subnormal, tie to 0
        assert_eq!(round_e4m3(3.0 * 2f32.powi(-10)), 2.0 * 2f32.powi(-9));
        // 17 is between 16 and 18 (quantum 2 at [16,32)): tie → 16 (mantissa 000 even).
        assert_eq!(round_e4m3(17.0), 16.0);
        assert_eq!(round_e4m3(19.0), 20.0);
    }

    #[test]
    fn e2m1_ties_go_to_even_codes() {
        let cases = [
            (0.25, 0.0),
            (0.75, 1.0),
            (1.25, 1.0),
            (1.75, 2.0),
            (2.5, 2.0),
            (3.5, 4.0),
            (5.0, 4.0),
            (5.5, 6.0),
        ];
        for (x, y) in cases {
            assert_eq!(round_e2m1(x), y, "{x}");
            assert_eq!(round_e2m1(-x), -y, "-{x}");
        }
    }

    #[test]
    fn pow2_scales() {
        assert_eq!(pow2_scale(448.0, 1e-4, 448.0), 1.0);
        assert_eq!(pow2_scale(449.0, 1e-4, 448.0), 2.0);
        assert_eq!(pow2_scale(0.0, 1e-4, 448.0), pow2(log2_ceil(1e-4 / 448.0)));
        assert_eq!(pow2_scale(6.0, 0.0, 6.0), 1.0);
        assert_eq!(pow2_scale(0.0, 6.0 * pow2(-126), 6.0), pow2(-126));
        assert_eq!(log2_ceil(pow2(-140)), -140);
        assert_eq!(log2_ceil(pow2(-140) * 1.5), -139);
    }

    #[test]
    fn roundtrips_are_idempotent_and_hadamard_is_orthogonal() {
        let mut x: Vec<f32> = (0..128)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.013)
            .collect();
        let orig = x.clone();
        fp8_roundtrip(&mut x, 64);
        let once = x.clone();
        fp8_roundtrip(&mut x, 64);
        assert_eq!(x, once);
        let mut y = orig.clone();
        fp4_roundtrip(&mut y, 32);
        let once = y.clone();
        fp4_roundtrip(&mut y, 32);
        assert_eq!(y, once);
        let mut z = orig.clone();
        hadamard(&mut z);
        hadamard(&mut z);
        for (a, b) in z.iter().zip(&orig) {
            assert!((a - b).abs() < 1e-5);
        }
    }
}
