//! [`ApiError`]: every failure as a status code and a JSON body `{"error", "field"?, "detail"?}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bench_shared::api::ErrorBody;
use serde::Serialize;
use serde_json::Value;

use crate::runs::{MachineOutcome, RunError};
use crate::store::StoreError;

#[derive(Debug)]
pub enum ApiError {
    /// Bad input; `field` names the offending field.
    BadRequest {
        field: Option<String>,
        message: String,
    },
    NotFound(String),
    /// The request conflicts with the current state; `detail` says how.
    Conflict {
        message: String,
        detail: Value,
    },
    /// The body is larger than central accepts.
    PayloadTooLarge {
        limit_bytes: usize,
    },
    /// The results directory cannot be written (full disk): 507 with the reason.
    InsufficientStorage(String),
    /// A server-side failure: logged in full, answered with a generic message.
    Internal(String),
}

impl ApiError {
    pub fn bad(field: &str, message: impl Into<String>) -> Self {
        ApiError::BadRequest { field: Some(field.to_owned()), message: message.into() }
    }
}

/// The `detail` of a refusal about a run that is still running.
#[derive(Debug, Serialize)]
pub struct StillRunning<'a> {
    /// The query parameter that named the run, where one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'a str>,
    pub run_id: &'a str,
    pub status: bench_shared::run::RunStatus,
}

/// The `detail` of a run no machine could take.
#[derive(Debug, Serialize)]
struct NoMachines<'a> {
    run_id: &'a str,
    machines: &'a [MachineOutcome],
}

impl ApiError {
    /// 409 for a run that is still running.
    pub fn still_running(message: String, field: Option<&str>, run_id: &str) -> Self {
        let detail = StillRunning { field, run_id, status: bench_shared::run::RunStatus::Running };
        ApiError::Conflict { message, detail: serde_json::to_value(detail).unwrap_or_default() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::BadRequest { field, message } => {
                let error = match &field {
                    Some(f) => format!("{f}: {message}"),
                    None => message.clone(),
                };
                let body = ErrorBody { error, field, ..Default::default() }.detail(message);
                (StatusCode::BAD_REQUEST, body)
            }
            ApiError::NotFound(what) => (StatusCode::NOT_FOUND, ErrorBody::new(what)),
            ApiError::PayloadTooLarge { limit_bytes } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorBody::new(format!("request body is larger than the limit of {limit_bytes} bytes"))
                    .field("body")
                    .detail(bench_shared::api::LimitDetail { limit_bytes }),
            ),
            ApiError::Conflict { message, detail } => {
                (StatusCode::CONFLICT, ErrorBody { detail: Some(detail), ..ErrorBody::new(message) })
            }
            ApiError::InsufficientStorage(reason) => {
                tracing::error!("results directory not writable: {reason}");
                (StatusCode::INSUFFICIENT_STORAGE, ErrorBody::new(reason))
            }
            ApiError::Internal(cause) => {
                tracing::error!("internal error: {cause}");
                (StatusCode::INTERNAL_SERVER_ERROR, ErrorBody::new("internal error; see the central log"))
            }
        };
        (status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidId(_) => ApiError::bad("run_id", e.to_string()),
            StoreError::InvalidName(_) => ApiError::bad("name", e.to_string()),
            StoreError::NotFound(_) => ApiError::NotFound(e.to_string()),
            StoreError::Unwritable(_) => ApiError::InsufficientStorage(e.to_string()),
            StoreError::Io { .. } | StoreError::Json { .. } => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<RunError> for ApiError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Invalid(f) => ApiError::BadRequest { field: Some(f.field), message: f.message },
            RunError::NoMachines { ref run_id, ref machines, .. } => {
                let detail = serde_json::to_value(NoMachines { run_id, machines }).unwrap_or_default();
                ApiError::Conflict { message: e.to_string(), detail }
            }
            RunError::Store(s) => s.into(),
        }
    }
}
