//! `/api/runs…`: start, list, show, events, delete.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use bench_shared::run::{RunMetadata, RunPage, RunSummary};
use serde::Serialize;
use serde_json::{Value, json};

use super::ApiError;
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

/// `GET /api/runs?limit=&offset=`: newest first.
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<RunPage>, ApiError> {
    let num = |k: &str, default: usize, max: usize| -> Result<usize, ApiError> {
        match q.get(k) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| ApiError::bad(k, format!("must be an integer from 0 to {max}, got {v:?}"))),
        }
    };
    let limit = num("limit", DEFAULT_LIMIT, MAX_LIMIT)?;
    let offset = num("offset", 0, usize::MAX)?;
    let store = state.store.clone();
    let page = super::blocking(move || Ok(store.list(limit, offset)?)).await?;
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

pub async fn show(State(state): State<AppState>, Path(run_id): Path<String>) -> Result<Json<RunDetail>, ApiError> {
    checked(&run_id)?;
    if let Some(live) = state.runs.live(&run_id) {
        let l = task::lock(&live);
        return Ok(Json(RunDetail {
            metadata: l.meta.clone(),
            summary: None,
            live: true,
            machines: l.outcomes.clone(),
        }));
    }
    let store = state.store.clone();
    let detail = super::blocking(move || {
        let metadata = store.metadata(&run_id)?;
        let summary = store.summary(&run_id)?;
        let machines = outcomes_from_events(&store.events(&run_id)?);
        Ok(RunDetail { metadata, summary, live: false, machines })
    })
    .await?;
    Ok(Json(detail))
}

/// `GET /api/runs/{id}/events`: `events.ndjson` as stored.
pub async fn events(State(state): State<AppState>, Path(run_id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    checked(&run_id)?;
    let store = state.store.clone();
    let bytes = super::blocking(move || Ok(store.events(&run_id)?)).await?;
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], bytes))
}

/// `DELETE /api/runs/{id}`: 409 while the run is in progress.
pub async fn delete(State(state): State<AppState>, Path(run_id): Path<String>) -> Result<Json<Value>, ApiError> {
    checked(&run_id)?;
    if state.runs.is_running(&run_id) {
        return Err(ApiError::Conflict {
            message: format!("run {run_id} is still running; delete it once it has ended"),
            detail: json!({"run_id": run_id, "status": "running"}),
        });
    }
    let (store, id) = (state.store.clone(), run_id.clone());
    super::blocking(move || Ok(store.delete(&id)?)).await?;
    tracing::info!(run_id, "run deleted");
    Ok(Json(json!({"deleted": run_id})))
}
