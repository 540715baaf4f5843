//! One machine across two runs: "on macbook, run A decodes 1.04× as fast as run B (95% CI
//! 1.02–1.06×): slower in run B".
//!
//! The same statistics as a race's verdict (warm repeats, Welch's interval on the log scale,
//! the minimum effect, fairness warnings), applied to machine X in run A against machine X in
//! run B. `diff_pct` is B relative to A on the geometric means, `100·(gm_b/gm_a − 1)`, and its
//! interval is Welch's interval of `mean(ln b) − mean(ln a)` exponentiated the same way (never
//! below −100%). `ratio` (≥ 1) is the better run's figure over the worse one's, as in a race.
//! With k machines in both runs each interval is at the Bonferroni level `1 − 0.05/k`, so that
//! the whole set holds at 95%.
//!
//! Status on the interval of the change, in the metric's better direction, against the minimum
//! effect `e` (percent of run A): beyond 0 with |diff| ≥ e → `faster`/`slower`; wholly within ±e
//! → `tie`; else (or with too few repeats, or a warning that makes the metric incomparable) →
//! `undecided`, with the repeats that would settle it where the spread tells.

use serde::{Deserialize, Serialize};

use super::stats::{Sample, t_cdf, welch};
use super::verdict::phrase;
use super::{CONFIDENCE, MIN_REPEATS, MachineInput, Metric, Prepared, Source, Warning, WarningKind, fairness};
use crate::fmt::{pct, ratio_text, trim_number};
use crate::hash::fnv1a;

/// What a run fixed, as the cross-run comparison checks it (`None`: not known for that run).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSettings {
    pub model: Option<String>,
    pub prompt: Option<String>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub num_ctx: Option<u32>,
    pub stream: Option<bool>,
    pub cache_bust: Option<bool>,
    pub cold: Option<bool>,
}

/// One machine of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunMachine {
    pub machine_id: String,
    pub label: String,
    /// The engine version the agent reported for that run.
    pub engine_version: Option<String>,
    /// Its warm figures, or why it has none in that run (did not finish, …).
    pub input: Result<MachineInput, String>,
}

/// One run as the comparison needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInput {
    pub run_id: String,
    pub settings: RunSettings,
    pub machines: Vec<RunMachine>,
}

/// What to compare on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AcrossSettings {
    pub metric: Metric,
    pub min_effect_pct: f64,
}

/// Where a machine's run B stands against its run A.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeStatus {
    /// Significantly better in run B, by at least the minimum effect.
    Faster,
    /// Significantly worse in run B, by at least the minimum effect.
    Slower,
    /// The interval lies within ± the minimum effect.
    Tie,
    /// Too few repeats, an incomparable metric, or an interval too wide to tell.
    Undecided,
}

/// Why a machine's change is `undecided`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Undecided {
    /// A warning makes the metric incomparable between the runs (settings, engine, fairness).
    NotComparable,
    /// Fewer than 3 warm repeats in a run.
    TooFewRepeats,
    /// No figure in a run (the machine did not finish, no energy reading, a value ≤ 0).
    NoFigures,
    /// The interval reaches past the minimum effect: more repeats would tell.
    WideInterval,
}

/// One of the two runs compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunSide {
    A,
    B,
}

impl RunSide {
    pub fn as_str(self) -> &'static str {
        match self {
            RunSide::A => "A",
            RunSide::B => "B",
        }
    }
}

/// A machine present in one run only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineRef {
    pub machine_id: String,
    pub label: String,
}

