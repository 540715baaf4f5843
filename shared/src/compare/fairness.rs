//! Fairness checks: conditions that make machines' figures incomparable (or worth knowing).
//! Each check is its own function so that each kind can be tested on its own condition.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Metric, Prepared, Source};
use crate::engine::EngineKind;

/// A first request sent this long after `start_at` started late.
pub const START_LAG_MS: f64 = 50.0;
/// Generated tokens differing by more than this fraction make end-to-end figures incomparable.
pub const OUTPUT_LENGTH_FRACTION: f64 = 0.10;
/// Client and engine decode rates differing by more than this fraction disagree.
pub const DISAGREEMENT_FRACTION: f64 = 0.05;
/// A decode rate falling by more than this fraction from the first to the last third drifts.
pub const DRIFT_FRACTION: f64 = 0.10;
/// Fewest warm repeats for the drift check: two per third, so one noisy repeat is not a trend
/// (below that, noise shows in the verdict's interval instead).
pub const DRIFT_MIN_REPEATS: usize = 6;
/// A machine whose warm requests had at least this share of their prompt tokens cached (all its
/// warm requests together) was served from the cache.
pub const PROMPT_CACHE_SHARE: f64 = 0.50;
/// … or at least this many percentage points more of the prompt cached than another machine
/// (a chat-template prefix cached alike on every machine stays quiet).
pub const PROMPT_CACHE_LEAD_POINTS: f64 = 20.0;
/// A decode rate at or above this share of the agent's client ceiling may measure the tool.
pub const CEILING_RATIO_WARN: f64 = 0.5;

/// The kinds of fairness warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    ColdStart,
    PromptCache,
    OutputLength,
    PromptMismatch,
    SettingsMismatch,
    StartLag,
    MockEngine,
    EngineClientDisagreement,
    SharedHost,
    Drift,
    Throttled,
    ClientCeiling,
    /// An original bench-race agent's figures beside this project's: other client, words for tokens.
    MeasurementMismatch,
}

impl WarningKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WarningKind::ColdStart => "cold_start",
            WarningKind::PromptCache => "prompt_cache",
            WarningKind::OutputLength => "output_length",
            WarningKind::PromptMismatch => "prompt_mismatch",
            WarningKind::SettingsMismatch => "settings_mismatch",
            WarningKind::StartLag => "start_lag",
            WarningKind::MockEngine => "mock_engine",
            WarningKind::EngineClientDisagreement => "engine_client_disagreement",
            WarningKind::SharedHost => "shared_host",
            WarningKind::Drift => "drift",
            WarningKind::Throttled => "throttled",
            WarningKind::ClientCeiling => "client_ceiling",
            WarningKind::MeasurementMismatch => "measurement_mismatch",
        }
    }
}

/// `comparison.fairness.warnings[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    pub kind: WarningKind,
    /// The machine it concerns.
    pub machine_id: Option<String>,
    pub detail: String,
    /// Metrics it makes incomparable (empty: informational).
    pub affects: Vec<Metric>,
}

fn warn(kind: WarningKind, m: &Prepared<'_>, detail: String, affects: &[Metric]) -> Warning {
    Warning { kind, machine_id: Some(m.id().to_owned()), detail, affects: affects.to_vec() }
}

