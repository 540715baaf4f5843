//! HTTP API: REST under `/api`, the browser WebSocket at `/api/ws`, pages merged from
//! [`crate::pages`]. One error type, [`ApiError`], turns every failure into a JSON body.

mod error;
mod export;
mod machines;
mod runs;
mod ws;

pub use error::ApiError;

/// Runs blocking store work off the async runtime's workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::Internal(format!("store task failed: {e}")))?
}

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use tower_http::trace::TraceLayer;

use crate::AppState;

/// Prompts may be up to 2 MiB (`bench_shared::job::MAX_PROMPT_BYTES`); leave room for the JSON.
const BODY_LIMIT_BYTES: usize = 3 * 1024 * 1024;

/// The whole application: API, browser WebSocket and pages.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/machines", get(machines::list))
        .route("/metrics", get(machines::prometheus))
        .route("/api/runs", get(runs::list).post(runs::create))
        .route("/api/runs/{run_id}", get(runs::show).delete(runs::delete))
        .route("/api/runs/{run_id}/events", get(runs::events))
        .route("/api/runs/{run_id}/export.csv", get(export::csv))
        .route("/api/runs/{run_id}/export.json", get(export::json))
        .route("/api/ws", get(ws::upgrade))
        .merge(crate::pages::router())
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
