//! The LLMBench sweep: warm-up, prompt calibration, context × parallelism, CSVs, terminal table.
//!
//! For each (model × ctx × par) cell, one after another so cells never disturb each other:
//! 1. **Warm-up**: `warmup` (≥ 3) sequential streaming calls; the load estimate is the first
//!    TTFT − the mean of the others.
//! 2. **Calibration**: the prompt is sized so the engine-reported prompt tokens hit the cell's
//!    target (`ctx − out_tokens`, at least 16, see [`SweepSpec::prompt_target`]) within
//!    `calibration_tolerance`; warm-ups already measure it, extra calls happen only when they
//!    missed. Results are cached per engine + model + target ([`cache`]).
//! 3. **Recorded requests**: per run, `par` concurrent logical requests, each a streaming call
//!    (TTFT, stream wall time) then a non-streaming call (usage, non-stream wall time): two
//!    `requests.csv` rows per logical request.
//!
//! Every call starts with a fresh nonce ([`prompt`]): llama.cpp and Ollama cache prompts, and
//! a cached prefix would make prefill look free. Failed calls are retried after 1, 5, 15 and
//! 30 s ([`retry`]); after the last failure the call is an error row.
//!
//! Interface used by the job runner: [`run_job`]; the terminal front end is [`cli`].
//!
//! # Layout
//! - [`runner`]: one cell; [`progress`]: its live state as events.
//! - [`prompt`], [`calibrate`], [`cache`]: prompt sizing.
//! - [`retry`]: the backoff schedule.
//! - [`rows`], [`summary`], [`csv_out`]: the three CSVs.
//! - [`table`], [`cli`]: `bench-agent sweep` with its live table.

pub mod cache;
pub mod calibrate;
pub mod cli;
pub mod csv_out;
pub mod progress;
pub mod prompt;
pub mod retry;
pub mod rows;
pub mod runner;
pub mod summary;
pub mod table;

use std::path::PathBuf;
use std::sync::Arc;

use bench_shared::event::{ErrorKind, Event};
use bench_shared::sweep::{SweepDone, SweepSpec, SweepStarted};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use crate::engine::wall_now_s;
use crate::engine::{Engine, EngineError};
use csv_out::{CsvError, CsvFile, CsvPaths};
use progress::Emitter;
use runner::{Cell, Csvs, Runner};

/// Everything a sweep job needs.
#[derive(Debug)]
pub struct SweepJob {
    pub engine: Arc<dyn Engine>,
    pub spec: SweepSpec,
    /// Folder for requests.csv, summary.csv, load_times.csv.
    pub out_dir: PathBuf,
    /// JSON calibration cache (keyed by engine + base URL + model + target).
    pub calibration_cache: PathBuf,
    pub cancel: CancellationToken,
}

/// Settings a job does not carry: where the CSVs go and the retry schedule.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    pub paths: CsvPaths,
    pub backoff: retry::Backoff,
}

/// Why a sweep stopped early.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The engine is unreachable at the start, or does not serve a requested model.
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Csv(#[from] CsvError),
    /// The cancel token fired; the rows written so far stay in the CSVs.
    #[error("sweep cancelled")]
    Cancelled,
}

impl SweepError {
    /// The `job_error` kind (a cancelled sweep is reported as `job_cancelled` instead).
    pub fn kind(&self) -> ErrorKind {
        match self {
            SweepError::Engine(e) => e.kind(),
            SweepError::Csv(_) | SweepError::Cancelled => ErrorKind::Internal,
        }
    }

    pub fn is_cancelled(&self) -> bool {
        matches!(self, SweepError::Cancelled)
    }
}

