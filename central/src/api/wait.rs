//! `?wait=SECONDS` on `GET /api/runs/{id}`: hold the answer until the run ends, or the time is up.
//!
//! Waits on the browser hub's event stream for the run's `run_end` (published once its final
//! files are written), never on a polling loop; subscribing before checking whether the run is
//! still live means an end between the check and the wait cannot be missed.

use std::time::Duration;

use bench_shared::feed::FeedLine;
use tokio::sync::broadcast::error::RecvError;

use super::ApiError;
use crate::AppState;

/// The longest a client may ask to wait (long enough for a slow race, short enough for proxies).
pub const MAX_WAIT_S: f64 = 300.0;

/// Parses `wait`: seconds from 0 to [`MAX_WAIT_S`] (decimals allowed); absent means 0.
pub fn parse_wait(raw: Option<&str>) -> Result<Duration, ApiError> {
    let Some(raw) = raw else { return Ok(Duration::ZERO) };
    raw.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && (0.0..=MAX_WAIT_S).contains(s))
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            ApiError::bad("wait", format!("must be a number of seconds from 0 to {MAX_WAIT_S}, got {raw:?}"))
        })
}

/// True when `line` is the `run_end` event of `run_id`.
fn is_end_of(line: &FeedLine, run_id: &str) -> bool {
    &*line.kind == "run_end" && line.run_id.as_deref() == Some(run_id)
}

/// Waits up to `limit` for `run_id` to end. Returns true when its `run_end` was seen (its final
/// files are then written), false when it was not running or the time ran out.
pub async fn until_run_end(state: &AppState, run_id: &str, limit: Duration) -> bool {
    if limit.is_zero() {
        return false;
    }
    let mut rx = state.hub.subscribe();
    if !state.runs.is_running(run_id) {
        return false;
    }
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => return false,
            _ = state.cancel.cancelled() => return false,
            msg = rx.recv() => match msg {
                Ok(line) if is_end_of(&line, run_id) => return true,
                Ok(_) => {}
                // Missed events: the end may have been among them; the live table knows.
                Err(RecvError::Lagged(_)) if !state.runs.is_running(run_id) => return false,
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_accepts_seconds_in_range_and_names_the_range_otherwise() {
        assert_eq!(parse_wait(None).unwrap(), Duration::ZERO);
        assert_eq!(parse_wait(Some("2.5")).unwrap(), Duration::from_millis(2500));
        assert_eq!(parse_wait(Some("300")).unwrap(), Duration::from_secs(300));
        for bad in ["-1", "301", "abc", "NaN", "inf", ""] {
            let msg = format!("{:?}", parse_wait(Some(bad)).unwrap_err());
            assert!(msg.contains("wait") && msg.contains("from 0 to 300"), "{bad}: {msg}");
        }
    }

    #[test]
    fn only_this_runs_end_counts() {
        use bench_shared::feed::CentralEvent;
        use bench_shared::run::RunStatus;
        let end = |run_id: &str| {
            CentralEvent::RunEnd(Box::new(bench_shared::feed::RunEnd {
                run_id: run_id.into(),
                status: RunStatus::Complete,
                reason: None,
                ended_at_s: 1.0,
                summary: None,
            }))
            .line()
        };
        assert!(is_end_of(&end("r1"), "r1"));
        assert!(!is_end_of(&end("r2"), "r1"));
        let token = FeedLine { kind: "llm_token".into(), run_id: Some("r1".into()), text: "{}".into() };
        assert!(!is_end_of(&token, "r1"));
    }
}
