//! In-memory KV state of one session: raw sliding-window rows, compressed rows,
//! indexer keys and compressor frontiers, per layer; plus checkpoints that make
//! rewinding cheap.
//!
//! Rows are stored either as f32 (exact verification) or in the compact
//! layout (model-spec §5.7): the non-RoPE part of a KV row as FP8 E4M3 codes
//! with one power-of-two exponent byte per 64 values, the RoPE part as BF16;
//! indexer keys as FP4 E2M1 codes with one exponent byte per 32 values. With
//! the QAT simulation on, the values are already on those grids, so the compact
//! layout is lossless for them (tested). Compressed rows are append-only, which
//! is what makes truncation to an earlier position cheap: a [`Checkpoint`]
//! records only the frontier (raw window tail and compressor partial windows).

use half::bf16;

use crate::compressor::CompressorState;
use crate::config::{LayerKind, ModelConfig};
use crate::error::{ModelError, Result};
use crate::numerics::{E2M1_GRID, pow2_scale, round_e2m1, round_e4m3};

/// How KV rows are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvFormat {
    /// f32 rows: bit-exact with the forward pass.
    F32,
    /// FP8 nope + BF16 rope rows, FP4 indexer keys (≈3.5 KB/token for Flash).
    Compact,
}

/// Storage encoding of one row family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Enc {
    F32,
    /// FP8 E4M3 for the first `dim - rope` values (blocks of 64), BF16 for the rest.
    Fp8 {
        rope: usize,
    },
    /// FP4 E2M1 in blocks of 32.
    Fp4,
}

const FP8_BLOCK: usize = 64;
const FP4_BLOCK: usize = 32;

impl Enc {
    fn row_bytes(self, dim: usize) -> usize {
        match self {
            Enc::F32 => 4 * dim,
            Enc::Fp8 { rope } => {
                let nope = dim - rope;
                nope + nope.div_ceil(FP8_BLOCK) + 2 * rope
            }
            Enc::Fp4 => dim.div_ceil(2) + dim.div_ceil(FP4_BLOCK),
        }
    }
}

/// An append-only list of fixed-width rows in one encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct RowStore {
    enc: Enc,
    dim: usize,
    row_bytes: usize,
    /// f32 rows (exact format).
    f32s: Vec<f32>,
    /// Encoded rows (compact formats).
    bytes: Vec<u8>,
    n: usize,
}

fn exp_byte(s: f32) -> u8 {
    // s is a power of two: its biased exponent is the E8M0 byte (normals only;
    // block scales are far above the subnormal range).
    ((s.to_bits() >> 23) & 0xFF) as u8
}

fn from_exp_byte(b: u8) -> f32 {
    f32::from_bits(u32::from(b) << 23)
}

impl RowStore {
    fn new(enc: Enc, dim: usize) -> RowStore {
        RowStore {
            enc,
            dim,
            row_bytes: enc.row_bytes(dim),
            f32s: Vec::new(),
            bytes: Vec::new(),
            n: 0,
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Row width in values.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.n * self.row_bytes
    }

    /// Bytes per row.
    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }

    /// Keeps the first `n` rows.
    pub fn truncate(&mut self, n: usize) {
        let n = n.min(self.n);
        self.f32s
            .truncate(n * self.dim * usize::from(self.enc == Enc::F32));
        self.bytes
            .truncate(n * self.row_bytes * usize::from(self.enc != Enc::F32));
        self.n = n;
    }

    /// Drops the first `n` rows.
    fn drop_front(&mut self, n: usize) {
        let n = n.min(self.n);
        if self.enc == Enc::F32 {
            self.f32s.drain(..n * self.dim);
        } else {
            self.bytes.drain(..n * self.row_bytes);
        }
        self.n -= n;
    }

    /// Rows `[start, end)` without decoding, when stored as f32 (row-major).
    pub fn rows_f32(&self, start: usize, end: usize) -> Option<&[f32]> {
        (self.enc == Enc::F32 && start <= end && end <= self.n)
            .then(|| &self.f32s[start * self.dim..end * self.dim])
    }

