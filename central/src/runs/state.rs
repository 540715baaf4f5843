//! The run state machine, without I/O: inputs in (an event offered, a backfill or probe result, a
//! dispatch result, a tick, a lost connection, a cancel), actions out (record a line, fetch
//! missed events, probe or cancel a job, finish). [`super::task`] executes the actions; these
//! unit tests drive the machine through event sequences with made-up instants.
//!
//! Per machine it keeps the agent's events in `seq` order without duplicates: an event ahead of a
//! gap waits while the gap is fetched (`GET /jobs/{id}/events?after_seq=`); when the agent no
//! longer has the missing events, what exists is kept in order. A machine ends `error` when its
//! deadline passes (its job is then cancelled), when its agent refused the job, or when it was
//! silent for `silence` (or its connection dropped) and the agent no longer answers for the job.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bench_shared::event::Received;
use bench_shared::feed::{CentralEvent, MachineStatus, Relayed, StoredLine};
use bench_shared::ids::{JobId, MachineId};
use bench_shared::run::MachineRunStatus;

/// What happened, as the run task saw it.
// Agent events are nearly every message: boxing them would cost an allocation per token.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Input {
    /// The agent answered `POST /jobs`: its job id, or why it refused.
    Dispatched { machine_id: MachineId, result: Result<JobId, String> },
    /// An agent event (WebSocket or backfill) for one of the run's jobs.
    Event { machine_id: MachineId, event: Received },
    /// The machine's WebSocket (re)connected: events may have been missed.
    Reconnected { machine_id: MachineId },
    /// The machine's WebSocket closed or reset: ask the agent about the job at once.
    ConnectionLost { machine_id: MachineId },
    /// The answer to a [`Action::FetchEvents`].
    Backfill { machine_id: MachineId, result: Result<Vec<Received>, String> },
    /// The answer to a [`Action::ProbeJob`]: the agent's `last_seq` for the job, or why it failed.
    Probe { machine_id: MachineId, result: Result<u64, String> },
    /// Time passed (deadlines, silence).
    Tick,
    /// The agent answered 404 for the machine's job: it no longer has it (agent restarted, or
    /// the job's log was evicted).
    JobGone { machine_id: MachineId, reason: String },
    /// Writing the run's files failed: the run cannot be kept, it ends `failed` with the reason.
    WriteFailed { reason: String },
    /// Central is shutting down.
    Cancel,
}

/// What the run task must do.
// Agent events are nearly every message: boxing them would cost an allocation per token.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Store the line in `events.ndjson`, relay it to browsers, fold it into the live run.
    Record { machine_id: MachineId, line: StoredLine },
    /// Route the job's live events to this run.
    Register { machine_id: MachineId, job_id: JobId },
    /// Stop routing the job's events here.
    Unregister { machine_id: MachineId, job_id: JobId },
    /// `GET /jobs/{id}/events?after_seq=`, answered with [`Input::Backfill`].
    FetchEvents { machine_id: MachineId, job_id: JobId, after_seq: u64 },
    /// `GET /jobs/{id}`, answered with [`Input::Probe`].
    ProbeJob { machine_id: MachineId, job_id: JobId },
    /// `DELETE /jobs/{id}` (best effort).
    CancelJob { machine_id: MachineId, job_id: JobId },
    /// Rewrite `metadata.json` (a machine's job was accepted).
    WriteMetadata,
    /// Every machine is terminal: write the final files and `run_end`.
    Finish,
    /// Central stops: the run ends `interrupted` with this reason, keeping what finished.
    Interrupt { reason: String },
    /// The run cannot be stored: end it `failed` with this reason.
    Fail { reason: String },
}

/// Central's bookkeeping for one dispatched machine.
#[derive(Debug)]
struct Track {
    job_id: Option<JobId>,
    last_seq: u64,
    /// Events that arrived ahead of a gap, by seq.
    pending: BTreeMap<u64, Received>,
    backfill_in_flight: bool,
    /// A backfill was asked for while one was in flight: run another when it returns.
    backfill_again: bool,
    probe_in_flight: bool,
    /// Why the running probe was sent (for the error message if it fails).
    probe_cause: ProbeCause,
    last_event: Instant,
    deadline: Instant,
    /// The deadline's length, for the error message.
    limit: Duration,
    done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ProbeCause {
    Silence,
    ConnectionLost,
}

/// One run's state. Time comes in with every call (`now`), so tests control it.
#[derive(Debug)]
pub struct RunState {
    run_id: String,
    silence: Duration,
    tracks: BTreeMap<MachineId, Track>,
    /// `Finish`, `Interrupt` or `Fail` was emitted: nothing more happens.
    ended: bool,
    /// Resumed after a central restart: a job the agent no longer has ends `interrupted`.
    resumed: bool,
}

impl RunState {
    pub fn new(run_id: impl Into<String>, silence: Duration) -> Self {
        RunState { run_id: run_id.into(), silence, tracks: BTreeMap::new(), ended: false, resumed: false }
    }

