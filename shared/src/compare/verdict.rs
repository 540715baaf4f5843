//! One metric, leader against one other machine: the numbers and the sentence; and the winner.
//!
//! Everything here is generic over the metric's direction ([`Metric::higher_is_better`]): the
//! ratio is better ÷ worse for rates, worse ÷ better for times, so it is always ≥ 1.

use serde::{Deserialize, Serialize};

use super::stats::{Sample, log_ratio, repeats_for_half_width, welch};
use super::{MIN_REPEATS, Metric, Prepared, Warning, Winner, WinnerStatus};
use crate::fmt::{count_text, ratio_text, trim_number};

/// `comparison.verdicts[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub metric: Metric,
    /// Machine id with the better (geometric) mean.
    pub better: String,
    pub worse: String,
    /// Ratio of the geometric means, better ÷ worse for rates and worse ÷ better for times, so
    /// ≥ 1 ("1.23× as fast"); absent when a value is ≤ 0 (no logarithm), and in summaries
    /// stored before ratios existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// Welch's interval of the difference of log means at `comparison.confidence`,
    /// exponentiated: both bounds > 0. Absent below 2 repeats on a side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio_ci: Option<[f64; 2]>,
    /// How much better, percent: `100·(ratio − 1)` (the arithmetic difference on the worse mean
    /// where there is no ratio).
    pub diff_pct: f64,
    /// `100·(ratio_ci − 1)`: never below −100%. `None` below 2 repeats.
    pub ci95_pct: Option<[f64; 2]>,
    /// Warm repeats `[better, worse]`.
    pub n: [usize; 2],
    pub significant: bool,
    /// Undecided or tie (and comparable): repeats per machine that would make the interval no
    /// wider than ± the minimum effect at the spread observed (at least 3); `None` when the
    /// verdict is settled (significant, or the interval lies within the minimum effect) or
    /// cannot be estimated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats_needed: Option<usize>,
    pub text: String,
}

pub(super) struct Side<'a> {
    pub id: &'a str,
    pub label: &'a str,
    pub sample: Sample,
    /// The same values on the log scale (`None` when one is ≤ 0).
    pub logs: Option<Sample>,
}

impl<'a> Side<'a> {
    pub fn of(m: &'a Prepared<'_>, sample: Sample, logs: Option<Sample>) -> Self {
        Side { id: m.id(), label: m.label(), sample, logs }
    }
}

/// The warnings that make `metric` incomparable between these machines, as one reason.
pub(super) fn blocking(warnings: &[Warning], metric: Metric, machines: &[&str]) -> Option<String> {
    let hits: Vec<String> = warnings
        .iter()
        .filter(|w| w.affects.contains(&metric))
        .filter(|w| w.machine_id.as_deref().is_none_or(|id| machines.contains(&id)))
        .map(|w| match &w.machine_id {
            Some(id) => format!("{} on {id}", w.kind.as_str()),
            None => w.kind.as_str().to_owned(),
        })
        .collect();
    (!hits.is_empty()).then(|| hits.join(", "))
}

/// "decodes {}× as fast as", and the noun for "no difference in …".
pub(super) fn phrase(metric: Metric) -> (&'static str, &'static str) {
    match metric {
        Metric::DecodeTokS => ("decodes {} as fast as", "decode rate"),
        Metric::GenTokensPerS => ("generates {} as fast as", "generation rate"),
        Metric::PrefillTokS => ("reads the prompt {} as fast as", "prefill rate"),
        Metric::TtftMs => ("answers {} as fast as", "time to first token"),
        Metric::TotalMs => ("finishes {} as fast as", "total time"),
        Metric::TokensPerJ => ("makes {} as many tokens per joule as", "energy efficiency"),
    }
}

fn repeats(a: usize, b: usize) -> String {
    match (a, b) {
        (1, 1) => "1 repeat each".into(),
        (a, b) if a == b => format!("{a} repeats each"),
        (a, b) => format!("{a} and {b} repeats"),
    }
}

