//! `summary.csv` and `load_times.csv` rows, computed from a cell's `requests.csv` rows.
//!
//! Semantics follow LLMBench: only recorded rows count (no warm-ups); requests are counted as
//! logical requests (`runs × par`), and one succeeded only when both its stream and its
//! non-stream call did; the totals are tokens / wall time summed over successful calls of one
//! mode; `completion_toks_per_s_total` is the mean of the stream and non-stream totals; the
//! distributions (mean/stdev/p50/p90/p99) are over stream calls. Besides LLMBench's per-call
//! rates, `aggregate_toks_per_s` is what the machine delivered: all recorded completion tokens ÷
//! the cell's wall time. The row types live in `bench_shared::sweep::rows`.

use std::collections::BTreeMap;

use bench_shared::engine::EngineKind;
use bench_shared::metrics::{Summary, load_estimate_ms, summarize};
pub use bench_shared::sweep::{LoadRow, SummaryRow};

use super::rows::{RequestRow, RunMode};

/// What identifies a cell in its summary.
#[derive(Debug, Clone)]
pub struct CellKey {
    pub engine: EngineKind,
    pub model: String,
    pub ctx: u32,
    pub par: u32,
    pub runs: u32,
    pub target_prompt_tokens: u32,
}

fn ratio(num: f64, den: f64) -> Option<f64> {
    (den > 0.0 && num.is_finite()).then(|| num / den)
}

fn mean_of(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    bench_shared::metrics::mean(values.flatten())
}

/// Sum of an optional count over rows; `None` when no row reports it.
fn sum_opt<'a>(rows: impl Iterator<Item = &'a RequestRow>, f: impl Fn(&RequestRow) -> Option<u64>) -> Option<u64> {
    rows.filter_map(f).fold(None, |acc, n| Some(acc.unwrap_or(0) + n))
}

/// Per-mode totals over successful calls with a token count.
#[derive(Default)]
struct ModeTotals {
    tokens: u64,
    wall_s: f64,
    reasoning: Option<u64>,
    visible: Option<u64>,
}

impl ModeTotals {
    fn of<'a>(rows: impl Iterator<Item = &'a RequestRow> + Clone) -> Self {
        let counted = rows.filter(|r| r.ok() && r.completion_tokens.is_some() && r.wall_s.is_some());
        ModeTotals {
            tokens: counted.clone().filter_map(|r| r.completion_tokens).sum(),
            wall_s: counted.clone().filter_map(|r| r.wall_s).sum(),
            reasoning: sum_opt(counted.clone(), |r| r.completion_tokens_reasoning),
            visible: sum_opt(counted, |r| r.completion_tokens_visible),
        }
    }

    fn rate(&self, tokens: Option<u64>) -> Option<f64> {
        tokens.and_then(|n| ratio(n as f64, self.wall_s))
    }
}

fn both_mean(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some((a + b) / 2.0),
        (a, b) => a.or(b),
    }
}

