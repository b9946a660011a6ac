//! The engine thread: admits requests to resident sessions (longest shared
//! prefix, or the caller's session key), rewinds sessions cheaply, and runs
//! one forward pass per iteration that batches every decoding request's next
//! token with at most one prefill chunk (round-robin over prefilling
//! requests), so a long prompt never stalls the others and decode of several
//! sessions reads each weight once. Cancellation is checked every iteration.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use dsv4_model::{Backend, Model, RowMeta, Scratch, forward};
use dsv4_tokenizer::{SpecialToken, Tokenizer};
use tokio::sync::mpsc::UnboundedSender;

use crate::detok::Utf8Assembler;
use crate::error::EngineError;
use crate::request::{FinishReason, GenerationRequest, Sampled, TokenEvent, Usage};
use crate::sampling::Sampler;
use crate::session::{CheckpointPolicy, Session};
use crate::stats::Stats;
use crate::stop::{StopMatcher, StopOutcome};

/// The scalar settings of a request, copied out so the request stays mutable.
#[derive(Debug, Clone, Copy)]
struct ReqFlags {
    logprobs: bool,
    top_logprobs: usize,
    ignore_eos: bool,
    greedy_dsml: bool,
    max_tokens: Option<usize>,
    thinking: crate::request::Thinking,
}

impl ReqFlags {
    fn of(r: &GenerationRequest) -> Self {
        ReqFlags {
            logprobs: r.logprobs,
            top_logprobs: r.top_logprobs,
            ignore_eos: r.ignore_eos,
            greedy_dsml: r.greedy_dsml,
            max_tokens: r.max_tokens,
            thinking: r.thinking,
        }
    }
}

/// Messages to the engine thread.
#[derive(Debug)]
pub(crate) enum Command {
    Submit(Box<Submitted>),
    /// Save the session with this key to a file.
    Save {
        key: String,
        path: std::path::PathBuf,
        reply: std::sync::mpsc::Sender<Result<usize, EngineError>>,
    },
    /// Load a saved session under this key.
    Load {
        key: String,
        path: std::path::PathBuf,
        reply: std::sync::mpsc::Sender<Result<usize, EngineError>>,
    },
    /// Forget the session with this key.
    Forget {
        key: String,
    },
    Shutdown,
}

/// A request with its channel and cancel flag.
#[derive(Debug)]
pub(crate) struct Submitted {
    pub id: u64,
    pub req: GenerationRequest,
    pub events: UnboundedSender<TokenEvent>,
    pub cancel: Arc<AtomicBool>,
}

/// Engine-thread settings.
#[derive(Debug, Clone)]
pub(crate) struct WorkerConfig {
    pub ctx: usize,
    pub sessions: usize,
    pub prefill_chunk: usize,
    pub policy: CheckpointPolicy,
}

struct Slot<B: Backend> {
    session: Option<Session<B>>,
    busy: bool,
    key: Option<String>,
    last_used: Instant,
    /// Length of the prompt of the last request served here (0: empty). A new
    /// request continues this conversation only if it contains nearly all of it.
    prompt_len: usize,
}

impl<B: Backend> Slot<B> {
    fn lcp(&self, prompt: &[u32]) -> usize {
        self.session.as_ref().map_or(0, |x| x.common_prefix(prompt))
    }

    fn is_empty(&self) -> bool {
        self.session.as_ref().is_none_or(|x| x.pos() == 0)
    }

