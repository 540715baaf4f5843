//! The task that owns one running run.
//!
//! It receives every event of the run's jobs (from the fleet's WebSockets, or fetched back from
//! the agents), puts each machine's events in `seq` order without duplicates, appends them to
//! `events.ndjson`, relays them to browsers, and decides when each machine is done. Events that
//! arrive ahead of a gap wait in a small buffer while the gap is fetched with
//! `GET /jobs/{id}/events?after_seq=`, so the stored stream has no holes.
//!
//! A watchdog ends a machine as `error` when its deadline passes, or when it has been silent for
//! `silence` and its agent no longer answers `GET /jobs/{id}`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bench_shared::event::RawEnvelope;
use bench_shared::run::{MACHINE_STATUS, MachineRunStatus, RunMetadata};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::summary::{self, Outcome};
use crate::agent_client::AgentClient;
use crate::config::Settings;
use crate::hub::Hub;
use crate::routing::{JobRouter, RunMsg};
use crate::store::{EventLog, Store};

/// What API handlers read of a running run (locked only for short, non-async sections).
#[derive(Debug)]
pub struct LiveRun {
    pub meta: RunMetadata,
    pub outcomes: HashMap<String, Outcome>,
    /// Machines that reached a terminal state so far (next `finish_order`).
    pub finished: u32,
}

pub type SharedRun = Arc<Mutex<LiveRun>>;

pub fn lock(run: &SharedRun) -> std::sync::MutexGuard<'_, LiveRun> {
    run.lock().unwrap_or_else(|p| p.into_inner())
}

/// Central's bookkeeping for one dispatched machine.
#[derive(Debug)]
struct Track {
    client: AgentClient,
    job_id: Option<String>,
    last_seq: u64,
    /// Events that arrived ahead of a gap, by seq.
    pending: BTreeMap<u64, RawEnvelope>,
    backfill_in_flight: bool,
    /// A backfill was asked for while one was in flight: run another when it returns.
    backfill_again: bool,
    probe_in_flight: bool,
    last_event: Instant,
    deadline: Instant,
    /// The deadline's length, for the error message.
    limit: Duration,
    done: bool,
}

pub struct Actor {
    pub run_id: String,
    pub live: SharedRun,
    pub store: Store,
    pub log: EventLog,
    pub hub: Hub,
    pub router: Arc<JobRouter>,
    pub tx: mpsc::UnboundedSender<RunMsg>,
    pub rx: mpsc::UnboundedReceiver<RunMsg>,
    pub settings: Settings,
    pub cancel: CancellationToken,
    /// Called once the run's files are final (removes it from the manager's live table).
    pub on_done: Box<dyn FnOnce() + Send>,
    tracks: HashMap<String, Track>,
}