    /// Rows `[start, end)` as f32: borrowed when stored as f32, decoded otherwise.
    pub fn rows_cow(&self, start: usize, end: usize) -> std::borrow::Cow<'_, [f32]> {
        match self.rows_f32(start, end) {
            Some(s) => std::borrow::Cow::Borrowed(s),
            None => {
                let end = end.min(self.n);
                let start = start.min(end);
                let mut v = vec![0.0f32; (end - start) * self.dim];
                for (j, i) in (start..end).enumerate() {
                    self.read(i, &mut v[j * self.dim..(j + 1) * self.dim]);
                }
                std::borrow::Cow::Owned(v)
            }
        }
    }

    /// Row `i` without decoding, when stored as f32.
    pub fn row_f32(&self, i: usize) -> Option<&[f32]> {
        (self.enc == Enc::F32 && i < self.n).then(|| &self.f32s[i * self.dim..(i + 1) * self.dim])
    }

    /// Appends a row.
    pub fn push(&mut self, row: &[f32]) {
        debug_assert_eq!(row.len(), self.dim);
        self.n += 1;
        let data = &mut self.bytes;
        match self.enc {
            Enc::F32 => self.f32s.extend_from_slice(row),
            Enc::Fp8 { rope } => {
                let nope = self.dim - rope;
                for block in row[..nope].chunks(FP8_BLOCK) {
                    let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    let s = pow2_scale(amax, 1e-4, 448.0);
                    data.push(exp_byte(s));
                    for &v in block {
                        data.push(e4m3_code(round_e4m3((v / s).clamp(-448.0, 448.0))));
                    }
                }
                for &v in &row[nope..] {
                    data.extend_from_slice(&bf16::from_f32(v).to_le_bytes());
                }
            }
            Enc::Fp4 => {
                for block in row.chunks(FP4_BLOCK) {
                    let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    let s = pow2_scale(amax, 6.0 * f32::MIN_POSITIVE, 6.0);
                    data.push(exp_byte(s));
                    for pair in block.chunks(2) {
                        let lo = e2m1_code(round_e2m1((pair[0] / s).clamp(-6.0, 6.0)));
                        let hi = pair
                            .get(1)
                            .map_or(0, |&v| e2m1_code(round_e2m1((v / s).clamp(-6.0, 6.0))));
                        data.push(lo | (hi << 4));
                    }
                }
            }
        }
    }

    /// Decodes row `i` into `out` (`[dim]`).
    pub fn read(&self, i: usize, out: &mut [f32]) {
        if let Some(r) = self.row_f32(i) {
            out.copy_from_slice(r);
            return;
        }
        let b = &self.bytes[i * self.row_bytes..(i + 1) * self.row_bytes];
        match self.enc {
            Enc::F32 => {}
            Enc::Fp8 { rope } => {
                let nope = self.dim - rope;
                let mut p = 0;
                let mut o = 0;
                while o < nope {
                    let n = FP8_BLOCK.min(nope - o);
                    let s = from_exp_byte(b[p]);
                    for j in 0..n {
                        out[o + j] = E4M3_TABLE[b[p + 1 + j] as usize] * s;
                    }
                    p += 1 + n;
                    o += n;
                }
                for (j, c) in b[p..].chunks_exact(2).enumerate() {
                    out[nope + j] = bf16::from_le_bytes([c[0], c[1]]).to_f32();
                }
            }
            Enc::Fp4 => {
                let mut p = 0;
                let mut o = 0;
                while o < self.dim {
                    let n = FP4_BLOCK.min(self.dim - o);
                    let s = from_exp_byte(b[p]);
                    for j in 0..n {
                        let byte = b[p + 1 + j / 2];
                        let code = if j % 2 == 0 { byte & 0xF } else { byte >> 4 };
                        out[o + j] = e2m1_value(code) * s;
                    }
                    p += 1 + n.div_ceil(2);
                    o += n;
                }
            }
        }
    }
}

