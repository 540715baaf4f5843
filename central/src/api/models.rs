//! Fleet model management: `GET /api/models` (which machine has which model, the machines and
//! whether their engine can pull, the pulls running and just finished) and
//! `POST /api/models/pull {model, machine_ids?}` (202: each machine asked, with the agent's answer;
//! machines left out, with the reason). Progress follows as `model_pull` events on `/api/ws`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use bench_shared::pull::{FleetPullRequest, FleetPullStarted, ModelsView};

use super::ApiError;
use crate::AppState;

pub async fn list(State(state): State<AppState>) -> Json<ModelsView> {
    Json(state.pulls.view())
}

pub async fn pull(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<FleetPullStarted>), ApiError> {
    let req: FleetPullRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad("body", format!("expected {{\"model\": \"name\", \"machine_ids\": [\"id\", …] (optional)}}: {e}"))
    })?;
    let started = state.pulls.start(req).await?;
    Ok((StatusCode::ACCEPTED, Json(started)))
}
