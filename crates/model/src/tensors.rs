//! The typed table of tensor roles: names, expected shapes and accepted types.
//!
//! One table (as llama.cpp's `LLM_TENSOR_*` name table) maps every role of the
//! `deepseek4` GGUF layout to its name pattern, its shape in ggml order as a
//! function of the configuration, and the storage types the engine accepts for
//! it. Binding (in `weights.rs`) and `dsv4 inspect`'s conventions check both
//! walk this table, so they cannot disagree. Names follow llama.cpp
//! `src/llama-arch.cpp` at commit 0c1e57098 and ds4-reference.md §4.7.

use dsv4_gguf::{GgmlType, GgufFile};

use crate::config::{LayerKind, ModelConfig};

/// What the engine does with a tensor, which decides the accepted types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A matrix multiplied by activations through the quantized kernels.
    Matrix,
    /// A stack of expert matrices `[k, rows, n_expert]`.
    Experts,
    /// A small float vector/table loaded into f32 (norms, biases, sinks, HC scales, ape).
    Small,
    /// An integer table (the hash-routing `tid2eid`).
    IntTable,
    /// The token embedding (rows are looked up and dequantized).
    Embedding,
}

/// Types the quantized kernels can multiply.
pub const MATRIX_TYPES: &[GgmlType] = &[
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_K,
    GgmlType::Q6_K,
    GgmlType::Q2_K,
    GgmlType::IQ2_XXS,
    GgmlType::MXFP4,
];
/// Types accepted for small float tensors.
pub const SMALL_TYPES: &[GgmlType] = &[GgmlType::F32, GgmlType::F16, GgmlType::BF16];
/// Types accepted for integer tables.
pub const INT_TYPES: &[GgmlType] = &[GgmlType::I32, GgmlType::I64];

impl Class {
    /// The accepted storage types.
    pub fn accepted(self) -> &'static [GgmlType] {
        match self {
            Class::Matrix | Class::Experts | Class::Embedding => MATRIX_TYPES,
            Class::Small => SMALL_TYPES,
            Class::IntTable => INT_TYPES,
        }
    }
}

/// Which layers carry a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Global,
    Every,
    Compressed,
    Csa,
    Hash,
    NotHash,
}

/// Every tensor role of the trunk model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Role {
    TokenEmbd,
    OutputNorm,
    Output,
    HcHeadFn,
    HcHeadBase,
    HcHeadScale,
    AttnNorm,
    AttnSinks,
    AttnQA,
    AttnQANorm,
    AttnQB,
    AttnKv,
    AttnKvNorm,
    AttnOutA,
    AttnOutB,
    HcAttnFn,
    HcAttnBase,
    HcAttnScale,
    HcFfnFn,
    HcFfnBase,
    HcFfnScale,
    CompKv,
    CompGate,
    CompApe,
    CompNorm,
    IdxProj,
    IdxQB,
    IdxCompKv,
    IdxCompGate,
    IdxCompApe,
    IdxCompNorm,
    FfnGateInp,
    FfnTid2Eid,
    FfnExpProbsB,
    FfnNorm,
    FfnGateExps,
    FfnUpExps,
    FfnDownExps,
    FfnGateShexp,
    FfnUpShexp,
    FfnDownShexp,
}

struct RoleInfo {
    role: Role,
    pattern: &'static str,
    scope: Scope,
    class: Class,
    what: &'static str,
}

const fn r(
    role: Role,
    pattern: &'static str,
    scope: Scope,
    class: Class,
    what: &'static str,
) -> RoleInfo {
    RoleInfo {
        role,
        pattern,
        scope,
        class,
        what,
    }
}

use Class::*;
use Scope::*;

