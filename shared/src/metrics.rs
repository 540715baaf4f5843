//! Timing records → metrics, and summary statistics.
//!
//! The agent records, for every request, the monotonic offset (µs since the request was sent) of
//! each chunk that carried generated text, and the offset of the last chunk of the response. These
//! pure functions turn such a [`RequestTrace`] plus whatever the engine reported ([`EngineStats`])
//! into [`RequestMetrics`]. Field names say where a figure came from: `engine_*` figures are the
//! engine's own, the others are measured by the agent at the socket.

use serde::{Deserialize, Serialize};

/// Which stream a piece of generated text belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TokenChannel {
    /// Visible answer text.
    #[default]
    Content,
    /// Reasoning ("thinking") text.
    Reasoning,
}

/// One chunk of generated text as it arrived at the socket.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChunkArrival {
    /// Microseconds from the request being sent to this chunk's bytes being read.
    pub offset_us: u64,
    pub channel: TokenChannel,
}

/// The client-side timing of one request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestTrace {
    /// Chunks that carried generated text (content or reasoning), in arrival order.
    pub chunks: Vec<ChunkArrival>,
    /// Microseconds from the request being sent to the last chunk of the response.
    pub end_offset_us: u64,
    /// True when the request was a streaming one (TTFT is only defined for those).
    pub streamed: bool,
}

/// What the engine itself reported about a request (Ollama final stats, OpenAI `usage`,
/// llama.cpp `timings`). Every field is optional: engines differ.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineStats {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
    pub cached_prompt_tokens: Option<u64>,
    pub load_ms: Option<f64>,
    pub prompt_eval_ms: Option<f64>,
    pub eval_ms: Option<f64>,
    pub total_ms: Option<f64>,
    /// Engine's own decode rate when it reports one directly (llama.cpp `predicted_per_second`).
    pub decode_tok_s: Option<f64>,
    /// Engine's own prompt rate when it reports one directly (llama.cpp `prompt_per_second`).
    pub prefill_tok_s: Option<f64>,
    pub done_reason: Option<String>,
}

/// Where `gen_tokens` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// The engine's count (`eval_count`, `usage.completion_tokens`, `timings.predicted_n`).
    Engine,
    /// No engine count: the number of text-carrying chunks received.
    Chunks,
    /// An original (Python) bench-race agent's count: whitespace-separated words of the text,
    /// not tokens. Rates built on it are words per second.
    Words,
}

/// Where `load_ms` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadSource {
    /// Engine-reported (`load_duration`).
    Engine,
    /// Estimated as first warm-up TTFT − mean TTFT of the later warm-ups.
    WarmupEstimate,
}

/// p50 / p90 / p99 of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

/// Metrics of one request. `engine_*` fields are engine-reported; the rest are client-measured
/// (monotonic clock at the socket) unless a `*_source` field says otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestMetrics {
    /// Request sent → first chunk carrying any generated text (content or reasoning).
    pub ttft_ms: Option<f64>,
    /// Request sent → first chunk carrying visible content.
    pub ttfc_ms: Option<f64>,
    /// Request sent → last chunk of the response.
    pub total_ms: f64,
    pub gen_tokens: u64,
    pub token_source: TokenSource,
    /// Text-carrying chunks received.
    pub chunks: u64,
    /// `(gen_tokens − 1) / (t_last_token − t_first_token)`, client-measured.
    pub decode_tok_s: Option<f64>,
    /// bench-race compatible rate: `gen_tokens / (total − ttft)`.
    pub gen_tokens_per_s: Option<f64>,
    /// Engine-reported decode rate (`eval_count / eval_duration`, llama.cpp `predicted_per_second`).
    pub engine_decode_tok_s: Option<f64>,
    /// Engine-reported prompt tokens.
    pub prompt_tokens: Option<u64>,
    pub cached_prompt_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
    /// `prompt_tokens / prompt-eval time`, both engine-reported.
    pub engine_prefill_tok_s: Option<f64>,
    /// `prompt_tokens / ttft`: engine token count over client-measured TTFT.
    pub client_prefill_tok_s: Option<f64>,
    pub load_ms: Option<f64>,
    pub load_source: Option<LoadSource>,
    pub engine_total_ms: Option<f64>,
    pub engine_prompt_eval_ms: Option<f64>,
    pub engine_eval_ms: Option<f64>,
    /// Gaps between consecutive text-carrying chunks that arrived in different reads
    /// (client-measured; chunks read together have no measurable gap and are not counted).
    pub itl_ms: Option<Percentiles>,
    pub done_reason: Option<String>,
    /// Energy the machine used during the request, joules (`energy_source` says from what);
    /// `None` with `energy_unavailable` saying why. Never estimated.
    #[serde(default)]
    pub energy_j: Option<f64>,
    /// `gen_tokens / energy_j`.
    #[serde(default)]
    pub tokens_per_j: Option<f64>,
    #[serde(default)]
    pub energy_source: Option<String>,
    #[serde(default)]
    pub energy_unavailable: Option<String>,
    /// A GPU reported thermal or power clock limits during the request; `None`: not observable.
    #[serde(default)]
    pub throttled: Option<bool>,
}

fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn positive_rate(count: f64, ms: f64) -> Option<f64> {
    (count > 0.0 && ms > 0.0 && ms.is_finite()).then(|| count / (ms / 1000.0))
}

/// Turns a client trace and the engine's stats into the request's metrics.
pub fn request_metrics(trace: &RequestTrace, stats: &EngineStats) -> RequestMetrics {
    let first = trace.chunks.first().map(|c| c.offset_us);
    let first_content = trace.chunks.iter().find(|c| c.channel == TokenChannel::Content).map(|c| c.offset_us);
    let last = trace.chunks.last().map(|c| c.offset_us);
    let ttft_ms = if trace.streamed { first.map(us_to_ms) } else { None };
    let ttfc_ms = if trace.streamed { first_content.map(us_to_ms) } else { None };
    let total_ms = us_to_ms(trace.end_offset_us);
    let chunks = trace.chunks.len() as u64;
    let (gen_tokens, token_source) = match stats.completion_tokens {
        Some(n) => (n, TokenSource::Engine),
        None => (chunks, TokenSource::Chunks),
    };
    let decode_tok_s = match (first, last) {
        (Some(f), Some(l)) if trace.streamed && gen_tokens > 1 && l > f => {
            positive_rate((gen_tokens - 1) as f64, us_to_ms(l - f))
        }
        _ => None,
    };
    let gen_tokens_per_s = ttft_ms.and_then(|t| positive_rate(gen_tokens as f64, total_ms - t));
    let engine_decode_tok_s = stats
        .decode_tok_s
        .or_else(|| stats.completion_tokens.zip(stats.eval_ms).and_then(|(n, ms)| positive_rate(n as f64, ms)));
    let engine_prefill_tok_s = stats.prefill_tok_s.or_else(|| {
        // Ollama counts cached prompt tokens in prompt_eval_count but not in its duration:
        // only uncached tokens were evaluated in prompt_eval_ms.
        let evaluated = stats.prompt_tokens.map(|p| p.saturating_sub(stats.cached_prompt_tokens.unwrap_or(0)));
        evaluated.zip(stats.prompt_eval_ms).and_then(|(n, ms)| positive_rate(n as f64, ms))
    });
    let client_prefill_tok_s = stats.prompt_tokens.zip(ttft_ms).and_then(|(n, ms)| positive_rate(n as f64, ms));
    // Lines that arrived in one read share one instant: a zero gap is the reader's batching,
    // not an inter-token latency, so it is left out.
    let gaps: Vec<f64> = trace
        .chunks
        .windows(2)
        .map(|w| w[1].offset_us.saturating_sub(w[0].offset_us))
        .filter(|gap| *gap > 0)
        .map(us_to_ms)
        .collect();
    RequestMetrics {
        ttft_ms,
        ttfc_ms,
        total_ms,
        gen_tokens,
        token_source,
        chunks,
        decode_tok_s,
        gen_tokens_per_s,
        engine_decode_tok_s,
        prompt_tokens: stats.prompt_tokens,
        cached_prompt_tokens: stats.cached_prompt_tokens,
        reasoning_tokens: stats.reasoning_tokens,
        engine_prefill_tok_s,
        client_prefill_tok_s,
        load_ms: stats.load_ms,
        load_source: stats.load_ms.map(|_| LoadSource::Engine),
        engine_total_ms: stats.total_ms,
        engine_prompt_eval_ms: stats.prompt_eval_ms,
        engine_eval_ms: stats.eval_ms,
        itl_ms: percentiles(&gaps),
        done_reason: stats.done_reason.clone(),
        energy_j: None,
        tokens_per_j: None,
        energy_source: None,
        energy_unavailable: None,
        throttled: None,
    }
}

