//! The in-memory index of stored runs that `GET /api/runs` lists and filters from, so a request
//! reads no file however many runs are stored. The files stay the record: [`super::Store`] builds
//! the index from them once at start-up and updates it on every write and delete it makes.

use std::collections::BTreeMap;

use bench_shared::job::JobSpec;
use bench_shared::run::{MachineLabel, RunListEntry, RunMetadata, RunPage, RunSummary};

/// Every stored run by id (ids sort chronologically).
#[derive(Debug, Default)]
pub struct RunIndex {
    runs: BTreeMap<String, Indexed>,
}

#[derive(Debug)]
struct Indexed {
    entry: RunListEntry,
    /// The metadata the filters read, without what no list or filter reads (per-machine
    /// capabilities, hardware, model details and notes; the prompt; the clock), so ten thousand
    /// runs take a few MB. A filter on one of those fields must read `metadata.json` instead.
    meta: RunMetadata,
}

impl RunIndex {
    /// Adds or replaces a run from its files.
    pub fn insert(&mut self, meta: &RunMetadata, summary: Option<&RunSummary>) {
        let entry = list_entry(meta, summary);
        self.runs.insert(meta.run_id.clone(), Indexed { entry, meta: slim(meta) });
    }

    /// `metadata.json` was written: the run's entry follows it (its winner, from `summary.json`,
    /// is kept).
    pub fn put_metadata(&mut self, meta: &RunMetadata) {
        let winner = self.runs.get(&meta.run_id).and_then(|r| r.entry.winner.clone());
        let mut entry = list_entry(meta, None);
        entry.winner = winner;
        self.runs.insert(meta.run_id.clone(), Indexed { entry, meta: slim(meta) });
    }

    /// `summary.json` was written (listed runs show its winner).
    pub fn put_summary(&mut self, summary: &RunSummary) {
        if let Some(r) = self.runs.get_mut(&summary.run_id) {
            r.entry.winner = summary.winner.clone();
        }
    }

    pub fn remove(&mut self, run_id: &str) {
        self.runs.remove(run_id);
    }

    /// Every run id, newest first.
    pub fn ids(&self) -> Vec<String> {
        self.runs.keys().rev().cloned().collect()
    }

    /// One page, newest first, of the runs whose metadata passes `keep`; `total` counts them all.
    pub fn page(&self, keep: impl Fn(&RunMetadata) -> bool, limit: usize, offset: usize) -> RunPage {
        let mut total = 0;
        let mut runs = Vec::new();
        for r in self.runs.values().rev().filter(|r| keep(&r.meta)) {
            if total >= offset && runs.len() < limit {
                runs.push(r.entry.clone());
            }
            total += 1;
        }
        RunPage { runs, total, limit, offset }
    }
}

/// `meta` without the fields the index does not keep (see [`Indexed::meta`]).
fn slim(meta: &RunMetadata) -> RunMetadata {
    let mut m = RunMetadata { prompt: None, clock: None, machines: Vec::new(), ..meta.clone() };
    if let JobSpec::LlmGenerate(g) = &mut m.spec {
        g.prompt = String::new();
    }
    m.machines = meta
        .machines
        .iter()
        .map(|r| bench_shared::run::MachineRecord {
            notes: None,
            models: Vec::new(),
            hardware: None,
            capabilities: None,
            ..r.clone()
        })
        .collect();
    m
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
    }
}
