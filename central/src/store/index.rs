//! The in-memory index of stored runs that `GET /api/runs` lists and filters from, and that
//! `GET /api/leaderboard` ranks machines from, so a request reads no file however many runs are
//! stored. The files stay the record: [`super::Store`] builds the index from them once at
//! start-up and updates it on every write and delete it makes.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use bench_shared::compare::Metric;
use bench_shared::engine::EngineKind;
use bench_shared::run::{MachineLabel, MachineRunStatus, RunListEntry, RunMetadata, RunPage, RunStatus, RunSummary};

/// Every stored run by id (ids sort chronologically).
///
/// Kept small, since it grows with every stored run: the texts that recur from run to run (machine
/// ids, labels, hardware lines, models, engine versions) are shared, one copy each ([`Names`]),
/// and a list entry's models and machine labels are not stored twice: they are filled in from
/// the run's facts when a page is made.
#[derive(Debug, Default)]
pub struct RunIndex {
    runs: BTreeMap<String, Indexed>,
    names: Names,
}

/// One shared copy of each recurring text. Texts of deleted runs stay (a few per machine, model
/// and engine version ever seen).
#[derive(Debug, Default)]
struct Names(HashSet<Arc<str>>);

impl Names {
    fn get(&mut self, text: &str) -> Arc<str> {
        if let Some(t) = self.0.get(text) {
            return t.clone();
        }
        let t: Arc<str> = Arc::from(text);
        self.0.insert(t.clone());
        t
    }
}

#[derive(Debug)]
struct Indexed {
    /// The list entry without `models` and `machine_labels` (see [`Indexed::entry`]).
    entry: RunListEntry,
    facts: RunFacts,
    /// Per machine that completed: its warm figures, from `summary.json` (empty until then).
    figures: Vec<MachineFigures>,
}

