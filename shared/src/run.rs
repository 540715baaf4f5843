//! Persisted run types: what central writes under `results/runs/<run_id>/` and serves from
//! `/api/runs…`. The browser UI reads exactly these shapes, so they live here, framework-free.
//!
//! - `metadata.json` → [`RunMetadata`] (settings, machines, status, times).
//! - `summary.json` → [`RunSummary`] (per-machine metrics, rank, status, reason).
//! - `GET /api/runs` → a page of [`RunListEntry`].

use serde::{Deserialize, Serialize};

use crate::api::{Capabilities, ClientCeiling, Health, Protocol};
use crate::compare::capacity::CapacityComparison;
use crate::compare::{Comparison, Metric, Winner};
use crate::engine::{EngineInfo, EngineKind, ModelInfo};
use crate::event::JobDone;
use crate::hardware::Hardware;
use crate::job::{JobSpec, TestType};
use crate::metrics::{LoadSource, TokenSource};

/// Lifecycle of a run. `running` is the only non-final state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    /// Every dispatched machine finished its job.
    Complete,
    /// Some machines finished, others errored or were skipped.
    Partial,
    /// No machine finished.
    Failed,
    /// Central stopped while the run was running (found `running` at start-up).
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Complete => "complete",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// The final status of a run from its machines' outcomes.
    pub fn from_machines(statuses: &[MachineRunStatus]) -> RunStatus {
        let done = statuses.iter().filter(|s| **s == MachineRunStatus::Complete).count();
        if done == 0 {
            RunStatus::Failed
        } else if done == statuses.len() {
            RunStatus::Complete
        } else {
            RunStatus::Partial
        }
    }
}

/// Where one machine stands in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineRunStatus {
    /// Chosen; the job is being posted.
    Pending,
    /// The agent accepted the job (queued or running there).
    Running,
    /// `job_done` / `sweep_done` received.
    Complete,
    /// The agent reported `job_error`, refused the job, died or timed out (`reason` says which).
    Error,
    /// Not dispatched: offline, model missing, or not selected (`reason` says which).
    Skipped,
    /// The job was cancelled on the agent.
    Cancelled,
    /// Central stopped before the machine finished.
    Interrupted,
}

impl MachineRunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MachineRunStatus::Pending => "pending",
            MachineRunStatus::Running => "running",
            MachineRunStatus::Complete => "complete",
            MachineRunStatus::Error => "error",
            MachineRunStatus::Skipped => "skipped",
            MachineRunStatus::Cancelled => "cancelled",
            MachineRunStatus::Interrupted => "interrupted",
        }
    }

    /// True once nothing more will happen to this machine in the run.
    pub fn is_terminal(self) -> bool {
        !matches!(self, MachineRunStatus::Pending | MachineRunStatus::Running)
    }
}

/// One machine of a run as recorded in `metadata.json`: who it is, what it ran on, how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineRecord {
    pub machine_id: String,
    pub label: String,
    pub agent_base_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    pub status: MachineRunStatus,
    /// Why the machine was skipped or ended in error.
    #[serde(default)]
    pub reason: Option<String>,
    /// The agent's job id, once it accepted the job.
    #[serde(default)]
    pub job_id: Option<String>,
    /// The engine as the agent reported it at preflight.
    #[serde(default)]
    pub engine: Option<EngineInfo>,
    /// Details of the run's model(s) on this machine, where the agent gave them.
    #[serde(default)]
    pub models: Vec<ModelInfo>,
    #[serde(default)]
    pub hardware: Option<Hardware>,
    /// The agent's `/capabilities` answer at preflight (fields central does not know are kept
    /// in its `extra`, so nothing the agent said is lost).
    #[serde(default)]
    pub capabilities: Option<Capabilities>,
    /// The agent's `client_ceiling` at preflight (how fast its measuring path can go); `None`
    /// when the agent had none (still calibrating, or an older agent).
    #[serde(default)]
    pub client_ceiling: Option<ClientCeiling>,
    /// `original` for an original bench-race agent (absent: this project's agent).
    #[serde(default, skip_serializing_if = "Protocol::is_native")]
    pub protocol: Protocol,
}

