//! `requests.csv` rows ([`RequestRow`], defined in `bench_shared::sweep::rows` so central writes
//! the same file): one per call, built here from what the engine returned. The same struct
//! serialises to the `sweep_row` event's JSON object.

use bench_shared::engine::EngineKind;
use bench_shared::metrics::{EngineStats, request_metrics};
pub use bench_shared::sweep::{RequestRow, RunMode, UsageSource};

use crate::engine::{EngineError, GenOutcome};

/// Where a row sits in the sweep.
#[derive(Debug, Clone)]
pub struct RowContext {
    pub engine: EngineKind,
    pub model: String,
    pub ctx: u32,
    pub par: u32,
    pub target_prompt_tokens: u32,
}

/// The result of one call after retries.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub mode: RunMode,
    pub result: Result<GenOutcome, EngineError>,
    pub attempts: u32,
    pub timestamp: f64,
}

fn rate(tokens: Option<u64>, seconds: Option<f64>) -> Option<f64> {
    match (tokens, seconds) {
        (Some(n), Some(s)) if s > 0.0 => Some(n as f64 / s),
        _ => None,
    }
}

/// Builds the row of `call`. `usage_fallback` is the non-stream twin's usage, used by a stream
/// row whose stream carried none.
pub fn row_from_call(
    ctx: &RowContext,
    idx: u32,
    slot: u32,
    warmup: bool,
    call: &CallRecord,
    usage_fallback: Option<&EngineStats>,
) -> RequestRow {
    let mut row = RequestRow {
        run_mode: call.mode,
        warmup_run: warmup,
        model: ctx.model.clone(),
        ctx: ctx.ctx,
        par: ctx.par,
        idx,
        slot,
        wall_s: None,
        ttft_s: None,
        prompt_tokens: None,
        completion_tokens: None,
        completion_tokens_reasoning: None,
        completion_tokens_visible: None,
        completion_toks_per_s: None,
        completion_toks_per_s_reasoning: None,
        completion_toks_per_s_visible: None,
        prefill_toks_per_s: None,
        decode_toks_per_s: None,
        error: String::new(),
        timestamp: call.timestamp,
        engine: ctx.engine,
        target_prompt_tokens: ctx.target_prompt_tokens,
        cached_prompt_tokens: None,
        usage_source: None,
        attempts: call.attempts,
    };
    let out = match &call.result {
        Ok(out) => out,
        Err(e) => {
            row.error = e.to_string();
            return row;
        }
    };
    let own_usage = out.stats.completion_tokens.is_some();
    let (stats, source) = match (call.mode, own_usage, usage_fallback) {
        (RunMode::Stream, false, Some(fallback)) => (merge_usage(&out.stats, fallback), UsageSource::Nonstream),
        (RunMode::Stream, _, _) => (out.stats.clone(), UsageSource::Stream),
        (RunMode::Nonstream, _, _) => (out.stats.clone(), UsageSource::Nonstream),
    };
    let m = request_metrics(&out.trace, &stats);
    let wall_s = m.total_ms / 1000.0;
    row.wall_s = Some(wall_s);
    row.ttft_s = m.ttft_ms.map(|ms| ms / 1000.0);
    row.prompt_tokens = stats.prompt_tokens;
    row.cached_prompt_tokens = stats.cached_prompt_tokens;
    row.usage_source = stats.completion_tokens.is_some().then_some(source);
    row.completion_tokens = stats.completion_tokens;
    row.completion_tokens_reasoning = stats.reasoning_tokens;
    row.completion_tokens_visible =
        stats.completion_tokens.map(|c| c.saturating_sub(stats.reasoning_tokens.unwrap_or(0)));
    row.completion_toks_per_s = rate(row.completion_tokens, row.wall_s);
    row.completion_toks_per_s_reasoning = rate(row.completion_tokens_reasoning, row.wall_s);
    row.completion_toks_per_s_visible = rate(row.completion_tokens_visible, row.wall_s);
    if call.mode == RunMode::Stream {
        row.prefill_toks_per_s = m.client_prefill_tok_s;
        row.decode_toks_per_s = m.decode_tok_s;
    }
    row
}

