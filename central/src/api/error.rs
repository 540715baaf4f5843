//! [`ApiError`]: every failure as a status code and a JSON body `{"error", "field"?, "detail"?}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::runs::RunError;
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::BadRequest { field, message } => {
                let error = match &field {
                    Some(f) => format!("{f}: {message}"),
                    None => message.clone(),
                };
                (StatusCode::BAD_REQUEST, json!({"error": error, "field": field, "detail": message}))
            }
            ApiError::NotFound(what) => (StatusCode::NOT_FOUND, json!({"error": what})),
            ApiError::PayloadTooLarge { limit_bytes } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": format!("request body is larger than the limit of {limit_bytes} bytes"),
                       "field": "body", "detail": {"limit_bytes": limit_bytes}}),
            ),
            ApiError::Conflict { message, detail } => {
                (StatusCode::CONFLICT, json!({"error": message, "detail": detail}))
            }
            ApiError::InsufficientStorage(reason) => {
                tracing::error!("results directory not writable: {reason}");
                (StatusCode::INSUFFICIENT_STORAGE, json!({"error": reason}))
            }
            ApiError::Internal(cause) => {
                tracing::error!("internal error: {cause}");
                (StatusCode::INTERNAL_SERVER_ERROR, json!({"error": "internal error; see the central log"}))
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
                ApiError::Conflict { message: e.to_string(), detail: json!({"run_id": run_id, "machines": machines}) }
            }
            RunError::Store(s) => s.into(),
        }
    }
}