/// The E4M3 code of a value already on the E4M3 grid.
fn e4m3_code(v: f32) -> u8 {
    let sign = if v.is_sign_negative() { 0x80u8 } else { 0 };
    let a = v.abs();
    if a == 0.0 {
        return sign;
    }
    let e = (a.to_bits() >> 23) as i32 - 127;
    if e < -6 {
        // Subnormal: a = m · 2^-9, m in 1..7.
        return sign | (a * 512.0) as u8;
    }
    let m = ((a / f32::from_bits(((e + 127) as u32) << 23) - 1.0) * 8.0) as u8;
    sign | (((e + 7) as u8) << 3) | m
}

fn e4m3_decode(c: u8) -> f32 {
    let sign = if c & 0x80 != 0 { -1.0 } else { 1.0 };
    let e = i32::from((c >> 3) & 0xF);
    let m = f32::from(c & 7);
    if e == 0 {
        return sign * m / 512.0;
    }
    if e == 15 && m == 7.0 {
        return f32::NAN;
    }
    sign * (1.0 + m / 8.0) * ((e - 7) as f32).exp2()
}

/// Decoded value of every E4M3 code.
static E4M3_TABLE: std::sync::LazyLock<[f32; 256]> = std::sync::LazyLock::new(|| {
    let mut t = [0.0f32; 256];
    for (i, v) in t.iter_mut().enumerate() {
        *v = e4m3_decode(i as u8);
    }
    t
});

fn e2m1_code(v: f32) -> u8 {
    let a = v.abs();
    let idx = E2M1_GRID.iter().position(|&g| g == a).unwrap_or(0) as u8;
    if v.is_sign_negative() && a != 0.0 {
        idx | 8
    } else {
        idx
    }
}

fn e2m1_value(c: u8) -> f32 {
    let m = E2M1_GRID[(c & 7) as usize];
    if c & 8 != 0 { -m } else { m }
}

/// Raw sliding-window rows: positions `[first_pos, first_pos + len)`.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRows {
    /// The rows.
    pub rows: RowStore,
    /// Position of the oldest row held.
    pub first_pos: usize,
}

impl RawRows {
    /// Row of absolute position `pos`, if held.
    pub fn index_of(&self, pos: usize) -> Option<usize> {
        pos.checked_sub(self.first_pos)
            .filter(|&i| i < self.rows.len())
    }

    /// Forgets rows before `pos` (amortised: only compacts once enough rows are dead).
    pub fn forget_before(&mut self, pos: usize, slack: usize) {
        let dead = pos.saturating_sub(self.first_pos).min(self.rows.len());
        if dead > slack {
            self.rows.drop_front(dead);
            self.first_pos += dead;
        }
    }
}

/// A compressor frontier plus the rows it has emitted.
#[derive(Debug, Clone, PartialEq)]
pub struct Compressed {
    /// Streaming state.
    pub state: CompressorState,
    /// Emitted rows (row w covers tokens `[w·r, (w+1)·r)`).
    pub rows: RowStore,
}

/// One layer's state.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerState {
    /// Raw window rows.
    pub raw: RawRows,
    /// Main compressor (CSA/HCA).
    pub comp: Option<Compressed>,
    /// Indexer compressor (CSA).
    pub index: Option<Compressed>,
}

/// One session's whole state.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionState {
    /// Tokens evaluated so far (the next token's position).
    pub pos: usize,
    /// Per-layer state.
    pub layers: Vec<LayerState>,
    /// Storage format.
    pub format: KvFormat,
    /// Raw rows kept beyond the window (lets short rewinds skip re-evaluation).
    pub raw_history: usize,
}

