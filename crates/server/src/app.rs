//! The router: every route, the 404/405 fallbacks in each API's error shape,
//! and the layers (CORS only when configured, panic catching, request
//! counting, API keys).

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use crate::errors::{AnthropicError, ApiError, ErrorKind, OpenAiError};
use crate::state::AppState;
use crate::{anthropic, auth, completions, metrics, models, openai_chat, responses, tokenize};

fn error(path: &str, e: ApiError) -> Response {
    if auth::is_anthropic(path) {
        AnthropicError(e).into_response()
    } else {
        OpenAiError(e).into_response()
    }
}

async fn not_found(req: Request) -> Response {
    let path = req.uri().path().to_string();
    error(
        &path,
        ApiError::not_found(format!("no route for {} {path}", req.method())),
    )
}

async fn method_not_allowed(req: Request) -> Response {
    let path = req.uri().path().to_string();
    let mut e = ApiError::invalid(format!("{} is not allowed on {path}", req.method()));
    e.code = Some("method_not_allowed");
    let mut r = error(&path, e);
    *r.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    r
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    OpenAiError(ApiError::new(
        ErrorKind::Internal,
        "internal error while handling the request",
    ))
    .into_response()
}

fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim()).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(Any)
        .max_age(std::time::Duration::from_secs(3600))
}

/// Builds the router.
pub(crate) fn router(st: Arc<AppState>) -> Router {
    let chat = post(openai_chat::handle);
    let completion = post(completions::handle);
    let mut r = Router::new()
        .route("/health", get(metrics::health))
        .route("/v1/health", get(metrics::health))
        .route("/metrics", get(metrics::metrics))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{id}", get(models::get))
        .route("/v1/chat/completions", chat.clone())
        .route("/chat/completions", chat)
        .route("/v1/completions", completion.clone())
        .route("/completions", completion.clone())
        .route("/beta/completions", completion)
        .route("/v1/responses", post(responses::create))
        .route("/v1/responses/{id}", get(responses::get))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        .route("/tokenize", post(tokenize::tokenize))
        .route("/detokenize", post(tokenize::detokenize))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(Arc::clone(&st), auth::check))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&st),
            metrics::track,
        ))
        .layer(CatchPanicLayer::custom(panic_response));
    if let Some(origins) = &st.cfg.cors_origins {
        r = r.layer(cors(origins));
    }
    r.with_state(st)
}
