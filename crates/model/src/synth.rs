//! Synthetic random-weight models with the real architecture.
//!
//! [`SynthSpec`] describes a `deepseek4` model (any dimensions and layer
//! schedule) and a quantization mix; [`write_gguf`] streams it into a GGUF with
//! llama.cpp's tensor names and metadata keys, filled with deterministic
//! seeded random weights of sane magnitudes (so activations stay in range and
//! the SwiGLU clamp and routing behave like a real model's). Presets: `tiny`
//! (tests and `--demo`), `slice` (Flash dimensions, layers SWA/CSA/HCA/CSA,
//! fewer experts: the benchmark model) and `flash` (the full shape, for
//! memory planning). Tensors are produced row-block by row-block while the file
//! is written, so multi-GB slices never sit in memory.

use std::io::Write;
use std::path::Path;

use dsv4_gguf::{Array, GgmlType, GgufWriter, Value};
use dsv4_quant::blocks::{
    float::{quantize_row_bf16, quantize_row_f16},
    iq2xxs::quantize_iq2xxs_block,
    mxfp4::quantize_row_mxfp4,
    q2_k::quantize_row_q2k,
    q4_0::quantize_row_q4_0,
    q4_k::quantize_row_q4k,
    q8_0::quantize_row_q8_0,
};

use crate::config::{ARCH, GATING_SQRT_SOFTPLUS, LayerKind, ModelConfig};
use crate::error::{ModelError, Result};
use crate::tensors::{Class, Role};

/// Which storage type each tensor family gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantMix {
    /// Routed expert gate/up.
    pub expert_gate_up: GgmlType,
    /// Routed expert down.
    pub expert_down: GgmlType,
    /// Attention projections, shared expert, output head.
    pub dense: GgmlType,
    /// Compressors, indexer, router, HC mixers.
    pub small_matrices: GgmlType,
    /// Token embedding.
    pub embedding: GgmlType,
}

impl QuantMix {
    /// Everything in one type (norms and small vectors stay F32).
    pub fn uniform(ty: GgmlType) -> QuantMix {
        QuantMix {
            expert_gate_up: ty,
            expert_down: ty,
            dense: ty,
            small_matrices: ty,
            embedding: ty,
        }
    }

    /// Parses a mix name: `f32`, `f16`, `bf16`, `q8_0`, `q2` (ds4's q2 file:
    /// IQ2_XXS gate/up, Q2_K down, Q8_0 dense, F16 small matrices and
    /// embedding), `q4` (Q4_K experts, the rest as q2), `mxfp4` (MXFP4 experts).
    pub fn parse(name: &str) -> Option<QuantMix> {
        let ds4 = |gu, d| QuantMix {
            expert_gate_up: gu,
            expert_down: d,
            dense: GgmlType::Q8_0,
            small_matrices: GgmlType::F16,
            embedding: GgmlType::F16,
        };
        Some(match name.to_ascii_lowercase().as_str() {
            "f32" => QuantMix::uniform(GgmlType::F32),
            "f16" => QuantMix::uniform(GgmlType::F16),
            "bf16" => QuantMix::uniform(GgmlType::BF16),
            "q8_0" | "q8" => QuantMix::uniform(GgmlType::Q8_0),
            "q2" => ds4(GgmlType::IQ2_XXS, GgmlType::Q2_K),
            "q4" => ds4(GgmlType::Q4_K, GgmlType::Q4_K),
            "mxfp4" => ds4(GgmlType::MXFP4, GgmlType::MXFP4),
            _ => return None,
        })
    }

    /// The accepted mix names.
    pub const NAMES: &'static [&'static str] = &["f32", "f16", "bf16", "q8_0", "q2", "q4", "mxfp4"];
}

/// Tokenizer metadata to embed (`tokenizer.ggml.*`).
#[derive(Debug, Clone, Default)]
pub struct VocabMeta {
    /// Token strings (byte-level BPE pieces).
    pub tokens: Vec<String>,
    /// Merges, `"a b"`.
    pub merges: Vec<String>,
    /// Token types (1 normal, 3 control, …).
    pub token_types: Vec<i32>,
    /// BOS id.
    pub bos: u32,
    /// EOS id.
    pub eos: u32,
}

