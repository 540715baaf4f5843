//! The end of a run: final `metadata.json`, `summary.json`, sweep CSVs, and the `run_end` event.

use std::collections::HashMap;

use bench_shared::job::TestType;
use bench_shared::run::{MachineRunStatus, RUN_END, RunMetadata, RunStatus, RunSummary};
use bench_shared::sweep::{LOAD_TIMES_CSV_HEADER, REQUESTS_CSV_HEADER, SUMMARY_CSV_HEADER};
use serde_json::{Map, Value, json};

use super::summary::{self, Outcome};
use crate::hub::Hub;
use crate::store::{EventLog, Store, StoreError, now_s, rfc3339};

/// Writes the final files of a run whose machines are all terminal, then appends and publishes
/// `run_end`. The run's status follows from its machines' outcomes.
pub fn finish_run(
    store: &Store,
    hub: &Hub,
    log: &mut EventLog,
    meta: &mut RunMetadata,
    outcomes: &HashMap<String, Outcome>,
) -> Result<RunSummary, StoreError> {
    let statuses: Vec<MachineRunStatus> = meta.machines.iter().map(|m| m.status).collect();
    meta.status = RunStatus::from_machines(&statuses);
    if meta.status == RunStatus::Failed && meta.reason.is_none() {
        let reasons: Vec<String> = meta
            .machines
            .iter()
            .map(|m| format!("{}: {}", m.machine_id, m.reason.as_deref().unwrap_or(m.status.as_str())))
            .collect();
        meta.reason = Some(format!("no machine finished ({})", reasons.join("; ")));
    }
    write_final(store, hub, log, meta, outcomes)
}

/// Ends a run that central can no longer follow (shutdown, or found `running` at start-up):
/// machines that had not finished become `interrupted`, the run too; what finished is kept.
pub fn interrupt_run(
    store: &Store,
    hub: &Hub,
    log: &mut EventLog,
    meta: &mut RunMetadata,
    outcomes: &HashMap<String, Outcome>,
    reason: &str,
) -> Result<RunSummary, StoreError> {
    for m in &mut meta.machines {
        match outcomes.get(&m.machine_id) {
            // Finished before the stop (a crash may have left metadata behind the events).
            Some(o) if o.is_terminal() => {
                m.status = o.status.unwrap_or(MachineRunStatus::Interrupted);
                m.reason = o.reason.clone();
                m.job_id = o.job_id.clone().or(m.job_id.take());
            }
            _ if !m.status.is_terminal() => {
                m.status = MachineRunStatus::Interrupted;
                m.reason = Some(reason.to_owned());
            }
            _ => {}
        }
    }
    meta.status = RunStatus::Interrupted;
    meta.reason = Some(reason.to_owned());
    write_final(store, hub, log, meta, outcomes)
}

/// Ends a run whose files can no longer be written (full disk, I/O error): machines that had not
/// finished become `error` with `reason`, the run `failed` with it. The final files are tried
/// all the same (space may have come back); `run_end` reaches browsers either way.
pub fn fail_run(
    store: &Store,
    hub: &Hub,
    log: &mut EventLog,
    meta: &mut RunMetadata,
    outcomes: &HashMap<String, Outcome>,
    reason: &str,
) -> Result<RunSummary, StoreError> {
    for m in &mut meta.machines {
        let finished = outcomes.get(&m.machine_id).is_some_and(Outcome::is_terminal) || m.status.is_terminal();
        if !finished {
            m.status = MachineRunStatus::Error;
            m.reason = Some(format!("run failed: {reason}"));
        }
    }
    meta.status = RunStatus::Failed;
    meta.reason = Some(reason.to_owned());
    write_final(store, hub, log, meta, outcomes)
}

