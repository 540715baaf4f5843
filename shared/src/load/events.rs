//! The event payloads of load jobs: `load_progress` (once a second), `load_requests` (the
//! records of the requests that finished since the last one: the rows of `requests.csv`),
//! `load_step` (a capacity step ended) and `load_done` (the job's result).

use serde::{Deserialize, Serialize};

use super::record::RequestRecord;
use super::search::{SearchMode, StopReason};
use super::spec::Slo;
use super::summary::{LoadSummary, SloCheck};
use crate::engine::EngineKind;
use crate::job::TestType;

/// Where a load stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadPhase {
    /// Sending warm-up requests (in no figure).
    Warmup,
    /// Sending measured requests.
    Measure,
    /// Every request sent; waiting for the last answers.
    Drain,
}

/// `load_progress`: once a second while a load (or capacity step) runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadProgress {
    /// Capacity jobs: the step (from 0) and its level; `None` for `llm_load`.
    pub step: Option<u32>,
    pub level: Option<f64>,
    pub phase: LoadPhase,
    /// Seconds since the load (or step) started.
    pub elapsed_s: f64,
    pub target_rps: Option<f64>,
    pub concurrency: Option<u32>,
    pub in_flight: u32,
    /// Requests sent so far, warm-ups included.
    pub sent: u64,
    /// Measured requests completed / failed so far.
    pub completed: u64,
    pub errors: u64,
    /// Measured requests sent per second since the window opened.
    pub achieved_rps: Option<f64>,
    /// Requests (of any phase) that completed in the last interval, per second.
    pub throughput_rps: f64,
    /// Over the measured requests completed so far.
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p99_ms: Option<f64>,
    pub e2e_p99_ms: Option<f64>,
}

/// `load_requests`: the records of requests that ended since the previous one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadRequests {
    pub step: u32,
    pub rows: Vec<RequestRecord>,
}

/// One step of a capacity search: the `load_step` payload and a point of the curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityStep {
    /// From 0, over every repeat.
    pub step: u32,
    /// Which search (from 0).
    pub repeat: u32,
    /// The offered level: req/s (rate search) or concurrent requests.
    pub level: f64,
    pub pass: bool,
    pub slo: SloCheck,
    pub summary: LoadSummary,
}

/// The `load_step` event is a finished [`CapacityStep`].
pub type LoadStep = CapacityStep;

/// How one search ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchOutcome {
    pub capacity: Option<f64>,
    pub first_failing: Option<f64>,
    pub stopped: StopReason,
    pub steps: u32,
}

/// `load_done.capacity`: the result of `llm_capacity`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityResult {
    pub search: SearchMode,
    /// "req/s" or "concurrent requests".
    pub unit: String,
    pub slo: Slo,
    pub percentile: f64,
    pub resolution_pct: f64,
    /// The highest level that met the SLO (the median over the searches; a search where nothing
    /// passed counts as 0); `None` when no level met it.
    pub capacity: Option<f64>,
    /// The lowest failing level (median over the searches that found one).
    pub first_failing: Option<f64>,
    /// Each search's outcome (the verdict's repeats).
    pub searches: Vec<SearchOutcome>,
    /// Every step, in the order run.
    pub curve: Vec<CapacityStep>,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

impl CapacityResult {
    /// The result of finished searches.
    pub fn new(
        search: SearchMode,
        slo: Slo,
        percentile: f64,
        resolution_pct: f64,
        searches: Vec<SearchOutcome>,
        curve: Vec<CapacityStep>,
    ) -> CapacityResult {
        let any = searches.iter().any(|s| s.capacity.is_some());
        CapacityResult {
            search,
            unit: search.unit().to_owned(),
            slo,
            percentile,
            resolution_pct,
            capacity: if any { median(searches.iter().map(|s| s.capacity.unwrap_or(0.0)).collect()) } else { None },
            first_failing: median(searches.iter().filter_map(|s| s.first_failing).collect()),
            searches,
            curve,
        }
    }

