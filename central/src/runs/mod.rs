//! Run lifecycle: validate the request, preflight the fleet, measure each able agent's clock
//! offset ([`crate::clock`]), persist the run, post the job to every chosen agent at once with a
//! common `start_at` (on each agent's own clock), and hand the run to its task ([`task`], which
//! executes the decisions of the sans-I/O [`state::RunState`]; files go through [`writer`]).
//!
//! Decision: when preflight leaves no machine, the run is still persisted (status `failed`, every
//! machine `skipped` with its reason) so the history shows what was tried, and the request is
//! answered `409` with those reasons and the `run_id`.

pub mod finish;
pub mod plan;
pub mod request;
pub mod resume;
pub mod state;
pub mod summary;
pub mod task;
pub mod writer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bench_shared::feed::CentralEvent;
use bench_shared::ids::{JobId, MachineId};
use bench_shared::job::{FieldError, JobSpec};
use bench_shared::run::{MachineRunStatus, MachineView, RunMetadata, RunStatus};
use bench_shared::timeouts;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::state::RunState;
use self::task::{LiveRun, RunTask, SharedRun};
use self::writer::RunWriter;
use crate::config::Settings;
use crate::fleet::{Fleet, Machine};
use crate::hub::Hub;
use crate::routing::{JobRouter, RunMsg};
use crate::store::{Store, StoreError, new_run_id, now_ms, now_s, rfc3339};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Invalid(#[from] FieldError),
    #[error("no machine can run this job: {reason}")]
    NoMachines { run_id: String, reason: String, machines: Vec<MachineOutcome> },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One machine in the answer to `POST /api/runs`.
#[derive(Debug, Clone, Serialize)]
pub struct MachineOutcome {
    pub machine_id: String,
    pub status: MachineRunStatus,
    pub reason: Option<String>,
    pub job_id: Option<String>,
}

/// The answer to `POST /api/runs`.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedRun {
    pub run_id: String,
    /// The common start instant, epoch ms.
    pub start_at: u64,
    pub machines: Vec<MachineOutcome>,
}

/// Owns the runs in progress.
#[derive(Debug)]
pub struct RunManager {
    store: Store,
    fleet: Arc<Fleet>,
    router: Arc<JobRouter>,
    hub: Hub,
    settings: Settings,
    cancel: CancellationToken,
    live: Arc<Mutex<HashMap<String, SharedRun>>>,
    /// Run tasks, so shutdown can wait until each has written its final files.
    tasks: TaskTracker,
}

impl RunManager {
    pub fn new(
        store: Store,
        fleet: Arc<Fleet>,
        router: Arc<JobRouter>,
        hub: Hub,
        settings: Settings,
        cancel: CancellationToken,
    ) -> Self {
        RunManager { store, fleet, router, hub, settings, cancel, live: Default::default(), tasks: TaskTracker::new() }
    }

    /// The live state of a running run (`None` once its files are final).
    pub fn live(&self, run_id: &str) -> Option<SharedRun> {
        bench_shared::sync::lock(&self.live).get(run_id).cloned()
    }

    /// After `cancel` fired: waits until every run task has written its final files.
    pub async fn wait_stopped(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Ids of the runs in progress.
    pub fn running_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = bench_shared::sync::lock(&self.live).keys().cloned().collect();
        ids.sort();
        ids
    }

    /// True while the run is in progress (a run whose final files are still being retried
    /// after a write failure has ended: it is in the live table, but not running).
    pub fn is_running(&self, run_id: &str) -> bool {
        self.live(run_id).is_some_and(|l| task::lock(&l).meta.status == RunStatus::Running)
    }

    /// Starts a run from a `POST /api/runs` body: the I/O around the pure [`plan::plan`].
    pub async fn create(&self, body: &Value) -> Result<CreatedRun, RunError> {
        let known: Vec<&str> = self.fleet.machines().iter().map(|m| m.config.machine_id.as_str()).collect();
        let req = request::parse(body, now_ms(), &known)?;
        let chosen: Vec<Arc<Machine>> = self
            .fleet
            .machines()
            .iter()
            .filter(|m| req.machine_ids.as_ref().is_none_or(|ids| ids.contains(&m.config.machine_id)))
            .cloned()
            .collect();
        // A machine that looks unable (offline, model missing) is asked again right now: the
        // cached view may be up to one health interval old (agent just started, model just pulled).
        let stale = chosen.iter().filter(|m| !plan::able(&m.view(), &req.spec));
        futures_util::future::join_all(stale.map(|m| crate::fleet::refresh_now(m, &self.hub))).await;
        let offsets = measure_clocks(&chosen, &req.spec).await;
        // `start_at` counts from now, after those waits, so every agent still gets the job ahead of it.
        let views: Vec<MachineView> = chosen.iter().map(|m| m.view()).collect();
        let plan = plan::plan(&views, &req.spec, &offsets, now_ms(), self.settings.start_delay);
        let mut meta = metadata(req.spec, &plan);
        let log = self.persist_start(&meta, req.audio.as_ref()).await?;
        tracing::info!(run_id = %meta.run_id, machines = meta.machines.len(), "run started");
        if let Some(reason) = plan.nobody_reason() {
            meta.reason = Some(format!("no machine can run this job ({reason})"));
            let (store, hub, mut log, mut done) = (self.store.clone(), self.hub.clone(), log, meta);
            let meta = tokio::task::spawn_blocking(move || {
                finish::finish_run(&store, &hub, &mut log, &mut done, &HashMap::new()).map(|_| done)
            })
            .await
            .map_err(|e| StoreError::Unwritable(format!("run end task failed: {e}")))??;
            return Err(RunError::NoMachines { run_id: meta.run_id.clone(), reason, machines: outcomes_of(&meta) });
        }
        Ok(self.dispatch(&chosen, &plan, meta, log, req.audio.as_ref()).await)
    }

