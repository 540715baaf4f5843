//! Which run owns which agent job.
//!
//! The fleet receives every event an agent emits; this table sends each one to the task of the
//! run that posted the job. Events of jobs nobody registered (another central, a `curl` user) are
//! dropped here; a run's task fetches anything it missed from the agent itself.

use std::collections::HashMap;
use std::sync::Mutex;

use bench_shared::event::Received;
use bench_shared::ids::{JobId, MachineId};
use tokio::sync::mpsc;

use crate::agent_client::AgentError;

/// Messages a run's task receives.
// Agent events are nearly every message: boxing them would cost an allocation per token.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum RunMsg {
    /// An event from the agent's WebSocket (or a backfill), for one of the run's jobs.
    Event { machine_id: MachineId, event: Received },
    /// The fleet (re)connected to the machine's WebSocket: events may have been missed.
    Reconnected { machine_id: MachineId },
    /// The machine's WebSocket closed, reset or stopped answering pings: the run asks the agent
    /// about its job at once.
    ConnectionLost { machine_id: MachineId },
    /// The run's writer could not write its files (the reason names the error and the file).
    WriteFailed { reason: String },
    /// The result of `GET /jobs/{id}/events?after_seq=`.
    Backfill { machine_id: MachineId, result: Result<Vec<Received>, AgentError> },
    /// The result of probing a silent machine with `GET /jobs/{id}`.
    Probe { machine_id: MachineId, result: Result<Box<bench_shared::api::JobView>, AgentError> },
    /// The result of posting the job to the machine's agent.
    Dispatched { machine_id: MachineId, result: Result<JobId, AgentError> },
}

/// `(machine_id, job_id)` → the owning run's mailbox.
#[derive(Debug, Default)]
pub struct JobRouter {
    routes: Mutex<HashMap<MachineId, HashMap<JobId, mpsc::UnboundedSender<RunMsg>>>>,
}

type Routes = HashMap<MachineId, HashMap<JobId, mpsc::UnboundedSender<RunMsg>>>;

impl JobRouter {
    pub fn register(&self, machine_id: &MachineId, job_id: &JobId, tx: mpsc::UnboundedSender<RunMsg>) {
        self.lock().entry(machine_id.clone()).or_default().insert(job_id.clone(), tx);
    }

    pub fn unregister(&self, machine_id: &MachineId, job_id: &JobId) {
        let mut routes = self.lock();
        if let Some(jobs) = routes.get_mut(machine_id) {
            jobs.remove(job_id);
            if jobs.is_empty() {
                routes.remove(machine_id);
            }
        }
    }

    /// Delivers an event to the run owning its job; returns false when no run owns it.
    pub fn route(&self, machine_id: &MachineId, event: Received) -> bool {
        let tx = self.lock().get(machine_id).and_then(|jobs| jobs.get(event.env.job_id.as_str())).cloned();
        match tx {
            Some(tx) => tx.send(RunMsg::Event { machine_id: machine_id.clone(), event }).is_ok(),
            None => false,
        }
    }

    /// Tells every run with a job on `machine_id` that the machine's WebSocket (re)connected.
    pub fn reconnected(&self, machine_id: &MachineId) {
        for tx in self.senders(machine_id) {
            // A run that just finished has dropped its receiver: nothing left to recover.
            let _ = tx.send(RunMsg::Reconnected { machine_id: machine_id.clone() });
        }
    }

    /// Tells every run with a job on `machine_id` that the machine's WebSocket was lost.
    pub fn connection_lost(&self, machine_id: &MachineId) {
        for tx in self.senders(machine_id) {
            let _ = tx.send(RunMsg::ConnectionLost { machine_id: machine_id.clone() });
        }
    }

    fn senders(&self, machine_id: &MachineId) -> Vec<mpsc::UnboundedSender<RunMsg>> {
        self.lock().get(machine_id).map(|jobs| jobs.values().cloned().collect()).unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Routes> {
        bench_shared::sync::lock(&self.routes)
    }
}
