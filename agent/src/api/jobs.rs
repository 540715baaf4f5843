//! `/jobs`: submit, list, inspect, cancel, and read a job's events as NDJSON.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bench_shared::api::{JobAccepted, JobCancelAnswer, JobStatus};
use bench_shared::engine::same_model;
use bench_shared::job::JobSpec;
use bench_shared::time::now_ms;
use bench_shared::timeouts;

use super::error::ApiError;
use super::extract::JsonBody;
use super::state::AppState;
use crate::engine::Fallback;
use crate::engine_status::EngineModels;
use crate::jobs::JobView;

/// `POST /jobs`: 202 [`JobAccepted`].
pub async fn create(State(state): State<AppState>, JsonBody(body): JsonBody) -> Result<Response, ApiError> {
    let spec = JobSpec::from_json(&body, now_ms())?;
    let fallback_reason = if spec.test_type().uses_llm_engine() {
        check_models(&state, &spec).await?
    } else {
        super::workloads::check(&state, &spec).await?;
        None
    };
    let (job_id, position) = state.jobs.submit(spec, fallback_reason)?;
    tracing::info!(%job_id, position, "job queued");
    Ok((StatusCode::ACCEPTED, Json(JobAccepted { job_id, position, status: JobStatus::Queued })).into_response())
}

/// Refuses models the agent does not offer, checking the cached engine status. A model the cache
/// does not list triggers one refresh, bounded by [`timeouts::AGENT_MODEL_REFRESH`] (it may have
/// just been pulled); past that bound the cached answer stands.
/// Returns the fallback reason when the engine is unreachable and `engine.fallback: mock` is set
/// (the job then runs on the mock engine). An unreachable engine without fallback is not refused
/// here: the job reports `job_error {kind: engine_unreachable}`, which is what a racing central
/// must record.
async fn check_models(state: &AppState, spec: &JobSpec) -> Result<Option<String>, ApiError> {
    let cfg = &state.config;
    let wanted = spec.models();
    if !cfg.llm_models.is_empty()
        && let Some(m) = wanted.iter().find(|m| !cfg.llm_models.iter().any(|a| same_model(a, m)))
    {
        return Err(ApiError::UnknownModel { model: m.clone(), available: cfg.llm_models.clone() });
    }
    let cache = &state.engine_status;
    let missing = |models: &EngineModels| {
        wanted.iter().find(|m| !models.listed().iter().any(|l| same_model(&l.name, m))).cloned()
    };
    let mut status = cache.current();
    if status.as_ref().is_none_or(|s| missing(&s.models).is_some()) {
        // Only a probe that finishes within the bound replaces the cached answer: one cut short
        // says nothing about the models.
        let probe = cache.refresh(timeouts::AGENT_ENGINE_PROBE);
        if let Ok(fresh) = tokio::time::timeout(timeouts::AGENT_MODEL_REFRESH, probe).await {
            status = Some(fresh);
        }
    }
    let Some(status) = status else { return Ok(None) };
    match &status.models {
        EngineModels::Listed(listed) => {
            if let Some(m) = missing(&status.models) {
                let available = listed
                    .iter()
                    .map(|l| l.name.clone())
                    .filter(|n| cfg.llm_models.is_empty() || cfg.llm_models.iter().any(|a| same_model(n, a)))
                    .collect();
                return Err(ApiError::UnknownModel { model: m, available });
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
pub async fn cancel(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<JobCancelAnswer>, ApiError> {
    let status = state.jobs.cancel(&id, "cancelled by DELETE /jobs/{id}")?;
    let shown = if status.is_finished() { "cancelled" } else { "cancelling" };
    Ok(Json(JobCancelAnswer { job_id: id, status: shown.to_owned() }))
}

/// `GET /jobs/{id}/events[?after_seq=N]`: the job's events so far, one JSON object per line.
pub async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let after_seq = parse_after_seq(&query)?;
    let events = state.hub.events_full(&id, after_seq).await.ok_or_else(|| no_job(&id))?;
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
        "no job {id:?} on this agent (the events of the last {} jobs are kept)",
        crate::journal::KEEP_JOBS
    ))
}
