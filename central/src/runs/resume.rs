//! Runs a previous central left `running` (it was killed or crashed mid-run) are picked up again
//! at start-up: every machine whose job had been accepted and had not ended is followed again,
//! the agent's events after the last stored `seq` are fetched, and the run finishes normally.
//! A machine ends `interrupted` only when its agent no longer has the job (or its job was never
//! known); a run with no machine left to follow is marked `interrupted` at once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bench_shared::feed::{CentralEvent, MachineStatus, StoredLine};
use bench_shared::ids::JobId;
use bench_shared::run::{MachineRunStatus, RunStatus};

use super::state::RunState;
use super::summary::{self, Outcome};
use super::task::LiveRun;
use super::{RunManager, deadline, finish};
use crate::hub::Hub;
use crate::store::{StoreError, now_s};

/// The least time a resumed machine gets to report, whatever its original deadline said.
const RESUME_GRACE: Duration = Duration::from_secs(60);

impl RunManager {
    /// Resumes (or, with nothing to follow, interrupts) every run left `running`. Returns the
    /// ids of the runs resumed. Call once at start-up, before serving.
    pub fn resume_left_running(&self) -> Result<Vec<String>, StoreError> {
        let mut resumed = Vec::new();
        for id in self.store.run_ids()? {
            let Ok(mut meta) = self.store.metadata(&id) else { continue };
            if meta.status != RunStatus::Running {
                continue;
            }
            let mut outcomes = summary::outcomes_from_events(&self.store.events(&id)?);
            let mut log = self.store.event_log(&id)?;
            let mut jobs = Vec::new();
            let mut clients = HashMap::new();
            for m in &mut meta.machines {
                let o = outcomes.get(&m.machine_id).cloned().unwrap_or_default();
                if o.is_terminal() {
                    m.status = o.status.unwrap_or(m.status);
                    m.reason = o.reason.clone();
                    m.job_id = o.job_id.clone().or(m.job_id.take());
                    continue;
                }
                if m.status.is_terminal() {
                    continue;
                }
                let job_id = o.job_id.clone().or(m.job_id.clone());
                match (job_id, self.fleet.get(&m.machine_id)) {
                    (Some(job_id), Some(machine)) => {
                        m.status = MachineRunStatus::Running;
                        m.job_id = Some(job_id.clone());
                        clients.insert(machine.id.clone(), machine.client.clone());
                        jobs.push((machine.id.clone(), JobId::from(job_id), o.last_seq));
                    }
                    (job_id, machine) => {
                        let why = if machine.is_none() {
                            "the machine is no longer configured"
                        } else {
                            "its job was never accepted"
                        };
                        let reason = format!("central stopped while the run was running and {why}");
                        let line = StoredLine::Central(CentralEvent::MachineStatus(MachineStatus {
                            run_id: id.clone(),
                            machine_id: m.machine_id.clone(),
                            status: MachineRunStatus::Interrupted,
                            reason: Some(reason.clone()),
                            job_id,
                        }));
                        log.append(&line.line().text)?;
                        let mut finished = 0;
                        summary::apply(&mut outcomes, &mut finished, &line);
                        m.status = MachineRunStatus::Interrupted;
                        m.reason = Some(reason);
                    }
                }
            }
            if jobs.is_empty() {
                let reason = "central stopped while the run was running";
                finish::interrupt_run(&self.store, &Hub::new(16), &mut log, &mut meta, &outcomes, reason)?;
                tracing::warn!(run_id = %id, "run left running by a previous central: nothing to follow, marked interrupted");
                continue;
            }
            let spent = Duration::from_secs_f64((now_s() - meta.started_at_s).max(0.0));
            let limit = deadline(&meta.spec, &self.settings).saturating_sub(spent).max(RESUME_GRACE);
            let (state, initial) = RunState::resume(id.clone(), self.settings.silence, &jobs, Instant::now(), limit);
            self.store.write_metadata(&meta)?;
            tracing::warn!(run_id = %id, machines = jobs.len(), "run left running by a previous central: resuming");
            let finished = outcomes.values().filter(|o: &&Outcome| o.is_terminal()).count() as u32;
            self.launch(LiveRun { meta, outcomes, finished }, log, state, initial, clients);
            resumed.push(id);
        }
        Ok(resumed)
    }
}
