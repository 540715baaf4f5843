//! One request of a load: what the agent records (and `requests.csv` holds, one row each).

use serde::{Deserialize, Serialize};

use crate::metrics::TokenSource;
use crate::sweep::CsvRow;

/// Whether a request completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Ok,
    Error,
}

/// One request. Times are seconds from the load's start (the instant the first request was
/// due) on the agent's monotonic clock, or milliseconds for durations; every figure is
/// client-measured at the socket except the token counts (`token_source` says whose).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// The capacity step it belongs to (0 for `llm_load`).
    pub step: u32,
    /// Send order within the load (warm-ups first).
    pub index: u64,
    pub warmup: bool,
    /// When it was due (open loop only).
    pub scheduled_s: Option<f64>,
    /// When it was sent (the instant before the request's first byte was written).
    pub sent_s: f64,
    /// `sent − scheduled`, ms (open loop only).
    pub lateness_ms: Option<f64>,
    /// It waited for a free slot under the `concurrency` cap (open loop with a cap).
    pub capped: bool,
    /// Requests in flight when it was sent, itself included.
    pub in_flight: u32,
    pub ttft_ms: Option<f64>,
    /// `(e2e − ttft) ÷ (output_tokens − 1)`; empty below 2 output tokens.
    pub tpot_ms: Option<f64>,
    /// Sent → last byte of the answer (or → the error).
    pub e2e_ms: Option<f64>,
    /// Every gap between consecutive chunks that arrived in different reads, ms (space-separated).
    #[serde(with = "gaps")]
    pub itl_ms: Vec<f64>,
    /// Words in the prompt after its tag (and prefix): the asked-for input length.
    pub prompt_words: u32,
    /// Engine-reported prompt tokens.
    pub input_tokens: Option<u64>,
    /// Engine-reported prompt tokens served from its cache.
    pub cached_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub token_source: Option<TokenSource>,
    pub status: RequestStatus,
    /// Empty when it completed.
    pub error: String,
}

impl CsvRow for RequestRecord {
    const HEADER: &'static [&'static str] = &[
        "step",
        "index",
        "warmup",
        "scheduled_s",
        "sent_s",
        "lateness_ms",
        "capped",
        "in_flight",
        "ttft_ms",
        "tpot_ms",
        "e2e_ms",
        "itl_ms",
        "prompt_words",
        "input_tokens",
        "cached_tokens",
        "output_tokens",
        "token_source",
        "status",
        "error",
    ];
}

impl RequestRecord {
    pub fn ok(&self) -> bool {
        self.status == RequestStatus::Ok
    }

    /// When the answer ended (or the error came), seconds from the load's start.
    pub fn end_s(&self) -> f64 {
        self.sent_s + self.e2e_ms.unwrap_or(0.0) / 1000.0
    }
}

/// TPOT as vLLM defines it: `(e2e − ttft) ÷ (output_tokens − 1)`; `None` below 2 tokens.
pub fn tpot_ms(e2e_ms: f64, ttft_ms: f64, output_tokens: u64) -> Option<f64> {
    (output_tokens > 1 && e2e_ms >= ttft_ms).then(|| (e2e_ms - ttft_ms) / (output_tokens - 1) as f64)
}

/// Inter-token latencies from chunk arrival offsets (µs from the send, in order): every gap
/// between chunks that arrived in different reads, ms.
pub fn itl_gaps_ms(offsets_us: impl IntoIterator<Item = u64>) -> Vec<f64> {
    let mut prev: Option<u64> = None;
    let mut gaps = Vec::new();
    for at in offsets_us {
        if let Some(p) = prev
            && at > p
        {
            gaps.push((at - p) as f64 / 1000.0);
        }
        prev = Some(at);
    }
    gaps
}

/// `itl_ms` as one CSV cell: gaps in ms with µs precision, separated by spaces.
mod gaps {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(gaps: &[f64], s: S) -> Result<S::Ok, S::Error> {
        let text: Vec<String> = gaps.iter().map(|g| format!("{g:.3}")).collect();
        s.serialize_str(&text.join(" "))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        let text = String::deserialize(d)?;
        text.split_whitespace().map(|g| g.parse::<f64>().map_err(serde::de::Error::custom)).collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sweep::csv_text;

    /// A completed request: sent at `sent_s`, first token after `ttft` ms, then `tokens − 1`
    /// more `gap` ms apart.
    pub fn done(index: u64, sent_s: f64, ttft: f64, gap: f64, tokens: u64) -> RequestRecord {
        let e2e = ttft + gap * (tokens - 1) as f64;
        RequestRecord {
            step: 0,
            index,
            warmup: false,
            scheduled_s: Some(sent_s),
            sent_s,
            lateness_ms: Some(0.0),
            capped: false,
            in_flight: 1,
            ttft_ms: Some(ttft),
            tpot_ms: tpot_ms(e2e, ttft, tokens),
            e2e_ms: Some(e2e),
            itl_ms: vec![gap; tokens as usize - 1],
            prompt_words: 8,
            input_tokens: Some(10),
            cached_tokens: Some(0),
            output_tokens: Some(tokens),
            token_source: Some(TokenSource::Engine),
            status: RequestStatus::Ok,
            error: String::new(),
        }
    }

    #[test]
    fn tpot_and_itl_follow_vllm() {
        // 100 ms to the first token, 10 tokens, 20 ms apart: e2e 280 ms, TPOT 20 ms.
        assert_eq!(tpot_ms(280.0, 100.0, 10), Some(20.0));
        assert_eq!(tpot_ms(100.0, 100.0, 1), None);
        // Chunks at 100, 100 (same read), 130, 140 ms: gaps 30 and 10.
        assert_eq!(itl_gaps_ms([100_000, 100_000, 130_000, 140_000]), vec![30.0, 10.0]);
        assert!(itl_gaps_ms([5]).is_empty());
    }

    #[test]
    fn csv_row_round_trips_with_its_header() {
        let mut r = done(3, 1.5, 100.0, 20.0, 3);
        r.itl_ms = vec![20.0, 21.5];
        let text = csv_text(std::slice::from_ref(&r)).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next().unwrap(), RequestRecord::HEADER.join(","));
        let row = lines.next().unwrap();
        assert!(row.contains(",20.000 21.500,"), "{row}");
        let back: Vec<RequestRecord> =
            csv::Reader::from_reader(text.as_bytes()).deserialize().collect::<Result<_, _>>().unwrap();
        assert_eq!(back, vec![r]);
    }
}