/// The stream call's timing with the non-stream call's token counts.
fn merge_usage(stream: &EngineStats, usage: &EngineStats) -> EngineStats {
    EngineStats {
        prompt_tokens: stream.prompt_tokens.or(usage.prompt_tokens),
        completion_tokens: usage.completion_tokens,
        reasoning_tokens: stream.reasoning_tokens.or(usage.reasoning_tokens),
        cached_prompt_tokens: stream.cached_prompt_tokens.or(usage.cached_prompt_tokens),
        ..stream.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bench_shared::metrics::{ChunkArrival, RequestTrace, TokenChannel};
    use bench_shared::sweep::REQUESTS_CSV_HEADER;

    fn ctx() -> RowContext {
        RowContext { engine: EngineKind::Openai, model: "m".into(), ctx: 512, par: 2, target_prompt_tokens: 496 }
    }

    fn outcome(streamed: bool, stats: EngineStats) -> GenOutcome {
        // First token at 100 ms, 11 tokens 10 ms apart, end at 250 ms.
        let chunks = (0..11).map(|i| ChunkArrival { offset_us: 100_000 + i * 10_000, channel: TokenChannel::Content });
        GenOutcome {
            trace: RequestTrace { chunks: chunks.collect(), end_offset_us: 250_000, streamed },
            stats,
            ..Default::default()
        }
    }

    #[test]
    fn stream_row_reuses_nonstream_usage_when_it_has_none() {
        let usage = EngineStats {
            prompt_tokens: Some(500),
            completion_tokens: Some(11),
            reasoning_tokens: Some(3),
            ..Default::default()
        };
        let stream = CallRecord {
            mode: RunMode::Stream,
            result: Ok(outcome(true, EngineStats::default())),
            attempts: 1,
            timestamp: 5.0,
        };
        let row = row_from_call(&ctx(), 7, 1, false, &stream, Some(&usage));
        assert_eq!(row.usage_source, Some(UsageSource::Nonstream));
        assert_eq!((row.completion_tokens, row.completion_tokens_reasoning), (Some(11), Some(3)));
        assert_eq!(row.completion_tokens_visible, Some(8));
        assert_eq!(row.wall_s, Some(0.25));
        assert_eq!(row.ttft_s, Some(0.1));
        assert!((row.completion_toks_per_s.unwrap() - 44.0).abs() < 1e-9);
        assert!((row.completion_toks_per_s_visible.unwrap() - 32.0).abs() < 1e-9);
        assert!((row.prefill_toks_per_s.unwrap() - 5000.0).abs() < 1e-9);
        // 10 gaps of 10 ms.
        assert!((row.decode_toks_per_s.unwrap() - 100.0).abs() < 1e-9);
        let map = crate::sweep::json_map(&row);
        assert_eq!(map["run_mode"], "stream");
        assert_eq!(map["idx"], 7);
        assert_eq!(map["error"], "");
    }

    #[test]
    fn nonstream_and_error_rows() {
        let usage = EngineStats { prompt_tokens: Some(500), completion_tokens: Some(20), ..Default::default() };
        let ns =
            CallRecord { mode: RunMode::Nonstream, result: Ok(outcome(false, usage)), attempts: 2, timestamp: 1.0 };
        let row = row_from_call(&ctx(), 0, 0, false, &ns, None);
        assert_eq!((row.ttft_s, row.prefill_toks_per_s, row.decode_toks_per_s), (None, None, None));
        assert_eq!(row.completion_toks_per_s, Some(80.0));
        assert_eq!(row.completion_tokens_reasoning, None);
        assert_eq!(row.completion_tokens_visible, Some(20));
        assert_eq!(row.attempts, 2);
        let failed = CallRecord {
            mode: RunMode::Stream,
            result: Err(EngineError::timeout(crate::engine::TimeoutBound::Request, std::time::Duration::from_secs(3))),
            attempts: 5,
            timestamp: 1.0,
        };
        let row = row_from_call(&ctx(), 0, 0, true, &failed, None);
        assert!(!row.ok());
        assert!(row.error.contains("engine.request_timeout_s = 3 s"));
        assert_eq!(row.wall_s, None);
    }

    #[test]
    fn struct_columns_match_the_shared_header() {
        let failed = CallRecord {
            mode: RunMode::Stream,
            result: Err(EngineError::Stream("x".into())),
            attempts: 1,
            timestamp: 0.0,
        };
        let row = row_from_call(&ctx(), 0, 0, false, &failed, None);
        assert_eq!(bench_shared::sweep::rows::serialized_header(&row).unwrap(), REQUESTS_CSV_HEADER);
    }
}
