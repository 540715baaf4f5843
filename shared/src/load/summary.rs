//! A load's records → its figures (the body of `load_done`), and the SLO check of a step.
//!
//! Only measured requests count (warm-ups never do). The window runs from the first measured
//! request's due time (open loop) or send (closed loop) to the end of the last measured answer,
//! so requests still draining after the schedule ended are inside it, as in vLLM's
//! `benchmark_duration`.

use serde::{Deserialize, Serialize};

use super::record::RequestRecord;
use super::spec::{LoadLevel, Slo};
use crate::metrics::{mean, percentile_sorted};

/// An open loop under-delivers when it achieves less than this share of its target rate.
pub const UNDER_DELIVERED_SHARE: f64 = 0.95;

/// p50, p90, p95, p99, max and mean of a sample (ms).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Dist {
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Dist {
    /// `None` for an empty sample; non-finite values are left out.
    pub fn of(values: &[f64]) -> Option<Dist> {
        let v = sorted(values);
        (!v.is_empty()).then(|| Dist {
            p50: percentile_sorted(&v, 50.0),
            p90: percentile_sorted(&v, 90.0),
            p95: percentile_sorted(&v, 95.0),
            p99: percentile_sorted(&v, 99.0),
            max: v[v.len() - 1],
            mean: v.iter().sum::<f64>() / v.len() as f64,
        })
    }
}

/// p50, p99 and max of the send lateness (ms).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Lateness {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// Why an open loop sent fewer requests per second than asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnderDeliveredReason {
    /// Requests waited for a free slot under the `concurrency` cap (vLLM's `--max-concurrency`
    /// does the same): the engine did not finish requests fast enough.
    ConcurrencyCap,
    /// The agent sent late with no cap in the way: the load generator (or its machine) is the
    /// bottleneck.
    SchedulerLateness,
}

/// An error message and how many measured requests ended with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCount {
    pub message: String,
    pub count: u64,
}

/// The figures of one load (or of one capacity step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadSummary {
    pub requests_completed: u64,
    pub requests_failed: u64,
    /// Warm-up requests sent before the window (in no figure).
    pub warmup_requests: u64,
    /// The measured window, s.
    pub duration_s: f64,
    /// The open loop's rate; `None` for a closed loop.
    pub target_rps: Option<f64>,
    /// The closed loop's workers, or the open loop's cap.
    pub concurrency: Option<u32>,
    /// Measured requests sent per second: open loop `n ÷ (n/target + how late the last one
    /// went)`; closed loop `n ÷ duration_s`.
    pub achieved_rps: f64,
    /// Open loop only: `achieved_rps < 95%` of `target_rps`.
    pub under_delivered: bool,
    pub under_delivered_reason: Option<UnderDeliveredReason>,
    /// Completed requests ÷ duration.
    pub request_throughput_rps: f64,
    /// Output tokens of completed requests ÷ duration.
    pub output_tok_s: f64,
    /// (Input + output) tokens ÷ duration; `None` when the engine reported no prompt counts.
    pub total_tok_s: Option<f64>,
    /// Requests meeting every SLO ÷ duration; `None` without an SLO.
    pub goodput_rps: Option<f64>,
    /// Share of measured requests (failed ones included) meeting every SLO; `None` without an SLO.
    pub slo_attainment_pct: Option<f64>,
    pub max_in_flight: u32,
    pub ttft_ms: Option<Dist>,
    pub tpot_ms: Option<Dist>,
    /// Pooled over every gap of every completed request.
    pub itl_ms: Option<Dist>,
    pub e2e_ms: Option<Dist>,
    /// Open loop only: sent − due.
    pub send_lateness_ms: Option<Lateness>,
    pub input_tokens_mean: Option<f64>,
    pub output_tokens_mean: Option<f64>,
    /// Share of prompt tokens the engine served from its cache (engine-reported); a high share
    /// makes prompt processing cheaper than the workload says.
    pub cached_prompt_pct: Option<f64>,
    /// The most frequent error messages (at most 5).
    pub errors: Vec<ErrorCount>,
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// `p99`, `p99.9`, `p50`.
pub fn percentile_label(p: f64) -> String {
    let s = format!("{p:.2}");
    format!("p{}", s.trim_end_matches('0').trim_end_matches('.'))
}

