//! The LLMBench sweep: warm-up, prompt calibration, context × parallelism, CSVs, terminal table.
//!
//! Interface used by the job runner (`crate::jobs`): [`run_job`].

use std::path::PathBuf;
use std::sync::Arc;

use bench_shared::event::Event;
use bench_shared::sweep::{SweepDone, SweepSpec};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, EngineError};

/// Everything a sweep job needs.
#[derive(Debug)]
pub struct SweepJob {
    pub engine: Arc<dyn Engine>,
    pub spec: SweepSpec,
    /// Folder for requests.csv, summary.csv, load_times.csv.
    pub out_dir: PathBuf,
    /// JSON calibration cache (keyed by engine + model + target).
    pub calibration_cache: PathBuf,
    pub cancel: CancellationToken,
}

/// Runs a sweep, sending `sweep_started`, `sweep_progress`, `sweep_row` events to `events` as it
/// goes. Returns the `sweep_done` payload (the runner publishes it as the job's terminal event).
/// Per-request failures become error rows after retries; an error is returned only when the
/// sweep cannot go on (engine unreachable, unknown model).
pub async fn run_job(job: SweepJob, events: mpsc::UnboundedSender<Event>) -> Result<SweepDone, EngineError> {
    let _ = (job, events);
    Err(EngineError::Protocol("llm_sweep is not implemented yet".into()))
}
