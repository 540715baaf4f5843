//! `GET /health` and `GET /capabilities`, and the model lookup `POST /jobs` relies on.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use bench_shared::engine::{EngineInfo, ModelInfo};
use bench_shared::job::TestType;
use serde_json::{Value, json};

use super::state::AppState;
use crate::engine::{EngineError, Fallback};

/// How long `/health` and `/capabilities` wait for the engine.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the engine said when asked for its models.
pub enum EngineModels {
    Listed(Vec<ModelInfo>),
    /// Connection refused, DNS, connect timeout: nobody is there.
    Unreachable(String),
    /// Connected, but no answer in time (a busy engine is not a missing one: no fallback).
    NoAnswer(String),
    /// It answered, but with an error.
    Failed(String),
}

/// Lists the engine's models within `timeout`.
pub async fn engine_models(state: &AppState, timeout: Duration) -> EngineModels {
    match tokio::time::timeout(timeout, state.engine.list_models()).await {
        Ok(Ok(models)) => EngineModels::Listed(models),
        Ok(Err(e @ EngineError::Unreachable { .. })) => EngineModels::Unreachable(e.to_string()),
        Ok(Err(e @ EngineError::Timeout { .. })) => EngineModels::NoAnswer(e.to_string()),
        Ok(Err(e)) => EngineModels::Failed(e.to_string()),
        Err(_) => EngineModels::NoAnswer(format!("no answer from {} within {timeout:?}", state.engine.base_url())),
    }
}

/// True when `name` is `wanted` (Ollama also serves `llama3` as `llama3:latest`).
pub fn same_model(name: &str, wanted: &str) -> bool {
    name == wanted || name.strip_suffix(":latest") == Some(wanted) || wanted.strip_suffix(":latest") == Some(name)
}

/// The models this agent offers: the configured `llm_models`, else what the engine lists.
fn advertised(state: &AppState, listed: &[ModelInfo]) -> Vec<String> {
    if state.config.llm_models.is_empty() {
        listed.iter().map(|m| m.name.clone()).collect()
    } else {
        state.config.llm_models.clone()
    }
}

pub async fn health(State(state): State<AppState>) -> Json<Value> {
    let reachable =
        matches!(engine_models(&state, PROBE_TIMEOUT).await, EngineModels::Listed(_) | EngineModels::Failed(_));
    let (busy, queue_len) = state.jobs.load();
    let cfg = &state.config;
    Json(json!({
        "ok": true,
        "machine_id": cfg.machine_id,
        "label": cfg.label,
        "engine": {"kind": state.engine.kind(), "base_url": state.engine.base_url(), "reachable": reachable},
        "busy": busy,
        "queue_len": queue_len,
        "ws_slow_disconnects": *state.ws_slow_disconnects.borrow(),
    }))
}

pub async fn capabilities(State(state): State<AppState>) -> Json<Value> {
    let (listed, reachable, absent) = match engine_models(&state, PROBE_TIMEOUT).await {
        EngineModels::Listed(m) => (m, true, false),
        EngineModels::Failed(_) => (Vec::new(), true, false),
        EngineModels::NoAnswer(_) => (Vec::new(), false, false),
        EngineModels::Unreachable(_) => (Vec::new(), false, true),
    };
    let version = if reachable {
        tokio::time::timeout(PROBE_TIMEOUT, state.engine.version()).await.ok().and_then(Result::ok).flatten()
    } else {
        None
    };
    let cfg = &state.config;
    let fallback = absent && cfg.engine.fallback == Fallback::Mock;
    let mut llm_models = advertised(&state, &listed);
    if fallback && llm_models.is_empty() {
        llm_models = cfg.engine.mock.models.clone();
    }
    let models: Vec<&ModelInfo> = if cfg.llm_models.is_empty() {
        listed.iter().collect()
    } else {
        listed.iter().filter(|m| cfg.llm_models.iter().any(|w| same_model(&m.name, w))).collect()
    };
    let engine = EngineInfo {
        kind: state.engine.kind(),
        base_url: state.engine.base_url().to_owned(),
        version,
        reachable,
        fallback_reason: fallback
            .then(|| "engine unreachable: jobs run on the mock engine (engine.fallback: mock)".into()),
    };
    Json(json!({
        "machine_id": cfg.machine_id,
        "label": cfg.label,
        "tests": TestType::ALL.map(TestType::as_str),
        "llm_models": llm_models,
        "whisper_models": cfg.whisper_models,
        "sdxl_profiles": cfg.sdxl_profiles,
        "engine": engine,
        "models": models,
        "hardware": state.hardware().await,
        "queue_limit": cfg.queue_limit,
    }))
}
