//! One metric, leader against one other machine: the numbers and the sentence; and the winner.

use serde::{Deserialize, Serialize};

use super::stats::{Sample, welch};
use super::{MIN_REPEATS, Metric, Prepared, Warning, Winner, WinnerStatus};
use crate::fmt::{pct, trim_number};

/// `comparison.verdicts[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub metric: Metric,
    /// Machine id with the better mean.
    pub better: String,
    pub worse: String,
    /// How much better, percent of the worse machine's mean (≥ 0).
    pub diff_pct: f64,
    /// Welch interval of the difference, percent of the worse mean; `None` below 2 repeats.
    pub ci95_pct: Option<[f64; 2]>,
    /// Warm repeats `[better, worse]`.
    pub n: [usize; 2],
    pub significant: bool,
    pub text: String,
}

pub(super) struct Side<'a> {
    pub id: &'a str,
    pub label: &'a str,
    pub sample: Sample,
}

impl<'a> Side<'a> {
    pub fn of(m: &'a Prepared<'_>, sample: Sample) -> Self {
        Side { id: m.id(), label: m.label(), sample }
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

/// "decodes 10.1% faster than", and the noun for "no difference in …".
fn phrase(metric: Metric) -> (&'static str, &'static str) {
    match metric {
        Metric::DecodeTokS => ("decodes {}% faster than", "decode rate"),
        Metric::GenTokensPerS => ("generates {}% faster than", "generation rate"),
        Metric::PrefillTokS => ("reads the prompt {}% faster than", "prefill rate"),
        Metric::TtftMs => ("answers {}% sooner than", "time to first token"),
        Metric::TotalMs => ("finishes {}% sooner than", "total time"),
        Metric::TokensPerJ => ("makes {}% more tokens per joule than", "energy efficiency"),
    }
}

fn repeats(a: usize, b: usize) -> String {
    match (a, b) {
        (1, 1) => "1 repeat each".into(),
        (a, b) if a == b => format!("{a} repeats each"),
        (a, b) => format!("{a} and {b} repeats"),
    }
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
    let sign = if metric.higher_is_better() { 1.0 } else { -1.0 };
    let base = w.mean.abs();
    let to_pct = |x: f64| if base > 0.0 { 100.0 * x / base } else { 0.0 };
    let diff_pct = to_pct(sign * (b.mean - w.mean));
    let ci95_pct = welch(&b, &w, confidence).map(|d| {
        let (lo, hi) = if sign > 0.0 { (d.lo, d.hi) } else { (-d.hi, -d.lo) };
        [to_pct(lo), to_pct(hi)]
    });
    let n = [b.n, w.n];
    let (verb, noun) = phrase(metric);
    let level = format!("{}% CI", trim_number(100.0 * confidence));
    let ci_text = match ci95_pct {
        Some([lo, hi]) => format!("{level} {}–{}%, {}", pct(lo), pct(hi), repeats(n[0], n[1])),
        None => repeats(n[0], n[1]),
    };
    let claim = format!("{} {} {}", better.label, verb.replace("{}", &pct(diff_pct)), worse.label);
    let few = n[0] < MIN_REPEATS || n[1] < MIN_REPEATS;
    let excludes_zero = ci95_pct.is_some_and(|[lo, _]| lo > 0.0);
    let big_enough = diff_pct >= min_effect_pct;
    let significant = blocked.is_none() && !few && excludes_zero && big_enough;
    let text = if let Some(why) = &blocked {
        format!("{noun} not comparable between {} and {} ({why}): {claim} ({ci_text})", better.label, worse.label)
    } else if few {
        format!("{claim} ({ci_text}): too few repeats for a verdict — run ≥ {MIN_REPEATS}")
    } else if significant {
        format!("{claim} ({ci_text})")
    } else if !excludes_zero {
        format!("no significant difference in {noun} between {} and {}: {claim} ({ci_text})", better.label, worse.label)
    } else {
        format!("{claim} ({ci_text}), below the {}% minimum effect: a tie", trim_number(min_effect_pct))
    };
    Verdict {
        metric,
        better: better.id.to_owned(),
        worse: worse.id.to_owned(),
        diff_pct,
        ci95_pct,
        n,
        significant,
        text,
    }
}

/// The winner on `rank_by`: fewer than two finishers or too few warm repeats → undecided; a
/// warning affecting `rank_by` → unfair; significantly best against every other → decided;
/// else a tie.
pub(super) fn winner(
    machines: &[Prepared<'_>],
    samples: &[Option<Sample>],
    verdicts: &[Verdict],
    warnings: &[Warning],
    rank_by: Metric,
) -> Winner {
    let undecided = |reason: String| Winner { status: WinnerStatus::Undecided, machine_id: None, reason };
    match machines {
        [] => return undecided("no machine finished: nothing to compare".into()),
        [one] => {
            return undecided(format!("only {} finished: a race needs at least two finishers", one.label()));
        }
        _ => {}
    }
    let ids: Vec<&str> = machines.iter().map(|m| m.id()).collect();
    if let Some(why) = blocking(warnings, rank_by, &ids) {
        return Winner {
            status: WinnerStatus::Unfair,
            machine_id: None,
            reason: format!("{} is not comparable: {why} (see the warnings)", rank_by.as_str()),
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
        return undecided(format!(
            "{} of {}: no verdict — run ≥ {MIN_REPEATS} repeats",
            short.join(", "),
            rank_by.as_str()
        ));
    }
    match verdicts.iter().find(|v| !v.significant) {
        None if !verdicts.is_empty() => Winner {
            status: WinnerStatus::Decided,
            machine_id: Some(verdicts[0].better.clone()),
            reason: verdicts.iter().map(|v| v.text.as_str()).collect::<Vec<_>>().join("; "),
        },
        None => undecided(format!("no machine has a {} figure", rank_by.as_str())),
        Some(v) => Winner {
            status: WinnerStatus::Tie,
            machine_id: None,
            reason: format!("no significant difference at the top on {}: {}", rank_by.as_str(), v.text),
        },
    }
}
