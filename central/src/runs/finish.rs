//! The end of a run: final `metadata.json`, `summary.json`, sweep CSVs, and the `run_end` event.

use std::collections::HashMap;

use bench_shared::event::{Decoded, Event};
use bench_shared::feed::{CentralEvent, StoredLine};
use bench_shared::job::TestType;
use bench_shared::run::{MachineRunStatus, RunMetadata, RunStatus, RunSummary};
use bench_shared::sweep::{CsvRow, LoadRow, RequestRow, SummaryRow, csv_text};
use serde_json::{Map, Value};

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
    summary::record_starts(meta, outcomes);
    let mut summary = summary::build(meta, outcomes);
    match meta.spec.test_type() {
        TestType::LlmSweep => {
            let events = StoredLine::parse_all(&store.events(&meta.run_id).unwrap_or_default());
            for s in summary.machines.iter_mut().filter(|s| s.status == Some(MachineRunStatus::Complete)) {
                s.files = write_sweep_csvs(store, &meta.run_id, &s.machine_id, &events)?;
            }
        }
        TestType::LlmLoad | TestType::LlmCapacity => {
            let events = StoredLine::parse_all(&store.events(&meta.run_id).unwrap_or_default());
            for s in summary.machines.iter_mut() {
                s.files = write_load_csv(store, &meta.run_id, &s.machine_id, &events)?;
            }
        }
        TestType::LlmGenerate | TestType::ImageGenerate | TestType::Transcribe | TestType::Compute => {}
    }
    store.write_summary(&summary)?;
    store.write_metadata(meta)?;
    let line = CentralEvent::run_end(meta, now, Some(&summary)).line();
    log.append(&line.text)?;
    hub.publish(line);
    tracing::info!(run_id = %meta.run_id, status = meta.status.as_str(), "run ended");
    Ok(summary)
}

/// Sends `run_end` to browsers without storing it (when the run's files cannot be written).
pub fn publish_run_end(hub: &Hub, meta: &RunMetadata, summary: Option<&RunSummary>) {
    hub.publish_event(&CentralEvent::run_end(meta, meta.ended_at_s.unwrap_or_else(now_s), summary));
}

/// Writes `<machine_id>.requests.csv`, `.summary.csv` and `.load_times.csv` from the machine's
/// `sweep_row` and `sweep_done` events, through the same row types the agent writes; returns the
/// file names written. Keys of a neighbouring agent version that the types do not know are not
/// columns here; they stay in `events.ndjson`, like a row that does not parse (logged).
pub fn write_sweep_csvs(
    store: &Store,
    run_id: &str,
    machine_id: &str,
    events: &[StoredLine],
) -> Result<Vec<String>, StoreError> {
    let mine = events.iter().filter_map(|line| match line {
        StoredLine::Agent(r) if r.env().machine_id == machine_id => match &r.received.event {
            Decoded::Known(e) => Some(e),
            _ => None,
        },
        _ => None,
    });
    let mut requests: Vec<&Map<String, Value>> = Vec::new();
    let mut done = None;
    for event in mine {
        match event {
            Event::SweepRow(row) => requests.push(row),
            Event::SweepDone(d) => done = Some(d),
            _ => {}
        }
    }
    let summary: Vec<&Map<String, Value>> = done.iter().flat_map(|d| d.summary_rows.iter()).collect();
    let load_times: Vec<&Map<String, Value>> = done.iter().flat_map(|d| d.load_time_rows.iter()).collect();
    let files = [
        ("requests.csv", sweep_csv::<RequestRow>(machine_id, &requests)),
        ("summary.csv", sweep_csv::<SummaryRow>(machine_id, &summary)),
        ("load_times.csv", sweep_csv::<LoadRow>(machine_id, &load_times)),
    ];
    let mut written = Vec::new();
    for (name, text) in files {
        let file = format!("{machine_id}.{name}");
        store.write_file(run_id, &file, text.as_bytes())?;
        written.push(file);
    }
    Ok(written)
}

/// Writes `<machine_id>.requests.csv` (one row per request, warm-ups flagged) from the machine's
/// `load_requests` events, when it sent any (a machine that failed half-way keeps what it
/// measured); returns the file names written.
pub fn write_load_csv(
    store: &Store,
    run_id: &str,
    machine_id: &str,
    events: &[StoredLine],
) -> Result<Vec<String>, StoreError> {
    let rows: Vec<&bench_shared::load::RequestRecord> = events
        .iter()
        .filter_map(|line| match line {
            StoredLine::Agent(r) if r.env().machine_id == machine_id => match &r.received.event {
                Decoded::Known(Event::LoadRequests(batch)) => Some(batch.rows.iter()),
                _ => None,
            },
            _ => None,
        })
        .flatten()
        .collect();
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let owned: Vec<bench_shared::load::RequestRecord> = rows.into_iter().cloned().collect();
    let text = csv_text(&owned).unwrap_or_else(|e| {
        tracing::error!(machine_id, error = %e, "requests.csv could not be written");
        <bench_shared::load::RequestRecord as CsvRow>::HEADER.join(",") + "\n"
    });
    let file = format!("{machine_id}.requests.csv");
    store.write_file(run_id, &file, text.as_bytes())?;
    Ok(vec![file])
}

/// CSV text of the `T` rows among `rows` (JSON objects as the agent sent them), header first.
pub fn sweep_csv<T: CsvRow>(machine_id: &str, rows: &[&Map<String, Value>]) -> String {
    let typed: Vec<T> = rows
        .iter()
        .filter_map(|row| {
            serde_json::from_value::<T>(Value::Object((*row).clone()))
                .inspect_err(
                    |e| tracing::warn!(machine_id, error = %e, "sweep CSV row skipped (kept in events.ndjson)"),
                )
                .ok()
        })
        .collect();
    // Serialising plain rows into memory fails only on a row type csv cannot express (tested).
    csv_text(&typed).unwrap_or_else(|e| {
        tracing::error!(machine_id, error = %e, "sweep CSV could not be written");
        T::HEADER.join(",") + "\n"
    })
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
    use serde_json::json;
    #[test]
    fn csv_follows_header_and_keeps_extra_keys() {
        let row = json!({"b": 2, "a": "x,y", "zz": true, "n": null}).as_object().cloned().unwrap();
        let text = csv_bytes(&["a", "b", "n"], &[&row]);
        assert_eq!(text, "a,b,n,zz\n\"x,y\",2,,true\n");
    }

    #[test]
    fn csv_rows_are_typed_and_unparseable_rows_are_left_to_the_event_log() {
        let good = serde_json::to_value(LoadRow { model: "m, 1".into(), par: 2, ..Default::default() }).unwrap();
        let mut extra = good.clone();
        extra.as_object_mut().unwrap().insert("zz".into(), json!(true));
        let bad = json!({"model": 3});
        let rows = [&good, &bad, &extra].map(|v| v.as_object().unwrap());
        let text = sweep_csv::<LoadRow>("a", &rows);
        let mut lines = text.lines();
        assert_eq!(lines.next().unwrap(), LoadRow::HEADER.join(","));
        let rows: Vec<&str> = lines.collect();
        assert_eq!(rows.len(), 2, "{text}");
        assert_eq!(rows[0], rows[1], "an unknown key is no column");
        assert!(rows[0].starts_with(",\"m, 1\",0,2,"), "{}", rows[0]);
        assert_eq!(sweep_csv::<SummaryRow>("a", &[]), format!("{}\n", SummaryRow::HEADER.join(",")));
    }
}