/// `GET /api/compare` `machines[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineChange {
    pub machine_id: String,
    pub label: String,
    pub metric: Metric,
    pub unit: String,
    pub higher_is_better: bool,
    /// Who measured it (the same source on both sides); `None` when neither side has it.
    pub source: Option<Source>,
    /// Warm repeats in run A / run B.
    pub n_a: usize,
    pub n_b: usize,
    pub mean_a: Option<f64>,
    pub mean_b: Option<f64>,
    /// Geometric means (what the ratio and the change compare); `None` when a value is ≤ 0.
    #[serde(default)]
    pub geomean_a: Option<f64>,
    #[serde(default)]
    pub geomean_b: Option<f64>,
    /// `100·(geomean_b/geomean_a − 1)`: run B relative to run A.
    pub diff_pct: Option<f64>,
    /// Welch's interval of `mean(ln b) − mean(ln a)` at `confidence`, as
    /// `100·(exp(bound) − 1)`: never below −100%. `None` below 2 repeats on a side.
    pub ci95_low_pct: Option<f64>,
    pub ci95_high_pct: Option<f64>,
    /// The better run's geometric mean over the worse one's (times inverted): ≥ 1.
    #[serde(default)]
    pub ratio: Option<f64>,
    /// Its interval (both bounds > 0).
    #[serde(default)]
    pub ratio_ci: Option<[f64; 2]>,
    /// Which run `ratio` favours: `a` or `b` (`None` without figures).
    #[serde(default)]
    pub better_run: Option<RunSide>,
    /// Two-sided p of Welch's t test on the logarithms; `None` below 2 repeats or with no
    /// spread on either side.
    pub p_value: Option<f64>,
    /// `undecided` on a wide interval: repeats per run that would settle it at the spread
    /// observed (3 when a run has too few to tell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats_needed: Option<usize>,
    pub status: ChangeStatus,
    /// Why it is `undecided` (`None` otherwise): a regression gate tells an invalid comparison
    /// (`not_comparable`, `too_few_repeats`, `no_figures`) from an inconclusive one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undecided: Option<Undecided>,
    pub reason: String,
    /// "on macbook, run A decodes 1.04× as fast as run B (95% CI 1.02–1.06×): slower in run B …".
    pub text: String,
    /// Fairness warnings of this machine between the runs (`machine_id` is this machine).
    pub warnings: Vec<Warning>,
}

/// `GET /api/compare`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunsComparison {
    pub a: String,
    pub b: String,
    pub metric: Metric,
    pub unit: String,
    pub higher_is_better: bool,
    pub min_effect_pct: f64,
    /// Two-sided level of each machine's interval (Bonferroni over `machines`).
    pub confidence: f64,
    /// False when any run setting differs (see `warnings`).
    pub settings_match: bool,
    /// Run settings that differ between the runs.
    pub warnings: Vec<Warning>,
    pub machines: Vec<MachineChange>,
    pub only_in_a: Vec<MachineRef>,
    pub only_in_b: Vec<MachineRef>,
}

/// The metric's unit.
pub fn unit(metric: Metric) -> &'static str {
    match metric {
        Metric::DecodeTokS | Metric::GenTokensPerS | Metric::PrefillTokS => "tok/s",
        Metric::TtftMs | Metric::TotalMs => "ms",
        Metric::TokensPerJ => "tok/J",
    }
}

