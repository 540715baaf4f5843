//! The verdict of a fleet capacity race: whose capacity (the highest load within the SLO) is
//! higher, by how much, with an interval — the same statistics as the text race.
//!
//! Each machine ran `repeat` independent searches; their capacities are the repeats. The leader
//! (highest geometric mean) is compared with every other machine on the log scale: Welch's
//! interval of the difference of mean log capacities, exponentiated, is the interval of the ratio
//! of geometric means ("A serves 1.68× as much, 95% CI 1.50–1.90×"). With k machines each interval
//! is at the Bonferroni level `1 − 0.05/(k − 1)`. A ratio counts when its interval lies above 1,
//! it is at least the minimum effect *and* the search's resolution (a capacity is only known to
//! that resolution), both machines ran at least [`MIN_REPEATS`] searches, and no fairness warning
//! blocks it. Identical searches (no spread) collapse the interval to the ratio itself.

use serde::{Deserialize, Serialize};

use super::stats::{Sample, welch};
use super::{CONFIDENCE, MIN_REPEATS, Winner, WinnerStatus};
use crate::api::ClientCeiling;
use crate::engine::{EngineKind, same_model};
use crate::load::summary::UnderDeliveredReason;
use crate::load::{CapacityResult, SearchMode, Slo};

/// A machine's step whose output rate reached this share of its client ceiling may measure the
/// agent rather than the machine (within 2× of the ceiling).
pub const CEILING_SHARE: f64 = 0.5;
/// Machines whose mean share of cached prompt tokens differs by this many points did not do the
/// same prompt work.
pub const CACHE_GAP_PCT: f64 = 20.0;

/// What one machine that finished a capacity search reported.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityInput {
    pub machine_id: String,
    pub label: String,
    pub engine: Option<EngineKind>,
    pub fallback_reason: Option<String>,
    pub model: Option<String>,
    /// The model's quantization as the machine reported it at preflight.
    pub quantization: Option<String>,
    pub hostname: Option<String>,
    pub engine_base_url: Option<String>,
    pub client_ceiling: Option<ClientCeiling>,
    pub result: CapacityResult,
}

/// Why a capacity verdict may not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapacityWarningKind {
    /// Different models (or quantizations): not the same work.
    ModelMismatch,
    /// Machines served different shares of their prompts from a prefix cache.
    PromptCache,
    /// A step did not get its rate: the load generator sent late (blocks) or requests waited for
    /// the concurrency cap (informational: the engine did not keep up).
    UnderDelivered,
    /// A step's output rate reached half the agent's measured client ceiling.
    ClientCeiling,
    MockEngine,
    SharedHost,
}

impl CapacityWarningKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CapacityWarningKind::ModelMismatch => "model_mismatch",
            CapacityWarningKind::PromptCache => "prompt_cache",
            CapacityWarningKind::UnderDelivered => "under_delivered",
            CapacityWarningKind::ClientCeiling => "client_ceiling",
            CapacityWarningKind::MockEngine => "mock_engine",
            CapacityWarningKind::SharedHost => "shared_host",
        }
    }
}

/// `comparison.fairness.warnings[]` of a capacity race.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityWarning {
    pub kind: CapacityWarningKind,
    pub machine_id: Option<String>,
    pub detail: String,
    /// True when it makes the capacities incomparable (no verdict involving the machine).
    pub blocks: bool,
}

/// One machine's searches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityStat {
    pub machine_id: String,
    /// Each search's capacity (`null`: no level met the SLO).
    pub searches: Vec<Option<f64>>,
    /// The machine's reported capacity (median of its searches).
    pub capacity: Option<f64>,
    /// Geometric mean of the searches (when every one found a capacity): what the ratios use.
    pub geo_mean: Option<f64>,
    /// Its interval at 95% (n ≥ 2).
    pub ci95: Option<[f64; 2]>,
}

/// The leader against one other machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityVerdict {
    pub better: String,
    pub worse: String,
    /// Ratio of geometric means (≥ 1); `None` when the worse machine met the SLO at no level.
    pub ratio: Option<f64>,
    pub ratio_ci: Option<[f64; 2]>,
    /// Searches `[better, worse]`.
    pub n: [usize; 2],
    pub significant: bool,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityFairness {
    pub fair: bool,
    pub warnings: Vec<CapacityWarning>,
}

/// `summary.json.comparison` of a capacity race.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityComparison {
    /// Always `"capacity"` (a text race's comparison has `rank_by` instead).
    pub kind: String,
    pub search: SearchMode,
    pub unit: String,
    pub slo: Slo,
    pub percentile: f64,
    /// The smallest ratio that counts: the larger of `min_effect_pct` and the search resolution.
    pub min_effect_pct: f64,
    pub confidence: f64,
    pub machines: Vec<CapacityStat>,
    pub verdicts: Vec<CapacityVerdict>,
    pub winner: Winner,
    pub fairness: CapacityFairness,
}

