//! The loaded model: configuration, bound weights, RoPE tables and options.
//!
//! A [`Model`] owns its GGUF file (memory-mapped) and is immutable after
//! loading, so one instance serves every session and thread.

use std::path::Path;
use std::sync::Arc;

use dsv4_gguf::GgufFile;

use crate::config::{LayerKind, ModelConfig};
use crate::error::Result;
use crate::rope::RopeTable;
use crate::weights::{Matrix, Weights};

/// Options fixed at load time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelOptions {
    /// Simulate the official graph's QAT roundings (FP8 KV rows, Hadamard + FP4
    /// indexer). On by default for real models (model-spec §2.4).
    pub qat_sim: bool,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions { qat_sim: true }
    }
}

/// A loaded DeepSeek V4 model.
#[derive(Debug)]
pub struct Model {
    file: Arc<GgufFile>,
    /// The configuration.
    pub cfg: ModelConfig,
    /// The bound weights.
    pub weights: Weights,
    /// RoPE of sliding-only layers.
    pub rope_main: RopeTable,
    /// RoPE of compressed layers (YaRN).
    pub rope_compress: RopeTable,
    /// Options.
    pub opts: ModelOptions,
}

impl Model {
    /// Opens and binds a GGUF file.
    pub fn load(path: impl AsRef<Path>, opts: ModelOptions) -> Result<Model> {
        let file = GgufFile::open(path)?;
        Model::from_file(Arc::new(file), opts)
    }

    /// Binds an already opened file.
    pub fn from_file(file: Arc<GgufFile>, opts: ModelOptions) -> Result<Model> {
        let cfg = ModelConfig::from_gguf(&file)?;
        let weights = Weights::bind(&file, &cfg)?;
        let rope_main = RopeTable::plain(cfg.rope_base, cfg.rope_dim);
        let rope_compress = RopeTable::yarn(cfg.compress_rope_base, cfg.rope_dim, &cfg.yarn);
        let model = Model {
            file,
            cfg,
            weights,
            rope_main,
            rope_compress,
            opts,
        };
        model.advise();
        Ok(model)
    }

    /// Tells the OS how the weights are read: routed experts in no particular
    /// order (read-ahead would waste bandwidth on unused experts), everything
    /// else sequentially; huge pages where the kernel supports them for files.
    fn advise(&self) {
        use dsv4_gguf::Advice;
        let f = &self.file;
        for t in f.tensors() {
            let expert = t.name.contains("_exps.");
            f.advise(
                t,
                if expert {
                    Advice::Random
                } else {
                    Advice::Sequential
                },
            );
            f.advise(t, Advice::HugePage);
        }
    }

    /// Reads every weight page once so the first tokens do not wait on the disk;
    /// `progress(done, total)` is called with bytes as it goes. Returns a
    /// checksum of the touched bytes (so the reads are not optimised away).
    pub fn warm(&self, mut progress: impl FnMut(u64, u64)) -> u64 {
        let f = &self.file;
        let total: u64 = f.tensors().iter().map(|t| t.size_bytes).sum();
        let (mut done, mut sum) = (0u64, 0u64);
        for t in f.tensors() {
            f.advise(t, dsv4_gguf::Advice::WillNeed);
            sum = sum.wrapping_add(f.touch(t));
            done += t.size_bytes;
            progress(done, total);
        }
        sum
    }

    /// The underlying file.
    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    /// A shared handle to the file.
    pub fn file_arc(&self) -> Arc<GgufFile> {
        Arc::clone(&self.file)
    }

    /// The bytes of a weight matrix.
    pub fn bytes(&self, m: &Matrix) -> &[u8] {
        m.bytes(self.file.raw())
    }

    /// The RoPE table a layer uses.
    pub fn rope_for(&self, layer: usize) -> &RopeTable {
        match self.cfg.layers[layer].kind {
            LayerKind::Swa => &self.rope_main,
            LayerKind::Csa | LayerKind::Hca => &self.rope_compress,
        }
    }

    /// Bytes of all weight matrices (the mapped model size that matters).
    pub fn weight_bytes(&self) -> u64 {
        self.weights
            .matrices()
            .iter()
            .map(|m| m.range.len() as u64)
            .sum()
    }

    /// Weight bytes read to decode one token (dense weights, the used experts
    /// of each layer, one embedding row), for bandwidth reports.
    pub fn bytes_per_decoded_token(&self) -> u64 {
        let c = &self.cfg;
        let mut total = self.weights.output.range.len() as u64
            + self.weights.hc_head.func.range.len() as u64
            + self.weights.token_embd.row_bytes() as u64;
        for l in &self.weights.layers {
            let dense: [&Matrix; 8] = [
                &l.q_a,
                &l.q_b,
                &l.kv,
                &l.out_a,
                &l.out_b,
                &l.hc_attn.func,
                &l.hc_ffn.func,
                &l.gate_inp,
            ];
            total += dense.iter().map(|m| m.range.len() as u64).sum::<u64>();
            if let Some(cw) = &l.compressor {
                total += (cw.kv.range.len() + cw.gate.range.len()) as u64;
            }
            if let Some(i) = &l.indexer {
                total += (i.proj.range.len()
                    + i.q_b.range.len()
                    + i.comp.kv.range.len()
                    + i.comp.gate.range.len()) as u64;
            }
            if let Some(s) = &l.shared {
                total += (s.gate.range.len() + s.up.range.len() + s.down.range.len()) as u64;
            }
            let per_expert = (l.gate_exps.all.range.len()
                + l.up_exps.all.range.len()
                + l.down_exps.all.range.len()) as u64
                / c.n_expert.max(1) as u64;
            total += per_expert * c.n_expert_used as u64;
        }
        total
    }
}
