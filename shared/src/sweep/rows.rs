//! The rows of the sweep's three CSVs as structs: the agent writes them and central rewrites
//! them from the agent's events, through the same types.
//!
//! A struct's fields are its CSV columns in order: [`csv_text`] and the agent's appending writer
//! take the header from the struct through `csv::Writer::serialize`. The header constants in
//! [`super`] (the README check's source) are tested to equal what the structs serialise to.
//! Empty cells (JSON null) mean "not applicable or not reported" — LLMBench wrote 0 for a
//! non-stream row's prefill rate; an empty cell cannot be mistaken for a measurement.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::engine::EngineKind;

/// A row of one of the sweep's CSVs.
pub trait CsvRow: Serialize + DeserializeOwned {
    /// The file's header; equal to the struct's serialised field names (tested).
    const HEADER: &'static [&'static str];
}

/// Which of the two calls of a logical request a row describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    #[default]
    Stream,
    Nonstream,
}

/// Which call's usage a row's token counts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageSource {
    Stream,
    /// A stream row without usage of its own reuses its non-stream twin's (as LLMBench did).
    Nonstream,
}

/// One `requests.csv` row (one call); also the `sweep_row` event's payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRow {
    pub run_mode: RunMode,
    pub warmup_run: bool,
    pub model: String,
    pub ctx: u32,
    pub par: u32,
    /// Logical request index within the cell (warm-ups count separately from 0).
    pub idx: u32,
    /// Which of the `par` concurrent requests (0 for warm-ups).
    pub slot: u32,
    pub wall_s: Option<f64>,
    pub ttft_s: Option<f64>,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub completion_tokens_reasoning: Option<u64>,
    pub completion_tokens_visible: Option<u64>,
    /// completion tokens / wall_s.
    pub completion_toks_per_s: Option<f64>,
    pub completion_toks_per_s_reasoning: Option<f64>,
    pub completion_toks_per_s_visible: Option<f64>,
    /// Stream rows: prompt tokens / TTFT.
    pub prefill_toks_per_s: Option<f64>,
    /// Stream rows: (completion tokens − 1) / (last token − first token).
    pub decode_toks_per_s: Option<f64>,
    /// Empty when the call succeeded; else the last attempt's error.
    pub error: String,
    /// Wall clock when the call finished, epoch seconds.
    pub timestamp: f64,
    pub engine: EngineKind,
    pub target_prompt_tokens: u32,
    pub cached_prompt_tokens: Option<u64>,
    pub usage_source: Option<UsageSource>,
    /// Attempts made (1 = no retry).
    pub attempts: u32,
}

impl RequestRow {
    pub fn ok(&self) -> bool {
        self.error.is_empty()
    }
}

impl CsvRow for RequestRow {
    const HEADER: &'static [&'static str] = super::REQUESTS_CSV_HEADER;
}

/// One `summary.csv` row: one (model, ctx, par) cell, recorded requests only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    pub engine: Option<EngineKind>,
    pub model: String,
    pub ctx: u32,
    pub par: u32,
    pub runs: u32,
    pub target_prompt_tokens: u32,
    pub prompt_tokens_mean: Option<f64>,
    pub request_count: u32,
    pub success_count: u32,
    pub error_count: u32,
    pub stream_completion_tokens: u64,
    pub stream_wall_s: f64,
    pub nonstream_completion_tokens: u64,
    pub nonstream_wall_s: f64,
    /// Stream tokens ÷ the sum of the stream calls' wall times (a per-call rate).
    pub stream_toks_per_s_total: Option<f64>,
    pub nonstream_toks_per_s_total: Option<f64>,
    /// LLMBench "Total tok/s": mean of the stream and non-stream per-call rates. With `par` > 1
    /// the calls overlap, so this is the rate one caller sees, not what the machine delivers.
    pub completion_toks_per_s_total: Option<f64>,
    /// What the machine delivered: all completion tokens of the cell's recorded calls (stream
    /// and non-stream) ÷ the cell's wall time (`elapsed_s`). Grows with `par` while the engine
    /// batches well.
    #[serde(default)]
    pub aggregate_toks_per_s: Option<f64>,
    pub completion_tokens_reasoning: Option<u64>,
    pub completion_tokens_visible: Option<u64>,
    pub completion_toks_per_s_reasoning_total: Option<f64>,
    pub completion_toks_per_s_visible_total: Option<f64>,
    pub ttft_s_mean: Option<f64>,
    pub ttft_s_stdev: Option<f64>,
    pub ttft_s_p50: Option<f64>,
    pub ttft_s_p90: Option<f64>,
    pub ttft_s_p99: Option<f64>,
    pub completion_toks_per_s_mean: Option<f64>,
    pub completion_toks_per_s_stdev: Option<f64>,
    pub completion_toks_per_s_p50: Option<f64>,
    pub completion_toks_per_s_p90: Option<f64>,
    pub completion_toks_per_s_p99: Option<f64>,
    pub prefill_toks_per_s_mean: Option<f64>,
    pub decode_toks_per_s_mean: Option<f64>,
    /// Seconds the recorded phase of the cell took.
    pub elapsed_s: f64,
}

impl CsvRow for SummaryRow {
    const HEADER: &'static [&'static str] = super::SUMMARY_CSV_HEADER;
}

