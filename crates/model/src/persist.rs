//! Binary encoding of session state (KV rows, compressor frontiers,
//! checkpoints) for saving conversations to disk and restoring them without
//! re-evaluating the prompt.
//!
//! Layout: little-endian, length-prefixed; a header with a magic, a version
//! and a fingerprint of the model configuration guards against restoring a
//! state into a different model. Decoding checks every length against the
//! configuration and never trusts a count from the file for an allocation
//! larger than the bytes that remain.

use std::io::{Read, Write};

use crate::compressor::CompressorState;
use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::kv::{Checkpoint, SessionState};

const MAGIC: &[u8; 8] = b"DSV4KV\0\x01";

/// A fingerprint of the shapes that decide the state layout.
pub fn fingerprint(cfg: &ModelConfig) -> u64 {
    let s = format!(
        "{}|{}|{}|{}|{}|{}|{:?}",
        cfg.n_layer,
        cfg.n_embd,
        cfg.head_dim,
        cfg.rope_dim,
        cfg.index_head_dim,
        cfg.window,
        cfg.layers
            .iter()
            .map(|l| (l.kind.name(), l.ratio))
            .collect::<Vec<_>>()
    );
    s.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
    })
}

/// A writer of primitive values.
pub(crate) struct Enc<'a> {
    w: &'a mut dyn Write,
}

impl<'a> Enc<'a> {
    pub(crate) fn new(w: &'a mut dyn Write) -> Self {
        Enc { w }
    }
    pub(crate) fn u64(&mut self, v: u64) -> std::io::Result<()> {
        self.w.write_all(&v.to_le_bytes())
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.u64(b.len() as u64)?;
        self.w.write_all(b)
    }
    pub(crate) fn f32s(&mut self, v: &[f32]) -> std::io::Result<()> {
        self.u64(v.len() as u64)?;
        for x in v {
            self.w.write_all(&x.to_le_bytes())?;
        }
        Ok(())
    }
    pub(crate) fn comp(&mut self, c: &CompressorState) -> std::io::Result<()> {
        self.u64(c.ratio as u64)?;
        self.u64(c.dim as u64)?;
        self.u64(c.width as u64)?;
        self.u64(c.n_partial as u64)?;
        self.u64(u64::from(c.has_prev))?;
        self.f32s(&c.kv)?;
        self.f32s(&c.score)?;
        self.f32s(&c.prev_kv)?;
        self.f32s(&c.prev_score)
    }
}

/// A reader of primitive values with a byte budget.
pub(crate) struct Dec<'a> {
    r: &'a mut dyn Read,
    left: u64,
}

fn bad(msg: impl Into<String>) -> ModelError {
    ModelError::Snapshot(msg.into())
}

impl<'a> Dec<'a> {
    pub(crate) fn new(r: &'a mut dyn Read, len: u64) -> Self {
        Dec { r, left: len }
    }
    fn take(&mut self, n: u64) -> Result<()> {
        self.left = self
            .left
            .checked_sub(n)
            .ok_or_else(|| bad("the file is truncated"))?;
        Ok(())
    }
    pub(crate) fn u64(&mut self) -> Result<u64> {
        self.take(8)?;
        let mut b = [0u8; 8];
        self.r
            .read_exact(&mut b)
            .map_err(|e| bad(format!("read failed: {e}")))?;
        Ok(u64::from_le_bytes(b))
    }
    pub(crate) fn usize(&mut self, max: usize, what: &str) -> Result<usize> {
        let v = self.u64()?;
        if v > max as u64 {
            return Err(bad(format!("{what} = {v} exceeds {max}")));
        }
        Ok(v as usize)
    }
    pub(crate) fn bytes(&mut self) -> Result<Vec<u8>> {
        let n = self.u64()?;
        self.take(n)?;
        let mut v = vec![0u8; n as usize];
        self.r
            .read_exact(&mut v)
            .map_err(|e| bad(format!("read failed: {e}")))?;
        Ok(v)
    }
    pub(crate) fn f32s(&mut self, expect: usize) -> Result<Vec<f32>> {
        let n = self.u64()?;
        if n != expect as u64 {
            return Err(bad(format!(
                "array of {n} values where {expect} were expected"
            )));
        }
        self.take(4 * n)?;
        let mut raw = vec![0u8; 4 * n as usize];
        self.r
            .read_exact(&mut raw)
            .map_err(|e| bad(format!("read failed: {e}")))?;
        Ok(raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
    pub(crate) fn comp(&mut self, like: &CompressorState) -> Result<CompressorState> {
        let (ratio, dim, width) = (self.u64()?, self.u64()?, self.u64()?);
        if (ratio, dim, width) != (like.ratio as u64, like.dim as u64, like.width as u64) {
            return Err(bad("compressor geometry differs from the model"));
        }
        let n_partial = self.usize(like.ratio, "partial window")?;
        let has_prev = self.u64()? != 0;
        Ok(CompressorState {
            ratio: like.ratio,
            dim: like.dim,
            width: like.width,
            n_partial,
            has_prev,
            kv: self.f32s(like.kv.len())?,
            score: self.f32s(like.score.len())?,
            prev_kv: self.f32s(like.prev_kv.len())?,
            prev_score: self.f32s(like.prev_score.len())?,
        })
    }
}

/// Writes a session's state and checkpoints.
pub fn save(
    cfg: &ModelConfig,
    state: &SessionState,
    checkpoints: &[Checkpoint],
    w: &mut dyn Write,
) -> Result<()> {
    let io = |e: std::io::Error| bad(format!("write failed: {e}"));
    w.write_all(MAGIC).map_err(io)?;
    let mut e = Enc::new(w);
    e.u64(fingerprint(cfg)).map_err(io)?;
    state.encode(&mut e).map_err(io)?;
    e.u64(checkpoints.len() as u64).map_err(io)?;
    for c in checkpoints {
        c.encode(&mut e).map_err(io)?;
    }
    Ok(())
}

/// Reads a session saved by [`save`] into `state` (a fresh state of the same
/// model, used as the layout template); returns the checkpoints.
pub fn load(
    cfg: &ModelConfig,
    state: &mut SessionState,
    r: &mut dyn Read,
    len: u64,
) -> Result<Vec<Checkpoint>> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)
        .map_err(|e| bad(format!("read failed: {e}")))?;
    if &magic != MAGIC {
        return Err(bad("not a dsv4 session file (bad magic)"));
    }
    let mut d = Dec::new(r, len.saturating_sub(8));
    if d.u64()? != fingerprint(cfg) {
        return Err(bad("the session was saved with a different model"));
    }
    let restored = state.decode(&mut d)?;
    let n = d.usize(1 << 20, "checkpoint count")?;
    let mut cps = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        cps.push(Checkpoint::decode(&mut d, &restored)?);
    }
    *state = restored;
    Ok(cps)
}