fn fmt_level(x: f64) -> String {
    let s = if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    };
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s }
}

fn fmt_ratio(x: f64) -> String {
    format!("{x:.2}")
}

fn level_text(x: f64, unit: &str) -> String {
    format!("{} {unit}", fmt_level(x))
}

fn searches(n: [usize; 2]) -> String {
    match n {
        [1, 1] => "1 search each".into(),
        [a, b] if a == b => format!("{a} searches each"),
        [a, b] => format!("{a} and {b} searches"),
    }
}

fn trim_pct(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

impl CapacityInput {
    fn name(&self) -> &str {
        if self.label.is_empty() { &self.machine_id } else { &self.label }
    }

    fn values(&self) -> Vec<f64> {
        self.result.searches.iter().map(|s| s.capacity.unwrap_or(0.0)).collect()
    }

    fn logs(&self) -> Option<Vec<f64>> {
        let v = self.values();
        v.iter().all(|x| *x > 0.0).then(|| v.iter().map(|x| x.ln()).collect())
    }

    /// Sorting key of the leader: geometric mean, or the arithmetic one when a search found nothing.
    fn score(&self) -> f64 {
        match self.logs() {
            Some(l) if !l.is_empty() => (l.iter().sum::<f64>() / l.len() as f64).exp(),
            _ => {
                let v = self.values();
                if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 }
            }
        }
    }
}

fn stat(m: &CapacityInput) -> CapacityStat {
    let logs = m.logs().and_then(|l| Sample::of(&l));
    CapacityStat {
        machine_id: m.machine_id.clone(),
        searches: m.result.searches.iter().map(|s| s.capacity).collect(),
        capacity: m.result.capacity,
        geo_mean: logs.map(|s| s.mean.exp()),
        ci95: logs.and_then(|s| s.mean_ci(CONFIDENCE)).map(|[lo, hi]| [lo.exp(), hi.exp()]),
    }
}

/// The fairness warnings of a capacity race.
fn warnings(ms: &[CapacityInput]) -> Vec<CapacityWarning> {
    let mut out = Vec::new();
    let warn = |kind, m: &CapacityInput, detail: String, blocks| CapacityWarning {
        kind,
        machine_id: Some(m.machine_id.clone()),
        detail,
        blocks,
    };
    let first = ms.first();
    for m in ms {
        if m.engine == Some(EngineKind::Mock) || m.fallback_reason.is_some() {
            let why = m.fallback_reason.clone().unwrap_or_else(|| "its engine is the mock".into());
            out.push(warn(
                CapacityWarningKind::MockEngine,
                m,
                format!("{} ran on the mock engine: {why}", m.name()),
                true,
            ));
        }
        if let Some(f) = first
            && f.machine_id != m.machine_id
        {
            let model_differs = match (&f.model, &m.model) {
                (Some(a), Some(b)) => !same_model(a, b),
                _ => false,
            };
            let quant_differs = matches!((&f.quantization, &m.quantization), (Some(a), Some(b)) if a != b);
            if model_differs || quant_differs {
                let show = |x: &CapacityInput| {
                    format!(
                        "{} ({})",
                        x.model.as_deref().unwrap_or("?"),
                        x.quantization.as_deref().unwrap_or("quantization unknown")
                    )
                };
                out.push(warn(
                    CapacityWarningKind::ModelMismatch,
                    m,
                    format!("{} served {}, {} served {}: not the same work", m.name(), show(m), f.name(), show(f)),
                    true,
                ));
            }
        }
        for step in &m.result.curve {
            if !step.summary.under_delivered {
                continue;
            }
            let late = step.summary.under_delivered_reason != Some(UnderDeliveredReason::ConcurrencyCap);
            let detail = format!(
                "{} step {} ({}) achieved {:.2} of {:.2} req/s: {}",
                m.name(),
                step.step,
                level_text(step.level, &m.result.unit),
                step.summary.achieved_rps,
                step.summary.target_rps.unwrap_or(0.0),
                if late {
                    "the load generator sent late, so the step measured the client, not the machine"
                } else {
                    "requests waited for the concurrency cap (the engine did not keep up)"
                }
            );
            out.push(warn(CapacityWarningKind::UnderDelivered, m, detail, late));
            break;
        }
        if let Some(c) = &m.client_ceiling
            && let Some(step) = m
                .result
                .curve
                .iter()
                .find(|s| c.ratio(Some(s.summary.output_tok_s)).is_some_and(|r| r >= CEILING_SHARE))
        {
            out.push(warn(
                CapacityWarningKind::ClientCeiling,
                m,
                format!(
                    "{} step {} streamed {:.0} tok/s, within 2× of the agent's client ceiling ({:.0} tok/s): the agent may be what limits it",
                    m.name(),
                    step.step,
                    step.summary.output_tok_s,
                    c.tok_s
                ),
                true,
            ));
        }
        let others: Vec<&CapacityInput> = ms
            .iter()
            .filter(|o| o.machine_id != m.machine_id && o.hostname.is_some() && o.hostname == m.hostname)
            .collect();
        if !others.is_empty() {
            let same_engine =
                others.iter().any(|o| o.engine_base_url.is_some() && o.engine_base_url == m.engine_base_url);
            let names: Vec<&str> = others.iter().map(|o| o.name()).collect();
            let detail = if same_engine {
                format!("{} uses the same engine as {}: one engine served both loads", m.name(), names.join(", "))
            } else {
                format!(
                    "{} shares host {} with {}: their loads competed for it",
                    m.name(),
                    m.hostname.as_deref().unwrap_or(""),
                    names.join(", ")
                )
            };
            out.push(warn(CapacityWarningKind::SharedHost, m, detail, same_engine));
        }
    }
    let cached: Vec<(&CapacityInput, f64)> = ms
        .iter()
        .filter_map(|m| {
            let v: Vec<f64> = m.result.curve.iter().filter_map(|s| s.summary.cached_prompt_pct).collect();
            (!v.is_empty()).then(|| (m, v.iter().sum::<f64>() / v.len() as f64))
        })
        .collect();
    if let (Some(lo), Some(hi)) =
        (cached.iter().min_by(|a, b| a.1.total_cmp(&b.1)), cached.iter().max_by(|a, b| a.1.total_cmp(&b.1)))
        && hi.1 - lo.1 >= CACHE_GAP_PCT
    {
        out.push(warn(
            CapacityWarningKind::PromptCache,
            hi.0,
            format!(
                "{} served {:.0}% of its prompt tokens from a cache, {} {:.0}%: not the same prompt work",
                hi.0.name(),
                hi.1,
                lo.0.name(),
                lo.1
            ),
            true,
        ));
    }
    out.sort_by_key(|w| w.kind);
    out
}

