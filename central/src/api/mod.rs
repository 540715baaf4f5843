//! HTTP API: REST under `/api`, the browser WebSocket at `/api/ws`, pages merged from
//! [`crate::pages`]. One error type, [`ApiError`], turns every failure into a JSON body.

mod bundle;
mod compare;
mod error;
mod export;
mod filters;
mod leaderboard;
mod machines;
mod models;
mod params;
mod report;
mod runs;
mod wait;
mod ws;

pub use error::ApiError;

/// Runs blocking store work off the async runtime's workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::Internal(format!("store task failed: {e}")))?
}

use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bench_server::guard;

use crate::AppState;

/// Prompts may be up to 2 MiB (`bench_shared::job::MAX_PROMPT_BYTES`), a `transcribe` run's own
/// audio up to 25 MB as base64; leave room for the JSON.
pub const BODY_LIMIT_BYTES: usize = 36 * 1024 * 1024;

/// `POST /api/runs/import`: the one route whose body is a gzip'd bundle, up to
/// [`bundle::BUNDLE_LIMIT_BYTES`].
pub const IMPORT_PATH: &str = "/api/runs/import";

/// The whole application: API, browser WebSocket and pages, behind authentication (when
/// `central.auth_token` is set) and the Host / Origin / Content-Type guards.
pub fn router(state: AppState) -> Router {
    let policy = guard::Policy {
        allowed_origins: state.access.config.allowed_origins.clone(),
        allowed_hosts: state.access.config.allowed_hosts.clone(),
        form_paths: vec!["/login", "/logout"],
        gzip_paths: vec![IMPORT_PATH],
    };
    let app = Router::new()
        .route("/health", get(health))
        .route("/login", get(crate::auth::login_page).post(crate::auth::login))
        .route("/logout", post(crate::auth::logout))
        .route("/api/machines", get(machines::list))
        .route("/api/models", get(models::list))
        .route("/api/models/pull", post(models::pull))
        .route("/metrics", get(machines::prometheus))
        .route("/api/runs", get(runs::list).post(runs::create))
        .route(
            IMPORT_PATH,
            axum::routing::post(bundle::import).layer(DefaultBodyLimit::max(bundle::BUNDLE_LIMIT_BYTES)),
        )
        .route("/api/runs/{run_id}", get(runs::show).delete(runs::delete))
        .route("/api/runs/{run_id}/events", get(runs::events))
        .route("/api/runs/{run_id}/images/{name}", get(runs::image))
        .route("/api/runs/{run_id}/export.csv", get(export::csv))
        .route("/api/runs/{run_id}/export.json", get(export::json))
        .route("/api/runs/{run_id}/report.html", get(report::html))
        .route("/api/runs/{run_id}/bundle.tar.gz", get(bundle::export))
        .route("/api/compare", get(compare::runs))
        .route("/api/leaderboard", get(leaderboard::show))
        .route("/api/ws", get(ws::upgrade))
        .route("/api/assets/audio", get(crate::assets::list))
        .route("/api/assets/audio/{id}", get(crate::assets::get))
        .merge(crate::pages::router())
        .fallback(not_found)
        .layer(middleware::from_fn(refuse_oversized))
        .layer(middleware::from_fn_with_state(state.clone(), crate::auth::require))
        .layer(middleware::map_response(bench_server::newline::json_newline))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES));
    guard::apply(app, policy).with_state(state)
}

/// `GET /health`: open to anyone (load balancers, `scripts/central status`), says nothing secret.
async fn health() -> Json<CentralHealth> {
    Json(CentralHealth { ok: true, service: "bench-central", version: env!("CARGO_PKG_VERSION") })
}

/// The answer to central's `GET /health`.
#[derive(Debug, serde::Serialize)]
struct CentralHealth {
    ok: bool,
    service: &'static str,
    version: &'static str,
}

/// A body declared over [`BODY_LIMIT_BYTES`] (a bundle: [`bundle::BUNDLE_LIMIT_BYTES`]) is
/// refused before any of it is read ([`DefaultBodyLimit`] still bounds bodies that declare no
/// length).
async fn refuse_oversized(req: Request, next: Next) -> Response {
    let limit = if req.uri().path() == IMPORT_PATH { bundle::BUNDLE_LIMIT_BYTES } else { BODY_LIMIT_BYTES };
    if guard::declared_length(req.headers()).is_some_and(|n| n > limit as u64) {
        return ApiError::PayloadTooLarge { limit_bytes: limit }.into_response();
    }
    next.run(req).await
}

async fn not_found(req: Request) -> ApiError {
    ApiError::NotFound(format!("no route {} {}", req.method(), req.uri().path()))
}
