//! One error type for every handler: a status and a JSON body `{"error", "field"?, "detail"?}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bench_shared::api::{ErrorBody, LimitDetail};
use bench_shared::job::FieldError;

use crate::jobs::{CancelError, SubmitError};

/// `detail` of a 429: the queue's length limit.
#[derive(Debug, serde::Serialize)]
struct QueueLimit {
    queue_limit: usize,
}

/// `detail` of a 501 to a pull: the engine kind that cannot pull.
#[derive(Debug, serde::Serialize)]
struct PullEngine {
    engine: bench_shared::engine::EngineKind,
}

/// `detail` of a 429 to a pull: the pulls running and the limit.
#[derive(Debug, serde::Serialize)]
struct PullsRunning {
    running: usize,
    max_pulls: usize,
}

/// Why a request failed, as the client sees it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A field of the request is invalid (400).
    #[error("{field}: {message}")]
    BadField { field: String, message: String },
    #[error("request body is larger than the limit of {limit_bytes} bytes")]
    PayloadTooLarge { limit_bytes: usize },
    #[error("model {model:?} is not available on this agent; available models: {}", available.join(", "))]
    UnknownModel { model: String, available: Vec<String> },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Submit(#[from] SubmitError),
    #[error(transparent)]
    Pull(#[from] crate::pulls::PullRefused),
    #[error(
        "missing or wrong token: send `Authorization: Bearer <token>` (auth_token in agent.yaml, or the token the \
         agent generated next to its config on first start beyond loopback)"
    )]
    Unauthorized,
}

impl ApiError {
    pub fn bad(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::BadField { field: field.into(), message: message.into() }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadField { .. } => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnknownModel { .. } | ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Submit(SubmitError::QueueFull { .. }) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Submit(SubmitError::ShuttingDown) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Submit(SubmitError::DuplicateId(_)) => StatusCode::CONFLICT,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Pull(crate::pulls::PullRefused::Unsupported { .. }) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Pull(crate::pulls::PullRefused::Busy { .. }) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Pull(crate::pulls::PullRefused::ShuttingDown) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn body(&self) -> ErrorBody {
        let body = ErrorBody::new(self.to_string());
        match self {
            ApiError::BadField { field, message } => body.field(field.as_str()).detail(message),
            ApiError::UnknownModel { available, .. } => {
                ErrorBody { available: Some(available.clone()), ..body.field("model") }
            }
            ApiError::Submit(SubmitError::QueueFull { limit }) => body.detail(QueueLimit { queue_limit: *limit }),
            ApiError::PayloadTooLarge { limit_bytes } => body.detail(LimitDetail { limit_bytes: *limit_bytes }),
            ApiError::Pull(crate::pulls::PullRefused::Unsupported { kind }) => {
                body.field("engine").detail(PullEngine { engine: *kind })
            }
            ApiError::Pull(crate::pulls::PullRefused::Busy { running }) => {
                body.detail(PullsRunning { running: *running, max_pulls: crate::pulls::MAX_PULLS })
            }
            _ => body,
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::BadField { field: e.field, message: e.message }
    }
}

impl From<CancelError> for ApiError {
    fn from(e: CancelError) -> Self {
        match e {
            CancelError::NotFound(_) => ApiError::NotFound(e.to_string()),
            CancelError::AlreadyFinished { .. } => ApiError::Conflict(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        tracing::info!(status = status.as_u16(), error = %self, "request refused");
        let mut resp = (status, Json(self.body())).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
