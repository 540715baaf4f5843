//! Per-machine outcomes and `summary.json`, derived from events.
//!
//! The same functions serve a live run (fed event by event) and a run recovered after a restart
//! (fed from `events.ndjson`), so a summary never depends on memory a restart loses.

use std::collections::HashMap;

use bench_shared::compare::capacity::{CapacityInput, compare_capacity};
use bench_shared::compare::workload::{WorkloadComparison, WorkloadInput, WorkloadRun, compare_workload};
use bench_shared::compare::{self, Comparison, MachineInput, Metric};
use bench_shared::event::{Decoded, Event, JobDone, JobResult, Received};
use bench_shared::feed::{CentralEvent, StoredLine};
use bench_shared::job::JobSpec;
use bench_shared::load::LoadDone;
use bench_shared::metrics::TokenChannel;
use bench_shared::run::{
    CapacitySummary, MachineCapacity, MachineRecord, MachineRunStatus, MachineSummary, RunComparison, RunMetadata,
    RunSummary, StoredImage, assign_ranks,
};
use bench_shared::sweep::SweepDone;
use serde::Serialize;
use serde_json::Value;

/// What is known about one machine of a run from its events.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// Set by a terminal agent event or a central `machine_status` event.
    pub status: Option<MachineRunStatus>,
    pub reason: Option<String>,
    pub job_id: Option<String>,
    /// The `job_done` / `sweep_done` payload, as the agent sent it.
    pub done: Option<Value>,
    /// What central read of that payload (the figures a summary uses).
    #[serde(skip)]
    pub result: Option<Done>,
    /// 1 = first machine to finish.
    pub finish_order: Option<u32>,
    /// Agent events stored for this machine.
    pub events: u64,
    /// Highest agent `seq` stored.
    pub last_seq: u64,
    /// Visible text of the first recorded repeat, as streamed (`llm_token`, content channel).
    pub output_text: String,
    /// First request sent − the `start_at` this agent received, both on the agent's clock, ms
    /// (from `job_started`; floored at 0).
    pub start_lag_ms: Option<f64>,
    /// When the first request was sent, epoch s on the agent's clock (`job_started.started_at_s`).
    #[serde(default)]
    pub started_at_s: Option<f64>,
    /// Images the machine reported (`image_complete`), by the names central stores them under.
    #[serde(default)]
    pub images: Vec<StoredImage>,
}

/// The file name of image `index` of repeat `repeat` of `machine_id` in the run's `images/`
/// folder (machine ids are validated names, so the result is one plain file name).
pub fn stored_image_name(machine_id: &str, repeat: u32, index: usize, content_type: &str) -> String {
    let ext = match content_type {
        "image/jpeg" => "jpg",
        "image/webp" => "webp",
        _ => "png",
    };
    let safe: String =
        machine_id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    format!("{safe}_r{repeat}_{index}.{ext}")
}

/// A machine's final figures, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum Done {
    Job(Box<JobDone>),
    Sweep(Box<SweepDone>),
    /// `llm_load` / `llm_capacity`.
    Load(Box<LoadDone>),
    /// An image, speech or compute job's figures.
    Workload(Box<JobResult>),
    /// The agent said it finished, but its payload could not be read (serde's reason).
    Unreadable(String),
}

impl Outcome {
    pub fn is_terminal(&self) -> bool {
        self.status.is_some_and(MachineRunStatus::is_terminal)
    }

    /// The typed `job_done`, or why there is none.
    fn job_done(&self) -> Option<Result<&JobDone, &str>> {
        match self.result.as_ref()? {
            Done::Job(d) => Some(Ok(d)),
            Done::Unreadable(e) => Some(Err(e)),
            Done::Sweep(_) | Done::Load(_) | Done::Workload(_) => None,
        }
    }

