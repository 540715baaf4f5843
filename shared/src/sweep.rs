//! `llm_sweep`: the LLMBench workflow (warm-up, calibration, context × parallelism) as a job.
//!
//! This module holds the sweep's wire types: its spec, its event payloads, and the rows of the
//! three CSVs (`requests.csv`, `summary.csv`, `load_times.csv`; structs in [`rows`], header
//! constants here), so that the agent and central write the same files.
//!
//! # What a context point means
//! The sweep visits `ctx·i/sweep_count` for i = 1..=sweep_count. With `ctx` (the default,
//! [`CtxSizing::Context`]) a point is the whole context window: the prompt is calibrated to
//! `point − out_tokens` tokens (at least [`MIN_PROMPT_TOKENS`]) so that prompt plus answer fit, and
//! `num_ctx` sent to the engine is the point. With `target_prompt_tokens`
//! ([`CtxSizing::PromptTokens`], the LLMBench `TARGET_PROMPT_TOKENS` meaning) a point is the
//! prompt size itself and `num_ctx` is `point + out_tokens`.

use serde::{Deserialize, Serialize};

use crate::job::{FieldError, Fields};

pub mod rows;

pub use rows::{CsvRow, LoadRow, RequestRow, RunMode, SummaryRow, UsageSource, csv_text};

/// A validated `llm_sweep` job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepSpec {
    pub models: Vec<String>,
    /// The full context (tokens); the sweep visits `ctx·i/sweep_count` for i = 1..=sweep_count.
    pub ctx: u32,
    pub sweep_count: u32,
    pub parallel: Vec<u32>,
    /// Recorded logical requests per (model, ctx, par) and per parallel slot.
    pub runs: u32,
    /// Warm-up requests (at least 3; smaller values are clamped up).
    pub warmup: u32,
    pub out_tokens: u32,
    pub timeout_s: f64,
    pub chars_per_token_est: f64,
    /// Accepted relative error of the calibrated prompt length (0.05 = ±5 %).
    pub calibration_tolerance: f64,
    pub temperature: f64,
    pub start_at: Option<u64>,
    /// Whether the points are context windows (`ctx`) or prompt sizes (`target_prompt_tokens`).
    #[serde(default)]
    pub sizing: CtxSizing,
}

/// What the sweep's context points measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CtxSizing {
    /// Points are context windows; the prompt leaves room for `out_tokens`.
    #[default]
    Context,
    /// Points are prompt token targets (LLMBench `TARGET_PROMPT_TOKENS`).
    PromptTokens,
}

/// The smallest prompt a sweep calibrates to: below this the chat template dominates.
pub const MIN_PROMPT_TOKENS: u32 = 16;

/// Minimum number of warm-up requests of a sweep.
pub const MIN_SWEEP_WARMUP: u32 = 3;

impl SweepSpec {
    pub(crate) fn from_fields(f: &mut Fields<'_>, now_ms: u64) -> Result<Self, FieldError> {
        let models = f.models("models")?;
        let ctx = f.opt_uint("ctx", 64, 10_000_000)?;
        let target = f.opt_uint("target_prompt_tokens", 64, 10_000_000)?;
        let (ctx, sizing) = match (ctx, target) {
            (Some(c), None) => (c as u32, CtxSizing::Context),
            (None, Some(t)) => (t as u32, CtxSizing::PromptTokens),
            (Some(_), Some(_)) => {
                return Err(FieldError::new("ctx", "give either ctx or target_prompt_tokens, not both"));
            }
            _ => {
                return Err(FieldError::new(
                    "ctx",
                    "is required (or target_prompt_tokens): an integer from 64 to 10000000",
                ));
            }
        };
        Ok(SweepSpec {
            models,
            ctx,
            sweep_count: f.uint("sweep_count", Some(8), 1, 64)? as u32,
            parallel: f.uint_list("parallel", &[1], 1, 256)?.into_iter().map(|p| p as u32).collect(),
            runs: f.uint("runs", Some(3), 1, 1000)? as u32,
            warmup: (f.uint("warmup", Some(3), 0, 100)? as u32).max(MIN_SWEEP_WARMUP),
            out_tokens: f.uint("out_tokens", Some(256), 1, 1_000_000)? as u32,
            timeout_s: f.float("timeout_s", Some(300.0), 1.0, 86_400.0)?,
            chars_per_token_est: f.float("chars_per_token_est", Some(4.0), 0.5, 32.0)?,
            calibration_tolerance: f.float("calibration_tolerance", Some(0.05), 0.001, 0.5)?,
            temperature: f.float("temperature", Some(0.0), 0.0, crate::job::MAX_TEMPERATURE)?,
            start_at: f.start_at(now_ms)?,
            sizing,
        })
    }

    /// The prompt size (engine-reported prompt tokens) calibrated for a context point.
    pub fn prompt_target(&self, point: u32) -> u32 {
        match self.sizing {
            CtxSizing::Context => point.saturating_sub(self.out_tokens).max(MIN_PROMPT_TOKENS),
            CtxSizing::PromptTokens => point.max(MIN_PROMPT_TOKENS),
        }
    }

