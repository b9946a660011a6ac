//! A session: one conversation's tokens, KV state and frontier checkpoints,
//! and the cheap rewind they allow.
//!
//! Compressed rows are append-only, so returning to an earlier position only
//! needs the frontier there (raw window tail and compressor partial windows).
//! Checkpoints are taken at multiples of `interval` (a multiple of every
//! compression ratio, so no compressor holds a partial window and checkpoints
//! stay small) and thinned out with age: all of the recent ones are kept,
//! older ones sparsely. Rewinding to position `p` restores the nearest
//! checkpoint `c ≤ p` and re-evaluates the known tokens `c..p`, which is at
//! most `interval − 1` tokens within the recent range and at most `sparse`
//! tokens beyond it, never a full re-prefill.

use dsv4_model::{Backend, Model, SessionStateOps};

/// First bytes of a session file.
const SESSION_MAGIC: &[u8; 8] = b"DSV4SES1";

/// Checkpoint policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// Spacing of checkpoints (a multiple of every compression ratio).
    pub interval: usize,
    /// All checkpoints within this many tokens of the end are kept.
    pub recent: usize,
    /// Beyond that, one checkpoint per this many tokens is kept.
    pub sparse: usize,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        CheckpointPolicy {
            interval: 128,
            recent: 2048,
            sparse: 4096,
        }
    }
}

/// One conversation's state.
#[derive(Debug)]
pub struct Session<B: Backend> {
    /// Tokens evaluated, in order (`tokens.len() == state.pos()`).
    pub tokens: Vec<u32>,
    /// Backend state.
    pub state: B::State,
    checkpoints: Vec<<B::State as SessionStateOps>::Checkpoint>,
    policy: CheckpointPolicy,
    /// Logits after the last evaluated token (lets an identical prompt, e.g. a
    /// regenerate, start sampling without evaluating anything).
    pub last_logits: Option<Vec<f32>>,
    /// Off-grid checkpoints at the ends of recent prompts, with their logits:
    /// a regenerate or an edit after a prompt restores one and evaluates nothing.
    marks: Vec<(<B::State as SessionStateOps>::Checkpoint, Vec<f32>)>,
}

/// Off-grid marks kept per session.
const MAX_MARKS: usize = 4;

/// How a rewind was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewind {
    /// Position restored from (a checkpoint, or the current position).
    pub from: usize,
    /// Tokens that must be re-evaluated to reach the target.
    pub replay: usize,
}

impl<B: Backend> Session<B> {
    /// An empty session.
    pub fn new(backend: &B, model: &Model, policy: CheckpointPolicy) -> Self {
        let state = backend.new_state(model);
        let mut s = Session {
            tokens: Vec::new(),
            state,
            checkpoints: Vec::new(),
            policy,
            last_logits: None,
            marks: Vec::new(),
        };
        s.checkpoints
            .push(<B::State as SessionStateOps>::checkpoint(
                &s.state,
                model.cfg.window,
            ));
        s
    }

    /// Tokens evaluated.
    pub fn pos(&self) -> usize {
        self.tokens.len()
    }

    /// The checkpoint spacing.
    pub fn interval(&self) -> usize {
        self.policy.interval
    }

    /// Length of the common prefix of this session's tokens and `other`.
    pub fn common_prefix(&self, other: &[u32]) -> usize {
        self.tokens
            .iter()
            .zip(other)
            .take_while(|(a, b)| a == b)
            .count()
    }

    /// Call after evaluating tokens: records their ids, and takes a checkpoint
    /// when the position lands on the checkpoint grid.
    pub fn commit(&mut self, tokens: &[u32], window: usize) {
        self.last_logits = None;
        self.tokens.extend_from_slice(tokens);
        debug_assert_eq!(self.tokens.len(), self.state.pos());
        let pos = self.pos();
        if pos.is_multiple_of(self.policy.interval)
            && self
                .checkpoints
                .last()
                .is_none_or(|c| B::State::checkpoint_pos(c) < pos)
        {
            self.checkpoints
                .push(<B::State as SessionStateOps>::checkpoint(
                    &self.state,
                    window,
                ));
            self.thin();
        }
    }