const ROLES: &[RoleInfo] = &[
    r(
        Role::TokenEmbd,
        "token_embd.weight",
        Global,
        Embedding,
        "token embedding",
    ),
    r(
        Role::OutputNorm,
        "output_norm.weight",
        Global,
        Small,
        "final RMSNorm",
    ),
    r(Role::Output, "output.weight", Global, Matrix, "output head"),
    r(
        Role::HcHeadFn,
        "output_hc_fn.weight",
        Global,
        Matrix,
        "HC head mixer",
    ),
    r(
        Role::HcHeadBase,
        "output_hc_base.weight",
        Global,
        Small,
        "HC head bias",
    ),
    r(
        Role::HcHeadScale,
        "output_hc_scale.weight",
        Global,
        Small,
        "HC head scale",
    ),
    r(
        Role::AttnNorm,
        "blk.{}.attn_norm.weight",
        Every,
        Small,
        "attention input RMSNorm",
    ),
    r(
        Role::AttnSinks,
        "blk.{}.attn_sinks.weight",
        Every,
        Small,
        "attention sinks",
    ),
    r(
        Role::AttnQA,
        "blk.{}.attn_q_a.weight",
        Every,
        Matrix,
        "query down-projection",
    ),
    r(
        Role::AttnQANorm,
        "blk.{}.attn_q_a_norm.weight",
        Every,
        Small,
        "query latent RMSNorm",
    ),
    r(
        Role::AttnQB,
        "blk.{}.attn_q_b.weight",
        Every,
        Matrix,
        "query up-projection",
    ),
    r(
        Role::AttnKv,
        "blk.{}.attn_kv.weight",
        Every,
        Matrix,
        "KV projection",
    ),
    r(
        Role::AttnKvNorm,
        "blk.{}.attn_kv_a_norm.weight",
        Every,
        Small,
        "KV RMSNorm",
    ),
    r(
        Role::AttnOutA,
        "blk.{}.attn_output_a.weight",
        Every,
        Matrix,
        "grouped output projection",
    ),
    r(
        Role::AttnOutB,
        "blk.{}.attn_output_b.weight",
        Every,
        Matrix,
        "output mixing projection",
    ),
    r(
        Role::HcAttnFn,
        "blk.{}.hc_attn_fn.weight",
        Every,
        Matrix,
        "attention HC mixer",
    ),
    r(
        Role::HcAttnBase,
        "blk.{}.hc_attn_base.weight",
        Every,
        Small,
        "attention HC bias",
    ),
    r(
        Role::HcAttnScale,
        "blk.{}.hc_attn_scale.weight",
        Every,
        Small,
        "attention HC scales",
    ),
    r(
        Role::HcFfnFn,
        "blk.{}.hc_ffn_fn.weight",
        Every,
        Matrix,
        "FFN HC mixer",
    ),
    r(
        Role::HcFfnBase,
        "blk.{}.hc_ffn_base.weight",
        Every,
        Small,
        "FFN HC bias",
    ),
    r(
        Role::HcFfnScale,
        "blk.{}.hc_ffn_scale.weight",
        Every,
        Small,
        "FFN HC scales",
    ),
    r(
        Role::CompKv,
        "blk.{}.attn_compressor_kv.weight",
        Compressed,
        Matrix,
        "compressor KV projection",
    ),
    r(
        Role::CompGate,
        "blk.{}.attn_compressor_gate.weight",
        Compressed,
        Matrix,
        "compressor score projection",
    ),
    r(
        Role::CompApe,
        "blk.{}.attn_compressor_ape.weight",
        Compressed,
        Small,
        "compressor position bias",
    ),
    r(
        Role::CompNorm,
        "blk.{}.attn_compressor_norm.weight",
        Compressed,
        Small,
        "compressor RMSNorm",
    ),
    r(
        Role::IdxProj,
        "blk.{}.indexer.proj.weight",
        Csa,
        Matrix,
        "indexer head weights",
    ),
    r(
        Role::IdxQB,
        "blk.{}.indexer.attn_q_b.weight",
        Csa,
        Matrix,
        "indexer query projection",
    ),
    r(
        Role::IdxCompKv,
        "blk.{}.indexer_compressor_kv.weight",
        Csa,
        Matrix,
        "indexer compressor KV",
    ),
    r(
        Role::IdxCompGate,
        "blk.{}.indexer_compressor_gate.weight",
        Csa,
        Matrix,
        "indexer compressor score",
    ),
    r(
        Role::IdxCompApe,
        "blk.{}.indexer_compressor_ape.weight",
        Csa,
        Small,
        "indexer compressor position bias",
    ),
    r(
        Role::IdxCompNorm,
        "blk.{}.indexer_compressor_norm.weight",
        Csa,
        Small,
        "indexer compressor RMSNorm",
    ),
    r(
        Role::FfnGateInp,
        "blk.{}.ffn_gate_inp.weight",
        Every,
        Matrix,
        "router",
    ),
    r(
        Role::FfnTid2Eid,
        "blk.{}.ffn_gate_tid2eid.weight",
        Hash,
        IntTable,
        "hash-routing table",
    ),
    r(
        Role::FfnExpProbsB,
        "blk.{}.exp_probs_b.bias",
        NotHash,
        Small,
        "router selection bias",
    ),
    r(
        Role::FfnNorm,
        "blk.{}.ffn_norm.weight",
        Every,
        Small,
        "FFN input RMSNorm",
    ),
    r(
        Role::FfnGateExps,
        "blk.{}.ffn_gate_exps.weight",
        Every,
        Experts,
        "routed experts gate",
    ),
    r(
        Role::FfnUpExps,
        "blk.{}.ffn_up_exps.weight",
        Every,
        Experts,
        "routed experts up",
    ),
    r(
        Role::FfnDownExps,
        "blk.{}.ffn_down_exps.weight",
        Every,
        Experts,
        "routed experts down",
    ),
    r(
        Role::FfnGateShexp,
        "blk.{}.ffn_gate_shexp.weight",
        Every,
        Matrix,
        "shared expert gate",
    ),
    r(
        Role::FfnUpShexp,
        "blk.{}.ffn_up_shexp.weight",
        Every,
        Matrix,
        "shared expert up",
    ),
    r(
        Role::FfnDownShexp,
        "blk.{}.ffn_down_shexp.weight",
        Every,
        Matrix,
        "shared expert down",
    ),
];

