//! `GET /api/runs/{id}/bundle.tar.gz` and `POST /api/runs/import`: a run moves between centrals
//! as one file ([`crate::store::bundle`]).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;

use super::ApiError;
use super::params::Params;
use super::runs::checked;
use crate::AppState;
use crate::store::bundle::{self, ImportError};
use bench_shared::time::{now_s, rfc3339};

/// Bundles may be larger than a JSON body: a long run's events are tens of MB (compressed).
pub const BUNDLE_LIMIT_BYTES: usize = 256 * 1024 * 1024;

/// `GET /api/runs/{id}/bundle.tar.gz`: 409 while the run is in progress (its files still change).
pub async fn export(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    checked(&run_id)?;
    if state.runs.is_running(&run_id) {
        return Err(ApiError::Conflict {
            message: format!("run {run_id} is still running; export it once it has ended"),
            detail: detail(RunRef { run_id: &run_id, status: Some("running") }),
        });
    }
    // Where it comes from, as the request named this central (informational on import).
    let origin = headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned);
    let (store, id) = (state.store.clone(), run_id.clone());
    let bytes = super::blocking(move || Ok(bundle::export(&store, &id, origin, &rfc3339(now_s()))?)).await?;
    let disposition = format!("attachment; filename=\"{run_id}.tar.gz\"");
    Ok(([(header::CONTENT_TYPE, "application/gzip".to_owned()), (header::CONTENT_DISPOSITION, disposition)], bytes))
}

/// `POST /api/runs/import[?origin=NAME]` with the bundle as the raw body (`Content-Type:
/// application/gzip`) → `201 {run_id, imported}`.
pub async fn import(
    State(state): State<AppState>,
    q: Params,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge { limit_bytes: BUNDLE_LIMIT_BYTES }
        } else {
            ApiError::bad("body", e.body_text())
        }
    })?;
    q.only(&["origin"])?;
    let origin = q.text("origin").map(str::to_owned);
    if origin.as_ref().is_some_and(|o| o.len() > 200) {
        return Err(ApiError::bad("origin", "at most 200 characters"));
    }
    if body.is_empty() {
        return Err(ApiError::bad("body", "empty: send the bundle (GET /api/runs/{id}/bundle.tar.gz) as the body"));
    }
    let store = state.store.clone();
    let meta = super::blocking(move || {
        bundle::import(&store, &body, origin, &rfc3339(now_s())).map_err(|e| match e {
            ImportError::Invalid { what, message } => ApiError::bad("body", format!("{what}: {message}")),
            ImportError::Exists(id) => ApiError::Conflict {
                message: format!("run {id} already exists here; delete it first to import it again"),
                detail: detail(RunRef { run_id: &id, status: None }),
            },
            ImportError::Store(s) => s.into(),
        })
    })
    .await?;
    tracing::info!(run_id = %meta.run_id, origin = ?meta.imported.as_ref().and_then(|i| i.origin.clone()), "run imported");
    Ok((StatusCode::CREATED, Json(ImportAnswer { run_id: meta.run_id, status: meta.status, imported: meta.imported })))
}

/// The run a conflict is about, as the error body's `detail`.
#[derive(Serialize)]
struct RunRef<'a> {
    run_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a str>,
}

fn detail(r: RunRef<'_>) -> serde_json::Value {
    serde_json::to_value(r).unwrap_or_default()
}

/// `201` answer of an import.
#[derive(Serialize)]
struct ImportAnswer {
    run_id: String,
    status: bench_shared::run::RunStatus,
    imported: Option<bench_shared::share::Imported>,
}
