//! The harness's findings: one row per (scenario, metric) with its target, the measured figure
//! and a verdict; printed as a table and written as `results.json` (one key per scenario).

use serde_json::{Map, Value, json};

/// How a measured figure compares with its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The target is met.
    Pass,
    /// The target is missed.
    Fail,
    /// Not measured in this run (the reason is in `measured`).
    Gap,
    /// A figure without a target (reported for the reader).
    Info,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Gap => "gap",
            Verdict::Info => "info",
        }
    }

    pub fn of(ok: bool) -> Verdict {
        if ok { Verdict::Pass } else { Verdict::Fail }
    }
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub metric: String,
    pub target: String,
    /// The figure as shown (with its unit), or why there is none.
    pub measured: String,
    /// The figure as a number for `results.json` (`None` when not measured).
    pub value: Option<f64>,
    pub verdict: Verdict,
}

impl Row {
    /// A figure checked against a target.
    pub fn check(metric: &str, target: &str, value: f64, unit: &str, ok: bool) -> Row {
        Row {
            metric: metric.into(),
            target: target.into(),
            measured: format!("{} {unit}", fmt(value)),
            value: Some(value),
            verdict: Verdict::of(ok && value.is_finite()),
        }
    }

    /// A figure without a target.
    pub fn info(metric: &str, value: f64, unit: &str) -> Row {
        Row {
            metric: metric.into(),
            target: "-".into(),
            measured: format!("{} {unit}", fmt(value)),
            value: Some(value),
            verdict: Verdict::Info,
        }
    }

    /// A scenario that could not run: a failure, with the error.
    pub fn failed(metric: &str, error: &str) -> Row {
        Row {
            metric: metric.into(),
            target: "runs".into(),
            measured: error.into(),
            value: None,
            verdict: Verdict::Fail,
        }
    }

    /// A figure not measured in this run, and why.
    pub fn gap(metric: &str, target: &str, reason: &str) -> Row {
        Row {
            metric: metric.into(),
            target: target.into(),
            measured: reason.into(),
            value: None,
            verdict: Verdict::Gap,
        }
    }
}

fn fmt(v: f64) -> String {
    if !v.is_finite() {
        "n/a".into()
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// Every scenario's rows, in run order, plus free-form details per scenario.
#[derive(Debug, Default)]
pub struct Report {
    scenarios: Vec<(String, Vec<Row>, Value)>,
}

impl Report {
    pub fn add(&mut self, scenario: &str, rows: Vec<Row>, details: Value) {
        self.scenarios.push((scenario.into(), rows, details));
    }

    /// The table as printed.
    pub fn table(&self) -> String {
        let mut lines = vec![["scenario", "metric", "target", "measured", "verdict"].map(String::from).to_vec()];
        for (name, rows, _) in &self.scenarios {
            for r in rows {
                lines.push(vec![
                    name.clone(),
                    r.metric.clone(),
                    r.target.clone(),
                    r.measured.clone(),
                    r.verdict.as_str().into(),
                ]);
            }
        }
        let widths: Vec<usize> =
            (0..5).map(|c| lines.iter().map(|l| l[c].chars().count()).max().unwrap_or(0)).collect();
        let mut out = String::new();
        for (i, l) in lines.iter().enumerate() {
            let cells: Vec<String> = l.iter().zip(&widths).map(|(s, w)| format!("{s:<w$}")).collect();
            out.push_str(cells.join(" | ").trim_end());
            out.push('\n');
            if i == 0 {
                let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
                out.push_str(&rule.join("-|-"));
                out.push('\n');
            }
        }
        out
    }

    /// `results.json`: `{scenario: {"metrics": [{metric, target, measured, value, verdict}], "details": …}}`.
    pub fn json(&self, quick: bool) -> Value {
        let mut top = Map::new();
        for (name, rows, details) in &self.scenarios {
            let metrics: Vec<Value> = rows
                .iter()
                .map(|r| {
                    json!({"metric": r.metric, "target": r.target, "measured": r.measured, "value": r.value,
                           "verdict": r.verdict.as_str()})
                })
                .collect();
            let mut entry = json!({"metrics": metrics, "details": details});
            // The soak's figures sit at the top of its entry too (`soak.races_started`, …).
            if let (Some(e), Some(fields)) =
                (entry.as_object_mut(), details.get(name.as_str()).and_then(Value::as_object))
            {
                for (k, v) in fields {
                    e.insert(k.clone(), v.clone());
                }
            }
            top.insert(name.clone(), entry);
        }
        top.insert("_run".into(), json!({"quick": quick, "finished_at_s": bench_central::store::now_s()}));
        Value::Object(top)
    }

    /// True when no row failed.
    pub fn all_met(&self) -> bool {
        self.scenarios.iter().all(|(_, rows, _)| rows.iter().all(|r| r.verdict != Verdict::Fail))
    }
}

/// Percentile `p` of a sample by the project's one definition
/// ([`bench_shared::metrics::percentile_sorted`]: linear interpolation between closest ranks);
/// `NaN` for an empty sample.
pub fn percentile(sample: &[f64], p: f64) -> f64 {
    bench_shared::metrics::percentile(sample, p).unwrap_or(f64::NAN)
}

pub fn median(sample: &[f64]) -> f64 {
    percentile(sample, 50.0)
}