/// Run settings that differ, as warnings (no machine). A different model, prompt, context,
/// streaming or cache busting makes every figure incomparable; max_tokens and temperature make
/// the end-to-end time so; a cold start only adds cold repeats (kept out of the warm figures).
pub fn settings_warnings(a: &RunSettings, b: &RunSettings) -> Vec<Warning> {
    fn show<T: std::fmt::Debug>(v: &Option<T>) -> String {
        v.as_ref().map_or_else(|| "unknown".into(), |v| format!("{v:?}"))
    }
    let mut out = Vec::new();
    let mut check = |differs: bool, kind: WarningKind, what: String, affects: &[Metric]| {
        if differs {
            let tail = if affects.is_empty() { "informational" } else { "figures are not comparable" };
            out.push(Warning { kind, machine_id: None, detail: format!("{what}: {tail}"), affects: affects.to_vec() });
        }
    };
    let all = &Metric::ALL[..];
    check(
        a.model != b.model,
        WarningKind::SettingsMismatch,
        format!("model differs: {} in run A, {} in run B", show(&a.model), show(&b.model)),
        all,
    );
    let prompt_hash = |p: &Option<String>| p.as_deref().map(|p| format!("{:016x}", fnv1a(p.as_bytes())));
    check(
        a.prompt != b.prompt,
        WarningKind::PromptMismatch,
        format!(
            "prompt differs (FNV-1a {} in run A, {} in run B)",
            show(&prompt_hash(&a.prompt)),
            show(&prompt_hash(&b.prompt))
        ),
        all,
    );
    check(
        a.num_ctx != b.num_ctx,
        WarningKind::SettingsMismatch,
        format!("num_ctx differs: {} in run A, {} in run B", show(&a.num_ctx), show(&b.num_ctx)),
        all,
    );
    check(
        a.stream != b.stream,
        WarningKind::SettingsMismatch,
        format!("stream differs: {} in run A, {} in run B", show(&a.stream), show(&b.stream)),
        all,
    );
    check(
        a.cache_bust != b.cache_bust,
        WarningKind::SettingsMismatch,
        format!("cache_bust differs: {} in run A, {} in run B", show(&a.cache_bust), show(&b.cache_bust)),
        &[Metric::TtftMs, Metric::TotalMs, Metric::PrefillTokS],
    );
    check(
        a.max_tokens != b.max_tokens,
        WarningKind::SettingsMismatch,
        format!("max_tokens differs: {} in run A, {} in run B", show(&a.max_tokens), show(&b.max_tokens)),
        &[Metric::TotalMs],
    );
    check(
        a.temperature != b.temperature,
        WarningKind::SettingsMismatch,
        format!("temperature differs: {} in run A, {} in run B", show(&a.temperature), show(&b.temperature)),
        &[Metric::TotalMs],
    );
    check(
        a.cold != b.cold,
        WarningKind::SettingsMismatch,
        format!("cold differs: {} in run A, {} in run B", show(&a.cold), show(&b.cold)),
        &[],
    );
    out
}

