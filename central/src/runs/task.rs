//! The task that owns one running run: it feeds what happens (agent events, answers to its HTTP
//! calls, ticks, shutdown) into the run's [`RunState`] and executes the actions that come out:
//! lines to the run's [`RunWriter`] and to browsers, HTTP calls to agents, the final files.
//! All decisions live in [`RunState`]; this file only does I/O.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bench_shared::event::{Decoded, Event};
use bench_shared::feed::StoredLine;
use bench_shared::ids::MachineId;
use bench_shared::run::{RunMetadata, RunStatus};
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::state::{Action, Input, RunState};
use super::summary::{self, Outcome};
use super::writer::RunWriter;
use crate::agent_client::AgentClient;
use crate::hub::Hub;
use crate::routing::{JobRouter, RunMsg};
use crate::store::Store;

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
    bench_shared::sync::lock(run)
}

/// How long shutdown waits for agents to confirm cancelled jobs.
const CANCEL_GRACE: Duration = Duration::from_secs(3);

/// Everything a run task needs besides its state machine.
pub struct RunTask {
    pub run_id: String,
    pub live: SharedRun,
    pub store: Store,
    pub writer: RunWriter,
    pub hub: Hub,
    pub router: Arc<JobRouter>,
    pub tx: mpsc::UnboundedSender<RunMsg>,
    pub rx: mpsc::UnboundedReceiver<RunMsg>,
    pub cancel: CancellationToken,
    /// The agent client of every dispatched machine.
    pub clients: HashMap<MachineId, AgentClient>,
    pub state: RunState,
    /// Called once the run's files are final (removes it from the manager's live table).
    pub on_done: Box<dyn FnOnce() + Send + Sync>,
    /// Images being fetched from the agents: the run ends once they are stored (or failed).
    pub image_fetches: Vec<tokio::task::JoinHandle<()>>,
}

/// Longest the end of a run waits for its images to be stored.
const IMAGE_FETCH_GRACE: Duration = Duration::from_secs(30);

impl RunTask {
    /// Executes `initial` (a resumed run's first fetches), then follows the run to its end.
    pub async fn run(mut self, initial: Vec<Action>) {
        self.execute(initial).await;
        let mut tick = tokio::time::interval(self.state.tick_period());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut cancelled = false;
        while !self.state.ended() {
            let input = tokio::select! {
                _ = self.cancel.cancelled(), if !cancelled => {
                    cancelled = true;
                    Input::Cancel
                }
                Some(msg) = self.rx.recv() => input_of(msg),
                _ = tick.tick() => Input::Tick,
            };
            let actions = self.state.handle(input, Instant::now());
            self.execute(actions).await;
        }
        (self.on_done)();
    }

    async fn execute(&mut self, actions: Vec<Action>) {
        let mut cancels: Vec<BoxFuture<'static, ()>> = Vec::new();
        for action in actions {
            match action {
                Action::Record { machine_id, line } => self.record(&machine_id, line),
                Action::Register { machine_id, job_id } => self.router.register(&machine_id, &job_id, self.tx.clone()),
                Action::Unregister { machine_id, job_id } => self.router.unregister(&machine_id, &job_id),
                Action::FetchEvents { machine_id, job_id, after_seq } => {
                    let (client, tx) = (self.client(&machine_id), self.tx.clone());
                    tokio::spawn(async move {
                        let result = client.job_events(job_id.as_str(), after_seq).await;
                        // The run may have finished meanwhile; then nobody needs the answer.
                        let _ = tx.send(RunMsg::Backfill { machine_id, result });
                    });
                }
                Action::ProbeJob { machine_id, job_id } => {
                    let (client, tx) = (self.client(&machine_id), self.tx.clone());
                    tokio::spawn(async move {
                        let result = client.job(job_id.as_str()).await.map(Box::new);
                        let _ = tx.send(RunMsg::Probe { machine_id, result });
                    });
                }
                Action::CancelJob { machine_id, job_id } => {
                    let client = self.client(&machine_id);
                    cancels.push(Box::pin(async move {
                        if let Err(e) = client.cancel_job(job_id.as_str()).await {
                            tracing::warn!(%machine_id, %job_id, "cannot cancel job: {e}");
                        }
                    }));
                }
                Action::WriteMetadata => {
                    let (store, meta) = (self.store.clone(), lock(&self.live).meta.clone());
                    self.writer.submit(move |_| {
                        if let Err(e) = store.write_metadata(&meta) {
                            tracing::error!(run_id = %meta.run_id, "cannot update metadata: {e}");
                        }
                    });
                }
                Action::Finish => self.finish(End::Finished).await,
                Action::Interrupt { reason } => {
                    await_cancels(std::mem::take(&mut cancels), &self.run_id).await;
                    self.finish(End::Interrupted(reason)).await;
                }
                Action::Fail { reason } => {
                    await_cancels(std::mem::take(&mut cancels), &self.run_id).await;
                    self.finish(End::Failed(reason)).await;
                }
            }
        }
        // Cancels during the run (a missed deadline) need no wait.
        for c in cancels {
            tokio::spawn(c);
        }
    }