    /// A run a previous central left `running`, picked up again: `jobs` are the machines whose
    /// jobs were accepted and had not ended, with the last `seq` stored for each. The returned
    /// actions route their events here again and fetch what the agents emitted meanwhile; a
    /// job its agent no longer has ends `interrupted`, the others finish normally.
    pub fn resume(
        run_id: impl Into<String>,
        silence: Duration,
        jobs: &[(MachineId, JobId, u64)],
        now: Instant,
        limit: Duration,
    ) -> (RunState, Vec<Action>) {
        let mut state = RunState::new(run_id, silence);
        state.resumed = true;
        let mut out = Vec::new();
        for (machine_id, job_id, last_seq) in jobs {
            state.track(machine_id, now, limit);
            let t = state.tracks.get_mut(machine_id).expect("just tracked");
            t.job_id = Some(job_id.clone());
            t.last_seq = *last_seq;
            out.push(Action::Register { machine_id: machine_id.clone(), job_id: job_id.clone() });
            state.request_backfill(machine_id, &mut out);
        }
        (state, out)
    }

    /// Adds a machine the job is being posted to; `limit` is its deadline from `now`.
    pub fn track(&mut self, machine_id: &MachineId, now: Instant, limit: Duration) {
        self.tracks.insert(
            machine_id.to_owned(),
            Track {
                job_id: None,
                last_seq: 0,
                pending: BTreeMap::new(),
                backfill_in_flight: false,
                backfill_again: false,
                probe_in_flight: false,
                probe_cause: ProbeCause::Silence,
                last_event: now,
                deadline: now + limit,
                limit,
                done: false,
            },
        );
    }

    /// How often the task should send [`Input::Tick`].
    pub fn tick_period(&self) -> Duration {
        (self.silence / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
    }

    /// True once the run has ended (after `Finish`, `Interrupt` or `Fail`).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The machine's highest stored `seq` (tests, diagnostics).
    pub fn last_seq(&self, machine_id: &MachineId) -> Option<u64> {
        self.tracks.get(machine_id).map(|t| t.last_seq)
    }

    /// Takes one input; returns what to do, in order.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        match input {
            Input::Dispatched { machine_id, result } => match result {
                Ok(job_id) => self.dispatched(&machine_id, job_id, now, &mut out),
                Err(e) => self.set_status(
                    &machine_id,
                    MachineRunStatus::Error,
                    Some(format!("job not accepted: {e}")),
                    &mut out,
                ),
            },
            Input::Event { machine_id, event } => self.offer(&machine_id, event, now, &mut out),
            Input::Reconnected { machine_id } => {
                if self.tracks.get(&machine_id).is_some_and(|t| !t.done && t.job_id.is_some()) {
                    self.request_backfill(&machine_id, &mut out);
                }
            }
            Input::ConnectionLost { machine_id } => self.probe(&machine_id, ProbeCause::ConnectionLost, &mut out),
            Input::Backfill { machine_id, result } => self.backfilled(&machine_id, result, now, &mut out),
            Input::Probe { machine_id, result } => self.probed(&machine_id, result, now, &mut out),
            Input::Tick => self.watchdog(now, &mut out),
            Input::JobGone { machine_id, reason } => {
                if let Some(t) = self.tracks.get_mut(&machine_id) {
                    t.backfill_in_flight = false;
                    t.probe_in_flight = false;
                }
                let status = if self.resumed { MachineRunStatus::Interrupted } else { MachineRunStatus::Error };
                let reason = if self.resumed {
                    format!("central stopped while the run was running, and the agent no longer has the job ({reason})")
                } else {
                    format!("agent lost the job: {reason}")
                };
                self.set_status(&machine_id, status, Some(reason), &mut out);
            }
            Input::WriteFailed { reason } => {
                self.cancel_running(&mut out);
                self.ended = true;
                out.push(Action::Fail { reason });
                return out;
            }
            Input::Cancel => {
                self.cancel_running(&mut out);
                self.ended = true;
                out.push(Action::Interrupt { reason: "central shut down while the run was running".into() });
                return out;
            }
        }
        if self.tracks.values().all(|t| t.done) {
            self.ended = true;
            out.push(Action::Finish);
        }
        out
    }

