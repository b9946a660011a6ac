//! Shared server state: configuration, the model once loaded, counters and
//! the stored Responses.
//!
//! The model is published exactly once ([`AppState::set_ready`]); until then
//! every model route answers 503 and `/health` reports `loading`. Nothing
//! here blocks on the engine: handlers take an `Arc<Ready>` and talk to the
//! engine through its channels.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use dsv4_engine::Engine;
use dsv4_tokenizer::{SpecialToken, Tokenizer};

use crate::ServerConfig;
use crate::constrain::Constraints;
use crate::errors::{ApiError, ErrorKind};
use crate::responses::ResponseStore;

/// Special token ids the front ends need.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ids {
    pub(crate) bos: u32,
    pub(crate) eos: u32,
    pub(crate) think_end: u32,
    pub(crate) dsml: u32,
    pub(crate) fim_begin: u32,
    pub(crate) fim_hole: u32,
    pub(crate) fim_end: u32,
}

impl Ids {
    pub(crate) fn new(t: &Tokenizer) -> Ids {
        Ids {
            bos: t.special_id(SpecialToken::Bos),
            eos: t.special_id(SpecialToken::Eos),
            think_end: t.special_id(SpecialToken::ThinkEnd),
            dsml: t.special_id(SpecialToken::Dsml),
            fim_begin: t.special_id(SpecialToken::FimBegin),
            fim_hole: t.special_id(SpecialToken::FimHole),
            fim_end: t.special_id(SpecialToken::FimEnd),
        }
    }
}

/// The loaded model and what the routes derive from it.
#[derive(Debug)]
pub(crate) struct Ready {
    pub(crate) engine: Arc<Engine>,
    pub(crate) tokenizer: Arc<Tokenizer>,
    pub(crate) constraints: Constraints,
    pub(crate) ids: Ids,
    pub(crate) ctx: usize,
}

/// Request counters the engine does not keep.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// (route, status) → count.
    http: Mutex<BTreeMap<(String, u16), u64>>,
    /// Generations running now.
    pub(crate) in_flight: AtomicU64,
    /// Generations abandoned by their client before the end.
    pub(crate) cancelled: AtomicU64,
    /// Generations under a grammar constraint.
    pub(crate) constrained: AtomicU64,
    /// Sum of time-to-first-token over generations, microseconds, and count.
    pub(crate) ttft_us: AtomicU64,
    pub(crate) ttft_n: AtomicU64,
}

impl Metrics {
    pub(crate) fn http(&self, route: &str, status: u16) {
        if let Ok(mut m) = self.http.lock() {
            *m.entry((route.to_string(), status)).or_insert(0) += 1;
        }
    }

    pub(crate) fn http_snapshot(&self) -> Vec<((String, u16), u64)> {
        self.http
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default()
    }

    pub(crate) fn ttft(&self, seconds: f64) {
        self.ttft_us
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        self.ttft_n.fetch_add(1, Ordering::Relaxed);
    }
}

/// Everything the handlers share.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) cfg: ServerConfig,
    ready: OnceLock<Arc<Ready>>,
    failed: OnceLock<String>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) responses: Mutex<ResponseStore>,
    pub(crate) started: Instant,
}

impl AppState {
    pub(crate) fn new(cfg: ServerConfig) -> AppState {
        let responses = Mutex::new(ResponseStore::new(cfg.stored_responses));
        AppState {
            cfg,
            ready: OnceLock::new(),
            failed: OnceLock::new(),
            metrics: Arc::default(),
            responses,
            started: Instant::now(),
        }
    }

    /// Publishes the model (once; later calls are ignored).
    pub(crate) fn set_ready(&self, ready: Ready) {
        let _ = self.ready.set(Arc::new(ready));
    }

    pub(crate) fn set_failed(&self, message: String) {
        let _ = self.failed.set(message);
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.ready.get().is_some()
    }

    pub(crate) fn load_error(&self) -> Option<&str> {
        self.failed.get().map(String::as_str)
    }

    /// The model, or a 503 saying why it is not there.
    pub(crate) fn ready(&self) -> Result<Arc<Ready>, ApiError> {
        if let Some(r) = self.ready.get() {
            return Ok(Arc::clone(r));
        }
        let message = match self.failed.get() {
            Some(e) => format!("the model failed to load: {e}"),
            None => "the model is still loading; retry when GET /health answers 200".to_string(),
        };
        Err(ApiError::new(ErrorKind::Unavailable, message))
    }
}
