//! The job queue: FIFO, one job at a time per agent, so concurrent jobs never skew each other's
//! numbers.
//!
//! [`Jobs`] owns every job's record and is the only way events are published
//! ([`Jobs::publish`]): each event updates the record (status, per-repeat metrics, aggregate,
//! error) before it goes to the [`Hub`], so `GET /jobs/{id}` and the event stream never disagree.
//!
//! # Layout
//! - this file: records, queue, cancellation.
//! - [`runner`]: the worker that takes the next job and runs it.

pub mod runner;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bench_shared::event::{Event, JobCancelled, JobQueued};
use bench_shared::job::JobSpec;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;

pub use bench_shared::api::{JobStatus, JobView};

#[derive(Debug)]
struct Record {
    view: JobView,
    cancel: CancellationToken,
    /// Why the job was asked to stop (for its `job_cancelled` event).
    cancel_reason: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    records: HashMap<String, Record>,
    /// Job ids in submission order (for listing and eviction).
    order: VecDeque<String>,
    queue: VecDeque<String>,
    running: Option<String>,
}

impl Inner {
    fn position_of(&self, job_id: &str) -> Option<usize> {
        let ahead = self.queue.iter().position(|q| q == job_id)?;
        Some(ahead + usize::from(self.running.is_some()))
    }

    fn view(&self, job_id: &str) -> Option<JobView> {
        let rec = self.records.get(job_id)?;
        let mut v = rec.view.clone();
        v.position = self.position_of(job_id);
        Some(v)
    }

    /// Drops the oldest finished records beyond what the hub keeps logs for.
    fn evict(&mut self) {
        let finished = self.order.iter().filter(|id| self.records[*id].view.status.is_finished()).count();
        let mut excess = finished.saturating_sub(Hub::KEEP_FINISHED);
        let records = &mut self.records;
        self.order.retain(|id| {
            if excess > 0 && records[id].view.status.is_finished() {
                excess -= 1;
                records.remove(id);
                false
            } else {
                true
            }
        });
    }
}

/// A job the worker took from the queue.
#[derive(Debug, Clone)]
pub struct NextJob {
    pub job_id: String,
    pub spec: JobSpec,
    pub cancel: CancellationToken,
    /// Decided at submission when the engine was already unreachable (see [`Jobs::submit`]).
    pub fallback_reason: Option<String>,
}

/// The publishing handle of one job (what the job's code uses to emit events).
#[derive(Debug, Clone)]
pub struct JobEvents {
    jobs: Arc<Jobs>,
    job_id: String,
}

impl JobEvents {
    pub fn new(jobs: Arc<Jobs>, job_id: impl Into<String>) -> Self {
        JobEvents { jobs, job_id: job_id.into() }
    }

    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    pub fn emit(&self, event: Event) {
        self.jobs.publish(&self.job_id, event);
    }
}

/// Why `POST /jobs` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the job queue is full ({limit} jobs waiting); retry when a job has finished")]
    QueueFull { limit: usize },
    #[error("the agent is shutting down")]
    ShuttingDown,
    #[error("job id {0:?} is already in use")]
    DuplicateId(String),
}

/// Why `DELETE /jobs/{id}` did nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CancelError {
    #[error("no job {0}")]
    NotFound(String),
    #[error("job {job_id} already finished ({status:?})")]
    AlreadyFinished { job_id: String, status: JobStatus },
}

/// The agent's jobs.
#[derive(Debug)]
pub struct Jobs {
    inner: Mutex<Inner>,
    hub: Arc<Hub>,
    queue_limit: usize,
    wake: Notify,
    /// Set on shutdown: no new jobs are accepted.
    closed: CancellationToken,
}