    /// Whether a prompt sharing `lcp` tokens with this slot continues its
    /// conversation: it keeps more than half of the slot's last prompt, i.e.
    /// taking the slot over saves more evaluation now than it would cost the
    /// conversation later (a next turn, a regenerate, an edited tail). A side
    /// request (title, summary, sub-agent) sharing only the system prompt of a
    /// longer conversation does not, and must not take the slot over.
    fn continued_by(&self, lcp: usize) -> bool {
        let p = self.prompt_len;
        p > 0 && 2 * lcp > p
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Prefill,
    Decode,
}

struct Active {
    sub: Submitted,
    slot: usize,
    phase: Phase,
    /// Tokens still to evaluate (replay, then the prompt suffix), and the cursor.
    pending: Vec<u32>,
    cursor: usize,
    /// Sampled token waiting to be evaluated.
    next: Option<u32>,
    /// Logits to sample from before the next pass (a fully cached prompt).
    ready: Option<Vec<f32>>,
    sampler: Sampler,
    stop: StopMatcher,
    utf8: Utf8Assembler,
    usage: Usage,
    in_reasoning: bool,
    dsml_greedy: bool,
    t_start: Instant,
    t_decode: Option<Instant>,
}

pub(crate) struct Worker<B: Backend> {
    model: Arc<Model>,
    backend: Arc<B>,
    tok: Arc<Tokenizer>,
    cfg: WorkerConfig,
    slots: Vec<Slot<B>>,
    queue: VecDeque<Submitted>,
    active: Vec<Active>,
    rr: usize,
    scratch: Scratch,
    stats: Arc<Stats>,
}

fn send(a: &Active, ev: TokenEvent) {
    // A closed channel is noticed by the cancellation check.
    let _ = a.sub.events.send(ev);
}

impl<B: Backend> Worker<B> {
    pub(crate) fn new(
        model: Arc<Model>,
        backend: Arc<B>,
        tok: Arc<Tokenizer>,
        cfg: WorkerConfig,
        stats: Arc<Stats>,
    ) -> Self {
        let slots = (0..cfg.sessions)
            .map(|_| Slot {
                session: None,
                busy: false,
                key: None,
                last_used: Instant::now(),
                prompt_len: 0,
            })
            .collect();
        Worker {
            model,
            backend,
            tok,
            cfg,
            slots,
            queue: VecDeque::new(),
            active: Vec::new(),
            rr: 0,
            scratch: Scratch::default(),
            stats,
        }
    }

    /// Runs until shutdown or until every sender is gone.
    pub(crate) fn run(mut self, rx: std::sync::mpsc::Receiver<Command>) {
        loop {
            let idle = self.active.is_empty() && self.queue.is_empty();
            let cmd = if idle {
                rx.recv().ok()
            } else {
                rx.try_recv().ok()
            };
            match cmd {
                Some(Command::Submit(s)) => {
                    self.stats.queued(1);
                    self.queue.push_back(*s);
                    continue; // drain every pending command first
                }
                Some(Command::Save { key, path, reply }) => {
                    let _ = reply.send(self.save_session(&key, &path));
                    continue;
                }
                Some(Command::Load { key, path, reply }) => {
                    let _ = reply.send(self.load_session(&key, &path));
                    continue;
                }
                Some(Command::Forget { key }) => {
                    if let Some(sl) = self
                        .slots
                        .iter_mut()
                        .find(|s| s.key.as_deref() == Some(key.as_str()) && !s.busy)
                    {
                        sl.key = None;
                        sl.prompt_len = 0;
                        if let Some(s) = sl.session.as_mut() {
                            s.reset(self.model.cfg.window);
                        }
                    }
                    continue;
                }
                Some(Command::Shutdown) => break,
                None if idle => break, // all senders dropped
                None => {}
            }
            self.cancel_dead();
            self.admit();
            if !self.active.is_empty()
                && let Err(e) = self.step()
            {
                // A model error fails every request in the batch; sessions are reset.
                for a in self.active.drain(..) {
                    send(&a, TokenEvent::Error(e.clone()));
                    if let Some(s) = self.slots[a.slot].session.as_mut() {
                        s.reset(self.model.cfg.window);
                    }
                    self.slots[a.slot].busy = false;
                    self.slots[a.slot].prompt_len = 0;
                }
            }
        }
    }