/// Marks runs a previous process left `running` as `interrupted` (see [`interrupt_run`]),
/// deriving what each machine did from the stored events. Returns their ids.
pub fn recover_interrupted(store: &Store) -> Result<Vec<String>, StoreError> {
    let hub = Hub::new(16);
    let mut recovered = Vec::new();
    for id in store.run_ids()? {
        let Ok(mut meta) = store.metadata(&id) else { continue };
        if meta.status != RunStatus::Running {
            continue;
        }
        let outcomes = summary::outcomes_from_events(&store.events(&id)?);
        let mut log = store.event_log(&id)?;
        interrupt_run(store, &hub, &mut log, &mut meta, &outcomes, "central stopped while the run was running")?;
        tracing::warn!(run_id = %id, "run was left running by a previous central: marked interrupted");
        recovered.push(id);
    }
    Ok(recovered)
}

/// Final `summary.json` (and sweep CSVs), final `metadata.json`, then the `run_end` event.
/// Files come first so a browser reacting to `run_end` finds them.
fn write_final(
    store: &Store,
    hub: &Hub,
    log: &mut EventLog,
    meta: &mut RunMetadata,
    outcomes: &HashMap<String, Outcome>,
) -> Result<RunSummary, StoreError> {
    let now = now_s();
    meta.ended_at_s = Some(now);
    meta.ended_at = Some(rfc3339(now));
    let mut summary = summary::build(meta, outcomes);
    if meta.spec.test_type() == TestType::LlmSweep {
        let events = crate::store::parse_events(&store.events(&meta.run_id).unwrap_or_default());
        for s in summary.machines.iter_mut().filter(|s| s.status == Some(MachineRunStatus::Complete)) {
            s.files = write_sweep_csvs(store, &meta.run_id, &s.machine_id, &events)?;
        }
    }
    store.write_summary(&summary)?;
    store.write_metadata(meta)?;
    let line = run_end_line(meta, Some(&summary));
    log.append(&line)?;
    hub.publish_line(line.into());
    tracing::info!(run_id = %meta.run_id, status = meta.status.as_str(), "run ended");
    Ok(summary)
}

/// The `run_end` event line.
fn run_end_line(meta: &RunMetadata, summary: Option<&RunSummary>) -> String {
    json!({
        "type": RUN_END,
        "run_id": meta.run_id,
        "status": meta.status,
        "reason": meta.reason,
        "ended_at_s": meta.ended_at_s.unwrap_or_else(now_s),
        "summary": summary,
    })
    .to_string()
}

/// Sends `run_end` to browsers without storing it (when the run's files cannot be written).
pub fn publish_run_end(hub: &Hub, meta: &RunMetadata, summary: Option<&RunSummary>) {
    hub.publish_line(run_end_line(meta, summary).into());
}

/// Writes `<machine_id>.requests.csv`, `.summary.csv` and `.load_times.csv` from the machine's
/// `sweep_row` and `sweep_done` events; returns the file names written.
pub fn write_sweep_csvs(
    store: &Store,
    run_id: &str,
    machine_id: &str,
    events: &[Value],
) -> Result<Vec<String>, StoreError> {
    let mine = |kind: &'static str| {
        events.iter().filter(move |e| {
            e.get("machine_id").and_then(Value::as_str) == Some(machine_id)
                && e.get("type").and_then(Value::as_str) == Some(kind)
        })
    };
    let requests: Vec<&Map<String, Value>> = mine("sweep_row").filter_map(|e| e.get("payload")?.as_object()).collect();
    let done = mine("sweep_done").filter_map(|e| e.get("payload")).next_back();
    let rows = |key: &str| -> Vec<&Map<String, Value>> {
        done.and_then(|d| d.get(key))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
            .collect()
    };
    let mut written = Vec::new();
    for (name, header, rows) in [
        ("requests.csv", REQUESTS_CSV_HEADER, requests),
        ("summary.csv", SUMMARY_CSV_HEADER, rows("summary_rows")),
        ("load_times.csv", LOAD_TIMES_CSV_HEADER, rows("load_time_rows")),
    ] {
        let file = format!("{machine_id}.{name}");
        store.write_file(run_id, &file, csv_bytes(header, &rows).as_bytes())?;
        written.push(file);
    }
    Ok(written)
}

