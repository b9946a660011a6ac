//! The CSA/HCA compressors (model-spec §5.3): streaming state and window pooling.
//!
//! Each token contributes a KV row and a score row (score already plus the
//! position bias `ape[t mod r]`). When a window of `r` tokens completes, every
//! feature dimension is pooled by a softmax over the window's slots. CSA (width
//! 2) pools 2r slots: lane A holds the first half of the *previous* window's
//! rows, lane B the second half of the current window's; before the first
//! window lane A is absent (weight 0). The caller normalises, rotates and
//! (optionally) FP8-rounds the pooled row.

/// The streaming state of one compressor for one session.
#[derive(Debug, Clone, PartialEq)]
pub struct CompressorState {
    /// Window length r.
    pub ratio: usize,
    /// Output dim d.
    pub dim: usize,
    /// Lanes per token (1 for HCA, 2 for CSA).
    pub width: usize,
    /// Tokens of the current window so far.
    pub n_partial: usize,
    /// `[r, width·d]` KV rows of the current window.
    pub kv: Vec<f32>,
    /// `[r, width·d]` score rows (bias added) of the current window.
    pub score: Vec<f32>,
    /// Whether `prev_*` holds the previous window (CSA only).
    pub has_prev: bool,
    /// `[r, d]` first-half KV rows of the previous window (CSA lane A).
    pub prev_kv: Vec<f32>,
    /// `[r, d]` first-half score rows of the previous window.
    pub prev_score: Vec<f32>,
}

impl CompressorState {
    /// A fresh state (no tokens seen).
    pub fn new(ratio: usize, dim: usize, width: usize) -> Self {
        let prev = if width == 2 { ratio * dim } else { 0 };
        CompressorState {
            ratio,
            dim,
            width,
            n_partial: 0,
            kv: vec![0.0; ratio * width * dim],
            score: vec![0.0; ratio * width * dim],
            has_prev: false,
            prev_kv: vec![0.0; prev],
            prev_score: vec![0.0; prev],
        }
    }

    /// Adds one token's rows (`kv`, `score` of length `width·d`, score without
    /// bias) at absolute position `pos`; `ape` is `[r, width·d]`. Returns true
    /// when the token closes a window, in which case the caller must call
    /// [`CompressorState::pool`] before adding the next token.
    pub fn push(&mut self, kv: &[f32], score: &[f32], ape: &[f32], pos: usize) -> bool {
        let w = self.width * self.dim;
        let o = pos % self.ratio;
        debug_assert_eq!(o, self.n_partial, "compressor fed out of order");
        self.kv[o * w..(o + 1) * w].copy_from_slice(kv);
        for ((dst, &s), &b) in self.score[o * w..(o + 1) * w]
            .iter_mut()
            .zip(score)
            .zip(&ape[o * w..(o + 1) * w])
        {
            *dst = s + b;
        }
        self.n_partial += 1;
        self.n_partial == self.ratio
    }

    /// Pools the completed window into `out` (`[d]`), then rolls the state:
    /// the window's lane-A halves become the previous window (CSA).
    pub fn pool(&mut self, out: &mut [f32]) {
        let (r, d, w) = (self.ratio, self.dim, self.width * self.dim);
        // Lane B (the current window) is the second half for CSA, the only half for HCA.
        let off = (self.width - 1) * d;
        for (f, o) in out.iter_mut().enumerate() {
            let mut mx = f32::NEG_INFINITY;
            for i in 0..r {
                mx = mx.max(self.score[i * w + off + f]);
            }
            if self.has_prev {
                for i in 0..r {
                    mx = mx.max(self.prev_score[i * d + f]);
                }
            }
            let (mut num, mut den) = (0.0f32, 0.0f32);
            if self.has_prev {
                for i in 0..r {
                    let e = (self.prev_score[i * d + f] - mx).exp();
                    den += e;
                    num += e * self.prev_kv[i * d + f];
                }
            }
            for i in 0..r {
                let e = (self.score[i * w + off + f] - mx).exp();
                den += e;
                num += e * self.kv[i * w + off + f];
            }
            *o = num / den;
        }
        if self.width == 2 {
            for i in 0..r {
                self.prev_kv[i * d..(i + 1) * d].copy_from_slice(&self.kv[i * w..i * w + d]);
                self.prev_score[i * d..(i + 1) * d].copy_from_slice(&self.score[i * w..i * w + d]);
            }
            self.has_prev = true;
        }
        self.n_partial = 0;
    }

    /// Bytes of state held (for memory reports).
    pub fn bytes(&self) -> usize {
        4 * (self.kv.len() + self.score.len() + self.prev_kv.len() + self.prev_score.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hca_pools_a_softmax_weighted_mean() {
        let mut s = CompressorState::new(2, 1, 1);
        let ape = [0.0, 0.0];
        assert!(!s.push(&[1.0], &[0.0], &ape, 0));
        assert!(s.push(&[3.0], &[0.0], &ape, 1));
        let mut out = [0.0];
        s.pool(&mut out);
        assert!((out[0] - 2.0).abs() < 1e-6);
        assert_eq!(s.n_partial, 0);
    }

    #[test]
    fn csa_uses_previous_lane_after_first_window() {
        let mut s = CompressorState::new(1, 1, 2);
        let ape = [0.0, 0.0];
        // Window 0: lane A absent, lane B = second half (5.0).
        assert!(s.push(&[1.0, 5.0], &[0.0, 0.0], &ape, 0));
        let mut out = [0.0];
        s.pool(&mut out);
        assert_eq!(out[0], 5.0);
        // Window 1: lane A = previous first half (1.0), lane B = 7.0, equal scores.
        assert!(s.push(&[2.0, 7.0], &[0.0, 0.0], &ape, 1));
        s.pool(&mut out);
        assert!((out[0] - 4.0).abs() < 1e-6);
    }
}
