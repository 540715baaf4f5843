//! `GET /api/models/pulls`: the pulls running now (`[{model, job_id}]`).
//!
//! `POST /api/models/pull {"model"}`: pulls a model onto the agent's engine (see
//! [`crate::pulls`]). 202 with the pull's `job_id` (its events arrive on `/ws` and at
//! `GET /jobs/{job_id}/events`), 501 naming the engine kind when the engine cannot pull, 429 when
//! [`crate::pulls::MAX_PULLS`] run already, 400 naming `model` for a bad name.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use bench_shared::api::{PullAccepted, PullRequest, RunningPull};

use super::error::ApiError;
use super::extract::JsonBody;
use super::state::AppState;

pub async fn pull(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<PullAccepted>), ApiError> {
    let req: PullRequest = serde_json::from_value(body)
        .map_err(|e| ApiError::bad("body", format!("expected {{\"model\": \"name\"}}: {e}")))?;
    let model = req.validate()?;
    let accepted = state.pulls.start(&state, model)?;
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

pub async fn running(State(state): State<AppState>) -> Json<Vec<RunningPull>> {
    Json(state.pulls.list())
}
