//! The in-memory index of stored runs that `GET /api/runs` lists and filters from, and that
//! `GET /api/leaderboard` ranks machines from, so a request reads no file however many runs are
//! stored. The files stay the record: [`super::Store`] builds the index from them once at
//! start-up and updates it on every write and delete it makes.

use std::collections::BTreeMap;

use bench_shared::compare::Metric;
use bench_shared::engine::EngineKind;
use bench_shared::run::{MachineLabel, MachineRunStatus, RunListEntry, RunMetadata, RunPage, RunStatus, RunSummary};

/// Every stored run by id (ids sort chronologically).
#[derive(Debug, Default)]
pub struct RunIndex {
    runs: BTreeMap<String, Indexed>,
}

#[derive(Debug)]
struct Indexed {
    entry: RunListEntry,
    facts: RunFacts,
    /// Per machine that completed: its warm figures, from `summary.json` (empty until then).
    figures: Vec<MachineFigures>,
}

/// What the leaderboard reads of one machine in one run's `summary.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineFigures {
    pub machine_id: String,
    pub model: Option<String>,
    pub engine: Option<EngineKind>,
    pub figures: Vec<MetricFigure>,
}

/// One metric of one machine in one run.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricFigure {
    pub metric: Metric,
    /// Mean over the run's warm repeats.
    pub mean: f64,
    pub n: usize,
    /// A fairness warning on this machine made the metric incomparable in this run.
    pub flagged: bool,
}

/// The machines that completed in `summary`, with their figures from its comparison.
fn figures_of(summary: &RunSummary) -> Vec<MachineFigures> {
    let Some(c) = summary.comparison.as_ref().and_then(|c| c.text()) else { return Vec::new() };
    summary
        .machines
        .iter()
        .filter(|m| m.status == Some(MachineRunStatus::Complete))
        .map(|m| {
            let figures = c
                .metrics
                .iter()
                .filter_map(|stats| {
                    let s = stats.machines.iter().find(|s| s.machine_id == m.machine_id)?;
                    let mean = s.mean.filter(|v| v.is_finite())?;
                    let flagged = c.fairness.warnings.iter().any(|w| {
                        w.machine_id.as_deref().is_none_or(|id| id == m.machine_id) && w.affects.contains(&stats.metric)
                    });
                    Some(MetricFigure { metric: stats.metric, mean, n: s.n, flagged })
                })
                .collect();
            MachineFigures {
                machine_id: m.machine_id.clone(),
                model: m.model.clone().or_else(|| summary.models.first().cloned()),
                engine: m.engine,
                figures,
            }
        })
        .collect()
}

/// What the `GET /api/runs` filters read of a run's `metadata.json` (a small copy, so ten
/// thousand runs take a few MB; a filter on anything else must add it here).
#[derive(Debug, Clone, PartialEq)]
pub struct RunFacts {
    pub models: Vec<String>,
    pub machines: Vec<MachineFacts>,
    pub status: RunStatus,
    pub started_at_s: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MachineFacts {
    pub machine_id: String,
    pub label: String,
    pub engine: Option<EngineFacts>,
    /// The hardware fingerprint in one line (leaderboard).
    pub hardware: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EngineFacts {
    pub kind: EngineKind,
    pub version: Option<String>,
}

impl From<&RunMetadata> for RunFacts {
    fn from(m: &RunMetadata) -> Self {
        RunFacts {
            models: m.models.clone(),
            machines: m
                .machines
                .iter()
                .map(|r| MachineFacts {
                    machine_id: r.machine_id.clone(),
                    label: r.label.clone(),
                    engine: r.engine.as_ref().map(|e| EngineFacts { kind: e.kind, version: e.version.clone() }),
                    hardware: r.hardware.as_ref().map(|h| h.one_line()).filter(|h| !h.is_empty()),
                })
                .collect(),
            status: m.status,
            started_at_s: m.started_at_s,
        }
    }
}

impl RunIndex {
    /// Adds or replaces a run from its files.
    pub fn insert(&mut self, meta: &RunMetadata, summary: Option<&RunSummary>) {
        let entry = list_entry(meta, summary);
        let figures = summary.map(figures_of).unwrap_or_default();
        self.runs.insert(meta.run_id.clone(), Indexed { entry, facts: meta.into(), figures });
    }

    /// `metadata.json` was written: the run's entry follows it (its winner and figures, from
    /// `summary.json`, are kept).
    pub fn put_metadata(&mut self, meta: &RunMetadata) {
        let old = self.runs.remove(&meta.run_id);
        let mut entry = list_entry(meta, None);
        entry.winner = old.as_ref().and_then(|r| r.entry.winner.clone());
        let figures = old.map(|r| r.figures).unwrap_or_default();
        self.runs.insert(meta.run_id.clone(), Indexed { entry, facts: meta.into(), figures });
    }

    /// `summary.json` was written (listed runs show its winner; the leaderboard its figures).
    pub fn put_summary(&mut self, summary: &RunSummary) {
        if let Some(r) = self.runs.get_mut(&summary.run_id) {
            r.entry.winner = summary.winner.clone();
            r.figures = figures_of(summary);
        }
    }

    /// Every run, newest first: its list entry, its facts and its machines' figures.
    pub fn each(&self) -> impl Iterator<Item = (&RunListEntry, &RunFacts, &[MachineFigures])> {
        self.runs.values().rev().map(|r| (&r.entry, &r.facts, r.figures.as_slice()))
    }

    pub fn remove(&mut self, run_id: &str) {
        self.runs.remove(run_id);
    }

    /// How many runs have each status, in the order each status is first met (oldest run first).
    pub fn status_counts(&self) -> Vec<(RunStatus, usize)> {
        let mut counts: Vec<(RunStatus, usize)> = Vec::new();
        for r in self.runs.values() {
            match counts.iter_mut().find(|(s, _)| *s == r.facts.status) {
                Some((_, n)) => *n += 1,
                None => counts.push((r.facts.status, 1)),
            }
        }
        counts
    }

    /// Every run id, newest first.
    pub fn ids(&self) -> Vec<String> {
        self.runs.keys().rev().cloned().collect()
    }

    /// One page, newest first, of the runs whose facts pass `keep`; `total` counts them all.
    pub fn page(&self, keep: impl Fn(&RunFacts) -> bool, limit: usize, offset: usize) -> RunPage {
        let mut total = 0;
        let mut runs = Vec::new();
        for r in self.runs.values().rev().filter(|r| keep(&r.facts)) {
            if total >= offset && runs.len() < limit {
                runs.push(r.entry.clone());
            }
            total += 1;
        }
        RunPage { runs, total, limit, offset }
    }
}

/// The list entry of a run.
pub fn list_entry(m: &RunMetadata, summary: Option<&RunSummary>) -> RunListEntry {
    let prompt_preview = m.prompt.as_ref().map(|p| {
        let mut s: String = p.chars().take(120).collect();
        if s.len() < p.len() {
            s.push('…');
        }
        s
    });
    RunListEntry {
        run_id: m.run_id.clone(),
        test_type: m.spec.test_type(),
        models: m.models.clone(),
        status: m.status,
        started_at: m.started_at.clone(),
        ended_at: m.ended_at.clone(),
        machines: m.machines.len(),
        prompt_preview,
        winner: summary.and_then(|s| s.winner.clone()),
        machine_labels: m
            .machines
            .iter()
            .map(|r| MachineLabel { machine_id: r.machine_id.clone(), label: r.label.clone() })
            .collect(),
        imported_from: m.imported.as_ref().map(|i| i.origin.clone().unwrap_or_else(|| "unknown".into())),
    }
}