impl SessionState {
    /// A fresh state for a model configuration.
    pub fn new(cfg: &ModelConfig, format: KvFormat, raw_history: usize) -> SessionState {
        let (main, index) = match format {
            KvFormat::F32 => (Enc::F32, Enc::F32),
            KvFormat::Compact => (Enc::Fp8 { rope: cfg.rope_dim }, Enc::Fp4),
        };
        let layers = cfg
            .layers
            .iter()
            .map(|lc| LayerState {
                raw: RawRows {
                    rows: RowStore::new(main, cfg.head_dim),
                    first_pos: 0,
                },
                comp: (lc.kind != LayerKind::Swa).then(|| Compressed {
                    state: CompressorState::new(lc.ratio, cfg.head_dim, lc.compressor_width()),
                    rows: RowStore::new(main, cfg.head_dim),
                }),
                index: (lc.kind == LayerKind::Csa).then(|| Compressed {
                    state: CompressorState::new(lc.ratio, cfg.index_head_dim, 2),
                    rows: RowStore::new(index, cfg.index_head_dim),
                }),
            })
            .collect();
        SessionState {
            pos: 0,
            layers,
            format,
            raw_history,
        }
    }

    /// Forgets everything: back to position 0 (allocations are kept).
    pub fn reset(&mut self) {
        for l in &mut self.layers {
            l.raw.rows.truncate(0);
            l.raw.first_pos = 0;
            for c in [&mut l.comp, &mut l.index].into_iter().flatten() {
                c.rows.truncate(0);
                c.state = CompressorState::new(c.state.ratio, c.state.dim, c.state.width);
            }
        }
        self.pos = 0;
    }

    /// Bytes of KV rows held (raw + compressed + indexer keys).
    pub fn kv_bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|l| {
                l.raw.rows.bytes()
                    + l.comp.as_ref().map_or(0, |c| c.rows.bytes())
                    + l.index.as_ref().map_or(0, |c| c.rows.bytes())
            })
            .sum()
    }

    /// Bytes of compressor frontier state.
    pub fn frontier_bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|l| {
                l.comp.as_ref().map_or(0, |c| c.state.bytes())
                    + l.index.as_ref().map_or(0, |c| c.state.bytes())
            })
            .sum()
    }

    /// Records the frontier at the current position: enough to return here
    /// later by truncation (compressed rows are append-only).
    pub fn checkpoint(&self, window: usize) -> Checkpoint {
        let from = self.pos.saturating_sub(window.saturating_sub(1));
        let layers = self
            .layers
            .iter()
            .map(|l| {
                let mut raw = RowStore::new(l.raw.rows.enc, l.raw.rows.dim);
                let mut buf = vec![0.0; l.raw.rows.dim];
                for p in from..self.pos {
                    if let Some(i) = l.raw.index_of(p) {
                        l.raw.rows.read(i, &mut buf);
                        raw.push(&buf);
                    }
                }
                LayerCheckpoint {
                    raw,
                    comp: l.comp.as_ref().map(|c| (c.state.clone(), c.rows.len())),
                    index: l.index.as_ref().map(|c| (c.state.clone(), c.rows.len())),
                }
            })
            .collect();
        Checkpoint {
            pos: self.pos,
            raw_from: from,
            layers,
        }
    }

    /// Returns to a checkpoint taken earlier in this session's history.
    pub fn restore(&mut self, cp: &Checkpoint) -> Result<()> {
        if cp.pos > self.pos || cp.layers.len() != self.layers.len() {
            return Err(ModelError::Snapshot(format!(
                "checkpoint at position {} cannot restore a session at position {}",
                cp.pos, self.pos
            )));
        }
        for (l, c) in self.layers.iter_mut().zip(&cp.layers) {
            l.raw.rows = c.raw.clone();
            l.raw.first_pos = cp.raw_from;
            for (dst, src) in [(&mut l.comp, &c.comp), (&mut l.index, &c.index)] {
                match (dst, src) {
                    (Some(d), Some((state, n))) if *n <= d.rows.len() => {
                        d.state = state.clone();
                        d.rows.truncate(*n);
                    }
                    (None, None) => {}
                    _ => return Err(ModelError::Snapshot("layer structure differs".into())),
                }
            }
        }
        self.pos = cp.pos;
        Ok(())
    }

    /// Whether the raw rows needed to continue from `pos` (the window before it)
    /// are still held, so that truncating to `pos` needs only frontier replay.
    pub fn holds_raw_window_before(&self, pos: usize, window: usize) -> bool {
        let from = pos.saturating_sub(window.saturating_sub(1));
        self.layers.iter().all(|l| from >= l.raw.first_pos)
    }
}

