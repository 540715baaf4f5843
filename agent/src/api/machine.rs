//! What the agent knows about its machine beyond `/capabilities`' core: the runtime buffer
//! (`GET /api/agent/runtime_metrics`), Prometheus (`GET /metrics`), the engine fingerprint.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use bench_shared::engine::EngineFingerprint;
use bench_shared::runtime::RuntimeBuffer;

use super::state::AppState;

/// How long `/capabilities` waits for the engine's fingerprint.
const FINGERPRINT_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET /api/agent/runtime_metrics`: the sampler's ring buffer (the original's parallel arrays,
/// plus every sample in full).
pub async fn runtime_metrics(State(state): State<AppState>) -> Json<RuntimeBuffer> {
    Json(state.sampler.buffer())
}

/// `GET /metrics`: Prometheus text. Engine reachability comes from the engine status cache
/// (never a probe of the engine under test); runtime gauges from the newest sample.
pub async fn prometheus(State(state): State<AppState>) -> impl IntoResponse {
    if let Some(status) = state.engine_status.current() {
        state.metrics.set_engine_reachable(status.models.reachable());
    }
    if let Some(latest) = state.sampler.snapshot().last() {
        state.metrics.set_runtime(latest);
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode())
}

/// The engine's fingerprint for `/capabilities`: asked again only when the engine is reachable
/// and no job runs (asking during a job would disturb the measurement); otherwise the last one.
pub async fn engine_fingerprint(state: &AppState, reachable: bool) -> Option<EngineFingerprint> {
    let mut cached = state.engine_fingerprint.lock().await;
    let (busy, _) = state.jobs.load();
    if reachable && !busy {
        let fresh = match tokio::time::timeout(FINGERPRINT_TIMEOUT, state.engine.fingerprint()).await {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => {
                EngineFingerprint { kind: Some(state.engine.kind()), error: Some(e.to_string()), ..Default::default() }
            }
            Err(_) => EngineFingerprint {
                kind: Some(state.engine.kind()),
                error: Some(format!("no fingerprint within {FINGERPRINT_TIMEOUT:?}")),
                ..Default::default()
            },
        };
        *cached = Some(fresh);
    }
    cached.clone()
}
