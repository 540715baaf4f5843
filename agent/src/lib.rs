//! bench-agent: drives the machine's LLM engine, measures it, and streams NDJSON events.
//!
//! # Layout
//! - [`config`]: `agent.yaml` → [`AgentConfig`] (env and flag overrides, validation).
//! - [`api`]: axum routes (`/health`, `/capabilities`, `/jobs…`, `/ws`) and [`AppState`].
//! - [`jobs`]: the FIFO job queue (one job at a time) and the worker that runs jobs.
//! - [`bench`]: the benchmarks themselves (`llm_generate`, token coalescing).
//! - [`load`]: `llm_load` / `llm_capacity` (the pacer, the records, the capacity search).
//! - [`calibrate`]: the client ceiling (the measuring path against a zero-latency engine).
//! - [`hub`]: event fan-out with per-job replay logs (a window in memory).
//! - [`journal`]: every job's events on disk (`results_dir/jobs/`), read back past the window.
//! - [`engine`]: `trait Engine` and its Ollama, OpenAI-compatible and mock implementations.
//! - [`engine_status`]: the cached engine status `/health`, `/capabilities` and `POST /jobs` read.
//! - [`pulls`]: model pulls (`POST /api/models/pull`) beside the job queue.
//! - [`sweep`]: the LLMBench sweep (warm-up, calibration, ctx × parallel, CSVs, terminal table).
//! - [`tui`]: `bench-agent tui`, the interactive LLMBench terminal app over [`sweep`].
//! - [`hardware`]: fingerprint, runtime sampler, energy; [`prom`]: Prometheus `/metrics`.
//! - [`telemetry`], [`cli`]: tracing set-up, command line.
//! - [`workload`]: image generation (ComfyUI, OpenAI-style images), speech to text, the compute race.
//! - `testkit` (feature `testkit`, on only in tests): the real local engine launcher and a fake
//!   Ollama. The release binary contains none of it.

pub mod api;
pub mod bench;
pub mod calibrate;
pub mod cli;
pub mod config;
pub mod engine;
pub mod engine_status;
pub mod hardware;
pub mod hub;
pub mod jobs;
pub mod journal;
pub mod load;
pub mod prom;
pub mod pulls;
pub mod sweep;
pub mod telemetry;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod tui;
pub mod workload;

pub use api::state::AppState;
pub use config::AgentConfig;

use std::future::Future;

use tokio_util::sync::CancellationToken;

/// The start-up calibration: sets `state.ceiling` to the figures, or to why there are none.
async fn startup_calibration(state: AppState, stop: CancellationToken) {
    let plan = calibrate::Plan::quick();
    match calibrate::calibrate(&plan, state.flush_policy(), Some(&state.measuring), &stop).await {
        Ok(c) => {
            tracing::info!(
                tok_s = c.tok_s,
                events_per_s = c.events_per_s,
                ttft_floor_ms = c.ttft_floor_ms,
                requests = c.requests,
                duration_s = c.duration_s,
                "client ceiling measured (quick calibration)"
            );
            let _previous = state.ceiling.send_replace(Ok(c));
        }
        Err(calibrate::CalibrationError::Cancelled) => {}
        Err(e) => {
            tracing::warn!(error = %e, "start-up calibration failed: client_ceiling stays null");
            let _previous = state.ceiling.send_replace(Err(format!("the start-up calibration failed: {e}")));
        }
    }
}

/// Serves the agent on `listener` (a `TcpListener`, or a [`bench_server::tls::TlsListener`] for `https://`)
/// until `shutdown` completes.
///
/// Shutdown order matters for clients: new jobs are refused and queued ones cancelled, the
/// running job is cancelled and publishes `job_cancelled`, then WebSocket clients receive what
/// they are owed and a Close frame, and finally open HTTP connections are drained.
///
/// Connections are bounded by `max_connections` (503 beyond) and `header_read_timeout_s`.
pub async fn serve<L>(
    listener: L,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener<Addr = std::net::SocketAddr>,
{
    let stop_worker = CancellationToken::new();
    let worker = tokio::spawn(state.runner().run(stop_worker.clone()));
    // The quick calibration, in the background: the agent serves meanwhile.
    tokio::spawn(startup_calibration(state.clone(), stop_worker.clone()));
    tokio::spawn(state.engine_status.clone().run(
        state.jobs.clone(),
        state.engine_status_interval,
        stop_worker.clone(),
    ));
    if state.config.runtime_sampler.enabled {
        let (sampler, stop) = (state.sampler.clone(), stop_worker.clone());
        let hw = state.clone();
        tokio::spawn(async move {
            let machine = hw.hardware().await;
            // Opening RAPL and NVML reads sysfs / loads a library: off the async workers.
            let probe = tokio::task::spawn_blocking(move || hardware::sampler::SystemProbe::new(&machine)).await;
            match probe {
                Ok(probe) => sampler.run(probe, stop).await,
                Err(e) => tracing::error!(error = %e, "runtime sampler could not start"),
            }
        });
    }
    let app = api::router(state.clone());
    let state_limits = (state.config.max_connections, state.config.header_read_timeout_s);
    let graceful = async move {
        shutdown.await;
        tracing::info!("shutting down: cancelling jobs");
        state.jobs.close("the agent is shutting down");
        state.pulls.stop_all();
        stop_worker.cancel();
        if let Err(e) = worker.await {
            tracing::error!(error = %e, "job worker failed");
        }
        state.closing.cancel();
    };
    let limits = bench_server::Limits {
        max_connections: state_limits.0,
        header_read_timeout: std::time::Duration::from_secs_f64(state_limits.1),
    };
    bench_server::serve(listener, app, limits, graceful).await
}