/// Summary statistics of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n − 1); 0 for a single value.
    pub stdev: f64,
    pub min: f64,
    pub max: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

/// Percentile `p` (0–100) of an ascending-sorted, non-empty sample, by linear interpolation
/// between closest ranks: rank `r = p/100 · (n − 1)`, value `x[⌊r⌋] + (x[⌈r⌉] − x[⌊r⌋]) · (r − ⌊r⌋)`
/// (NumPy's default `linear`, Excel's `PERCENTILE.INC`). This is the project's one percentile
/// definition: metrics, verdicts, load runs and the benchmark harness all use it.
pub fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    debug_assert!(!sorted.is_empty());
    if sorted.len() == 1 {
        return sorted[0];
    }
    let rank = (p / 100.0).clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

fn sorted_finite(values: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// Percentile `p` (0–100) of a sample in any order, non-finite values ignored (see
/// [`percentile_sorted`]); `None` when no value is finite.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let v = sorted_finite(values);
    (!v.is_empty()).then(|| percentile_sorted(&v, p))
}

/// Mean of the finite values; `None` when there are none.
pub fn mean(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.into_iter().filter(|x| x.is_finite()).fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// p50/p90/p99 of a sample; `None` when it is empty.
pub fn percentiles(values: &[f64]) -> Option<Percentiles> {
    let v = sorted_finite(values);
    (!v.is_empty()).then(|| Percentiles {
        p50: percentile_sorted(&v, 50.0),
        p90: percentile_sorted(&v, 90.0),
        p99: percentile_sorted(&v, 99.0),
    })
}

/// Mean, sample stdev, min, max and percentiles; `None` when the sample is empty.
/// Non-finite values are ignored.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    let v = sorted_finite(values);
    if v.is_empty() {
        return None;
    }
    let n = v.len();
    let mean = v.iter().sum::<f64>() / n as f64;
    let stdev = if n > 1 { (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() } else { 0.0 };
    Some(Summary {
        n,
        mean,
        stdev,
        min: v[0],
        max: v[n - 1],
        p50: percentile_sorted(&v, 50.0),
        p90: percentile_sorted(&v, 90.0),
        p99: percentile_sorted(&v, 99.0),
    })
}

/// Summary statistics of each metric over the measured (non-warm-up) requests of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    pub requests: usize,
    pub ttft_ms: Option<Summary>,
    pub ttfc_ms: Option<Summary>,
    pub total_ms: Option<Summary>,
    pub gen_tokens: Option<Summary>,
    pub decode_tok_s: Option<Summary>,
    pub gen_tokens_per_s: Option<Summary>,
    pub engine_decode_tok_s: Option<Summary>,
    pub engine_prefill_tok_s: Option<Summary>,
    pub client_prefill_tok_s: Option<Summary>,
    pub load_ms: Option<Summary>,
}

