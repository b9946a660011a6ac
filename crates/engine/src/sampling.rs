//! Token sampling: logit bias, repetition/presence/frequency penalties, an
//! optional constraint mask, then greedy or temperature sampling with top-k,
//! top-p and min-p, from a seeded generator (the same seed and inputs give the
//! same tokens). Log-probabilities are reported from the distribution after
//! bias, penalties and mask, before truncation and temperature.
//!
//! The order follows llama.cpp's default chain (penalties → top-k → top-p →
//! min-p → temperature).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Sampling parameters of one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    /// Temperature; 0 means greedy.
    pub temperature: f32,
    /// Keep the k most likely tokens (0: off).
    pub top_k: usize,
    /// Nucleus: keep the smallest set with cumulative probability ≥ p (1: off).
    pub top_p: f32,
    /// Drop tokens with probability below `min_p ×` the best one (0: off).
    pub min_p: f32,
    /// Random seed (`None`: from the clock).
    pub seed: Option<u64>,
    /// Multiplicative penalty on tokens seen in the last `penalty_last_n` (1: off).
    pub repetition_penalty: f32,
    /// Subtracted once from tokens that occurred (OpenAI semantics, 0: off).
    pub presence_penalty: f32,
    /// Subtracted per occurrence (0: off).
    pub frequency_penalty: f32,
    /// Window of recent tokens the penalties look at (0: all generated tokens).
    pub penalty_last_n: usize,
    /// Added to the logits of given token ids (`-inf` bans a token).
    pub logit_bias: HashMap<u32, f32>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: None,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            penalty_last_n: 0,
            logit_bias: HashMap::new(),
        }
    }
}

impl SamplingParams {
    /// Greedy decoding.
    pub fn greedy() -> Self {
        SamplingParams {
            temperature: 0.0,
            ..Default::default()
        }
    }

    /// Checks ranges; returns a message naming the bad field.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(format!("temperature must be ≥ 0, got {}", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err(format!("min_p must be in [0, 1], got {}", self.min_p));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return Err(format!(
                "repetition_penalty must be > 0, got {}",
                self.repetition_penalty
            ));
        }
        for (name, v) in [
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
        ] {
            if !(-2.0..=2.0).contains(&v) {
                return Err(format!("{name} must be in [-2, 2], got {v}"));
            }
        }
        Ok(())
    }
}

/// A constraint on the next token (grammar masks for tool calls and JSON schemas).
pub trait LogitMask: Send + std::fmt::Debug {
    /// Sets disallowed tokens' logits to `-inf`. An error ends the request.
    fn apply(&mut self, logits: &mut [f32]) -> Result<(), String>;
    /// Advances the constraint past the sampled token.
    fn accept(&mut self, token: u32) -> Result<(), String>;
    /// True when the constraint is complete and the request should stop.
    fn is_finished(&self) -> bool;
}

/// A sampled token with its log-probabilities.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// The token.
    pub token: u32,
    /// Its log-probability.
    pub logprob: f32,
    /// The most likely alternatives `(token, logprob)`, best first.
    pub top: Vec<(u32, f32)>,
}

