//! Run lifecycle: validate the request, preflight the fleet, measure each able agent's clock
//! offset ([`crate::clock`]), persist the run, post the job to every chosen agent at once with a
//! common `start_at` (on each agent's own clock), and hand the run to its task ([`task`], which
//! executes the decisions of the sans-I/O [`state::RunState`]; files go through [`writer`]).
//!
//! Decision: when preflight leaves no machine, the run is still persisted (status `failed`, every
//! machine `skipped` with its reason) so the history shows what was tried, and the request is
//! answered `409` with those reasons and the `run_id`.

pub mod finish;
pub mod request;
pub mod resume;
pub mod state;
pub mod summary;
pub mod task;
pub mod writer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bench_shared::clock::RunClock;
use bench_shared::engine::{ModelInfo, same_model};
use bench_shared::job::{FieldError, JobSpec};
use bench_shared::run::{
    MachineRecord, MachineRunStatus, MachineState, MachineView, RUN_START, RunMetadata, RunStatus,
};
use bench_shared::timeouts;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::state::RunState;
use self::task::{LiveRun, RunTask, SharedRun};
use self::writer::RunWriter;
use crate::config::Settings;
use crate::fleet::Fleet;
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

    /// Starts a run from a `POST /api/runs` body.
    pub async fn create(&self, body: &Value) -> Result<CreatedRun, RunError> {
        let delay = self.settings.start_delay.as_millis() as u64;
        let known: Vec<&str> = self.fleet.machines().iter().map(|m| m.config.machine_id.as_str()).collect();
        let req = request::parse(body, now_ms() + delay, now_ms(), &known)?;
        let chosen: Vec<_> = self
            .fleet
            .machines()
            .iter()
            .filter(|m| req.machine_ids.as_ref().is_none_or(|ids| ids.contains(&m.config.machine_id)))
            .cloned()
            .collect();
        // A machine that looks unable (offline, model missing) is asked again right now: the
        // cached view may be up to one health interval old (agent just started, model just pulled).
        let stale = chosen.iter().filter(|m| preflight(&m.view(), &req.spec).status == MachineRunStatus::Skipped);
        futures_util::future::join_all(stale.map(|m| crate::fleet::refresh_now(m, &self.hub))).await;
        // Each able machine's clock offset, all at once (bounded: an agent that does not answer
        // starts uncorrected, with the reason recorded).
        let able: Vec<_> = chosen
            .iter()
            .filter(|m| preflight(&m.view(), &req.spec).status == MachineRunStatus::Pending)
            .cloned()
            .collect();
        let anchor = crate::clock::Anchor::now();
        let offsets: HashMap<String, Result<crate::clock::Estimate, String>> =
            futures_util::future::join_all(able.iter().map(|m| async move {
                let measured = crate::clock::measure(&m.client, anchor, timeouts::CENTRAL_CLOCK_MEASURE).await;
                (m.config.machine_id.clone(), measured)
            }))
            .await
            .into_iter()
            .collect();
        // `start_at` counts from now, after those waits, so every agent still gets the job ahead of it.
        let now = now_ms();
        let start_at = now + delay;
        let req = request::parse(body, start_at, now, &known)?;
        let records: Vec<MachineRecord> = chosen.iter().map(|m| preflight(&m.view(), &req.spec)).collect();
        let clock = RunClock {
            start_at_ms: start_at,
            machines: records
                .iter()
                .filter(|r| r.status == MachineRunStatus::Pending)
                .map(|r| {
                    let measured = offsets.get(&r.machine_id).cloned().unwrap_or_else(|| {
                        Err("clock offset not measured: the machine became able after the measurement".into())
                    });
                    (r.machine_id.clone(), crate::clock::machine_clock(&measured, start_at))
                })
                .collect(),
            ..Default::default()
        };

        let started = now_s();
        let run_id = new_run_id(started);
        let mut meta = RunMetadata {
            run_id: run_id.clone(),
            test_type: req.spec.test_type(),
            models: req.spec.models(),
            prompt: match &req.spec {
                JobSpec::LlmGenerate(g) => Some(g.prompt.clone()),
                JobSpec::ImageGenerate(i) => Some(i.prompt.clone()),
                JobSpec::LlmSweep(_) | JobSpec::Transcribe(_) | JobSpec::Compute(_) => None,
            },
            spec: req.spec.clone(),
            status: RunStatus::Running,
            reason: None,
            started_at: rfc3339(started),
            started_at_s: started,
            ended_at: None,
            ended_at_s: None,
            machines: records,
            clock: Some(clock),
        };
        // The `start_at` each agent gets: the common instant on its own clock.
        let agent_start: HashMap<String, u64> = meta
            .clock
            .iter()
            .flat_map(|c| c.machines.iter().map(|(id, m)| (id.clone(), m.agent_start_at_ms)))
            .collect();
        // Files are written off the async runtime; a results directory that cannot be written
        // refuses the run (507) before any agent is asked.
        let (store, hub, first) = (self.store.clone(), self.hub.clone(), meta.clone());
        let log = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            store.create_run(&first.run_id)?;
            let mut log = store.event_log(&first.run_id)?;
            let line = run_start_line(&first, start_at);
            log.append(&line)?;
            store.write_metadata(&first)?;
            hub.publish_line(line.into());
            Ok(log)
        })
        .await
        .map_err(|e| StoreError::Unwritable(format!("run set-up task failed: {e}")))?
        .map_err(|e| StoreError::Unwritable(writer::describe(&e)))?;
        tracing::info!(run_id, machines = meta.machines.len(), "run started");

        let eligible: Vec<_> = chosen
            .iter()
            .zip(&meta.machines)
            .filter(|(_, r)| r.status == MachineRunStatus::Pending)
            .map(|(m, _)| m.clone())
            .collect();
        if eligible.is_empty() {
            let reasons: Vec<String> = meta
                .machines
                .iter()
                .map(|m| format!("{}: {}", m.machine_id, m.reason.as_deref().unwrap_or("not available")))
                .collect();
            let reason = if reasons.is_empty() { "no machine selected".to_owned() } else { reasons.join("; ") };
            meta.reason = Some(format!("no machine can run this job ({reason})"));
            let (store, hub, mut log, mut done) = (self.store.clone(), self.hub.clone(), log, meta.clone());
            let meta = tokio::task::spawn_blocking(move || {
                finish::finish_run(&store, &hub, &mut log, &mut done, &HashMap::new()).map(|_| done)
            })
            .await
            .map_err(|e| StoreError::Unwritable(format!("run end task failed: {e}")))??;
            return Err(RunError::NoMachines { run_id, reason, machines: outcomes_of(&meta) });
        }

        let lead = Duration::from_millis(start_at.saturating_sub(now_ms()));
        let limit = lead + deadline(&req.spec, &self.settings);
        let mut state = RunState::new(run_id.clone(), self.settings.silence);
        let now = std::time::Instant::now();
        for m in &eligible {
            state.track(&m.config.machine_id, now, limit);
        }
        let clients = eligible.iter().map(|m| (m.config.machine_id.clone(), m.client.clone())).collect();
        let live = LiveRun { meta, outcomes: HashMap::new(), finished: 0 };
        let (live, tx) = self.launch(live, log, state, Vec::new(), clients);

        // Every agent gets the job at once; `start_at`, on each agent's own clock, makes them
        // begin together.
        let posts = eligible.iter().map(|m| {
            let mut job = req.job.clone();
            if let (Some(at), Some(obj)) = (agent_start.get(&m.config.machine_id), job.as_object_mut()) {
                obj.insert("start_at".into(), Value::from(*at));
            }
            async move { (m.config.machine_id.clone(), m.client.post_job(&job).await) }
        });
        let mut job_ids = HashMap::new();
        for (machine_id, result) in futures_util::future::join_all(posts).await {
            let result = result.map(|accepted| accepted.job_id);
            if let Ok(job_id) = &result {
                job_ids.insert(machine_id.clone(), job_id.clone());
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
        Ok(CreatedRun { run_id, start_at, machines })
    }
}

