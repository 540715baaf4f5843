//! Model pulls (`POST /api/models/pull`): each pull runs in its own task beside the job queue
//! (a pull takes minutes to hours; the queue keeps measuring meanwhile) and publishes its
//! progress through the hub like a job: `model_pull_progress` (at most every
//! [`PROGRESS_EVERY`], and at every change of the engine's status text), then
//! `model_pull_done`, or `job_error` with the engine's reason, or `job_cancelled` when the agent
//! shuts down. A second request for a model being pulled joins that pull; at most
//! [`MAX_PULLS`] run at once. After a pull the engine status is refreshed, so `/capabilities`
//! lists the model at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bench_shared::api::{PullAccepted, RunningPull};
use bench_shared::event::{Event, JobCancelled, JobError, ModelPullDone, ModelPullProgress};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::api::state::AppState;
use crate::engine::PullLine;

/// Pulls running at once; more are refused (429) until one ends.
pub const MAX_PULLS: usize = 2;
/// Least time between two progress events of a pull (the engine reports many times a second).
pub const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// The status of the first progress event, before the engine said anything.
pub const STARTING: &str = "starting";

/// Why a pull was not started.
#[derive(Debug, thiserror::Error)]
pub enum PullRefused {
    #[error(
        "engine kind {kind} cannot pull models: its models are whatever the server was started with; pull them with the engine's own tools"
    )]
    Unsupported { kind: bench_shared::engine::EngineKind },
    #[error("{running} pulls are running (the limit): retry once one has ended")]
    Busy { running: usize },
    #[error("the agent is shutting down")]
    ShuttingDown,
}

/// The pulls running now (model → job id) and the stop signal of all of them.
#[derive(Debug, Default)]
pub struct Pulls {
    running: Mutex<HashMap<String, String>>,
    stop: CancellationToken,
}

impl Pulls {
    /// Starts pulling `model` (validated), or joins the pull of it that is running.
    pub fn start(&self, state: &AppState, model: &str) -> Result<PullAccepted, PullRefused> {
        if !state.engine.can_pull() {
            return Err(PullRefused::Unsupported { kind: state.engine.kind() });
        }
        if self.stop.is_cancelled() {
            return Err(PullRefused::ShuttingDown);
        }
        let mut running = bench_shared::sync::lock(&self.running);
        if let Some(job_id) = running.get(model) {
            return Ok(PullAccepted { job_id: job_id.clone(), model: model.to_owned(), already_running: true });
        }
        if running.len() >= MAX_PULLS {
            return Err(PullRefused::Busy { running: running.len() });
        }
        let job_id = format!("pull-{}", uuid::Uuid::new_v4().simple());
        running.insert(model.to_owned(), job_id.clone());
        drop(running);
        // Published before answering, so `/ws?job_id=` finds the pull at once (seq 1).
        let first = ModelPullProgress {
            model: model.to_owned(),
            status: STARTING.into(),
            completed_bytes: None,
            total_bytes: None,
        };
        state.hub.publish(&job_id, Event::ModelPullProgress(first), None);
        tracing::info!(model, job_id, "model pull started");
        tokio::spawn(run(state.clone(), model.to_owned(), job_id.clone(), self.stop.child_token()));
        Ok(PullAccepted { job_id, model: model.to_owned(), already_running: false })
    }

    /// The pulls running now.
    pub fn list(&self) -> Vec<RunningPull> {
        let running = bench_shared::sync::lock(&self.running);
        let mut list: Vec<RunningPull> = running
            .iter()
            .map(|(model, job_id)| RunningPull { model: model.clone(), job_id: job_id.clone() })
            .collect();
        list.sort_by(|a, b| a.model.cmp(&b.model));
        list
    }

    /// Stops every pull (agent shutdown): each ends with `job_cancelled`.
    pub fn stop_all(&self) {
        self.stop.cancel();
    }

    fn finished(&self, model: &str) {
        bench_shared::sync::lock(&self.running).remove(model);
    }
}

/// Byte counts summed over the layers announced so far.
#[derive(Debug, Default)]
pub struct Tally {
    layers: BTreeMap<String, (Option<u64>, Option<u64>)>,
}