/// True when a completed request meets every bound of `slo` (a TPOT bound is met by a
/// one-token answer, which has no time per output token to exceed).
pub fn meets(r: &RequestRecord, slo: &Slo) -> bool {
    r.ok()
        && slo.ttft_ms.is_none_or(|b| r.ttft_ms.is_some_and(|v| v <= b))
        && slo.tpot_ms.is_none_or(|b| r.tpot_ms.is_none_or(|v| v <= b))
        && slo.e2e_ms.is_none_or(|b| r.e2e_ms.is_some_and(|v| v <= b))
}

/// The figures of a load. `nominal_window_s` is the open loop's `measured ÷ rate`.
pub fn summarize(
    records: &[RequestRecord],
    level: LoadLevel,
    nominal_window_s: Option<f64>,
    slo: Option<&Slo>,
) -> LoadSummary {
    let measured: Vec<&RequestRecord> = records.iter().filter(|r| !r.warmup).collect();
    let completed: Vec<&RequestRecord> = measured.iter().copied().filter(|r| r.ok()).collect();
    let n = measured.len() as f64;
    let open = level.rate_rps.is_some();
    let start = measured
        .iter()
        .map(|r| if open { r.scheduled_s.unwrap_or(r.sent_s) } else { r.sent_s })
        .fold(f64::INFINITY, f64::min);
    let end = measured.iter().map(|r| r.end_s()).fold(f64::NEG_INFINITY, f64::max);
    let duration_s = if measured.is_empty() { 0.0 } else { (end - start).max(1e-6) };
    let per_s = |x: f64| if duration_s > 0.0 { x / duration_s } else { 0.0 };
    let achieved_rps = match (open, nominal_window_s) {
        (true, Some(window)) => {
            // How late the last due request went (cap waits and scheduler lateness alike).
            let lag = measured
                .iter()
                .filter_map(|r| r.scheduled_s.map(|due| (due, r.sent_s - due)))
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map_or(0.0, |(_, lag)| lag.max(0.0));
            if window + lag > 0.0 { n / (window + lag) } else { 0.0 }
        }
        _ => per_s(n),
    };
    let under_delivered =
        level.rate_rps.is_some_and(|t| !measured.is_empty() && achieved_rps < UNDER_DELIVERED_SHARE * t);
    let under_delivered_reason = under_delivered.then(|| {
        if measured.iter().any(|r| r.capped) {
            UnderDeliveredReason::ConcurrencyCap
        } else {
            UnderDeliveredReason::SchedulerLateness
        }
    });
    let output: f64 = completed.iter().filter_map(|r| r.output_tokens).sum::<u64>() as f64;
    let inputs: Option<Vec<u64>> = completed.iter().map(|r| r.input_tokens).collect();
    let total_tok_s = inputs.filter(|v| !v.is_empty()).map(|v| per_s(v.iter().sum::<u64>() as f64 + output));
    let good = slo.map(|s| completed.iter().filter(|r| meets(r, s)).count() as f64);
    let values = |f: fn(&RequestRecord) -> Option<f64>| -> Vec<f64> { completed.iter().filter_map(|r| f(r)).collect() };
    let itl: Vec<f64> = completed.iter().flat_map(|r| r.itl_ms.iter().copied()).collect();
    let lateness = sorted(&measured.iter().filter_map(|r| r.lateness_ms).collect::<Vec<_>>());
    let cached: Vec<(u64, u64)> =
        completed.iter().filter_map(|r| r.cached_tokens.zip(r.input_tokens)).filter(|(_, i)| *i > 0).collect();
    let cached_total: u64 = cached.iter().map(|c| c.1).sum();
    LoadSummary {
        requests_completed: completed.len() as u64,
        requests_failed: (measured.len() - completed.len()) as u64,
        warmup_requests: (records.len() - measured.len()) as u64,
        duration_s,
        target_rps: level.rate_rps,
        concurrency: level.concurrency,
        achieved_rps,
        under_delivered,
        under_delivered_reason,
        request_throughput_rps: per_s(completed.len() as f64),
        output_tok_s: per_s(output),
        total_tok_s,
        goodput_rps: good.map(per_s),
        slo_attainment_pct: good.filter(|_| n > 0.0).map(|g| 100.0 * g / n),
        max_in_flight: measured.iter().map(|r| r.in_flight).max().unwrap_or(0),
        ttft_ms: Dist::of(&values(|r| r.ttft_ms)),
        tpot_ms: Dist::of(&values(|r| r.tpot_ms)),
        itl_ms: Dist::of(&itl),
        e2e_ms: Dist::of(&values(|r| r.e2e_ms)),
        send_lateness_ms: (!lateness.is_empty()).then(|| Lateness {
            p50: percentile_sorted(&lateness, 50.0),
            p99: percentile_sorted(&lateness, 99.0),
            max: lateness[lateness.len() - 1],
        }),
        input_tokens_mean: mean(completed.iter().filter_map(|r| r.input_tokens.map(|t| t as f64))),
        output_tokens_mean: mean(completed.iter().filter_map(|r| r.output_tokens.map(|t| t as f64))),
        cached_prompt_pct: (cached_total > 0)
            .then(|| 100.0 * cached.iter().map(|c| c.0).sum::<u64>() as f64 / cached_total as f64),
        errors: error_counts(&measured),
    }
}