/// `metadata.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMetadata {
    pub run_id: String,
    pub test_type: TestType,
    /// The run's model(s): one for `llm_generate`, the sweep's list for `llm_sweep`.
    pub models: Vec<String>,
    /// The prompt (`llm_generate` only).
    #[serde(default)]
    pub prompt: Option<String>,
    /// The validated job every machine received; its `start_at` is the common instant on
    /// central's clock (each agent got it on its own clock: see `clock`).
    pub spec: JobSpec,
    pub status: RunStatus,
    /// Why the run failed as a whole (e.g. no machine could take it).
    #[serde(default)]
    pub reason: Option<String>,
    /// RFC 3339 UTC.
    pub started_at: String,
    pub started_at_s: f64,
    #[serde(default)]
    pub ended_at: Option<String>,
    #[serde(default)]
    pub ended_at_s: Option<f64>,
    pub machines: Vec<MachineRecord>,
    /// The synchronized start: each agent's measured clock offset, the `start_at` it received on
    /// its own clock, and the skew achieved (absent in runs stored before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<crate::clock::RunClock>,
    /// Set when the run came from another central in a bundle (`POST /api/runs/import`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported: Option<crate::share::Imported>,
}

impl RunMetadata {
    /// The models as one display string (`a, b`).
    pub fn model_label(&self) -> String {
        self.models.join(", ")
    }
}

/// One machine's outcome in `summary.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineSummary {
    pub machine_id: String,
    pub label: String,
    pub status: Option<MachineRunStatus>,
    #[serde(default)]
    pub reason: Option<String>,
    /// 1 = best mean on the run's `rank_by` over warm repeats; only machines that completed
    /// with that figure are ranked. A rank is an order, not a verdict: see `comparison`.
    #[serde(default)]
    pub rank: Option<u32>,
    /// 1 = first machine to reach a terminal event.
    #[serde(default)]
    pub finish_order: Option<u32>,
    #[serde(default)]
    pub job_id: Option<String>,
    #[serde(default)]
    pub engine: Option<EngineKind>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub fallback_reason: Option<String>,
    // bench-race fields (means over the recorded repeats).
    pub ttft_ms: Option<f64>,
    pub gen_tokens: Option<u64>,
    pub gen_tokens_per_s: Option<f64>,
    pub total_ms: Option<f64>,
    // Richer metrics from `job_done`.
    #[serde(default)]
    pub ttfc_ms: Option<f64>,
    #[serde(default)]
    pub decode_tok_s: Option<f64>,
    #[serde(default)]
    pub engine_decode_tok_s: Option<f64>,
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    #[serde(default)]
    pub engine_prefill_tok_s: Option<f64>,
    #[serde(default)]
    pub client_prefill_tok_s: Option<f64>,
    #[serde(default)]
    pub load_ms: Option<f64>,
    #[serde(default)]
    pub load_source: Option<LoadSource>,
    #[serde(default)]
    pub context_length: Option<u64>,
    #[serde(default)]
    pub token_source: Option<TokenSource>,
    #[serde(default)]
    pub repeats: Option<u32>,
    /// `job_done.ceiling_ratio`: measured `decode_tok_s` ÷ the agent's client ceiling (`None`
    /// when either was unknown). At 0.5 or more the tool, not the machine, may be the limit.
    #[serde(default)]
    pub ceiling_ratio: Option<f64>,
    /// `job_done.aggregate` verbatim (mean/stdev/percentiles over repeats).
    #[serde(default)]
    pub aggregate: Option<serde_json::Value>,
    /// Agent events stored for this machine.
    #[serde(default)]
    pub events: u64,
    /// Sweep CSV files written into the run folder for this machine (`llm_sweep` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// The image, speech and compute figures (means over the repeats), absent for text runs.
    #[serde(flatten)]
    pub workload: WorkloadFigures,
}

/// A machine's figures in an image, speech or compute race, by the names the events use.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkloadFigures {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s_per_image: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps_per_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gen_time_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtfx: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wer: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_first_segment_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops_per_s: Option<f64>,
    /// The transcription (speech) of the first repeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// π(n) (compute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<u64>,
    /// The images the machine made, as stored under the run's `images/` folder.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<StoredImage>,
}

/// An image kept in `results/runs/<run_id>/images/`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredImage {
    pub repeat_index: u32,
    /// File name inside `images/`.
    pub file: String,
    pub sha256: String,
    pub size_bytes: u64,
    pub content_type: String,
}

