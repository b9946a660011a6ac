//! The engine: owns the model, the backend (threads, scratch), the tokenizer
//! and the engine thread with its resident sessions. Callers submit
//! [`GenerationRequest`]s and read [`TokenEvent`]s; the engine is `Send + Sync`
//! and cheap to share behind an `Arc`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use dsv4_gguf::GgufFile;
use dsv4_model::{Backend, CpuBackend, CpuOptions, KvFormat, Model, ModelOptions};
use dsv4_quant::Kernels;
use dsv4_tokenizer::Tokenizer;

use crate::error::{EngineError, Result};
use crate::plan::MemoryPlan;
use crate::request::{GenerationRequest, RequestHandle};
use crate::session::CheckpointPolicy;
use crate::stats::{Stats, StatsSnapshot};
use crate::worker::{Command, Submitted, Worker, WorkerConfig};

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Context per session, in tokens.
    pub ctx: usize,
    /// Resident sessions.
    pub sessions: usize,
    /// Largest prompt chunk per forward pass.
    pub prefill_chunk: usize,
    /// Worker threads (0: all cores).
    pub threads: usize,
    /// Kernel table (`None`: best available).
    pub kernels: Option<Kernels>,
    /// QAT simulation.
    pub qat_sim: bool,
    /// Exact f32 products (verification).
    pub exact: bool,
    /// KV storage.
    pub kv_format: KvFormat,
    /// Checkpoint policy for rewinds.
    pub checkpoints: CheckpointPolicy,
    /// Refuse configurations that do not fit in RAM.
    pub memory_check: bool,
    /// Keep packed copies of the weights the kernels multiply faster in
    /// their own layout (more memory, faster decode and prefill).
    pub pack_weights: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            ctx: 32768,
            sessions: 4,
            prefill_chunk: 128,
            threads: 0,
            kernels: None,
            qat_sim: true,
            exact: false,
            kv_format: KvFormat::Compact,
            checkpoints: CheckpointPolicy::default(),
            memory_check: true,
            pack_weights: true,
        }
    }
}

impl EngineConfig {
    /// The CPU backend this configuration describes.
    pub fn cpu_backend(&self) -> Result<CpuBackend> {
        let kernels = self.kernels.unwrap_or_else(Kernels::detect);
        let opts = CpuOptions {
            threads: self.threads,
            exact: self.exact,
            kv_format: self.kv_format,
            raw_history: 0,
            pack_weights: self.pack_weights,
        };
        Ok(CpuBackend::new(kernels, opts)?)
    }
}

/// What the engine is running.
#[derive(Debug, Clone)]
pub struct EngineInfo {
    /// Model name (`general.name`, or the file name).
    pub model_name: String,
    /// One-line model summary.
    pub summary: String,
    /// Backend description.
    pub backend: String,
    /// Context per session.
    pub ctx: usize,
    /// Sessions.
    pub sessions: usize,
    /// Vocabulary size.
    pub n_vocab: usize,
    /// Memory plan.
    pub plan: MemoryPlan,
    /// Weight bytes read per decoded token.
    pub bytes_per_token: u64,
    /// Synthetic random-weight model (from `dsv4 synth`).
    pub synthetic: bool,
}

/// The running engine.
#[derive(Debug)]
pub struct Engine {
    tx: Mutex<Sender<Command>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    tokenizer: Arc<Tokenizer>,
    stats: Arc<Stats>,
    next_id: AtomicU64,
    info: EngineInfo,
}

/// Loads the tokenizer a model file carries, or the built-in DeepSeek V4
/// vocabulary when the file has none and the vocabulary sizes agree.
pub fn tokenizer_for(file: &GgufFile, n_vocab: usize) -> Result<Tokenizer> {
    let md = file.metadata();
    if let (Ok(tokens), Ok(merges)) = (
        md.strings("tokenizer.ggml.tokens"),
        md.strings("tokenizer.ggml.merges"),
    ) {
        let tokens: Vec<String> = tokens.into_iter().map(String::from).collect();
        let merges: Vec<String> = merges.into_iter().map(String::from).collect();
        let types: Vec<i32> = md
            .ints("tokenizer.ggml.token_type")
            .map(|v| v.into_iter().map(|x| x as i32).collect())
            .unwrap_or_else(|_| vec![1; tokens.len()]);
        let pre = md.string("tokenizer.ggml.pre").unwrap_or("joyai-llm");
        return Ok(Tokenizer::from_gguf_vocab(&tokens, &merges, &types, pre)?);
    }
    let t = Tokenizer::builtin()?;
    if t.vocab_size() != n_vocab {
        return Err(EngineError::Tokenizer(format!(
            "{} has no tokenizer metadata and {} embedding rows, which does not match the built-in DeepSeek V4 vocabulary ({})",
            file.origin(),
            n_vocab,
            t.vocab_size()
        )));
    }
    Ok(t)
}

impl Engine {
    /// Loads a GGUF model and starts a CPU engine.
    pub fn open(path: impl AsRef<Path>, cfg: EngineConfig) -> Result<Engine> {
        let model = Model::load(
            path.as_ref(),
            ModelOptions {
                qat_sim: cfg.qat_sim,
            },
        )?;
        let backend = cfg.cpu_backend()?;
        let tok = tokenizer_for(model.file(), model.cfg.n_vocab)?;
        Engine::start(model, backend, tok, cfg)
    }