    /// Cancels the jobs still running and takes them off the router: the run ends now, and a
    /// route left behind would keep the ended run's mailbox alive for as long as central runs.
    fn cancel_running(&mut self, out: &mut Vec<Action>) {
        for (machine_id, t) in self.tracks.iter().filter(|(_, t)| !t.done) {
            if let Some(job_id) = &t.job_id {
                out.push(Action::CancelJob { machine_id: machine_id.clone(), job_id: job_id.clone() });
                out.push(Action::Unregister { machine_id: machine_id.clone(), job_id: job_id.clone() });
            }
        }
    }

    fn dispatched(&mut self, machine_id: &MachineId, job_id: JobId, now: Instant, out: &mut Vec<Action>) {
        let Some(t) = self.tracks.get_mut(machine_id) else { return };
        if t.done {
            return;
        }
        t.job_id = Some(job_id.clone());
        t.last_event = now;
        out.push(Action::Register { machine_id: machine_id.to_owned(), job_id: job_id.clone() });
        let line = self.status_line(machine_id, MachineRunStatus::Running, None, Some(job_id));
        out.push(Action::Record { machine_id: machine_id.to_owned(), line });
        out.push(Action::WriteMetadata);
        // Events emitted before the job was registered were dropped by the router: fetch them.
        self.request_backfill(machine_id, out);
    }

    /// Takes one agent event in `seq` order: duplicates are dropped, events ahead of a gap wait
    /// while the gap is fetched.
    fn offer(&mut self, machine_id: &MachineId, event: Received, now: Instant, out: &mut Vec<Action>) {
        let Some(t) = self.tracks.get_mut(machine_id) else { return };
        let seq = event.env.seq;
        if t.done || t.job_id.as_ref().map(JobId::as_str) != Some(event.env.job_id.as_str()) {
            return;
        }
        if seq != 0 && seq <= t.last_seq {
            return;
        }
        if seq != 0 && seq > t.last_seq + 1 {
            t.pending.insert(seq, event);
            self.request_backfill(machine_id, out);
            return;
        }
        self.accept(machine_id, event, now, out);
        self.drain_pending(machine_id, false, now, out);
    }

    /// Accepts waiting events that are next in line (all of them with `force`, gap or not).
    fn drain_pending(&mut self, machine_id: &MachineId, force: bool, now: Instant, out: &mut Vec<Action>) {
        loop {
            let Some(t) = self.tracks.get_mut(machine_id) else { return };
            let next = match t.pending.first_key_value() {
                Some((&seq, _)) if seq <= t.last_seq => {
                    t.pending.remove(&seq);
                    continue;
                }
                Some((&seq, _)) if force || seq == t.last_seq + 1 => t.pending.remove(&seq),
                _ => None,
            };
            match next {
                Some(event) if !t.done => self.accept(machine_id, event, now, out),
                _ => return,
            }
        }
    }

    fn accept(&mut self, machine_id: &MachineId, mut event: Received, now: Instant, out: &mut Vec<Action>) {
        let terminal = event.is_terminal();
        if let Some(t) = self.tracks.get_mut(machine_id) {
            t.last_seq = t.last_seq.max(event.env.seq);
            t.last_event = now;
        }
        // Stored under central's id of the machine (the agent may call itself otherwise).
        event.env.machine_id = machine_id.to_string();
        let line = StoredLine::Agent(Relayed { run_id: self.run_id.clone(), received: event });
        out.push(Action::Record { machine_id: machine_id.to_owned(), line });
        if terminal {
            self.mark_done(machine_id, out);
        }
    }

    fn mark_done(&mut self, machine_id: &MachineId, out: &mut Vec<Action>) {
        let Some(t) = self.tracks.get_mut(machine_id) else { return };
        t.done = true;
        t.pending.clear();
        if let Some(job_id) = &t.job_id {
            out.push(Action::Unregister { machine_id: machine_id.to_owned(), job_id: job_id.clone() });
        }
    }

    /// Central's own status change for a machine (error, timeout), as a `machine_status` line.
    fn set_status(
        &mut self,
        machine_id: &MachineId,
        status: MachineRunStatus,
        reason: Option<String>,
        out: &mut Vec<Action>,
    ) {
        let Some(t) = self.tracks.get(machine_id) else { return };
        if t.done {
            return;
        }
        let line = self.status_line(machine_id, status, reason, t.job_id.clone());
        out.push(Action::Record { machine_id: machine_id.to_owned(), line });
        if status.is_terminal() {
            self.mark_done(machine_id, out);
        }
    }