/// Where an interval of a log difference `d ± h` stands against the minimum effect `δ` (logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resolution {
    /// Excludes 0 and `|d| ≥ δ`.
    Decided,
    /// Excludes 0 but `|d| < δ`: a real but negligible difference.
    BelowEffect,
    /// Includes 0 and lies within ± δ: no difference that matters.
    Equivalent,
    /// Includes 0 and reaches past ± δ: more repeats would tell.
    Open,
}

pub(super) fn resolve(lo: f64, hi: f64, d: f64, delta: f64) -> Resolution {
    let excludes_zero = lo > 0.0 || hi < 0.0;
    if excludes_zero {
        if d.abs() >= delta - 1e-12 { Resolution::Decided } else { Resolution::BelowEffect }
    } else if lo > -delta && hi < delta {
        Resolution::Equivalent
    } else {
        Resolution::Open
    }
}

/// Repeats per machine for Welch's interval of the log difference to be no wider than ± half
/// the minimum effect (then it either excludes no difference or lies within the minimum
/// effect), at least one more than now and at least [`MIN_REPEATS`].
pub(super) fn repeats_needed(a: &Sample, b: &Sample, min_effect_pct: f64, confidence: f64) -> Option<usize> {
    let delta = (1.0 + min_effect_pct / 100.0).ln();
    let n = repeats_for_half_width(a.sd, b.sd, delta / 2.0, confidence)?;
    Some(n.max(a.n.max(b.n) + 1).max(MIN_REPEATS))
}

pub(super) fn verdict(
    metric: Metric,
    better: Side<'_>,
    worse: Side<'_>,
    confidence: f64,
    min_effect_pct: f64,
    blocked: Option<String>,
) -> Verdict {
    let (b, w) = (better.sample, worse.sample);
    let n = [b.n, w.n];
    // Oriented so that a positive difference is "better": ln b − ln w for rates, the reverse
    // for times.
    let oriented = |x: &Sample, y: &Sample| if metric.higher_is_better() { (*x, *y) } else { (*y, *x) };
    let logs = better.logs.zip(worse.logs).map(|(lb, lw)| oriented(&lb, &lw));
    let lr = logs.map(|(hi, lo)| log_ratio(&hi, &lo, confidence));
    let (ratio, ratio_ci) = (lr.map(|r| r.ratio), lr.and_then(|r| r.ci));
    let diff_pct = match ratio {
        Some(r) => 100.0 * (r - 1.0),
        None => {
            let (x, y) = oriented(&b, &w);
            if w.mean.abs() > 0.0 { 100.0 * (x.mean - y.mean) / w.mean.abs() } else { 0.0 }
        }
    };
    let ci95_pct = ratio_ci.map(|[lo, hi]| [100.0 * (lo - 1.0), 100.0 * (hi - 1.0)]);
    let (verb, noun) = phrase(metric);
    let few = n[0] < MIN_REPEATS || n[1] < MIN_REPEATS;
    let detail = match ratio {
        Some(r) => {
            let (r_text, ci_text) = ratio_text(r, ratio_ci, confidence);
            let claim = format!("{} {} {}", better.label, verb.replace("{}", &r_text), worse.label);
            match ci_text {
                Some(ci) => format!("{claim} ({ci}, {})", repeats(n[0], n[1])),
                None => format!("{claim} ({})", repeats(n[0], n[1])),
            }
        }
        None => format!(
            "{} has a better {noun} than {} ({}), but a value ≤ 0 allows no ratio",
            better.label,
            worse.label,
            repeats(n[0], n[1])
        ),
    };
    let delta = (1.0 + min_effect_pct / 100.0).ln();
    // The interval on the log scale, oriented: where it stands against the minimum effect.
    let resolution = logs.and_then(|(x, y)| welch(&x, &y, confidence)).map(|d| resolve(d.lo, d.hi, d.diff, delta));
    let significant = blocked.is_none() && !few && resolution == Some(Resolution::Decided);
    let mut needed = None;
    let e = trim_number(min_effect_pct);
    let text = if let Some(why) = &blocked {
        format!("{detail}, but {noun} is not comparable between {} and {} ({why})", better.label, worse.label)
    } else if few {
        needed = Some(MIN_REPEATS);
        format!("{detail}: too few repeats for a verdict — run ≥ {MIN_REPEATS}")
    } else {
        match resolution {
            Some(Resolution::Decided) => detail,
            Some(Resolution::BelowEffect) => format!("{detail}: below the {e}% minimum effect, a tie"),
            Some(Resolution::Equivalent) => {
                format!("{detail}: no significant difference, and within the ±{e}% minimum effect — a tie")
            }
            Some(Resolution::Open) => {
                needed = logs.and_then(|(x, y)| repeats_needed(&x, &y, min_effect_pct, confidence));
                match needed {
                    Some(k) => format!(
                        "{detail}: no significant difference — about {} repeats each would settle a {e}% difference at this spread",
                        count_text(k)
                    ),
                    None => format!("{detail}: no significant difference"),
                }
            }
            None => format!("{detail}: no verdict"),
        }
    };
    Verdict {
        metric,
        better: better.id.to_owned(),
        worse: worse.id.to_owned(),
        ratio,
        ratio_ci,
        diff_pct,
        ci95_pct,
        n,
        significant,
        repeats_needed: needed,
        text,
    }
}