/// Summarises the recorded rows of one cell (warm-up rows are ignored).
pub fn summary_row(key: &CellKey, rows: &[RequestRow], elapsed_s: f64) -> SummaryRow {
    let recorded: Vec<&RequestRow> = rows.iter().filter(|r| !r.warmup_run).collect();
    let mut by_idx: BTreeMap<u32, (bool, bool)> = BTreeMap::new();
    for r in &recorded {
        let e = by_idx.entry(r.idx).or_default();
        match r.run_mode {
            RunMode::Stream => e.0 = r.ok(),
            RunMode::Nonstream => e.1 = r.ok(),
        }
    }
    let finished = by_idx.len() as u32;
    let success_count = by_idx.values().filter(|(s, n)| *s && *n).count() as u32;
    let stream_rows = recorded.iter().copied().filter(|r| r.run_mode == RunMode::Stream);
    let nonstream_rows = recorded.iter().copied().filter(|r| r.run_mode == RunMode::Nonstream);
    let s = ModeTotals::of(stream_rows.clone());
    let n = ModeTotals::of(nonstream_rows.clone());
    let ok_stream: Vec<&RequestRow> = stream_rows.filter(|r| r.ok()).collect();
    let ttft = summarize(&ok_stream.iter().filter_map(|r| r.ttft_s).collect::<Vec<_>>());
    let rates = summarize(&ok_stream.iter().filter_map(|r| r.completion_toks_per_s).collect::<Vec<_>>());
    let pick = |s: Option<Summary>, f: fn(&Summary) -> f64| s.as_ref().map(f);
    let stream_total = s.rate(Some(s.tokens));
    let nonstream_total = n.rate(Some(n.tokens));
    SummaryRow {
        engine: Some(key.engine),
        model: key.model.clone(),
        ctx: key.ctx,
        par: key.par,
        runs: key.runs,
        target_prompt_tokens: key.target_prompt_tokens,
        prompt_tokens_mean: mean_of(recorded.iter().filter(|r| r.ok()).map(|r| r.prompt_tokens.map(|p| p as f64))),
        request_count: key.runs * key.par,
        success_count,
        error_count: finished - success_count,
        stream_completion_tokens: s.tokens,
        stream_wall_s: s.wall_s,
        nonstream_completion_tokens: n.tokens,
        nonstream_wall_s: n.wall_s,
        stream_toks_per_s_total: stream_total,
        nonstream_toks_per_s_total: nonstream_total,
        completion_toks_per_s_total: both_mean(stream_total, nonstream_total),
        aggregate_toks_per_s: ratio((s.tokens + n.tokens) as f64, elapsed_s),
        // Token splits come from the non-stream call: it is the usage source of record.
        completion_tokens_reasoning: n.reasoning,
        completion_tokens_visible: n.visible,
        completion_toks_per_s_reasoning_total: both_mean(s.rate(s.reasoning), n.rate(n.reasoning)),
        completion_toks_per_s_visible_total: both_mean(s.rate(s.visible), n.rate(n.visible)),
        ttft_s_mean: pick(ttft, |s| s.mean),
        ttft_s_stdev: pick(ttft, |s| s.stdev),
        ttft_s_p50: pick(ttft, |s| s.p50),
        ttft_s_p90: pick(ttft, |s| s.p90),
        ttft_s_p99: pick(ttft, |s| s.p99),
        completion_toks_per_s_mean: pick(rates, |s| s.mean),
        completion_toks_per_s_stdev: pick(rates, |s| s.stdev),
        completion_toks_per_s_p50: pick(rates, |s| s.p50),
        completion_toks_per_s_p90: pick(rates, |s| s.p90),
        completion_toks_per_s_p99: pick(rates, |s| s.p99),
        prefill_toks_per_s_mean: mean_of(ok_stream.iter().map(|r| r.prefill_toks_per_s)),
        decode_toks_per_s_mean: mean_of(ok_stream.iter().map(|r| r.decode_toks_per_s)),
        elapsed_s,
    }
}

/// The warm-up part of a load row, from the successful warm-ups' TTFTs (seconds, in order).
pub fn warmup_fields(row: &mut LoadRow, ttfts_s: &[f64]) {
    row.warmup_count = ttfts_s.len() as u32;
    row.warmup_ttft_first_s = ttfts_s.first().copied();
    row.warmup_ttft_rest_mean_s = mean_of(ttfts_s.iter().skip(1).map(|t| Some(*t)));
    let ms: Vec<f64> = ttfts_s.iter().map(|s| s * 1000.0).collect();
    let est_s = load_estimate_ms(&ms).map(|ms| ms / 1000.0);
    // A negative estimate (the first warm-up was not the slowest) is no load time: report 0
    // and say so, rather than a load that took less than nothing.
    row.warmup_load_est_clamped = est_s.is_some_and(|s| s < 0.0);
    row.warmup_load_est_s = est_s.map(|s| s.max(0.0));
}

#[cfg(test)]
mod tests {
    use super::*;
    use bench_shared::sweep::rows::serialized_header;
    use bench_shared::sweep::{LOAD_TIMES_CSV_HEADER, SUMMARY_CSV_HEADER};

