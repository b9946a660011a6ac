//! The model configuration, read once from GGUF metadata into typed values.
//!
//! Nothing here is hard-coded to Flash sizes: tiny test models, Flash and
//! V4-Pro shapes all load through the same keys (llama.cpp's `deepseek4.*`
//! names, see ds4-reference.md §4.6 and llama.cpp `src/models/deepseek4.cpp`).
//! Every required key that is missing or ill-typed is an error naming the key.
//! The two YaRN beta keys are the only defaults, and the defaults used are
//! recorded in [`ModelConfig::defaulted`] so `dsv4 inspect` can show them.

use dsv4_gguf::{GgufFile, Metadata};

use crate::error::{ModelError, Result};

/// The attention flavour of a layer (model-spec §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerKind {
    /// Sliding-window attention only.
    Swa,
    /// Compressed sparse attention: ratio-4 overlapping compressor plus the lightning indexer.
    Csa,
    /// Heavily compressed attention: one compressed row per `ratio` tokens, all attended.
    Hca,
}

impl LayerKind {
    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            LayerKind::Swa => "SWA",
            LayerKind::Csa => "CSA",
            LayerKind::Hca => "HCA",
        }
    }
}

/// Per-layer configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerConfig {
    /// Attention flavour.
    pub kind: LayerKind,
    /// Compression ratio (0 for SWA, 4 for CSA).
    pub ratio: usize,
    /// Expert selection by token-id hash table (the first `hash_layer_count` layers).
    pub hash_routed: bool,
    /// SwiGLU clamp on routed experts.
    pub clamp_exp: f32,
    /// SwiGLU clamp on the shared expert.
    pub clamp_shexp: f32,
}

impl LayerConfig {
    /// Width multiplier of the compressor projection (2 for the overlapping CSA lanes).
    pub fn compressor_width(&self) -> usize {
        if self.kind == LayerKind::Csa { 2 } else { 1 }
    }
}

/// YaRN parameters for the compressed layers' RoPE (model-spec §3.3).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Yarn {
    /// Scaling factor s.
    pub factor: f64,
    /// Original context length L₀.
    pub original_context: f64,
    /// β_fast.
    pub beta_fast: f64,
    /// β_slow.
    pub beta_slow: f64,
}

/// The whole model configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Vocabulary size (embedding rows).
    pub n_vocab: usize,
    /// Hidden size D.
    pub n_embd: usize,
    /// Number of trunk layers (MTP blocks excluded).
    pub n_layer: usize,
    /// Trained context length.
    pub context_length: usize,
    /// Query heads.
    pub n_head: usize,
    /// Head dim (K = V).
    pub head_dim: usize,
    /// RoPE dims at the end of each head.
    pub rope_dim: usize,
    /// Query low rank.
    pub q_lora_rank: usize,
    /// Output projection groups.
    pub o_groups: usize,
    /// Output group rank.
    pub o_lora_rank: usize,
    /// Sliding window W (raw rows attended, the current token included).
    pub window: usize,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// RoPE base of sliding-only layers.
    pub rope_base: f64,
    /// RoPE base of compressed layers.
    pub compress_rope_base: f64,
    /// YaRN on compressed layers.
    pub yarn: Yarn,
    /// Indexer heads.
    pub index_n_head: usize,
    /// Indexer head dim.
    pub index_head_dim: usize,
    /// Indexer top-k.
    pub index_topk: usize,
    /// Routed experts.
    pub n_expert: usize,
    /// Experts per token.
    pub n_expert_used: usize,
    /// Expert FFN width.
    pub n_ff_exp: usize,
    /// Shared experts.
    pub n_shared: usize,
    /// Routed weight scale.
    pub expert_weights_scale: f32,
    /// Normalise selected weights.
    pub expert_weights_norm: bool,
    /// HC streams.
    pub hc_mult: usize,
    /// Sinkhorn iterations.
    pub hc_sinkhorn_iters: usize,
    /// HC epsilon.
    pub hc_eps: f32,
    /// Per-layer settings.
    pub layers: Vec<LayerConfig>,
    /// MTP blocks present after the trunk layers.
    pub n_nextn: usize,
    /// Keys that were absent and took a documented default.
    pub defaulted: Vec<String>,
}

