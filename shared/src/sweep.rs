//! `llm_sweep`: the LLMBench workflow (warm-up, calibration, context × parallelism) as a job.
//!
//! This module holds the sweep's wire types: its spec and its event payloads.

use serde::{Deserialize, Serialize};

use crate::job::{FieldError, Fields};

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
}

/// Minimum number of warm-up requests of a sweep.
pub const MIN_SWEEP_WARMUP: u32 = 3;

impl SweepSpec {
    pub(crate) fn from_fields(f: &mut Fields<'_>, now_ms: u64) -> Result<Self, FieldError> {
        let models = f.models("models")?;
        let ctx = f.opt_uint("ctx", 64, 10_000_000)?;
        let target = f.opt_uint("target_prompt_tokens", 64, 10_000_000)?;
        let ctx = match (ctx, target) {
            (Some(c), None) | (None, Some(c)) => c as u32,
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
        })
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

/// `sweep_progress`: the state of one (model, ctx, par) cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepProgress {
    pub model: String,
    pub ctx: u32,
    pub par: u32,
    pub state: String,
    pub warmup_done: u32,
    pub warmup_total: u32,
    pub requests_done: u32,
    pub requests_total: u32,
    pub errors: u32,
    pub live_tok_s: Option<f64>,
    pub eta_s: Option<f64>,
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
