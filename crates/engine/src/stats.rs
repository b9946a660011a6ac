//! Engine counters for `/metrics` and reports: requests, tokens, queue depth,
//! prefill and decode throughput, prefix-cache hits and reused tokens.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters (shared between the engine thread and readers).
#[derive(Debug, Default)]
pub struct Stats {
    requests: AtomicU64,
    finished: AtomicU64,
    prompt_tokens: AtomicU64,
    cached_tokens: AtomicU64,
    cache_hits: AtomicU64,
    generated_tokens: AtomicU64,
    queue_depth: AtomicU64,
    times: Mutex<Times>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Times {
    prefill_tokens: u64,
    prefill_seconds: f64,
    decode_tokens: u64,
    decode_seconds: f64,
    forward_calls: u64,
}

/// A consistent copy of the counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsSnapshot {
    /// Requests submitted.
    pub requests: u64,
    /// Requests finished (any reason).
    pub finished: u64,
    /// Prompt tokens received.
    pub prompt_tokens: u64,
    /// Prompt tokens served from resident sessions.
    pub cached_tokens: u64,
    /// Requests that reused a resident prefix.
    pub cache_hits: u64,
    /// Tokens generated.
    pub generated_tokens: u64,
    /// Requests waiting for a session.
    pub queue_depth: u64,
    /// Prompt tokens evaluated.
    pub prefill_tokens: u64,
    /// Seconds spent in batches with prompt tokens.
    pub prefill_seconds: f64,
    /// Decode rows evaluated.
    pub decode_tokens: u64,
    /// Seconds spent in decode-only batches.
    pub decode_seconds: f64,
    /// Forward passes.
    pub forward_calls: u64,
}

impl Stats {
    pub(crate) fn queued(&self, n: u64) {
        self.requests.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn set_queue(&self, n: usize) {
        self.queue_depth.store(n as u64, Ordering::Relaxed);
    }
    pub(crate) fn admitted(&self, cached: usize, prompt: usize) {
        self.prompt_tokens
            .fetch_add(prompt as u64, Ordering::Relaxed);
        self.cached_tokens
            .fetch_add(cached as u64, Ordering::Relaxed);
        if cached > 0 {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
        }
    }
    pub(crate) fn finished(&self, generated: usize) {
        self.finished.fetch_add(1, Ordering::Relaxed);
        self.generated_tokens
            .fetch_add(generated as u64, Ordering::Relaxed);
    }
    pub(crate) fn forward(&self, prefill_rows: usize, decode_rows: usize, seconds: f64) {
        if let Ok(mut t) = self.times.lock() {
            t.forward_calls += 1;
            if prefill_rows > 0 {
                t.prefill_tokens += prefill_rows as u64;
                t.prefill_seconds += seconds;
            } else {
                t.decode_tokens += decode_rows as u64;
                t.decode_seconds += seconds;
            }
        }
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let t = self.times.lock().map(|t| *t).unwrap_or_default();
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            requests: g(&self.requests),
            finished: g(&self.finished),
            prompt_tokens: g(&self.prompt_tokens),
            cached_tokens: g(&self.cached_tokens),
            cache_hits: g(&self.cache_hits),
            generated_tokens: g(&self.generated_tokens),
            queue_depth: g(&self.queue_depth),
            prefill_tokens: t.prefill_tokens,
            prefill_seconds: t.prefill_seconds,
            decode_tokens: t.decode_tokens,
            decode_seconds: t.decode_seconds,
            forward_calls: t.forward_calls,
        }
    }
}