    /// Creates the run's folder, writes `run_start` and `metadata.json` (off the async runtime);
    /// a results directory that cannot be written refuses the run (507) before any agent is asked.
    async fn persist_start(
        &self,
        meta: &RunMetadata,
        audio: Option<&request::RunAudio>,
    ) -> Result<crate::store::EventLog, RunError> {
        let (store, hub, first) = (self.store.clone(), self.hub.clone(), meta.clone());
        let audio = audio.map(|a| (a.name.clone(), a.bytes.clone()));
        let log = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            store.create_run(&first.run_id)?;
            if let Some((name, bytes)) = audio {
                store.write_audio(&first.run_id, &name, &bytes)?;
            }
            let mut log = store.event_log(&first.run_id)?;
            let line = CentralEvent::run_start(&first).line();
            log.append(&line.text)?;
            store.write_metadata(&first)?;
            hub.publish(line);
            Ok(log)
        })
        .await
        .map_err(|e| StoreError::Unwritable(format!("run set-up task failed: {e}")))?
        .map_err(|e| StoreError::Unwritable(writer::describe(&e)))?;
        Ok(log)
    }

    /// Hands the run to its task and posts the job to every runner at once; `start_at`, on each
    /// agent's own clock, makes them begin together.
    async fn dispatch(
        &self,
        chosen: &[Arc<Machine>],
        plan: &plan::RunPlan,
        meta: RunMetadata,
        log: crate::store::EventLog,
        audio: Option<&request::RunAudio>,
    ) -> CreatedRun {
        let runners: Vec<&Arc<Machine>> =
            chosen.iter().filter(|m| plan.runners().any(|r| r.machine_id == m.config.machine_id)).collect();
        let lead = Duration::from_millis(plan.start_at_ms.saturating_sub(now_ms()));
        let limit = lead + deadline(&meta.spec, &self.settings);
        let mut state = RunState::new(meta.run_id.clone(), self.settings.silence);
        let now = std::time::Instant::now();
        for m in &runners {
            state.track(&m.id, now, limit);
        }
        let clients = runners.iter().map(|m| (m.id.clone(), m.client.clone())).collect();
        let (run_id, spec) = (meta.run_id.clone(), meta.spec.clone());
        let live = LiveRun { meta, outcomes: HashMap::new(), finished: 0 };
        let (live, tx) = self.launch(live, log, state, Vec::new(), clients);
        let posts = runners.iter().map(|m| {
            let mut job = audio.map_or_else(|| spec.clone(), |a| a.job_for_agents(&spec));
            job.set_start_at(plan.agent_start_at_ms(&m.config.machine_id));
            async move { (m.id.clone(), m.client.post_job(&job).await) }
        });
        let mut job_ids = HashMap::new();
        for (machine_id, result) in futures_util::future::join_all(posts).await {
            let result = result.map(|accepted| JobId::from(accepted.job_id));
            if let Ok(job_id) = &result {
                job_ids.insert(machine_id.to_string(), job_id.to_string());
            }
            // The task outlives this send: it waits for every dispatched machine.
            let _ = tx.send(RunMsg::Dispatched { machine_id, result });
        }
        let meta = task::lock(&live).meta.clone();
        let mut machines = outcomes_of(&meta);
        for m in &mut machines {
            if let Some(j) = job_ids.get(&m.machine_id) {
                m.job_id = Some(j.clone());
                if m.status == MachineRunStatus::Pending {
                    m.status = MachineRunStatus::Running;
                }
            }
        }
        CreatedRun { run_id, start_at: plan.start_at_ms, machines }
    }
}

/// Each able machine's clock offset, all at once (bounded: an agent that does not answer
/// starts uncorrected, with the reason recorded).
async fn measure_clocks(
    chosen: &[Arc<Machine>],
    spec: &JobSpec,
) -> HashMap<String, Result<crate::clock::Estimate, String>> {
    let anchor = crate::clock::Anchor::now();
    let able = chosen.iter().filter(|m| plan::able(&m.view(), spec));
    futures_util::future::join_all(able.map(|m| async move {
        let measured = crate::clock::measure(&m.client, anchor, timeouts::CENTRAL_CLOCK_MEASURE).await;
        (m.config.machine_id.clone(), measured)
    }))
    .await
    .into_iter()
    .collect()
}