/// What the leaderboard reads of one machine in one run's `summary.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineFigures {
    pub machine_id: Arc<str>,
    pub model: Option<Arc<str>>,
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
fn figures_of(summary: &RunSummary, names: &mut Names) -> Vec<MachineFigures> {
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
                machine_id: names.get(&m.machine_id),
                model: m.model.as_deref().or(summary.models.first().map(String::as_str)).map(|t| names.get(t)),
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
    pub models: Vec<Arc<str>>,
    pub machines: Vec<MachineFacts>,
    pub status: RunStatus,
    pub started_at_s: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MachineFacts {
    pub machine_id: Arc<str>,
    pub label: Arc<str>,
    pub engine: Option<EngineFacts>,
    /// The hardware fingerprint in one line (leaderboard).
    pub hardware: Option<Arc<str>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EngineFacts {
    pub kind: EngineKind,
    pub version: Option<Arc<str>>,
}

impl RunFacts {
    fn of(m: &RunMetadata, names: &mut Names) -> Self {
        RunFacts {
            models: m.models.iter().map(|t| names.get(t)).collect(),
            machines: m
                .machines
                .iter()
                .map(|r| MachineFacts {
                    machine_id: names.get(&r.machine_id),
                    label: names.get(&r.label),
                    engine: r
                        .engine
                        .as_ref()
                        .map(|e| EngineFacts { kind: e.kind, version: e.version.as_deref().map(|v| names.get(v)) }),
                    hardware: r
                        .hardware
                        .as_ref()
                        .map(|h| h.one_line())
                        .filter(|h| !h.is_empty())
                        .map(|h| names.get(&h)),
                })
                .collect(),
            status: m.status,
            started_at_s: m.started_at_s,
        }
    }
}

impl Indexed {
    fn new(meta: &RunMetadata, winner: Option<String>, figures: Vec<MachineFigures>, names: &mut Names) -> Self {
        let mut entry = list_entry(meta, None);
        entry.winner = winner;
        // Filled in from the facts when listed.
        entry.models = Vec::new();
        entry.machine_labels = Vec::new();
        Indexed { entry, facts: RunFacts::of(meta, names), figures }
    }

    /// The run's whole list entry.
    fn entry(&self) -> RunListEntry {
        let mut entry = self.entry.clone();
        entry.models = self.facts.models.iter().map(|m| m.to_string()).collect();
        entry.machine_labels = self
            .facts
            .machines
            .iter()
            .map(|m| MachineLabel { machine_id: m.machine_id.to_string(), label: m.label.to_string() })
            .collect();
        entry
    }
}

impl RunIndex {
    /// Adds or replaces a run from its files.
    pub fn insert(&mut self, meta: &RunMetadata, summary: Option<&RunSummary>) {
        let figures = summary.map(|s| figures_of(s, &mut self.names)).unwrap_or_default();
        let winner = summary.and_then(|s| s.winner.clone());
        let indexed = Indexed::new(meta, winner, figures, &mut self.names);
        self.runs.insert(meta.run_id.clone(), indexed);
    }

    /// `metadata.json` was written: the run's entry follows it (its winner and figures, from
    /// `summary.json`, are kept).
    pub fn put_metadata(&mut self, meta: &RunMetadata) {
        let old = self.runs.remove(&meta.run_id);
        let winner = old.as_ref().and_then(|r| r.entry.winner.clone());
        let figures = old.map(|r| r.figures).unwrap_or_default();
        let indexed = Indexed::new(meta, winner, figures, &mut self.names);
        self.runs.insert(meta.run_id.clone(), indexed);
    }

    /// `summary.json` was written (listed runs show its winner; the leaderboard its figures).
    pub fn put_summary(&mut self, summary: &RunSummary) {
        if let Some(r) = self.runs.get_mut(&summary.run_id) {
            r.entry.winner = summary.winner.clone();
            r.figures = figures_of(summary, &mut self.names);
        }
    }

    /// Every run, newest first: its list entry (without `models` and `machine_labels`: they are
    /// in the facts), its facts and its machines' figures.
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
                runs.push(r.entry());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(run_id: &str) -> RunMetadata {
        let machine = serde_json::json!({
            "machine_id": "m1", "label": "Box One", "agent_base_url": "http://a", "status": "complete",
            "engine": {"kind": "ollama", "base_url": "http://e", "version": "0.5.1", "reachable": true},
            "hardware": {"os": "Linux", "hostname": "box", "cpu_brand": "Some CPU", "cpu_logical_cores": 8,
                         "cpu_physical_cores": 4, "memory_total_bytes": 17179869184u64, "gpus": []}});
        crate::store::tests::meta_of(run_id, "qwen", RunStatus::Complete, machine)
    }

    #[test]
    fn texts_that_recur_from_run_to_run_are_kept_once_and_pages_are_whole() {
        let mut index = RunIndex::default();
        let (a, b) = ("2026-01-01_000000_aaaaaa", "2026-01-01_000001_bbbbbb");
        index.insert(&meta(a), None);
        index.put_metadata(&meta(b));
        index.put_metadata(&meta(b));
        let facts: Vec<&RunFacts> = index.each().map(|(_, f, _)| f).collect();
        let (fb, fa) = (&facts[0].machines[0], &facts[1].machines[0]);
        assert_eq!(fa.hardware.as_deref(), Some(fb.hardware.as_deref().expect("hardware line")));
        // One copy of each text, whatever the number of runs.
        assert!(Arc::ptr_eq(&fa.machine_id, &fb.machine_id));
        assert!(Arc::ptr_eq(&fa.label, &fb.label));
        assert!(Arc::ptr_eq(fa.hardware.as_ref().expect("a"), fb.hardware.as_ref().expect("b")));
        let (va, vb) =
            (fa.engine.as_ref().and_then(|e| e.version.clone()), fb.engine.as_ref().and_then(|e| e.version.clone()));
        assert!(Arc::ptr_eq(&va.expect("a"), &vb.expect("b")));
        assert!(Arc::ptr_eq(&facts[0].models[0], &facts[1].models[0]));
        assert_eq!(index.names.0.len(), 5, "m1, Box One, the hardware line, 0.5.1, qwen");
        // A page still lists each run's models and machine labels.
        let page = index.page(|_| true, 10, 0);
        assert_eq!(page.total, 2);
        for entry in &page.runs {
            assert_eq!(entry.models, vec!["qwen".to_owned()]);
            assert_eq!(entry.machine_labels, vec![MachineLabel { machine_id: "m1".into(), label: "Box One".into() }]);
            assert_eq!(entry, &list_entry(&meta(&entry.run_id), None));
        }
    }
}