    /// Starts an engine on a loaded model and backend.
    pub fn start<B: Backend + 'static>(
        model: Model,
        backend: B,
        tokenizer: Tokenizer,
        cfg: EngineConfig,
    ) -> Result<Engine> {
        if cfg.sessions == 0 || cfg.ctx == 0 || cfg.prefill_chunk == 0 {
            return Err(EngineError::InvalidRequest(
                "sessions, ctx and prefill chunk must be positive".into(),
            ));
        }
        let max_ratio = model
            .cfg
            .layers
            .iter()
            .map(|l| l.ratio)
            .max()
            .unwrap_or(1)
            .max(1);
        if !cfg.checkpoints.interval.is_multiple_of(max_ratio)
            || !cfg
                .checkpoints
                .sparse
                .is_multiple_of(cfg.checkpoints.interval)
        {
            return Err(EngineError::InvalidRequest(format!(
                "checkpoint interval {} must be a multiple of every compression ratio (largest {max_ratio}) and divide the sparse spacing",
                cfg.checkpoints.interval
            )));
        }
        let plan = MemoryPlan::new(
            &model,
            cfg.ctx,
            cfg.sessions,
            cfg.kv_format,
            cfg.checkpoints,
            cfg.prefill_chunk,
            backend.prepared_bytes(&model),
        );
        if cfg.memory_check {
            plan.check().map_err(EngineError::OutOfMemory)?;
        }
        let prepared = backend.prepare(&model)?;
        tracing::info!(bytes = prepared, "backend weights prepared");
        let md = model.file().metadata();
        let model_name = md
            .string("general.name")
            .map(String::from)
            .unwrap_or_else(|_| {
                model
                    .file()
                    .path()
                    .and_then(|p| p.file_stem())
                    .map_or("model".into(), |s| s.to_string_lossy().into_owned())
            });
        let synthetic = md
            .string("general.description")
            .is_ok_and(|d| d.contains("synthetic random-weight"));
        let info = EngineInfo {
            model_name,
            summary: model.cfg.summary(),
            backend: backend.name(),
            ctx: cfg.ctx,
            sessions: cfg.sessions,
            n_vocab: model.cfg.n_vocab,
            plan,
            bytes_per_token: model.bytes_per_decoded_token(),
            synthetic,
        };
        let tokenizer = Arc::new(tokenizer);
        let stats = Arc::new(Stats::default());
        let wcfg = WorkerConfig {
            ctx: cfg.ctx,
            sessions: cfg.sessions,
            prefill_chunk: cfg.prefill_chunk,
            policy: cfg.checkpoints,
        };
        let worker = Worker::new(
            Arc::new(model),
            Arc::new(backend),
            Arc::clone(&tokenizer),
            wcfg,
            Arc::clone(&stats),
        );
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("dsv4-engine".into())
            .spawn(move || worker.run(rx))
            .map_err(|e| EngineError::Model(format!("cannot start the engine thread: {e}")))?;
        Ok(Engine {
            tx: Mutex::new(tx),
            thread: Mutex::new(Some(thread)),
            tokenizer,
            stats,
            next_id: AtomicU64::new(1),
            info,
        })
    }

    /// Submits a request; events arrive on the returned handle.
    pub fn submit(&self, req: GenerationRequest) -> Result<RequestHandle> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (etx, erx) = tokio::sync::mpsc::unbounded_channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let sub = Submitted {
            id,
            req,
            events: etx,
            cancel: Arc::clone(&cancel),
        };
        let tx = self.tx.lock().map_err(|_| EngineError::Stopped)?;
        tx.send(Command::Submit(Box::new(sub)))
            .map_err(|_| EngineError::Stopped)?;
        Ok(RequestHandle::new(id, erx, cancel))
    }

    /// Saves the resident session `key` to `path` (tokens, KV, checkpoints);
    /// returns its length in tokens.
    pub fn save_session(&self, key: &str, path: &Path) -> Result<usize> {
        self.call(|reply| Command::Save {
            key: key.to_string(),
            path: path.to_path_buf(),
            reply,
        })
    }

    /// Loads a session file as resident session `key`; returns its length.
    pub fn load_session(&self, key: &str, path: &Path) -> Result<usize> {
        self.call(|reply| Command::Load {
            key: key.to_string(),
            path: path.to_path_buf(),
            reply,
        })
    }

    /// Forgets the resident session `key`.
    pub fn forget_session(&self, key: &str) {
        if let Ok(tx) = self.tx.lock() {
            let _ = tx.send(Command::Forget {
                key: key.to_string(),
            });
        }
    }

    fn call(
        &self,
        make: impl FnOnce(std::sync::mpsc::Sender<Result<usize>>) -> Command,
    ) -> Result<usize> {
        let (rtx, rrx) = std::sync::mpsc::channel();
        self.tx
            .lock()
            .map_err(|_| EngineError::Stopped)?
            .send(make(rtx))
            .map_err(|_| EngineError::Stopped)?;
        rrx.recv().map_err(|_| EngineError::Stopped)?
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Arc<Tokenizer> {
        &self.tokenizer
    }

    /// What is running.
    pub fn info(&self) -> &EngineInfo {
        &self.info
    }

    /// The counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Stops the engine thread (pending requests are dropped).
    pub fn shutdown(&self) {
        if let Ok(tx) = self.tx.lock() {
            let _ = tx.send(Command::Shutdown);
        }
        if let Ok(mut t) = self.thread.lock()
            && let Some(h) = t.take()
        {
            let _ = h.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}