    /// The typed `load_done`, or why there is none.
    fn load_done(&self) -> Option<Result<&LoadDone, &str>> {
        match self.result.as_ref()? {
            Done::Load(d) => Some(Ok(d)),
            Done::Unreadable(e) => Some(Err(e)),
            Done::Sweep(_) | Done::Job(_) | Done::Workload(_) => None,
        }
    }
}

/// The machine status and reason a terminal agent event means (and its figures), or `None` for
/// other events. A terminal kind whose payload could not be read still ends the machine.
fn terminal(event: &Received) -> Option<(MachineRunStatus, Option<String>, Option<Done>)> {
    match &event.event {
        Decoded::Known(Event::JobDone(d)) => {
            let done = match &**d {
                JobResult::Llm(l) => Done::Job(Box::new(l.clone())),
                _ => Done::Workload(d.clone()),
            };
            Some((MachineRunStatus::Complete, None, Some(done)))
        }
        Decoded::Known(Event::SweepDone(d)) => Some((MachineRunStatus::Complete, None, Some(Done::Sweep(d.clone())))),
        Decoded::Known(Event::LoadDone(d)) => Some((MachineRunStatus::Complete, None, Some(Done::Load(d.clone())))),
        Decoded::Known(Event::JobError(e)) => {
            Some((MachineRunStatus::Error, Some(format!("{}: {}", e.kind.as_str(), e.message)), None))
        }
        Decoded::Known(Event::JobCancelled(c)) => Some((MachineRunStatus::Cancelled, Some(c.reason.clone()), None)),
        Decoded::Unreadable(why) => match event.env.kind.as_str() {
            "job_done" | "sweep_done" | "load_done" => {
                Some((MachineRunStatus::Complete, None, Some(Done::Unreadable(why.clone()))))
            }
            "job_error" => Some((MachineRunStatus::Error, Some("job failed".into()), None)),
            "job_cancelled" => Some((MachineRunStatus::Cancelled, Some("cancelled".into()), None)),
            _ => None,
        },
        _ => None,
    }
}

/// Folds one stored line (an agent event, or central's `machine_status`) into `outcomes`.
/// `finished` counts machines that reached a terminal event, for `finish_order`.
pub fn apply(outcomes: &mut HashMap<String, Outcome>, finished: &mut u32, line: &StoredLine) {
    let relayed = match line {
        StoredLine::Central(CentralEvent::MachineStatus(s)) => {
            let o = outcomes.entry(s.machine_id.clone()).or_default();
            o.status = Some(s.status);
            if let Some(r) = &s.reason {
                o.reason = Some(r.clone());
            }
            if let Some(j) = &s.job_id {
                o.job_id = Some(j.clone());
            }
            if o.is_terminal() && o.finish_order.is_none() {
                *finished += 1;
                o.finish_order = Some(*finished);
            }
            return;
        }
        StoredLine::Central(_) => return,
        StoredLine::Agent(r) => &r.received,
    };
    let o = outcomes.entry(relayed.env.machine_id.clone()).or_default();
    o.events += 1;
    o.last_seq = o.last_seq.max(relayed.env.seq);
    match &relayed.event {
        Decoded::Known(Event::LlmToken(t))
            if t.channel == TokenChannel::Content && !t.warmup && t.repeat_index == 0 =>
        {
            o.output_text.push_str(&t.text);
        }
        Decoded::Known(Event::JobStarted(s)) => {
            o.start_lag_ms = s.start_at.map(|at| (s.started_at_s * 1000.0 - at as f64).max(0.0));
            o.started_at_s = Some(s.started_at_s);
        }
        Decoded::Known(Event::ImageComplete(c)) => {
            let machine = &relayed.env.machine_id;
            o.images.extend(c.images.iter().enumerate().map(|(i, img)| StoredImage {
                repeat_index: c.repeat_index,
                file: stored_image_name(machine, c.repeat_index, i, &img.content_type),
                sha256: img.sha256.clone(),
                size_bytes: img.size_bytes,
                content_type: img.content_type.clone(),
            }));
        }
        _ => {}
    }
    if o.is_terminal() {
        return;
    }
    if let Some((status, reason, done)) = terminal(relayed) {
        o.status = Some(status);
        o.reason = reason;
        if done.is_some() {
            o.done = Some(relayed.env.payload.clone());
            o.result = done;
        }
        *finished += 1;
        o.finish_order = Some(*finished);
    }
}

