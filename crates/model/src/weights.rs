//! Binding the tensors of a GGUF file to typed per-layer weights.
//!
//! Matrices stay in the memory map: a [`Matrix`] is a byte range plus its type
//! and geometry, resolved against the file image at use, so an 80 GB file is
//! never copied. Small float tensors (norms, biases, sinks, HC scales, position
//! biases) and the hash-routing table are converted once into owned vectors.
//! Every mismatch is an error naming the tensor, the expected and the found
//! shape or type (the checks come from the role table in `tensors.rs`).

use std::ops::Range;

use dsv4_gguf::{GgmlType, GgufFile};

use crate::config::{LayerKind, ModelConfig};
use crate::error::{ModelError, Result};
use crate::tensors::{Class, Finding, Role, Severity, check_role};

/// A 2-D weight `[rows, k]` (PyTorch order `[out, in]`) in the file image.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Tensor name (for messages).
    pub name: String,
    /// Storage type.
    pub ty: GgmlType,
    /// Output rows.
    pub rows: usize,
    /// Input length (elements per row).
    pub k: usize,
    /// Absolute byte range in the file image.
    pub range: Range<usize>,
}

impl Matrix {
    /// Bytes per row.
    pub fn row_bytes(&self) -> usize {
        (self.range.len()) / self.rows.max(1)
    }

    /// The weight bytes within a file image.
    pub fn bytes<'a>(&self, image: &'a [u8]) -> &'a [u8] {
        image.get(self.range.clone()).unwrap_or(&[])
    }

    /// A view of rows `[r0, r0 + n)` as its own matrix (e.g. one group of `wo_a`).
    pub fn rows_slice(&self, r0: usize, n: usize) -> Matrix {
        let rb = self.row_bytes();
        let start = self.range.start + r0 * rb;
        Matrix {
            name: self.name.clone(),
            ty: self.ty,
            rows: n,
            k: self.k,
            range: start..start + n * rb,
        }
    }
}

/// A stack of expert matrices, each `[rows, k]`, contiguous per expert.
#[derive(Debug, Clone, PartialEq)]
pub struct Experts {
    /// The whole stack as one matrix of `n_expert · rows` rows.
    pub all: Matrix,
    /// Experts in the stack.
    pub n_expert: usize,
    /// Rows per expert.
    pub rows: usize,
}

impl Experts {
    /// Expert `e` as a matrix.
    pub fn expert(&self, e: usize) -> Matrix {
        self.all.rows_slice(e * self.rows, self.rows)
    }
}

/// The three tensors of one hyper-connection site.
#[derive(Debug, Clone, PartialEq)]
pub struct HcWeights {
    /// Mixer `[mix, hc·D]`.
    pub func: Matrix,
    /// Bias `[mix]`.
    pub base: Vec<f32>,
    /// Scales (3 for blocks, 1 for the head).
    pub scale: Vec<f32>,
}

/// A compressor (main or indexer).
#[derive(Debug, Clone, PartialEq)]
pub struct CompressorWeights {
    /// KV projection `[c·d, D]`.
    pub kv: Matrix,
    /// Score projection `[c·d, D]`.
    pub gate: Matrix,
    /// Position bias `[ratio, c·d]`, row-major.
    pub ape: Vec<f32>,
    /// RMSNorm weight `[d]`.
    pub norm: Vec<f32>,
}

/// The lightning indexer of a CSA layer.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexerWeights {
    /// Head weights `[ih, D]`.
    pub proj: Matrix,
    /// Query projection `[ih·ihd, q_lora]`.
    pub q_b: Matrix,
    /// Its compressor.
    pub comp: CompressorWeights,
}

/// How a layer selects experts.
#[derive(Debug, Clone, PartialEq)]
pub enum Routing {
    /// Fixed experts per token id: `table[token · k + j]`.
    Hash(Vec<u32>),
    /// Learned top-k with an optional selection bias.
    Learned(Option<Vec<f32>>),
}

/// The shared expert.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedExpert {
    /// Gate `[I, D]`.
    pub gate: Matrix,
    /// Up `[I, D]`.
    pub up: Matrix,
    /// Down `[D, I]`.
    pub down: Matrix,
}

/// Everything one layer needs.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct LayerWeights {
    pub attn_norm: Vec<f32>,
    pub sinks: Vec<f32>,
    pub q_a: Matrix,
    pub q_a_norm: Vec<f32>,
    pub q_b: Matrix,
    pub kv: Matrix,
    pub kv_norm: Vec<f32>,
    pub out_a: Matrix,
    pub out_b: Matrix,
    pub hc_attn: HcWeights,
    pub hc_ffn: HcWeights,
    pub compressor: Option<CompressorWeights>,
    pub indexer: Option<IndexerWeights>,
    pub ffn_norm: Vec<f32>,
    pub gate_inp: Matrix,
    pub routing: Routing,
    pub gate_exps: Experts,
    pub up_exps: Experts,
    pub down_exps: Experts,
    pub shared: Option<SharedExpert>,
}