    fn save_session(&mut self, key: &str, path: &std::path::Path) -> Result<usize, EngineError> {
        let sl = self
            .slots
            .iter()
            .find(|s| s.key.as_deref() == Some(key))
            .ok_or_else(|| {
                EngineError::SessionFile(format!("no resident session named {key:?}"))
            })?;
        if sl.busy {
            return Err(EngineError::SessionFile(format!(
                "session {key:?} is generating; try again when it is idle"
            )));
        }
        let s = sl
            .session
            .as_ref()
            .ok_or_else(|| EngineError::SessionFile(format!("session {key:?} is empty")))?;
        s.save_to(&self.model, path)
            .map_err(EngineError::SessionFile)?;
        Ok(s.pos())
    }

    fn load_session(&mut self, key: &str, path: &std::path::Path) -> Result<usize, EngineError> {
        let idx = match self
            .slots
            .iter()
            .position(|s| s.key.as_deref() == Some(key))
        {
            Some(i) => i,
            None => self
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.busy)
                .min_by_key(|(_, s)| (s.key.is_some(), s.last_used))
                .map(|(i, _)| i)
                .ok_or_else(|| EngineError::SessionFile("every session is busy".into()))?,
        };
        let (backend, model, policy) = (
            Arc::clone(&self.backend),
            Arc::clone(&self.model),
            self.cfg.policy,
        );
        let sl = &mut self.slots[idx];
        if sl.busy {
            return Err(EngineError::SessionFile(format!(
                "session {key:?} is generating"
            )));
        }
        let s = sl
            .session
            .get_or_insert_with(|| Session::new(&*backend, &model, policy));
        s.load_from(&backend, &model, path)
            .map_err(EngineError::SessionFile)?;
        sl.key = Some(key.to_string());
        sl.last_used = Instant::now();
        sl.prompt_len = s.pos();
        Ok(s.pos())
    }

    fn cancel_dead(&mut self) {
        let mut i = 0;
        while i < self.active.len() {
            let a = &self.active[i];
            if a.sub.cancel.load(Ordering::Relaxed) || a.sub.events.is_closed() {
                let a = self.active.swap_remove(i);
                self.finish(a, FinishReason::Cancelled);
            } else {
                i += 1;
            }
        }
        self.queue.retain(|s| {
            let dead = s.cancel.load(Ordering::Relaxed) || s.events.is_closed();
            if dead {
                let _ = s.events.send(TokenEvent::Finished {
                    reason: FinishReason::Cancelled,
                    usage: Usage::default(),
                });
            }
            !dead
        });
        self.stats.set_queue(self.queue.len());
    }

    /// Picks a slot for a request, and whether the slot takes the request's
    /// session key. In order: the slot holding the request's key, if the
    /// request continues its conversation (waiting while it is busy); an idle
    /// slot whose conversation the request continues (longest shared prefix);
    /// an empty slot; the least recently used idle slot, unkeyed ones first.
    /// A request that merely shares a prefix (a title or summary side request,
    /// even under the same key) therefore never rewinds a conversation while
    /// an empty slot exists, and never takes its key.
    fn pick_slot(&self, s: &Submitted) -> Option<(usize, bool)> {
        let prompt = &s.req.prompt;
        if let Some(k) = &s.req.session_key
            && let Some(i) = self
                .slots
                .iter()
                .position(|sl| sl.key.as_deref() == Some(k))
        {
            let sl = &self.slots[i];
            if sl.is_empty() || sl.continued_by(sl.lcp(prompt)) {
                return (!sl.busy).then_some((i, true));
            }
            return self.pick_unowned(prompt).map(|i| (i, false));
        }
        self.pick_unowned(prompt).map(|i| (i, true))
    }

    fn pick_unowned(&self, prompt: &[u32]) -> Option<usize> {
        let idle = || self.slots.iter().enumerate().filter(|(_, sl)| !sl.busy);
        idle()
            .filter(|(_, sl)| sl.continued_by(sl.lcp(prompt)))
            .max_by_key(|(_, sl)| (sl.lcp(prompt), std::cmp::Reverse(sl.last_used)))
            .or_else(|| idle().find(|(_, sl)| sl.is_empty() && sl.key.is_none()))
            .or_else(|| idle().min_by_key(|(_, sl)| (sl.key.is_some(), sl.last_used)))
            .map(|(i, _)| i)
    }

