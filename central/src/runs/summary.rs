//! Per-machine outcomes and `summary.json`, derived from events.
//!
//! The same functions serve a live run (fed event by event) and a run recovered after a restart
//! (fed from `events.ndjson`), so a summary never depends on memory a restart loses.

use std::collections::HashMap;

use bench_shared::compare::{self, Comparison, MachineInput, Metric};
use bench_shared::event::JobDone;
use bench_shared::job::JobSpec;
use bench_shared::run::{
    MACHINE_STATUS, MachineRecord, MachineRunStatus, MachineSummary, RunMetadata, RunSummary, assign_ranks,
};
use serde::Serialize;
use serde_json::Value;

/// What is known about one machine of a run from its events.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// Set by a terminal agent event or a central `machine_status` event.
    pub status: Option<MachineRunStatus>,
    pub reason: Option<String>,
    pub job_id: Option<String>,
    /// The `job_done` / `sweep_done` payload.
    pub done: Option<Value>,
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
}

impl Outcome {
    pub fn is_terminal(&self) -> bool {
        self.status.is_some_and(MachineRunStatus::is_terminal)
    }
}

/// The machine status and reason a terminal agent event means, or `None` for other events.
pub fn terminal_status(kind: &str, payload: &Value) -> Option<(MachineRunStatus, Option<String>)> {
    let text = |k: &str| payload.get(k).and_then(Value::as_str).map(str::to_owned);
    match kind {
        "job_done" | "sweep_done" => Some((MachineRunStatus::Complete, None)),
        "job_error" => {
            let msg = text("message").unwrap_or_else(|| "job failed".into());
            let reason = match text("kind") {
                Some(k) => format!("{k}: {msg}"),
                None => msg,
            };
            Some((MachineRunStatus::Error, Some(reason)))
        }
        "job_cancelled" => Some((MachineRunStatus::Cancelled, text("reason").or(Some("cancelled".into())))),
        _ => None,
    }
}