    fn row(mode: RunMode, idx: u32, wall: f64, tokens: u64, ttft: Option<f64>, error: &str) -> RequestRow {
        let ok = error.is_empty();
        RequestRow {
            run_mode: mode,
            warmup_run: false,
            model: "m".into(),
            ctx: 512,
            par: 2,
            idx,
            slot: idx % 2,
            wall_s: ok.then_some(wall),
            ttft_s: ttft.filter(|_| ok),
            prompt_tokens: ok.then_some(400),
            completion_tokens: ok.then_some(tokens),
            completion_tokens_reasoning: None,
            completion_tokens_visible: ok.then_some(tokens),
            completion_toks_per_s: ok.then_some(tokens as f64 / wall),
            completion_toks_per_s_reasoning: None,
            completion_toks_per_s_visible: ok.then_some(tokens as f64 / wall),
            prefill_toks_per_s: ttft.map(|t| 400.0 / t),
            decode_toks_per_s: None,
            error: error.into(),
            timestamp: 0.0,
            engine: EngineKind::Openai,
            target_prompt_tokens: 400,
            cached_prompt_tokens: None,
            usage_source: None,
            attempts: 1,
        }
    }

    fn key() -> CellKey {
        CellKey { engine: EngineKind::Openai, model: "m".into(), ctx: 512, par: 2, runs: 2, target_prompt_tokens: 400 }
    }

    #[test]
    fn llmbench_summary_semantics() {
        let mut warm = row(RunMode::Stream, 0, 9.0, 1, Some(5.0), "");
        warm.warmup_run = true;
        let rows = vec![
            warm,
            row(RunMode::Stream, 0, 2.0, 100, Some(0.5), ""),
            row(RunMode::Nonstream, 0, 1.0, 100, None, ""),
            row(RunMode::Stream, 1, 2.0, 100, Some(1.5), ""),
            row(RunMode::Nonstream, 1, 0.0, 0, None, "boom"),
            row(RunMode::Stream, 2, 4.0, 100, Some(1.0), ""),
            row(RunMode::Nonstream, 2, 3.0, 200, None, ""),
        ];
        let s = summary_row(&key(), &rows, 12.0);
        assert_eq!((s.request_count, s.success_count, s.error_count), (4, 2, 1));
        assert_eq!((s.stream_completion_tokens, s.stream_wall_s), (300, 8.0));
        assert_eq!((s.nonstream_completion_tokens, s.nonstream_wall_s), (300, 4.0));
        assert_eq!(s.stream_toks_per_s_total, Some(37.5));
        assert_eq!(s.nonstream_toks_per_s_total, Some(75.0));
        assert_eq!(s.completion_toks_per_s_total, Some(56.25));
        assert_eq!(s.ttft_s_mean, Some(1.0));
        assert_eq!(s.ttft_s_p50, Some(1.0));
        assert_eq!(s.ttft_s_stdev, Some(0.5));
        assert_eq!(s.completion_toks_per_s_mean, Some(125.0 / 3.0));
        assert_eq!(s.completion_tokens_visible, Some(300));
        assert_eq!(s.completion_tokens_reasoning, None);
        assert_eq!(s.prompt_tokens_mean, Some(400.0));
        assert_eq!(serialized_header(&s).unwrap(), SUMMARY_CSV_HEADER);
        // All recorded tokens (300 stream + 300 non-stream) over the cell's 12 s.
        assert_eq!(s.aggregate_toks_per_s, Some(50.0));
    }

    #[test]
    fn load_row_from_warmups() {
        let mut l = LoadRow::default();
        warmup_fields(&mut l, &[0.9, 0.1, 0.2]);
        assert_eq!(l.warmup_count, 3);
        assert_eq!(l.warmup_ttft_first_s, Some(0.9));
        assert!((l.warmup_ttft_rest_mean_s.unwrap() - 0.15).abs() < 1e-12);
        assert!((l.warmup_load_est_s.unwrap() - 0.75).abs() < 1e-12);
        warmup_fields(&mut l, &[0.9]);
        assert_eq!((l.warmup_ttft_rest_mean_s, l.warmup_load_est_s), (None, None));
        assert!(!l.warmup_load_est_clamped);
        assert_eq!(serialized_header(&l).unwrap(), LOAD_TIMES_CSV_HEADER);
        // The first warm-up faster than the rest: 0 with the flag, not −0.128 s.
        warmup_fields(&mut l, &[0.1, 0.2, 0.256]);
        assert_eq!(l.warmup_load_est_s, Some(0.0));
        assert!(l.warmup_load_est_clamped);
    }
}