    fn admit(&mut self) {
        let mut waiting = VecDeque::new();
        while let Some(s) = self.queue.pop_front() {
            match self.pick_slot(&s) {
                Some((slot, adopt_key)) => self.start(s, slot, adopt_key),
                None => waiting.push_back(s),
            }
        }
        self.queue = waiting;
        self.stats.set_queue(self.queue.len());
    }

    fn start(&mut self, s: Submitted, slot: usize, adopt_key: bool) {
        let fail = |s: &Submitted, e: EngineError| {
            let _ = s.events.send(TokenEvent::Error(e));
        };
        let n = s.req.prompt.len();
        if n == 0 {
            return fail(
                &s,
                EngineError::InvalidRequest("the prompt is empty".into()),
            );
        }
        if n >= self.cfg.ctx {
            return fail(
                &s,
                EngineError::ContextOverflow {
                    prompt: n,
                    ctx: self.cfg.ctx,
                },
            );
        }
        if let Err(m) = s.req.sampling.validate() {
            return fail(&s, EngineError::InvalidRequest(m));
        }
        if let Some(&bad) = s
            .req
            .prompt
            .iter()
            .find(|&&t| t as usize >= self.model.cfg.n_vocab)
        {
            return fail(
                &s,
                EngineError::InvalidRequest(format!("token id {bad} is outside the vocabulary")),
            );
        }
        let window = self.model.cfg.window;
        let sl = &mut self.slots[slot];
        // A side request routed away from its key's slot leaves this slot unkeyed.
        let key = if adopt_key {
            s.req.session_key.clone()
        } else {
            None
        };
        if sl.key != key {
            sl.key = key;
        }
        sl.prompt_len = n;
        let session = sl
            .session
            .get_or_insert_with(|| Session::new(&*self.backend, &self.model, self.cfg.policy));
        // A prompt equal to everything evaluated, with the logits kept: sample at once.
        let lcp = session.common_prefix(&s.req.prompt);
        let ready = if lcp == n && session.pos() == n {
            session.last_logits.clone()
        } else if lcp == n {
            // The prompt ends where an earlier prompt ended (regenerate, edited tail).
            session.restore_mark(n)
        } else {
            None
        };
        // Otherwise reuse the shared prefix, but evaluate at least the last prompt token.
        let target = if ready.is_some() { n } else { lcp.min(n - 1) };
        let (rw, replay) = match session.rewind(target) {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("session rewind failed ({e}); starting the session over");
                session.reset(window);
                (crate::session::Rewind { from: 0, replay: 0 }, Vec::new())
            }
        };
        let from = rw.from.min(target);
        let mut pending = replay;
        pending.extend_from_slice(&s.req.prompt[session.pos() + pending.len()..]);
        sl.busy = true;
        sl.last_used = Instant::now();
        tracing::debug!(
            id = s.id,
            slot,
            prompt = n,
            reused = target,
            "request admitted"
        );
        let usage = Usage {
            prompt_tokens: n,
            cached_tokens: from,
            replayed_tokens: rw.replay,
            ..Default::default()
        };
        self.stats.admitted(from, n);
        let _ = s.events.send(TokenEvent::Started {
            prompt_tokens: n,
            cached_tokens: from,
        });
        let sampler = Sampler::new(s.req.sampling.clone());
        let stop = StopMatcher::new(&s.req.stop);
        let in_reasoning = s.req.thinking.starts_in_reasoning;
        let phase = if ready.is_some() {
            Phase::Decode
        } else {
            Phase::Prefill
        };
        self.active.push(Active {
            sub: s,
            slot,
            phase,
            ready,
            pending,
            cursor: 0,
            next: None,
            sampler,
            stop,
            utf8: Utf8Assembler::default(),
            usage,
            in_reasoning,
            dsml_greedy: false,
            t_start: Instant::now(),
            t_decode: None,
        });
    }

    /// One step: a forward pass over all decoding requests, and one over
    /// the next prefill chunk of one prefilling request (round robin).
    fn step(&mut self) -> Result<(), EngineError> {
        // Requests whose prompt was entirely cached sample before any pass.
        let mut done: Vec<(usize, FinishReason)> = Vec::new();
        for (i, a) in self.active.iter_mut().enumerate() {
            if let Some(mut l) = a.ready.take() {
                a.t_decode = Some(Instant::now());
                let pos = self.slots[a.slot].session.as_ref().map_or(0, |s| s.pos());
                if let Some(reason) = Self::sample(&self.tok, a, &mut l, pos, self.cfg.ctx) {
                    done.push((i, reason));
                }
            }
        }
        self.finish_all(done);
        // (active index, tokens this step, wants logits)
        let mut plan: Vec<(usize, Vec<u32>, bool)> = Vec::new();
        for (i, a) in self.active.iter().enumerate() {
            if a.phase == Phase::Decode
                && let Some(t) = a.next
            {
                plan.push((i, vec![t], true));
            }
        }
        let prefilling: Vec<usize> = (0..self.active.len())
            .filter(|&i| self.active[i].phase == Phase::Prefill)
            .collect();
        if !prefilling.is_empty() {
            let i = prefilling[self.rr % prefilling.len()];
            self.rr = self.rr.wrapping_add(1);
            let a = &self.active[i];
            let pos = self.slots[a.slot].session.as_ref().map_or(0, |s| s.pos());
            let interval = self.cfg.policy.interval;
            // End chunks on the checkpoint grid so checkpoints land exactly on it.
            let to_grid = interval - pos % interval;
            let take = self
                .cfg
                .prefill_chunk
                .min(to_grid)
                .min(a.pending.len() - a.cursor)
                .max(1);
            let chunk = a.pending[a.cursor..a.cursor + take].to_vec();
            let last = a.cursor + take == a.pending.len();
            plan.push((i, chunk, last));
        }
        if plan.is_empty() {
            return Ok(());
        }
        // Decode tokens and the prefill chunk run as separate passes: a
        // decode batch of up to `INVARIANT_ROWS` sessions then takes the same
        // kernels as a session decoding alone, so concurrent load never
        // changes the tokens a session generates (a mixed pass would put the
        // decode rows through the wider prefill kernels).
        let n_decode = plan.len() - usize::from(!prefilling.is_empty());
        let t0 = Instant::now();
        let mut logits = Vec::new();
        for part in [&plan[..n_decode], &plan[n_decode..]] {
            if !part.is_empty() {
                let mut l = self.forward_plan(part)?;
                logits.append(&mut l);
            }
        }
        let elapsed = t0.elapsed().as_secs_f64();
        let n_prefill: usize = plan
            .iter()
            .filter(|(i, _, _)| self.active[*i].phase == Phase::Prefill)
            .map(|p| p.1.len())
            .sum();
        let n_rows: usize = plan.iter().map(|p| p.1.len()).sum();
        self.stats.forward(n_prefill, n_rows - n_prefill, elapsed);
        let window = self.model.cfg.window;
        let v = self.model.cfg.n_vocab;
        let mut lrow = 0;
        let mut done: Vec<(usize, FinishReason)> = Vec::new();
        for (i, toks, want) in plan {
            let a = &mut self.active[i];
            if let Some(s) = self.slots[a.slot].session.as_mut() {
                s.commit(&toks, window);
            }
            if a.phase == Phase::Prefill {
                a.cursor += toks.len();
                a.usage.prefill_seconds += elapsed;
                send(
                    a,
                    TokenEvent::Prefill {
                        done: a.cursor,
                        total: a.pending.len(),
                    },
                );
            } else {
                a.usage.decode_seconds += elapsed;
                a.next = None;
            }
            if want {
                let mut l = logits[lrow * v..(lrow + 1) * v].to_vec();
                lrow += 1;
                if let Some(s) = self.slots[a.slot].session.as_mut() {
                    if a.phase == Phase::Prefill {
                        s.mark(window, l.clone());
                    }
                    s.last_logits = Some(l.clone());
                }
                if a.phase == Phase::Prefill {
                    a.phase = Phase::Decode;
                    a.t_decode = Some(Instant::now());
                }
                let pos = self.slots[a.slot].session.as_ref().map_or(0, |s| s.pos());
                if let Some(reason) = Self::sample(&self.tok, a, &mut l, pos, self.cfg.ctx) {
                    done.push((i, reason));
                }
            }
        }
        self.finish_all(done);
        Ok(())
    }

    /// One forward pass over `plan`'s rows (sessions numbered in plan
    /// order); returns the logits of the rows that want them, in plan order.
    fn forward_plan(&mut self, plan: &[(usize, Vec<u32>, bool)]) -> Result<Vec<f32>, EngineError> {
        let mut rows = Vec::new();
        let mut logit_rows = Vec::new();
        for (seq, (i, toks, want)) in plan.iter().enumerate() {
            let pos0 = self.slots[self.active[*i].slot]
                .session
                .as_ref()
                .map_or(0, |s| s.pos());
            for (j, &t) in toks.iter().enumerate() {
                rows.push(RowMeta {
                    seq,
                    token: t,
                    pos: pos0 + j,
                });
            }
            if *want {
                logit_rows.push(rows.len() - 1);
            }
        }
        let slot_of: Vec<usize> = plan.iter().map(|(i, _, _)| self.active[*i].slot).collect();
        let mut logits = Vec::new();
        {
            let mut states: Vec<&mut B::State> = Vec::with_capacity(plan.len());
            let mut taken: Vec<(usize, &mut Slot<B>)> = self
                .slots
                .iter_mut()
                .enumerate()
                .filter(|(k, _)| slot_of.contains(k))
                .collect();
            for &k in &slot_of {
                let pos = taken
                    .iter()
                    .position(|(kk, _)| *kk == k)
                    .ok_or(EngineError::Stopped)?;
                let (_, sl) = taken.swap_remove(pos);
                let sess = sl.session.as_mut().ok_or(EngineError::Stopped)?;
                states.push(&mut sess.state);
            }
            forward(
                &self.model,
                &*self.backend,
                &rows,
                &mut states,
                &logit_rows,
                &mut logits,
                &mut self.scratch,
                None,
            )?;
        }
        Ok(logits)
    }

    /// Samples the next token from fresh logits, emits it, and says whether the request ends.
    fn sample(
        tok: &Tokenizer,
        a: &mut Active,
        logits: &mut [f32],
        pos: usize,
        ctx: usize,
    ) -> Option<FinishReason> {
        let req = ReqFlags::of(&a.sub.req);
        let think_end = tok.special_id(SpecialToken::ThinkEnd);
        let forced = a.in_reasoning
            && req
                .thinking
                .budget
                .is_some_and(|b| a.usage.reasoning_tokens >= b);
        a.sampler.adjust(logits);
        if let Some(m) = a.sub.req.mask.as_mut()
            && let Err(e) = m.apply(logits)
        {
            send(a, TokenEvent::Error(EngineError::Constraint(e)));
            return Some(FinishReason::Cancelled);
        }
        let want_top = if req.logprobs { req.top_logprobs } else { 0 };
        let choice = if forced {
            Some(crate::sampling::Choice {
                token: think_end,
                logprob: 0.0,
                top: Vec::new(),
            })
        } else {
            a.sampler.pick(logits, a.dsml_greedy, want_top)
        };
        let Some(choice) = choice else {
            send(
                a,
                TokenEvent::Error(EngineError::Constraint("every token is masked".into())),
            );
            return Some(FinishReason::Cancelled);
        };
        let t = choice.token;
        if let Some(m) = a.sub.req.mask.as_mut()
            && let Err(e) = m.accept(t)
        {
            send(a, TokenEvent::Error(EngineError::Constraint(e)));
            return Some(FinishReason::Cancelled);
        }
        a.sampler.observe(t);
        a.usage.completion_tokens += 1;
        if a.in_reasoning {
            a.usage.reasoning_tokens += 1;
        }
        let special = tok.is_special(t);
        let eos = tok.special_id(SpecialToken::Eos);
        let (logprob, top) = if req.logprobs {
            (Some(choice.logprob), choice.top)
        } else {
            (None, Vec::new())
        };
        if special {
            if t == think_end {
                a.in_reasoning = false;
            } else if t == tok.special_id(SpecialToken::ThinkStart) {
                a.in_reasoning = true;
            }
            a.dsml_greedy = req.greedy_dsml && t == tok.special_id(SpecialToken::Dsml);
            let mut flushed = a.utf8.finish();
            if let StopOutcome::Stop { before, stop } = a.stop.feed(&flushed) {
                if !before.is_empty() {
                    send(a, TokenEvent::Text(before));
                }
                return Some(FinishReason::StopString(stop));
            }
            flushed = a.stop.flush();
            if !flushed.is_empty() {
                send(a, TokenEvent::Text(flushed));
            }
            if t == eos && !req.ignore_eos {
                return Some(FinishReason::Eos);
            }
            let text = tok
                .token_to_piece(t)
                .map(|c| c.into_owned())
                .unwrap_or_default();
            send(
                a,
                TokenEvent::Token(Sampled {
                    id: t,
                    special,
                    text,
                    logprob,
                    top,
                    forced,
                }),
            );
        } else {
            let piece = a.utf8.push(tok.token_bytes(t).unwrap_or(&[]));
            if a.dsml_greedy && piece.contains('>') {
                a.dsml_greedy = false;
            }
            match a.stop.feed(&piece) {
                StopOutcome::Emit(text) => send(
                    a,
                    TokenEvent::Token(Sampled {
                        id: t,
                        special,
                        text,
                        logprob,
                        top,
                        forced,
                    }),
                ),
                StopOutcome::Stop { before, stop } => {
                    send(
                        a,
                        TokenEvent::Token(Sampled {
                            id: t,
                            special,
                            text: before,
                            logprob,
                            top,
                            forced,
                        }),
                    );
                    return Some(FinishReason::StopString(stop));
                }
            }
        }
        if a.sub.req.mask.as_ref().is_some_and(|m| m.is_finished()) {
            return Some(FinishReason::MaskFinished);
        }
        if req
            .max_tokens
            .is_some_and(|m| a.usage.completion_tokens >= m)
        {
            return Some(FinishReason::Length);
        }
        if pos + 1 >= ctx {
            return Some(FinishReason::ContextFull);
        }
        a.next = Some(t);
        None
    }

    /// Finishes the listed active requests (indices into `active`).
    fn finish_all(&mut self, mut done: Vec<(usize, FinishReason)>) {
        done.sort_by_key(|d| std::cmp::Reverse(d.0));
        for (i, reason) in done {
            let a = self.active.swap_remove(i);
            self.finish(a, reason);
        }
    }

    fn finish(&mut self, mut a: Active, reason: FinishReason) {
        let tail = a.utf8.finish();
        let mut rest = match a.stop.feed(&tail) {
            StopOutcome::Emit(t) | StopOutcome::Stop { before: t, .. } => t,
        };
        if !matches!(reason, FinishReason::StopString(_)) {
            rest.push_str(&a.stop.flush());
        }
        if !rest.is_empty() {
            send(&a, TokenEvent::Text(rest));
        }
        if a.t_decode.is_none() {
            a.usage.prefill_seconds = a.t_start.elapsed().as_secs_f64();
        }
        self.stats.finished(a.usage.completion_tokens);
        send(
            &a,
            TokenEvent::Finished {
                reason,
                usage: a.usage.clone(),
            },
        );
        let sl = &mut self.slots[a.slot];
        sl.busy = false;
        sl.last_used = Instant::now();
    }
}