    fn client(&self, machine_id: &MachineId) -> AgentClient {
        self.clients.get(machine_id).cloned().expect("actions only name dispatched machines")
    }

    /// Fetches the images of an `image_complete` from the agent and stores them under the run's
    /// `images/` folder, each checked against the SHA-256 the agent reported (a mismatch is
    /// logged and the file not kept).
    fn store_images(&mut self, machine_id: &MachineId, done: &bench_shared::workload::image::ImageComplete) {
        let client = self.client(machine_id);
        let (store, run_id, machine_id) = (self.store.clone(), self.run_id.clone(), machine_id.to_string());
        let images: Vec<(String, String, String)> = done
            .images
            .iter()
            .enumerate()
            .map(|(i, img)| {
                let name = summary::stored_image_name(&machine_id, done.repeat_index, i, &img.content_type);
                (img.image_id.clone(), img.sha256.clone(), name)
            })
            .collect();
        self.image_fetches.retain(|h| !h.is_finished());
        self.image_fetches.push(tokio::spawn(async move {
            for (image_id, sha256, name) in images {
                let bytes = match client.image(&image_id).await {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!(run_id, machine_id, image_id, "cannot fetch the image: {e}");
                        continue;
                    }
                };
                let got = bench_shared::workload::sha256_hex(&bytes);
                if got != sha256 {
                    tracing::warn!(
                        run_id,
                        machine_id,
                        image_id,
                        expected = sha256,
                        got,
                        "image hash mismatch: not kept"
                    );
                    continue;
                }
                let store = store.clone();
                let (run, n) = (run_id.clone(), name.clone());
                match tokio::task::spawn_blocking(move || store.write_image(&run, &n, &bytes)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(run_id, name, "cannot store the image: {e}"),
                    Err(e) => tracing::warn!(run_id, name, "image writer failed: {e}"),
                }
            }
        }));
    }

    /// Stores, relays and folds one line.
    fn record(&mut self, machine_id: &MachineId, line: StoredLine) {
        if let StoredLine::Agent(r) = &line
            && let Decoded::Known(Event::ImageComplete(done)) = &r.received.event
        {
            self.store_images(machine_id, done);
        }
        let feed = line.line();
        self.writer.append(feed.text.to_string());
        // Per-request rows (`load_requests`, up to hundreds a second) are stored, not relayed:
        // no page draws them live, and they would crowd the browsers' sockets.
        if feed.kind.as_ref() != "load_requests" {
            self.hub.publish(feed);
        }
        let mut live = lock(&self.live);
        let LiveRun { meta, outcomes, finished } = &mut *live;
        summary::apply(outcomes, finished, &line);
        let o = outcomes.get(machine_id.as_str()).cloned().unwrap_or_default();
        if let StoredLine::Agent(r) = &line
            && matches!(r.received.event, Decoded::Known(Event::JobStarted(_)))
            && let (Some(clock), Some(at)) = (meta.clock.as_mut(), o.started_at_s)
        {
            clock.record_start(machine_id.as_str(), at);
        }
        if let Some(rec) = meta.machines.iter_mut().find(|m| m.machine_id == machine_id.as_str()) {
            if let Some(s) = o.status {
                rec.status = s;
                rec.reason = o.reason.clone();
            }
            if o.job_id.is_some() {
                rec.job_id = o.job_id.clone();
            }
        }
    }

    /// Writes the run's final files and `run_end` on the writer thread, after every event line.
    async fn finish(&mut self, end: End) {
        // The stored images belong to the run's files: let their fetches end first (bounded).
        let fetches = std::mem::take(&mut self.image_fetches);
        if tokio::time::timeout(IMAGE_FETCH_GRACE, futures_util::future::join_all(fetches)).await.is_err() {
            tracing::warn!(run_id = %self.run_id, "images still being fetched after {IMAGE_FETCH_GRACE:?}: the run ends without them");
        }
        let (mut meta, outcomes) = {
            let live = lock(&self.live);
            (live.meta.clone(), live.outcomes.clone())
        };
        let (store, hub, run_id) = (self.store.clone(), self.hub.clone(), self.run_id.clone());
        let kept = outcomes.clone();
        let failure = match &end {
            End::Failed(reason) => Some(reason.clone()),
            _ => None,
        };
        let result = self
            .writer
            .call(move |log| {
                let written = match &end {
                    End::Finished => super::finish::finish_run(&store, &hub, log, &mut meta, &outcomes),
                    End::Interrupted(reason) => {
                        super::finish::interrupt_run(&store, &hub, log, &mut meta, &outcomes, reason)
                    }
                    End::Failed(reason) => super::finish::fail_run(&store, &hub, log, &mut meta, &outcomes, reason),
                };
                (written.map(|_| ()), meta)
            })
            .await;
        match result {
            Some((Ok(()), meta)) => lock(&self.live).meta = meta,
            Some((Err(e), mut meta)) => {
                // The final files could not be written: say so to everyone watching.
                let why = super::writer::describe(&e);
                tracing::error!(run_id, "cannot write the run's final files: {why}");
                meta.status = RunStatus::Failed;
                meta.reason = Some(match failure {
                    Some(first) => format!("{first}; the final files could not be written either ({why})"),
                    None => format!("the run's final files could not be written: {why}"),
                });
                super::finish::publish_run_end(&self.hub, &meta, None);
                lock(&self.live).meta = meta.clone();
                self.persist_when_possible(meta, kept).await;
            }
            None => tracing::error!(run_id, "run writer stopped before the run's final files"),
        }
    }
}

