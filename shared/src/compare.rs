//! Comparing machines honestly: per-metric statistics over warm repeats, a verdict per metric
//! (leader against each other machine, Welch's interval on the log scale), fairness warnings,
//! output equivalence and the winner — named only when the numbers support it.
//!
//! Pure logic: [`compare`] takes what the machines reported ([`MachineInput`]) and returns the
//! `comparison` block of `summary.json` ([`Comparison`]).
//!
//! # Method (also in docs/verdict.md and docs/sharing-results.md)
//! - Warm repeats only: a recorded request whose engine-reported load time is at least
//!   [`COLD_LOAD_MS`] is a cold start, reported apart under `cold`.
//! - Rates and times are compared as ratios of geometric means on the log scale: `ratio` is
//!   better ÷ worse for rates and worse ÷ better for times (so ≥ 1), and `ratio_ci` is Welch's
//!   interval of the difference of the mean logarithms, exponentiated (both bounds > 0).
//!   `diff_pct = 100·(ratio − 1)` and `ci95_pct = 100·(ratio_ci − 1)` say the same in percent.
//!   With k machines there are k − 1 comparisons on a metric; each uses the Bonferroni level
//!   `1 − 0.05/(k − 1)`, so that the whole set holds at 95%.
//! - A difference is `significant` when that interval excludes 1, `diff_pct ≥ min_effect_pct`,
//!   both machines have ≥ [`MIN_REPEATS`] warm repeats and no fairness warning affects the metric.
//! - An undecided or tied verdict says how many repeats per machine would make its interval no
//!   wider than ± the minimum effect at the spread observed (`repeats_needed`).

mod across;
pub mod capacity;
pub mod capacity_across;
mod fairness;
mod outputs;
pub mod stats;
mod verdict;
pub mod workload;

use serde::{Deserialize, Serialize};

use crate::engine::EngineKind;
use crate::metrics::RequestMetrics;
use stats::Sample;

pub use across::{
    AcrossSettings, ChangeStatus, MachineChange, MachineRef, RunInput, RunMachine, RunSettings, RunSide,
    RunsComparison, Undecided, compare_runs, unit,
};
pub use fairness::{Warning, WarningKind};
pub use outputs::{Divergence, Outputs};
pub use verdict::Verdict;

/// Fewest warm repeats per machine for a verdict.
pub const MIN_REPEATS: usize = 3;
/// Default smallest difference (percent) that counts as a win.
pub const DEFAULT_MIN_EFFECT_PCT: f64 = 2.0;
/// A recorded request whose engine-reported load time reaches this included a model load.
pub const COLD_LOAD_MS: f64 = 25.0;
/// Family-wise confidence level of the verdicts on one metric.
pub const CONFIDENCE: f64 = 0.95;

/// The metrics machines are compared on (`rank_by` accepts each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Client-measured decode rate `(gen_tokens − 1)/(t_last − t_first)`; the engine's own rate
    /// when the race does not stream.
    #[default]
    DecodeTokS,
    /// Client-measured time to first token.
    TtftMs,
    /// Client-measured request time, sent → last byte.
    TotalMs,
    /// bench-race rate `gen_tokens / (total − ttft)`, client-measured.
    GenTokensPerS,
    /// Engine-reported prompt rate; client `prompt_tokens / ttft` where no engine reports one.
    PrefillTokS,
    /// Generated tokens per joule of measured energy (RAPL, NVML, GPU power samples); no value
    /// where the machine cannot read its power (never estimated).
    TokensPerJ,
}