fn error_counts(measured: &[&RequestRecord]) -> Vec<ErrorCount> {
    let mut counts: Vec<ErrorCount> = Vec::new();
    for r in measured.iter().filter(|r| !r.ok()) {
        match counts.iter_mut().find(|c| c.message == r.error) {
            Some(c) => c.count += 1,
            None => counts.push(ErrorCount { message: r.error.clone(), count: 1 }),
        }
    }
    counts.sort_by_key(|c| std::cmp::Reverse(c.count));
    counts.truncate(5);
    counts
}

/// One SLO bound against a step's value at the percentile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloValue {
    /// `ttft_ms`, `tpot_ms` or `e2e_ms`.
    pub metric: String,
    pub bound_ms: f64,
    /// The step's value at the SLO percentile; `None` when no completed request had one.
    pub value_ms: Option<f64>,
    pub met: bool,
}

/// Whether a step meets the SLO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloCheck {
    pub pass: bool,
    pub values: Vec<SloValue>,
    /// Why it failed, one sentence each (empty when it passed).
    pub reasons: Vec<String>,
}

/// A step passes when, over its measured requests, every SLO metric at `percentile` is within
/// its bound, at most `max_error_pct` of them failed, and an open loop delivered its rate.
pub fn check_slo(
    records: &[RequestRecord],
    summary: &LoadSummary,
    slo: &Slo,
    percentile: f64,
    max_error_pct: f64,
) -> SloCheck {
    let completed: Vec<&RequestRecord> = records.iter().filter(|r| !r.warmup && r.ok()).collect();
    let label = percentile_label(percentile);
    let mut reasons = Vec::new();
    let values: Vec<SloValue> = slo
        .bounds()
        .into_iter()
        .map(|(metric, bound)| {
            let sample: Vec<f64> = completed
                .iter()
                .filter_map(|r| match metric {
                    "ttft_ms" => r.ttft_ms,
                    // A one-token answer has no TPOT to exceed: it counts as 0.
                    "tpot_ms" => Some(r.tpot_ms.unwrap_or(0.0)),
                    _ => r.e2e_ms,
                })
                .collect();
            let v = sorted(&sample);
            let value_ms = (!v.is_empty()).then(|| percentile_sorted(&v, percentile));
            let met = value_ms.is_some_and(|x| x <= bound);
            if !met {
                reasons.push(match value_ms {
                    Some(x) => format!("{label} {metric} {x:.2} > {bound}"),
                    None => format!("no completed request to measure {metric} on"),
                });
            }
            SloValue { metric: metric.to_owned(), bound_ms: bound, value_ms, met }
        })
        .collect();
    let measured = summary.requests_completed + summary.requests_failed;
    if measured > 0 {
        let error_pct = 100.0 * summary.requests_failed as f64 / measured as f64;
        if error_pct > max_error_pct {
            reasons.push(format!("{error_pct:.1}% of requests failed (more than {max_error_pct}%)"));
        }
    }
    if summary.under_delivered {
        let why = match summary.under_delivered_reason {
            Some(UnderDeliveredReason::ConcurrencyCap) => "requests waited for the concurrency cap",
            _ => "the load generator sent late",
        };
        reasons.push(format!(
            "under-delivered: {:.2} of {:.2} req/s ({why})",
            summary.achieved_rps,
            summary.target_rps.unwrap_or(0.0)
        ));
    }
    SloCheck { pass: reasons.is_empty(), values, reasons }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::record::RequestStatus;
    use crate::load::record::tests::done;

    fn open(rate: f64) -> LoadLevel {
        LoadLevel { rate_rps: Some(rate), concurrency: None }
    }

    #[test]
    fn hand_made_trace() {
        // Four requests due every 0.5 s at 2 req/s, sent on time; TTFT 100..400 ms,
        // 11 tokens 10 ms apart (TPOT 10 ms); one warm-up before them is ignored.
        let mut warm = done(0, -0.5, 5000.0, 100.0, 11);
        warm.warmup = true;
        let mut rs = vec![warm];
        for i in 0..4 {
            rs.push(done(i + 1, 0.5 * i as f64, 100.0 * (i + 1) as f64, 10.0, 11));
        }
        let slo = Slo { ttft_ms: Some(250.0), tpot_ms: Some(10.0), e2e_ms: None };
        let s = summarize(&rs, open(2.0), Some(2.0), Some(&slo));
        assert_eq!((s.requests_completed, s.requests_failed, s.warmup_requests), (4, 0, 1));
        // Window: 0 → last end 1.5 + 0.4 + 0.1 = 2.0 s.
        assert!((s.duration_s - 2.0).abs() < 1e-9, "{}", s.duration_s);
        assert_eq!(s.achieved_rps, 2.0);
        assert!(!s.under_delivered);
        assert_eq!(s.request_throughput_rps, 2.0);
        assert_eq!(s.output_tok_s, 22.0);
        assert_eq!(s.total_tok_s, Some(42.0));
        // Requests 1 and 2 meet TTFT ≤ 250 (and TPOT 10 ≤ 10).
        assert_eq!(s.goodput_rps, Some(1.0));
        assert_eq!(s.slo_attainment_pct, Some(50.0));
        let ttft = s.ttft_ms.unwrap();
        assert_eq!((ttft.p50, ttft.max, ttft.mean), (250.0, 400.0, 250.0));
        assert!((ttft.p99 - 397.0).abs() < 1e-9, "linear interpolation: {}", ttft.p99);
        assert_eq!(s.tpot_ms.unwrap().p99, 10.0);
        assert_eq!((s.itl_ms.unwrap().p50, s.itl_ms.unwrap().max), (10.0, 10.0));
        assert_eq!(s.e2e_ms.unwrap().max, 500.0);
        assert_eq!(s.send_lateness_ms.unwrap().p99, 0.0);
        assert_eq!(s.max_in_flight, 1);
        assert!(s.errors.is_empty());
    }

    #[test]
    fn failures_count_against_attainment_and_are_grouped() {
        let mut rs: Vec<RequestRecord> = (0..4).map(|i| done(i, i as f64, 50.0, 5.0, 3)).collect();
        for r in &mut rs[2..] {
            r.status = RequestStatus::Error;
            r.error = "engine answered HTTP 503: busy".into();
            r.ttft_ms = None;
        }
        let slo = Slo { e2e_ms: Some(1000.0), ..Default::default() };
        let s = summarize(&rs, LoadLevel { rate_rps: None, concurrency: Some(1) }, None, Some(&slo));
        assert_eq!((s.requests_completed, s.requests_failed), (2, 2));
        assert_eq!(s.slo_attainment_pct, Some(50.0));
        assert_eq!(s.errors, vec![ErrorCount { message: "engine answered HTTP 503: busy".into(), count: 2 }]);
        assert!(s.send_lateness_ms.is_some(), "records carry lateness; closed loops have none in practice");
        assert!(!s.under_delivered, "a closed loop never under-delivers");
        let check = check_slo(&rs, &s, &slo, 99.0, 1.0);
        assert!(!check.pass && check.reasons[0].contains("50.0% of requests failed"), "{check:?}");
        let no_slo = summarize(&rs, LoadLevel { rate_rps: None, concurrency: Some(1) }, None, None);
        assert_eq!((no_slo.goodput_rps, no_slo.slo_attainment_pct), (None, None));
    }

    #[test]
    fn under_delivery_names_the_cap_or_the_scheduler() {
        // 10 requests due at 10 req/s (window 1 s); the last goes out 0.5 s late.
        let mut rs: Vec<RequestRecord> = (0..10).map(|i| done(i, 0.1 * i as f64, 10.0, 1.0, 2)).collect();
        rs[9].sent_s += 0.5;
        rs[9].lateness_ms = Some(500.0);
        let s = summarize(&rs, open(10.0), Some(1.0), None);
        assert!((s.achieved_rps - 10.0 / 1.5).abs() < 1e-9);
        assert_eq!(
            (s.under_delivered, s.under_delivered_reason),
            (true, Some(UnderDeliveredReason::SchedulerLateness))
        );
        rs[9].capped = true;
        let s = summarize(&rs, open(10.0), Some(1.0), None);
        assert_eq!(s.under_delivered_reason, Some(UnderDeliveredReason::ConcurrencyCap));
        let check = check_slo(&rs, &s, &Slo { ttft_ms: Some(100.0), ..Default::default() }, 99.0, 1.0);
        assert!(!check.pass && check.reasons.iter().any(|r| r.contains("concurrency cap")), "{check:?}");
        // 3% late is still delivered.
        rs[9].sent_s = 0.9 + 0.03;
        assert!(!summarize(&rs, open(10.0), Some(1.0), None).under_delivered);
    }

    #[test]
    fn slo_check_at_a_percentile() {
        // TTFTs 1..=100 ms: p99 = 99.01, p50 = 50.5.
        let rs: Vec<RequestRecord> = (1..=100).map(|i| done(i, 0.0, i as f64, 1.0, 1)).collect();
        let s = summarize(&rs, open(1.0), Some(100.0), None);
        let slo = Slo { ttft_ms: Some(99.5), tpot_ms: Some(1.0), ..Default::default() };
        let c = check_slo(&rs, &s, &slo, 99.0, 1.0);
        assert!(c.values[0].met && (c.values[0].value_ms.unwrap() - 99.01).abs() < 1e-9, "{c:?}");
        assert_eq!(c.values[1].value_ms, Some(0.0), "one-token answers have TPOT 0");
        let tight = Slo { ttft_ms: Some(99.0), ..Default::default() };
        let c = check_slo(&rs, &s, &tight, 99.0, 1.0);
        assert_eq!(c.reasons, vec!["p99 ttft_ms 99.01 > 99".to_owned()]);
        assert!(check_slo(&rs, &s, &tight, 50.0, 1.0).pass);
        assert_eq!(percentile_label(99.9), "p99.9");
    }
}