fn summarize_by(requests: &[RequestMetrics], f: impl Fn(&RequestMetrics) -> Option<f64>) -> Option<Summary> {
    let values: Vec<f64> = requests.iter().filter_map(f).collect();
    summarize(&values)
}

/// Aggregates request metrics over repeats.
pub fn aggregate(requests: &[RequestMetrics]) -> Aggregate {
    Aggregate {
        requests: requests.len(),
        ttft_ms: summarize_by(requests, |r| r.ttft_ms),
        ttfc_ms: summarize_by(requests, |r| r.ttfc_ms),
        total_ms: summarize_by(requests, |r| Some(r.total_ms)),
        gen_tokens: summarize_by(requests, |r| Some(r.gen_tokens as f64)),
        decode_tok_s: summarize_by(requests, |r| r.decode_tok_s),
        gen_tokens_per_s: summarize_by(requests, |r| r.gen_tokens_per_s),
        engine_decode_tok_s: summarize_by(requests, |r| r.engine_decode_tok_s),
        engine_prefill_tok_s: summarize_by(requests, |r| r.engine_prefill_tok_s),
        client_prefill_tok_s: summarize_by(requests, |r| r.client_prefill_tok_s),
        load_ms: summarize_by(requests, |r| r.load_ms),
    }
}