/// The frontier of one layer at a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerCheckpoint {
    raw: RowStore,
    comp: Option<(CompressorState, usize)>,
    index: Option<(CompressorState, usize)>,
}

/// A restorable frontier of a session (no compressed rows: those are truncated).
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Position of the checkpoint.
    pub pos: usize,
    raw_from: usize,
    layers: Vec<LayerCheckpoint>,
}

impl Checkpoint {
    /// Bytes held by the checkpoint.
    pub fn bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|l| {
                l.raw.bytes()
                    + l.comp.as_ref().map_or(0, |(s, _)| s.bytes())
                    + l.index.as_ref().map_or(0, |(s, _)| s.bytes())
            })
            .sum()
    }
}

/// Bytes per token of compressed KV for a configuration and format, amortised
/// over a long context (the fixed raw windows excluded).
pub fn bytes_per_token(cfg: &ModelConfig, format: KvFormat) -> f64 {
    let (main, index) = match format {
        KvFormat::F32 => (Enc::F32, Enc::F32),
        KvFormat::Compact => (Enc::Fp8 { rope: cfg.rope_dim }, Enc::Fp4),
    };
    cfg.layers
        .iter()
        .map(|l| match l.kind {
            LayerKind::Swa => 0.0,
            LayerKind::Hca => main.row_bytes(cfg.head_dim) as f64 / l.ratio as f64,
            LayerKind::Csa => {
                (main.row_bytes(cfg.head_dim) + index.row_bytes(cfg.index_head_dim)) as f64
                    / l.ratio as f64
            }
        })
        .sum()
}

// ---- persistence (see persist.rs) ----

use crate::persist::{Dec, Enc as Writer};

impl Enc {
    fn tag(self) -> u64 {
        match self {
            Enc::F32 => 0,
            Enc::Fp8 { rope } => 1 | ((rope as u64) << 8),
            Enc::Fp4 => 2,
        }
    }
}

impl RowStore {
    fn encode(&self, e: &mut Writer<'_>) -> std::io::Result<()> {
        e.u64(self.enc.tag())?;
        e.u64(self.dim as u64)?;
        e.u64(self.n as u64)?;
        if self.enc == Enc::F32 {
            let b: Vec<u8> = self.f32s.iter().flat_map(|v| v.to_le_bytes()).collect();
            e.bytes(&b)
        } else {
            e.bytes(&self.bytes)
        }
    }

    fn decode(d: &mut Dec<'_>, like: &RowStore) -> Result<RowStore> {
        let bad = |m: &str| ModelError::Snapshot(m.to_string());
        if d.u64()? != like.enc.tag() || d.u64()? != like.dim as u64 {
            return Err(bad(
                "KV row format differs (saved with another --kv setting or model)",
            ));
        }
        let n = d.u64()? as usize;
        let data = d.bytes()?;
        if data.len() != n.saturating_mul(like.row_bytes) {
            return Err(bad("KV row data has the wrong length"));
        }
        let mut s = RowStore::new(like.enc, like.dim);
        s.n = n;
        if like.enc == Enc::F32 {
            s.f32s = data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
        } else {
            s.bytes = data;
        }
        Ok(s)
    }
}

impl SessionState {
    pub(crate) fn encode(&self, e: &mut Writer<'_>) -> std::io::Result<()> {
        e.u64(self.pos as u64)?;
        e.u64(self.raw_history as u64)?;
        e.u64(self.layers.len() as u64)?;
        for l in &self.layers {
            e.u64(l.raw.first_pos as u64)?;
            l.raw.rows.encode(e)?;
            for c in [&l.comp, &l.index].into_iter().flatten() {
                e.comp(&c.state)?;
                c.rows.encode(e)?;
            }
        }
        Ok(())
    }