/// A synthetic model description.
#[derive(Debug, Clone)]
pub struct SynthSpec {
    /// The configuration (only structural fields matter; `defaulted` is ignored).
    pub cfg: ModelConfig,
    /// Storage types.
    pub mix: QuantMix,
    /// Random seed.
    pub seed: u64,
    /// Model name written to `general.name`.
    pub name: String,
}

/// Presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// A few-MB model for tests and the demo.
    Tiny,
    /// Flash dimensions, 4 layers (SWA, CSA, HCA, CSA), few experts.
    Slice,
    /// The full Flash shape.
    Flash,
}

impl Preset {
    /// Parses `tiny|slice|flash`.
    pub fn parse(s: &str) -> Option<Preset> {
        match s {
            "tiny" => Some(Preset::Tiny),
            "slice" => Some(Preset::Slice),
            "flash" => Some(Preset::Flash),
            _ => None,
        }
    }
}

fn flash_config(n_vocab: usize) -> ModelConfig {
    use crate::config::{LayerConfig, Yarn};
    let layers = (0..43)
        .map(|l| {
            let (kind, ratio) = match l {
                0 | 1 => (LayerKind::Swa, 0),
                l if l % 2 == 0 => (LayerKind::Csa, 4),
                _ => (LayerKind::Hca, 128),
            };
            LayerConfig {
                kind,
                ratio,
                hash_routed: l < 3,
                clamp_exp: 10.0,
                clamp_shexp: 10.0,
            }
        })
        .collect();
    ModelConfig {
        n_vocab,
        n_embd: 4096,
        n_layer: 43,
        context_length: 1_048_576,
        n_head: 64,
        head_dim: 512,
        rope_dim: 64,
        q_lora_rank: 1024,
        o_groups: 8,
        o_lora_rank: 1024,
        window: 128,
        rms_eps: 1e-6,
        rope_base: 10000.0,
        compress_rope_base: 160000.0,
        yarn: Yarn {
            factor: 16.0,
            original_context: 65536.0,
            beta_fast: 32.0,
            beta_slow: 1.0,
        },
        index_n_head: 64,
        index_head_dim: 128,
        index_topk: 512,
        n_expert: 256,
        n_expert_used: 6,
        n_ff_exp: 2048,
        n_shared: 1,
        expert_weights_scale: 1.5,
        expert_weights_norm: true,
        hc_mult: 4,
        hc_sinkhorn_iters: 20,
        hc_eps: 1e-6,
        layers,
        n_nextn: 0,
        defaulted: Vec::new(),
    }
}

/// Builds a preset's configuration. `layers`/`experts` override the preset's.
pub fn preset_config(
    p: Preset,
    n_vocab: usize,
    layers: Option<usize>,
    experts: Option<usize>,
) -> ModelConfig {
    let mut c = flash_config(n_vocab);
    match p {
        Preset::Flash => {}
        Preset::Slice => {
            // [SWA, CSA, HCA, CSA]; the first three hash-routed as in Flash.
            c.layers = vec![c.layers[0], c.layers[2], c.layers[3], c.layers[4]];
            c.layers[2].hash_routed = true;
            c.n_expert = 32;
        }
        Preset::Tiny => {
            c.n_embd = 256;
            c.n_head = 4;
            c.head_dim = 128;
            c.rope_dim = 64;
            c.q_lora_rank = 256;
            c.o_groups = 2;
            c.o_lora_rank = 256;
            c.window = 32;
            c.index_n_head = 8;
            c.index_head_dim = 128;
            c.index_topk = 8;
            c.n_expert = 8;
            c.n_expert_used = 2;
            c.n_ff_exp = 256;
            c.context_length = 65536;
            c.layers = vec![c.layers[0], c.layers[2], c.layers[3], c.layers[4]];
            c.layers[2].hash_routed = false;
            c.layers[1].hash_routed = true;
        }
    }
    if let Some(n) = layers {
        // Repeat the [SWA, CSA, HCA, CSA…] pattern: SWA first, then alternate.
        let base = c.layers.clone();
        c.layers = (0..n)
            .map(|l| {
                if l < base.len() {
                    base[l]
                } else {
                    base[1 + (l - 1) % (base.len() - 1).max(1)]
                }
            })
            .collect();
        for (l, lc) in c.layers.iter_mut().enumerate() {
            lc.hash_routed = l < 3;
        }
    }
    if let Some(e) = experts {
        c.n_expert = e.max(c.n_expert_used);
    }
    c.n_layer = c.layers.len();
    c
}