/// CSV text with `header` first; keys a row has beyond the header are appended as extra columns
/// (sorted) so nothing an agent sent is dropped.
pub fn csv_bytes(header: &[&str], rows: &[&Map<String, Value>]) -> String {
    let mut columns: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let mut extra: Vec<String> =
        rows.iter().flat_map(|r| r.keys()).filter(|k| !header.contains(&k.as_str())).cloned().collect();
    extra.sort();
    extra.dedup();
    columns.extend(extra);
    let mut w = csv::Writer::from_writer(Vec::new());
    // Writing to a Vec cannot fail.
    let _ = w.write_record(&columns);
    for r in rows {
        let _ = w.write_record(columns.iter().map(|c| cell(r.get(c))));
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, new_run_id};
    use bench_shared::job::JobSpec;
    use bench_shared::run::MachineRecord;

    fn record(id: &str, status: MachineRunStatus) -> MachineRecord {
        MachineRecord {
            machine_id: id.into(),
            label: id.into(),
            agent_base_url: "http://127.0.0.1:9".into(),
            notes: None,
            status,
            reason: None,
            job_id: None,
            engine: None,
            models: vec![],
            hardware: None,
            capabilities: None,
        }
    }

    /// What a crash leaves: metadata still `running`, events up to the crash.
    #[test]
    fn crashed_runs_are_recovered_as_interrupted_from_their_events() {
        let dir = std::env::temp_dir().join(format!("central-recover-{}", uuid::Uuid::new_v4().simple()));
        let store = Store::open(&dir).unwrap();
        let run_id = new_run_id(now_s());
        store.create_run(&run_id).unwrap();
        let spec = JobSpec::from_json(&json!({"model": "m", "prompt": "p"}), 0).unwrap();
        let meta = RunMetadata {
            run_id: run_id.clone(),
            test_type: spec.test_type(),
            models: vec!["m".into()],
            prompt: Some("p".into()),
            spec,
            status: RunStatus::Running,
            reason: None,
            started_at: rfc3339(now_s()),
            started_at_s: now_s(),
            ended_at: None,
            ended_at_s: None,
            machines: vec![
                record("done", MachineRunStatus::Running),
                record("mid", MachineRunStatus::Running),
                record("off", MachineRunStatus::Skipped),
            ],
        };
        store.write_metadata(&meta).unwrap();
        let mut log = store.event_log(&run_id).unwrap();
        for e in [
            json!({"type": "run_start", "run_id": run_id}),
            json!({"type": "machine_status", "machine_id": "done", "status": "running", "job_id": "j1"}),
            json!({"type": "llm_token", "machine_id": "mid", "seq": 1, "payload": {"text": "par", "repeat_index": 0}}),
            json!({"type": "job_done", "machine_id": "done", "seq": 1, "payload": {"gen_tokens": 3, "gen_tokens_per_s": 9.0}}),
        ] {
            log.append(&e.to_string()).unwrap();
        }
        assert_eq!(recover_interrupted(&store).unwrap(), vec![run_id.clone()]);
        let meta = store.metadata(&run_id).unwrap();
        assert_eq!(meta.status, RunStatus::Interrupted);
        let status: Vec<_> = meta.machines.iter().map(|m| m.status).collect();
        use MachineRunStatus::*;
        assert_eq!(status, vec![Complete, Interrupted, Skipped]);
        assert_eq!(meta.machines[0].job_id.as_deref(), Some("j1"));
        let summary = store.summary(&run_id).unwrap().unwrap();
        assert_eq!(summary.winner.as_deref(), Some("done"));
        assert_eq!(summary.machines[0].gen_tokens, Some(3));
        let events = crate::store::parse_events(&store.events(&run_id).unwrap());
        assert_eq!(events.last().unwrap()["type"], "run_end");
        assert_eq!(events.last().unwrap()["status"], "interrupted");
        // A second start finds nothing left to recover.
        assert!(recover_interrupted(&store).unwrap().is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn csv_follows_header_and_keeps_extra_keys() {
        let row = json!({"b": 2, "a": "x,y", "zz": true, "n": null}).as_object().cloned().unwrap();
        let text = csv_bytes(&["a", "b", "n"], &[&row]);
        assert_eq!(text, "a,b,n,zz\n\"x,y\",2,,true\n");
    }
}