    /// The context window (`num_ctx`) requested for a context point.
    pub fn num_ctx(&self, point: u32) -> u32 {
        match self.sizing {
            CtxSizing::Context => point,
            CtxSizing::PromptTokens => point.saturating_add(self.out_tokens),
        }
    }

    /// The context sizes the sweep visits, ascending.
    pub fn ctx_points(&self) -> Vec<u32> {
        let n = self.sweep_count.max(1) as u64;
        let mut pts: Vec<u32> = (1..=n).map(|i| (self.ctx as u64 * i / n) as u32).filter(|c| *c > 0).collect();
        pts.dedup();
        pts
    }
}

/// `sweep_started`: the grid the sweep will visit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepStarted {
    pub models: Vec<String>,
    pub ctx_points: Vec<u32>,
    pub parallel: Vec<u32>,
    pub cells_total: usize,
}

/// Where a (model, ctx, par) cell is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellState {
    /// Not started yet.
    #[default]
    Pending,
    WarmingUp,
    Calibrating,
    /// Recorded requests are running.
    Running,
    /// A request failed and waits for its next attempt (`retry_delay_s`, `detail`).
    Retrying,
    Done,
    /// The cell ended because the sweep was cancelled.
    Cancelled,
}

impl CellState {
    pub fn as_str(self) -> &'static str {
        match self {
            CellState::Pending => "pending",
            CellState::WarmingUp => "warming_up",
            CellState::Calibrating => "calibrating",
            CellState::Running => "running",
            CellState::Retrying => "retrying",
            CellState::Done => "done",
            CellState::Cancelled => "cancelled",
        }
    }
}

/// `sweep_progress`: the state of one (model, ctx, par) cell. Requests are counted as logical
/// requests (`runs × par`); one is done when its non-streaming call has finished. The rates are
/// those of `summary.csv` over the rows so far, so a live view shows the figures the CSV will have.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SweepProgress {
    pub model: String,
    pub ctx: u32,
    pub par: u32,
    /// 0-based position of the cell in the sweep's order.
    #[serde(default)]
    pub cell_index: usize,
    #[serde(default)]
    pub cells_total: usize,
    pub state: CellState,
    pub warmup_done: u32,
    pub warmup_total: u32,
    pub requests_done: u32,
    pub requests_total: u32,
    /// Logical requests that failed (after retries).
    pub errors: u32,
    /// Completion tokens per second arriving over all concurrent streams in the last second.
    pub live_tok_s: Option<f64>,
    /// Stream completion tokens / stream wall time, over the recorded requests so far.
    #[serde(default)]
    pub stream_tok_s: Option<f64>,
    /// Mean of the stream and non-stream totals (LLMBench "Total tok/s").
    #[serde(default)]
    pub total_tok_s: Option<f64>,
    /// Mean prompt tokens / TTFT of the recorded stream calls so far.
    #[serde(default)]
    pub prefill_tok_s: Option<f64>,
    /// Mean TTFT of the recorded stream calls so far, seconds.
    #[serde(default)]
    pub ttft_s: Option<f64>,
    /// Seconds since the cell started.
    #[serde(default)]
    pub elapsed_s: f64,
    /// Estimated seconds until the cell is done.
    pub eta_s: Option<f64>,
    /// With state `retrying`: seconds until the next attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_delay_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `sweep_row`: one `requests.csv` row, as a JSON object keyed by the CSV header.
pub type SweepRow = serde_json::Map<String, serde_json::Value>;

/// `sweep_done`: where the CSVs are and the `summary.csv` rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepDone {
    pub summary_rows: Vec<serde_json::Map<String, serde_json::Value>>,
    pub load_time_rows: Vec<serde_json::Map<String, serde_json::Value>>,
    pub requests_csv: Option<String>,
    pub summary_csv: Option<String>,
    pub load_times_csv: Option<String>,
}

/// `requests.csv`: one row per call. A recorded logical request gives two rows with the same
/// `idx` (`run_mode` `stream` then `nonstream`); warm-ups are logged with `warmup_run` true.
/// Empty cells mean "not applicable / not reported" (e.g. `ttft_s` and `prefill_toks_per_s` of a
/// non-stream row).
pub const REQUESTS_CSV_HEADER: &[&str] = &[
    "run_mode",
    "warmup_run",
    "model",
    "ctx",
    "par",
    "idx",
    "slot",
    "wall_s",
    "ttft_s",
    "prompt_tokens",
    "completion_tokens",
    "completion_tokens_reasoning",
    "completion_tokens_visible",
    "completion_toks_per_s",
    "completion_toks_per_s_reasoning",
    "completion_toks_per_s_visible",
    "prefill_toks_per_s",
    "decode_toks_per_s",
    "error",
    "timestamp",
    "engine",
    "target_prompt_tokens",
    "cached_prompt_tokens",
    "usage_source",
    "attempts",
];