fn blocked(warnings: &[CapacityWarning], ids: &[&str]) -> Option<String> {
    let hits: Vec<String> = warnings
        .iter()
        .filter(|w| w.blocks && w.machine_id.as_deref().is_none_or(|id| ids.contains(&id)))
        .map(|w| match &w.machine_id {
            Some(id) => format!("{} on {id}", w.kind.as_str()),
            None => w.kind.as_str().to_owned(),
        })
        .collect();
    (!hits.is_empty()).then(|| hits.join(", "))
}

fn verdict(
    better: &CapacityInput,
    worse: &CapacityInput,
    confidence: f64,
    min_effect_pct: f64,
    blocked_by: Option<String>,
    slo_text: &str,
) -> CapacityVerdict {
    let unit = &better.result.unit;
    let n = [better.result.searches.len(), worse.result.searches.len()];
    let level = format!("{}% CI", trim_pct(100.0 * confidence));
    let (ratio, ratio_ci) = match (better.logs(), worse.logs()) {
        (Some(a), Some(b)) => {
            let (sa, sb) = (Sample::of(&a), Sample::of(&b));
            let ratio = sa.zip(sb).map(|(x, y)| (x.mean - y.mean).exp());
            let ci = sa.zip(sb).and_then(|(x, y)| welch(&x, &y, confidence)).map(|d| [d.lo.exp(), d.hi.exp()]);
            (ratio, ci)
        }
        _ => (None, None),
    };
    let shown = |m: &CapacityInput| match m.logs() {
        Some(l) if !l.is_empty() => Some((l.iter().sum::<f64>() / l.len() as f64).exp()),
        _ => m.result.capacity,
    };
    let worse_text = match shown(worse) {
        Some(c) if c > 0.0 => level_text(c, unit),
        _ => "met it at no level tried".to_owned(),
    };
    let head = format!(
        "{} sustains {} within {slo_text}, {} {worse_text}",
        better.name(),
        shown(better).map_or_else(|| "nothing".to_owned(), |c| level_text(c, unit)),
        worse.name()
    );
    let few = n[0] < MIN_REPEATS || n[1] < MIN_REPEATS;
    let better_all = better.values().iter().all(|v| *v > 0.0) && !better.values().is_empty();
    let worse_none = worse.values().iter().all(|v| *v <= 0.0);
    let effect = 1.0 + min_effect_pct / 100.0;
    let (claim, significant_numbers) = match (ratio, ratio_ci) {
        (Some(r), Some([lo, hi])) => (
            format!(
                "{} serves {}× as much ({level} {}–{}×, {})",
                better.name(),
                fmt_ratio(r),
                fmt_ratio(lo),
                fmt_ratio(hi),
                searches(n)
            ),
            lo > 1.0 && r >= effect,
        ),
        (Some(r), None) => (format!("{} serves {}× as much ({})", better.name(), fmt_ratio(r), searches(n)), false),
        (None, _) if better_all && worse_none => {
            (format!("{} serves more ({}; {} never met the SLO)", better.name(), searches(n), worse.name()), true)
        }
        (None, _) => (format!("no ratio: some searches met the SLO at no level ({})", searches(n)), false),
    };
    let significant = blocked_by.is_none() && !few && significant_numbers;
    let text = if let Some(why) = &blocked_by {
        format!("capacities not comparable between {} and {} ({why}): {head}: {claim}", better.name(), worse.name())
    } else if few {
        format!("{head}: {claim}: too few searches for a verdict — run repeat ≥ {MIN_REPEATS}")
    } else if significant {
        format!("{head}: {claim}")
    } else if ratio.is_some_and(|r| r < effect) && ratio_ci.is_some_and(|[lo, _]| lo > 1.0) {
        format!(
            "{head}: {claim}, below the {}% minimum effect (or the search resolution): a tie",
            trim_pct(min_effect_pct)
        )
    } else {
        format!("no significant difference in capacity between {} and {}: {head}: {claim}", better.name(), worse.name())
    };
    CapacityVerdict {
        better: better.machine_id.clone(),
        worse: worse.machine_id.clone(),
        ratio,
        ratio_ci,
        n,
        significant,
        text,
    }
}