impl WorkloadFigures {
    /// The figures of a workload's `job_done` (none for a text result).
    pub fn of(r: &crate::event::JobResult) -> WorkloadFigures {
        use crate::event::JobResult;
        match r {
            JobResult::Llm(_) => WorkloadFigures::default(),
            JobResult::Image(d) => WorkloadFigures {
                s_per_image: d.s_per_image,
                steps_per_s: d.steps_per_s,
                queue_latency_ms: d.queue_latency_ms,
                gen_time_ms: Some(d.gen_time_ms),
                wall_ms: Some(d.total_ms),
                ..Default::default()
            },
            JobResult::Transcribe(d) => WorkloadFigures {
                rtfx: d.rtfx,
                wer: d.wer,
                audio_s: d.audio_s,
                wall_ms: Some(d.wall_ms),
                time_to_first_segment_ms: d.time_to_first_segment_ms,
                text: Some(d.text.clone()),
                ..Default::default()
            },
            JobResult::Compute(d) => WorkloadFigures {
                ops_per_s: d.ops_per_s,
                wall_ms: Some(d.wall_ms),
                result: Some(d.result),
                ..Default::default()
            },
        }
    }
}

/// `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_id: String,
    pub test_type: TestType,
    pub models: Vec<String>,
    pub status: RunStatus,
    /// The metric `rank` orders by and the winner is decided on (`POST /api/runs` `rank_by`).
    pub rank_by: Metric,
    /// Legacy: `comparison.winner.machine_id` — set only when the winner is `decided`.
    #[serde(default)]
    pub winner: Option<String>,
    /// The statistical comparison: `llm_generate` runs compare the machines' metrics,
    /// `llm_capacity` runs their capacities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<RunComparison>,
    /// The verdict of an image, speech or compute race.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_comparison: Option<crate::compare::workload::WorkloadComparison>,
    pub machines: Vec<MachineSummary>,
    /// `llm_capacity` runs: the SLO searched against and each machine's search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacitySummary>,
    /// `llm_load` runs: each machine's `load_done` figures.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub load: std::collections::BTreeMap<String, Box<crate::load::LoadDone>>,
}

/// `summary.json.comparison`: a text race's comparison of metrics, or a capacity race's of
/// capacities (which has `kind: "capacity"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RunComparison {
    Text(Box<Comparison>),
    Capacity(Box<CapacityComparison>),
}

impl RunComparison {
    /// The text race's comparison, if this is one.
    pub fn text(&self) -> Option<&Comparison> {
        match self {
            RunComparison::Text(c) => Some(c),
            RunComparison::Capacity(_) => None,
        }
    }

    pub fn capacity(&self) -> Option<&CapacityComparison> {
        match self {
            RunComparison::Capacity(c) => Some(c),
            RunComparison::Text(_) => None,
        }
    }

    pub fn winner(&self) -> &Winner {
        match self {
            RunComparison::Text(c) => &c.winner,
            RunComparison::Capacity(c) => &c.winner,
        }
    }
}

/// `summary.json.capacity`: `{slo, percentile, search, unit, machines: {<machine_id>:
/// {capacity, first_failing, curve, searches}}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacitySummary {
    pub slo: crate::load::Slo,
    pub percentile: f64,
    pub search: crate::load::SearchMode,
    pub unit: String,
    pub machines: std::collections::BTreeMap<String, MachineCapacity>,
}

/// One machine of `summary.json.capacity`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineCapacity {
    pub capacity: Option<f64>,
    pub first_failing: Option<f64>,
    /// Every step, in the order run: level, pass, the SLO values and the step's figures.
    pub curve: Vec<crate::load::CapacityStep>,
    pub searches: Vec<crate::load::events::SearchOutcome>,
}

impl MachineCapacity {
    pub fn of(r: &crate::load::CapacityResult) -> MachineCapacity {
        MachineCapacity {
            capacity: r.capacity,
            first_failing: r.first_failing,
            curve: r.curve.clone(),
            searches: r.searches.clone(),
        }
    }
}