/// The GGUF architecture name.
pub const ARCH: &str = "deepseek4";
/// llama.cpp's `LLAMA_EXPERT_GATING_FUNC_TYPE_SQRT_SOFTPLUS`.
pub const GATING_SQRT_SOFTPLUS: u32 = 4;

struct Keys<'a> {
    md: &'a Metadata,
    file: &'a str,
}

impl Keys<'_> {
    fn err(&self, key: &str, reason: impl Into<String>) -> ModelError {
        ModelError::Metadata {
            file: self.file.into(),
            key: key.into(),
            reason: reason.into(),
        }
    }
    fn full(k: &str) -> String {
        format!("{ARCH}.{k}")
    }
    fn usize(&self, k: &str) -> Result<usize> {
        let key = Self::full(k);
        let v = self
            .md
            .u64(&key)
            .map_err(|e| self.err(&key, e.to_string()))?;
        usize::try_from(v).map_err(|_| self.err(&key, "value too large"))
    }
    fn opt_usize(&self, k: &str) -> Result<Option<usize>> {
        if self.md.get(&Self::full(k)).is_none() {
            Ok(None)
        } else {
            self.usize(k).map(Some)
        }
    }
    fn f64(&self, k: &str) -> Result<f64> {
        let key = Self::full(k);
        self.md.f64(&key).map_err(|e| self.err(&key, e.to_string()))
    }
    fn opt_f64(&self, k: &str) -> Result<Option<f64>> {
        if self.md.get(&Self::full(k)).is_none() {
            Ok(None)
        } else {
            self.f64(k).map(Some)
        }
    }
    fn bool(&self, k: &str) -> Result<bool> {
        let key = Self::full(k);
        match self.md.get(&key) {
            Some(v) if v.as_i128().is_some() => Ok(v.as_i128() != Some(0)),
            _ => self
                .md
                .bool(&key)
                .map_err(|e| self.err(&key, e.to_string())),
        }
    }
    /// A per-layer value given as an array, or a scalar applying to every layer.
    fn per_layer_f64(&self, k: &str, n: usize) -> Result<Option<Vec<f64>>> {
        let key = Self::full(k);
        match self.md.get(&key) {
            None => Ok(None),
            Some(v) if v.as_f64().is_some() => Ok(Some(vec![v.as_f64().unwrap_or(0.0); n])),
            Some(_) => {
                let vals = self
                    .md
                    .floats(&key)
                    .map_err(|e| self.err(&key, e.to_string()))?;
                if vals.len() < n {
                    return Err(self.err(&key, format!("{} entries for {n} layers", vals.len())));
                }
                Ok(Some(vals))
            }
        }
    }
}

