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

use crate::job::{FieldError, Rule, Spec, check_models, check_start_at};

pub mod rows;

pub use rows::{CsvRow, LoadRow, RequestRow, RunMode, SummaryRow, UsageSource, csv_text};

/// An `llm_sweep` job. On the wire a sweep gives either `ctx` (the full context) or
/// `target_prompt_tokens` (prompt sizes); [`Spec::validate`] turns the second into `ctx` with
/// `sizing: prompt_tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    pub models: Vec<String>,
    /// The full context (tokens); the sweep visits `ctx·i/sweep_count` for i = 1..=sweep_count.
    #[serde(default)]
    pub ctx: u32,
    /// Prompt sizes instead of context windows (LLMBench `TARGET_PROMPT_TOKENS`): taken into
    /// `ctx` and `sizing` by validation, so a validated spec never has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_prompt_tokens: Option<u32>,
    #[serde(default = "defaults::sweep_count")]
    pub sweep_count: u32,
    #[serde(default = "defaults::parallel")]
    pub parallel: Vec<u32>,
    /// Recorded logical requests per (model, ctx, par) and per parallel slot.
    #[serde(default = "defaults::runs")]
    pub runs: u32,
    /// Warm-up requests (at least 3; smaller values are clamped up).
    #[serde(default = "defaults::warmup")]
    pub warmup: u32,
    #[serde(default = "defaults::out_tokens")]
    pub out_tokens: u32,
    #[serde(default = "defaults::timeout_s")]
    pub timeout_s: f64,
    #[serde(default = "defaults::chars_per_token_est")]
    pub chars_per_token_est: f64,
    /// Accepted relative error of the calibrated prompt length (0.05 = ±5 %).
    #[serde(default = "defaults::calibration_tolerance")]
    pub calibration_tolerance: f64,
    #[serde(default)]
    pub temperature: f64,
    #[serde(default)]
    pub start_at: Option<u64>,
    /// Whether the points are context windows (`ctx`) or prompt sizes (`target_prompt_tokens`).
    #[serde(default, skip_serializing_if = "CtxSizing::is_context")]
    pub sizing: CtxSizing,
}

mod defaults {
    pub fn sweep_count() -> u32 {
        8
    }
    pub fn parallel() -> Vec<u32> {
        vec![1]
    }
    pub fn runs() -> u32 {
        3
    }
    pub fn warmup() -> u32 {
        3
    }
    pub fn out_tokens() -> u32 {
        256
    }
    pub fn timeout_s() -> f64 {
        300.0
    }
    pub fn chars_per_token_est() -> f64 {
        4.0
    }
    pub fn calibration_tolerance() -> f64 {
        0.05
    }
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

impl CtxSizing {
    fn is_context(&self) -> bool {
        *self == CtxSizing::Context
    }
}

/// The smallest prompt a sweep calibrates to: below this the chat template dominates.
pub const MIN_PROMPT_TOKENS: u32 = 16;

/// Minimum number of warm-up requests of a sweep.
pub const MIN_SWEEP_WARMUP: u32 = 3;

/// Largest `ctx` / `target_prompt_tokens`.
pub const MAX_SWEEP_CTX: u64 = 10_000_000;

impl Spec for SweepSpec {
    const RULES: &'static [(&'static str, Rule)] = &[
        ("models", Rule::Models),
        ("ctx", Rule::UInt { min: 64, max: MAX_SWEEP_CTX }),
        ("target_prompt_tokens", Rule::UInt { min: 64, max: MAX_SWEEP_CTX }),
        ("sweep_count", Rule::UInt { min: 1, max: 64 }),
        ("parallel", Rule::UIntList { min: 1, max: 256 }),
        ("runs", Rule::UInt { min: 1, max: 1000 }),
        ("warmup", Rule::UInt { min: 0, max: 100 }),
        ("out_tokens", Rule::UInt { min: 1, max: 1_000_000 }),
        ("timeout_s", Rule::Float { min: 1.0, max: 86_400.0 }),
        ("chars_per_token_est", Rule::Float { min: 0.5, max: 32.0 }),
        ("calibration_tolerance", Rule::Float { min: 0.001, max: 0.5 }),
        ("temperature", Rule::Float { min: 0.0, max: crate::job::MAX_TEMPERATURE }),
        ("start_at", Rule::StartAt),
        ("sizing", Rule::OneOf(&["context", "prompt_tokens"])),
    ];

    fn validate(&mut self, now_ms: u64) -> Result<(), FieldError> {
        check_models("models", &mut self.models)?;
        match (self.ctx, self.target_prompt_tokens.take()) {
            (0, None) => {
                return Err(FieldError::new(
                    "ctx",
                    format!("is required (or target_prompt_tokens): an integer from 64 to {MAX_SWEEP_CTX}"),
                ));
            }
            (0, Some(t)) => {
                Self::check_uint("target_prompt_tokens", t.into())?;
                self.ctx = t;
                self.sizing = CtxSizing::PromptTokens;
            }
            (c, None) => Self::check_uint("ctx", c.into())?,
            (_, Some(_)) => return Err(FieldError::new("ctx", "give either ctx or target_prompt_tokens, not both")),
        }
        Self::check_uint("sweep_count", self.sweep_count.into())?;
        Self::check_uint_list("parallel", &self.parallel)?;
        Self::check_uint("runs", self.runs.into())?;
        Self::check_uint("warmup", self.warmup.into())?;
        self.warmup = self.warmup.max(MIN_SWEEP_WARMUP);
        Self::check_uint("out_tokens", self.out_tokens.into())?;
        Self::check_float("timeout_s", self.timeout_s)?;
        Self::check_float("chars_per_token_est", self.chars_per_token_est)?;
        Self::check_float("calibration_tolerance", self.calibration_tolerance)?;
        Self::check_float("temperature", self.temperature)?;
        check_start_at(self.start_at, now_ms)
    }
}

impl SweepSpec {
    /// A sweep over `models` up to context `ctx`, every other field at its default.
    pub fn new(models: Vec<String>, ctx: u32) -> Self {
        SweepSpec {
            models,
            ctx,
            target_prompt_tokens: None,
            sweep_count: defaults::sweep_count(),
            parallel: defaults::parallel(),
            runs: defaults::runs(),
            warmup: defaults::warmup(),
            out_tokens: defaults::out_tokens(),
            timeout_s: defaults::timeout_s(),
            chars_per_token_est: defaults::chars_per_token_est(),
            calibration_tolerance: defaults::calibration_tolerance(),
            temperature: 0.0,
            start_at: None,
            sizing: CtxSizing::Context,
        }
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
    /// Estimated seconds until the whole sweep is done: this cell's remaining time plus the
    /// cells after it × the measured mean cell time (the projected time of this cell before
    /// any cell has finished). `None` until something has been measured.
    #[serde(default)]
    pub sweep_eta_s: Option<f64>,
    /// Warm-up load estimate (first warm-up TTFT − mean of the others), never below 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_load_est_s: Option<f64>,
    /// True when the raw load estimate was negative (the first warm-up was the faster: noise,
    /// or the model was already loaded) and `warmup_load_est_s` reports 0 instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub warmup_load_est_clamped: bool,
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
