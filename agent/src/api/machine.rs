//! What the agent knows about its machine beyond `/capabilities`' core: the runtime buffer
//! (`GET /api/agent/runtime_metrics`), Prometheus (`GET /metrics`), and the extra capability
//! fields (engine fingerprint, the original bench-race's flat fields).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use bench_shared::hardware::{Hardware, LegacyCapabilities};
use bench_shared::runtime::RuntimeBuffer;
use serde_json::{Map, Value};

use super::info::{EngineModels, engine_models};
use super::state::AppState;

/// How long a scrape waits for the engine's reachability check.
const SCRAPE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /api/agent/runtime_metrics`: the sampler's ring buffer (the original's parallel arrays,
/// plus every sample in full).
pub async fn runtime_metrics(State(state): State<AppState>) -> Json<RuntimeBuffer> {
    Json(state.sampler.buffer())
}

/// `GET /metrics`: Prometheus text. Engine reachability is re-checked only while no job runs
/// (a scrape must never disturb a benchmark); runtime gauges come from the newest sample.
pub async fn prometheus(State(state): State<AppState>) -> impl IntoResponse {
    let (busy, _) = state.jobs.load();
    if !busy {
        let reachable = matches!(
            engine_models(&state, SCRAPE_PROBE_TIMEOUT).await,
            EngineModels::Listed(_) | EngineModels::Failed(_)
        );
        state.metrics.set_engine_reachable(reachable);
    }
    if let Some(latest) = state.sampler.snapshot().last() {
        state.metrics.set_runtime(latest);
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode())
}

/// Fields `/capabilities` adds to its core: `engine_fingerprint` (when the engine answers) and the
/// original bench-race's flat fields derived from the fingerprint.
pub async fn capability_extras(
    state: &AppState,
    hw: &Hardware,
    reachable: bool,
    models: &[String],
) -> Map<String, Value> {
    state.metrics.set_engine_reachable(reachable);
    let mut extras = match serde_json::to_value(LegacyCapabilities::derive(hw, reachable, models.to_vec())) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    if reachable {
        let fp = tokio::time::timeout(Duration::from_secs(5), state.engine.fingerprint()).await;
        let value = match fp {
            Ok(Ok(f)) => serde_json::to_value(f).unwrap_or(Value::Null),
            Ok(Err(e)) => serde_json::json!({"error": e.to_string()}),
            Err(_) => serde_json::json!({"error": "the engine gave no fingerprint within 5 s"}),
        };
        extras.insert("engine_fingerprint".into(), value);
    }
    extras.insert("runtime_sampler".into(), serde_json::to_value(&state.config.runtime_sampler).unwrap_or(Value::Null));
    extras
}
