//! WebSocket bounds both servers share: a cap on live subscribers (503 beyond it) and small
//! per-socket buffers, so memory per subscriber stays bounded whatever clients do.

use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::http::StatusCode;
use axum::response::Response;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::guard::error_response;

/// Default most WebSocket subscribers at once.
pub const DEFAULT_WS_MAX_SUBSCRIBERS: usize = 256;

/// Largest message or frame a client may send: clients only send control frames and short text.
const MAX_INBOUND_BYTES: usize = 64 * 1024;
/// Read buffer per socket (tungstenite's default, 128 KiB, is what made idle subscribers cost
/// ~133 KB each).
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Counts live subscribers; a subscriber holds its permit until its socket task ends.
#[derive(Debug, Clone)]
pub struct SubscriberCap {
    permits: Arc<Semaphore>,
    limit: usize,
}

impl SubscriberCap {
    pub fn new(limit: usize) -> Self {
        let limit = limit.max(1);
        SubscriberCap { permits: Arc::new(Semaphore::new(limit)), limit }
    }

    /// A place for one more subscriber, or the 503 that says the cap is reached.
    #[allow(clippy::result_large_err)]
    pub fn join(&self) -> Result<OwnedSemaphorePermit, Response> {
        self.permits.clone().try_acquire_owned().map_err(|_| {
            let error = format!(
                "too many WebSocket subscribers: the cap of {} is reached (ws_max_subscribers); retry later",
                self.limit
            );
            error_response(StatusCode::SERVICE_UNAVAILABLE, &error, None)
        })
    }

    /// Subscribers connected now.
    pub fn active(&self) -> usize {
        self.limit - self.permits.available_permits()
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// The upgrade with small buffers: frames are written at once (no 128 KiB write buffer) and
/// inbound messages are limited to 64 KiB.
pub fn bounded(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_message_size(MAX_INBOUND_BYTES)
        .max_frame_size(MAX_INBOUND_BYTES)
}
