//! Racing original (Python) bench-race agents beside this project's.
//!
//! People replace a fleet one machine at a time, so central drives an original agent itself:
//! it reads its `/health` and `/capabilities` ([`wire`]), waits for the run's common start on its
//! own clock (the original has no `/time` and starts a job when it gets it), posts one original job
//! per repeat, and turns what the agent broadcasts into this project's events ([`run`]), numbered
//! and kept, so a run, its files and its history treat the machine like any other. A machine is
//! original when machines.yaml says `protocol: original`, or when its `/health` answers
//! `{ok, machine_id, label}` without this project's fields.
//!
//! What cannot be had from an original agent is said, not faked: its figures come from its own
//! client and count words (the verdict's `measurement_mismatch` warning), its start is central's
//! post (no clock offset), and events lost while its socket was down cannot be fetched again (it
//! keeps no job log): the job then ends in `job_error`.

pub mod run;
pub mod wire;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bench_shared::api::{JobAccepted, JobStatus, JobView};
use bench_shared::engine::EngineKind;
use bench_shared::event::{ErrorKind, RawEnvelope, Received};
use bench_shared::job::GenerateSpec;
use bench_shared::time::{now_ms, now_s};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use self::run::OriginalRun;
use self::wire::{OriginalDone, OriginalJob, OriginalToken};
use crate::agent_client::{AgentClient, AgentError};

/// Longest an original agent may take for one request before the job ends in `timeout`.
pub const REQUEST_LIMIT: Duration = Duration::from_secs(600);
/// Jobs kept (the oldest finished ones are dropped beyond it).
const KEPT_JOBS: usize = 64;
/// Broadcast events of original jobs central does not know yet (its answer to `POST /jobs` can
/// arrive after the first tokens); older ones are dropped.
const ORPHANS: usize = 4096;

/// One job and what its driver waits on.
struct Job {
    run: Mutex<OriginalRun>,
    /// Signalled when the request in flight finished (or the job ended).
    answered: Notify,
    cancel: CancellationToken,
}

#[derive(Default)]
struct Jobs {
    by_id: HashMap<String, Arc<Job>>,
    /// Job ids, oldest first.
    order: VecDeque<String>,
    /// The original agent's job id → ours.
    by_original: HashMap<String, String>,
    orphans: VecDeque<RawEnvelope>,
}

/// Central's side of one original agent: its jobs and their events.
pub struct OriginalAgent {
    machine_id: String,
    jobs: Mutex<Jobs>,
    /// The engine its `/capabilities` last named.
    engine: Mutex<EngineKind>,
    out: mpsc::UnboundedSender<Received>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Received>>>,
}

impl std::fmt::Debug for OriginalAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginalAgent").field("machine_id", &self.machine_id).finish_non_exhaustive()
    }
}

impl OriginalAgent {
    pub fn new(machine_id: &str) -> Self {
        let (out, rx) = mpsc::unbounded_channel();
        OriginalAgent {
            machine_id: machine_id.to_owned(),
            jobs: Mutex::default(),
            engine: Mutex::new(EngineKind::Ollama),
            out,
            rx: Mutex::new(Some(rx)),
        }
    }

    /// The translated events, for the fleet to route to runs (taken once).
    pub fn take_events(&self) -> Option<mpsc::UnboundedReceiver<Received>> {
        bench_shared::sync::lock(&self.rx).take()
    }

    pub fn set_engine(&self, kind: EngineKind) {
        *bench_shared::sync::lock(&self.engine) = kind;
    }

    fn send(&self, event: Option<Received>) {
        if let Some(e) = event {
            // The fleet's forwarder lives as long as central; a closed channel means shutdown.
            let _ = self.out.send(e);
        }
    }

    fn job(&self, job_id: &str) -> Result<Arc<Job>, AgentError> {
        bench_shared::sync::lock(&self.jobs)
            .by_id
            .get(job_id)
            .cloned()
            .ok_or_else(|| AgentError::Status { status: 404, message: format!("no job {job_id}") })
    }

    /// Starts driving a job: answers at once, posts the repeats from `spec.start_at` (central's clock).
    pub fn start(self: &Arc<Self>, client: AgentClient, spec: GenerateSpec) -> JobAccepted {
        let job_id = format!("orig-{}", uuid::Uuid::new_v4().simple());
        let engine = *bench_shared::sync::lock(&self.engine);
        let run = OriginalRun::new(job_id.clone(), spec, self.machine_id.clone(), engine, now_s());
        let job = Arc::new(Job { run: Mutex::new(run), answered: Notify::new(), cancel: CancellationToken::new() });
        {
            let mut jobs = bench_shared::sync::lock(&self.jobs);
            jobs.by_id.insert(job_id.clone(), job.clone());
            jobs.order.push_back(job_id.clone());
            while jobs.order.len() > KEPT_JOBS {
                let Some(old) = jobs.order.pop_front() else { break };
                jobs.by_id.remove(&old);
                jobs.by_original.retain(|_, ours| *ours != old);
            }
        }
        tokio::spawn(self.clone().drive(client, job));
        JobAccepted { job_id, position: 0, status: JobStatus::Queued }
    }

