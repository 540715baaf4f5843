//! The plan of a run, without I/O: from what central knows of each chosen machine (its view),
//! the job, the clock offsets it measured and the time, decide who runs, who is skipped and why,
//! and the instant each machine is told to start, on its own clock.
//!
//! [`super::RunManager::create`] only performs I/O around it: it refreshes the views of machines
//! that look unable, measures the clocks of the able ones, calls [`plan`], persists the result and
//! posts the job.

use std::collections::HashMap;
use std::time::Duration;

use bench_shared::clock::RunClock;
use bench_shared::engine::{ModelInfo, same_model};
use bench_shared::job::JobSpec;
use bench_shared::run::{MachineRecord, MachineRunStatus, MachineState, MachineView};

use crate::clock::Estimate;

/// Who runs a job and when.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    /// The common start instant on central's clock, epoch ms.
    pub start_at_ms: u64,
    /// Every chosen machine in order: `pending` when it runs the job, `skipped` with the reason.
    pub machines: Vec<MachineRecord>,
    /// Each runner's measured offset (or why none) and the `start_at` it gets on its own clock.
    pub clock: RunClock,
}

impl RunPlan {
    /// The machines that run the job.
    pub fn runners(&self) -> impl Iterator<Item = &MachineRecord> {
        self.machines.iter().filter(|m| m.status == MachineRunStatus::Pending)
    }

    /// The `start_at` a runner is sent: the common instant on its own clock.
    pub fn agent_start_at_ms(&self, machine_id: &str) -> Option<u64> {
        self.clock.machines.get(machine_id).map(|c| c.agent_start_at_ms)
    }

    /// Why nobody runs the job (`None` when someone does): every machine's reason.
    pub fn nobody_reason(&self) -> Option<String> {
        if self.runners().next().is_some() {
            return None;
        }
        let reasons: Vec<String> = self
            .machines
            .iter()
            .map(|m| format!("{}: {}", m.machine_id, m.reason.as_deref().unwrap_or("not available")))
            .collect();
        Some(if reasons.is_empty() { "no machine selected".to_owned() } else { reasons.join("; ") })
    }
}

/// Plans a run: `views` are the chosen machines, `offsets` the clock estimates measured for the
/// able ones (a runner without one starts uncorrected, with the reason recorded), `now_ms` the
/// current time on central's clock and `lead` how far ahead of it the common start lies.
pub fn plan(
    views: &[MachineView],
    spec: &JobSpec,
    offsets: &HashMap<String, Result<Estimate, String>>,
    now_ms: u64,
    lead: Duration,
) -> RunPlan {
    let start_at_ms = now_ms + lead.as_millis() as u64;
    let machines: Vec<MachineRecord> = views.iter().map(|v| preflight(v, spec)).collect();
    let clock = RunClock {
        start_at_ms,
        machines: machines
            .iter()
            .filter(|r| r.status == MachineRunStatus::Pending)
            .map(|r| {
                let measured = offsets.get(&r.machine_id).cloned().unwrap_or_else(|| {
                    Err("clock offset not measured: the machine became able after the measurement".into())
                });
                (r.machine_id.clone(), crate::clock::machine_clock(&measured, start_at_ms))
            })
            .collect(),
        ..Default::default()
    };
    RunPlan { start_at_ms, machines, clock }
}

/// True when the machine, as central sees it now, can take the job.
pub fn able(view: &MachineView, spec: &JobSpec) -> bool {
    skip_reason(view, spec).is_none()
}

/// A machine's record at the start of a run: `pending` when it can take the job, otherwise
/// `skipped` with the reason (offline, model missing, test type not supported).
pub fn preflight(view: &MachineView, spec: &JobSpec) -> MachineRecord {
    let caps = view.capabilities.as_ref();
    let models = spec.models();
    let model_details: Vec<ModelInfo> = caps
        .map(|c| c.models.iter().filter(|m| models.iter().any(|w| same_model(&m.name, w))).cloned().collect())
        .unwrap_or_default();
    let skip = skip_reason(view, spec);
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
        protocol: view.protocol,
    }
}

/// Why the machine cannot take the job, or `None`.
fn skip_reason(view: &MachineView, spec: &JobSpec) -> Option<String> {
    let caps = view.capabilities.as_ref();
    let llm = spec.test_type().uses_llm_engine();
    let models = spec.models();
    let missing: Vec<&str> =
        models.iter().filter(|w| !view.models.iter().any(|n| same_model(n, w))).map(String::as_str).collect();
    // The engine was checked and did not answer (and the agent does not fall back to mock).
    let engine_down = view.health.as_ref().map(|h| &h.engine).filter(|e| {
        !e.reachable && e.checked_age_s.is_some() && caps.is_none_or(|c| c.engine.fallback_reason.is_none())
    });
    if view.state == MachineState::Offline {
        Some(format!("agent offline: {}", view.last_error.as_deref().unwrap_or("no answer")))
    } else if view.state == MachineState::Unauthorized {
        Some(view.last_error.clone().unwrap_or_else(|| "agent refused central's token (401)".into()))
    } else if !llm {
        caps.and_then(|c| workload_skip_reason(c, spec))
    } else if let Some(e) = engine_down {
        Some(format!("engine unreachable at {}: {}", e.base_url, e.error.as_deref().unwrap_or("no answer")))
    } else if caps.is_some_and(|c| !c.supports(spec.test_type().as_str())) {
        Some(format!("agent does not support {}", spec.test_type().as_str()))
    } else if !missing.is_empty() {
        Some(format!("model {} not available (machine has: {})", missing.join(", "), view.models.join(", ")))
    } else {
        None
    }
}

/// Why an image, speech or compute job cannot run on a machine with these capabilities: no
/// such server, the server unreachable, the checkpoint or Whisper model missing (named).
fn workload_skip_reason(caps: &bench_shared::api::Capabilities, spec: &JobSpec) -> Option<String> {
    let (what, engine, offered) = match spec {
        JobSpec::ImageGenerate(_) => ("image engine", caps.image_engine.as_ref(), &caps.sdxl_profiles),
        JobSpec::Transcribe(_) => ("speech engine", caps.speech_engine.as_ref(), &caps.whisper_models),
        JobSpec::Compute(_) => {
            return (!caps.supports("compute")).then(|| "agent does not support compute (an older agent)".to_owned());
        }
        JobSpec::LlmGenerate(_) | JobSpec::LlmSweep(_) | JobSpec::LlmLoad(_) | JobSpec::LlmCapacity(_) => return None,
    };
    let Some(engine) = engine else {
        return Some(format!("no {what} configured on this agent ({})", what.replace(' ', "_")));
    };
    if !engine.reachable {
        return Some(format!("{what} unreachable at {}", engine.base_url));
    }
    let wanted = spec.models();
    if let Some(m) = wanted.iter().find(|w| !offered.iter().any(|o| same_model(o, w)))
        && !(offered.is_empty() && engine.kind == "openai" && matches!(spec, JobSpec::ImageGenerate(_)))
    {
        let kind = if matches!(spec, JobSpec::ImageGenerate(_)) { "checkpoint" } else { "model" };
        return Some(format!("{kind} {m} not available (machine has: {})", offered.join(", ")));
    }
    if !caps.supports(spec.test_type().as_str()) {
        return Some(format!(
            "{what} at {} offers nothing to run{}",
            engine.base_url,
            engine.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
        ));
    }
    None
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