impl RunTask {
    /// The final files could not be written: retries `summary.json` and `metadata.json` until
    /// space comes back (or central stops), so the history does not keep saying `running`.
    /// Meanwhile the run stays in the live table, which the API reads.
    async fn persist_when_possible(&self, meta: RunMetadata, outcomes: HashMap<String, Outcome>) {
        for _ in 0..FINAL_WRITE_TRIES {
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tokio::time::sleep(FINAL_WRITE_RETRY) => {}
            }
            let (store, m, o) = (self.store.clone(), meta.clone(), outcomes.clone());
            let written = self
                .writer
                .call(move |_| {
                    let summary = summary::build(&m, &o);
                    store.write_summary(&summary).and_then(|()| store.write_metadata(&m))
                })
                .await;
            if let Some(Ok(())) = written {
                tracing::info!(run_id = %self.run_id, "the failed run's final files are written now");
                return;
            }
        }
        tracing::error!(run_id = %self.run_id, "gave up writing the failed run's final files");
    }
}

/// Between attempts to write a failed run's final files.
const FINAL_WRITE_RETRY: Duration = Duration::from_secs(5);
/// Attempts (one hour at [`FINAL_WRITE_RETRY`]).
const FINAL_WRITE_TRIES: u32 = 720;

/// How a run ends.
enum End {
    Finished,
    Interrupted(String),
    Failed(String),
}

async fn await_cancels(cancels: Vec<BoxFuture<'static, ()>>, run_id: &str) {
    if tokio::time::timeout(CANCEL_GRACE, futures_util::future::join_all(cancels)).await.is_err() {
        tracing::warn!(run_id, "agents did not confirm cancellation in time");
    }
}

/// The state machine's input for a mailbox message.
fn input_of(msg: RunMsg) -> Input {
    match msg {
        RunMsg::Event { machine_id, event } => Input::Event { machine_id, event },
        RunMsg::Reconnected { machine_id } => Input::Reconnected { machine_id },
        RunMsg::ConnectionLost { machine_id } => Input::ConnectionLost { machine_id },
        // 404 for the job: the agent no longer has it.
        RunMsg::Backfill { machine_id, result: Err(e) } | RunMsg::Probe { machine_id, result: Err(e) }
            if e.is_not_found() =>
        {
            Input::JobGone { machine_id, reason: e.to_string() }
        }
        RunMsg::Backfill { machine_id, result } => {
            Input::Backfill { machine_id, result: result.map_err(|e| e.to_string()) }
        }
        RunMsg::Probe { machine_id, result } => {
            Input::Probe { machine_id, result: result.map(|view| view.last_seq).map_err(|e| e.to_string()) }
        }
        RunMsg::Dispatched { machine_id, result } => {
            Input::Dispatched { machine_id, result: result.map_err(|e| e.to_string()) }
        }
        RunMsg::WriteFailed { reason } => Input::WriteFailed { reason },
    }
}