    /// The step whose figures stand for the result: the first search's step at its capacity, or
    /// its lowest step when nothing passed.
    pub fn representative(&self) -> Option<&CapacityStep> {
        let first: Vec<&CapacityStep> = self.curve.iter().filter(|s| s.repeat == 0).collect();
        let at = self.searches.first().and_then(|s| s.capacity);
        match at {
            Some(c) => first.iter().copied().find(|s| s.pass && s.level == c),
            None => first.iter().copied().min_by(|a, b| a.level.total_cmp(&b.level)),
        }
    }
}

/// `load_done`: the result of an `llm_load` or `llm_capacity` job (and what `bench-agent load
/// --json` / `capacity --json` print).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadDone {
    pub test_type: TestType,
    pub model: String,
    pub engine: EngineKind,
    pub seed: u64,
    /// `llm_load`: the load. `llm_capacity`: the step at capacity (see `summary_step`).
    #[serde(flatten)]
    pub summary: LoadSummary,
    /// `llm_capacity`: which step the top-level figures are from.
    #[serde(default)]
    pub summary_step: Option<u32>,
    #[serde(default)]
    pub capacity: Option<CapacityResult>,
    /// `output_tok_s ÷` the agent's `client_ceiling.tok_s`: at 0.5 and above the agent's own
    /// measuring path may limit the figures (the `client_ceiling` warning). `None` when unknown.
    #[serde(default)]
    pub ceiling_ratio: Option<f64>,
    /// Caveats a reader of the numbers must know.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::record::tests::done;
    use crate::load::spec::LoadLevel;
    use crate::load::summary::{check_slo, summarize};

    fn step(step: u32, level: f64, pass: bool) -> CapacityStep {
        let rs = vec![done(0, 0.0, 10.0, 1.0, 3)];
        let level_ = LoadLevel { rate_rps: Some(level), concurrency: None };
        let summary = summarize(&rs, level_, Some(1.0 / level), None);
        let slo = check_slo(&rs, &summary, &Slo { ttft_ms: Some(1e6), ..Default::default() }, 99.0, 100.0);
        CapacityStep { step, repeat: 0, level, pass, slo, summary }
    }

    #[test]
    fn capacity_is_the_median_of_the_searches() {
        let o = |c: Option<f64>, f: Option<f64>| SearchOutcome {
            capacity: c,
            first_failing: f,
            stopped: StopReason::Converged,
            steps: 4,
        };
        let slo = Slo { ttft_ms: Some(500.0), ..Default::default() };
        let curve = vec![step(0, 1.0, true), step(1, 2.0, true), step(2, 4.0, false), step(3, 3.0, false)];
        let r = CapacityResult::new(
            SearchMode::Rate,
            slo,
            99.0,
            5.0,
            vec![o(Some(2.0), Some(3.0)), o(Some(3.0), Some(3.2)), o(None, Some(1.0))],
            curve,
        );
        assert_eq!((r.capacity, r.first_failing, r.unit.as_str()), (Some(2.0), Some(3.0), "req/s"));
        assert_eq!(r.representative().map(|s| s.step), Some(1));
        let nothing = CapacityResult::new(SearchMode::Rate, slo, 99.0, 5.0, vec![o(None, Some(1.0))], vec![]);
        assert_eq!((nothing.capacity, nothing.representative()), (None, None));
    }

    #[test]
    fn load_done_flattens_its_summary() {
        let s = step(0, 2.0, true);
        let d = LoadDone {
            test_type: TestType::LlmLoad,
            model: "m".into(),
            engine: EngineKind::Mock,
            seed: 42,
            summary: s.summary.clone(),
            summary_step: None,
            capacity: None,
            ceiling_ratio: None,
            notes: vec![],
        };
        let v = serde_json::to_value(&d).unwrap();
        for k in ["requests_completed", "achieved_rps", "goodput_rps", "ttft_ms", "send_lateness_ms", "under_delivered"]
        {
            assert!(v.get(k).is_some(), "{k} in {v}");
        }
        assert_eq!(serde_json::from_value::<LoadDone>(v).unwrap(), d);
    }
}
