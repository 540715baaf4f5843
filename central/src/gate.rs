//! `bench-central compare`: the regression gate for CI pipelines. It compares a candidate run
//! with a baseline run machine by machine (the statistics of `GET /api/compare`), prints the
//! verdicts, and exits
//! - 1 when a machine is significantly worse in the candidate by at least the threshold,
//! - 2 when the comparison is not valid (a warning makes the metric incomparable, too few
//!   repeats, a machine without figures, no machine in both runs) and nothing regressed,
//! - 0 otherwise (better, a tie, or an interval too wide to tell: the output says how many
//!   repeats would settle it).
//!
//! The runs come from a results folder (`--results-dir`) or from a running central
//! (`--central URL [--token T]`).

use std::path::{Path, PathBuf};

use bench_shared::compare::{
    self, AcrossSettings, ChangeStatus, DEFAULT_MIN_EFFECT_PCT, Metric, RunInput, RunsComparison, Undecided,
};
use bench_shared::run::RunStatus;

use crate::runs::summary::{outcomes_from_events, run_input};
use crate::store::{Store, valid_run_id};

/// Exit codes.
pub const PASS: u8 = 0;
pub const REGRESSION: u8 = 1;
pub const INVALID: u8 = 2;

/// `bench-central compare`.
#[derive(Debug, Clone, clap::Args)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["results_dir", "central"]))]
pub struct CompareArgs {
    /// The baseline run id (run A).
    #[arg(long, value_name = "RUN")]
    pub baseline: String,
    /// The candidate run id (run B), checked against the baseline.
    #[arg(long, value_name = "RUN")]
    pub candidate: String,
    /// The metric: decode_tok_s, ttft_ms, total_ms, gen_tokens_per_s, prefill_tok_s, tokens_per_j.
    #[arg(long, default_value = "decode_tok_s", value_parser = parse_metric)]
    pub metric: Metric,
    /// Fail (exit 1) when a machine is significantly worse by at least PCT percent of the
    /// baseline (also the minimum effect of the comparison). Default: 2.
    #[arg(long, value_name = "PCT", value_parser = parse_pct)]
    pub fail_on_regression: Option<f64>,
    /// Read the runs from this results folder (the one central stores `runs/<run_id>/` in).
    #[arg(long, value_name = "DIR")]
    pub results_dir: Option<PathBuf>,
    /// Ask this central (`GET /api/compare`), e.g. http://bench-central:8080.
    #[arg(long, value_name = "URL")]
    pub central: Option<String>,
    /// The central's auth_token (or the environment variable BENCH_CENTRAL_TOKEN).
    #[arg(long, env = "BENCH_CENTRAL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

fn parse_metric(s: &str) -> Result<Metric, String> {
    Metric::parse(s).ok_or_else(|| {
        let names: Vec<&str> = Metric::ALL.iter().map(|m| m.as_str()).collect();
        format!("must be one of {}", names.join(", "))
    })
}

fn parse_pct(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|p| p.is_finite() && *p > 0.0 && *p <= bench_shared::job::MAX_MIN_EFFECT_PCT)
        .ok_or_else(|| format!("must be a percentage above 0 and at most {}", bench_shared::job::MAX_MIN_EFFECT_PCT))
}

/// Runs the gate: prints the comparison (or the error) and returns the exit code.
pub async fn run(args: &CompareArgs) -> u8 {
    let threshold = args.fail_on_regression.unwrap_or(DEFAULT_MIN_EFFECT_PCT);
    let settings = AcrossSettings { metric: args.metric, min_effect_pct: threshold };
    let comparison = match (&args.results_dir, &args.central) {
        (Some(dir), _) => {
            let (dir, a, b) = (dir.clone(), args.baseline.clone(), args.candidate.clone());
            tokio::task::spawn_blocking(move || from_dir(&dir, &a, &b, settings))
                .await
                .unwrap_or_else(|e| Err(format!("reading the runs failed: {e}")))
        }
        (None, Some(url)) => from_central(url, args.token.as_deref(), &args.baseline, &args.candidate, settings).await,
        (None, None) => Err("name the runs' source: --results-dir DIR or --central URL".into()),
    };
    match comparison {
        Ok(c) => {
            let outcome = evaluate(&c, threshold);
            print!("{}", outcome.text);
            outcome.code
        }
        Err(e) => {
            eprintln!("bench-central compare: {e}");
            println!("result: NOT VALID — {e} (exit {INVALID})");
            INVALID
        }
    }
}