impl Metric {
    pub const ALL: [Metric; 6] = [
        Metric::DecodeTokS,
        Metric::TtftMs,
        Metric::TotalMs,
        Metric::GenTokensPerS,
        Metric::PrefillTokS,
        Metric::TokensPerJ,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::DecodeTokS => "decode_tok_s",
            Metric::TtftMs => "ttft_ms",
            Metric::TotalMs => "total_ms",
            Metric::GenTokensPerS => "gen_tokens_per_s",
            Metric::PrefillTokS => "prefill_tok_s",
            Metric::TokensPerJ => "tokens_per_j",
        }
    }

    pub fn parse(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Rates are better high, times low.
    pub fn higher_is_better(self) -> bool {
        matches!(self, Metric::DecodeTokS | Metric::GenTokensPerS | Metric::PrefillTokS | Metric::TokensPerJ)
    }

    /// The sources this metric can come from, preferred first.
    fn sources(self) -> &'static [Source] {
        match self {
            Metric::DecodeTokS => &[Source::Client, Source::Engine],
            Metric::PrefillTokS => &[Source::Engine, Source::Client],
            Metric::TtftMs | Metric::TotalMs | Metric::GenTokensPerS | Metric::TokensPerJ => &[Source::Client],
        }
    }

    /// This metric of one request, from `source`.
    pub fn value(self, r: &RequestMetrics, source: Source) -> Option<f64> {
        let v = match (self, source) {
            (Metric::DecodeTokS, Source::Client) => r.decode_tok_s,
            (Metric::DecodeTokS, Source::Engine) => r.engine_decode_tok_s,
            (Metric::TtftMs, Source::Client) => r.ttft_ms,
            (Metric::TotalMs, Source::Client) => Some(r.total_ms),
            (Metric::GenTokensPerS, Source::Client) => r.gen_tokens_per_s,
            (Metric::PrefillTokS, Source::Engine) => r.engine_prefill_tok_s,
            (Metric::PrefillTokS, Source::Client) => r.client_prefill_tok_s,
            (Metric::TokensPerJ, Source::Client) => r.tokens_per_j,
            _ => None,
        };
        v.filter(|x| x.is_finite())
    }
}

/// Who measured a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The agent, at the socket (monotonic clock).
    Client,
    /// The engine's own report.
    Engine,
}

/// What one machine that finished reported, as the comparison needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MachineInput {
    pub machine_id: String,
    pub label: String,
    pub engine: Option<EngineKind>,
    /// Set when the machine ran on the mock engine in place of its real one.
    pub fallback_reason: Option<String>,
    pub model: Option<String>,
    pub hostname: Option<String>,
    /// The engine's URL as the agent reported it (two agents of one host on one URL share an engine).
    pub engine_base_url: Option<String>,
    /// Recorded repeats (warm-ups excluded), in order.
    pub requests: Vec<RequestMetrics>,
    /// The context length the engine really ran with, where it says.
    pub context_length: Option<u64>,
    /// First request sent − `start_at`, ms.
    pub start_lag_ms: Option<f64>,
    /// Visible text of the first recorded repeat.
    pub output_text: Option<String>,
    /// `job_done.ceiling_ratio`: the measured decode rate ÷ the agent's client ceiling.
    pub ceiling_ratio: Option<f64>,
    /// Whose client measured the figures: an original bench-race agent's are not ours.
    pub protocol: crate::api::Protocol,
}

/// The run settings the comparison depends on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    pub rank_by: Metric,
    pub min_effect_pct: f64,
    pub temperature: f64,
}

/// One machine's statistics on one metric (warm repeats).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineStat {
    pub machine_id: String,
    pub n: usize,
    pub mean: Option<f64>,
    pub stdev: Option<f64>,
    /// Geometric mean (`exp` of the mean logarithm); absent when a value is ≤ 0 (and in
    /// summaries stored before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geomean: Option<f64>,
    /// 95% confidence interval of the geometric mean, on the log scale (t interval of the mean
    /// logarithm, exponentiated: never below 0); n ≥ 2 and every value > 0.
    pub ci95: Option<[f64; 2]>,
}

/// One metric across machines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricStats {
    pub metric: Metric,
    pub higher_is_better: bool,
    /// Who measured it (one source for every machine, so figures compare); `None` when no
    /// machine has it.
    pub source: Option<Source>,
    /// Best mean (not necessarily a significant lead: see `verdicts`).
    pub leader: Option<String>,
    pub machines: Vec<MachineStat>,
}

