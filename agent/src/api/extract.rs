//! Extractors whose rejections are JSON [`ApiError`]s (axum's own answer in plain text).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde_json::Value;

use super::error::ApiError;

/// Largest request body: big enough that an oversized prompt reaches validation and is refused
/// with a message naming `prompt`, small enough to bound memory.
/// A `transcribe` job carries its audio (at most 25 MB) as base64: 4/3 of that plus the spec.
pub const BODY_LIMIT_BYTES: usize = 36 * 1024 * 1024;

/// A JSON body of any shape (validation names fields itself). The `Content-Type:
/// application/json` requirement (415 otherwise) is checked before routing, by
/// `bench_server::guard`: a `text/plain` POST is what another site's page can send unasked.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // Refused on the declared length before any of the body is read.
        if bench_server::guard::declared_length(req.headers()).is_some_and(|n| n > BODY_LIMIT_BYTES as u64) {
            return Err(ApiError::PayloadTooLarge { limit_bytes: BODY_LIMIT_BYTES });
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { limit_bytes: BODY_LIMIT_BYTES }
            } else {
                ApiError::bad("body", r.body_text())
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad("body", "is empty; send a JSON object"));
        }
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| ApiError::bad("body", format!("malformed JSON: {e}")))
    }
}