/// Both runs from a results folder, compared as `GET /api/compare` would.
pub fn from_dir(dir: &Path, a: &str, b: &str, settings: AcrossSettings) -> Result<RunsComparison, String> {
    if !dir.join("runs").is_dir() {
        return Err(format!("{} has no runs/ folder: not a results folder", dir.display()));
    }
    let store = Store::open(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let load = |run_id: &str, role: &str| -> Result<RunInput, String> {
        if !valid_run_id(run_id) {
            return Err(format!("--{role} {run_id:?} is not a run id (YYYY-MM-DD_HHMMSS_xxxxxx)"));
        }
        let meta = store.metadata(run_id).map_err(|e| format!("{role} run {run_id}: {e}"))?;
        if meta.status == RunStatus::Running {
            return Err(format!("{role} run {run_id} is still running"));
        }
        let events = store.events(run_id).map_err(|e| format!("{role} run {run_id}: {e}"))?;
        run_input(&meta, &outcomes_from_events(&events)).ok_or_else(|| {
            format!("{role} run {run_id} is an {} run; only llm_generate runs compare", meta.spec.test_type().as_str())
        })
    };
    if a == b {
        return Err("--candidate must differ from --baseline".into());
    }
    Ok(compare::compare_runs(&load(a, "baseline")?, &load(b, "candidate")?, settings))
}

/// Both runs compared by a running central (`GET /api/compare`).
async fn from_central(
    url: &str,
    token: Option<&str>,
    a: &str,
    b: &str,
    settings: AcrossSettings,
) -> Result<RunsComparison, String> {
    bench_shared::tls::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    for (id, role) in [(a, "baseline"), (b, "candidate")] {
        if !valid_run_id(id) {
            return Err(format!("--{role} {id:?} is not a run id (YYYY-MM-DD_HHMMSS_xxxxxx)"));
        }
    }
    let endpoint = format!("{}/api/compare", url.trim_end_matches('/'));
    // Run ids, metric names and a number: nothing in the query needs escaping.
    let full = format!(
        "{endpoint}?a={a}&b={b}&metric={}&min_effect_pct={}",
        settings.metric.as_str(),
        settings.min_effect_pct
    );
    let mut req = client.get(&full);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.map_err(|e| format!("GET {endpoint}: {}", bench_shared::error_chain(&e)))?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| format!("GET {endpoint}: {e}"))?;
    if !status.is_success() {
        let error = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or(body);
        return Err(format!("GET {endpoint}: {status}: {error}"));
    }
    serde_json::from_str(&body).map_err(|e| format!("GET {endpoint}: not a comparison: {e}"))
}

/// The gate's verdict on a comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub code: u8,
    /// What the command prints.
    pub text: String,
}