impl Jobs {
    pub fn new(hub: Arc<Hub>, queue_limit: usize) -> Self {
        Jobs { inner: Mutex::default(), hub, queue_limit, wake: Notify::new(), closed: CancellationToken::new() }
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Queues a validated job and publishes `job_queued`. Returns `(job_id, position)`.
    /// `fallback_reason` is set when the agent already knows the job will run on the mock engine,
    /// so that even `job_queued` carries it.
    pub fn submit(&self, spec: JobSpec, fallback_reason: Option<String>) -> Result<(String, usize), SubmitError> {
        self.submit_as(spec, fallback_reason, None)
    }

    /// [`Jobs::submit`] under a caller's job id (the original bench-race's `POST /api/compute`
    /// names its job); the id must be new.
    pub fn submit_as(
        &self,
        spec: JobSpec,
        fallback_reason: Option<String>,
        id: Option<String>,
    ) -> Result<(String, usize), SubmitError> {
        if self.closed.is_cancelled() {
            return Err(SubmitError::ShuttingDown);
        }
        let job_id = id.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let mut inner = bench_shared::sync::lock(&self.inner);
        if inner.records.contains_key(&job_id) {
            return Err(SubmitError::DuplicateId(job_id));
        }
        if inner.queue.len() >= self.queue_limit {
            return Err(SubmitError::QueueFull { limit: self.queue_limit });
        }
        let position = inner.queue.len() + usize::from(inner.running.is_some());
        let queued = JobQueued { test_type: spec.test_type(), models: spec.models(), position };
        let view = JobView {
            job_id: job_id.clone(),
            status: JobStatus::Queued,
            spec,
            position: None,
            engine: None,
            fallback_reason,
            created_at_s: crate::engine::wall_now_s(),
            requests: Vec::new(),
            aggregate: None,
            error: None,
            last_seq: 0,
        };
        inner.records.insert(job_id.clone(), Record { view, cancel: CancellationToken::new(), cancel_reason: None });
        inner.order.push_back(job_id.clone());
        inner.queue.push_back(job_id.clone());
        // Published before the worker can see the job, so `job_queued` is always seq 1.
        self.publish_locked(&mut inner, &job_id, Event::JobQueued(queued));
        drop(inner);
        self.wake.notify_one();
        Ok((job_id, position))
    }

    /// Publishes an event of `job_id`, updating its record first.
    pub fn publish(&self, job_id: &str, event: Event) {
        let mut inner = bench_shared::sync::lock(&self.inner);
        self.publish_locked(&mut inner, job_id, event);
    }

    fn publish_locked(&self, inner: &mut Inner, job_id: &str, event: Event) {
        let Some(rec) = inner.records.get_mut(job_id) else {
            tracing::warn!(job_id, kind = event.type_name(), "event for an unknown job dropped");
            return;
        };
        let v = &mut rec.view;
        match &event {
            Event::JobStarted(s) => v.engine = Some(s.engine),
            Event::RequestDone(r) if !r.warmup => v.requests.push(r.metrics.clone()),
            Event::JobDone(d) => {
                v.status = JobStatus::Done;
                v.aggregate = d.llm().map(|l| l.aggregate.clone());
            }
            Event::SweepDone(_) | Event::LoadDone(_) => v.status = JobStatus::Done,
            Event::JobError(e) => {
                v.status = JobStatus::Error;
                v.error = Some(e.clone());
            }
            Event::JobCancelled(_) => v.status = JobStatus::Cancelled,
            _ => {}
        }
        let finished = v.status.is_finished();
        let fallback = v.fallback_reason.clone();
        let seq = self.hub.publish(job_id, event, fallback.as_deref()).seq;
        if let Some(rec) = inner.records.get_mut(job_id) {
            rec.view.last_seq = seq;
        }
        if finished {
            inner.evict();
        }
    }

    /// Marks a job as running on the mock engine from now on (every later event says why).
    pub fn set_fallback(&self, job_id: &str, reason: String) {
        let mut inner = bench_shared::sync::lock(&self.inner);
        if let Some(rec) = inner.records.get_mut(job_id) {
            rec.view.fallback_reason = Some(reason);
        }
    }

    /// Waits for the next queued job and marks it running; `None` once `shutdown` fires.
    pub async fn next(&self, shutdown: &CancellationToken) -> Option<NextJob> {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if shutdown.is_cancelled() {
                return None;
            }
            if let Some(job) = self.try_start_next() {
                return Some(job);
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = shutdown.cancelled() => return None,
            }
        }
    }

    fn try_start_next(&self) -> Option<NextJob> {
        let mut inner = bench_shared::sync::lock(&self.inner);
        let job_id = inner.queue.pop_front()?;
        inner.running = Some(job_id.clone());
        let rec = inner.records.get_mut(&job_id).expect("queued jobs have records");
        rec.view.status = JobStatus::Running;
        Some(NextJob {
            job_id,
            spec: rec.view.spec.clone(),
            cancel: rec.cancel.clone(),
            fallback_reason: rec.view.fallback_reason.clone(),
        })
    }

    /// The worker is done with the running job.
    pub fn finish_running(&self, job_id: &str) {
        let mut inner = bench_shared::sync::lock(&self.inner);
        if inner.running.as_deref() == Some(job_id) {
            inner.running = None;
        }
    }

    /// Cancels a queued job at once (publishing `job_cancelled`) or asks the running one to stop
    /// (the worker publishes `job_cancelled` once it has). Returns the status after the call.
    pub fn cancel(&self, job_id: &str, reason: &str) -> Result<JobStatus, CancelError> {
        let mut inner = bench_shared::sync::lock(&self.inner);
        let status = match inner.records.get(job_id) {
            None => return Err(CancelError::NotFound(job_id.to_owned())),
            Some(r) => r.view.status,
        };
        match status {
            JobStatus::Queued => {
                inner.queue.retain(|q| q != job_id);
                let event = Event::JobCancelled(JobCancelled { reason: reason.to_owned() });
                self.publish_locked(&mut inner, job_id, event);
                Ok(JobStatus::Cancelled)
            }
            JobStatus::Running => {
                let rec = inner.records.get_mut(job_id).expect("checked above");
                rec.cancel_reason.get_or_insert_with(|| reason.to_owned());
                rec.cancel.cancel();
                Ok(JobStatus::Running)
            }
            finished => Err(CancelError::AlreadyFinished { job_id: job_id.to_owned(), status: finished }),
        }
    }