/// Runs a sweep, sending `sweep_started`, `sweep_progress`, `sweep_row` events to `events` as it
/// goes, with the CSVs in `job.out_dir`. Returns the `sweep_done` payload (the runner publishes
/// it as the job's terminal event). Per-request failures become error rows after retries; an
/// error is returned only when the sweep cannot go on (engine unreachable at the start, unknown
/// model, a CSV that cannot be written) or was cancelled.
pub async fn run_job(job: SweepJob, events: mpsc::UnboundedSender<Event>) -> Result<SweepDone, SweepError> {
    let options = SweepOptions { paths: CsvPaths::in_dir(&job.out_dir), backoff: retry::Backoff::default() };
    run_sweep(job, options, events).await
}

/// [`run_job`] with explicit CSV paths and retry schedule (terminal mode, tests).
pub async fn run_sweep(
    job: SweepJob,
    options: SweepOptions,
    events: mpsc::UnboundedSender<Event>,
) -> Result<SweepDone, SweepError> {
    check_models(job.engine.as_ref(), &job.spec.models).await?;
    let paths = &options.paths;
    let mut csvs = Csvs {
        requests: CsvFile::open_async(&paths.requests).await?,
        summary: CsvFile::open_async(&paths.summary).await?,
        load_times: CsvFile::open_async(&paths.load_times).await?,
    };
    let emitter = Emitter::new(events);
    let ctx_points = job.spec.ctx_points();
    let mut cells: Vec<(String, u32, u32)> = Vec::new();
    for model in &job.spec.models {
        for ctx in &ctx_points {
            cells.extend(job.spec.parallel.iter().map(|par| (model.clone(), *ctx, *par)));
        }
    }
    emitter.emit(Event::SweepStarted(SweepStarted {
        models: job.spec.models.clone(),
        ctx_points: ctx_points.clone(),
        parallel: job.spec.parallel.clone(),
        cells_total: cells.len(),
    }));
    let runner = Runner {
        engine: job.engine,
        spec: job.spec,
        backoff: options.backoff,
        cancel: job.cancel,
        emitter,
        cache: cache::CalibrationCache::new(job.calibration_cache),
        nonces: prompt::NonceSource::default(),
    };
    let mut summary_rows = Vec::new();
    let mut load_time_rows = Vec::new();
    let mut cell_times_s = 0.0;
    let requests: Vec<u32> =
        cells.iter().map(|(_, _, par)| runner.spec.warmup + runner.spec.runs.saturating_mul(*par)).collect();
    for (index, (model, ctx, par)) in cells.iter().enumerate() {
        if runner.cancel.is_cancelled() {
            return Err(SweepError::Cancelled);
        }
        let eta = progress::EtaBasis::for_cell(&requests, index, cell_times_s);
        let cell = Cell { model: model.clone(), ctx: *ctx, par: *par, index, cells_total: cells.len(), eta };
        let cell_started = std::time::Instant::now();
        let (summary, load) = runner.run_cell(&mut csvs, &cell).await?;
        cell_times_s += cell_started.elapsed().as_secs_f64();
        summary_rows.push(json_map(&summary));
        load_time_rows.push(json_map(&load));
    }
    let path_string = |p: &PathBuf| Some(p.display().to_string());
    Ok(SweepDone {
        summary_rows,
        load_time_rows,
        requests_csv: path_string(&paths.requests),
        summary_csv: path_string(&paths.summary),
        load_times_csv: path_string(&paths.load_times),
    })
}

/// Fails fast when the engine is unreachable or does not list a requested model (some engines,
/// llama.cpp among them, answer any model name, so the list is the only reliable check).
async fn check_models(engine: &dyn Engine, models: &[String]) -> Result<(), EngineError> {
    let listed = engine.list_models().await?;
    let available: Vec<String> = listed.into_iter().map(|m| m.name).collect();
    match models.iter().find(|m| !available.contains(m)) {
        Some(missing) => Err(EngineError::ModelNotFound { model: missing.clone(), available }),
        None => Ok(()),
    }
}

/// A row as an event payload: a JSON object keyed by the CSV header.
pub(crate) fn json_map<T: Serialize>(row: &T) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(row) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => unreachable!("a row struct serialises to a JSON object"),
    }
}

#[cfg(test)]
mod tests;