/// All trunk weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    /// Token embedding `[V, D]`.
    pub token_embd: Matrix,
    /// Final norm.
    pub output_norm: Vec<f32>,
    /// Output head `[V, D]`.
    pub output: Matrix,
    /// HC head.
    pub hc_head: HcWeights,
    /// Layers.
    pub layers: Vec<LayerWeights>,
}

struct Binder<'a> {
    file: &'a GgufFile,
    cfg: &'a ModelConfig,
}

impl Binder<'_> {
    fn checked(&self, role: Role, layer: usize) -> Result<()> {
        let mut findings: Vec<Finding> = Vec::new();
        check_role(self.file, self.cfg, role, layer, &mut findings);
        let Some(f) = findings.into_iter().find(|f| f.severity == Severity::Error) else {
            return Ok(());
        };
        let name = role.name(layer);
        let file = self.file.origin().to_string();
        let Some(t) = self.file.tensor_info(&name) else {
            return Err(self.missing(role, &name));
        };
        let expected = role.shape(self.cfg, layer);
        if t.dims != expected {
            return Err(ModelError::TensorShape {
                file,
                tensor: name,
                expected: format!("{expected:?}"),
                found: t.shape_string(),
            });
        }
        let list: Vec<&str> = role.class().accepted().iter().map(|t| t.name()).collect();
        Err(ModelError::TensorType {
            file,
            tensor: name,
            expected: list.join(", "),
            found: t.ty.to_string(),
            hint: format!(" ({})", f.message),
        })
    }

    /// The error for `role`'s tensor `name` missing from the file.
    fn missing(&self, role: Role, name: &str) -> ModelError {
        ModelError::MissingTensor {
            file: self.file.origin().into(),
            tensor: name.into(),
            role: role.what(),
        }
    }

    fn matrix(&self, role: Role, layer: usize) -> Result<Matrix> {
        self.checked(role, layer)?;
        let name = role.name(layer);
        let t = self
            .file
            .tensor_info(&name)
            .ok_or_else(|| self.missing(role, &name))?;
        Ok(Matrix {
            name,
            ty: t.ty,
            rows: t.n_rows() as usize,
            k: t.row_len() as usize,
            range: self.file.data_range(t),
        })
    }

    fn experts(&self, role: Role, layer: usize) -> Result<Experts> {
        let all = self.matrix(role, layer)?;
        let n_expert = self.cfg.n_expert;
        Ok(Experts {
            rows: all.rows / n_expert.max(1),
            n_expert,
            all,
        })
    }

    fn small(&self, role: Role, layer: usize) -> Result<Vec<f32>> {
        debug_assert_eq!(role.class(), Class::Small);
        self.checked(role, layer)?;
        let name = role.name(layer);
        let view = self
            .file
            .tensor(&name)
            .ok_or_else(|| self.missing(role, &name))?;
        Ok(small_to_f32(view.info.ty, view.data))
    }

    fn hc(&self, f: Role, b: Role, s: Role, layer: usize) -> Result<HcWeights> {
        Ok(HcWeights {
            func: self.matrix(f, layer)?,
            base: self.small(b, layer)?,
            scale: self.small(s, layer)?,
        })
    }

    fn compressor(&self, roles: [Role; 4], layer: usize) -> Result<CompressorWeights> {
        Ok(CompressorWeights {
            kv: self.matrix(roles[0], layer)?,
            gate: self.matrix(roles[1], layer)?,
            ape: self.small(roles[2], layer)?,
            norm: self.small(roles[3], layer)?,
        })
    }

    fn routing(&self, layer: usize) -> Result<Routing> {
        if !self.cfg.layers[layer].hash_routed {
            let has_bias = self
                .file
                .tensor_info(&Role::FfnExpProbsB.name(layer))
                .is_some();
            return Ok(Routing::Learned(if has_bias {
                Some(self.small(Role::FfnExpProbsB, layer)?)
            } else {
                None
            }));
        }
        let role = Role::FfnTid2Eid;
        self.checked(role, layer)?;
        let name = role.name(layer);
        let view = self
            .file
            .tensor(&name)
            .ok_or_else(|| self.missing(role, &name))?;
        let vals: Vec<i64> = match view.info.ty {
            GgmlType::I64 => view
                .data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
            _ => view
                .data
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap_or([0; 4])).into())
                .collect(),
        };
        let n_expert = self.cfg.n_expert as i64;
        if let Some((i, bad)) = vals
            .iter()
            .enumerate()
            .find(|(_, v)| !(0..n_expert).contains(*v))
        {
            return Err(ModelError::Config {
                file: self.file.origin().into(),
                reason: format!("{name}: entry {i} is expert {bad}, outside 0..{n_expert}"),
            });
        }
        Ok(Routing::Hash(vals.into_iter().map(|v| v as u32).collect()))
    }

    fn layer(&self, l: usize) -> Result<LayerWeights> {
        let lc = self.cfg.layers[l];
        let compressor = if lc.kind != LayerKind::Swa {
            Some(self.compressor(
                [Role::CompKv, Role::CompGate, Role::CompApe, Role::CompNorm],
                l,
            )?)
        } else {
            None
        };
        let indexer = if lc.kind == LayerKind::Csa {
            Some(IndexerWeights {
                proj: self.matrix(Role::IdxProj, l)?,
                q_b: self.matrix(Role::IdxQB, l)?,
                comp: self.compressor(
                    [
                        Role::IdxCompKv,
                        Role::IdxCompGate,
                        Role::IdxCompApe,
                        Role::IdxCompNorm,
                    ],
                    l,
                )?,
            })
        } else {
            None
        };
        let shared = if self.cfg.n_shared > 0 {
            Some(SharedExpert {
                gate: self.matrix(Role::FfnGateShexp, l)?,
                up: self.matrix(Role::FfnUpShexp, l)?,
                down: self.matrix(Role::FfnDownShexp, l)?,
            })
        } else {
            None
        };
        let gate_exps = self.experts(Role::FfnGateExps, l)?;
        let up_exps = self.experts(Role::FfnUpExps, l)?;
        if gate_exps.all.ty != up_exps.all.ty {
            return Err(ModelError::TensorType {
                file: self.file.origin().into(),
                tensor: up_exps.all.name.clone(),
                expected: gate_exps.all.ty.to_string(),
                found: up_exps.all.ty.to_string(),
                hint: " (routed gate and up experts must share one type)".into(),
            });
        }
        Ok(LayerWeights {
            attn_norm: self.small(Role::AttnNorm, l)?,
            sinks: self.small(Role::AttnSinks, l)?,
            q_a: self.matrix(Role::AttnQA, l)?,
            q_a_norm: self.small(Role::AttnQANorm, l)?,
            q_b: self.matrix(Role::AttnQB, l)?,
            kv: self.matrix(Role::AttnKv, l)?,
            kv_norm: self.small(Role::AttnKvNorm, l)?,
            out_a: self.matrix(Role::AttnOutA, l)?,
            out_b: self.matrix(Role::AttnOutB, l)?,
            hc_attn: self.hc(Role::HcAttnFn, Role::HcAttnBase, Role::HcAttnScale, l)?,
            hc_ffn: self.hc(Role::HcFfnFn, Role::HcFfnBase, Role::HcFfnScale, l)?,
            compressor,
            indexer,
            ffn_norm: self.small(Role::FfnNorm, l)?,
            gate_inp: self.matrix(Role::FfnGateInp, l)?,
            routing: self.routing(l)?,
            gate_exps,
            up_exps,
            down_exps: self.experts(Role::FfnDownExps, l)?,
            shared,
        })
    }
}

