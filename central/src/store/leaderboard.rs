//! `GET /api/leaderboard`: per machine, model, engine and engine version, the best run and the
//! mean with its interval over every complete run — computed from the run index, no file read.

use std::collections::HashMap;

use bench_shared::compare::{Metric, unit};
use bench_shared::engine::EngineKind;
use bench_shared::run::RunStatus;
use bench_shared::share::{BoardRow, BoardRun, Leaderboard, board_stats, sort_rows};

use super::index::RunIndex;

/// What the leaderboard ranks on and which runs it counts.
#[derive(Debug, Clone, PartialEq)]
pub struct BoardQuery {
    pub metric: Metric,
    /// Case-insensitive substring of the machine's model in a run.
    pub model: Option<String>,
    /// Case-insensitive substring of "<engine kind> <engine version>" (e.g. `ollama`, `0.5.1`).
    pub engine: Option<String>,
    /// Runs started at or after this epoch second.
    pub since_s: Option<f64>,
}

type Key = (String, String, Option<EngineKind>, Option<String>);

/// The leaderboard of the indexed runs. Only complete runs count (a partial run's figures were
/// raced against fewer machines than it was meant for), and only machines that completed them.
pub fn build(index: &RunIndex, q: &BoardQuery) -> Leaderboard {
    let model = q.model.as_ref().map(|m| m.to_lowercase());
    let engine = q.engine.as_ref().map(|e| e.to_lowercase());
    let mut groups: HashMap<Key, BoardRow> = HashMap::new();
    let mut order: Vec<Key> = Vec::new();
    let mut runs_considered = 0;
    for (entry, facts, figures) in index.each() {
        if facts.status != RunStatus::Complete || q.since_s.is_some_and(|t| facts.started_at_s < t) {
            continue;
        }
        let mut counted = false;
        for m in figures {
            let Some(fact) = facts.machines.iter().find(|f| f.machine_id == m.machine_id) else { continue };
            let machine_model = m.model.as_deref().unwrap_or_default().to_owned();
            if model.as_ref().is_some_and(|want| !machine_model.to_lowercase().contains(want)) {
                continue;
            }
            let kind = m.engine.or(fact.engine.as_ref().map(|e| e.kind));
            let version = fact.engine.as_ref().and_then(|e| e.version.as_deref().map(str::to_owned));
            let engine_text =
                format!("{} {}", kind.map(|k| k.as_str()).unwrap_or_default(), version.as_deref().unwrap_or_default())
                    .to_lowercase();
            if engine.as_ref().is_some_and(|want| !engine_text.contains(want)) {
                continue;
            }
            let Some(fig) = m.figures.iter().find(|f| f.metric == q.metric) else { continue };
            counted = true;
            let key: Key = (m.machine_id.to_string(), machine_model.clone(), kind, version.clone());
            // Runs come newest first: the first one seen names the row (label, hardware).
            let row = groups.entry(key.clone()).or_insert_with(|| {
                order.push(key);
                BoardRow {
                    machine_id: m.machine_id.to_string(),
                    label: fact.label.to_string(),
                    model: machine_model,
                    engine: kind,
                    engine_version: version,
                    hardware: fact.hardware.as_deref().map(str::to_owned),
                    runs: 0,
                    best: f64::NAN,
                    best_run_id: String::new(),
                    mean: f64::NAN,
                    geomean: None,
                    ci95: None,
                    excluded_runs: 0,
                    run_list: Vec::new(),
                }
            });
            if fig.flagged {
                row.excluded_runs += 1;
                continue;
            }
            row.run_list.push(BoardRun {
                run_id: entry.run_id.clone(),
                value: fig.mean,
                n: fig.n,
                started_at: entry.started_at.clone(),
            });
        }
        if counted {
            runs_considered += 1;
        }
    }
    let mut rows: Vec<BoardRow> = order
        .into_iter()
        .filter_map(|k| groups.remove(&k))
        .filter_map(|mut row| {
            let stats = board_stats(q.metric, &mut row.run_list)?;
            row.runs = row.run_list.len();
            row.best = stats.best;
            row.best_run_id = stats.best_run_id;
            row.mean = stats.mean;
            row.geomean = stats.geomean;
            row.ci95 = stats.ci95;
            Some(row)
        })
        .collect();
    sort_rows(q.metric, &mut rows);
    Leaderboard {
        metric: q.metric,
        unit: unit(q.metric).to_owned(),
        higher_is_better: q.metric.higher_is_better(),
        model: q.model.clone(),
        engine: q.engine.clone(),
        since_s: q.since_s,
        runs_considered,
        rows,
    }
}
