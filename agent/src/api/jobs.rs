//! `/jobs`: submit, list, inspect, cancel, and read a job's events as NDJSON.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bench_shared::job::JobSpec;
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::JsonBody;
use super::info::{EngineModels, engine_models, same_model};
use super::state::AppState;
use crate::engine::Fallback;
use crate::jobs::JobView;

/// How long `POST /jobs` waits for the engine's model list.
const MODEL_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

fn now_ms() -> u64 {
    (crate::engine::wall_now_s() * 1000.0) as u64
}

/// `POST /jobs`: 202 `{"job_id", "position"}`.
pub async fn create(State(state): State<AppState>, JsonBody(body): JsonBody) -> Result<Response, ApiError> {
    let spec = JobSpec::from_json(&body, now_ms())?;
    let fallback_reason = check_models(&state, &spec).await?;
    let (job_id, position) = state.jobs.submit(spec, fallback_reason)?;
    tracing::info!(%job_id, position, "job queued");
    Ok((StatusCode::ACCEPTED, Json(json!({"job_id": job_id, "position": position, "status": "queued"})))
        .into_response())
}

/// Refuses models the agent does not offer. Returns the fallback reason when the engine is
/// unreachable and `engine.fallback: mock` is set (the job then runs on the mock engine).
/// An unreachable engine without fallback is not refused here: the job reports
/// `job_error {kind: engine_unreachable}`, which is what a racing central must record.
async fn check_models(state: &AppState, spec: &JobSpec) -> Result<Option<String>, ApiError> {
    let cfg = &state.config;
    let wanted = spec.models();
    if !cfg.llm_models.is_empty()
        && let Some(m) = wanted.iter().find(|m| !cfg.llm_models.iter().any(|a| same_model(a, m)))
    {
        return Err(ApiError::UnknownModel { model: m.clone(), available: cfg.llm_models.clone() });
    }
    match engine_models(state, MODEL_CHECK_TIMEOUT).await {
        EngineModels::Listed(listed) => {
            if let Some(m) = wanted.iter().find(|m| !listed.iter().any(|l| same_model(&l.name, m))) {
                let available = listed
                    .iter()
                    .map(|l| l.name.clone())
                    .filter(|n| cfg.llm_models.is_empty() || cfg.llm_models.iter().any(|a| same_model(n, a)))
                    .collect();
                return Err(ApiError::UnknownModel { model: m.clone(), available });
            }
            Ok(None)
        }
        EngineModels::Unreachable(why) if cfg.engine.fallback == Fallback::Mock => Ok(Some(format!(
            "{} engine unavailable ({why}); running on the mock engine because engine.fallback is mock",
            state.engine.kind()
        ))),
        EngineModels::Unreachable(_) | EngineModels::NoAnswer(_) | EngineModels::Failed(_) => Ok(None),
    }
}

/// `GET /jobs`: every known job, oldest first.
pub async fn list(State(state): State<AppState>) -> Json<Vec<JobView>> {
    Json(state.jobs.list())
}

/// `GET /jobs/{id}`.
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<JobView>, ApiError> {
    state.jobs.get(&id).map(Json).ok_or_else(|| no_job(&id))
}

/// `DELETE /jobs/{id}`: 200 `{"job_id", "status"}`; a running job reports `cancelling` until its
/// `job_cancelled` event is out.
pub async fn cancel(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let status = state.jobs.cancel(&id, "cancelled by DELETE /jobs/{id}")?;
    let shown = if status.is_finished() { "cancelled" } else { "cancelling" };
    Ok(Json(json!({"job_id": id, "status": shown})))
}

/// `GET /jobs/{id}/events[?after_seq=N]`: the job's events so far, one JSON object per line.
pub async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let after_seq = parse_after_seq(&query)?;
    let events = state.hub.events(&id, after_seq).ok_or_else(|| no_job(&id))?;
    let mut body = String::with_capacity(events.iter().map(|e| e.json.len() + 1).sum());
    for e in &events {
        body.push_str(&e.json);
        body.push('\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

/// `after_seq` from a query string (absent: 0).
pub fn parse_after_seq(query: &HashMap<String, String>) -> Result<u64, ApiError> {
    match query.get("after_seq") {
        None => Ok(0),
        Some(v) => {
            v.parse().map_err(|_| ApiError::bad("after_seq", format!("must be a non-negative integer, got {v:?}")))
        }
    }
}

fn no_job(id: &str) -> ApiError {
    ApiError::NotFound(format!(
        "no job {id:?} on this agent (finished jobs are kept for the last {} jobs)",
        crate::hub::Hub::KEEP_FINISHED
    ))
}
