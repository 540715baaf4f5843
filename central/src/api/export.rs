//! `GET /api/runs/{id}/export.csv|.json`: one row per machine (the text race's columns, or an
//! image, speech or compute race's own figures).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use bench_shared::job::TestType;
use bench_shared::run::{RunMetadata, RunSummary};
use serde::Serialize;
use serde_json::Value;

use super::ApiError;
use super::runs::checked;
use crate::AppState;
use crate::runs::summary::{build, outcomes_from_events};

/// Columns of `export.csv` (bench-race's plus status, rank, reason and the richer metrics).
pub const EXPORT_CSV_HEADER: &[&str] = &[
    "run_id",
    "timestamp",
    "model",
    "machine_id",
    "label",
    "status",
    "engine",
    "ttft_ms",
    "gen_tokens",
    "gen_tokens_per_s",
    "decode_tok_s",
    "total_ms",
    "rank",
    "reason",
    "ttfc_ms",
    "engine_decode_tok_s",
    "prompt_tokens",
    "engine_prefill_tok_s",
    "load_ms",
    "repeats",
    "finish_order",
    "fallback_reason",
];

/// Columns of `export.csv` for the image, speech and compute races: who, how it ended, and the
/// workload's own figures (means over the repeats) instead of the text race's empty columns.
pub fn export_csv_header(test_type: TestType) -> Vec<&'static str> {
    let common = ["run_id", "timestamp", "model", "machine_id", "label", "status", "rank", "reason", "repeats"];
    let figures: &[&str] = match test_type {
        TestType::ImageGenerate => &["s_per_image", "steps_per_s", "queue_latency_ms", "gen_time_ms", "wall_ms"],
        TestType::Transcribe => &["rtfx", "wer", "audio_s", "wall_ms", "time_to_first_segment_ms", "text"],
        TestType::Compute => &["ops_per_s", "wall_ms", "result"],
        TestType::LlmGenerate | TestType::LlmSweep | TestType::LlmLoad | TestType::LlmCapacity => {
            return EXPORT_CSV_HEADER.to_vec();
        }
    };
    common.into_iter().chain(figures.iter().copied()).chain(["finish_order"]).collect()
}

/// The stored summary, or one computed from the events (running or interrupted runs).
async fn load(state: &AppState, run_id: &str) -> Result<(RunMetadata, RunSummary), ApiError> {
    checked(run_id)?;
    let (store, run_id) = (state.store.clone(), run_id.to_owned());
    super::blocking(move || {
        let meta = store.metadata(&run_id)?;
        let summary = match store.summary(&run_id)? {
            Some(s) => s,
            None => build(&meta, &outcomes_from_events(&store.events(&run_id)?)),
        };
        Ok((meta, summary))
    })
    .await
}

/// `export.json`: the run's metadata and summary in one file.
#[derive(Debug, Serialize)]
pub struct Export {
    pub metadata: RunMetadata,
    pub summary: RunSummary,
}

pub async fn json(State(state): State<AppState>, Path(run_id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let (metadata, summary) = load(&state, &run_id).await?;
    let disposition = format!("attachment; filename=\"{run_id}.json\"");
    Ok(([(header::CONTENT_DISPOSITION, disposition)], Json(Export { metadata, summary })))
}

pub async fn csv(State(state): State<AppState>, Path(run_id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let (meta, summary) = load(&state, &run_id).await?;
    let header = export_csv_header(summary.test_type);
    let rows: Vec<serde_json::Map<String, Value>> = summary
        .machines
        .iter()
        .map(|m| {
            let mut row = serde_json::to_value(m).ok().and_then(|v| v.as_object().cloned()).unwrap_or_default();
            row.insert("run_id".into(), Value::from(meta.run_id.as_str()));
            row.insert("timestamp".into(), Value::from(meta.started_at.as_str()));
            row.insert("model".into(), Value::from(m.model.clone().unwrap_or_else(|| meta.model_label())));
            row.retain(|k, _| header.contains(&k.as_str()));
            row
        })
        .collect();
    let refs: Vec<&serde_json::Map<String, Value>> = rows.iter().collect();
    let body = crate::runs::finish::csv_bytes(&header, &refs);
    let disposition = format!("attachment; filename=\"{run_id}.csv\"");
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, disposition)],
        body,
    ))
}
