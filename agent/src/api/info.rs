//! `GET /health` and `GET /capabilities`, answered from the engine status cache
//! ([`crate::engine_status`]) so that probes never load the engine under test. `?refresh=1`
//! probes the engine first (bounded by [`timeouts::AGENT_ENGINE_PROBE`]).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use bench_shared::api::{AgentTime, Capabilities, EngineHealth, Health};
use bench_shared::engine::{EngineInfo, ModelInfo, same_model};
use bench_shared::hardware::LegacyCapabilities;
use bench_shared::job::TestType;
use bench_shared::timeouts;

use super::error::ApiError;
use super::state::AppState;
use crate::engine::Fallback;
use crate::engine_status::{EngineModels, EngineStatus};

/// `?refresh=1` (or `true`): probe the engine before answering.
fn wants_refresh(query: &HashMap<String, String>) -> Result<bool, ApiError> {
    match query.get("refresh").map(String::as_str) {
        None | Some("0" | "false") => Ok(false),
        Some("1" | "true" | "") => Ok(true),
        Some(other) => Err(ApiError::bad("refresh", format!("must be 1, true, 0 or false, got {other:?}"))),
    }
}

async fn status(state: &AppState, query: &HashMap<String, String>) -> Result<std::sync::Arc<EngineStatus>, ApiError> {
    Ok(if wants_refresh(query)? {
        state.engine_status.refresh(timeouts::AGENT_ENGINE_PROBE).await
    } else {
        state.engine_status.get_or_refresh().await
    })
}

/// The models this agent offers: the configured `llm_models`, else what the engine lists.
fn advertised(state: &AppState, listed: &[ModelInfo]) -> Vec<String> {
    if state.config.llm_models.is_empty() {
        listed.iter().map(|m| m.name.clone()).collect()
    } else {
        state.config.llm_models.clone()
    }
}

/// `GET /time`: the agent's wall clock, read as the request is handled (central estimates the
/// clock offset from round trips to it). Open, like `/health`: a clock reading is no secret, and
/// it keeps the measurement as cheap as an answer can be.
pub async fn time() -> Json<AgentTime> {
    Json(AgentTime { now_unix_ms: crate::engine::wall_now_s() * 1000.0 })
}

/// `GET /health`: never waits for the engine (unless `?refresh=1`): before the first engine
/// check has finished it says so, with `reachable: false` and no `checked_age_s`.
pub async fn health(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Health>, ApiError> {
    let status = if wants_refresh(&query)? {
        Some(state.engine_status.refresh(timeouts::AGENT_ENGINE_PROBE).await)
    } else {
        state.engine_status.current()
    };
    let (busy, queue_len) = state.jobs.load();
    let cfg = &state.config;
    let engine = match status {
        Some(s) => EngineHealth {
            kind: state.engine.kind(),
            base_url: state.engine.base_url().to_owned(),
            reachable: s.models.reachable(),
            checked_age_s: Some(s.checked_at.elapsed().as_secs_f64()),
            error: s.models.error().map(str::to_owned),
        },
        None => EngineHealth {
            kind: state.engine.kind(),
            base_url: state.engine.base_url().to_owned(),
            reachable: false,
            checked_age_s: None,
            error: Some("first engine check in progress".into()),
        },
    };
    Ok(Json(Health {
        ok: true,
        machine_id: cfg.machine_id.clone(),
        label: cfg.label.clone(),
        engine,
        busy,
        queue_len,
        ws_slow_disconnects: *state.ws_slow_disconnects.borrow(),
    }))
}

pub async fn capabilities(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Capabilities>, ApiError> {
    let status = status(&state, &query).await?;
    let listed = status.models.listed();
    let cfg = &state.config;
    let absent = matches!(status.models, EngineModels::Unreachable(_));
    let fallback = absent && cfg.engine.fallback == Fallback::Mock;
    let mut llm_models = advertised(&state, listed);
    if fallback && llm_models.is_empty() {
        llm_models = cfg.engine.mock.models.clone();
    }
    let models: Vec<ModelInfo> = if cfg.llm_models.is_empty() {
        listed.to_vec()
    } else {
        listed.iter().filter(|m| cfg.llm_models.iter().any(|w| same_model(&m.name, w))).cloned().collect()
    };
    let engine = EngineInfo {
        kind: state.engine.kind(),
        base_url: state.engine.base_url().to_owned(),
        version: status.version.clone(),
        reachable: status.models.reachable(),
        fallback_reason: fallback
            .then(|| "engine unreachable: jobs run on the mock engine (engine.fallback: mock)".into()),
    };
    let refresh = wants_refresh(&query)?;
    let workloads = super::workloads::probe_all(&state, refresh).await;
    let hardware = state.hardware().await;
    let reachable = status.models.reachable();
    let legacy = LegacyCapabilities::derive(&hardware, reachable, llm_models.clone());
    let ceiling = state.ceiling.borrow().clone();
    Ok(Json(Capabilities {
        machine_id: cfg.machine_id.clone(),
        label: cfg.label.clone(),
        tests: TestType::ALL.into_iter().filter(|t| workloads.runs(*t)).map(|t| t.as_str().to_owned()).collect(),
        llm_models,
        whisper_models: workloads.whisper_models(cfg),
        sdxl_profiles: workloads.sdxl_profiles(cfg),
        image_engine: workloads.image.clone(),
        speech_engine: workloads.speech.clone(),
        engine,
        models,
        hardware,
        queue_limit: Some(cfg.queue_limit),
        engine_fingerprint: super::machine::engine_fingerprint(&state, reachable).await,
        client_ceiling_unavailable: ceiling.as_ref().err().cloned(),
        client_ceiling: ceiling.ok(),
        legacy: Some(legacy),
        extra: Default::default(),
    }))
}