impl ModelConfig {
    /// Reads and validates the configuration of an opened GGUF file.
    pub fn from_gguf(file: &GgufFile) -> Result<ModelConfig> {
        let origin = file.origin();
        let md = file.metadata();
        let arch = md.string("general.architecture").unwrap_or("");
        if arch != ARCH {
            return Err(ModelError::WrongArchitecture {
                file: origin.into(),
                found: arch.into(),
            });
        }
        let k = Keys { md, file: origin };
        let n_layer_all = k.usize("block_count")?;
        let n_nextn = k.opt_usize("nextn_predict_layers")?.unwrap_or(0);
        let n_layer = n_layer_all.checked_sub(n_nextn).ok_or_else(|| {
            k.err(
                &Keys::full("nextn_predict_layers"),
                "larger than block_count",
            )
        })?;
        let n_vocab = match file.tensor_info("token_embd.weight") {
            Some(t) if t.dims.len() == 2 => t.dims[1] as usize,
            _ => k.usize("vocab_size")?,
        };
        let mut defaulted = Vec::new();
        let beta_fast = k
            .opt_f64("rope.scaling.yarn_beta_fast")?
            .unwrap_or_else(|| {
                defaulted.push(format!(
                    "{ARCH}.rope.scaling.yarn_beta_fast = 32 (llama.cpp default)"
                ));
                32.0
            });
        let beta_slow = k
            .opt_f64("rope.scaling.yarn_beta_slow")?
            .unwrap_or_else(|| {
                defaulted.push(format!(
                    "{ARCH}.rope.scaling.yarn_beta_slow = 1 (llama.cpp default)"
                ));
                1.0
            });
        if let Some(g) = k.opt_usize("expert_gating_func")?
            && g != GATING_SQRT_SOFTPLUS as usize
        {
            return Err(k.err(
                &Keys::full("expert_gating_func"),
                format!("{g}; DeepSeek V4 routes with sqrt-softplus (id {GATING_SQRT_SOFTPLUS})"),
            ));
        }
        let ratios_key = Keys::full("attention.compress_ratios");
        let ratios = md
            .ints(&ratios_key)
            .map_err(|e| k.err(&ratios_key, e.to_string()))?;
        if ratios.len() < n_layer_all {
            return Err(k.err(
                &ratios_key,
                format!("{} entries for {n_layer_all} blocks", ratios.len()),
            ));
        }
        let clamp_exp = k
            .per_layer_f64("swiglu_clamp_exp", n_layer_all)?
            .ok_or_else(|| k.err(&Keys::full("swiglu_clamp_exp"), "missing"))?;
        let clamp_shexp = k
            .per_layer_f64("swiglu_clamp_shexp", n_layer_all)?
            .unwrap_or_else(|| clamp_exp.clone());
        let hash_layers = k.usize("hash_layer_count")?;
        let mut layers = Vec::with_capacity(n_layer);
        for (l, &r) in ratios.iter().take(n_layer).enumerate() {
            let (kind, ratio) = match r {
                0 => (LayerKind::Swa, 0),
                4 => (LayerKind::Csa, 4),
                r if r > 0 => (LayerKind::Hca, r as usize),
                r => return Err(k.err(&ratios_key, format!("layer {l} has ratio {r}"))),
            };
            layers.push(LayerConfig {
                kind,
                ratio,
                hash_routed: l < hash_layers,
                clamp_exp: clamp_exp[l] as f32,
                clamp_shexp: clamp_shexp[l] as f32,
            });
        }
        let cfg = ModelConfig {
            n_vocab,
            n_embd: k.usize("embedding_length")?,
            n_layer,
            context_length: k.usize("context_length")?,
            n_head: k.usize("attention.head_count")?,
            head_dim: k.usize("attention.key_length")?,
            rope_dim: k.usize("rope.dimension_count")?,
            q_lora_rank: k.usize("attention.q_lora_rank")?,
            o_groups: k.usize("attention.output_group_count")?,
            o_lora_rank: k.usize("attention.output_lora_rank")?,
            window: k.usize("attention.sliding_window")?,
            rms_eps: k.f64("attention.layer_norm_rms_epsilon")? as f32,
            rope_base: k.f64("rope.freq_base")?,
            compress_rope_base: k.f64("attention.compress_rope_freq_base")?,
            yarn: Yarn {
                factor: k.f64("rope.scaling.factor")?,
                original_context: k.f64("rope.scaling.original_context_length")?,
                beta_fast,
                beta_slow,
            },
            index_n_head: k.usize("attention.indexer.head_count")?,
            index_head_dim: k.usize("attention.indexer.key_length")?,
            index_topk: k.usize("attention.indexer.top_k")?,
            n_expert: k.usize("expert_count")?,
            n_expert_used: k.usize("expert_used_count")?,
            n_ff_exp: k.usize("expert_feed_forward_length")?,
            n_shared: k.usize("expert_shared_count")?,
            expert_weights_scale: k.f64("expert_weights_scale")? as f32,
            expert_weights_norm: k.bool("expert_weights_norm")?,
            hc_mult: k.usize("hyper_connection.count")?,
            hc_sinkhorn_iters: k.usize("hyper_connection.sinkhorn_iterations")?,
            hc_eps: k.f64("hyper_connection.epsilon")? as f32,
            layers,
            n_nextn,
            defaulted,
        };
        cfg.check_head_kv(&k)?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    fn check_head_kv(&self, k: &Keys<'_>) -> Result<()> {
        if let Some(kv) = k.opt_usize("attention.head_count_kv")?
            && kv != 1
        {
            return Err(k.err(
                &Keys::full("attention.head_count_kv"),
                format!("{kv}; V4 has one shared K=V head"),
            ));
        }
        if let Some(v) = k.opt_usize("attention.value_length")?
            && v != self.head_dim
        {
            return Err(k.err(
                &Keys::full("attention.value_length"),
                "must equal key_length (K = V)",
            ));
        }
        Ok(())
    }

    /// Checks the relations the forward pass relies on.
    pub fn validate(&self, file: &str) -> Result<()> {
        let bad = |reason: String| {
            Err(ModelError::Config {
                file: file.into(),
                reason,
            })
        };
        if self.n_layer == 0 || self.n_embd == 0 || self.n_head == 0 || self.n_vocab == 0 {
            return bad("zero layers, width, heads or vocabulary".into());
        }
        if !self.rope_dim.is_multiple_of(2) || self.rope_dim > self.head_dim {
            return bad(format!(
                "rope dims {} must be even and ≤ head dim {}",
                self.rope_dim, self.head_dim
            ));
        }
        if self.rope_dim > self.index_head_dim
            && self.layers.iter().any(|l| l.kind == LayerKind::Csa)
        {
            return bad(format!(
                "rope dims {} exceed the indexer head dim {}",
                self.rope_dim, self.index_head_dim
            ));
        }
        if self.o_groups == 0 || !self.n_head.is_multiple_of(self.o_groups) {
            return bad(format!(
                "{} heads are not divisible into {} output groups",
                self.n_head, self.o_groups
            ));
        }
        if self.n_expert_used == 0 || self.n_expert_used > self.n_expert {
            return bad(format!(
                "{} experts used of {}",
                self.n_expert_used, self.n_expert
            ));
        }
        if self.hc_mult == 0 || self.hc_sinkhorn_iters == 0 {
            return bad("hyper-connection count and Sinkhorn iterations must be positive".into());
        }
        if self.window == 0 {
            return bad("sliding window must be positive".into());
        }
        if self.n_shared > 1 {
            return bad(format!(
                "{} shared experts; V4 has at most one",
                self.n_shared
            ));
        }
        Ok(())
    }

    /// Number of values per token in the HC state (`hc_mult · n_embd`).
    pub fn hc_dim(&self) -> usize {
        self.hc_mult * self.n_embd
    }

    /// Outputs of an HC mixer: `(2 + hc) · hc`.
    pub fn hc_mix_dim(&self) -> usize {
        (2 + self.hc_mult) * self.hc_mult
    }

    /// A human summary like `43 layers (2 SWA, 21 CSA, 20 HCA), D=4096, 256 experts top-6`.
    pub fn summary(&self) -> String {
        let count = |k: LayerKind| self.layers.iter().filter(|l| l.kind == k).count();
        format!(
            "{} layers ({} SWA, {} CSA, {} HCA), D={}, {} heads × {}, {} experts top-{}, vocab {}{}",
            self.n_layer,
            count(LayerKind::Swa),
            count(LayerKind::Csa),
            count(LayerKind::Hca),
            self.n_embd,
            self.n_head,
            self.head_dim,
            self.n_expert,
            self.n_expert_used,
            self.n_vocab,
            if self.n_nextn > 0 {
                format!(", {} MTP block(s)", self.n_nextn)
            } else {
                String::new()
            }
        )
    }
}