impl From<&JobDone> for MachineSummary {
    /// The metrics of a `job_done`; identity and status are the caller's to fill.
    fn from(d: &JobDone) -> Self {
        MachineSummary {
            engine: Some(d.engine),
            model: Some(d.model.clone()),
            fallback_reason: d.fallback_reason.clone(),
            ttft_ms: d.ttft_ms,
            gen_tokens: Some(d.gen_tokens),
            gen_tokens_per_s: d.gen_tokens_per_s,
            total_ms: Some(d.total_ms),
            ttfc_ms: d.ttfc_ms,
            decode_tok_s: d.decode_tok_s,
            engine_decode_tok_s: d.engine_decode_tok_s,
            prompt_tokens: d.prompt_tokens,
            engine_prefill_tok_s: d.engine_prefill_tok_s,
            client_prefill_tok_s: d.client_prefill_tok_s,
            load_ms: d.load_ms,
            load_source: d.load_source,
            context_length: d.context_length,
            token_source: d.token_source,
            repeats: Some(d.repeats),
            aggregate: serde_json::to_value(&d.aggregate).ok(),
            ceiling_ratio: d.ceiling_ratio,
            ..Default::default()
        }
    }
}

/// Assigns `rank` (1 = best) to completed machines by the mean of `rank_by` in `means`
/// (machine id → mean; machines without one are not ranked). Ties keep their input order.
pub fn assign_ranks(machines: &mut [MachineSummary], rank_by: Metric, means: &[(String, f64)]) {
    let mut ranked: Vec<(usize, f64)> = machines
        .iter()
        .enumerate()
        .filter(|(_, m)| m.status == Some(MachineRunStatus::Complete))
        .filter_map(|(i, m)| {
            means.iter().find(|(id, _)| *id == m.machine_id).map(|(_, v)| (i, *v)).filter(|(_, v)| v.is_finite())
        })
        .collect();
    if rank_by.higher_is_better() {
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    } else {
        ranked.sort_by(|a, b| a.1.total_cmp(&b.1));
    }
    for m in machines.iter_mut() {
        m.rank = None;
    }
    for (rank, (i, _)) in ranked.into_iter().enumerate() {
        machines[i].rank = Some(rank as u32 + 1);
    }
}

/// One row of `GET /api/runs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunListEntry {
    pub run_id: String,
    pub test_type: TestType,
    pub models: Vec<String>,
    pub status: RunStatus,
    pub started_at: String,
    #[serde(default)]
    pub ended_at: Option<String>,
    pub machines: usize,
    /// Prompt, cut to a short preview.
    #[serde(default)]
    pub prompt_preview: Option<String>,
    #[serde(default)]
    pub winner: Option<String>,
    /// The run's machines with their labels (the history list shows labels, not ids).
    #[serde(default)]
    pub machine_labels: Vec<MachineLabel>,
    /// Where an imported run came from (`metadata.json` `imported.origin`; absent: made here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_from: Option<String>,
}

/// A machine id with its display label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineLabel {
    pub machine_id: String,
    pub label: String,
}

/// A page of runs, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunPage {
    pub runs: Vec<RunListEntry>,
    pub total: usize,
    pub limit: usize,
    pub offset: usize,
}

/// The browser-WebSocket / `events.ndjson` lifecycle event `run_start`.
pub const RUN_START: &str = "run_start";
/// The browser-WebSocket / `events.ndjson` lifecycle event `run_end`.
pub const RUN_END: &str = "run_end";
/// The browser-WebSocket event for a machine's fleet state change.
pub const MACHINE_STATE: &str = "machine_state";
/// The browser-WebSocket / `events.ndjson` event central emits when it changes a machine's status
/// in a run (job accepted, refused, timed out, agent lost): `{type, run_id, machine_id, status,
/// reason, job_id}`. Agent events carry the rest (`job_done`, `job_error`, …).
pub const MACHINE_STATUS: &str = "machine_status";

/// Every event kind central itself emits to browsers and `events.ndjson` (the docs' event
/// reference is checked against it).
pub const CENTRAL_EVENT_KINDS: &[&str] = crate::feed::KINDS;

/// A machine's fleet state as central sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineState {
    /// `/health` answers and the agent is idle.
    Online,
    /// `/health` answers and the agent is running or queueing a job.
    Busy,
    /// `/health` does not answer (or has not answered yet).
    Offline,
    /// `/health` answers but the agent refuses central's token (`token` in machines.yaml is
    /// missing or differs from the agent's `auth_token`): central cannot race it.
    Unauthorized,
}