/// Per-request sampler state.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: u64,
    counts: HashMap<u32, u32>,
    recent: std::collections::VecDeque<u32>,
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Sampler {
    /// A sampler; the seed defaults to the clock.
    pub fn new(params: SamplingParams) -> Sampler {
        let seed = params.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
        Sampler {
            params,
            rng: seed,
            counts: HashMap::new(),
            recent: Default::default(),
        }
    }

    /// The parameters.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Records a token that is now part of the text (for penalties).
    pub fn observe(&mut self, token: u32) {
        *self.counts.entry(token).or_insert(0) += 1;
        self.recent.push_back(token);
        let n = self.params.penalty_last_n;
        if n > 0
            && self.recent.len() > n
            && let Some(old) = self.recent.pop_front()
            && let Some(c) = self.counts.get_mut(&old)
        {
            {
                *c -= 1;
                if *c == 0 {
                    self.counts.remove(&old);
                }
            }
        }
    }

    /// Bias, penalties: the adjusted logits, in place.
    pub fn adjust(&self, logits: &mut [f32]) {
        for (&t, &b) in &self.params.logit_bias {
            if let Some(l) = logits.get_mut(t as usize) {
                *l += b;
            }
        }
        let p = &self.params;
        for (&t, &c) in &self.counts {
            let Some(l) = logits.get_mut(t as usize) else {
                continue;
            };
            if p.repetition_penalty != 1.0 {
                *l = if *l > 0.0 {
                    *l / p.repetition_penalty
                } else {
                    *l * p.repetition_penalty
                };
            }
            *l -= p.presence_penalty + p.frequency_penalty * c as f32;
        }
    }

    fn uniform(&mut self) -> f32 {
        ((splitmix(&mut self.rng) >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }

    /// Picks a token from adjusted logits (`-inf` entries are never chosen).
    /// `greedy` forces the most likely token. `top_logprobs` alternatives are
    /// reported. Returns `None` when every token is masked.
    pub fn pick(&mut self, logits: &[f32], greedy: bool, top_logprobs: usize) -> Option<Choice> {
        let mx = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if mx == f32::NEG_INFINITY || mx.is_nan() {
            return None;
        }
        let lse = mx + logits.iter().map(|&l| (l - mx).exp()).sum::<f32>().ln();
        let logprob = |t: u32| logits[t as usize] - lse;
        let top = if top_logprobs > 0 {
            let mut idx: Vec<u32> = (0..logits.len() as u32)
                .filter(|&t| logits[t as usize].is_finite())
                .collect();
            let k = top_logprobs.min(idx.len());
            if k > 0 {
                idx.select_nth_unstable_by(k - 1, |&a, &b| {
                    logits[b as usize].total_cmp(&logits[a as usize])
                });
                idx.truncate(k);
                idx.sort_by(|&a, &b| {
                    logits[b as usize]
                        .total_cmp(&logits[a as usize])
                        .then(a.cmp(&b))
                });
            }
            idx.into_iter().map(|t| (t, logprob(t))).collect()
        } else {
            Vec::new()
        };
        let token = if greedy || self.params.temperature == 0.0 {
            argmax(logits)
        } else {
            self.sample(logits, mx)
        };
        Some(Choice {
            token,
            logprob: logprob(token),
            top,
        })
    }

    fn sample(&mut self, logits: &[f32], mx: f32) -> u32 {
        let p = &self.params;
        // Candidates sorted by logit, best first.
        let mut cand: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_finite())
            .map(|(t, &l)| (t as u32, l))
            .collect();
        if p.top_k > 0 && p.top_k < cand.len() {
            cand.select_nth_unstable_by(p.top_k - 1, |a, b| b.1.total_cmp(&a.1));
            cand.truncate(p.top_k);
        }
        cand.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut probs: Vec<f32> = cand.iter().map(|&(_, l)| (l - mx).exp()).collect();
        let sum: f32 = probs.iter().sum();
        for q in &mut probs {
            *q /= sum;
        }
        if p.top_p < 1.0 {
            let mut acc = 0.0;
            let mut keep = probs.len();
            for (i, &q) in probs.iter().enumerate() {
                acc += q;
                if acc >= p.top_p {
                    keep = i + 1;
                    break;
                }
            }
            cand.truncate(keep);
            probs.truncate(keep);
        }
        if p.min_p > 0.0 && !probs.is_empty() {
            let cut = probs[0] * p.min_p;
            let keep = probs.iter().take_while(|&&q| q >= cut).count().max(1);
            cand.truncate(keep);
        }
        // Temperature on the survivors.
        let t = p.temperature;
        let best = cand[0].1;
        let w: Vec<f32> = cand.iter().map(|&(_, l)| ((l - best) / t).exp()).collect();
        let total: f32 = w.iter().sum();
        let mut r = self.uniform() * total;
        for (i, &wi) in w.iter().enumerate() {
            r -= wi;
            if r <= 0.0 {
                return cand[i].0;
            }
        }
        cand[cand.len() - 1].0
    }
}

/// Index of the largest logit (lowest id on ties).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        vec![1.0, 3.0, 2.0, -1.0, 0.5, 2.9]
    }

    #[test]
    fn greedy_and_logprobs() {
        let mut s = Sampler::new(SamplingParams::greedy());
        let c = s.pick(&logits(), false, 3).unwrap();
        assert_eq!(c.token, 1);
        assert_eq!(c.top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 5, 2]);
        let total: f32 = logits().iter().map(|&l| (l - 3.0).exp()).sum();
        assert!((c.logprob - (1.0 / total).ln()).abs() < 1e-6);
    }

    #[test]
    fn seeded_sampling_is_reproducible_and_respects_truncation() {
        let p = SamplingParams {
            temperature: 1.0,
            top_k: 2,
            seed: Some(42),
            ..Default::default()
        };
        let run = |p: &SamplingParams| {
            let mut s = Sampler::new(p.clone());
            (0..200)
                .map(|_| s.pick(&logits(), false, 0).unwrap().token)
                .collect::<Vec<_>>()
        };
        let a = run(&p);
        assert_eq!(a, run(&p));
        assert!(
            a.iter().all(|&t| t == 1 || t == 5),
            "top_k=2 admits only tokens 1 and 5"
        );
        assert!(a.contains(&1) && a.contains(&5));
        let p2 = SamplingParams {
            temperature: 1.0,
            top_p: 0.01,
            seed: Some(1),
            ..Default::default()
        };
        assert!(run(&p2).iter().all(|&t| t == 1));
        let p3 = SamplingParams {
            temperature: 1.0,
            min_p: 0.5,
            seed: Some(3),
            ..Default::default()
        };
        assert!(run(&p3).iter().all(|&t| [1, 5, 2].contains(&t)));
    }

    #[test]
    fn penalties_and_bias() {
        let mut s = Sampler::new(SamplingParams {
            presence_penalty: 1.0,
            frequency_penalty: 0.5,
            repetition_penalty: 2.0,
            logit_bias: [(3u32, 10.0f32)].into_iter().collect(),
            ..SamplingParams::greedy()
        });
        s.observe(1);
        s.observe(1);
        let mut l = logits();
        s.adjust(&mut l);
        assert_eq!(l[1], 3.0 / 2.0 - 1.0 - 1.0);
        assert_eq!(l[3], 9.0);
        assert_eq!(s.pick(&l, false, 0).unwrap().token, 3);
        let mut masked = vec![f32::NEG_INFINITY; 4];
        assert!(s.pick(&masked, false, 0).is_none());
        masked[2] = 0.0;
        assert_eq!(s.pick(&masked, false, 0).unwrap().token, 2);
    }

    #[test]
    fn validation_names_the_field() {
        let p = SamplingParams {
            top_p: 0.0,
            ..Default::default()
        };
        assert!(p.validate().unwrap_err().contains("top_p"));
    }
}