/// The `run_start` event line.
fn run_start_line(meta: &RunMetadata, start_at: u64) -> String {
    json!({
        "type": RUN_START, "run_id": meta.run_id, "test_type": meta.test_type, "models": meta.models,
        "prompt": meta.prompt, "start_at": start_at, "started_at_s": meta.started_at_s,
        "machines": meta.machines.iter().map(|m| json!({"machine_id": m.machine_id, "label": m.label,
            "status": m.status, "reason": m.reason, "engine": m.engine, "hardware": m.hardware})).collect::<Vec<_>>(),
    })
    .to_string()
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
        clients: HashMap<String, crate::agent_client::AgentClient>,
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

/// A machine's record at the start of a run: `pending` when it can take the job, otherwise
/// `skipped` with the reason (offline, model missing, test type not supported).
pub fn preflight(view: &MachineView, spec: &JobSpec) -> MachineRecord {
    let caps = view.capabilities.as_ref();
    let models = spec.models();
    let model_details: Vec<ModelInfo> = caps
        .map(|c| c.models.iter().filter(|m| models.iter().any(|w| same_model(&m.name, w))).cloned().collect())
        .unwrap_or_default();
    let missing: Vec<&String> = models.iter().filter(|w| !view.models.iter().any(|n| same_model(n, w))).collect();
    // The engine was checked and did not answer (and the agent does not fall back to mock).
    let engine_down = view.health.as_ref().map(|h| &h.engine).filter(|e| {
        !e.reachable && e.checked_age_s.is_some() && caps.is_none_or(|c| c.engine.fallback_reason.is_none())
    });
    let skip = if view.state == MachineState::Offline {
        Some(format!("agent offline: {}", view.last_error.as_deref().unwrap_or("no answer")))
    } else if view.state == MachineState::Unauthorized {
        Some(view.last_error.clone().unwrap_or_else(|| "agent refused central's token (401)".into()))
    } else if let Some(e) = engine_down {
        Some(format!("engine unreachable at {}: {}", e.base_url, e.error.as_deref().unwrap_or("no answer")))
    } else if caps.is_some_and(|c| !c.supports(spec.test_type().as_str())) {
        Some(format!("agent does not support {}", spec.test_type().as_str()))
    } else if !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        Some(format!("model {} not available (machine has: {})", names.join(", "), view.models.join(", ")))
    } else {
        None
    };
    MachineRecord {
        machine_id: view.machine_id.clone(),
        label: view.label.clone(),
        agent_base_url: view.agent_base_url.clone(),
        notes: view.notes.clone(),
        status: if skip.is_some() { MachineRunStatus::Skipped } else { MachineRunStatus::Pending },
        reason: skip,
        job_id: None,
        engine: view.engine.clone(),
        models: model_details,
        hardware: view.hardware.clone(),
        capabilities: view.capabilities.clone(),
        client_ceiling: caps.and_then(|c| c.client_ceiling.clone()),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use bench_shared::api::{EngineHealth, Health};
    use bench_shared::engine::EngineKind;

    fn view(state: MachineState, reachable: bool, last_error: Option<&str>) -> MachineView {
        MachineView {
            machine_id: "m".into(),
            label: "M".into(),
            agent_base_url: "http://agent".into(),
            notes: None,
            state,
            ws_connected: true,
            last_error: last_error.map(str::to_owned),
            last_seen_s: Some(1.0),
            models: vec!["llm".into()],
            engine: None,
            hardware: None,
            health: Some(Health {
                ok: true,
                machine_id: "m".into(),
                label: "M".into(),
                engine: EngineHealth {
                    kind: EngineKind::Openai,
                    base_url: "http://127.0.0.1:8091".into(),
                    reachable,
                    checked_age_s: Some(1.0),
                    error: (!reachable).then(|| "connection refused".into()),
                },
                busy: false,
                queue_len: 0,
                ws_slow_disconnects: 0,
            }),
            capabilities: None,
        }
    }

    #[test]
    fn preflight_names_why_a_machine_is_skipped() {
        let spec = JobSpec::from_json(&json!({"model": "llm", "prompt": "p"}), 0).unwrap();
        let ok = preflight(&view(MachineState::Online, true, None), &spec);
        assert_eq!((ok.status, ok.reason), (MachineRunStatus::Pending, None));
        let down = preflight(&view(MachineState::Online, false, None), &spec);
        assert_eq!(down.status, MachineRunStatus::Skipped);
        assert_eq!(down.reason.as_deref(), Some("engine unreachable at http://127.0.0.1:8091: connection refused"));
        let refused = "agent refused central's token (401)";
        let unauth = preflight(&view(MachineState::Unauthorized, true, Some(refused)), &spec);
        assert_eq!((unauth.status, unauth.reason.as_deref()), (MachineRunStatus::Skipped, Some(refused)));
        let spec = JobSpec::from_json(&json!({"model": "other", "prompt": "p"}), 0).unwrap();
        let missing = preflight(&view(MachineState::Online, true, None), &spec);
        assert!(missing.reason.unwrap().starts_with("model other not available"));
    }
}