/// Deterministic generator (splitmix64) with Gaussian samples.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f32::consts::PI * v).cos()
    }
}

fn name_seed(seed: u64, name: &str) -> u64 {
    name.bytes().fold(seed ^ 0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
    })
}

/// Quantizes one row of f32 into `ty` bytes.
fn quantize_row(ty: GgmlType, x: &[f32], out: &mut Vec<u8>) {
    fn blocks<B: bytemuck::Pod + bytemuck::Zeroable>(
        n: usize,
        f: impl FnOnce(&mut [B]),
        out: &mut Vec<u8>,
    ) {
        let mut v = vec![B::zeroed(); n];
        f(&mut v);
        out.extend_from_slice(bytemuck::cast_slice(&v));
    }
    let n = x.len();
    match ty {
        GgmlType::F32 => out.extend_from_slice(bytemuck::cast_slice(x)),
        GgmlType::F16 => blocks(n, |b| quantize_row_f16(x, b), out),
        GgmlType::BF16 => blocks(n, |b| quantize_row_bf16(x, b), out),
        GgmlType::Q8_0 => blocks(n / 32, |b| quantize_row_q8_0(x, b), out),
        GgmlType::Q4_0 => blocks(n / 32, |b| quantize_row_q4_0(x, b), out),
        GgmlType::Q4_K => blocks(n / 256, |b| quantize_row_q4k(x, b), out),
        GgmlType::Q2_K => blocks(n / 256, |b| quantize_row_q2k(x, b), out),
        GgmlType::MXFP4 => blocks(n / 32, |b| quantize_row_mxfp4(x, b), out),
        GgmlType::IQ2_XXS => {
            for c in x.chunks(256) {
                out.extend_from_slice(bytemuck::bytes_of(&quantize_iq2xxs_block(c)));
            }
        }
        _ => {}
    }
}

/// The value distribution of a tensor role: `(std, mean)`.
fn init_of(role: Role, k: usize) -> (f32, f32) {
    let fan = (k.max(1) as f32).sqrt();
    match role {
        Role::TokenEmbd => (1.0, 0.0),
        Role::OutputNorm | Role::AttnNorm | Role::FfnNorm | Role::AttnQANorm | Role::AttnKvNorm => {
            (0.1, 1.0)
        }
        Role::CompNorm | Role::IdxCompNorm => (0.1, 1.0),
        Role::HcHeadScale | Role::HcAttnScale | Role::HcFfnScale => (0.1, 1.0),
        Role::HcHeadBase | Role::HcAttnBase | Role::HcFfnBase => (0.5, 0.0),
        Role::AttnSinks => (1.0, 0.0),
        Role::CompApe | Role::IdxCompApe => (0.5, 0.0),
        Role::FfnExpProbsB => (0.1, 0.0),
        Role::HcHeadFn | Role::HcAttnFn | Role::HcFfnFn => (0.5 / fan, 0.0),
        // Large enough that some gate/up pre-activations pass the clamp.
        Role::FfnGateExps | Role::FfnUpExps | Role::FfnGateShexp | Role::FfnUpShexp => {
            (3.0 / fan, 0.0)
        }
        Role::FfnGateInp => (2.0 / fan, 0.0),
        _ => (1.0 / fan, 0.0),
    }
}

fn role_type(role: Role, mix: &QuantMix) -> GgmlType {
    match role {
        Role::FfnGateExps | Role::FfnUpExps => mix.expert_gate_up,
        Role::FfnDownExps => mix.expert_down,
        Role::TokenEmbd => mix.embedding,
        Role::AttnQA
        | Role::AttnQB
        | Role::AttnKv
        | Role::AttnOutA
        | Role::AttnOutB
        | Role::Output => mix.dense,
        Role::FfnGateShexp | Role::FfnUpShexp | Role::FfnDownShexp => mix.dense,
        r if r.class() == Class::Matrix => mix.small_matrices,
        Role::FfnTid2Eid => GgmlType::I32,
        _ => GgmlType::F32,
    }
}

/// The type actually used: falls back to F16/F32 when the row length is not a
/// whole number of blocks (tiny dimensions with block-256 types).
fn fit_type(ty: GgmlType, k: usize) -> GgmlType {
    if (k as u64).is_multiple_of(ty.block_elems()) {
        ty
    } else if k.is_multiple_of(32)
        && ty != GgmlType::F32
        && ty != GgmlType::F16
        && ty != GgmlType::BF16
    {
        GgmlType::Q8_0
    } else {
        GgmlType::F32
    }
}

