//! Which run owns which agent job.
//!
//! The fleet receives every event an agent emits; this table sends each one to the task of the
//! run that posted the job. Events of jobs nobody registered (another central, a `curl` user) are
//! dropped here; a run's task fetches anything it missed from the agent itself.

use std::collections::HashMap;
use std::sync::Mutex;

use bench_shared::event::Received;
use tokio::sync::mpsc;

use crate::agent_client::AgentError;

/// Messages a run's task receives.
// Agent events are nearly every message: boxing them would cost an allocation per token.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum RunMsg {
    /// An event from the agent's WebSocket (or a backfill), for one of the run's jobs.
    Event { machine_id: String, event: Received },
    /// The fleet (re)connected to the machine's WebSocket: events may have been missed.
    Reconnected { machine_id: String },
    /// The machine's WebSocket closed, reset or stopped answering pings: the run asks the agent
    /// about its job at once.
    ConnectionLost { machine_id: String },
    /// The run's writer could not write its files (the reason names the error and the file).
    WriteFailed { reason: String },
    /// The result of `GET /jobs/{id}/events?after_seq=`.
    Backfill { machine_id: String, result: Result<Vec<Received>, AgentError> },
    /// The result of probing a silent machine with `GET /jobs/{id}`.
    Probe { machine_id: String, result: Result<Box<bench_shared::api::JobView>, AgentError> },
    /// The result of posting the job to the machine's agent.
    Dispatched { machine_id: String, result: Result<String, AgentError> },
}

type Key = (String, String);

/// `(machine_id, job_id)` → the owning run's mailbox.
#[derive(Debug, Default)]
pub struct JobRouter {
    routes: Mutex<HashMap<Key, mpsc::UnboundedSender<RunMsg>>>,
}

impl JobRouter {
    pub fn register(&self, machine_id: &str, job_id: &str, tx: mpsc::UnboundedSender<RunMsg>) {
        self.lock().insert((machine_id.to_owned(), job_id.to_owned()), tx);
    }

    pub fn unregister(&self, machine_id: &str, job_id: &str) {
        self.lock().remove(&(machine_id.to_owned(), job_id.to_owned()));
    }

    /// Delivers an event to the run owning its job; returns false when no run owns it.
    pub fn route(&self, machine_id: &str, event: Received) -> bool {
        let tx = self.lock().get(&(machine_id.to_owned(), event.env.job_id.clone())).cloned();
        match tx {
            Some(tx) => tx.send(RunMsg::Event { machine_id: machine_id.to_owned(), event }).is_ok(),
            None => false,
        }
    }

    /// Tells every run with a job on `machine_id` that the machine's WebSocket (re)connected.
    pub fn reconnected(&self, machine_id: &str) {
        for tx in self.senders(machine_id) {
            // A run that just finished has dropped its receiver: nothing left to recover.
            let _ = tx.send(RunMsg::Reconnected { machine_id: machine_id.to_owned() });
        }
    }

    /// Tells every run with a job on `machine_id` that the machine's WebSocket was lost.
    pub fn connection_lost(&self, machine_id: &str) {
        for tx in self.senders(machine_id) {
            let _ = tx.send(RunMsg::ConnectionLost { machine_id: machine_id.to_owned() });
        }
    }

    fn senders(&self, machine_id: &str) -> Vec<mpsc::UnboundedSender<RunMsg>> {
        self.lock().iter().filter(|((m, _), _)| m == machine_id).map(|(_, tx)| tx.clone()).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, mpsc::UnboundedSender<RunMsg>>> {
        bench_shared::sync::lock(&self.routes)
    }
}