/// A new run's metadata from its spec and plan (status `running`; the spec's `start_at` is the
/// common instant on central's clock).
fn metadata(mut spec: JobSpec, plan: &plan::RunPlan) -> RunMetadata {
    spec.set_start_at(Some(plan.start_at_ms));
    let started = now_s();
    RunMetadata {
        run_id: new_run_id(started),
        test_type: spec.test_type(),
        models: spec.models(),
        prompt: match &spec {
            JobSpec::LlmGenerate(g) => Some(g.prompt.clone()),
            JobSpec::ImageGenerate(i) => Some(i.prompt.clone()),
            JobSpec::LlmSweep(_)
            | JobSpec::LlmLoad(_)
            | JobSpec::LlmCapacity(_)
            | JobSpec::Transcribe(_)
            | JobSpec::Compute(_) => None,
        },
        spec,
        status: RunStatus::Running,
        reason: None,
        started_at: rfc3339(started),
        started_at_s: started,
        ended_at: None,
        ended_at_s: None,
        machines: plan.machines.clone(),
        clock: Some(plan.clock.clone()),
        imported: None,
    }
}

impl RunManager {
    /// Hands a run to its task: registers it as live, starts its writer and its task (which
    /// first executes `initial`). Returns the live state and the task's mailbox.
    fn launch(
        &self,
        live: LiveRun,
        log: crate::store::EventLog,
        state: RunState,
        initial: Vec<state::Action>,
        clients: HashMap<MachineId, crate::agent_client::AgentClient>,
    ) -> (SharedRun, mpsc::UnboundedSender<RunMsg>) {
        let run_id = live.meta.run_id.clone();
        let live: SharedRun = Arc::new(Mutex::new(live));
        bench_shared::sync::lock(&self.live).insert(run_id.clone(), live.clone());
        let (tx, rx) = mpsc::unbounded_channel();
        let table = self.live.clone();
        let id = run_id.clone();
        let on_done = Box::new(move || {
            bench_shared::sync::lock(&table).remove(&id);
        });
        let failed = tx.clone();
        let (writer, _thread) = RunWriter::spawn(log, move |reason| {
            let _ = failed.send(RunMsg::WriteFailed { reason });
        });
        let task = RunTask {
            run_id,
            live: live.clone(),
            store: self.store.clone(),
            writer,
            hub: self.hub.clone(),
            router: self.router.clone(),
            tx: tx.clone(),
            rx,
            cancel: self.cancel.clone(),
            clients,
            state,
            on_done,
            image_fetches: Vec::new(),
        };
        self.tasks.spawn(task.run(initial));
        (live, tx)
    }
}

fn outcomes_of(meta: &RunMetadata) -> Vec<MachineOutcome> {
    meta.machines
        .iter()
        .map(|m| MachineOutcome {
            machine_id: m.machine_id.clone(),
            status: m.status,
            reason: m.reason.clone(),
            job_id: m.job_id.clone(),
        })
        .collect()
}

/// How long a machine may take, from `start_at`: generous, derived from the work asked for.
pub fn deadline(spec: &JobSpec, settings: &Settings) -> Duration {
    match spec {
        JobSpec::LlmGenerate(g) => {
            let requests = g.repeat + g.warmup;
            settings.deadline_base + settings.deadline_per_token.saturating_mul(g.max_tokens.saturating_mul(requests))
        }
        JobSpec::LlmSweep(s) => {
            let cells = (s.models.len() * s.ctx_points().len() * s.parallel.len()) as u32;
            let calls = cells.saturating_mul(s.warmup + 2 * s.runs);
            settings.deadline_base + Duration::from_secs_f64(s.timeout_s).saturating_mul(calls)
        }
        JobSpec::LlmLoad(l) => {
            let per_request = settings.deadline_per_token.as_secs_f64() * f64::from(l.max_tokens);
            let budget = bench_shared::load::schedule::budget_s(&l.workload(), l.level(), per_request);
            settings.deadline_base + Duration::from_secs_f64(budget.min(30.0 * 86_400.0))
        }
        JobSpec::LlmCapacity(c) => {
            let per_request = settings.deadline_per_token.as_secs_f64() * f64::from(c.max_tokens);
            settings.deadline_base + Duration::from_secs_f64(c.budget_s(per_request).min(30.0 * 86_400.0))
        }
        // The agents' own bounds (image_engine.timeout_s, speech_engine.request_timeout_s: 600 s
        // by default) end a stuck repeat first; this only catches an agent that went silent.
        JobSpec::ImageGenerate(i) => settings.deadline_base + Duration::from_secs(660).saturating_mul(i.repeat),
        JobSpec::Transcribe(t) => settings.deadline_base + Duration::from_secs(660).saturating_mul(t.repeat),
        // A slow core still sieves millions of integers a second: one second per million is ample.
        JobSpec::Compute(c) => {
            settings.deadline_base + Duration::from_secs_f64(c.n as f64 / 1e6 + 10.0).saturating_mul(c.repeat)
        }
    }
}