    /// Decodes into a new state shaped like `self`.
    pub(crate) fn decode(&self, d: &mut Dec<'_>) -> Result<SessionState> {
        let mut out = self.clone();
        out.pos = d.u64()? as usize;
        out.raw_history = d.usize(1 << 30, "raw history")?;
        if d.u64()? != self.layers.len() as u64 {
            return Err(ModelError::Snapshot("layer count differs".into()));
        }
        for l in &mut out.layers {
            l.raw.first_pos = d.usize(out.pos, "raw window start")?;
            l.raw.rows = RowStore::decode(d, &l.raw.rows)?;
            for c in [&mut l.comp, &mut l.index].into_iter().flatten() {
                c.state = d.comp(&c.state)?;
                c.rows = RowStore::decode(d, &c.rows)?;
            }
        }
        Ok(out)
    }
}

impl Checkpoint {
    pub(crate) fn encode(&self, e: &mut Writer<'_>) -> std::io::Result<()> {
        e.u64(self.pos as u64)?;
        e.u64(self.raw_from as u64)?;
        for l in &self.layers {
            l.raw.encode(e)?;
            for (s, n) in [&l.comp, &l.index].into_iter().flatten() {
                e.comp(s)?;
                e.u64(*n as u64)?;
            }
        }
        Ok(())
    }

    pub(crate) fn decode(d: &mut Dec<'_>, like: &SessionState) -> Result<Checkpoint> {
        let pos = d.usize(like.pos, "checkpoint position")?;
        let raw_from = d.usize(pos, "checkpoint window start")?;
        let mut layers = Vec::with_capacity(like.layers.len());
        for l in &like.layers {
            let raw = RowStore::decode(d, &l.raw.rows)?;
            let mut comp = None;
            let mut index = None;
            for (slot, src) in [(&mut comp, &l.comp), (&mut index, &l.index)] {
                if let Some(c) = src {
                    let s = d.comp(&c.state)?;
                    let n = d.usize(c.rows.len(), "checkpoint row count")?;
                    *slot = Some((s, n));
                }
            }
            layers.push(LayerCheckpoint { raw, comp, index });
        }
        Ok(Checkpoint {
            pos,
            raw_from,
            layers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numerics::{fp4_roundtrip, fp8_roundtrip};

    #[test]
    fn e4m3_codes_roundtrip_every_value() {
        for c in 0u8..=255 {
            let v = e4m3_decode(c);
            if v.is_nan() || (c == 0x80) {
                continue;
            }
            assert_eq!(e4m3_code(v), c, "code {c:#x} value {v}");
        }
    }

    #[test]
    fn compact_rows_are_lossless_after_qat_rounding() {
        let dim = 192;
        let rope = 64;
        let mut row: Vec<f32> = (0..dim)
            .map(|i| ((i * 7919 % 211) as f32 - 100.0) * 0.037)
            .collect();
        row[5] = 0.0;
        row[70] = -1e-6;
        fp8_roundtrip(&mut row[..dim - rope], 64);
        for v in &mut row[dim - rope..] {
            *v = bf16::from_f32(*v).to_f32();
        }
        let mut s = RowStore::new(Enc::Fp8 { rope }, dim);
        s.push(&row);
        assert_eq!(s.row_bytes(), 128 + 2 + 128);
        let mut out = vec![0.0; dim];
        s.read(0, &mut out);
        assert_eq!(out, row);

        let mut key: Vec<f32> = (0..128)
            .map(|i| ((i * 31 % 97) as f32 - 48.0) * 0.21)
            .collect();
        fp4_roundtrip(&mut key, 32);
        let mut s = RowStore::new(Enc::Fp4, 128);
        s.push(&key);
        assert_eq!(s.row_bytes(), 68);
        let mut out = vec![0.0; 128];
        s.read(0, &mut out);
        assert_eq!(out, key);
    }
}