fn write_metadata(w: &mut GgufWriter, spec: &SynthSpec, vocab: &VocabMeta) {
    let c = &spec.cfg;
    let k = |s: &str| format!("{ARCH}.{s}");
    w.set_str("general.architecture", ARCH);
    w.set_str("general.name", spec.name.clone());
    w.set_str(
        "general.description",
        "dsv4 synthetic random-weight model (not a trained model)",
    );
    let u = |w: &mut GgufWriter, key: &str, v: usize| w.set_u32(k(key), v as u32);
    u(w, "block_count", c.n_layer);
    u(w, "context_length", c.context_length);
    u(w, "embedding_length", c.n_embd);
    u(w, "embedding_length_out", c.hc_dim());
    u(w, "vocab_size", c.n_vocab);
    u(w, "attention.head_count", c.n_head);
    u(w, "attention.head_count_kv", 1);
    u(w, "attention.key_length", c.head_dim);
    u(w, "attention.value_length", c.head_dim);
    u(w, "attention.q_lora_rank", c.q_lora_rank);
    u(w, "attention.output_group_count", c.o_groups);
    u(w, "attention.output_lora_rank", c.o_lora_rank);
    u(w, "attention.sliding_window", c.window);
    w.set_f32(k("attention.layer_norm_rms_epsilon"), c.rms_eps);
    w.set_array(
        k("attention.compress_ratios"),
        Array::i32s(c.layers.iter().map(|l| l.ratio as i32)),
    );
    w.set_f32(
        k("attention.compress_rope_freq_base"),
        c.compress_rope_base as f32,
    );
    u(w, "attention.indexer.head_count", c.index_n_head);
    u(w, "attention.indexer.key_length", c.index_head_dim);
    u(w, "attention.indexer.top_k", c.index_topk);
    u(w, "expert_count", c.n_expert);
    u(w, "expert_used_count", c.n_expert_used);
    u(w, "expert_feed_forward_length", c.n_ff_exp);
    u(w, "expert_shared_count", c.n_shared);
    u(w, "expert_group_count", 0);
    u(w, "expert_group_used_count", 0);
    w.set_f32(k("expert_weights_scale"), c.expert_weights_scale);
    w.set_bool(k("expert_weights_norm"), c.expert_weights_norm);
    w.set_u32(k("expert_gating_func"), GATING_SQRT_SOFTPLUS);
    u(
        w,
        "hash_layer_count",
        c.layers.iter().take_while(|l| l.hash_routed).count(),
    );
    w.set_array(
        k("swiglu_clamp_exp"),
        Array::f32s(c.layers.iter().map(|l| l.clamp_exp)),
    );
    w.set_array(
        k("swiglu_clamp_shexp"),
        Array::f32s(c.layers.iter().map(|l| l.clamp_shexp)),
    );
    u(w, "rope.dimension_count", c.rope_dim);
    w.set_f32(k("rope.freq_base"), c.rope_base as f32);
    w.set_str(k("rope.scaling.type"), "yarn");
    w.set_f32(k("rope.scaling.factor"), c.yarn.factor as f32);
    u(
        w,
        "rope.scaling.original_context_length",
        c.yarn.original_context as usize,
    );
    w.set_f32(k("rope.scaling.yarn_beta_fast"), c.yarn.beta_fast as f32);
    w.set_f32(k("rope.scaling.yarn_beta_slow"), c.yarn.beta_slow as f32);
    u(w, "hyper_connection.count", c.hc_mult);
    u(
        w,
        "hyper_connection.sinkhorn_iterations",
        c.hc_sinkhorn_iters,
    );
    w.set_f32(k("hyper_connection.epsilon"), c.hc_eps);
    if !vocab.tokens.is_empty() {
        w.set_str("tokenizer.ggml.model", "gpt2");
        w.set_str("tokenizer.ggml.pre", "joyai-llm");
        w.set_array(
            "tokenizer.ggml.tokens",
            Array::strings(vocab.tokens.iter().cloned()),
        );
        w.set_array(
            "tokenizer.ggml.token_type",
            Array::i32s(vocab.token_types.iter().copied()),
        );
        w.set_array(
            "tokenizer.ggml.merges",
            Array::strings(vocab.merges.iter().cloned()),
        );
        w.set_u32("tokenizer.ggml.bos_token_id", vocab.bos);
        w.set_u32("tokenizer.ggml.eos_token_id", vocab.eos);
        w.set_u32("tokenizer.ggml.padding_token_id", vocab.eos);
        w.set("tokenizer.ggml.add_bos_token", Value::Bool(false));
        w.set("tokenizer.ggml.add_eos_token", Value::Bool(false));
    }
}