/// Fills the run's clock record with every machine's start known from `outcomes` (a run
/// resumed after a restart gets them from its events).
pub fn record_starts(meta: &mut RunMetadata, outcomes: &HashMap<String, Outcome>) {
    let Some(clock) = meta.clock.as_mut() else { return };
    let mut starts: Vec<(&String, f64)> =
        outcomes.iter().filter_map(|(id, o)| o.started_at_s.map(|s| (id, s))).collect();
    starts.sort_by(|a, b| a.0.cmp(b.0));
    for (id, at) in starts {
        clock.record_start(id, at);
    }
}

/// Outcomes per machine from the bytes of `events.ndjson`.
pub fn outcomes_from_events(bytes: &[u8]) -> HashMap<String, Outcome> {
    let mut outcomes = HashMap::new();
    let mut finished = 0;
    for line in StoredLine::parse_all(bytes) {
        apply(&mut outcomes, &mut finished, &line);
    }
    outcomes
}

/// `summary.json` for a run: status and reason from the metadata (authoritative), metrics from
/// the typed `job_done` payloads, the comparison (and ranks) on the run's `rank_by`.
pub fn build(meta: &RunMetadata, outcomes: &HashMap<String, Outcome>) -> RunSummary {
    let empty = Outcome::default();
    let outcome = |id: &str| outcomes.get(id).unwrap_or(&empty);
    let mut inputs = Vec::new();
    let mut workload_inputs = Vec::new();
    let mut machines: Vec<MachineSummary> = meta
        .machines
        .iter()
        .map(|rec| {
            let o = outcome(&rec.machine_id);
            let done = if rec.status == MachineRunStatus::Complete { o.job_done() } else { None };
            let mut s = match done {
                Some(Ok(d)) => MachineSummary::from(d),
                _ => MachineSummary::default(),
            };
            s.engine = s.engine.or(rec.engine.as_ref().map(|e| e.kind));
            s.machine_id = rec.machine_id.clone();
            s.label = rec.label.clone();
            s.status = Some(rec.status);
            s.reason = rec.reason.clone();
            if let Some(Err(e)) = done
                && meta.spec.test_type() == bench_shared::job::TestType::LlmGenerate
            {
                s.reason = Some(format!("job_done payload not readable, metrics unknown: {e}"));
            }
            s.job_id = rec.job_id.clone();
            s.finish_order = o.finish_order;
            s.events = o.events;
            if let (MachineRunStatus::Complete, Some(Done::Workload(r))) = (rec.status, &o.result) {
                s.workload = bench_shared::run::WorkloadFigures::of(r);
                s.workload.images = o.images.clone();
                s.repeats = Some(match &**r {
                    JobResult::Image(d) => d.repeats,
                    JobResult::Transcribe(d) => d.repeats,
                    JobResult::Compute(d) => d.repeats,
                    JobResult::Llm(d) => d.repeats,
                });
                workload_inputs.push(WorkloadInput {
                    machine_id: rec.machine_id.clone(),
                    label: rec.label.clone(),
                    result: (**r).clone(),
                });
            }
            if let Some(Ok(d)) = done {
                inputs.push(machine_input(rec, o, d.clone()));
            }
            s
        })
        .collect();
    let loads = load_results(meta, outcomes, &mut machines);
    let (rank_by, comparison, capacity) = match &meta.spec {
        JobSpec::LlmGenerate(g) => {
            let settings =
                compare::Settings { rank_by: g.rank_by, min_effect_pct: g.min_effect_pct, temperature: g.temperature };
            let c = compare::compare(&inputs, settings);
            assign_ranks(&mut machines, g.rank_by, &rank_means(Some(&c), g.rank_by));
            (g.rank_by, Some(RunComparison::Text(Box::new(c))), None)
        }
        JobSpec::LlmCapacity(c) => {
            let (summary, comparison) = capacity(meta, &loads, c);
            // Higher capacity ranks first (the rank metric's direction is "higher is better").
            let means: Vec<(String, f64)> = comparison
                .as_ref()
                .map(|c| {
                    c.machines
                        .iter()
                        .filter_map(|m| m.geo_mean.or(m.capacity).map(|v| (m.machine_id.clone(), v)))
                        .collect()
                })
                .unwrap_or_default();
            assign_ranks(&mut machines, Metric::DecodeTokS, &means);
            (Metric::default(), comparison.map(|c| RunComparison::Capacity(Box::new(c))), Some(summary))
        }
        JobSpec::LlmSweep(_)
        | JobSpec::LlmLoad(_)
        | JobSpec::ImageGenerate(_)
        | JobSpec::Transcribe(_)
        | JobSpec::Compute(_) => (Metric::default(), None, None),
    };
    let test_type = meta.spec.test_type();
    let workload_comparison = (!test_type.uses_llm_engine())
        .then(|| compare_workload(test_type, &workload_inputs, bench_shared::compare::DEFAULT_MIN_EFFECT_PCT));
    if let Some(wc) = &workload_comparison {
        assign_workload_ranks(&mut machines, wc);
    }
    let winner = comparison
        .as_ref()
        .and_then(|c| c.winner().machine_id.clone())
        .or_else(|| workload_comparison.as_ref().and_then(|w| w.winner.clone()));
    let load = match meta.spec {
        JobSpec::LlmLoad(_) => loads.into_iter().map(|(id, d)| (id, Box::new(d))).collect(),
        _ => Default::default(),
    };
    RunSummary {
        run_id: meta.run_id.clone(),
        test_type: meta.spec.test_type(),
        models: meta.models.clone(),
        status: meta.status,
        rank_by,
        winner,
        comparison,
        workload_comparison,
        machines,
        capacity,
        load,
    }
}