/// Exit code and report: a significant regression of at least `threshold` percent on any
/// machine → 1; else an invalid comparison → 2; else 0.
pub fn evaluate(c: &RunsComparison, threshold: f64) -> Outcome {
    use std::fmt::Write;
    let pct = bench_shared::fmt::trim_number(threshold);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "regression gate on {} ({} is better): run A = baseline {}, run B = candidate {}; fails on a significant regression of ≥ {pct}%",
        c.metric.as_str(),
        if c.higher_is_better { "higher" } else { "lower" },
        c.a,
        c.b
    );
    for w in &c.warnings {
        let _ = writeln!(out, "  warning {}: {}", w.kind.as_str(), w.detail);
    }
    let mut regressed = Vec::new();
    let mut invalid = Vec::new();
    let mut open = 0;
    for m in &c.machines {
        let tag = match (m.status, m.undecided) {
            (ChangeStatus::Slower, _) => {
                regressed.push(m.label.clone());
                "REGRESSION"
            }
            (ChangeStatus::Faster, _) => "better",
            (ChangeStatus::Tie, _) => "tie",
            (ChangeStatus::Undecided, Some(Undecided::WideInterval)) => {
                open += 1;
                "inconclusive"
            }
            (ChangeStatus::Undecided, _) => {
                invalid.push(format!("{} ({})", m.label, m.reason));
                "NOT VALID"
            }
        };
        let _ = writeln!(out, "  {:<12} {}", tag, m.text);
        for w in m.warnings.iter().filter(|w| !w.affects.is_empty()) {
            let _ = writeln!(out, "               warning {}: {}", w.kind.as_str(), w.detail);
        }
    }
    let names = |list: &[compare::MachineRef]| {
        list.iter()
            .map(|m| if m.label.is_empty() { m.machine_id.clone() } else { m.label.clone() })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !c.only_in_a.is_empty() {
        let _ = writeln!(out, "  only in the baseline (not checked): {}", names(&c.only_in_a));
    }
    if !c.only_in_b.is_empty() {
        let _ = writeln!(out, "  only in the candidate (not checked): {}", names(&c.only_in_b));
    }
    if c.machines.is_empty() {
        invalid.push("no machine ran in both runs".into());
    }
    let code = if !regressed.is_empty() {
        let _ = writeln!(
            out,
            "result: FAIL — significantly worse by ≥ {pct}% on {}: {} (exit {REGRESSION})",
            c.metric.as_str(),
            regressed.join(", ")
        );
        REGRESSION
    } else if !invalid.is_empty() {
        let _ = writeln!(out, "result: NOT VALID — {} (exit {INVALID})", invalid.join("; "));
        INVALID
    } else {
        let open = match open {
            0 => String::new(),
            1 => " (1 machine inconclusive: more repeats would tell)".into(),
            n => format!(" ({n} machines inconclusive: more repeats would tell)"),
        };
        let _ = writeln!(out, "result: PASS — no machine significantly worse by ≥ {pct}%{open} (exit {PASS})");
        PASS
    };
    Outcome { code, text: out }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bench_shared::compare::MachineChange;

    fn machine(id: &str, status: ChangeStatus, undecided: Option<Undecided>) -> MachineChange {
        MachineChange {
            machine_id: id.into(),
            label: format!("{id} box"),
            metric: Metric::DecodeTokS,
            unit: "tok/s".into(),
            higher_is_better: true,
            source: None,
            n_a: 5,
            n_b: 5,
            mean_a: None,
            mean_b: None,
            geomean_a: None,
            geomean_b: None,
            diff_pct: None,
            ci95_low_pct: None,
            ci95_high_pct: None,
            ratio: None,
            ratio_ci: None,
            better_run: None,
            p_value: None,
            repeats_needed: None,
            status,
            undecided,
            reason: format!("{id}: why"),
            text: format!("on {id} box, …"),
            warnings: Vec::new(),
        }
    }

    fn comparison(machines: Vec<MachineChange>) -> RunsComparison {
        RunsComparison {
            a: "A".into(),
            b: "B".into(),
            metric: Metric::DecodeTokS,
            unit: "tok/s".into(),
            higher_is_better: true,
            min_effect_pct: 5.0,
            confidence: 0.95,
            settings_match: true,
            warnings: Vec::new(),
            machines,
            only_in_a: Vec::new(),
            only_in_b: Vec::new(),
        }
    }

    #[test]
    fn exit_codes_follow_the_verdicts() {
        use ChangeStatus::{Faster, Slower, Tie};
        use Undecided as Why;
        let open = ChangeStatus::Undecided;
        let code = |ms: Vec<MachineChange>| evaluate(&comparison(ms), 5.0).code;
        assert_eq!(code(vec![machine("a", Tie, None), machine("b", Faster, None)]), PASS);
        assert_eq!(code(vec![machine("a", open, Some(Why::WideInterval))]), PASS, "inconclusive is no regression");
        assert_eq!(code(vec![machine("a", Slower, None), machine("b", Tie, None)]), REGRESSION);
        assert_eq!(code(vec![machine("a", open, Some(Why::TooFewRepeats))]), INVALID);
        assert_eq!(code(vec![machine("a", open, Some(Why::NotComparable))]), INVALID);
        assert_eq!(code(vec![machine("a", open, Some(Why::NoFigures))]), INVALID);
        assert_eq!(code(vec![]), INVALID, "no machine in both runs");
        // A real regression is reported even when another machine cannot be judged.
        assert_eq!(code(vec![machine("a", Slower, None), machine("b", open, Some(Why::NotComparable))]), REGRESSION);
        let out =
            evaluate(&comparison(vec![machine("a", Slower, None), machine("b", open, Some(Why::WideInterval))]), 5.0);
        assert!(
            out.text.contains("REGRESSION   on a box") && out.text.contains("inconclusive on b box"),
            "{}",
            out.text
        );
        assert!(
            out.text.ends_with("result: FAIL — significantly worse by ≥ 5% on decode_tok_s: a box (exit 1)\n"),
            "{}",
            out.text
        );
    }

    #[test]
    fn arguments_are_checked() {
        assert!(
            parse_pct("5").is_ok() && parse_pct("0").is_err() && parse_pct("-1").is_err() && parse_pct("x").is_err()
        );
        assert_eq!(parse_metric("ttft_ms"), Ok(Metric::TtftMs));
        assert!(parse_metric("speed").unwrap_err().contains("decode_tok_s"));
    }
}