    /// Drops old checkpoints according to the policy (position 0 is always kept).
    fn thin(&mut self) {
        let end = self.pos();
        let p = self.policy;
        self.checkpoints.retain(|c| {
            let at = B::State::checkpoint_pos(c);
            at == 0 || at + p.recent >= end || at.is_multiple_of(p.sparse)
        });
    }

    /// Records an off-grid checkpoint here with the logits after the last token.
    pub fn mark(&mut self, window: usize, logits: Vec<f32>) {
        let pos = self.pos();
        self.marks
            .retain(|(c, _)| B::State::checkpoint_pos(c) != pos);
        if self.marks.len() == MAX_MARKS {
            self.marks.remove(0);
        }
        self.marks.push((
            <B::State as SessionStateOps>::checkpoint(&self.state, window),
            logits,
        ));
    }

    /// Restores the mark at exactly `pos` (which must lie within the tokens
    /// shared with the caller's prompt); returns its logits.
    pub fn restore_mark(&mut self, pos: usize) -> Option<Vec<f32>> {
        let i = self
            .marks
            .iter()
            .position(|(c, _)| B::State::checkpoint_pos(c) == pos)?;
        if pos > self.pos() {
            return None;
        }
        let (cp, logits) = self.marks[i].clone();
        self.state.restore(&cp).ok()?;
        self.tokens.truncate(pos);
        self.drop_after(pos);
        self.last_logits = Some(logits.clone());
        Some(logits)
    }

    /// Forgets checkpoints and marks past `pos` (their tokens are being replaced).
    fn drop_after(&mut self, pos: usize) {
        self.checkpoints
            .retain(|c| B::State::checkpoint_pos(c) <= pos);
        self.marks
            .retain(|(c, _)| B::State::checkpoint_pos(c) <= pos);
    }

    /// Rewinds to `target ≤ pos()`: restores the nearest checkpoint or mark and
    /// returns the tokens to re-evaluate (the caller feeds them through the model).
    pub fn rewind(&mut self, target: usize) -> dsv4_model::Result<(Rewind, Vec<u32>)> {
        let pos = self.pos();
        if target >= pos {
            return Ok((
                Rewind {
                    from: pos,
                    replay: 0,
                },
                Vec::new(),
            ));
        }
        let best_mark = self
            .marks
            .iter()
            .map(|(c, _)| B::State::checkpoint_pos(c))
            .filter(|&p| p <= target)
            .max();
        let best_grid = self
            .checkpoints
            .iter()
            .map(B::State::checkpoint_pos)
            .filter(|&p| p <= target)
            .max();
        if let Some(m) = best_mark
            && best_grid.is_none_or(|g| m > g)
            && let Some(i) = self
                .marks
                .iter()
                .position(|(c, _)| B::State::checkpoint_pos(c) == m)
        {
            let cp = self.marks[i].0.clone();
            self.state.restore(&cp)?;
            let replay = self.tokens[m..target].to_vec();
            self.tokens.truncate(m);
            self.drop_after(m);
            self.last_logits = None;
            return Ok((
                Rewind {
                    from: m,
                    replay: replay.len(),
                },
                replay,
            ));
        }
        let idx = self
            .checkpoints
            .iter()
            .rposition(|c| B::State::checkpoint_pos(c) <= target)
            .ok_or_else(|| {
                dsv4_model::ModelError::Snapshot("no checkpoint at or before the target".into())
            })?;
        self.last_logits = None;
        let cp = self.checkpoints[idx].clone();
        let from = B::State::checkpoint_pos(&cp);
        self.state.restore(&cp)?;
        let replay = self.tokens[from..target].to_vec();
        self.tokens.truncate(from);
        self.drop_after(from);
        tracing::debug!(from, target, "rewind");
        Ok((
            Rewind {
                from,
                replay: replay.len(),
            },
            replay,
        ))
    }

    /// Forgets everything.
    pub fn reset(&mut self, window: usize) {
        self.last_logits = None;
        self.marks.clear();
        self.state.reset();
        self.tokens.clear();
        self.checkpoints.clear();
        self.checkpoints
            .push(<B::State as SessionStateOps>::checkpoint(
                &self.state,
                window,
            ));
    }