impl Tally {
    pub fn add(&mut self, line: &PullLine) {
        if let Some(d) = &line.digest {
            let entry = self.layers.entry(d.clone()).or_default();
            if line.total.is_some() {
                entry.0 = line.total;
            }
            if line.completed.is_some() {
                entry.1 = line.completed;
            }
        }
    }

    /// `(completed, total)`; `None` until a layer with a size was announced.
    pub fn bytes(&self) -> (Option<u64>, Option<u64>) {
        let total: Option<u64> = self.layers.values().filter_map(|(t, _)| *t).reduce(|a, b| a + b);
        let completed = total.map(|_| self.layers.values().map(|(_, c)| c.unwrap_or(0)).sum());
        (completed, total)
    }
}

async fn run(state: AppState, model: String, job_id: String, stop: CancellationToken) {
    let started = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel::<PullLine>();
    let engine = state.engine.clone();
    let pulling = async {
        let result = engine.pull(&model, &tx).await;
        drop(tx);
        result
    };
    let mut pulling = std::pin::pin!(pulling);
    let mut tally = Tally::default();
    // The last progress published (when, the engine's status) and whether a later line is unpublished.
    let mut last: Option<(Instant, String)> = None;
    let mut pending: Option<String> = None;
    let publish = |event: Event| state.hub.publish(&job_id, event, None);
    let progress_event = |status: String, tally: &Tally| {
        let (completed_bytes, total_bytes) = tally.bytes();
        Event::ModelPullProgress(ModelPullProgress { model: model.clone(), status, completed_bytes, total_bytes })
    };
    let outcome = loop {
        tokio::select! {
            result = &mut pulling => {
                // Lines sent before the end; then the latest state, if it was held back.
                while let Ok(line) = rx.try_recv() {
                    tally.add(&line);
                    pending = Some(line.status);
                }
                if let Some(status) = pending.take() {
                    publish(progress_event(status, &tally));
                }
                break Some(result);
            }
            Some(line) = rx.recv() => {
                tally.add(&line);
                let due = match &last {
                    None => true,
                    Some((at, status)) => *status != line.status || at.elapsed() >= PROGRESS_EVERY,
                };
                if due {
                    last = Some((Instant::now(), line.status.clone()));
                    pending = None;
                    publish(progress_event(line.status, &tally));
                } else {
                    pending = Some(line.status);
                }
            }
            () = stop.cancelled() => break None,
        }
    };
    match outcome {
        Some(Ok(())) => {
            let (_, total_bytes) = tally.bytes();
            let duration_s = started.elapsed().as_secs_f64();
            tracing::info!(model, job_id, duration_s, "model pull done");
            // The engine lists the model now: refresh before saying so, so /capabilities agrees.
            state.engine_status.refresh(bench_shared::timeouts::AGENT_ENGINE_PROBE).await;
            publish(Event::ModelPullDone(ModelPullDone { model: model.clone(), total_bytes, duration_s }));
        }
        Some(Err(e)) => {
            tracing::warn!(model, job_id, error = %e, "model pull failed");
            publish(Event::JobError(JobError { kind: e.kind(), message: e.to_string(), repeat_index: None }));
        }
        None => {
            let reason = "the agent is shutting down: the pull was stopped".to_owned();
            publish(Event::JobCancelled(JobCancelled { reason }));
        }
    }
    state.pulls.finished(&model);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(digest: Option<&str>, total: Option<u64>, completed: Option<u64>) -> PullLine {
        PullLine { status: "x".into(), digest: digest.map(str::to_owned), total, completed }
    }

    #[test]
    fn bytes_add_up_the_layers_announced() {
        let mut t = Tally::default();
        t.add(&line(None, None, None));
        assert_eq!(t.bytes(), (None, None), "no layer yet: unknown, not zero");
        t.add(&line(Some("sha256:a"), Some(100), None));
        assert_eq!(t.bytes(), (Some(0), Some(100)));
        t.add(&line(Some("sha256:a"), Some(100), Some(40)));
        t.add(&line(Some("sha256:b"), Some(10), Some(10)));
        assert_eq!(t.bytes(), (Some(50), Some(110)));
        t.add(&line(Some("sha256:a"), None, Some(100)));
        assert_eq!(t.bytes(), (Some(110), Some(110)));
    }
}
