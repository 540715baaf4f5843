//! Two stored capacity races, machine by machine: did a machine's capacity change from run A to
//! run B? (`GET /api/compare` when both runs are `llm_capacity`.) The same statistics as the
//! race's own verdict: each run's searches are the repeats, Welch's interval of the difference of
//! mean log capacities gives the interval of the ratio B ÷ A, Bonferroni over the machines.

use serde::{Deserialize, Serialize};

use super::stats::{Sample, welch};
use super::{CONFIDENCE, MIN_REPEATS};
use crate::engine::same_model;
use crate::load::{SearchMode, Slo};

/// What a stored capacity race contributes.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityRun {
    pub run_id: String,
    pub model: String,
    pub search: SearchMode,
    pub slo: Slo,
    pub percentile: f64,
    pub resolution_pct: f64,
    /// The machines that completed.
    pub machines: Vec<RunMachineCapacity>,
}

/// One machine of a stored capacity race.
#[derive(Debug, Clone, PartialEq)]
pub struct RunMachineCapacity {
    pub machine_id: String,
    pub label: String,
    /// Each search's capacity (`None`: no level met the SLO).
    pub searches: Vec<Option<f64>>,
}

/// How a machine's capacity moved from run A to run B.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapacityChangeStatus {
    /// Significantly more in run B.
    More,
    Less,
    Tie,
    /// Too few searches, no interval, or settings that differ.
    Undecided,
}

/// One machine in both runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityChange {
    pub machine_id: String,
    pub label: String,
    pub n_a: usize,
    pub n_b: usize,
    /// Geometric means of the searches (`null` when a search found no capacity).
    pub capacity_a: Option<f64>,
    pub capacity_b: Option<f64>,
    /// Run B ÷ run A.
    pub ratio: Option<f64>,
    pub ratio_ci: Option<[f64; 2]>,
    pub status: CapacityChangeStatus,
    pub text: String,
}

/// `GET /api/compare` over two capacity races.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityRunsComparison {
    /// Always `"capacity"`.
    pub kind: String,
    pub a: String,
    pub b: String,
    pub search: SearchMode,
    pub unit: String,
    pub min_effect_pct: f64,
    pub confidence: f64,
    pub settings_match: bool,
    /// Settings that differ between the runs (each makes every change undecided).
    pub warnings: Vec<String>,
    pub machines: Vec<CapacityChange>,
    pub only_in_a: Vec<String>,
    pub only_in_b: Vec<String>,
}

fn geo(v: &[Option<f64>]) -> Option<Vec<f64>> {
    let logs: Option<Vec<f64>> = v.iter().map(|c| c.filter(|x| *x > 0.0).map(f64::ln)).collect();
    logs.filter(|l| !l.is_empty())
}

fn fmt(x: f64) -> String {
    format!("{x:.2}")
}