/// Converts a small F32/F16/BF16 tensor to f32.
fn small_to_f32(ty: GgmlType, data: &[u8]) -> Vec<f32> {
    match ty {
        GgmlType::F16 => data
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        GgmlType::BF16 => data
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        _ => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    }
}

impl Weights {
    /// Binds every trunk tensor of `file` for configuration `cfg`.
    pub fn bind(file: &GgufFile, cfg: &ModelConfig) -> Result<Weights> {
        let b = Binder { file, cfg };
        let layers = (0..cfg.n_layer)
            .map(|l| b.layer(l))
            .collect::<Result<Vec<_>>>()?;
        Ok(Weights {
            token_embd: b.matrix(Role::TokenEmbd, 0)?,
            output_norm: b.small(Role::OutputNorm, 0)?,
            output: b.matrix(Role::Output, 0)?,
            hc_head: b.hc(Role::HcHeadFn, Role::HcHeadBase, Role::HcHeadScale, 0)?,
            layers,
        })
    }

    /// Every matrix and expert stack, for planning and warm-up.
    pub fn matrices(&self) -> Vec<&Matrix> {
        let mut v = vec![&self.token_embd, &self.output, &self.hc_head.func];
        for l in &self.layers {
            v.extend([
                &l.q_a,
                &l.q_b,
                &l.kv,
                &l.out_a,
                &l.out_b,
                &l.hc_attn.func,
                &l.hc_ffn.func,
                &l.gate_inp,
            ]);
            if let Some(c) = &l.compressor {
                v.extend([&c.kv, &c.gate]);
            }
            if let Some(i) = &l.indexer {
                v.extend([&i.proj, &i.q_b, &i.comp.kv, &i.comp.gate]);
            }
            v.extend([&l.gate_exps.all, &l.up_exps.all, &l.down_exps.all]);
            if let Some(s) = &l.shared {
                v.extend([&s.gate, &s.up, &s.down]);
            }
        }
        v
    }
}
