//! Fleet model management: `POST /api/models/pull` asks every chosen agent to pull a model
//! (`POST /api/models/pull` on the agent), then follows each agent's pull through its event
//! stream and tells browsers with `model_pull` events. Each machine's pull is on its own: one
//! that fails (an engine that cannot pull, a registry error, a lost agent) says why and leaves
//! the others going. A finished pull refreshes the machine's model list at once.
//!
//! A pull's events reach its follower like a run's: the [`JobRouter`] routes `(machine, job)` to
//! it, and after a reconnect the follower fetches what it missed (`GET /jobs/{id}/events`). An
//! agent that restarted mid-pull no longer runs it (`GET /api/models/pulls`): the pull fails
//! with that reason instead of waiting forever.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bench_shared::api::PullRequest;
use bench_shared::event::{Decoded, Event, Received};
use bench_shared::feed::CentralEvent;
use bench_shared::ids::JobId;
use bench_shared::pull::{
    FleetPullRequest, FleetPullStarted, MachinePull, ModelsView, PullSkipped, PullState, PullTarget, availability,
};
use futures_util::future::join_all;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::api::ApiError;
use crate::fleet::{Fleet, Machine};
use crate::hub::Hub;
use crate::routing::{JobRouter, RunMsg};

/// Finished machine pulls kept for `GET /api/models` (running ones are always kept).
const KEEP_FINISHED: usize = 64;
/// How long a pull waits for its agent to come back after the connection dropped.
const LOST_LIMIT: Duration = Duration::from_secs(60);

/// Every machine pull central started: running ones and the last finished.
#[derive(Debug)]
pub struct Pulls {
    fleet: Arc<Fleet>,
    router: Arc<JobRouter>,
    hub: Hub,
    cancel: CancellationToken,
    table: Mutex<VecDeque<MachinePull>>,
}

impl Pulls {
    pub fn new(fleet: Arc<Fleet>, router: Arc<JobRouter>, hub: Hub, cancel: CancellationToken) -> Self {
        Pulls { fleet, router, hub, cancel, table: Mutex::new(VecDeque::new()) }
    }

    /// `GET /api/models`: where each model is, the machines, the pulls.
    pub fn view(&self) -> ModelsView {
        let views = self.fleet.views();
        ModelsView {
            models: availability(&views),
            machines: views.iter().map(PullTarget::of).collect(),
            pulls: bench_shared::sync::lock(&self.table).iter().cloned().collect(),
        }
    }

    /// Starts a fleet pull: asks each target agent at once and answers with what each said.
    pub async fn start(self: &Arc<Self>, req: FleetPullRequest) -> Result<FleetPullStarted, ApiError> {
        let asked = PullRequest { model: req.model.clone() };
        let model = asked.validate().map_err(|e| ApiError::bad(&e.field, e.message))?.to_owned();
        let views = self.fleet.views();
        if let Some(ids) = &req.machine_ids
            && let Some(unknown) = ids.iter().find(|id| !views.iter().any(|v| &v.machine_id == *id))
        {
            let known: Vec<&str> = views.iter().map(|v| v.machine_id.as_str()).collect();
            return Err(ApiError::bad(
                "machine_ids",
                format!("unknown machine {unknown:?}; known: {}", known.join(", ")),
            ));
        }
        let pull_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let mut skipped = Vec::new();
        let mut targets = Vec::new();
        for v in &views {
            if req.machine_ids.as_ref().is_some_and(|ids| !ids.contains(&v.machine_id)) {
                continue;
            }
            let t = PullTarget::of(v);
            let reason = if v.models.iter().any(|m| m == &model) {
                Some("already has the model".to_owned())
            } else if !v.protocol.is_native() {
                Some("an original bench-race agent: pull the model with its own tools".to_owned())
            } else if !t.reachable() {
                Some(format!("{:?}: {}", v.state, v.last_error.as_deref().unwrap_or("not reachable")).to_lowercase())
            } else {
                None
            };
            match reason {
                Some(reason) => skipped.push(PullSkipped { machine_id: v.machine_id.clone(), reason }),
                None => targets.push(v.machine_id.clone()),
            }
        }
        let asks = targets.iter().filter_map(|id| self.fleet.get(id).cloned()).map(|m| {
            let (pulls, pull_id, model) = (self.clone(), pull_id.clone(), model.clone());
            async move { pulls.ask(m, pull_id, model).await }
        });
        let machines = join_all(asks).await;
        tracing::info!(pull_id, model, asked = machines.len(), skipped = skipped.len(), "fleet pull started");
        Ok(FleetPullStarted { pull_id, model, machines, skipped })
    }

    /// Asks one agent to pull; on acceptance a follower task takes over.
    async fn ask(self: Arc<Self>, m: Arc<Machine>, pull_id: String, model: String) -> MachinePull {
        let mut entry = MachinePull {
            pull_id,
            model: model.clone(),
            machine_id: m.config.machine_id.clone(),
            job_id: None,
            state: PullState::Starting,
            status: None,
            completed_bytes: None,
            total_bytes: None,
            error: None,
            started_at_s: crate::store::now_s(),
            ended_at_s: None,
        };
        self.record(&entry);
        match m.client.pull_model(&model).await {
            Ok(accepted) => {
                entry.job_id = Some(accepted.job_id.clone());
                entry.state = PullState::Running;
                self.record(&entry);
                let (tx, rx) = mpsc::unbounded_channel();
                // Registered before the follower backfills, so no event falls between the two.
                self.router.register(&m.id, &JobId::from(accepted.job_id.as_str()), tx);
                let follower = self.clone();
                let first = entry.clone();
                tokio::spawn(async move { follower.follow(m, first, rx).await });
            }
            Err(e) => {
                entry.state = PullState::Failed;
                entry.error = Some(e.to_string());
                entry.ended_at_s = Some(crate::store::now_s());
                self.record(&entry);
            }
        }
        entry
    }