/// The outcome of the race.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WinnerStatus {
    /// Significantly best on `rank_by` against every other machine, and the comparison is fair.
    Decided,
    /// No significant difference at the top.
    Tie,
    /// Too few warm repeats, or fewer than two finishers.
    Undecided,
    /// A fairness warning affects `rank_by`.
    Unfair,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Winner {
    pub status: WinnerStatus,
    /// Set only when `decided`.
    pub machine_id: Option<String>,
    pub reason: String,
    /// `tie` or `undecided`: repeats per machine that would settle the verdicts on `rank_by` at
    /// the spread observed (see [`Verdict::repeats_needed`]; 3 when too few repeats ran to know).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats_needed: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fairness {
    /// False when any warning affects a metric.
    pub fair: bool,
    pub warnings: Vec<Warning>,
}

/// A cold repeat, reported apart from the warm statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColdRepeat {
    pub machine_id: String,
    pub repeat_index: usize,
    pub load_ms: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub total_ms: f64,
}

/// `summary.json` `comparison`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub rank_by: Metric,
    pub min_effect_pct: f64,
    /// Two-sided level of each verdict's interval on `rank_by` (0.95 with two machines;
    /// Bonferroni-corrected with more).
    pub confidence: f64,
    pub metrics: Vec<MetricStats>,
    pub verdicts: Vec<Verdict>,
    pub winner: Winner,
    pub fairness: Fairness,
    pub cold: Vec<ColdRepeat>,
    pub outputs: Outputs,
}

/// A machine with its requests split into warm and cold.
pub(crate) struct Prepared<'a> {
    pub input: &'a MachineInput,
    pub warm: Vec<&'a RequestMetrics>,
    pub cold: Vec<usize>,
}

impl<'a> Prepared<'a> {
    fn new(input: &'a MachineInput) -> Self {
        let is_cold = |r: &RequestMetrics| r.load_ms.is_some_and(|l| l >= COLD_LOAD_MS);
        let cold = input.requests.iter().enumerate().filter(|(_, r)| is_cold(r)).map(|(i, _)| i).collect();
        let warm = input.requests.iter().filter(|r| !is_cold(r)).collect();
        Prepared { input, warm, cold }
    }

    pub fn id(&self) -> &str {
        &self.input.machine_id
    }

    pub fn label(&self) -> &str {
        if self.input.label.is_empty() { &self.input.machine_id } else { &self.input.label }
    }

    pub fn values(&self, metric: Metric, source: Source) -> Vec<f64> {
        self.warm.iter().filter_map(|r| metric.value(r, source)).collect()
    }
}