/// Every warning for these finishers, in kind order.
pub(crate) fn warnings(machines: &[Prepared<'_>]) -> Vec<Warning> {
    let mut all = Vec::new();
    all.extend(cold_start(machines));
    all.extend(prompt_cache(machines));
    all.extend(output_length(machines));
    all.extend(prompt_mismatch(machines));
    all.extend(settings_mismatch(machines));
    all.extend(start_lag(machines));
    all.extend(mock_engine(machines));
    all.extend(engine_client_disagreement(machines));
    all.extend(shared_host(machines));
    all.extend(drift(machines));
    all.extend(throttled(machines));
    all.extend(client_ceiling(machines));
    all.extend(measurement_mismatch(machines));
    all
}

/// The measured decode rate reached half of what the agent's own measuring path can take
/// (`ceiling_ratio` ≥ 0.5): the tool, not the machine, may be what limits the decode figures.
pub(crate) fn client_ceiling(machines: &[Prepared<'_>]) -> Vec<Warning> {
    machines
        .iter()
        .filter_map(|m| {
            let r = m.input.ceiling_ratio.filter(|r| r.is_finite() && *r >= CEILING_RATIO_WARN)?;
            Some(warn(
                WarningKind::ClientCeiling,
                m,
                format!(
                    "{} decoded at {:.0}% of its agent's client ceiling (ceiling_ratio {r:.2}): the tool, not the machine, may be the limit",
                    m.label(),
                    100.0 * r
                ),
                &[Metric::DecodeTokS, Metric::GenTokensPerS],
            ))
        })
        .collect()
}

/// The token rates an original bench-race agent measures, which this project's agent measures
/// otherwise: its `gen_tokens` counts whitespace-separated words, so its rates are words/s.
pub const WORD_COUNTED: [Metric; 4] =
    [Metric::DecodeTokS, Metric::GenTokensPerS, Metric::PrefillTokS, Metric::TokensPerJ];

/// An original bench-race agent's figures come from its own client (wall clock around its HTTP
/// stream, text counted in words). Beside this project's agents its token rates are not
/// comparable (TTFT and total time are, with the warning shown); among original agents only, the
/// warning is informational.
pub(crate) fn measurement_mismatch(machines: &[Prepared<'_>]) -> Vec<Warning> {
    let original = |m: &Prepared<'_>| m.input.protocol == crate::api::Protocol::Original;
    let mixed = machines.iter().any(|m| !original(m));
    machines
        .iter()
        .filter(|m| original(m))
        .map(|m| {
            let what = format!(
                "{} is an original bench-race agent: its figures come from its own client (wall clock around its HTTP stream) and its gen_tokens counts words, not tokens",
                m.label()
            );
            let (tail, affects): (&str, &[Metric]) = if mixed {
                ("; its token rates are not comparable with a bench-race agent's (TTFT and total time are)", &WORD_COUNTED)
            } else {
                ("; rates are words per second", &[])
            };
            warn(WarningKind::MeasurementMismatch, m, format!("{what}{tail}"), affects)
        })
        .collect()
}

/// The GPU reported thermal or power clock limits during a warm request: its speed and energy
/// figures are not the machine's own. `throttled: null` (cannot be observed) raises nothing.
pub(crate) fn throttled(machines: &[Prepared<'_>]) -> Vec<Warning> {
    machines
        .iter()
        .filter_map(|m| {
            let hit: Vec<String> = m
                .input
                .requests
                .iter()
                .enumerate()
                .filter(|(i, r)| !m.cold.contains(i) && r.throttled == Some(true))
                .map(|(i, _)| i.to_string())
                .collect();
            (!hit.is_empty()).then(|| {
                let detail = format!(
                    "{} reported GPU clock throttling (thermal or power limit) during repeat(s) {}: its figures do not show what the machine does unthrottled",
                    m.label(),
                    hit.join(", ")
                );
                warn(WarningKind::Throttled, m, detail, &Metric::ALL)
            })
        })
        .collect()
}

/// A machine paid a model load while another was warm. Its cold repeats are already out of
/// the warm statistics, so the warning is informational.
pub(crate) fn cold_start(machines: &[Prepared<'_>]) -> Vec<Warning> {
    let warm_start = machines.iter().any(|m| m.cold.first() != Some(&0));
    if !warm_start {
        return Vec::new();
    }
    machines
        .iter()
        .filter(|m| !m.cold.is_empty())
        .map(|m| {
            let loads: Vec<String> = m
                .cold
                .iter()
                .map(|&i| format!("repeat {i} ({:.0} ms load)", m.input.requests[i].load_ms.unwrap_or(0.0)))
                .collect();
            warn(
                WarningKind::ColdStart,
                m,
                format!(
                    "{} loaded the model in {} while others were warm; cold repeats are reported under `cold` and left out of the warm statistics",
                    m.label(),
                    loads.join(", ")
                ),
                &[],
            )
        })
        .collect()
}

/// Share of the prompt the engine served from its cache over a machine's warm requests that
/// report it (cached tokens ÷ prompt tokens, summed), with the sums; `None` when none reports it.
fn cache_share(m: &Prepared<'_>) -> Option<(u64, u64, f64)> {
    let (cached, prompt) = m
        .warm
        .iter()
        .filter_map(|r| Some((r.cached_prompt_tokens?, r.prompt_tokens?)))
        .fold((0u64, 0u64), |(c, p), (rc, rp)| (c + rc.min(rp), p + rp));
    (prompt > 0).then(|| (cached, prompt, cached as f64 / prompt as f64))
}

/// The engine served much of the prompt from its cache: at least half of it over the machine's
/// warm requests, or at least 20 points more of it than another machine's engine did. A cached
/// chat-template prefix (the same on every request, cached on every machine once its engine has
/// seen one request) is cached alike everywhere and stays quiet.
pub(crate) fn prompt_cache(machines: &[Prepared<'_>]) -> Vec<Warning> {
    let shares: Vec<Option<(u64, u64, f64)>> = machines.iter().map(cache_share).collect();
    // In points, rounded to 1e-9 so that 30% − 10% is 20 points, not 19.999….
    let points = |share: f64| (share * 100.0 * 1e9).round() / 1e9;
    machines
        .iter()
        .zip(&shares)
        .filter_map(|(m, share)| {
            let (cached, prompt, share) = (*share)?;
            let least = machines
                .iter()
                .zip(&shares)
                .filter(|(o, s)| o.id() != m.id() && s.is_some())
                .map(|(o, s)| (o, s.map_or(0.0, |s| s.2)))
                .min_by(|a, b| a.1.total_cmp(&b.1));
            let lead = least.filter(|(_, other)| points(share) - points(*other) >= PROMPT_CACHE_LEAD_POINTS);
            let absolute = points(share) >= 100.0 * PROMPT_CACHE_SHARE;
            if !absolute && lead.is_none() {
                return None;
            }
            let why = match lead {
                Some((o, other)) if !absolute => format!(
                    ", {:.0} points more than {} ({:.0}%)",
                    points(share) - points(other),
                    o.label(),
                    100.0 * other
                ),
                _ => String::new(),
            };
            Some(warn(
                WarningKind::PromptCache,
                m,
                format!(
                    "the engine on {} served {cached} of {prompt} prompt tokens of its warm repeats from its cache ({:.0}%{why}): prompt processing is not comparable",
                    m.label(),
                    100.0 * share
                ),
                &[Metric::TtftMs, Metric::TotalMs, Metric::PrefillTokS],
            ))
        })
        .collect()
}

/// The value most machines share (first seen wins a tie).
fn majority<T: Ord + Clone>(values: &[T]) -> Option<T> {
    let mut counts: BTreeMap<&T, (usize, usize)> = BTreeMap::new();
    for (i, v) in values.iter().enumerate() {
        counts.entry(v).or_insert((0, i)).0 += 1;
    }
    counts.into_iter().max_by(|a, b| a.1.0.cmp(&b.1.0).then(b.1.1.cmp(&a.1.1))).map(|(v, _)| v.clone())
}

/// Generated lengths differ by more than 10% or stop reasons differ. Lengths compare only
/// between machines that count alike (an original bench-race agent counts words: its lengths
/// compare with other original agents'); a machine whose engine gives no stop reason is not
/// said to stop differently.
pub(crate) fn output_length(machines: &[Prepared<'_>]) -> Vec<Warning> {
    let words = |m: &Prepared<'_>| {
        !m.warm.is_empty() && m.warm.iter().all(|r| r.token_source == crate::metrics::TokenSource::Words)
    };
    let mean_tokens: Vec<Option<f64>> =
        machines.iter().map(|m| crate::metrics::mean(m.warm.iter().map(|r| r.gen_tokens as f64))).collect();
    let longest = |counts_words: bool| {
        machines
            .iter()
            .zip(&mean_tokens)
            .filter(|(m, _)| words(m) == counts_words)
            .filter_map(|(_, t)| *t)
            .fold(0.0, f64::max)
    };
    let reasons: Vec<BTreeSet<String>> =
        machines.iter().map(|m| m.warm.iter().filter_map(|r| r.done_reason.clone()).collect()).collect();
    let known: Vec<BTreeSet<String>> = reasons.iter().filter(|r| !r.is_empty()).cloned().collect();
    let usual = majority(&known);
    let mut out = Vec::new();
    for ((m, tokens), reason) in machines.iter().zip(&mean_tokens).zip(&reasons) {
        let mut why = Vec::new();
        let longest = longest(words(m));
        if let Some(t) = tokens
            && longest > 0.0
            && (longest - t) / longest > OUTPUT_LENGTH_FRACTION
        {
            let unit = if words(m) { "words" } else { "tokens" };
            why.push(format!("generated {t:.1} {unit} on average against {longest:.1} elsewhere"));
        }
        if known.len() > 1
            && !reason.is_empty()
            && let Some(usual) = &usual
            && reason != usual
        {
            let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join("/");
            why.push(format!("stopped with {} where others stopped with {}", list(reason), list(usual)));
        }
        if !why.is_empty() {
            out.push(warn(
                WarningKind::OutputLength,
                m,
                format!("{} {}: end-to-end time is not comparable", m.label(), why.join(" and ")),
                &[Metric::TotalMs],
            ));
        }
    }
    out
}

/// Machines of the same model counted different prompt tokens.
pub(crate) fn prompt_mismatch(machines: &[Prepared<'_>]) -> Vec<Warning> {
    let counts: Vec<Option<(String, u64)>> = machines
        .iter()
        .map(|m| {
            let n = m.warm.iter().find_map(|r| r.prompt_tokens)?;
            Some((m.input.model.clone().unwrap_or_default(), n))
        })
        .collect();
    let mut out = Vec::new();
    for (m, c) in machines.iter().zip(&counts) {
        let Some((model, n)) = c else { continue };
        let same_model: Vec<u64> = counts.iter().flatten().filter(|(mm, _)| mm == model).map(|x| x.1).collect();
        let usual = majority(&same_model);
        if same_model.len() > 1 && usual != Some(*n) {
            out.push(warn(
                WarningKind::PromptMismatch,
                m,
                format!(
                    "{} counted {n} prompt tokens for {model}, others {}: prompt processing is not comparable",
                    m.label(),
                    usual.unwrap_or(0)
                ),
                &[Metric::TtftMs, Metric::TotalMs, Metric::PrefillTokS],
            ));
        }
    }
    out
}

/// The engines ran with different effective context lengths.
pub(crate) fn settings_mismatch(machines: &[Prepared<'_>]) -> Vec<Warning> {
    let known: Vec<u64> = machines.iter().filter_map(|m| m.input.context_length).collect();
    let Some(usual) = majority(&known) else { return Vec::new() };
    machines
        .iter()
        .filter_map(|m| {
            let c = m.input.context_length.filter(|c| *c != usual)?;
            Some(warn(
                WarningKind::SettingsMismatch,
                m,
                format!("{} ran with a {c}-token context, others with {usual}: no figure is comparable", m.label()),
                &Metric::ALL,
            ))
        })
        .collect()
}

/// The first request went out more than 50 ms after the shared start.
pub(crate) fn start_lag(machines: &[Prepared<'_>]) -> Vec<Warning> {
    machines
        .iter()
        .filter_map(|m| {
            let lag = m.input.start_lag_ms.filter(|l| *l > START_LAG_MS)?;
            Some(warn(
                WarningKind::StartLag,
                m,
                format!(
                    "{} sent its first request {lag:.0} ms after the shared start (e.g. queued behind another job): the finish order is not a fair race",
                    m.label()
                ),
                &[],
            ))
        })
        .collect()
}

/// Synthetic numbers: the mock engine, configured or as a fallback. Comparable with each other
/// (a demo), never with a real engine.
pub(crate) fn mock_engine(machines: &[Prepared<'_>]) -> Vec<Warning> {
    let is_mock = |m: &Prepared<'_>| m.input.engine == Some(EngineKind::Mock) || m.input.fallback_reason.is_some();
    let mixed = machines.iter().any(|m| !is_mock(m));
    machines
        .iter()
        .filter(|m| is_mock(m))
        .map(|m| {
            let why = match &m.input.fallback_reason {
                Some(r) => format!("{} ran on the mock engine as a fallback ({r})", m.label()),
                None => format!("{} runs the mock engine", m.label()),
            };
            let (tail, affects): (&str, &[Metric]) = if mixed {
                (": synthetic numbers are not comparable with a real engine", &Metric::ALL)
            } else {
                (": synthetic numbers (a demo)", &[])
            };
            warn(WarningKind::MockEngine, m, format!("{why}{tail}"), affects)
        })
        .collect()
}

fn mean(v: &[f64]) -> Option<f64> {
    crate::metrics::mean(v.iter().copied())
}

/// Client-measured and engine-reported decode rates differ by more than 5%. The client figure
/// is what machines are compared on: an offset every machine shows alike (an engine that times
/// its decode loop differently) leaves them comparable and is informational; a machine whose
/// offset differs from the others' by more than 5 points has a distorted client figure (a
/// buffering proxy, a starved agent), which makes `decode_tok_s` incomparable.
pub(crate) fn engine_client_disagreement(machines: &[Prepared<'_>]) -> Vec<Warning> {
    let ratios: Vec<Option<(f64, f64)>> = machines
        .iter()
        .map(|m| {
            let client = mean(&m.values(Metric::DecodeTokS, Source::Client))?;
            let engine = mean(&m.values(Metric::DecodeTokS, Source::Engine)).filter(|e| *e > 0.0)?;
            Some((client, engine))
        })
        .collect();
    let mut known: Vec<f64> = ratios.iter().flatten().map(|(c, e)| c / e).collect();
    known.sort_by(f64::total_cmp);
    let median = known.get(known.len() / 2).copied().unwrap_or(1.0);
    machines
        .iter()
        .zip(&ratios)
        .filter_map(|(m, r)| {
            let (client, engine) = (*r)?;
            let ratio = client / engine;
            if (ratio - 1.0).abs() <= DISAGREEMENT_FRACTION {
                return None;
            }
            let own = (ratio - median).abs() > DISAGREEMENT_FRACTION;
            let (tail, affects): (&str, &[Metric]) = if own {
                (
                    ": its offset differs from the other machines', so its client figure is not comparable",
                    &[Metric::DecodeTokS],
                )
            } else {
                (": the same offset as the other machines, so client figures still compare", &[])
            };
            Some(warn(
                WarningKind::EngineClientDisagreement,
                m,
                format!(
                    "{}: client decode rate {client:.1} tok/s vs engine {engine:.1} tok/s ({:.1}% apart){tail}",
                    m.label(),
                    (ratio - 1.0).abs() * 100.0
                ),
                affects,
            ))
        })
        .collect()
}

/// Two machines on one host compete for it (informational). Two agents of one host on the same
/// engine URL raced one engine process: their requests interleaved in it, so nothing compares.
pub(crate) fn shared_host(machines: &[Prepared<'_>]) -> Vec<Warning> {
    fn engine<'a>(m: &Prepared<'a>) -> Option<&'a str> {
        m.input.engine_base_url.as_deref().filter(|u| !u.is_empty() && m.input.engine != Some(EngineKind::Mock))
    }
    machines
        .iter()
        .filter_map(|m| {
            let host = m.input.hostname.as_deref().filter(|h| !h.is_empty())?;
            let others: Vec<&Prepared<'_>> =
                machines.iter().filter(|o| o.id() != m.id() && o.input.hostname.as_deref() == Some(host)).collect();
            if others.is_empty() {
                return None;
            }
            let same_engine: Vec<&str> =
                others.iter().filter(|o| engine(o).is_some() && engine(o) == engine(m)).map(|o| o.label()).collect();
            let names = others.iter().map(|o| o.label()).collect::<Vec<_>>().join(", ");
            Some(if same_engine.is_empty() {
                warn(
                    WarningKind::SharedHost,
                    m,
                    format!("{} shares host {host} with {names}: they competed for it", m.label()),
                    &[],
                )
            } else {
                warn(
                    WarningKind::SharedHost,
                    m,
                    format!(
                        "{} uses the same engine ({}) on host {host} as {}: one engine served both, their requests interleaved, so no figure compares",
                        m.label(),
                        engine(m).unwrap_or_default(),
                        same_engine.join(", ")
                    ),
                    &Metric::ALL,
                )
            })
        })
        .collect()
}

/// The decode rate fell by more than 10% from the first to the last third of the repeats.
pub(crate) fn drift(machines: &[Prepared<'_>]) -> Vec<Warning> {
    machines
        .iter()
        .filter_map(|m| {
            let source = [Source::Client, Source::Engine]
                .into_iter()
                .find(|s| m.values(Metric::DecodeTokS, *s).len() >= DRIFT_MIN_REPEATS)?;
            let v = m.values(Metric::DecodeTokS, source);
            let third = v.len() / 3;
            let first = mean(&v[..third])?;
            let last = mean(&v[v.len() - third..])?;
            (first > 0.0 && (first - last) / first > DRIFT_FRACTION).then(|| {
                warn(
                    WarningKind::Drift,
                    m,
                    format!(
                        "{}: decode rate fell from {first:.1} to {last:.1} tok/s between the first and last third of the repeats (throttling or contention?)",
                        m.label()
                    ),
                    &[Metric::DecodeTokS],
                )
            })
        })
        .collect()
}