/// The winner on `rank_by`: fewer than two finishers or too few warm repeats → undecided; a
/// warning affecting `rank_by` → unfair; significantly best against every other → decided;
/// else a tie. An undecided or tied winner carries the most repeats any of its verdicts needs.
pub(super) fn winner(
    machines: &[Prepared<'_>],
    samples: &[Option<Sample>],
    verdicts: &[Verdict],
    warnings: &[Warning],
    rank_by: Metric,
) -> Winner {
    let needed = verdicts.iter().filter_map(|v| v.repeats_needed).max();
    let undecided = |reason: String, repeats_needed: Option<usize>| Winner {
        status: WinnerStatus::Undecided,
        machine_id: None,
        reason,
        repeats_needed,
    };
    match machines {
        [] => return undecided("no machine finished: nothing to compare".into(), None),
        [one] => {
            return undecided(format!("only {} finished: a race needs at least two finishers", one.label()), None);
        }
        _ => {}
    }
    let ids: Vec<&str> = machines.iter().map(|m| m.id()).collect();
    if let Some(why) = blocking(warnings, rank_by, &ids) {
        return Winner {
            status: WinnerStatus::Unfair,
            machine_id: None,
            reason: format!("{} is not comparable: {why} (see the warnings)", rank_by.as_str()),
            repeats_needed: None,
        };
    }
    let short: Vec<String> = machines
        .iter()
        .zip(samples)
        .map(|(m, s)| (m, s.map_or(0, |s| s.n)))
        .filter(|(_, n)| *n < MIN_REPEATS)
        .map(|(m, n)| format!("{} has {n} warm repeat{}", m.label(), if n == 1 { "" } else { "s" }))
        .collect();
    if !short.is_empty() {
        return undecided(
            format!("{} of {}: no verdict — run ≥ {MIN_REPEATS} repeats", short.join(", "), rank_by.as_str()),
            Some(needed.unwrap_or(MIN_REPEATS).max(MIN_REPEATS)),
        );
    }
    match verdicts.iter().find(|v| !v.significant) {
        None if !verdicts.is_empty() => Winner {
            status: WinnerStatus::Decided,
            machine_id: Some(verdicts[0].better.clone()),
            reason: verdicts.iter().map(|v| v.text.as_str()).collect::<Vec<_>>().join("; "),
            repeats_needed: None,
        },
        None => undecided(format!("no machine has a {} figure", rank_by.as_str()), None),
        Some(v) => Winner {
            status: WinnerStatus::Tie,
            machine_id: None,
            reason: format!("tie on {}: {}", rank_by.as_str(), v.text),
            repeats_needed: needed,
        },
    }
}
