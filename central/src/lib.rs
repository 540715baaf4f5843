//! bench-central: races one prompt across every agent of the fleet, relays the race to the
//! browser, and keeps every run on disk.
//!
//! # Layout
//! - [`config`]: `machines.yaml` (typed, validated, errors name the key and line) and settings.
//! - [`agent_client`]: typed HTTP calls to one agent (`/health`, `/capabilities`, `/jobs…`).
//! - [`clock`]: NTP-style clock-offset estimate of each agent before a run (sans-I/O estimator).
//! - [`fleet`]: one task per machine: WebSocket subscription with backoff, health/capabilities.
//! - [`routing`]: maps `(machine_id, job_id)` to the run that owns the job.
//! - [`pulls`]: fleet model management: pulls of a model onto the machines that lack it.
//! - [`runs`]: run lifecycle: validation, preflight, synchronized dispatch, events, completion.
//! - [`store`]: `results/runs/<run_id>/{metadata.json, events.ndjson, summary.json}`, listing, export.
//! - [`hub`]: fan-out of events to browser WebSockets.
//! - [`original`]: racing original (Python) bench-race agents: their API read as ours, their jobs driven by central.
//! - [`api`]: REST + browser WebSocket; [`pages`]: HTML pages; [`auth`]: token, login page, sessions;
//!   [`prom`]: Prometheus `/metrics`; [`report`]: a run as one self-contained HTML file.
//! - [`state`]: the cloneable [`AppState`]; [`cli`]: the `bench-central` command line;
//!   [`gate`]: `bench-central compare`, the regression gate for CI.

pub mod agent_client;
pub mod api;
pub mod assets;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod fleet;
pub mod gate;
pub mod hub;
pub mod original;
pub mod pages;
pub mod prom;
pub mod pulls;
pub mod report;
pub mod routing;
pub mod runs;
pub mod state;
pub mod store;
pub mod telemetry;

pub use api::router;
pub use state::AppState;

use std::future::Future;

use tokio::net::TcpListener;

/// Serves the API and pages on `listener` until `shutdown` resolves. Shutdown cancels
/// `state.cancel`, which stops fleet tasks, run tasks and browser WebSockets, so the graceful
/// shutdown does not wait on long-lived connections. Runs still running end `interrupted`
/// (after a crash instead, the next start marks them so).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "bench-central listening on http://{addr}");
    let limits = state.access.config.limits();
    let cancel = state.cancel.clone();
    let runs = state.runs.clone();
    let stop = cancel.clone();
    let app = router(state);
    let served = bench_server::serve(listener, app, limits, async move {
        tokio::select! {
            _ = shutdown => {}
            _ = cancel.cancelled() => {}
        }
        cancel.cancel();
    })
    .await;
    stop.cancel();
    runs.wait_stopped().await;
    served
}