/// One machine of `GET /api/machines` and of `machine_state` browser events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineView {
    pub machine_id: String,
    pub label: String,
    pub agent_base_url: String,
    #[serde(default)]
    pub notes: Option<String>,
    pub state: MachineState,
    /// Whether central's event WebSocket to the agent is connected.
    pub ws_connected: bool,
    /// The last failure talking to the agent (health, capabilities or WebSocket).
    #[serde(default)]
    pub last_error: Option<String>,
    /// Epoch seconds of the last successful `/health`.
    #[serde(default)]
    pub last_seen_s: Option<f64>,
    /// LLM model names the agent advertises.
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub engine: Option<EngineInfo>,
    #[serde(default)]
    pub hardware: Option<Hardware>,
    /// The agent's last `/health` answer.
    #[serde(default)]
    pub health: Option<Health>,
    /// The agent's last `/capabilities` answer.
    #[serde(default)]
    pub capabilities: Option<Capabilities>,
    /// `original` for an original bench-race agent (absent: this project's agent).
    #[serde(default, skip_serializing_if = "Protocol::is_native")]
    pub protocol: Protocol,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str, status: MachineRunStatus) -> MachineSummary {
        MachineSummary { machine_id: id.into(), status: Some(status), ..Default::default() }
    }

    #[test]
    fn ranks_completed_machines_by_the_chosen_metric() {
        let mut ms = vec![
            m("slow", MachineRunStatus::Complete),
            m("err", MachineRunStatus::Error),
            m("fast", MachineRunStatus::Complete),
            m("norate", MachineRunStatus::Complete),
        ];
        let means = vec![("slow".to_string(), 10.0), ("err".into(), 99.0), ("fast".into(), 50.0)];
        assign_ranks(&mut ms, Metric::DecodeTokS, &means);
        let ranks: Vec<_> = ms.iter().map(|m| m.rank).collect();
        assert_eq!(ranks, vec![Some(2), None, Some(1), None]);
        // Times: lowest first.
        assign_ranks(&mut ms, Metric::TtftMs, &means);
        let ranks: Vec<_> = ms.iter().map(|m| m.rank).collect();
        assert_eq!(ranks, vec![Some(1), None, Some(2), None]);
    }

    #[test]
    fn machine_summary_from_typed_job_done() {
        let done: JobDone = serde_json::from_value(serde_json::json!({
            "ttft_ms": 50.0, "gen_tokens": 5, "gen_tokens_per_s": 9.0, "total_ms": 300.0, "model": "m",
            "engine": "ollama", "ttfc_ms": 50.0, "decode_tok_s": 10.0, "engine_decode_tok_s": 10.5,
            "prompt_tokens": 7, "engine_prefill_tok_s": null, "client_prefill_tok_s": null, "load_ms": 800.0,
            "load_source": "warmup_estimate", "token_source": "engine", "repeats": 3,
            "aggregate": {"requests": 3}, "requests": [], "output_text": "hi"}))
        .unwrap();
        let s = MachineSummary::from(&done);
        assert_eq!((s.engine, s.model.as_deref(), s.repeats), (Some(EngineKind::Ollama), Some("m"), Some(3)));
        assert_eq!((s.decode_tok_s, s.engine_decode_tok_s, s.total_ms), (Some(10.0), Some(10.5), Some(300.0)));
        assert_eq!((s.load_ms, s.load_source), (Some(800.0), Some(LoadSource::WarmupEstimate)));
        assert_eq!(s.aggregate.unwrap()["requests"], 3);
    }

    #[test]
    fn run_status_from_machines() {
        use MachineRunStatus::*;
        assert_eq!(RunStatus::from_machines(&[Complete, Complete]), RunStatus::Complete);
        assert_eq!(RunStatus::from_machines(&[Complete, Skipped]), RunStatus::Partial);
        assert_eq!(RunStatus::from_machines(&[Error, Skipped]), RunStatus::Failed);
        assert_eq!(RunStatus::from_machines(&[]), RunStatus::Failed);
        assert_eq!(serde_json::to_value(RunStatus::Interrupted).unwrap(), "interrupted");
    }
}