/// Adds one tensor of a role, generated lazily while the file is written.
fn add_role(w: &mut GgufWriter, spec: &SynthSpec, role: Role, layer: usize) -> Result<()> {
    let cfg = &spec.cfg;
    let name = role.name(layer);
    let dims = role.shape(cfg, layer);
    let k = dims[0] as usize;
    let rows: usize = dims.iter().skip(1).product::<u64>() as usize;
    let err = |e: dsv4_gguf::GgufError| ModelError::Gguf(e);
    if role == Role::FfnTid2Eid {
        // Distinct random experts per token.
        let mut rng = Rng(name_seed(spec.seed, &name));
        let (ku, e) = (cfg.n_expert_used, cfg.n_expert);
        let mut table = Vec::with_capacity(rows * ku);
        for _ in 0..rows {
            let mut chosen: Vec<i32> = Vec::with_capacity(ku);
            while chosen.len() < ku {
                let x = (rng.next_u64() % e as u64) as i32;
                if !chosen.contains(&x) {
                    chosen.push(x);
                }
            }
            table.extend(chosen);
        }
        return w.add_i32(&name, &dims, &table).map_err(err);
    }
    let ty = fit_type(role_type(role, &spec.mix), k);
    let (std, mean) = init_of(role, k);
    let seed = name_seed(spec.seed, &name);
    let producer = Box::new(move |out: &mut dyn Write| -> std::io::Result<()> {
        use rayon::prelude::*;
        // Rows are generated in parallel blocks; each row has its own seed, so
        // the bytes do not depend on the thread count.
        const BLOCK: usize = 256;
        for r0 in (0..rows).step_by(BLOCK) {
            let r1 = (r0 + BLOCK).min(rows);
            let parts: Vec<Vec<u8>> = (r0..r1)
                .into_par_iter()
                .map(|r| {
                    let mut rng = Rng(seed ^ (r as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93));
                    let row: Vec<f32> = (0..k).map(|_| mean + std * rng.normal()).collect();
                    let mut buf = Vec::new();
                    quantize_row(ty, &row, &mut buf);
                    buf
                })
                .collect();
            for p in parts {
                out.write_all(&p)?;
            }
        }
        Ok(())
    });
    w.add_tensor_stream(&name, &dims, ty, producer).map_err(err)
}

/// Builds the writer for a synthetic model (metadata and lazily generated tensors).
pub fn build_writer(spec: &SynthSpec, vocab: &VocabMeta) -> Result<GgufWriter> {
    spec.cfg.validate("<synth>")?;
    if !vocab.tokens.is_empty() && vocab.tokens.len() != spec.cfg.n_vocab {
        return Err(ModelError::Config {
            file: "<synth>".into(),
            reason: format!(
                "{} tokens for a vocabulary of {}",
                vocab.tokens.len(),
                spec.cfg.n_vocab
            ),
        });
    }
    let mut w = GgufWriter::new();
    write_metadata(&mut w, spec, vocab);
    for role in Role::all() {
        if role.is_global() {
            add_role(&mut w, spec, role, 0)?;
        }
    }
    for l in 0..spec.cfg.n_layer {
        for role in Role::all() {
            if role.applies(&spec.cfg, l) {
                add_role(&mut w, spec, role, l)?;
            }
        }
    }
    Ok(w)
}

/// Writes a synthetic model to `path` atomically; returns the file size.
pub fn write_gguf(spec: &SynthSpec, vocab: &VocabMeta, path: &Path) -> Result<u64> {
    Ok(build_writer(spec, vocab)?.write_to_path(path)?)
}

/// Writes a synthetic model into memory (tests).
pub fn to_bytes(spec: &SynthSpec, vocab: &VocabMeta) -> Result<Vec<u8>> {
    Ok(build_writer(spec, vocab)?.into_bytes()?)
}
