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
/// `run_end`. Files come first so a browser reacting to `run_end` finds them.
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
    let end = json!({
        "type": RUN_END,
        "run_id": meta.run_id,
        "status": meta.status,
        "reason": meta.reason,
        "ended_at_s": now,
        "summary": summary,
    });
    let line = end.to_string();
    log.append(&line)?;
    hub.publish_line(line.into());
    tracing::info!(run_id = %meta.run_id, status = meta.status.as_str(), "run finished");
    Ok(summary)
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

    #[test]
    fn csv_follows_header_and_keeps_extra_keys() {
        let row = json!({"b": 2, "a": "x,y", "zz": true, "n": null}).as_object().cloned().unwrap();
        let text = csv_bytes(&["a", "b", "n"], &[&row]);
        assert_eq!(text, "a,b,n,zz\n\"x,y\",2,,true\n");
    }
}