/// One `load_times.csv` row: a cell's warm-ups, load estimate and prompt calibration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadRow {
    pub engine: Option<EngineKind>,
    pub model: String,
    pub ctx: u32,
    pub par: u32,
    /// Successful warm-ups.
    pub warmup_count: u32,
    pub warmup_ttft_first_s: Option<f64>,
    pub warmup_ttft_rest_mean_s: Option<f64>,
    /// First warm-up TTFT − mean of the rest, never below 0 (see `warmup_load_est_clamped`).
    pub warmup_load_est_s: Option<f64>,
    /// True when the difference was negative (the first warm-up was not the slowest: the model
    /// was already loaded, or the timing was noisy) and `warmup_load_est_s` reports 0 instead.
    #[serde(default)]
    pub warmup_load_est_clamped: bool,
    pub target_prompt_tokens: u32,
    /// Engine-reported prompt tokens of the prompt the recorded runs used.
    pub calibrated_prompt_tokens: Option<u64>,
    pub calibration_within_tolerance: bool,
    /// Prompt characters per engine prompt token (template included).
    pub chars_per_token: Option<f64>,
    /// Characters of the recorded runs' prompt.
    pub prompt_chars: usize,
    /// Extra non-streaming calls made to calibrate (0 when warm-ups already hit the target).
    pub calibration_calls: u32,
    pub calibration_cache_hit: bool,
}

impl CsvRow for LoadRow {
    const HEADER: &'static [&'static str] = super::LOAD_TIMES_CSV_HEADER;
}

/// The header a row struct serialises to (`csv::Writer::serialize` with headers on).
pub fn serialized_header<T: Serialize>(row: &T) -> Result<Vec<String>, csv::Error> {
    let mut w = csv::WriterBuilder::new().has_headers(true).from_writer(Vec::new());
    w.serialize(row)?;
    let bytes = w.into_inner().map_err(|e| csv::Error::from(e.into_error()))?;
    let mut r = csv::ReaderBuilder::new().has_headers(true).from_reader(bytes.as_slice());
    Ok(r.headers()?.iter().map(str::to_owned).collect())
}

/// A whole CSV file: the header (from the struct when there are rows, else [`CsvRow::HEADER`])
/// and one line per row.
pub fn csv_text<T: CsvRow>(rows: &[T]) -> Result<String, csv::Error> {
    let mut w = csv::WriterBuilder::new().has_headers(true).from_writer(Vec::new());
    if rows.is_empty() {
        w.write_record(T::HEADER)?;
    }
    for row in rows {
        w.serialize(row)?;
    }
    let bytes = w.into_inner().map_err(|e| csv::Error::from(e.into_error()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn request_row() -> RequestRow {
        RequestRow {
            run_mode: RunMode::Nonstream,
            warmup_run: false,
            model: "m".into(),
            ctx: 512,
            par: 2,
            idx: 1,
            slot: 1,
            wall_s: Some(0.5),
            ttft_s: None,
            prompt_tokens: Some(400),
            completion_tokens: Some(20),
            completion_tokens_reasoning: None,
            completion_tokens_visible: Some(20),
            completion_toks_per_s: Some(40.0),
            completion_toks_per_s_reasoning: None,
            completion_toks_per_s_visible: Some(40.0),
            prefill_toks_per_s: None,
            decode_toks_per_s: None,
            error: "ok, \"quoted\"".into(),
            timestamp: 1.5,
            engine: EngineKind::Openai,
            target_prompt_tokens: 400,
            cached_prompt_tokens: None,
            usage_source: Some(UsageSource::Nonstream),
            attempts: 1,
        }
    }

    #[test]
    fn struct_headers_equal_the_header_constants() {
        assert_eq!(serialized_header(&request_row()).unwrap(), RequestRow::HEADER);
        assert_eq!(serialized_header(&SummaryRow::default()).unwrap(), SummaryRow::HEADER);
        assert_eq!(serialized_header(&LoadRow::default()).unwrap(), LoadRow::HEADER);
    }

    #[test]
    fn csv_text_round_trips_and_writes_a_header_without_rows() {
        let row = request_row();
        let text = csv_text(std::slice::from_ref(&row)).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next().unwrap(), RequestRow::HEADER.join(","));
        let line = lines.next().unwrap();
        assert!(line.starts_with("nonstream,false,m,512,2,1,1,0.5,,400,20,,20,40.0,"), "{line}");
        assert!(line.contains("\"ok, \"\"quoted\"\"\""), "{line}");
        assert_eq!(lines.next(), None);
        let back: Vec<RequestRow> =
            csv::Reader::from_reader(text.as_bytes()).deserialize().collect::<Result<_, _>>().unwrap();
        assert_eq!(back, vec![row]);

        assert_eq!(csv_text::<LoadRow>(&[]).unwrap(), format!("{}\n", LoadRow::HEADER.join(",")));
    }

    #[test]
    fn rows_from_json_tolerate_unknown_keys_and_older_agents() {
        // An agent of a neighbouring version: one key more, the newer columns missing.
        let mut v = serde_json::to_value(SummaryRow { par: 2, elapsed_s: 3.0, ..Default::default() }).unwrap();
        let map = v.as_object_mut().unwrap();
        map.insert("from_the_future".into(), serde_json::json!(1));
        map.remove("aggregate_toks_per_s");
        let row: SummaryRow = serde_json::from_value(v).unwrap();
        assert_eq!((row.par, row.aggregate_toks_per_s), (2, None));
        let mut v = serde_json::to_value(LoadRow::default()).unwrap();
        v.as_object_mut().unwrap().remove("warmup_load_est_clamped");
        assert!(!serde_json::from_value::<LoadRow>(v).unwrap().warmup_load_est_clamped);
    }
}
