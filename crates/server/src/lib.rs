//! `dsv4 serve`: the OpenAI-, Anthropic- and Responses-compatible HTTP server
//! that coding agents (Claude Code, Codex, OpenCode, Aider, Continue…) talk to.
//!
//! axum + tokio in front, the engine's own thread behind: handlers parse a
//! request into serde types mirroring the public schema (one file per API),
//! render the conversation with the tokenizer crate's official encoder,
//! translate once into the engine's `GenerationRequest`, and turn the engine's
//! token events back into that API's JSON or SSE grammar. Unknown request
//! fields are ignored (agents send provider extras); malformed or wrongly
//! typed ones are a 400 in the API's own error shape; nothing a client sends
//! makes the server panic or poisons a session.
//!
//! Entry points: [`App`] (state, model publication, router) and [`serve`].
//! Routes: `GET /health`, `GET /metrics`, `GET /v1/models[/{id}]`,
//! `POST /v1/chat/completions`, `POST /v1/completions` (also `/completions`,
//! `/beta/completions`, with FIM via `suffix`), `POST /v1/responses`
//! (`GET /v1/responses/{id}`), `POST /v1/messages`,
//! `POST /v1/messages/count_tokens`, `POST /tokenize`, `POST /detokenize`.

mod anthropic;
mod app;
mod auth;
mod body;
mod completions;
mod constrain;
mod errors;
mod generate;
mod ids;
mod metrics;
mod models;
mod openai_chat;
mod prompt;
mod responses;
mod sse;
mod state;
mod tokenize;
mod tools;

use std::sync::Arc;
use std::time::Duration;

use dsv4_engine::Engine;
use dsv4_tokenizer::chat::Checkpoint;

pub use prompt::ThinkingDefault;

/// Server settings (what `dsv4 serve` flags resolve to).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Accepted API keys (empty: no authentication).
    pub api_keys: Vec<String>,
    /// CORS origins (`None`: no CORS headers; `["*"]`: any origin).
    pub cors_origins: Option<Vec<String>>,
    /// The model id listed by `/v1/models` (requests may name any id).
    pub model_id: String,
    /// Prompt format of the checkpoint (effort paragraphs).
    pub checkpoint: Checkpoint,
    /// Thinking when a request does not say.
    pub default_thinking: ThinkingDefault,
    /// Output cap when a request sets none (`None`: until the context is full).
    pub default_max_tokens: Option<usize>,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Keepalive interval of streams that are waiting for the model.
    pub keepalive: Duration,
    /// Responses kept for `previous_response_id`.
    pub stored_responses: usize,
    /// With `tool_choice: auto`, complete a tool-call block the model opens
    /// under the tools' grammar.
    pub constrain_auto_tools: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            api_keys: Vec::new(),
            cors_origins: None,
            model_id: "deepseek-v4-flash".into(),
            checkpoint: Checkpoint::April,
            default_thinking: ThinkingDefault::On,
            default_max_tokens: None,
            max_body_bytes: 32 << 20,
            keepalive: Duration::from_secs(5),
            stored_responses: 256,
            constrain_auto_tools: true,
        }
    }
}

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The constrained-decoding tables could not be built for the model's vocabulary.
    #[error("cannot prepare constrained decoding for this vocabulary: {0}")]
    Constraints(String),
    /// Listening or serving failed.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// The server: shared state, model publication and routes.
#[derive(Debug, Clone)]
pub struct App {
    state: Arc<state::AppState>,
}

impl App {
    /// A server whose model is not loaded yet (`/health` answers 503).
    pub fn new(cfg: ServerConfig) -> App {
        App {
            state: Arc::new(state::AppState::new(cfg)),
        }
    }

    /// Publishes the loaded model; from now on the model routes answer.
    /// Builds the constrained-decoding tables (about half a second).
    pub fn set_engine(&self, engine: Arc<Engine>) -> Result<(), ServerError> {
        let tokenizer = Arc::clone(engine.tokenizer());
        let constraints = constrain::Constraints::new(Arc::clone(&tokenizer))
            .map_err(ServerError::Constraints)?;
        let ready = state::Ready {
            ids: state::Ids::new(&tokenizer),
            ctx: engine.info().ctx,
            engine,
            tokenizer,
            constraints,
        };
        self.state.set_ready(ready);
        Ok(())
    }

    /// Records that the model failed to load (`/health` and model routes say why).
    pub fn set_load_error(&self, message: impl Into<String>) {
        self.state.set_failed(message.into());
    }

    /// Whether the model is ready.
    pub fn is_ready(&self) -> bool {
        self.state.is_ready()
    }

    /// The axum router with every route and layer.
    pub fn router(&self) -> axum::Router {
        app::router(Arc::clone(&self.state))
    }
}

/// Runs a whole server from a synchronous caller (the `dsv4 serve` command):
/// binds `host:port` first (so `/health` answers 503 while the model loads),
/// reports the address through `on_listen`, loads the model with `load` on a
/// separate thread (reporting through `on_ready`), and serves until Ctrl-C.
pub fn run_blocking(
    cfg: ServerConfig,
    host: &str,
    port: u16,
    load: impl FnOnce() -> Result<Engine, String> + Send + 'static,
    on_listen: impl FnOnce(std::net::SocketAddr),
    on_ready: impl FnOnce(Result<(), String>) + Send + 'static,
) -> Result<(), ServerError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("dsv4-http")
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind((host, port)).await?;
        on_listen(listener.local_addr()?);
        let app = App::new(cfg);
        let loader = app.clone();
        std::thread::Builder::new()
            .name("dsv4-load".into())
            .spawn(move || {
                let result = load().and_then(|engine| {
                    loader
                        .set_engine(Arc::new(engine))
                        .map_err(|e| e.to_string())
                });
                if let Err(e) = &result {
                    loader.set_load_error(e.clone());
                }
                on_ready(result);
            })?;
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        serve(listener, &app, shutdown).await
    })
}

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: &App,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    axum::serve(listener, app.router())
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
