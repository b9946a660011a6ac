//! Memory planning at start: model bytes, KV bytes for the requested context
//! and sessions, and a refusal with a clear message when they cannot fit.

use dsv4_model::kv::bytes_per_token;
use dsv4_model::{KvFormat, Model};

use crate::session::CheckpointPolicy;

/// The planned memory use.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryPlan {
    /// Size of the mapped model file.
    pub model_bytes: u64,
    /// Weights the backend holds in its own layouts (packed copies).
    pub prepared_bytes: u64,
    /// Compressed KV per token (amortised), in bytes.
    pub kv_bytes_per_token: f64,
    /// KV of one full session (compressed rows, raw window, frontier).
    pub kv_bytes_per_session: u64,
    /// Checkpoints of one full session.
    pub checkpoint_bytes_per_session: u64,
    /// Sessions.
    pub sessions: usize,
    /// Context per session.
    pub ctx: usize,
    /// Everything.
    pub total_bytes: u64,
    /// Physical memory of the machine (if known).
    pub mem_total: Option<u64>,
    /// Memory available now (if known).
    pub mem_available: Option<u64>,
}

fn meminfo(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn gib(b: u64) -> f64 {
    b as f64 / (1u64 << 30) as f64
}

impl MemoryPlan {
    /// Plans for `sessions` sessions of `ctx` tokens each.
    pub fn new(
        model: &Model,
        ctx: usize,
        sessions: usize,
        format: KvFormat,
        policy: CheckpointPolicy,
        chunk: usize,
        prepared_bytes: u64,
    ) -> MemoryPlan {
        let cfg = &model.cfg;
        let per_tok = bytes_per_token(cfg, format);
        let row = match format {
            KvFormat::F32 => 4 * cfg.head_dim,
            KvFormat::Compact => (cfg.head_dim - cfg.rope_dim) * 65 / 64 + 2 * cfg.rope_dim,
        };
        let raw = (cfg.n_layer * (cfg.window + chunk) * row) as u64;
        let frontier: u64 = cfg
            .layers
            .iter()
            .map(|l| match l.kind {
                dsv4_model::LayerKind::Swa => 0,
                dsv4_model::LayerKind::Hca => 8 * l.ratio * cfg.head_dim,
                dsv4_model::LayerKind::Csa => 8 * 3 * l.ratio * (cfg.head_dim + cfg.index_head_dim),
            } as u64)
            .sum();
        let kv = (per_tok * ctx as f64) as u64 + raw + frontier;
        let cp_size = (cfg.n_layer * cfg.window * row) as u64 + frontier / 2;
        let n_cp = policy.recent / policy.interval + ctx / policy.sparse + 1;
        let cps = cp_size * n_cp as u64;
        let model_bytes = model.file().file_size();
        MemoryPlan {
            model_bytes,
            prepared_bytes,
            kv_bytes_per_token: per_tok,
            kv_bytes_per_session: kv,
            checkpoint_bytes_per_session: cps,
            sessions,
            ctx,
            total_bytes: model_bytes + prepared_bytes + (kv + cps) * sessions as u64,
            mem_total: meminfo("MemTotal:"),
            mem_available: meminfo("MemAvailable:"),
        }
    }

    /// A human summary.
    pub fn report(&self) -> String {
        format!(
            "memory plan: model {:.2} GiB (mapped){} + {} session(s) × ({:.2} GiB KV at {} tokens, {:.0} B/token, + {:.2} GiB checkpoints) = {:.2} GiB{}",
            gib(self.model_bytes),
            if self.prepared_bytes > 0 {
                format!(" + {:.2} GiB packed weights", gib(self.prepared_bytes))
            } else {
                String::new()
            },
            self.sessions,
            gib(self.kv_bytes_per_session),
            self.ctx,
            self.kv_bytes_per_token,
            gib(self.checkpoint_bytes_per_session),
            gib(self.total_bytes),
            self.mem_total
                .map(|m| format!(" of {:.2} GiB RAM", gib(m)))
                .unwrap_or_default()
        )
    }

    /// An error message when the plan cannot fit in physical memory.
    pub fn check(&self) -> Result<(), String> {
        let Some(total) = self.mem_total else {
            return Ok(());
        };
        if self.total_bytes > total {
            let model = self.model_bytes + self.prepared_bytes;
            let kv = self.total_bytes - model;
            return Err(format!(
                "{}\nthis does not fit: the model needs {:.2} GiB and the sessions {:.2} GiB, but the machine has {:.2} GiB. \
                 Lower --ctx or --sessions, use a smaller quantization, pass --no-pack if packed weights tip it over, or pass --no-mem-check to run anyway (the OS will page the weights from disk, very slowly)",
                self.report(),
                gib(model),
                gib(kv),
                gib(total)
            ));
        }
        Ok(())
    }
}