fn info(role: Role) -> &'static RoleInfo {
    // Every Role variant has exactly one row (checked by a unit test).
    ROLES.iter().find(|i| i.role == role).unwrap_or(&ROLES[0])
}

impl Role {
    /// The tensor name for this role in `layer` (ignored for global roles).
    pub fn name(self, layer: usize) -> String {
        info(self).pattern.replace("{}", &layer.to_string())
    }

    /// What the tensor is for, for messages.
    pub fn what(self) -> &'static str {
        info(self).what
    }

    /// The tensor's class.
    pub fn class(self) -> Class {
        info(self).class
    }

    /// True for roles that exist once per model.
    pub fn is_global(self) -> bool {
        info(self).scope == Global
    }

    /// Whether `layer` carries this role.
    pub fn applies(self, cfg: &ModelConfig, layer: usize) -> bool {
        let Some(l) = cfg.layers.get(layer) else {
            return false;
        };
        match info(self).scope {
            Global => false,
            Every => {
                !(cfg.n_shared == 0
                    && matches!(
                        self,
                        Role::FfnGateShexp | Role::FfnUpShexp | Role::FfnDownShexp
                    ))
            }
            Compressed => l.kind != LayerKind::Swa,
            Csa => l.kind == LayerKind::Csa,
            Hash => l.hash_routed,
            NotHash => !l.hash_routed,
        }
    }

    /// Optional roles: absence is allowed (the selection bias).
    pub fn optional(self) -> bool {
        self == Role::FfnExpProbsB
    }

    /// The expected shape in ggml order (ne0 first).
    pub fn shape(self, cfg: &ModelConfig, layer: usize) -> Vec<u64> {
        let d = cfg.n_embd as u64;
        let hd = cfg.head_dim as u64;
        let h = cfg.n_head as u64;
        let ql = cfg.q_lora_rank as u64;
        let hc = cfg.hc_mult as u64;
        let mix = cfg.hc_mix_dim() as u64;
        let e = cfg.n_expert as u64;
        let ff = cfg.n_ff_exp as u64;
        let ish = cfg.n_shared as u64;
        let ihd = cfg.index_head_dim as u64;
        let lc = cfg.layers.get(layer).copied();
        let coff = lc.map_or(1, |l| l.compressor_width() as u64);
        let ratio = lc.map_or(0, |l| l.ratio as u64);
        match self {
            Role::TokenEmbd | Role::Output => vec![d, cfg.n_vocab as u64],
            Role::OutputNorm | Role::AttnNorm | Role::FfnNorm => vec![d],
            Role::HcHeadFn => vec![hc * d, hc],
            Role::HcHeadBase => vec![hc],
            Role::HcHeadScale => vec![1],
            Role::AttnSinks => vec![h],
            Role::AttnQA => vec![d, ql],
            Role::AttnQANorm => vec![ql],
            Role::AttnQB => vec![ql, h * hd],
            Role::AttnKv => vec![d, hd],
            Role::AttnKvNorm | Role::CompNorm => vec![hd],
            Role::AttnOutA => {
                vec![
                    h * hd / cfg.o_groups as u64,
                    (cfg.o_lora_rank * cfg.o_groups) as u64,
                ]
            }
            Role::AttnOutB => vec![(cfg.o_groups * cfg.o_lora_rank) as u64, d],
            Role::HcAttnFn | Role::HcFfnFn => vec![hc * d, mix],
            Role::HcAttnBase | Role::HcFfnBase => vec![mix],
            Role::HcAttnScale | Role::HcFfnScale => vec![3],
            Role::CompKv | Role::CompGate => vec![d, coff * hd],
            Role::CompApe => vec![coff * hd, ratio],
            Role::IdxProj => vec![d, cfg.index_n_head as u64],
            Role::IdxQB => vec![ql, cfg.index_n_head as u64 * ihd],
            Role::IdxCompKv | Role::IdxCompGate => vec![d, 2 * ihd],
            Role::IdxCompApe => vec![2 * ihd, ratio],
            Role::IdxCompNorm => vec![ihd],
            Role::FfnGateInp => vec![d, e],
            Role::FfnTid2Eid => vec![cfg.n_expert_used as u64, cfg.n_vocab as u64],
            Role::FfnExpProbsB => vec![e],
            Role::FfnGateExps | Role::FfnUpExps => vec![d, ff, e],
            Role::FfnDownExps => vec![ff, d, e],
            Role::FfnGateShexp | Role::FfnUpShexp => vec![d, ff * ish],
            Role::FfnDownShexp => vec![ff * ish, d],
        }
    }

    /// Every role, in table order.
    pub fn all() -> impl Iterator<Item = Role> {
        ROLES.iter().map(|i| i.role)
    }
}

