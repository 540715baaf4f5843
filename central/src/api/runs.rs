//! `/api/runs…`: start, list, show, events, delete.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use bench_shared::run::{RunMetadata, RunPage, RunStatus, RunSummary};
use serde::Serialize;
use serde_json::Value;

use super::ApiError;
use super::params::Params;
use crate::AppState;
use crate::runs::summary::{Outcome, outcomes_from_events};
use crate::runs::task;
use crate::store::valid_run_id;

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;

/// `POST /api/runs` → `201 {run_id, start_at, machines}`.
pub async fn create(
    State(state): State<AppState>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(body) = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge { limit_bytes: super::BODY_LIMIT_BYTES }
        } else {
            ApiError::bad("body", e.body_text())
        }
    })?;
    let created = state.runs.create(&body).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET /api/runs?limit=&offset=&model=&machine=&engine_version=&status=&since=`: newest first,
/// filtered (see [`super::filters`]).
pub async fn list(State(state): State<AppState>, q: Params) -> Result<Json<RunPage>, ApiError> {
    let limit = q.uint("limit", DEFAULT_LIMIT as u64, 0, MAX_LIMIT as u64)? as usize;
    let offset = q.uint("offset", 0, 0, usize::MAX as u64)? as usize;
    let filter = super::filters::RunFilter::from_query(&q)?;
    let store = state.store.clone();
    let page = super::blocking(move || {
        Ok(if filter.is_empty() {
            store.list(limit, offset)?
        } else {
            store.list_where(|m| filter.matches(m), limit, offset)?
        })
    })
    .await?;
    Ok(Json(page))
}

/// `GET /api/runs/{id}`.
#[derive(Debug, Serialize)]
pub struct RunDetail {
    pub metadata: RunMetadata,
    /// `summary.json` once the run ended (`None` while running or if it was interrupted early).
    pub summary: Option<RunSummary>,
    /// True while the run is in progress (then `machines` is live state).
    pub live: bool,
    /// Per machine: status, reason, job id, events stored, last seq, finish order and the
    /// generated text of the first recorded repeat (from the live run or `events.ndjson`).
    pub machines: HashMap<String, Outcome>,
}

pub fn checked(run_id: &str) -> Result<(), ApiError> {
    if valid_run_id(run_id) {
        Ok(())
    } else {
        Err(ApiError::bad("run_id", "invalid run id: expected YYYY-MM-DD_HHMMSS_xxxxxx"))
    }
}

/// `GET /api/runs/{id}?wait=SECONDS`: with `wait`, a running run is answered when it ends (final
/// summary) or when the time is up (live state, `live: true`); see [`super::wait`].
pub async fn show(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
    q: Params,
) -> Result<Json<RunDetail>, ApiError> {
    checked(&run_id)?;
    let wait = super::wait::parse_wait(q.text("wait"))?;
    // After run_end the files are normally final even if the live entry has not been dropped yet.
    let ended = super::wait::until_run_end(&state, &run_id, wait).await;
    let live_detail = |state: &AppState| {
        state.runs.live(&run_id).map(|live| {
            let l = task::lock(&live);
            RunDetail { metadata: l.meta.clone(), summary: None, live: true, machines: l.outcomes.clone() }
        })
    };
    if !ended && let Some(detail) = live_detail(&state) {
        return Ok(Json(detail));
    }
    let store = state.store.clone();
    let id = run_id.clone();
    let detail = super::blocking(move || {
        let metadata = store.metadata(&id)?;
        let summary = store.summary(&id)?;
        let machines = outcomes_from_events(&store.events(&id)?);
        Ok(RunDetail { metadata, summary, live: false, machines })
    })
    .await?;
    // run_end was sent but the final files could not be written: the live state is the truth.
    if detail.metadata.status == RunStatus::Running
        && let Some(live) = live_detail(&state)
    {
        return Ok(Json(live));
    }
    Ok(Json(detail))
}

/// `GET /api/runs/{id}/events`: `events.ndjson` as stored.
pub async fn events(State(state): State<AppState>, Path(run_id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    checked(&run_id)?;
    let store = state.store.clone();
    let bytes = super::blocking(move || Ok(store.events(&run_id)?)).await?;
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], bytes))
}

/// The answer to `DELETE /api/runs/{id}`.
#[derive(Debug, Serialize)]
pub struct Deleted {
    pub deleted: String,
}

/// `DELETE /api/runs/{id}`: 409 while the run is in progress.
pub async fn delete(State(state): State<AppState>, Path(run_id): Path<String>) -> Result<Json<Deleted>, ApiError> {
    checked(&run_id)?;
    if state.runs.is_running(&run_id) {
        let message = format!("run {run_id} is still running; delete it once it has ended");
        return Err(ApiError::still_running(message, None, &run_id));
    }
    let (store, id) = (state.store.clone(), run_id.clone());
    super::blocking(move || Ok(store.delete(&id)?)).await?;
    tracing::info!(run_id, "run deleted");
    Ok(Json(Deleted { deleted: run_id }))
}

/// `GET /api/runs/{run_id}/images/{name}`: an image stored with the run (`images/`).
pub async fn image(
    State(state): State<AppState>,
    axum::extract::Path((run_id, name)): axum::extract::Path<(String, String)>,
) -> Result<axum::response::Response, ApiError> {
    let store = state.store.clone();
    let (r, n) = (run_id.clone(), name.clone());
    let bytes = super::blocking(move || Ok(store.image(&r, &n))).await?;
    let bytes = bytes.ok_or_else(|| ApiError::NotFound(format!("no image {name:?} in run {run_id}")))?;
    let ct = if name.ends_with(".jpg") {
        "image/jpeg"
    } else if name.ends_with(".webp") {
        "image/webp"
    } else {
        "image/png"
    };
    Ok(([(axum::http::header::CONTENT_TYPE, ct)], bytes).into_response())
}