/// `summary.csv`: one row per (model × ctx × par), recorded requests only (no warm-ups).
pub const SUMMARY_CSV_HEADER: &[&str] = &[
    "engine",
    "model",
    "ctx",
    "par",
    "runs",
    "target_prompt_tokens",
    "prompt_tokens_mean",
    "request_count",
    "success_count",
    "error_count",
    "stream_completion_tokens",
    "stream_wall_s",
    "nonstream_completion_tokens",
    "nonstream_wall_s",
    "stream_toks_per_s_total",
    "nonstream_toks_per_s_total",
    "completion_toks_per_s_total",
    "aggregate_toks_per_s",
    "completion_tokens_reasoning",
    "completion_tokens_visible",
    "completion_toks_per_s_reasoning_total",
    "completion_toks_per_s_visible_total",
    "ttft_s_mean",
    "ttft_s_stdev",
    "ttft_s_p50",
    "ttft_s_p90",
    "ttft_s_p99",
    "completion_toks_per_s_mean",
    "completion_toks_per_s_stdev",
    "completion_toks_per_s_p50",
    "completion_toks_per_s_p90",
    "completion_toks_per_s_p99",
    "prefill_toks_per_s_mean",
    "decode_toks_per_s_mean",
    "elapsed_s",
];

/// `load_times.csv`: one row per (model × ctx × par): warm-up TTFTs, the load estimate, and how
/// the prompt was calibrated.
pub const LOAD_TIMES_CSV_HEADER: &[&str] = &[
    "engine",
    "model",
    "ctx",
    "par",
    "warmup_count",
    "warmup_ttft_first_s",
    "warmup_ttft_rest_mean_s",
    "warmup_load_est_s",
    "warmup_load_est_clamped",
    "target_prompt_tokens",
    "calibrated_prompt_tokens",
    "calibration_within_tolerance",
    "chars_per_token",
    "prompt_chars",
    "calibration_calls",
    "calibration_cache_hit",
];

#[cfg(test)]
mod tests {
    use crate::job::JobSpec;
    use serde_json::json;

    #[test]
    fn sweep_defaults_and_clamped_warmup() {
        let spec = JobSpec::from_json(
            &json!({"test_type": "llm_sweep", "models": ["m"], "ctx": 1024, "warmup": 1, "parallel": [1, 2]}),
            0,
        )
        .unwrap();
        let JobSpec::LlmSweep(s) = spec else { panic!() };
        assert_eq!(s.warmup, 3);
        assert_eq!(s.sweep_count, 8);
        assert_eq!(s.ctx_points(), vec![128, 256, 384, 512, 640, 768, 896, 1024]);
        assert_eq!(s.sizing, super::CtxSizing::Context);
        // 128-token window, 256 out tokens: the prompt floor applies.
        assert_eq!(s.prompt_target(128), super::MIN_PROMPT_TOKENS);
        assert_eq!(s.prompt_target(1024), 768);
        assert_eq!(s.num_ctx(1024), 1024);
    }

    #[test]
    fn target_prompt_tokens_points_are_prompt_sizes() {
        let spec = JobSpec::from_json(
            &json!({"test_type": "llm_sweep", "models": ["m"], "target_prompt_tokens": 800, "out_tokens": 64,
                    "sweep_count": 2}),
            0,
        )
        .unwrap();
        let JobSpec::LlmSweep(s) = spec else { panic!() };
        assert_eq!(s.sizing, super::CtxSizing::PromptTokens);
        assert_eq!(s.ctx_points(), vec![400, 800]);
        assert_eq!(s.prompt_target(400), 400);
        assert_eq!(s.num_ctx(400), 464);
    }

    #[test]
    fn progress_state_is_snake_case_on_the_wire() {
        let p = super::SweepProgress { state: super::CellState::WarmingUp, ..Default::default() };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["state"], "warming_up");
        assert_eq!(super::CellState::WarmingUp.as_str(), "warming_up");
    }

    #[test]
    fn csv_headers_have_unique_columns() {
        for h in [super::REQUESTS_CSV_HEADER, super::SUMMARY_CSV_HEADER, super::LOAD_TIMES_CSV_HEADER] {
            let set: std::collections::HashSet<_> = h.iter().collect();
            assert_eq!(set.len(), h.len());
        }
    }

    #[test]
    fn sweep_errors_name_fields() {
        let e = JobSpec::from_json(&json!({"test_type": "llm_sweep", "models": ["m"]}), 0).unwrap_err();
        assert_eq!(e.field, "ctx");
        let e = JobSpec::from_json(&json!({"test_type": "llm_sweep", "models": [], "ctx": 512}), 0).unwrap_err();
        assert_eq!(e.field, "models");
        let e = JobSpec::from_json(&json!({"test_type": "llm_sweep", "models": ["m"], "ctx": 512, "parallel": [0]}), 0)
            .unwrap_err();
        assert_eq!(e.field, "parallel");
    }
}