/// The `load_done` of every machine that completed a load run (in the machines' order); the
/// machine summaries get the engine and model, or the reason the payload was unreadable.
fn load_results(
    meta: &RunMetadata,
    outcomes: &HashMap<String, Outcome>,
    machines: &mut [MachineSummary],
) -> Vec<(String, LoadDone)> {
    let mut out = Vec::new();
    for (rec, s) in meta.machines.iter().zip(machines.iter_mut()) {
        if rec.status != MachineRunStatus::Complete {
            continue;
        }
        match outcomes.get(&rec.machine_id).and_then(Outcome::load_done) {
            Some(Ok(d)) => {
                s.engine = Some(d.engine);
                s.model = Some(d.model.clone());
                out.push((rec.machine_id.clone(), d.clone()));
            }
            Some(Err(e)) => s.reason = Some(format!("load_done payload not readable, figures unknown: {e}")),
            None => {}
        }
    }
    out
}

/// `summary.json.capacity` and the capacity verdict of an `llm_capacity` run.
fn capacity(
    meta: &RunMetadata,
    loads: &[(String, LoadDone)],
    spec: &bench_shared::load::CapacitySpec,
) -> (CapacitySummary, Option<bench_shared::compare::capacity::CapacityComparison>) {
    let inputs: Vec<CapacityInput> = loads
        .iter()
        .filter_map(|(id, d)| {
            let rec = meta.machines.iter().find(|m| &m.machine_id == id)?;
            let result = d.capacity.clone()?;
            let model = rec.models.iter().find(|m| bench_shared::engine::same_model(&m.name, &d.model));
            Some(CapacityInput {
                machine_id: id.clone(),
                label: rec.label.clone(),
                engine: Some(d.engine),
                fallback_reason: None,
                model: Some(d.model.clone()),
                quantization: model.and_then(|m| m.quantization.clone()),
                hostname: rec.hardware.as_ref().and_then(|h| h.hostname.clone()),
                engine_base_url: rec.engine.as_ref().map(|e| e.base_url.clone()),
                client_ceiling: rec.client_ceiling.clone(),
                result,
            })
        })
        .collect();
    let summary = CapacitySummary {
        slo: spec.slo,
        percentile: spec.percentile,
        search: spec.search,
        unit: spec.search.unit().to_owned(),
        machines: inputs.iter().map(|m| (m.machine_id.clone(), MachineCapacity::of(&m.result))).collect(),
    };
    (summary, compare_capacity(&inputs, bench_shared::compare::DEFAULT_MIN_EFFECT_PCT))
}