/// Compares run B with run A, machine by machine.
pub fn compare_capacity_runs(a: &CapacityRun, b: &CapacityRun, min_effect_pct: f64) -> CapacityRunsComparison {
    let mut warnings = Vec::new();
    if a.search != b.search {
        warnings.push(format!("search differs: {} in A, {} in B", a.search.as_str(), b.search.as_str()));
    }
    if a.slo != b.slo || a.percentile != b.percentile {
        warnings.push(format!(
            "SLO differs: {} in A, {} in B",
            a.slo.describe(a.percentile),
            b.slo.describe(b.percentile)
        ));
    }
    if !same_model(&a.model, &b.model) {
        warnings.push(format!("model differs: {} in A, {} in B", a.model, b.model));
    }
    let settings_match = warnings.is_empty();
    let effect = min_effect_pct.max(a.resolution_pct).max(b.resolution_pct);
    let both: Vec<(&RunMachineCapacity, &RunMachineCapacity)> = a
        .machines
        .iter()
        .filter_map(|ma| b.machines.iter().find(|mb| mb.machine_id == ma.machine_id).map(|mb| (ma, mb)))
        .collect();
    let confidence = 1.0 - (1.0 - CONFIDENCE) / both.len().max(1) as f64;
    let level = {
        let s = format!("{:.2}", 100.0 * confidence);
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    };
    let unit = b.search.unit();
    let machines = both
        .iter()
        .map(|(ma, mb)| {
            let (la, lb) = (geo(&ma.searches), geo(&mb.searches));
            let sa = la.as_deref().and_then(Sample::of);
            let sb = lb.as_deref().and_then(Sample::of);
            let ratio = sa.zip(sb).map(|(x, y)| (y.mean - x.mean).exp());
            let ratio_ci = sa.zip(sb).and_then(|(x, y)| welch(&y, &x, confidence)).map(|d| [d.lo.exp(), d.hi.exp()]);
            let (n_a, n_b) = (ma.searches.len(), mb.searches.len());
            let e = 1.0 + effect / 100.0;
            let status = match (ratio, ratio_ci) {
                _ if !settings_match || n_a < MIN_REPEATS || n_b < MIN_REPEATS => CapacityChangeStatus::Undecided,
                (Some(r), Some([lo, _])) if lo > 1.0 && r >= e => CapacityChangeStatus::More,
                (Some(r), Some([_, hi])) if hi < 1.0 && r <= 1.0 / e => CapacityChangeStatus::Less,
                (Some(_), Some(_)) => CapacityChangeStatus::Tie,
                _ => CapacityChangeStatus::Undecided,
            };
            let name = if mb.label.is_empty() { &mb.machine_id } else { &mb.label };
            let figures = match (sa, sb) {
                (Some(x), Some(y)) => format!("{} → {} {unit}", fmt(x.mean.exp()), fmt(y.mean.exp())),
                _ => "a search found no capacity".to_owned(),
            };
            let ci = ratio_ci.map_or(String::new(), |[lo, hi]| format!(", {level}% CI {}–{}×", fmt(lo), fmt(hi)));
            let text = match (status, ratio) {
                (CapacityChangeStatus::More, Some(r)) => {
                    format!("run B sustains {}× as much on {name} ({figures}{ci})", fmt(r))
                }
                (CapacityChangeStatus::Less, Some(r)) => {
                    format!("run B sustains {}× as much on {name}: less ({figures}{ci})", fmt(r))
                }
                (CapacityChangeStatus::Tie, _) => format!("no change in capacity on {name} ({figures}{ci})"),
                _ if !settings_match => format!("{name}: not comparable ({}): {figures}", warnings.join("; ")),
                _ => format!("{name}: no verdict ({figures}; {n_a} and {n_b} searches, need ≥ {MIN_REPEATS} each)"),
            };
            CapacityChange {
                machine_id: mb.machine_id.clone(),
                label: mb.label.clone(),
                n_a,
                n_b,
                capacity_a: sa.map(|s| s.mean.exp()),
                capacity_b: sb.map(|s| s.mean.exp()),
                ratio,
                ratio_ci,
                status,
                text,
            }
        })
        .collect();
    let only = |x: &CapacityRun, y: &CapacityRun| -> Vec<String> {
        x.machines
            .iter()
            .filter(|m| !y.machines.iter().any(|o| o.machine_id == m.machine_id))
            .map(|m| m.machine_id.clone())
            .collect()
    };
    CapacityRunsComparison {
        kind: "capacity".into(),
        a: a.run_id.clone(),
        b: b.run_id.clone(),
        search: b.search,
        unit: unit.to_owned(),
        min_effect_pct: effect,
        confidence,
        settings_match,
        warnings,
        machines,
        only_in_a: only(a, b),
        only_in_b: only(b, a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, caps: &[(&str, &[f64])]) -> CapacityRun {
        CapacityRun {
            run_id: id.into(),
            model: "m".into(),
            search: SearchMode::Rate,
            slo: Slo { ttft_ms: Some(500.0), ..Default::default() },
            percentile: 99.0,
            resolution_pct: 5.0,
            machines: caps
                .iter()
                .map(|(m, v)| RunMachineCapacity {
                    machine_id: m.to_string(),
                    label: format!("{m} label"),
                    searches: v.iter().map(|x| Some(*x)).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn machine_by_machine_with_intervals() {
        let a = run("A", &[("m1", &[2.0, 2.1, 1.9]), ("m2", &[4.0, 4.0, 4.0]), ("old", &[1.0, 1.0, 1.0])]);
        let b = run("B", &[("m1", &[3.0, 3.1, 2.9]), ("m2", &[4.0, 4.0, 4.0]), ("new", &[1.0, 1.0, 1.0])]);
        let c = compare_capacity_runs(&a, &b, 2.0);
        assert!(c.settings_match);
        assert_eq!((c.only_in_a.clone(), c.only_in_b.clone()), (vec!["old".to_owned()], vec!["new".to_owned()]));
        let m1 = &c.machines[0];
        assert_eq!(m1.status, CapacityChangeStatus::More, "{m1:?}");
        assert!((m1.ratio.unwrap() - 1.5).abs() < 0.01, "{m1:?}");
        assert!(
            m1.text.starts_with("run B sustains 1.50× as much on m1 label (2.00 → 3.00 req/s, 97.5% CI"),
            "{}",
            m1.text
        );
        assert_eq!(c.machines[1].status, CapacityChangeStatus::Tie);
        let reversed = compare_capacity_runs(&b, &a, 2.0);
        assert_eq!(reversed.machines[0].status, CapacityChangeStatus::Less);
    }

    #[test]
    fn different_settings_or_few_searches_decide_nothing() {
        let a = run("A", &[("m1", &[2.0, 2.0, 2.0])]);
        let mut b = run("B", &[("m1", &[4.0, 4.0, 4.0])]);
        b.slo.ttft_ms = Some(200.0);
        let c = compare_capacity_runs(&a, &b, 2.0);
        assert!(!c.settings_match && c.warnings[0].starts_with("SLO differs"));
        assert_eq!(c.machines[0].status, CapacityChangeStatus::Undecided);
        let few = compare_capacity_runs(&run("A", &[("m1", &[2.0])]), &run("B", &[("m1", &[4.0])]), 2.0);
        assert_eq!(few.machines[0].status, CapacityChangeStatus::Undecided);
        assert!(few.machines[0].text.contains("need ≥ 3"), "{}", few.machines[0].text);
    }
}