/// The source used for `metric`: the first one every machine has on every warm repeat, else
/// the first one any machine has.
fn pick_source(machines: &[Prepared<'_>], metric: Metric) -> Option<Source> {
    let full = |s: Source| machines.iter().all(|m| !m.warm.is_empty() && m.values(metric, s).len() == m.warm.len());
    let any = |s: Source| machines.iter().any(|m| !m.values(metric, s).is_empty());
    let sources = metric.sources();
    sources.iter().copied().find(|s| full(*s)).or_else(|| sources.iter().copied().find(|s| any(*s)))
}

/// One metric's values of every machine: as they are, and on the log scale.
struct Samples {
    plain: Vec<Option<Sample>>,
    logs: Vec<Option<Sample>>,
}

impl Samples {
    /// The leader: the best geometric mean when every machine with values has one (what the
    /// ratios compare), else the best arithmetic mean.
    fn leader(&self, metric: Metric) -> Option<usize> {
        let all_logs = self.plain.iter().zip(&self.logs).all(|(p, l)| p.is_none() || l.is_some());
        if all_logs { best(&self.logs, metric) } else { best(&self.plain, metric) }
    }
}

/// Per-machine samples of one metric, with the stats block.
fn metric_stats(machines: &[Prepared<'_>], metric: Metric) -> (MetricStats, Samples) {
    let source = pick_source(machines, metric);
    let values: Vec<Vec<f64>> =
        machines.iter().map(|m| source.map(|s| m.values(metric, s)).unwrap_or_default()).collect();
    let samples = Samples {
        plain: values.iter().map(|v| Sample::of(v)).collect(),
        logs: values.iter().map(|v| Sample::of_logs(v)).collect(),
    };
    let leader = samples.leader(metric).map(|i| machines[i].id().to_owned());
    let stats = machines
        .iter()
        .zip(samples.plain.iter().zip(&samples.logs))
        .map(|(m, (s, l))| MachineStat {
            machine_id: m.id().to_owned(),
            n: s.map_or(0, |s| s.n),
            mean: s.map(|s| s.mean),
            stdev: s.map(|s| s.sd),
            geomean: l.map(|l| l.mean.exp()),
            ci95: l.and_then(|l| l.mean_ci(CONFIDENCE)).map(|[lo, hi]| [lo.exp(), hi.exp()]),
        })
        .collect();
    (MetricStats { metric, higher_is_better: metric.higher_is_better(), source, leader, machines: stats }, samples)
}

/// Index of the best mean (first on ties). Means of logarithms order like geometric means.
fn best(samples: &[Option<Sample>], metric: Metric) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, s) in samples.iter().enumerate() {
        let Some(s) = s else { continue };
        let better = match best {
            None => true,
            Some((_, b)) => {
                if metric.higher_is_better() {
                    s.mean > b
                } else {
                    s.mean < b
                }
            }
        };
        if better {
            best = Some((i, s.mean));
        }
    }
    best.map(|(i, _)| i)
}

/// Compares the machines that finished.
pub fn compare(inputs: &[MachineInput], settings: Settings) -> Comparison {
    let machines: Vec<Prepared<'_>> = inputs.iter().map(Prepared::new).collect();
    let warnings = fairness::warnings(&machines);
    let confidence = 1.0 - (1.0 - CONFIDENCE) / machines.len().saturating_sub(1).max(1) as f64;
    let mut metrics = Vec::new();
    let mut verdicts = Vec::new();
    let mut rank_verdicts = Vec::new();
    let mut rank_samples = Vec::new();
    for metric in Metric::ALL {
        let (stats, samples) = metric_stats(&machines, metric);
        if let Some(lead) = samples.leader(metric) {
            for (i, s) in samples.plain.iter().enumerate() {
                let (Some(ls), Some(s)) = (samples.plain[lead], s) else { continue };
                if i == lead {
                    continue;
                }
                let blocked = verdict::blocking(&warnings, metric, &[machines[lead].id(), machines[i].id()]);
                let v = verdict::verdict(
                    metric,
                    verdict::Side::of(&machines[lead], ls, samples.logs[lead]),
                    verdict::Side::of(&machines[i], *s, samples.logs[i]),
                    confidence,
                    settings.min_effect_pct,
                    blocked,
                );
                if metric == settings.rank_by {
                    rank_verdicts.push(v.clone());
                }
                verdicts.push(v);
            }
        }
        if metric == settings.rank_by {
            rank_samples = samples.plain;
        }
        metrics.push(stats);
    }
    let winner = verdict::winner(&machines, &rank_samples, &rank_verdicts, &warnings, settings.rank_by);
    let cold = machines
        .iter()
        .flat_map(|m| {
            m.cold.iter().map(|&i| {
                let r = &m.input.requests[i];
                ColdRepeat {
                    machine_id: m.id().to_owned(),
                    repeat_index: i,
                    load_ms: r.load_ms,
                    ttft_ms: r.ttft_ms,
                    total_ms: r.total_ms,
                }
            })
        })
        .collect();
    let fair = warnings.iter().all(|w| w.affects.is_empty());
    Comparison {
        rank_by: settings.rank_by,
        min_effect_pct: settings.min_effect_pct,
        confidence,
        metrics,
        verdicts,
        winner,
        fairness: Fairness { fair, warnings },
        cold,
        outputs: outputs::compare_outputs(&machines, settings.temperature),
    }
}

#[cfg(test)]
mod tests;