/// Ranks by the mean of the race's first metric (an order, not a verdict).
fn assign_workload_ranks(machines: &mut [MachineSummary], wc: &WorkloadComparison) {
    let Some((metric, stats)) = wc.stats.first() else { return };
    let mut means: Vec<(&str, f64)> = stats.iter().filter_map(|s| s.mean.map(|m| (s.machine_id.as_str(), m))).collect();
    means.sort_by(|a, b| {
        let o = a.1.total_cmp(&b.1);
        if metric.higher_is_better() { o.reverse() } else { o }
    });
    for m in machines.iter_mut() {
        m.rank = means.iter().position(|(id, _)| *id == m.machine_id).map(|p| p as u32 + 1);
    }
}

/// What the comparison needs of a machine that completed, from its record and `job_done`.
fn machine_input(rec: &MachineRecord, o: &Outcome, d: JobDone) -> MachineInput {
    MachineInput {
        machine_id: rec.machine_id.clone(),
        label: rec.label.clone(),
        engine: Some(d.engine),
        fallback_reason: d.fallback_reason,
        model: Some(d.model),
        hostname: rec.hardware.as_ref().and_then(|h| h.hostname.clone()),
        engine_base_url: rec.engine.as_ref().map(|e| e.base_url.clone()),
        requests: d.requests,
        context_length: d.context_length,
        start_lag_ms: o.start_lag_ms,
        output_text: Some(d.output_text),
        ceiling_ratio: d.ceiling_ratio,
        protocol: rec.protocol,
    }
}

/// A stored `llm_generate` run as the cross-run comparison needs it: its settings and, per
/// machine, the same warm figures its own verdict used (or why it has none). `None` for a sweep.
pub fn run_input(meta: &RunMetadata, outcomes: &HashMap<String, Outcome>) -> Option<compare::RunInput> {
    let JobSpec::LlmGenerate(g) = &meta.spec else { return None };
    let settings = compare::RunSettings {
        model: Some(g.model.clone()),
        prompt: Some(g.prompt.clone()),
        max_tokens: Some(g.max_tokens),
        temperature: Some(g.temperature),
        num_ctx: Some(g.num_ctx),
        stream: Some(g.stream),
        cache_bust: Some(g.prompt_nonce.is_some()),
        cold: Some(g.cold),
    };
    let empty = Outcome::default();
    let machines = meta
        .machines
        .iter()
        .map(|rec| {
            let o = outcomes.get(&rec.machine_id).unwrap_or(&empty);
            let input = match (o.job_done(), rec.status) {
                (Some(Ok(d)), MachineRunStatus::Complete) => Ok(machine_input(rec, o, d.clone())),
                (Some(Err(e)), MachineRunStatus::Complete) => Err(format!("job_done payload not readable: {e}")),
                (None, MachineRunStatus::Complete) => Err("complete, but no job_done event is stored".into()),
                (_, status) => Err(match &rec.reason {
                    Some(r) => format!("{}: {r}", status.as_str()),
                    None => status.as_str().to_owned(),
                }),
            };
            compare::RunMachine {
                machine_id: rec.machine_id.clone(),
                label: rec.label.clone(),
                engine_version: rec.engine.as_ref().and_then(|e| e.version.clone()),
                input,
            }
        })
        .collect();
    Some(compare::RunInput { run_id: meta.run_id.clone(), settings, machines })
}