    /// Central's `machine_status` line for a machine of this run.
    fn status_line(
        &self,
        machine_id: &MachineId,
        status: MachineRunStatus,
        reason: Option<String>,
        job_id: Option<JobId>,
    ) -> StoredLine {
        StoredLine::Central(CentralEvent::MachineStatus(MachineStatus {
            run_id: self.run_id.clone(),
            machine_id: machine_id.to_string(),
            status,
            reason,
            job_id: job_id.map(JobId::into_string),
        }))
    }

    fn request_backfill(&mut self, machine_id: &MachineId, out: &mut Vec<Action>) {
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
        out.push(Action::FetchEvents { machine_id: machine_id.to_owned(), job_id, after_seq: t.last_seq });
    }

    fn backfilled(
        &mut self,
        machine_id: &MachineId,
        result: Result<Vec<Received>, String>,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let Some(t) = self.tracks.get_mut(machine_id) else { return };
        t.backfill_in_flight = false;
        let again = std::mem::take(&mut t.backfill_again);
        let before = t.last_seq;
        match result {
            Ok(events) => {
                for event in events {
                    self.offer(machine_id, event, now, out);
                }
                let Some(t) = self.tracks.get_mut(machine_id) else { return };
                if t.done {
                    return;
                }
                if !t.pending.is_empty() && t.last_seq == before && !again {
                    // The agent no longer has the missing events: keep what exists, in order.
                    tracing::warn!(run_id = %self.run_id, %machine_id, after_seq = before, "events lost on the agent; continuing after the gap");
                    self.drain_pending(machine_id, true, now, out);
                } else if again || !t.pending.is_empty() {
                    self.request_backfill(machine_id, out);
                }
            }
            Err(e) => {
                tracing::warn!(run_id = %self.run_id, %machine_id, "cannot fetch missed events: {e}");
                if again {
                    self.request_backfill(machine_id, out);
                }
            }
        }
    }

    fn probe(&mut self, machine_id: &MachineId, cause: ProbeCause, out: &mut Vec<Action>) {
        let Some(t) = self.tracks.get_mut(machine_id) else { return };
        let Some(job_id) = t.job_id.clone() else { return };
        if t.done || t.probe_in_flight {
            return;
        }
        t.probe_in_flight = true;
        t.probe_cause = cause;
        out.push(Action::ProbeJob { machine_id: machine_id.to_owned(), job_id });
    }

    fn probed(&mut self, machine_id: &MachineId, result: Result<u64, String>, now: Instant, out: &mut Vec<Action>) {
        let Some(t) = self.tracks.get_mut(machine_id) else { return };
        t.probe_in_flight = false;
        if t.done {
            return;
        }
        match result {
            Ok(_agent_last_seq) => {
                // Alive (queued behind another job, or a long prefill): fetch anything missed.
                t.last_event = now;
                self.request_backfill(machine_id, out);
            }
            Err(e) => {
                let reason = match t.probe_cause {
                    ProbeCause::Silence => format!(
                        "agent lost: no event for {:.0} s and GET /jobs/{{id}} failed: {e}",
                        self.silence.as_secs_f64()
                    ),
                    ProbeCause::ConnectionLost => {
                        format!("agent lost: its connection dropped and GET /jobs/{{id}} failed: {e}")
                    }
                };
                self.set_status(machine_id, MachineRunStatus::Error, Some(reason), out);
            }
        }
    }

    fn watchdog(&mut self, now: Instant, out: &mut Vec<Action>) {
        let mut expired = Vec::new();
        let mut silent = Vec::new();
        for (id, t) in self.tracks.iter().filter(|(_, t)| !t.done && t.job_id.is_some()) {
            if now >= t.deadline {
                expired.push((id.clone(), t.limit, t.job_id.clone()));
            } else if now.duration_since(t.last_event) >= self.silence {
                silent.push(id.clone());
            }
        }
        for id in silent {
            self.probe(&id, ProbeCause::Silence, out);
        }
        for (id, limit, job_id) in expired {
            let reason = format!("timed out: no result within {:.0} s", limit.as_secs_f64());
            self.set_status(&id, MachineRunStatus::Error, Some(reason), out);
            if let Some(job_id) = job_id {
                out.push(Action::CancelJob { machine_id: id, job_id });
            }
        }
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
