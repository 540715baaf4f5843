//! `GET /api/machines` (every machine with its state, fingerprint and model fit) and `GET /metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use bench_shared::engine::ModelInfo;
use bench_shared::fit::{ModelFit, model_fit};
use bench_shared::run::MachineView;
use serde::Serialize;

use super::ApiError;
use super::params::Params;
use crate::AppState;

/// The context a fit is computed for when the page does not say (the race page's default).
pub const DEFAULT_FIT_NUM_CTX: u64 = 4096;
const MAX_FIT_NUM_CTX: u64 = 1 << 21;

/// One machine of `GET /api/machines`: its view plus `model_fit` for each model it offers.
#[derive(Debug, Serialize)]
pub struct MachineWithFit {
    #[serde(flatten)]
    pub view: MachineView,
    /// Per model the agent describes: `good | marginal | no` (or null) with the numbers.
    pub model_fit: Vec<ModelFit>,
}

/// The fit of every model the agent described in `/capabilities`, for a `num_ctx` context.
pub fn fits(view: &MachineView, num_ctx: u64) -> Vec<ModelFit> {
    let Some(hw) = &view.hardware else { return Vec::new() };
    let models: &[ModelInfo] = view.capabilities.as_ref().map(|c| c.models.as_slice()).unwrap_or_default();
    models.iter().map(|m| model_fit(m, hw, num_ctx)).collect()
}

/// `GET /api/machines[?num_ctx=N]`.
pub async fn list(State(state): State<AppState>, q: Params) -> Result<Json<Vec<MachineWithFit>>, ApiError> {
    let num_ctx = q.uint("num_ctx", DEFAULT_FIT_NUM_CTX, 1, MAX_FIT_NUM_CTX)?;
    let views = state.fleet.views();
    Ok(Json(views.into_iter().map(|view| MachineWithFit { model_fit: fits(&view, num_ctx), view }).collect()))
}

/// `GET /metrics`: Prometheus text.
pub async fn prometheus(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let runs: Vec<(String, i64)> =
        state.store.status_counts().into_iter().map(|(s, n)| (s.as_str().to_owned(), n as i64)).collect();
    let machines: Vec<_> = state.fleet.views().into_iter().map(|v| v.state).collect();
    let body = state.metrics.encode(&runs, &machines, state.hub.clients());
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body))
}