    /// Posts each repeat in turn and waits for its answer.
    async fn drive(self: Arc<Self>, client: AgentClient, job: Arc<Job>) {
        let (start_at, plan, spec) = {
            let run = bench_shared::sync::lock(&job.run);
            (run.spec.start_at, run.plan(), run.spec.clone())
        };
        if let Some(at) = start_at {
            let wait = Duration::from_millis(at.saturating_sub(now_ms()));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = job.cancel.cancelled() => return,
            }
        }
        let started =
            bench_shared::sync::lock(&job.run).started(start_at, wire::engine_label(client.base_url()), now_s());
        self.send(Some(started));
        for (index, warmup) in plan {
            let prompt = spec.request_prompt(index, warmup);
            let body = OriginalJob {
                test_type: "llm_generate",
                model: &spec.model,
                prompt: &prompt,
                max_tokens: spec.max_tokens,
                temperature: spec.temperature,
                num_ctx: spec.num_ctx,
                repeat: 1,
                stream: true,
            };
            let accepted = tokio::select! {
                r = client.post_original_job(&body) => r,
                _ = job.cancel.cancelled() => return,
            };
            let original_job_id = match accepted {
                Ok(a) => a.job_id,
                Err(e) => {
                    let failed = bench_shared::sync::lock(&job.run).fail(
                        ErrorKind::EngineError,
                        format!("the original agent refused POST /jobs: {e}"),
                        now_s(),
                    );
                    return self.send(failed);
                }
            };
            self.request_sent(&job, original_job_id, index, warmup);
            tokio::select! {
                _ = job.answered.notified() => {}
                _ = job.cancel.cancelled() => return,
                _ = tokio::time::sleep(REQUEST_LIMIT) => {
                    let failed = bench_shared::sync::lock(&job.run).fail(
                        ErrorKind::Timeout,
                        format!("the original agent sent no job_done within {} s", REQUEST_LIMIT.as_secs()),
                        now_s(),
                    );
                    return self.send(failed);
                }
            }
            if bench_shared::sync::lock(&job.run).status.is_finished() {
                return;
            }
        }
        let done = bench_shared::sync::lock(&job.run).finish(now_s());
        self.send(Some(done));
    }

    /// Registers the original job id of a request and replays what it broadcast before central knew it.
    fn request_sent(&self, job: &Arc<Job>, original_job_id: String, index: u32, warmup: bool) {
        let ours = {
            let mut run = bench_shared::sync::lock(&job.run);
            run.request_sent(original_job_id.clone(), index, warmup);
            run.job_id.clone()
        };
        let early: Vec<RawEnvelope> = {
            let mut jobs = bench_shared::sync::lock(&self.jobs);
            jobs.by_original.insert(original_job_id.clone(), ours);
            let (mine, rest): (Vec<_>, Vec<_>) = jobs.orphans.drain(..).partition(|e| e.job_id == original_job_id);
            jobs.orphans = rest.into();
            mine
        };
        for env in early {
            self.on_event(env);
        }
    }

    /// One event the original agent broadcast on `/ws`.
    pub fn on_event(&self, env: RawEnvelope) {
        let job = {
            let mut jobs = bench_shared::sync::lock(&self.jobs);
            match jobs.by_original.get(&env.job_id).and_then(|id| jobs.by_id.get(id)).cloned() {
                Some(job) => job,
                None => {
                    if matches!(env.kind.as_str(), "llm_token" | "job_done") {
                        jobs.orphans.push_back(env);
                        while jobs.orphans.len() > ORPHANS {
                            jobs.orphans.pop_front();
                        }
                    }
                    return;
                }
            }
        };
        let mut run = bench_shared::sync::lock(&job.run);
        if run.in_flight() != Some(env.job_id.as_str()) {
            return;
        }
        match env.kind.as_str() {
            "llm_token" => match serde_json::from_value::<OriginalToken>(env.payload) {
                Ok(t) => self.send(run.token(t.text, now_s())),
                Err(e) => {
                    tracing::warn!(machine_id = %self.machine_id, "unreadable llm_token from an original agent: {e}")
                }
            },
            "job_done" => {
                let event = match serde_json::from_value::<OriginalDone>(env.payload) {
                    Ok(d) => run.request_done(d, now_s()),
                    Err(e) => run.fail(
                        ErrorKind::Protocol,
                        format!("unreadable job_done from the original agent: {e}"),
                        now_s(),
                    ),
                };
                self.send(event);
                job.answered.notify_one();
            }
            _ => {}
        }
    }

    /// Its event stream dropped: jobs in progress end in `job_error` (it keeps no event log, so
    /// what it broadcast meanwhile cannot be fetched again).
    pub fn connection_lost(&self, why: &str) {
        let jobs: Vec<Arc<Job>> = bench_shared::sync::lock(&self.jobs).by_id.values().cloned().collect();
        for job in jobs {
            let failed = {
                let mut run = bench_shared::sync::lock(&job.run);
                if run.status != JobStatus::Running {
                    continue;
                }
                run.fail(
                    ErrorKind::EngineUnreachable,
                    format!("the original agent's event stream dropped mid-job ({why}); it keeps no event log to recover from"),
                    now_s(),
                )
            };
            job.cancel.cancel();
            self.send(failed);
        }
    }

    /// `GET /jobs/{id}`, as this project's agent would answer it.
    pub fn view(&self, job_id: &str) -> Result<JobView, AgentError> {
        Ok(bench_shared::sync::lock(&self.job(job_id)?.run).view())
    }

    /// `GET /jobs/{id}/events?after_seq=`.
    pub fn events(&self, job_id: &str, after_seq: u64) -> Result<Vec<Received>, AgentError> {
        Ok(bench_shared::sync::lock(&self.job(job_id)?.run).events_after(after_seq))
    }

    /// `DELETE /jobs/{id}`: no further repeat is posted; the one running finishes on the agent.
    pub fn cancel(&self, job_id: &str) -> Result<(), AgentError> {
        let job = self.job(job_id)?;
        job.cancel.cancel();
        let cancelled = bench_shared::sync::lock(&job.run).cancel(now_s());
        self.send(cancelled);
        Ok(())
    }
}