/// Warnings about one machine between the runs: the race's fairness checks on the pair (less
/// those about racing at the same time: a shared host, a late start, a cold start among warm
/// machines), and a different engine (kind: incomparable; version: informational).
fn machine_warnings(
    machine_id: &str,
    label: &str,
    a: &RunMachine,
    b: &RunMachine,
    pair: &[Prepared<'_>],
    nonces_differ: bool,
) -> Vec<Warning> {
    let concurrent = [WarningKind::SharedHost, WarningKind::StartLag, WarningKind::ColdStart];
    let mut out: Vec<Warning> =
        fairness::warnings(pair).into_iter().filter(|w| !concurrent.contains(&w.kind)).collect();
    if nonces_differ {
        nonce_explains_prompt_tokens(label, pair, &mut out);
    }
    let kinds = (pair[0].input.engine, pair[1].input.engine);
    if let (Some(ka), Some(kb)) = kinds
        && ka != kb
    {
        out.push(Warning {
            kind: WarningKind::SettingsMismatch,
            machine_id: None,
            detail: format!(
                "{label} ran {} in run A and {} in run B: figures are not comparable",
                ka.as_str(),
                kb.as_str()
            ),
            affects: Metric::ALL.to_vec(),
        });
    } else if a.engine_version != b.engine_version {
        let v = |s: &Option<String>| s.clone().unwrap_or_else(|| "unknown".into());
        out.push(Warning {
            kind: WarningKind::SettingsMismatch,
            machine_id: None,
            detail: format!(
                "{label}'s engine version changed: {} in run A, {} in run B (informational: it may be what is compared)",
                v(&a.engine_version),
                v(&b.engine_version)
            ),
            affects: Vec::new(),
        });
    }
    for w in &mut out {
        w.machine_id = Some(machine_id.to_owned());
    }
    out
}

/// Most prompt tokens two cache-busting nonces (12 hex characters at most) can differ by.
pub const NONCE_TOKENS_MAX: u64 = 8;

/// Each run of a race prefixes its prompt with its own cache-busting nonce, so the same prompt
/// counts a few tokens more or fewer from one run to the next. A prompt-token difference the
/// nonces explain (≤ [`NONCE_TOKENS_MAX`]) is kept as information with its size, not as a
/// reason the prompt figures cannot compare; a larger one still blocks them.
fn nonce_explains_prompt_tokens(label: &str, pair: &[Prepared<'_>], warnings: &mut [Warning]) {
    let tokens = |m: &Prepared<'_>| m.warm.iter().find_map(|r| r.prompt_tokens);
    let (Some(na), Some(nb)) = (tokens(&pair[0]), tokens(&pair[1])) else { return };
    if na.abs_diff(nb) > NONCE_TOKENS_MAX {
        return;
    }
    for w in warnings.iter_mut().filter(|w| w.kind == WarningKind::PromptMismatch) {
        w.detail = format!(
            "{label} counted {na} prompt tokens in run A and {nb} in run B: each run's cache-busting nonce \
             differs (informational: prompt processing compares to within {} token{})",
            na.abs_diff(nb),
            if na.abs_diff(nb) == 1 { "" } else { "s" }
        );
        w.affects.clear();
    }
}

/// The kinds of the warnings that make `metric` incomparable, as one reason.
fn blocking(warnings: &[&Warning], metric: Metric) -> Option<String> {
    let mut hits: Vec<&str> =
        warnings.iter().filter(|w| w.affects.contains(&metric)).map(|w| w.kind.as_str()).collect();
    hits.sort_unstable();
    hits.dedup();
    (!hits.is_empty()).then(|| hits.join(", "))
}

/// A machine both runs list, with its figures on both sides where it has them.
fn change(
    a: &RunMachine,
    b: &RunMachine,
    run_warnings: &[Warning],
    settings: AcrossSettings,
    confidence: f64,
    nonces_differ: bool,
) -> MachineChange {
    let metric = settings.metric;
    let label = if b.label.is_empty() { a.label.clone() } else { b.label.clone() };
    let label = if label.is_empty() { a.machine_id.clone() } else { label };
    let mut out = MachineChange {
        machine_id: a.machine_id.clone(),
        label: label.clone(),
        metric,
        unit: unit(metric).into(),
        higher_is_better: metric.higher_is_better(),
        source: None,
        n_a: 0,
        n_b: 0,
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
        status: ChangeStatus::Undecided,
        undecided: Some(Undecided::NoFigures),
        reason: String::new(),
        text: String::new(),
        warnings: Vec::new(),
    };
    let (ia, ib) = match (&a.input, &b.input) {
        (Ok(ia), Ok(ib)) => (ia, ib),
        (ea, eb) => {
            let missing: Vec<String> = [("A", ea), ("B", eb)]
                .into_iter()
                .filter_map(|(run, r)| r.as_ref().err().map(|why| format!("run {run}: {why}")))
                .collect();
            out.reason = format!("{label} has no figures in {}", missing.join("; "));
            out.text = format!("no comparison on {label}: {}", out.reason);
            return out;
        }
    };
    // Distinct ids and labels that say which run, for the shared fairness checks' texts.
    let side = |input: &MachineInput, run: &str| MachineInput {
        machine_id: run.to_owned(),
        label: format!("{label} in run {run}"),
        ..input.clone()
    };
    let inputs = [side(ia, "A"), side(ib, "B")];
    let pair: Vec<Prepared<'_>> = inputs.iter().map(Prepared::new).collect();
    out.warnings = machine_warnings(&a.machine_id, &label, a, b, &pair, nonces_differ);
    let source = super::pick_source(&pair, metric);
    out.source = source;
    let values: Vec<Vec<f64>> = pair.iter().map(|m| source.map(|s| m.values(metric, s)).unwrap_or_default()).collect();
    let (sa, sb) = (Sample::of(&values[0]), Sample::of(&values[1]));
    out.n_a = sa.map_or(0, |s| s.n);
    out.n_b = sb.map_or(0, |s| s.n);
    out.mean_a = sa.map(|s| s.mean);
    out.mean_b = sb.map(|s| s.mean);
    let (Some(_), Some(_)) = (sa, sb) else {
        let none: Vec<&str> = [("A", sa), ("B", sb)].into_iter().filter(|(_, s)| s.is_none()).map(|x| x.0).collect();
        out.reason = format!("{label} has no {} figure in run {}", metric.as_str(), none.join(" or run "));
        out.text = format!("no comparison on {label}: {}", out.reason);
        return out;
    };
    let (Some(la), Some(lb)) = (Sample::of_logs(&values[0]), Sample::of_logs(&values[1])) else {
        out.reason = format!("{label} has a {} of 0 or less: no ratio to compare", metric.as_str());
        out.text = format!("no comparison on {label}: {}", out.reason);
        return out;
    };
    out.geomean_a = Some(la.mean.exp());
    out.geomean_b = Some(lb.mean.exp());
    let to_pct = |x: f64| 100.0 * (x.exp() - 1.0);
    let d_log = lb.mean - la.mean;
    let diff_pct = to_pct(d_log);
    out.diff_pct = Some(diff_pct);
    let w = welch(&lb, &la, confidence);
    if let Some(w) = w {
        out.ci95_low_pct = Some(to_pct(w.lo));
        out.ci95_high_pct = Some(to_pct(w.hi));
        out.p_value = w.df.filter(|_| w.se > 0.0).map(|df| 2.0 * (1.0 - t_cdf((w.diff / w.se).abs(), df)));
    }
    // The change on the log scale in the metric's better direction (positive: B is better).
    let sign = if metric.higher_is_better() { 1.0 } else { -1.0 };
    let gain_log = sign * d_log;
    let gain_ci_log = w.map(|w| {
        let (x, y) = (sign * w.lo, sign * w.hi);
        (x.min(y), x.max(y))
    });
    let better_run = if gain_log >= 0.0 { RunSide::B } else { RunSide::A };
    out.better_run = Some(better_run);
    out.ratio = Some(gain_log.abs().exp());
    out.ratio_ci =
        gain_ci_log.map(|(lo, hi)| if gain_log >= 0.0 { [lo.exp(), hi.exp()] } else { [(-hi).exp(), (-lo).exp()] });
    // The change in percent of run A, in the better direction, with its interval.
    let gain = sign * diff_pct;
    let gain_ci = out.ci95_low_pct.zip(out.ci95_high_pct).map(|(lo, hi)| {
        let (x, y) = (sign * lo, sign * hi);
        (x.min(y), x.max(y))
    });
    let (verb, noun) = phrase(metric);
    let worse_run = if better_run == RunSide::B { RunSide::A } else { RunSide::B };
    let (r_text, ci_text) = ratio_text(gain_log.abs().exp(), out.ratio_ci, confidence);
    let claim =
        format!("on {label}, run {} {} run {}", better_run.as_str(), verb.replace("{}", &r_text), worse_run.as_str());
    let claim = match ci_text {
        Some(ci) => format!("{claim} ({ci})"),
        None => format!("{claim} ({} and {} repeats)", out.n_a, out.n_b),
    };
    let e = settings.min_effect_pct;
    let level = format!("{}% CI", trim_number(100.0 * confidence));
    let warnings: Vec<&Warning> = run_warnings.iter().chain(&out.warnings).collect();
    let (status, reason) = if let Some(why) = blocking(&warnings, metric) {
        out.undecided = Some(Undecided::NotComparable);
        (ChangeStatus::Undecided, format!("{noun} is not comparable between the runs ({why}; see the warnings)"))
    } else if out.n_a < MIN_REPEATS || out.n_b < MIN_REPEATS {
        out.undecided = Some(Undecided::TooFewRepeats);
        out.repeats_needed = Some(MIN_REPEATS);
        (
            ChangeStatus::Undecided,
            format!(
                "too few warm repeats ({} in run A, {} in run B): no verdict — run ≥ {MIN_REPEATS}",
                out.n_a, out.n_b
            ),
        )
    } else {
        match gain_ci {
            Some((lo, _)) if lo > 0.0 && gain >= e => {
                (ChangeStatus::Faster, format!("the {level} excludes 0 and the change is at least {}%", trim_number(e)))
            }
            Some((_, hi)) if hi < 0.0 && -gain >= e => {
                (ChangeStatus::Slower, format!("the {level} excludes 0 and the change is at least {}%", trim_number(e)))
            }
            Some((lo, hi)) if lo > -e && hi < e => {
                (ChangeStatus::Tie, format!("the {level} lies within the ±{}% minimum effect: a tie", trim_number(e)))
            }
            Some(_) => {
                out.undecided = Some(Undecided::WideInterval);
                out.repeats_needed = super::verdict::repeats_needed(&la, &lb, e, confidence);
                let more = match out.repeats_needed {
                    Some(k) => {
                        format!("about {} repeats per run would settle it at this spread", crate::fmt::count_text(k))
                    }
                    None => "run more repeats".into(),
                };
                (
                    ChangeStatus::Undecided,
                    format!("the {level} reaches past the ±{}% minimum effect: no verdict — {more}", trim_number(e)),
                )
            }
            None => {
                out.undecided = Some(Undecided::TooFewRepeats);
                (ChangeStatus::Undecided, "no interval: too few repeats".into())
            }
        }
    };
    if status != ChangeStatus::Undecided {
        out.undecided = None;
    }
    let (up, down) = if metric.higher_is_better() { ("higher", "lower") } else { ("longer", "shorter") };
    let change = format!("{} {}% {}", metric.as_str(), pct(diff_pct.abs()), if diff_pct >= 0.0 { up } else { down });
    out.text = match status {
        ChangeStatus::Faster => format!("{claim}: faster in run B ({change})"),
        ChangeStatus::Slower => format!("{claim}: slower in run B ({change})"),
        ChangeStatus::Tie => format!("{claim}: within the ±{}% minimum effect, a tie", trim_number(e)),
        ChangeStatus::Undecided => format!("{claim}: undecided, {reason}"),
    };
    out.status = status;
    out.reason = reason;
    out
}

/// Compares every machine both runs list (in run A's order); machines in one run only are
/// listed apart.
pub fn compare_runs(a: &RunInput, b: &RunInput, settings: AcrossSettings) -> RunsComparison {
    let in_b = |id: &str| b.machines.iter().find(|m| m.machine_id == id);
    let both: Vec<(&RunMachine, &RunMachine)> =
        a.machines.iter().filter_map(|ma| in_b(&ma.machine_id).map(|mb| (ma, mb))).collect();
    let refs = |of: &RunInput, other: &RunInput| -> Vec<MachineRef> {
        of.machines
            .iter()
            .filter(|m| !other.machines.iter().any(|o| o.machine_id == m.machine_id))
            .map(|m| MachineRef { machine_id: m.machine_id.clone(), label: m.label.clone() })
            .collect()
    };
    let confidence = 1.0 - (1.0 - CONFIDENCE) / both.len().max(1) as f64;
    let warnings = settings_warnings(&a.settings, &b.settings);
    // Two races with cache busting on ran with two different nonces.
    let nonces_differ = a.settings.cache_bust == Some(true) && b.settings.cache_bust == Some(true);
    let machines = both.iter().map(|(ma, mb)| change(ma, mb, &warnings, settings, confidence, nonces_differ)).collect();
    RunsComparison {
        a: a.run_id.clone(),
        b: b.run_id.clone(),
        metric: settings.metric,
        unit: unit(settings.metric).into(),
        higher_is_better: settings.metric.higher_is_better(),
        min_effect_pct: settings.min_effect_pct,
        confidence,
        settings_match: warnings.is_empty(),
        warnings,
        machines,
        only_in_a: refs(a, b),
        only_in_b: refs(b, a),
    }
}

#[cfg(test)]
#[path = "across_tests.rs"]
mod tests;