/// Compares the capacities of the machines that finished. `min_effect_pct` is the run's;
/// the search resolution raises it when larger.
pub fn compare_capacity(ms: &[CapacityInput], min_effect_pct: f64) -> Option<CapacityComparison> {
    let first = ms.first()?;
    let r = &first.result;
    let effect = min_effect_pct.max(r.resolution_pct);
    let confidence = 1.0 - (1.0 - CONFIDENCE) / ms.len().saturating_sub(1).max(1) as f64;
    let warnings = warnings(ms);
    let slo_text = r.slo.describe(r.percentile);
    let mut order: Vec<&CapacityInput> = ms.iter().collect();
    order.sort_by(|a, b| b.score().total_cmp(&a.score()));
    let lead = order[0];
    let verdicts: Vec<CapacityVerdict> = order[1..]
        .iter()
        .map(|o| {
            verdict(lead, o, confidence, effect, blocked(&warnings, &[&lead.machine_id, &o.machine_id]), &slo_text)
        })
        .collect();
    let undecided =
        |reason: String| Winner { status: WinnerStatus::Undecided, machine_id: None, reason, repeats_needed: None };
    let ids: Vec<&str> = ms.iter().map(|m| m.machine_id.as_str()).collect();
    let short: Vec<String> = ms
        .iter()
        .filter(|m| m.result.searches.len() < MIN_REPEATS)
        .map(|m| {
            format!(
                "{} ran {} search{}",
                m.name(),
                m.result.searches.len(),
                if m.result.searches.len() == 1 { "" } else { "es" }
            )
        })
        .collect();
    let winner = if ms.len() < 2 {
        undecided(format!("only {} finished: a race needs at least two finishers", first.name()))
    } else if let Some(why) = blocked(&warnings, &ids) {
        Winner {
            status: WinnerStatus::Unfair,
            machine_id: None,
            reason: format!("capacity is not comparable: {why} (see the warnings)"),
            repeats_needed: None,
        }
    } else if !short.is_empty() {
        Winner {
            repeats_needed: Some(MIN_REPEATS),
            ..undecided(format!("{}: no verdict — run repeat ≥ {MIN_REPEATS}", short.join(", ")))
        }
    } else if verdicts.iter().all(|v| v.significant) {
        Winner {
            status: WinnerStatus::Decided,
            machine_id: Some(lead.machine_id.clone()),
            reason: verdicts.iter().map(|v| v.text.as_str()).collect::<Vec<_>>().join("; "),
            repeats_needed: None,
        }
    } else {
        let v = verdicts.iter().find(|v| !v.significant).map_or("", |v| v.text.as_str());
        Winner {
            status: WinnerStatus::Tie,
            machine_id: None,
            reason: format!("tie at the top: {v}"),
            repeats_needed: None,
        }
    };
    Some(CapacityComparison {
        kind: "capacity".into(),
        search: r.search,
        unit: r.unit.clone(),
        slo: r.slo,
        percentile: r.percentile,
        min_effect_pct: effect,
        confidence,
        machines: ms.iter().map(stat).collect(),
        verdicts,
        winner,
        fairness: CapacityFairness { fair: warnings.iter().all(|w| !w.blocks), warnings },
    })
}

#[cfg(test)]
#[path = "capacity_tests.rs"]
mod tests;
