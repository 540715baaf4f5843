//! `POST /api/pull` on Ollama: a stream of NDJSON status lines, `{"status":"pulling manifest"}`,
//! then per layer `{"status":"pulling <12 hex>","digest":"sha256:…","total":N,"completed":M}`,
//! then `verifying sha256 digest`, `writing manifest` and `{"status":"success"}`. A failure after
//! the stream started is an `{"error":"…"}` line with HTTP 200, so every line is checked; a
//! stream that ends without `success` (a cut connection) is an error too.

use std::time::Duration;

use super::http::{self, Bounds, TimedLines};
use super::ollama::OllamaEngine;
use super::ollama_wire::{PullBody, PullWireLine};
use super::{EngineError, PullLine, PullSink, TimeoutBound};

/// Longest silence between two lines of a pull: Ollama reports download progress many times a
/// second, but verifying the digest of a large blob takes minutes without a line.
pub const PULL_IDLE: Duration = Duration::from_secs(600);
/// Longest whole pull (a large model over a slow link).
pub const PULL_TOTAL: Duration = Duration::from_secs(24 * 3600);

impl OllamaEngine {
    pub(super) async fn pull_model(&self, model: &str, progress: &PullSink) -> Result<(), EngineError> {
        let url = self.url_of("/api/pull");
        let mut timeouts = self.timeouts();
        timeouts.first_token = timeouts.first_token.max(PULL_IDLE);
        timeouts.idle = PULL_IDLE;
        let bounds = Bounds { total: PULL_TOTAL, total_bound: TimeoutBound::Pull, timeouts };
        let request = self.http_client().post(&url).json(&PullBody { model, stream: true });
        let (response, sent_at) = http::send(request, &url, bounds).await.map_err(pull_bounds)?;
        if !response.status().is_success() {
            return Err(http::http_error(response, &url, bounds).await);
        }
        let mut lines = TimedLines::new(response.into(), &url, bounds, sent_at);
        while let Some((_, line)) = lines.next_line().await.map_err(pull_bounds)? {
            let wire: PullWireLine = serde_json::from_str(&line)
                .map_err(|e| EngineError::Protocol(format!("{url}: a pull line is not JSON ({e}): {}", clip(&line))))?;
            if let Some(error) = wire.error {
                return Err(EngineError::Stream(format!("pulling {model}: {error}")));
            }
            let status = wire.status.unwrap_or_default();
            let success = status == "success";
            // The receiver may be gone (the pull's task ended): the pull itself goes on.
            let _ =
                progress.send(PullLine { status, digest: wire.digest, total: wire.total, completed: wire.completed });
            if success {
                return Ok(());
            }
        }
        Err(EngineError::Protocol(format!(
            "{url}: the pull of {model} ended before Ollama said \"success\" (the connection was closed mid-pull)"
        )))
    }
}

/// Names a pull's own bounds rather than the generation ones in a timeout.
fn pull_bounds(e: EngineError) -> EngineError {
    match e {
        EngineError::Timeout { bound: TimeoutBound::Idle | TimeoutBound::FirstToken, lines, .. } => {
            EngineError::Timeout { bound: TimeoutBound::PullIdle, limit: PULL_IDLE, lines }
        }
        other => other,
    }
}

fn clip(line: &str) -> String {
    line.chars().take(200).collect()
}