/// Folds one stored event line (agent event with `machine_id`, or central `machine_status`) into
/// `outcomes`. `finished` counts machines that reached a terminal event, for `finish_order`.
pub fn apply(outcomes: &mut HashMap<String, Outcome>, finished: &mut u32, event: &Value) {
    let Some(machine_id) = event.get("machine_id").and_then(Value::as_str) else { return };
    let kind = event.get("type").and_then(Value::as_str).unwrap_or("");
    let o = outcomes.entry(machine_id.to_owned()).or_default();
    if kind == MACHINE_STATUS {
        if let Some(s) = event.get("status").and_then(|s| serde_json::from_value(s.clone()).ok()) {
            o.status = Some(s);
        }
        if let Some(r) = event.get("reason").and_then(Value::as_str) {
            o.reason = Some(r.to_owned());
        }
        if let Some(j) = event.get("job_id").and_then(Value::as_str) {
            o.job_id = Some(j.to_owned());
        }
        if o.is_terminal() && o.finish_order.is_none() {
            *finished += 1;
            o.finish_order = Some(*finished);
        }
        return;
    }
    o.events += 1;
    o.last_seq = o.last_seq.max(event.get("seq").and_then(Value::as_u64).unwrap_or(0));
    let payload = event.get("payload").unwrap_or(&Value::Null);
    if kind == "llm_token" {
        let content = payload.get("channel").and_then(Value::as_str).is_none_or(|c| c == "content");
        let warmup = payload.get("warmup").and_then(Value::as_bool).unwrap_or(false);
        let first = payload.get("repeat_index").and_then(Value::as_u64).unwrap_or(0) == 0;
        if content && !warmup && first {
            o.output_text.push_str(payload.get("text").and_then(Value::as_str).unwrap_or(""));
        }
    }
    if kind == "job_started" {
        let at = payload.get("start_at").and_then(Value::as_f64);
        let sent = payload.get("started_at_s").and_then(Value::as_f64);
        o.start_lag_ms = at.zip(sent).map(|(at, sent)| (sent * 1000.0 - at).max(0.0));
        o.started_at_s = sent;
    }
    if o.is_terminal() {
        return;
    }
    if let Some((status, reason)) = terminal_status(kind, payload) {
        o.status = Some(status);
        o.reason = reason;
        if matches!(kind, "job_done" | "sweep_done") {
            o.done = Some(payload.clone());
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
    for e in crate::store::parse_events(bytes) {
        apply(&mut outcomes, &mut finished, &e);
    }
    outcomes
}

/// `summary.json` for a run: status and reason from the metadata (authoritative), metrics from
/// the typed `job_done` payloads, the comparison (and ranks) on the run's `rank_by`.
pub fn build(meta: &RunMetadata, outcomes: &HashMap<String, Outcome>) -> RunSummary {
    let empty = Outcome::default();
    let outcome = |id: &str| outcomes.get(id).unwrap_or(&empty);
    let mut inputs = Vec::new();
    let mut machines: Vec<MachineSummary> = meta
        .machines
        .iter()
        .map(|rec| {
            let o = outcome(&rec.machine_id);
            let done = match (&o.done, rec.status) {
                (Some(done), MachineRunStatus::Complete) => Some(serde_json::from_value::<JobDone>(done.clone())),
                _ => None,
            };
            let mut s = match &done {
                Some(Ok(d)) => MachineSummary::from(d),
                _ => MachineSummary::default(),
            };
            s.engine = s.engine.or(rec.engine.as_ref().map(|e| e.kind));
            s.machine_id = rec.machine_id.clone();
            s.label = rec.label.clone();
            s.status = Some(rec.status);
            s.reason = rec.reason.clone();
            if let Some(Err(e)) = &done
                && meta.spec.test_type() == bench_shared::job::TestType::LlmGenerate
            {
                s.reason = Some(format!("job_done payload not readable, metrics unknown: {e}"));
            }
            s.job_id = rec.job_id.clone();
            s.finish_order = o.finish_order;
            s.events = o.events;
            if let Some(Ok(d)) = done {
                inputs.push(machine_input(rec, o, d));
            }
            s
        })
        .collect();
    let (rank_by, comparison) = match &meta.spec {
        JobSpec::LlmGenerate(g) => {
            let settings =
                compare::Settings { rank_by: g.rank_by, min_effect_pct: g.min_effect_pct, temperature: g.temperature };
            (g.rank_by, Some(compare::compare(&inputs, settings)))
        }
        JobSpec::LlmSweep(_) | JobSpec::ImageGenerate(_) | JobSpec::Transcribe(_) | JobSpec::Compute(_) => {
            (Metric::default(), None)
        }
    };
    assign_ranks(&mut machines, rank_by, &rank_means(comparison.as_ref(), rank_by));
    let winner = comparison.as_ref().and_then(|c| c.winner.machine_id.clone());
    RunSummary {
        run_id: meta.run_id.clone(),
        test_type: meta.spec.test_type(),
        models: meta.models.clone(),
        status: meta.status,
        rank_by,
        winner,
        comparison,
        machines,
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
            let input = match (&o.done, rec.status) {
                (Some(done), MachineRunStatus::Complete) => serde_json::from_value::<JobDone>(done.clone())
                    .map(|d| machine_input(rec, o, d))
                    .map_err(|e| format!("job_done payload not readable: {e}")),
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

/// Each machine's warm mean of `rank_by`, from the comparison.
fn rank_means(comparison: Option<&Comparison>, rank_by: Metric) -> Vec<(String, f64)> {
    let Some(stats) = comparison.and_then(|c| c.metrics.iter().find(|m| m.metric == rank_by)) else {
        return Vec::new();
    };
    stats.machines.iter().filter_map(|m| m.mean.map(|v| (m.machine_id.clone(), v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outcomes_follow_events() {
        let lines = [
            json!({"type": "run_start", "run_id": "r"}),
            json!({"type": "machine_status", "machine_id": "a", "status": "running", "job_id": "j1"}),
            json!({"type": "llm_token", "machine_id": "a", "seq": 2, "payload": {"text": "He", "repeat_index": 0}}),
            json!({"type": "llm_token", "machine_id": "a", "seq": 3, "payload": {"text": "x", "repeat_index": 0, "warmup": true}}),
            json!({"type": "llm_token", "machine_id": "a", "seq": 4, "payload": {"text": "llo", "repeat_index": 0}}),
            json!({"type": "job_error", "machine_id": "b", "seq": 5, "payload": {"kind": "timeout", "message": "slow"}}),
            json!({"type": "job_done", "machine_id": "a", "seq": 5, "payload": {"gen_tokens": 2, "gen_tokens_per_s": 9.5}}),
        ];
        let bytes: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\n").into_bytes()).collect();
        let o = outcomes_from_events(&bytes);
        assert_eq!(o["a"].output_text, "Hello");
        assert_eq!(o["a"].status, Some(MachineRunStatus::Complete));
        assert_eq!(o["a"].finish_order, Some(2));
        assert_eq!(o["a"].last_seq, 5);
        assert_eq!(o["a"].job_id.as_deref(), Some("j1"));
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
        outcomes.insert("torn".to_owned(), Outcome { done: Some(json!({"gen_tokens": "many"})), ..Default::default() });
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
