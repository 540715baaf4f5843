//! The benchmarks an agent runs.
//!
//! # Layout
//! - [`generate`]: `llm_generate` (one prompt × repeat, after optional warm-ups and cold unload).
//! - [`coalesce`]: buffering streamed text into `llm_token` events without distorting timing.
//!
//! The sweep lives in [`crate::sweep`].

pub mod coalesce;
pub mod generate;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Waits until the wall-clock instant `start_at_ms` (epoch ms); returns `false` if cancelled first.
///
/// The wall-clock distance is converted once into a monotonic deadline, so a clock step during
/// the wait cannot move the start. Tokio timers never fire early, so the first request is never
/// sent before `start_at_ms`.
pub async fn wait_until_epoch_ms(start_at_ms: u64, cancel: &CancellationToken) -> bool {
    let delta_s = start_at_ms as f64 / 1000.0 - crate::engine::wall_now_s();
    if delta_s > 0.0 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(delta_s);
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {}
            _ = cancel.cancelled() => return false,
        }
    }
    !cancel.is_cancelled()
}