    /// Follows one machine's pull to its end.
    async fn follow(self: Arc<Self>, m: Arc<Machine>, mut entry: MachinePull, mut rx: mpsc::UnboundedReceiver<RunMsg>) {
        let job_id = entry.job_id.clone().unwrap_or_default();
        let mut last_seq = 0u64;
        let mut lost_since: Option<tokio::time::Instant> = None;
        // What the agent published before the route existed.
        self.backfill(&m, &job_id, &mut last_seq, &mut entry).await;
        while !entry.state.is_finished() {
            let lost_deadline = lost_since.map(|t| t + LOST_LIMIT);
            let msg = tokio::select! {
                msg = rx.recv() => msg,
                () = self.cancel.cancelled() => break,
                () = async { tokio::time::sleep_until(lost_deadline.unwrap_or_else(tokio::time::Instant::now)).await },
                    if lost_deadline.is_some() => {
                    self.fail(&mut entry, format!("lost the agent mid-pull for {} s", LOST_LIMIT.as_secs()));
                    break;
                }
            };
            match msg {
                Some(RunMsg::Event { event, .. }) => self.apply(&m, &mut entry, &mut last_seq, event).await,
                Some(RunMsg::ConnectionLost { .. }) => {
                    lost_since = lost_since.or_else(|| Some(tokio::time::Instant::now()))
                }
                Some(RunMsg::Reconnected { .. }) => {
                    lost_since = None;
                    self.backfill(&m, &job_id, &mut last_seq, &mut entry).await;
                    if !entry.state.is_finished() {
                        self.check_still_running(&m, &job_id, &mut last_seq, &mut entry).await;
                    }
                }
                Some(_) => {}
                None => break,
            }
        }
        self.router.unregister(&m.id, &JobId::from(job_id.as_str()));
    }

    /// After a reconnect: an agent that restarted no longer runs the pull.
    async fn check_still_running(&self, m: &Machine, job_id: &str, last_seq: &mut u64, entry: &mut MachinePull) {
        match m.client.running_pulls().await {
            Ok(list) if !list.iter().any(|p| p.job_id == job_id) => {
                // It may have ended between the backfill and this answer.
                self.backfill(m, job_id, last_seq, entry).await;
                if !entry.state.is_finished() {
                    self.fail(entry, "the agent restarted mid-pull: the pull stopped there; pull again".into());
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(machine_id = %entry.machine_id, "cannot list the agent's pulls: {e}"),
        }
    }

    async fn backfill(&self, m: &Machine, job_id: &str, last_seq: &mut u64, entry: &mut MachinePull) {
        match m.client.job_events(job_id, *last_seq).await {
            Ok(events) => {
                for e in events {
                    self.apply(m, entry, last_seq, e).await;
                }
            }
            Err(e) => tracing::debug!(machine_id = %entry.machine_id, job_id, "pull backfill failed: {e}"),
        }
    }

    async fn apply(&self, m: &Machine, entry: &mut MachinePull, last_seq: &mut u64, event: Received) {
        if event.env.seq <= *last_seq || entry.state.is_finished() {
            return;
        }
        *last_seq = event.env.seq;
        match event.event {
            Decoded::Known(Event::ModelPullProgress(p)) => {
                entry.status = Some(p.status);
                entry.completed_bytes = p.completed_bytes;
                entry.total_bytes = p.total_bytes;
                self.record(entry);
            }
            Decoded::Known(Event::ModelPullDone(d)) => {
                // The machine's model list first, so a browser told "done" finds the model.
                crate::fleet::refresh_now(m, &self.hub).await;
                entry.state = PullState::Done;
                entry.status = Some("success".into());
                entry.total_bytes = d.total_bytes.or(entry.total_bytes);
                entry.completed_bytes = entry.total_bytes;
                entry.ended_at_s = Some(crate::store::now_s());
                self.record(entry);
            }
            Decoded::Known(Event::JobError(e)) => self.fail(entry, e.message),
            Decoded::Known(Event::JobCancelled(c)) => self.fail(entry, c.reason),
            _ => {}
        }
    }

    fn fail(&self, entry: &mut MachinePull, reason: String) {
        tracing::warn!(machine_id = %entry.machine_id, model = %entry.model, reason, "model pull failed");
        entry.state = PullState::Failed;
        entry.error = Some(reason);
        entry.ended_at_s = Some(crate::store::now_s());
        self.record(entry);
    }

    /// Keeps `entry` in the table and tells browsers.
    fn record(&self, entry: &MachinePull) {
        {
            let mut table = bench_shared::sync::lock(&self.table);
            match table.iter_mut().find(|e| e.pull_id == entry.pull_id && e.machine_id == entry.machine_id) {
                Some(e) => *e = entry.clone(),
                None => table.push_back(entry.clone()),
            }
            while table.iter().filter(|e| e.state.is_finished()).count() > KEEP_FINISHED {
                match table.iter().position(|e| e.state.is_finished()) {
                    Some(i) => {
                        table.remove(i);
                    }
                    None => break,
                }
            }
        }
        self.hub.publish_event(&CentralEvent::ModelPull(Box::new(entry.clone())));
    }
}