/// The LLMBench model-load estimate: first warm-up TTFT − mean TTFT of the later warm-ups.
/// `None` with fewer than two values.
pub fn load_estimate_ms(warmup_ttfts_ms: &[f64]) -> Option<f64> {
    let (first, rest) = warmup_ttfts_ms.split_first()?;
    if rest.is_empty() {
        return None;
    }
    let mean_rest = rest.iter().sum::<f64>() / rest.len() as f64;
    Some(first - mean_rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(offset_ms: u64, channel: TokenChannel) -> ChunkArrival {
        ChunkArrival { offset_us: offset_ms * 1000, channel }
    }

    #[test]
    fn streamed_trace_with_engine_counts() {
        // 100 ms to first token, then 10 tokens 20 ms apart, final stats 10 ms later.
        let chunks: Vec<_> = (0..10).map(|i| chunk(100 + 20 * i, TokenChannel::Content)).collect();
        let trace = RequestTrace { chunks, end_offset_us: 290_000, streamed: true };
        let stats = EngineStats {
            prompt_tokens: Some(50),
            completion_tokens: Some(10),
            prompt_eval_ms: Some(25.0),
            eval_ms: Some(200.0),
            load_ms: Some(5.0),
            ..Default::default()
        };
        let m = request_metrics(&trace, &stats);
        assert_eq!(m.ttft_ms, Some(100.0));
        assert_eq!(m.ttfc_ms, Some(100.0));
        assert_eq!(m.total_ms, 290.0);
        assert_eq!(m.gen_tokens, 10);
        assert_eq!(m.token_source, TokenSource::Engine);
        // 9 gaps over 180 ms.
        assert!((m.decode_tok_s.unwrap() - 50.0).abs() < 1e-9);
        // 10 tokens over 190 ms.
        assert!((m.gen_tokens_per_s.unwrap() - 10.0 / 0.19).abs() < 1e-9);
        assert!((m.engine_decode_tok_s.unwrap() - 50.0).abs() < 1e-9);
        assert!((m.engine_prefill_tok_s.unwrap() - 2000.0).abs() < 1e-9);
        assert!((m.client_prefill_tok_s.unwrap() - 500.0).abs() < 1e-9);
        assert_eq!(m.load_source, Some(LoadSource::Engine));
        let itl = m.itl_ms.unwrap();
        assert_eq!((itl.p50, itl.p90, itl.p99), (20.0, 20.0, 20.0));
    }

    #[test]
    fn itl_ignores_chunks_that_arrived_in_one_read() {
        // Two reads of three lines each, 30 ms apart, then one more 10 ms later.
        let offsets = [100, 100, 100, 130, 130, 130, 140];
        let chunks = offsets.iter().map(|o| chunk(*o, TokenChannel::Content)).collect();
        let trace = RequestTrace { chunks, end_offset_us: 150_000, streamed: true };
        let itl = request_metrics(&trace, &EngineStats::default()).itl_ms.unwrap();
        assert_eq!((itl.p50, itl.p90), (20.0, 28.0), "gaps 30 and 10 only");
    }

    #[test]
    fn reasoning_first_separates_ttft_and_ttfc() {
        let trace = RequestTrace {
            chunks: vec![
                chunk(50, TokenChannel::Reasoning),
                chunk(60, TokenChannel::Reasoning),
                chunk(80, TokenChannel::Content),
            ],
            end_offset_us: 90_000,
            streamed: true,
        };
        let m = request_metrics(&trace, &EngineStats::default());
        assert_eq!(m.ttft_ms, Some(50.0));
        assert_eq!(m.ttfc_ms, Some(80.0));
        assert_eq!(m.gen_tokens, 3);
        assert_eq!(m.token_source, TokenSource::Chunks);
        assert!((m.decode_tok_s.unwrap() - 2.0 / 0.030).abs() < 1e-9);
        assert_eq!(m.engine_decode_tok_s, None);
    }

    #[test]
    fn non_streamed_request_has_no_ttft() {
        let trace =
            RequestTrace { chunks: vec![chunk(400, TokenChannel::Content)], end_offset_us: 400_000, streamed: false };
        let stats = EngineStats { completion_tokens: Some(20), ..Default::default() };
        let m = request_metrics(&trace, &stats);
        assert_eq!(m.ttft_ms, None);
        assert_eq!(m.decode_tok_s, None);
        assert_eq!(m.gen_tokens_per_s, None);
        assert_eq!(m.total_ms, 400.0);
    }

    #[test]
    fn cached_prompt_tokens_do_not_inflate_engine_prefill_rate() {
        let stats = EngineStats {
            prompt_tokens: Some(1000),
            cached_prompt_tokens: Some(900),
            prompt_eval_ms: Some(100.0),
            ..Default::default()
        };
        let m = request_metrics(&RequestTrace::default(), &stats);
        assert!((m.engine_prefill_tok_s.unwrap() - 1000.0).abs() < 1e-9);
    }

    #[test]
    fn summary_statistics_on_known_sample() {
        let s = summarize(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(s.n, 8);
        assert_eq!(s.mean, 5.0);
        assert!((s.stdev - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!((s.min, s.max), (2.0, 9.0));
        assert_eq!(s.p50, 4.5);
        assert!((s.p90 - 7.6).abs() < 1e-12);
        let one = summarize(&[3.0]).unwrap();
        assert_eq!((one.mean, one.stdev, one.p99), (3.0, 0.0, 3.0));
        assert!(summarize(&[]).is_none());
        assert!(summarize(&[f64::NAN]).is_none());
    }

    #[test]
    fn aggregate_over_repeats() {
        let mk = |ttft: u64| {
            let trace = RequestTrace {
                chunks: vec![chunk(ttft, TokenChannel::Content), chunk(ttft + 10, TokenChannel::Content)],
                end_offset_us: (ttft + 20) * 1000,
                streamed: true,
            };
            request_metrics(&trace, &EngineStats::default())
        };
        let agg = aggregate(&[mk(10), mk(20), mk(30)]);
        assert_eq!(agg.requests, 3);
        let ttft = agg.ttft_ms.unwrap();
        assert_eq!((ttft.mean, ttft.min, ttft.max, ttft.p50), (20.0, 10.0, 30.0, 20.0));
        assert_eq!(agg.total_ms.unwrap().mean, 40.0);
        assert!(agg.load_ms.is_none());
    }

    #[test]
    fn load_estimate_from_warmups() {
        assert_eq!(load_estimate_ms(&[900.0, 100.0, 120.0]), Some(790.0));
        assert_eq!(load_estimate_ms(&[900.0]), None);
        assert_eq!(load_estimate_ms(&[]), None);
    }
}