/// A stored `llm_capacity` run as the cross-run comparison needs it: its SLO and search, and
/// each completed machine's searches. `None` for other runs.
/// A finished image, speech or compute run's completed machines, for `GET /api/compare`
/// (`None` for the text races).
pub fn workload_run(meta: &RunMetadata, outcomes: &HashMap<String, Outcome>) -> Option<WorkloadRun> {
    let test_type = meta.spec.test_type();
    if test_type.uses_llm_engine() {
        return None;
    }
    let machines = meta
        .machines
        .iter()
        .filter(|rec| rec.status == MachineRunStatus::Complete)
        .filter_map(|rec| match outcomes.get(&rec.machine_id)?.result.as_ref()? {
            Done::Workload(r) => Some(WorkloadInput {
                machine_id: rec.machine_id.clone(),
                label: rec.label.clone(),
                result: (**r).clone(),
            }),
            _ => None,
        })
        .collect();
    Some(WorkloadRun { run_id: meta.run_id.clone(), test_type, machines })
}

pub fn capacity_run(
    meta: &RunMetadata,
    outcomes: &HashMap<String, Outcome>,
) -> Option<bench_shared::compare::capacity_across::CapacityRun> {
    let JobSpec::LlmCapacity(c) = &meta.spec else { return None };
    let machines = meta
        .machines
        .iter()
        .filter(|rec| rec.status == MachineRunStatus::Complete)
        .filter_map(|rec| {
            let d = outcomes.get(&rec.machine_id)?.load_done()?.ok()?;
            let searches = d.capacity.as_ref()?.searches.iter().map(|s| s.capacity).collect();
            Some(bench_shared::compare::capacity_across::RunMachineCapacity {
                machine_id: rec.machine_id.clone(),
                label: rec.label.clone(),
                searches,
            })
        })
        .collect();
    Some(bench_shared::compare::capacity_across::CapacityRun {
        run_id: meta.run_id.clone(),
        model: c.model.clone(),
        search: c.search,
        slo: c.slo,
        percentile: c.percentile,
        resolution_pct: c.resolution_pct,
        machines,
    })
}