impl Actor {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        run_id: String,
        live: SharedRun,
        store: Store,
        log: EventLog,
        hub: Hub,
        router: Arc<JobRouter>,
        channel: (mpsc::UnboundedSender<RunMsg>, mpsc::UnboundedReceiver<RunMsg>),
        settings: Settings,
        cancel: CancellationToken,
        on_done: Box<dyn FnOnce() + Send>,
    ) -> Self {
        let (tx, rx) = channel;
        Actor { run_id, live, store, log, hub, router, tx, rx, settings, cancel, on_done, tracks: HashMap::new() }
    }

    /// Adds a machine the job is being posted to; `limit` is its deadline from now.
    pub fn track(&mut self, machine_id: &str, client: AgentClient, limit: Duration) {
        let now = Instant::now();
        self.tracks.insert(
            machine_id.to_owned(),
            Track {
                client,
                job_id: None,
                last_seq: 0,
                pending: BTreeMap::new(),
                backfill_in_flight: false,
                backfill_again: false,
                probe_in_flight: false,
                last_event: now,
                deadline: now + limit,
                limit,
                done: false,
            },
        );
    }

    pub async fn run(mut self) {
        let period = (self.settings.silence / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !self.tracks.values().all(|t| t.done) {
            tokio::select! {
                _ = self.cancel.cancelled() => {
                    self.interrupt().await;
                    return;
                }
                Some(msg) = self.rx.recv() => self.handle(msg),
                _ = tick.tick() => self.watchdog(),
            }
        }
        self.finish();
    }

    fn handle(&mut self, msg: RunMsg) {
        match msg {
            RunMsg::Dispatched { machine_id, result } => match result {
                Ok(job_id) => self.dispatched(&machine_id, job_id),
                Err(e) => self.set_status(&machine_id, MachineRunStatus::Error, Some(format!("job not accepted: {e}"))),
            },
            RunMsg::Event { machine_id, env } => self.offer(&machine_id, env),
            RunMsg::Reconnected { machine_id } => {
                if self.tracks.get(&machine_id).is_some_and(|t| !t.done && t.job_id.is_some()) {
                    self.request_backfill(&machine_id);
                }
            }
            RunMsg::Backfill { machine_id, result } => self.backfilled(&machine_id, result),
            RunMsg::Probe { machine_id, result } => self.probed(&machine_id, result),
            RunMsg::ConnectionLost { machine_id } => self.probe_now(&machine_id),
        }
    }

    /// The machine's WebSocket was lost: probe its job at once, as `silence` would later.
    fn probe_now(&mut self, machine_id: &str) {
        let Some(t) = self.tracks.get_mut(machine_id) else { return };
        if t.done || t.probe_in_flight {
            return;
        }
        let Some(job_id) = t.job_id.clone() else { return };
        t.probe_in_flight = true;
        let (client, tx, machine_id) = (t.client.clone(), self.tx.clone(), machine_id.to_owned());
        tokio::spawn(async move {
            let result = client.job(&job_id).await;
            let _ = tx.send(RunMsg::Probe { machine_id, result });
        });
    }

    fn dispatched(&mut self, machine_id: &str, job_id: String) {
        let Some(t) = self.tracks.get_mut(machine_id) else { return };
        t.job_id = Some(job_id.clone());
        t.last_event = Instant::now();
        self.router.register(machine_id, &job_id, self.tx.clone());
        let event = json!({"type": MACHINE_STATUS, "run_id": self.run_id, "machine_id": machine_id,
            "status": MachineRunStatus::Running, "reason": null, "job_id": job_id});
        self.record(machine_id, event);
        let meta = lock(&self.live).meta.clone();
        if let Err(e) = self.store.write_metadata(&meta) {
            tracing::error!(run_id = %self.run_id, "cannot update metadata: {e}");
        }
        // Events emitted before the job was registered here were dropped by the router: fetch them.
        self.request_backfill(machine_id);
    }

    /// Takes one agent event in `seq` order: duplicates are dropped, events ahead of a gap wait
    /// while the gap is fetched.
    fn offer(&mut self, machine_id: &str, env: RawEnvelope) {
        let Some(t) = self.tracks.get_mut(machine_id) else { return };
        if t.done || t.job_id.as_deref() != Some(env.job_id.as_str()) {
            return;
        }
        if env.seq != 0 && env.seq <= t.last_seq {
            return;
        }
        if env.seq != 0 && env.seq > t.last_seq + 1 {
            t.pending.insert(env.seq, env);
            self.request_backfill(machine_id);
            return;
        }
        self.accept(machine_id, env);
        self.drain_pending(machine_id, false);
    }

    /// Accepts waiting events that are next in line (all of them with `force`, gap or not).
    fn drain_pending(&mut self, machine_id: &str, force: bool) {
        loop {
            let Some(t) = self.tracks.get_mut(machine_id) else { return };
            let next = match t.pending.first_key_value() {
                Some((&seq, _)) if force || seq == t.last_seq + 1 => t.pending.remove(&seq),
                Some((&seq, _)) if seq <= t.last_seq => {
                    t.pending.remove(&seq);
                    continue;
                }
                _ => None,
            };
            match next {
                Some(env) if !t.done => self.accept(machine_id, env),
                _ => return,
            }
        }
    }

    fn accept(&mut self, machine_id: &str, mut env: RawEnvelope) {
        if let Some(t) = self.tracks.get_mut(machine_id) {
            t.last_seq = t.last_seq.max(env.seq);
            t.last_event = Instant::now();
        }
        env.machine_id = machine_id.to_owned();
        let mut value = serde_json::to_value(&env).unwrap_or(Value::Null);
        if let Some(obj) = value.as_object_mut() {
            obj.insert("run_id".into(), Value::from(self.run_id.clone()));
        }
        self.record(machine_id, value);
    }

    /// Stores, relays and folds one event line; marks the machine done when it became terminal.
    fn record(&mut self, machine_id: &str, event: Value) {
        let line = event.to_string();
        if let Err(e) = self.log.append(&line) {
            tracing::error!(run_id = %self.run_id, "cannot append event: {e}");
        }
        self.hub.publish_line(line.into());
        let terminal = {
            let mut live = lock(&self.live);
            let LiveRun { meta, outcomes, finished } = &mut *live;
            summary::apply(outcomes, finished, &event);
            let o = outcomes.get(machine_id).cloned().unwrap_or_default();
            if let Some(rec) = meta.machines.iter_mut().find(|m| m.machine_id == machine_id) {
                if let Some(s) = o.status {
                    rec.status = s;
                    rec.reason = o.reason.clone();
                }
                if o.job_id.is_some() {
                    rec.job_id = o.job_id.clone();
                }
            }
            o.is_terminal()
        };
        if terminal && let Some(t) = self.tracks.get_mut(machine_id) {
            t.done = true;
            t.pending.clear();
            if let Some(job) = &t.job_id {
                self.router.unregister(machine_id, job);
            }
        }
    }

    /// Central's own status change for a machine (error, timeout), as a `machine_status` event.
    fn set_status(&mut self, machine_id: &str, status: MachineRunStatus, reason: Option<String>) {
        if self.tracks.get(machine_id).is_none_or(|t| t.done) {
            return;
        }
        tracing::warn!(run_id = %self.run_id, machine_id, status = status.as_str(), reason = reason.as_deref().unwrap_or(""), "machine status");
        let job_id = self.tracks.get(machine_id).and_then(|t| t.job_id.clone());
        let event = json!({"type": MACHINE_STATUS, "run_id": self.run_id, "machine_id": machine_id,
            "status": status, "reason": reason, "job_id": job_id});
        self.record(machine_id, event);
    }

    fn request_backfill(&mut self, machine_id: &str) {
        let Some(t) = self.tracks.get_mut(machine_id) else { return };
        let Some(job_id) = t.job_id.clone() else { return };
        if t.done {
            return;
        }
        if t.backfill_in_flight {
            t.backfill_again = true;
            return;
        }
        t.backfill_in_flight = true;
        let (client, after, tx, machine_id) = (t.client.clone(), t.last_seq, self.tx.clone(), machine_id.to_owned());
        tokio::spawn(async move {
            let result = client.job_events(&job_id, after).await;
            // The run may have finished meanwhile; then nobody needs the answer.
            let _ = tx.send(RunMsg::Backfill { machine_id, result });
        });
    }

    fn backfilled(&mut self, machine_id: &str, result: Result<Vec<RawEnvelope>, crate::agent_client::AgentError>) {
        let Some(t) = self.tracks.get_mut(machine_id) else { return };
        t.backfill_in_flight = false;
        let again = std::mem::take(&mut t.backfill_again);
        let before = t.last_seq;
        match result {
            Ok(events) => {
                let n = events.len();
                for env in events {
                    self.offer(machine_id, env);
                }
                let Some(t) = self.tracks.get_mut(machine_id) else { return };
                tracing::debug!(run_id = %self.run_id, machine_id, fetched = n, from = before, to = t.last_seq, "backfill");
                if !t.pending.is_empty() && t.last_seq == before && !again {
                    // The agent no longer has the missing events: keep what exists, in order.
                    tracing::warn!(run_id = %self.run_id, machine_id, after_seq = before, "events lost on the agent; continuing after the gap");
                    self.drain_pending(machine_id, true);
                } else if again || !t.pending.is_empty() {
                    self.request_backfill(machine_id);
                }
            }
            Err(e) => {
                tracing::warn!(run_id = %self.run_id, machine_id, "cannot fetch missed events: {e}");
                if again {
                    self.request_backfill(machine_id);
                }
            }
        }
    }

    fn probed(&mut self, machine_id: &str, result: Result<Value, crate::agent_client::AgentError>) {
        let Some(t) = self.tracks.get_mut(machine_id) else { return };
        t.probe_in_flight = false;
        if t.done {
            return;
        }
        match result {
            Ok(_) => {
                // Alive (queued behind another job, or a long prefill): fetch anything missed.
                t.last_event = Instant::now();
                self.request_backfill(machine_id);
            }
            Err(e) => {
                let silence = self.settings.silence.as_secs_f64();
                let reason = format!("agent lost: no event for {silence:.0} s and GET /jobs/{{id}} failed: {e}");
                self.set_status(machine_id, MachineRunStatus::Error, Some(reason));
            }
        }
    }

    fn watchdog(&mut self) {
        let now = Instant::now();
        let mut expired = Vec::new();
        for (id, t) in self.tracks.iter_mut().filter(|(_, t)| !t.done && t.job_id.is_some()) {
            if now >= t.deadline {
                expired.push((id.clone(), t.limit, t.client.clone(), t.job_id.clone()));
            } else if now.duration_since(t.last_event) >= self.settings.silence && !t.probe_in_flight {
                t.probe_in_flight = true;
                let (client, job_id, tx, machine_id) =
                    (t.client.clone(), t.job_id.clone().unwrap_or_default(), self.tx.clone(), id.clone());
                tokio::spawn(async move {
                    let result = client.job(&job_id).await;
                    let _ = tx.send(RunMsg::Probe { machine_id, result });
                });
            }
        }
        for (id, limit, client, job_id) in expired {
            let reason = format!("timed out: no result within {:.0} s", limit.as_secs_f64());
            self.set_status(&id, MachineRunStatus::Error, Some(reason));
            if let Some(job_id) = job_id {
                tokio::spawn(async move {
                    if let Err(e) = client.cancel_job(&job_id).await {
                        tracing::warn!(job_id, "cannot cancel timed-out job: {e}");
                    }
                });
            }
        }
    }

    /// Central is shutting down: jobs still running on agents are cancelled (best effort, bounded:
    /// nobody will follow them), and the run ends `interrupted`, keeping what finished.
    async fn interrupt(mut self) {
        let cancels = self.tracks.values().filter(|t| !t.done).filter_map(|t| {
            let (client, job_id) = (t.client.clone(), t.job_id.clone()?);
            Some(async move {
                if let Err(e) = client.cancel_job(&job_id).await {
                    tracing::warn!(job_id, "cannot cancel job at shutdown: {e}");
                }
            })
        });
        let all = futures_util::future::join_all(cancels);
        if tokio::time::timeout(Duration::from_secs(3), all).await.is_err() {
            tracing::warn!(run_id = %self.run_id, "agents did not confirm cancellation in time");
        }
        let (mut meta, outcomes) = {
            let live = lock(&self.live);
            (live.meta.clone(), live.outcomes.clone())
        };
        let reason = "central shut down while the run was running";
        match super::finish::interrupt_run(&self.store, &self.hub, &mut self.log, &mut meta, &outcomes, reason) {
            Ok(_) => lock(&self.live).meta = meta,
            Err(e) => tracing::error!(run_id = %self.run_id, "cannot mark the run interrupted: {e}"),
        }
        (self.on_done)();
    }

    fn finish(mut self) {
        let (mut meta, outcomes) = {
            let live = lock(&self.live);
            (live.meta.clone(), live.outcomes.clone())
        };
        match super::finish::finish_run(&self.store, &self.hub, &mut self.log, &mut meta, &outcomes) {
            Ok(_) => lock(&self.live).meta = meta,
            Err(e) => tracing::error!(run_id = %self.run_id, "cannot write the run's final files: {e}"),
        }
        (self.on_done)();
    }
}