    /// Shutdown: refuse new jobs, cancel every queued job and the running one.
    pub fn close(&self, reason: &str) {
        self.closed.cancel();
        let ids: Vec<String> = {
            let inner = bench_shared::sync::lock(&self.inner);
            inner.queue.iter().cloned().chain(inner.running.clone()).collect()
        };
        for id in ids {
            let _ = self.cancel(&id, reason);
        }
    }

    /// The `job_cancelled` event for a job that was asked to stop.
    pub fn cancelled_event(&self, job_id: &str) -> Event {
        let inner = bench_shared::sync::lock(&self.inner);
        let reason = inner.records.get(job_id).and_then(|r| r.cancel_reason.clone());
        Event::JobCancelled(JobCancelled { reason: reason.unwrap_or_else(|| "cancelled".into()) })
    }

    pub fn get(&self, job_id: &str) -> Option<JobView> {
        bench_shared::sync::lock(&self.inner).view(job_id)
    }

    /// Every known job, oldest first.
    pub fn list(&self) -> Vec<JobView> {
        let inner = bench_shared::sync::lock(&self.inner);
        inner.order.iter().filter_map(|id| inner.view(id)).collect()
    }

    /// `(busy, queue_len)` for `/health`.
    pub fn load(&self) -> (bool, usize) {
        let inner = bench_shared::sync::lock(&self.inner);
        (inner.running.is_some(), inner.queue.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> JobSpec {
        JobSpec::from_json(&json!({"model": "m", "prompt": "p"}), 0).unwrap()
    }

    #[tokio::test]
    async fn fifo_positions_limit_and_cancel() {
        let hub = Arc::new(Hub::new("m", 64));
        let jobs = Jobs::new(hub.clone(), 2);
        let (a, pa) = jobs.submit(spec(), None).unwrap();
        assert_eq!(pa, 0);
        let shutdown = CancellationToken::new();
        let next = jobs.next(&shutdown).await.unwrap();
        assert_eq!(next.job_id, a);
        let (b, pb) = jobs.submit(spec(), None).unwrap();
        let (c, pc) = jobs.submit(spec(), None).unwrap();
        assert_eq!((pb, pc), (1, 2));
        assert_eq!(jobs.submit(spec(), None).unwrap_err(), SubmitError::QueueFull { limit: 2 });
        assert_eq!(jobs.get(&c).unwrap().position, Some(2));
        assert_eq!(jobs.cancel(&b, "x"), Ok(JobStatus::Cancelled));
        assert_eq!(jobs.get(&c).unwrap().position, Some(1));
        assert_eq!(jobs.cancel(&a, "x"), Ok(JobStatus::Running));
        assert!(next.cancel.is_cancelled());
        jobs.publish(&a, Event::JobCancelled(JobCancelled { reason: "x".into() }));
        jobs.finish_running(&a);
        assert!(matches!(jobs.cancel(&a, "x"), Err(CancelError::AlreadyFinished { .. })));
        assert_eq!(jobs.get(&c).unwrap().position, Some(0));
        assert_eq!(jobs.next(&shutdown).await.unwrap().job_id, c);
        let b_events = hub.events(&b, 0).unwrap();
        assert_eq!(b_events.len(), 2);
        assert!(b_events[1].json.contains("job_cancelled"));
        shutdown.cancel();
        assert!(jobs.next(&shutdown).await.is_none());
    }

    #[tokio::test]
    async fn close_refuses_new_jobs_and_cancels_queued_ones() {
        let jobs = Jobs::new(Arc::new(Hub::new("m", 64)), 4);
        let (a, _) = jobs.submit(spec(), None).unwrap();
        jobs.close("shutting down");
        assert_eq!(jobs.get(&a).unwrap().status, JobStatus::Cancelled);
        assert_eq!(jobs.submit(spec(), None).unwrap_err(), SubmitError::ShuttingDown);
    }

    #[tokio::test]
    async fn only_the_last_finished_jobs_are_kept() {
        let hub = Arc::new(Hub::new("m", 16));
        let jobs = Jobs::new(hub.clone(), 4);
        let shutdown = CancellationToken::new();
        let mut ids = Vec::new();
        for _ in 0..Hub::KEEP_FINISHED + 3 {
            let (id, _) = jobs.submit(spec(), None).unwrap();
            jobs.next(&shutdown).await.unwrap();
            jobs.publish(&id, Event::JobCancelled(JobCancelled { reason: "x".into() }));
            jobs.finish_running(&id);
            ids.push(id);
        }
        let (queued, _) = jobs.submit(spec(), None).unwrap();
        let listed: Vec<String> = jobs.list().into_iter().map(|j| j.job_id).collect();
        assert_eq!(listed.len(), Hub::KEEP_FINISHED + 1);
        assert_eq!(listed[..Hub::KEEP_FINISHED], ids[3..]);
        assert_eq!(listed.last(), Some(&queued));
        assert!(jobs.get(&ids[2]).is_none() && hub.events(&ids[2], 0).is_none());
        assert!(jobs.get(&ids[3]).is_some() && hub.events(&ids[3], 0).is_some());
    }
}