/// Each machine's warm geometric mean of `rank_by` (what the verdict's ratios compare; the
/// arithmetic mean where a value ≤ 0 leaves none), from the comparison.
fn rank_means(comparison: Option<&Comparison>, rank_by: Metric) -> Vec<(String, f64)> {
    let Some(stats) = comparison.and_then(|c| c.metrics.iter().find(|m| m.metric == rank_by)) else {
        return Vec::new();
    };
    stats.machines.iter().filter_map(|m| m.geomean.or(m.mean).map(|v| (m.machine_id.clone(), v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outcomes_follow_events() {
        let token = |seq: u64, text: &str, warmup: bool| {
            json!({"type": "llm_token", "machine_id": "a", "run_id": "r", "job_id": "j1", "seq": seq,
                   "payload": {"text": text, "repeat_index": 0, "timestamp_s": 1.0, "warmup": warmup}})
        };
        let lines = [
            json!({"type": "run_start", "run_id": "r", "test_type": "llm_generate", "models": ["m"], "prompt": "p",
                   "start_at": 1, "started_at_s": 1.0, "machines": []}),
            json!({"type": "machine_status", "run_id": "r", "machine_id": "a", "status": "running", "reason": null,
                   "job_id": "j1"}),
            token(2, "He", false),
            token(3, "x", true),
            token(4, "llo", false),
            json!({"type": "job_error", "machine_id": "b", "run_id": "r", "job_id": "j2", "seq": 5,
                   "payload": {"kind": "timeout", "message": "slow"}}),
            json!({"type": "job_done", "machine_id": "a", "run_id": "r", "job_id": "j1", "seq": 5,
                   "payload": {"gen_tokens": 2, "gen_tokens_per_s": 9.5}}),
        ];
        let bytes: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\n").into_bytes()).collect();
        let o = outcomes_from_events(&bytes);
        assert_eq!(o["a"].output_text, "Hello");
        assert_eq!(o["a"].status, Some(MachineRunStatus::Complete));
        assert_eq!(o["a"].finish_order, Some(2));
        assert_eq!(o["a"].last_seq, 5);
        assert_eq!(o["a"].job_id.as_deref(), Some("j1"));
        // A job_done that cannot be read still ends the machine; the summary says why it has no figures.
        assert!(
            matches!(&o["a"].result, Some(Done::Unreadable(why)) if why.contains("missing field")),
            "{:?}",
            o["a"].result
        );
        assert_eq!(o["a"].done, Some(json!({"gen_tokens": 2, "gen_tokens_per_s": 9.5})), "the payload as sent");
        assert_eq!(o["b"].status, Some(MachineRunStatus::Error));
        assert_eq!(o["b"].reason.as_deref(), Some("timeout: slow"));
        assert_eq!(o["b"].finish_order, Some(1));
    }

    fn record(id: &str, status: MachineRunStatus, reason: Option<&str>) -> bench_shared::run::MachineRecord {
        serde_json::from_value(json!({"machine_id": id, "label": format!("{id} box"), "agent_base_url": "http://x",
                                      "status": status, "reason": reason}))
        .unwrap()
    }

    fn meta(spec: Value, machines: Vec<bench_shared::run::MachineRecord>) -> RunMetadata {
        let spec = JobSpec::from_json(&spec, 0).unwrap();
        RunMetadata {
            run_id: "2026-01-02_030405_abcdef".into(),
            test_type: spec.test_type(),
            models: spec.models(),
            prompt: None,
            spec,
            status: bench_shared::run::RunStatus::Partial,
            reason: None,
            started_at: String::new(),
            started_at_s: 0.0,
            ended_at: None,
            ended_at_s: None,
            machines,
            clock: None,
            imported: None,
        }
    }

    #[test]
    fn run_input_says_why_a_machine_has_no_figures_and_skips_sweeps() {
        let m = meta(
            json!({"model": "m", "prompt": "p", "max_tokens": 8, "num_ctx": 512}),
            vec![
                record("ok", MachineRunStatus::Complete, None),
                record("bad", MachineRunStatus::Error, Some("timeout: slow")),
                record("torn", MachineRunStatus::Complete, None),
            ],
        );
        let mut outcomes = HashMap::new();
        let torn = Outcome {
            done: Some(json!({"gen_tokens": "many"})),
            result: Some(Done::Unreadable("invalid type: string \"many\", expected u64".into())),
            ..Default::default()
        };
        outcomes.insert("torn".to_owned(), torn);
        let input = run_input(&m, &outcomes).unwrap();
        assert_eq!(input.settings.max_tokens, Some(8));
        assert_eq!(input.settings.num_ctx, Some(512));
        assert_eq!(input.settings.prompt.as_deref(), Some("p"));
        let why: Vec<String> = input.machines.iter().map(|x| x.input.clone().unwrap_err()).collect();
        assert_eq!(why[0], "complete, but no job_done event is stored");
        assert_eq!(why[1], "error: timeout: slow");
        assert!(why[2].starts_with("job_done payload not readable"), "{}", why[2]);
        let sweep = meta(
            json!({"test_type": "llm_sweep", "models": ["m"], "ctx": 512}),
            vec![record("ok", MachineRunStatus::Complete, None)],
        );
        assert!(run_input(&sweep, &HashMap::new()).is_none());
    }
}