/// Severity of a conventions finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Informational.
    Note,
    /// Loads, but unusual.
    Warning,
    /// The engine cannot load the file.
    Error,
}

/// One finding of the conventions check.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// The tensor or key concerned.
    pub subject: String,
    /// What was found.
    pub message: String,
}

/// Checks one tensor of a role: presence, shape and type. Returns findings.
pub fn check_role(
    file: &GgufFile,
    cfg: &ModelConfig,
    role: Role,
    layer: usize,
    out: &mut Vec<Finding>,
) {
    let name = role.name(layer);
    let Some(t) = file.tensor_info(&name) else {
        if !role.optional() {
            out.push(Finding {
                severity: Severity::Error,
                subject: name,
                message: format!("missing ({})", role.what()),
            });
        }
        return;
    };
    let expected = role.shape(cfg, layer);
    if t.dims != expected {
        out.push(Finding {
            severity: Severity::Error,
            subject: name.clone(),
            message: format!(
                "shape {} but expected {:?} ({})",
                t.shape_string(),
                expected,
                role.what()
            ),
        });
    }
    let accepted = role.class().accepted();
    if !accepted.contains(&t.ty) {
        let list: Vec<&str> = accepted.iter().map(|t| t.name()).collect();
        let hint = if t.ty.id() == 42 {
            " (type id 42 is Q2_0 in upstream ggml but FP8 in some forks; re-convert with upstream llama.cpp)"
        } else {
            ""
        };
        out.push(Finding {
            severity: Severity::Error,
            subject: name,
            message: format!(
                "type {} is not usable here; expected one of {}{hint}",
                t.ty,
                list.join(", ")
            ),
        });
    }
}

/// The full conventions check of a `deepseek4` file against its own configuration:
/// every role of every layer, plus tensors no role claims.
pub fn check_file(file: &GgufFile, cfg: &ModelConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut claimed = std::collections::HashSet::new();
    for role in Role::all() {
        if role.is_global() {
            check_role(file, cfg, role, 0, &mut out);
            claimed.insert(role.name(0));
        } else {
            for l in 0..cfg.n_layer {
                if role.applies(cfg, l) {
                    check_role(file, cfg, role, l, &mut out);
                    claimed.insert(role.name(l));
                }
            }
        }
    }
    let mut mtp = 0usize;
    for t in file.tensors() {
        if claimed.contains(&t.name) {
            continue;
        }
        let layer = t
            .name
            .strip_prefix("blk.")
            .and_then(|s| s.split('.').next())
            .and_then(|s| s.parse::<usize>().ok());
        if layer.is_some_and(|l| l >= cfg.n_layer) {
            mtp += 1;
            continue;
        }
        out.push(Finding {
            severity: Severity::Warning,
            subject: t.name.clone(),
            message: "not used by the trunk model".into(),
        });
    }
    if mtp > 0 {
        out.push(Finding {
            severity: Severity::Note,
            subject: "MTP".into(),
            message: format!(
                "{mtp} tensors of MTP block(s) after layer {}; not used yet",
                cfg.n_layer - 1
            ),
        });
    }
    for d in &cfg.defaulted {
        out.push(Finding {
            severity: Severity::Note,
            subject: "metadata".into(),
            message: format!("defaulted {d}"),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_has_one_row() {
        for i in ROLES {
            assert_eq!(ROLES.iter().filter(|j| j.role == i.role).count(), 1);
            assert_eq!(info(i.role).pattern, i.pattern);
        }
        assert_eq!(Role::AttnQA.name(7), "blk.7.attn_q_a.weight");
        assert_eq!(Role::Output.name(3), "output.weight");
    }
}
