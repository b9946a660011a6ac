//! The backend interface, at the model's own step granularity.
//!
//! The forward logic (`forward.rs`) is a layer loop over these steps:
//! embedding, HC pre, the attention sub-layer, HC post, the MoE sub-layer and
//! the output head. A backend implements every step for a batch of rows (one
//! token each, possibly from several sessions) and owns the per-session state
//! type, so a CUDA or Metal backend can keep KV resident on its device and
//! slot in without touching the forward logic. There are no default methods:
//! every backend implements every step, and the compiler enforces it.
//! Activations cross the interface as host `f32` slices with shapes in the
//! doc comments; they are small next to the weights and the KV.

pub mod cpu;

use crate::error::Result;
use crate::model::Model;
use crate::weights::{HcWeights, LayerWeights};

/// Which session and position a batch row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowMeta {
    /// Index of the row's session in the `states` slice.
    pub seq: usize,
    /// Token id.
    pub token: u32,
    /// Absolute position.
    pub pos: usize,
}

/// Per-session state a backend keeps (KV rows, compressor frontiers).
pub trait SessionStateOps: Send + std::fmt::Debug {
    /// A restorable frontier (see [`crate::kv::Checkpoint`]).
    type Checkpoint: Clone + Send + std::fmt::Debug;
    /// Tokens evaluated so far.
    fn pos(&self) -> usize;
    /// Records the frontier at the current position.
    fn checkpoint(&self, window: usize) -> Self::Checkpoint;
    /// Position of a checkpoint.
    fn checkpoint_pos(cp: &Self::Checkpoint) -> usize;
    /// Bytes a checkpoint holds.
    fn checkpoint_bytes(cp: &Self::Checkpoint) -> usize;
    /// Returns to an earlier checkpoint of this session's history.
    fn restore(&mut self, cp: &Self::Checkpoint) -> Result<()>;
    /// Bytes of KV rows held.
    fn kv_bytes(&self) -> usize;
    /// Forgets everything (position 0).
    fn reset(&mut self);
    /// Serializes the state and its checkpoints.
    fn save(
        &self,
        model: &Model,
        checkpoints: &[Self::Checkpoint],
        w: &mut dyn std::io::Write,
    ) -> Result<()>;
    /// Restores a state written by [`SessionStateOps::save`] (of `len` bytes);
    /// returns its checkpoints. On error the state is unchanged.
    fn load(
        &mut self,
        model: &Model,
        r: &mut dyn std::io::Read,
        len: u64,
    ) -> Result<Vec<Self::Checkpoint>>;
}

/// Optional per-step observations, for verification against references.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Trace {
    /// Indexer selections: `(layer, row, sorted compressed-row indices)`.
    pub indexer: Vec<(usize, usize, Vec<u32>)>,
    /// Experts chosen: `(layer, row, experts)`.
    pub experts: Vec<(usize, usize, Vec<u32>)>,
    /// HC states after each layer: `(layer, [n, hc, D])`.
    pub hc_states: Vec<(usize, Vec<f32>)>,
    /// Record HC states (they are large).
    pub want_hc_states: bool,
}

/// The steps of the forward pass.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// The backend's per-session state.
    type State: SessionStateOps;

    /// A short name for reports (`cpu/avx2`, …).
    fn name(&self) -> String;

    /// Bytes [`Backend::prepare`] will hold for `model` beyond the mapped
    /// file (weights converted to the backend's own layouts or uploaded), for
    /// memory planning.
    fn prepared_bytes(&self, _model: &Model) -> u64 {
        0
    }

    /// Converts or uploads `model`'s weights before the first step (until
    /// then, steps may do it on first use); returns the bytes held.
    fn prepare(&self, _model: &Model) -> Result<u64> {
        Ok(0)
    }

    /// A fresh session state.
    fn new_state(&self, model: &Model) -> Self::State;

    /// Embeds tokens and expands to HC form: writes `x` `[n, hc, D]`.
    fn embed(&self, model: &Model, tokens: &[u32], x: &mut [f32]) -> Result<()>;

    /// HC pre of one site: from `x` `[n, hc, D]` computes the sub-layer input
    /// `a` `[n, D]` (already RMS-normalised with `norm`), and the `post` `[n, hc]`
    /// and `comb` `[n, hc, hc]` weights for [`Backend::hc_post`].
    #[allow(clippy::too_many_arguments)]
    fn hc_pre(
        &self,
        model: &Model,
        hc: &HcWeights,
        norm: &[f32],
        x: &[f32],
        n: usize,
        a: &mut [f32],
        post: &mut [f32],
        comb: &mut [f32],
    ) -> Result<()>;

    /// HC post: `x[k] ← post_k · o + Σ_j comb[j,k] · x[j]` for every row, in place.
    fn hc_post(
        &self,
        model: &Model,
        x: &mut [f32],
        o: &[f32],
        post: &[f32],
        comb: &[f32],
        n: usize,
    ) -> Result<()>;

    /// The attention sub-layer of `layer` for rows `rows` (`a` `[n, D]` normed
    /// input), updating the sessions' states and writing `out` `[n, D]`.
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        model: &Model,
        layer: usize,
        lw: &LayerWeights,
        a: &[f32],
        rows: &[RowMeta],
        states: &mut [&mut Self::State],
        out: &mut [f32],
        trace: Option<&mut Trace>,
    ) -> Result<()>;

    /// The MoE sub-layer of `layer` (`a` `[n, D]` normed input) writing `out` `[n, D]`.
    #[allow(clippy::too_many_arguments)]
    fn moe(
        &self,
        model: &Model,
        layer: usize,
        lw: &LayerWeights,
        a: &[f32],
        rows: &[RowMeta],
        out: &mut [f32],
        trace: Option<&mut Trace>,
    ) -> Result<()>;

    /// HC head, final norm and output projection for the selected rows of `x`
    /// `[n, hc, D]`: writes `logits` `[select.len(), V]`.
    fn head(&self, model: &Model, x: &[f32], select: &[usize], logits: &mut [f32]) -> Result<()>;

    /// Commits the batch: marks positions evaluated and trims raw windows.
    fn finish(
        &self,
        model: &Model,
        rows: &[RowMeta],
        states: &mut [&mut Self::State],
    ) -> Result<()>;
}