    /// Bytes held: KV rows, frontier and checkpoints.
    pub fn bytes(&self) -> usize {
        self.state.kv_bytes()
            + self
                .checkpoints
                .iter()
                .map(B::State::checkpoint_bytes)
                .sum::<usize>()
            + self
                .marks
                .iter()
                .map(|(c, l)| B::State::checkpoint_bytes(c) + 4 * l.len())
                .sum::<usize>()
    }

    /// Writes the session (tokens, KV state, checkpoints) to `path` atomically.
    pub fn save_to(&self, model: &Model, path: &std::path::Path) -> Result<(), String> {
        let tmp = path.with_extension("partial");
        let res = (|| -> Result<(), String> {
            let f = std::fs::File::create(&tmp)
                .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
            let mut w = std::io::BufWriter::new(f);
            use std::io::Write;
            w.write_all(SESSION_MAGIC).map_err(|e| e.to_string())?;
            w.write_all(&(self.tokens.len() as u64).to_le_bytes())
                .map_err(|e| e.to_string())?;
            for t in &self.tokens {
                w.write_all(&t.to_le_bytes()).map_err(|e| e.to_string())?;
            }
            let logits = self.last_logits.as_deref().unwrap_or(&[]);
            w.write_all(&(logits.len() as u64).to_le_bytes())
                .map_err(|e| e.to_string())?;
            for v in logits {
                w.write_all(&v.to_le_bytes()).map_err(|e| e.to_string())?;
            }
            self.state
                .save(model, &self.checkpoints, &mut w)
                .map_err(|e| e.to_string())?;
            let f = w.into_inner().map_err(|e| e.to_string())?;
            f.sync_all().map_err(|e| e.to_string())?;
            std::fs::rename(&tmp, path)
                .map_err(|e| format!("cannot rename into {}: {e}", path.display()))
        })();
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        res
    }

    /// Replaces this session with one saved by [`Session::save_to`]. On error
    /// the session is unchanged.
    pub fn load_from(
        &mut self,
        backend: &B,
        model: &Model,
        path: &std::path::Path,
    ) -> Result<(), String> {
        use std::io::Read;
        let f = std::fs::File::open(path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let len = f.metadata().map_err(|e| e.to_string())?.len();
        let mut r = std::io::BufReader::new(f);
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)
            .map_err(|_| "not a dsv4 session file".to_string())?;
        if &magic != SESSION_MAGIC {
            return Err(format!("{} is not a dsv4 session file", path.display()));
        }
        let mut b = [0u8; 8];
        r.read_exact(&mut b).map_err(|e| e.to_string())?;
        let n = u64::from_le_bytes(b);
        if n > len / 4 {
            return Err("corrupt session file (token count)".into());
        }
        let mut tokens = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let mut t = [0u8; 4];
            r.read_exact(&mut t).map_err(|e| e.to_string())?;
            tokens.push(u32::from_le_bytes(t));
        }
        r.read_exact(&mut b).map_err(|e| e.to_string())?;
        let nl = u64::from_le_bytes(b);
        if nl != 0 && nl != model.cfg.n_vocab as u64 {
            return Err("corrupt session file (logits length)".into());
        }
        let mut raw = vec![0u8; 4 * nl as usize];
        r.read_exact(&mut raw).map_err(|e| e.to_string())?;
        let logits: Vec<f32> = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let mut state = backend.new_state(model);
        let rest = len
            .checked_sub(24 + 4 * n + 4 * nl)
            .ok_or("corrupt session file (truncated)")?;
        let cps = state.load(model, &mut r, rest).map_err(|e| e.to_string())?;
        if state.pos() != tokens.len() || cps.is_empty() {
            return Err("corrupt session file (position mismatch)".into());
        }
        self.state = state;
        self.tokens = tokens;
        self.checkpoints = cps;
        self.marks.clear();
        self.last_logits = (!logits.is_empty()).then_some(logits);
        Ok(())
    }

    /// Number of checkpoints held.
    pub fn n_checkpoints(&self) -> usize {
        self.checkpoints.len()
    }
}
