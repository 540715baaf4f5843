//! Runs stored before events were typed replay identically through the typed path.
//!
//! `tests/fixtures/before-typed-events/` holds three runs recorded with the central of commit
//! 27d0198 (events read by string key) over two mock-engine agents: a race with a skipped
//! machine, a sweep (with its CSVs), and a race whose second agent shut down mid-run. Each must
//! give the same `summary.json` and the same sweep CSVs through today's typed decoding (less the
//! statistics issue 20 moved to the log scale, see `before_ratios`), and every stored line must
//! read back typed and serialize to the same JSON.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use bench_central::runs::{finish, summary};
use bench_central::store::Store;
use bench_shared::event::Decoded;
use bench_shared::feed::StoredLine;
use bench_shared::job::TestType;
use bench_shared::run::{MachineRunStatus, RunMetadata, RunSummary};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/before-typed-events")
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    serde_json::from_str(&text).with_context(|| path.display().to_string())
}

fn runs() -> Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(fixtures())?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    dirs.sort();
    ensure!(dirs.len() == 3, "three fixture runs expected, found {}", dirs.len());
    Ok(dirs)
}

#[test]
fn stored_runs_give_the_same_summary_through_typed_events() -> Result<()> {
    for dir in runs()? {
        let meta: RunMetadata = read_json(&dir.join("metadata.json"))?;
        let stored: Value = read_json(&dir.join("summary.json"))?;
        let events = std::fs::read(dir.join("events.ndjson"))?;
        let outcomes = summary::outcomes_from_events(&events);
        let mut rebuilt = summary::build(&meta, &outcomes);
        // A sweep's summary also names the CSVs the end of the run writes (checked below).
        if meta.test_type == TestType::LlmSweep {
            for m in rebuilt.machines.iter_mut().filter(|m| m.status == Some(MachineRunStatus::Complete)) {
                m.files = ["requests", "summary", "load_times"].map(|f| format!("{}.{f}.csv", m.machine_id)).to_vec();
            }
        }
        let rebuilt = serde_json::to_value(rebuilt)?;
        let (old, new) = (before_ratios(&stored), before_ratios(&rebuilt));
        ensure!(old == new, "{}: summary differs\nstored:  {old}\nrebuilt: {new}", dir.display());
        // And the typed summary reads the stored file back to the same value.
        let typed: RunSummary = serde_json::from_value(stored.clone())?;
        ensure!(serde_json::to_value(&typed)? == stored, "{}: summary.json round trip", dir.display());
    }
    Ok(())
}

/// A summary without what issue 20 redefined after these runs were stored (intervals and
/// sentences on the log scale, geometric means, ratios, repeats needed): everything the typed
/// events decide — statuses, outcomes, figures, ranks, leaders, fairness, outputs, winner — must
/// still be the same.
fn before_ratios(summary: &Value) -> Value {
    let mut s = summary.clone();
    if let Some(c) = s.get_mut("comparison").and_then(Value::as_object_mut) {
        for m in c.get_mut("metrics").and_then(Value::as_array_mut).into_iter().flatten() {
            for x in m.get_mut("machines").and_then(Value::as_array_mut).into_iter().flatten() {
                for k in ["ci95", "geomean"] {
                    x.as_object_mut().map(|o| o.remove(k));
                }
            }
        }
        for v in c.get_mut("verdicts").and_then(Value::as_array_mut).into_iter().flatten() {
            for k in ["ci95_pct", "diff_pct", "ratio", "ratio_ci", "repeats_needed", "text"] {
                v.as_object_mut().map(|o| o.remove(k));
            }
        }
        if let Some(w) = c.get_mut("winner").and_then(Value::as_object_mut) {
            w.remove("reason");
            w.remove("repeats_needed");
        }
    }
    s
}

#[test]
fn every_stored_line_reads_back_typed_and_writes_the_same_json() -> Result<()> {
    let (mut central, mut known, mut total) = (0, 0, 0);
    for dir in runs()? {
        let text = std::fs::read_to_string(dir.join("events.ndjson"))?;
        for line in text.lines() {
            total += 1;
            let typed = StoredLine::parse(line).with_context(|| format!("{}: {line}", dir.display()))?;
            match &typed {
                StoredLine::Central(_) => central += 1,
                StoredLine::Agent(r) => {
                    ensure!(matches!(r.received.event, Decoded::Known(_)), "{}: not decoded: {line}", dir.display());
                    known += 1;
                }
            }
            let before: Value = serde_json::from_str(line)?;
            let after: Value = serde_json::from_str(&typed.line().text)?;
            ensure!(before == after, "{}: line changed\nbefore: {before}\nafter:  {after}", dir.display());
        }
    }
    ensure!(total == 286 && central > 10 && known + central == total, "{central} central + {known} agent of {total}");
    Ok(())
}

#[test]
fn sweep_csvs_are_written_the_same_from_typed_events() -> Result<()> {
    let sweep = runs()?.into_iter().find(|d| d.join("m1.requests.csv").exists()).context("the sweep fixture")?;
    let run_id = sweep.file_name().and_then(|n| n.to_str()).context("run id")?.to_owned();
    let tmp = tempfile::tempdir()?;
    let store = Store::open(tmp.path())?;
    store.create_run(&run_id)?;
    let events = StoredLine::parse_all(&std::fs::read(sweep.join("events.ndjson"))?);
    for machine in ["m1", "m2"] {
        let files = finish::write_sweep_csvs(&store, &run_id, machine, &events)?;
        ensure!(files.len() == 3, "{files:?}");
        for name in files {
            let written = std::fs::read_to_string(tmp.path().join("runs").join(&run_id).join(&name))?;
            let stored = std::fs::read_to_string(sweep.join(&name))?;
            ensure!(written == stored, "{name} differs\nstored:\n{stored}\nwritten:\n{written}");
        }
    }
    Ok(())
}
